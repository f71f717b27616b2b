package segstore

import (
	"math"

	"github.com/cockroachdb/pebble/v2"
)

// Test hooks: the underlying Pebble DB and key encodings, so tests can
// damage records and scan keys directly.

func (s *Store) DB() *pebble.DB { return s.db }

// WithoutValueSeparation returns opts for a store that keeps slices in
// sstables: BenchmarkFill2GiB's baseline.
func WithoutValueSeparation(opts Options) Options {
	opts.noValueSeparation = true
	return opts
}

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

// OpenScanStats reports how many separated (blob) values Open's key scan met
// and how many value bytes it fetched.
func (s *Store) OpenScanStats() (separated, fetched uint64) {
	return s.openScan.InternalStats.SeparatedPointValue.Count,
		s.openScan.InternalStats.SeparatedPointValue.ValueBytesFetched
}

// SliceHeaderLen is the header length of a slice value of n payload bytes
// as WriteSlice writes it (format 2).
func SliceHeaderLen(n int64) int { return sliceHdrLen2(n) }

// SliceHeaderLenV1 is the header length of a format-1 slice value.
const SliceHeaderLenV1 = sliceHdrLen1

// ChunkSize is the payload bytes covered by one checksum in format 2.
const ChunkSize = chunkSize

// WriteSliceV1 is WriteSlice writing the format-1 value that stores made
// before format 2 hold.
func (s *Store) WriteSliceV1(m *Meta, i int64, data []byte) error {
	return s.writeSlice(m, i, data, sliceFormat1)
}

// Format markers: the current one and the one before.
const (
	FormatKey     = formatKey
	FormatValue   = formatValue
	FormatValueV1 = formatValueV1
)

// Evict runs the clock hand until need bytes are evicted, as the evictor
// does, and returns the bytes evicted.
func (s *Store) Evict(need int64) int64 { return s.evict(need) }

// ClockRuns is the length of the clock queue.
func (s *Store) ClockRuns() int { return s.idx.queued() }

// CacheShardBytes is the size of one shard of the block cache of a store
// with these CacheBytes and MaxBytes: no larger block is ever cached.
func CacheShardBytes(cacheBytes, maxBytes int64) int64 {
	return cacheBytes / cacheShards(cacheBytes)
}

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
