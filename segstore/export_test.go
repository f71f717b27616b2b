package segstore

import (
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Test hooks: the underlying Pebble DB and key encodings, so tests can
// damage records and scan keys directly.

func (s *Store) DB() *pebble.DB { return s.db }

func SliceKey(key string, version uint64, i int64) []byte {
	k := makeSliceKey(keyHash(key), version, i)
	return k[:]
}

func MetaKey(key string) []byte { return metaKey(key) }

// VersionPrefix is the key prefix of every slice of one version of key.
func VersionPrefix(key string, version uint64) []byte {
	start, _ := versionSpan(keyHash(key), version)
	return start
}

// EntryLen is the length of the entry of a slice of n bytes.
func EntryLen(n int64) int { return entryLen(n) }

// ChunkSize is the bytes of slice covered by one checksum.
const ChunkSize = chunkSize

// FormatKey and FormatValue are the format marker's key and the current
// value.
const (
	FormatKey   = formatKey
	FormatValue = formatValue
)

// SlicePath is the file of slice i of key's version.
func (s *Store) SlicePath(key string, version uint64, i int64) string {
	return s.files.path(keyHash(key), version, i)
}

// SetScrubPause sets the pause before and between scrub passes, for the
// stores opened from now on, and returns the old one.
func SetScrubPause(d time.Duration) time.Duration {
	old := scrubPause
	scrubPause = d
	return old
}

// ScrubPasses is how many scrub passes have completed, and Orphans how
// many orphan files they removed.
func (s *Store) ScrubPasses() int64 { return s.scrub.passes.Load() }
func (s *Store) Orphans() int64     { return s.scrub.orphans.Load() }

// Evict runs the clock hand until need bytes are evicted, as the evictor
// does, and returns the bytes evicted.
func (s *Store) Evict(need int64) int64 { return s.evict(need) }

// ClockRuns is the length of the clock queue.
func (s *Store) ClockRuns() int { return s.idx.queued() }

// Stalled reports whether Pebble is stalling writes now (and nothing worse).
func (s *Store) Stalled() bool { return s.ctl.onlyStalled() }

// IndexPageSlices is the number of slices of one page of the index.
const IndexPageSlices = pageSlices

// IndexPages returns how many pages the index holds for m's version.
func (s *Store) IndexPages(m *Meta) int {
	ss := s.idx.load(m.Key)
	if ss == nil || ss.version != m.Version {
		return 0
	}
	n := 0
	ss.eachPage(0, math.MaxInt64, func(int64, *slicePage) bool { n++; return true })
	return n
}

// HoldPendingPurges stops (true) or lets (false) the background retry of
// pending purges land them, so a test can write while one is pending.
func (s *Store) HoldPendingPurges(hold bool) {
	s.pend.held.Store(hold)
	signal(s.pend.kick)
}
