// Package slicer holds the pure arithmetic of a slice cache: it parses a
// client's Range header (RFC 9110 §14.1–14.2), resolves it against an object's
// size into sorted, coalesced byte ranges that never amplify, maps those
// ranges onto aligned fixed-size slices, plans the runs of missing slices to
// fetch from the origin, and formats and parses Content-Range (RFC 9110
// §14.4). It does no I/O and imports only the standard library.
package slicer
