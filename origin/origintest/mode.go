package origintest

import (
	"fmt"
	"time"
)

// Mode makes the origin misbehave. The zero Mode is a well-behaved origin;
// each field turns on one behaviour and they combine.
type Mode struct {
	// NoRange ignores Range and If-Range: every GET is a 200 with the full
	// body, and Accept-Ranges says "none".
	NoRange bool

	// Chunked omits Content-Length and flushes after every chunk, so the
	// body goes out with chunked transfer encoding.
	Chunked bool

	// FlapEvery, when > 0, increments the object's version after every
	// FlapEvery requests to its path: requests 1..N see version v, requests
	// N+1..2N version v+1, and so on. With 1, every request sees a new
	// version, so an If-Match taken from an earlier answer always fails.
	FlapEvery int

	// IgnoreIfMatch ignores If-Match and If-Unmodified-Since: a lying origin
	// that serves the current version whatever the client asked for.
	IgnoreIfMatch bool

	// LieContentRange makes every 206 carry a wrong Content-Range while the
	// body still holds the requested bytes: "start" (first byte off by one),
	// "end" (last byte off by one), "total" (size + 1), "star" (total "*")
	// or "malformed" (no total at all). "" tells the truth.
	LieContentRange string

	// TruncateAfter, when > 0, aborts the connection after that many body
	// bytes while Content-Length announces the full body, so the client
	// sees an unexpected EOF. A body not longer than that is sent whole.
	TruncateAfter int64

	// Latency is slept before the response headers are written.
	Latency time.Duration

	// Bandwidth, when > 0, paces each response body to at most that many
	// bytes per second, in chunks of about 1/32 s.
	Bandwidth int64

	// NoValidator omits ETag and Last-Modified.
	NoValidator bool

	// WeakETag sends W/"..." instead of a strong ETag; it then never
	// matches If-Match or If-Range.
	WeakETag bool

	// NoLastModified omits Last-Modified (ETag stays).
	NoLastModified bool

	// CacheControl, when not nil, replaces the default Cache-Control
	// "max-age=3600"; "" omits the header.
	CacheControl *string

	// Status, when not 0, answers every request with that status and a
	// short text body (no object headers), e.g. 500 or 503.
	Status int

	// Stall sleeps once for that long after StallAfter body bytes have been
	// written (after flushing them), e.g. to test a client's idle timeout.
	Stall time.Duration

	// StallAfter is the offset in the response body at which Stall
	// happens; 0 stalls right after the headers. A body not longer than
	// StallAfter does not stall.
	StallAfter int64
}

// clone returns m with its own copy of CacheControl, so that a caller who
// later writes through the pointer cannot race with requests in flight. It
// panics on an unknown LieContentRange, which is a typo in a test.
func (m Mode) clone() *Mode {
	if err := m.check(); err != nil {
		panic("origintest: " + err.Error())
	}
	if m.CacheControl != nil {
		cc := *m.CacheControl
		m.CacheControl = &cc
	}
	return &m
}

// check reports a Mode no request could be served with.
func (m Mode) check() error {
	switch m.LieContentRange {
	case "", "start", "end", "total", "star", "malformed":
		return nil
	}
	return fmt.Errorf("unknown LieContentRange %q", m.LieContentRange)
}
