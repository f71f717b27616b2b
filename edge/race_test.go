//go:build race

package edge_test

// raceBuild reports a build with the race detector. In such builds Pebble
// allocates its memtables and block cache with make([]byte) in about half
// of all processes, chosen at random at start (pebble internal/manual,
// useGoAllocation), so the live Go heap then includes the store's own
// memory and heap bounds on our code cannot be checked.
const raceBuild = true
