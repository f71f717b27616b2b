package segstore

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Every Pebble option the store sets is in this file, so that a Pebble
// upgrade (value separation is still "experimental" in v2.1) touches one
// place. Figures below are for 1 MiB slices, the common case; slices run
// from 64 KiB to 64 MiB.

// DefaultCacheBytes is the block cache size when Options.CacheBytes is 0.
const DefaultCacheBytes = 256 << 20

// writeOpts: every write is NoSync. With the WAL disabled there is nothing to
// sync at commit; durability comes from flushes (see DisableWAL below).
var writeOpts = pebble.NoSync

// Blob garbage ratios (ValueSeparationPolicy.TargetGarbageRatio): the share
// of blob-file bytes no longer referenced above which Pebble rewrites blob
// files to give the space back. The evictor switches to the tight one while
// Pebble's disk usage is over the high-water mark (evict.go); Pebble reads
// the policy each time it picks a compaction, so the change takes effect at
// the next flush or compaction.
const (
	garbageRatioNormal = 0.20
	garbageRatioTight  = 0.05
)

// blobRewriteMinAge is ValueSeparationPolicy.RewriteMinimumAge: a blob file
// younger than this is never rewritten. With CLOCK eviction the oldest blob
// files lose their slices first, and whole files whose slices are all gone
// are deleted without any rewrite; a file is worth rewriting when a few hot
// slices pin it, which shows within seconds. Pebble reads this once, at Open.
const blobRewriteMinAge = 0

// memTableStopWrites is Options.MemTableStopWritesThreshold: memtables
// that may queue for flushing before writes stall.
const memTableStopWrites = 4

// cacheReserve is what Pebble's memtables may reserve of the block cache at
// once: memTableStopWrites of them, and one kept for reuse.
func cacheReserve(maxBytes, cacheBytes int64) int64 {
	return int64(memTableSize(maxBytes, cacheBytes)) * (memTableStopWrites + 1)
}

// cacheShards is how many shards Pebble splits a block cache of size bytes
// into: 4 per GOMAXPROCS, or just 4 when those would be under 4 MiB.
func cacheShards(size int64) int64 {
	shards := int64(4 * runtime.GOMAXPROCS(0))
	if shards > 4 && size/shards < 4<<20 {
		shards = 4
	}
	return shards
}

// LargestCachedSlice is the size of the largest slice (payload) that the
// block cache of a store with Options.CacheBytes cacheBytes (0:
// DefaultCacheBytes) and Options.MaxBytes maxBytes keeps in any case.
// Pebble caches no block larger than a shard's share of the cache net of
// memtable reservations, which at worst (see cacheReserve) leaves each of
// cacheShards shards (cacheBytes - cacheReserve)/cacheShards. A slice's
// block holds its payload, a header of 4 bytes per 64 KiB chunk, and a
// little framing of Pebble's (counted generously here).
func LargestCachedSlice(cacheBytes, maxBytes int64) int64 {
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	shard := (cacheBytes - cacheReserve(maxBytes, cacheBytes)) / cacheShards(cacheBytes)
	const framing = 4 << 10
	return shard - int64(sliceHdrLen2(shard)) - framing
}

// memTableSize is Options.MemTableSize for a store with the given budget
// and block cache size: 64 MiB, or less when the budget is under 2 GiB
// (1/32 of it, at least 4 MiB: the disk needs a memtable of headroom) or
// the cache under 512 MiB (1/8 of it, at least 2 MiB: memtables count
// against the cache, and up to five of them may live at once).
func memTableSize(budget, cache int64) uint64 {
	size := int64(64 << 20)
	if budget > 0 {
		size = min(size, max(budget/32, 4<<20))
	}
	if cache <= 0 {
		cache = DefaultCacheBytes
	}
	return uint64(min(size, max(cache/8, 2<<20)))
}

// pebbleOptions returns the Pebble options for a store; c receives Pebble's
// events and supplies the blob garbage ratio in force.
func pebbleOptions(o Options, c *control) *pebble.Options {
	cacheBytes := o.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	po := &pebble.Options{
		// Value separation (blob files) needs FormatValueSeparation or later;
		// FormatNewest is the newest non-experimental format. A new directory
		// is created at it, an old one is ratcheted up at Open.
		FormatMajorVersion: pebble.FormatNewest,

		// No write-ahead log. Cache contents can be refetched, and every
		// slice is written in one batch with the meta that names it, so a
		// crash loses only whole recent batches (everything since the last
		// memtable flush): what survives is a prefix of the store's history,
		// in which every slice has its meta. Open drops slices whose meta is
		// missing or names another version, reads verify checksums, Close
		// flushes, and Purge flushes before returning so a purge is never
		// undone by a crash. Without the WAL every slice byte is written to
		// disk once by a flush instead of twice (WAL + flush).
		DisableWAL: true,

		// The default 4 MiB memtable would flush every few slices. 64 MiB
		// holds 64 slices of 1 MiB; a batch of half the memtable or more
		// (slices of 32 MiB and up) becomes its own flushable batch, which
		// Pebble handles without copying it into the memtable. Up to four
		// memtables may queue while a flush runs before writes stall, and
		// they count against the block cache, so with a cache under
		// 512 MiB the memtable is 1/8 of it (32 MiB for the default).
		// A memtable lands on disk in one flush, before compaction can give
		// back what eviction deleted, so the disk budget needs a memtable of
		// headroom: with a budget under 2 GiB the memtable is 1/32 of it
		// (4 MiB at least). See memTableSize.
		MemTableSize:                memTableSize(o.MaxBytes, cacheBytes),
		MemTableStopWritesThreshold: memTableStopWrites,

		// The block cache holds sstable blocks (keys, blob handles, metas,
		// bloom filters: small and read on every lookup) and blob value
		// blocks (the slices, one per block). Get returns a pointer into the
		// cached block, with no copy, so a ReadSlice that hits it runs at
		// ~10 GB/s here (our chunk checksums and one copy), and a
		// ReadSliceRange of 256 KiB of a 1 MiB slice takes ~25 µs. A miss
		// reads the whole block whatever the range: from the page cache at
		// ~2-3 GB/s (a fresh zeroed 1 MiB allocation, pread, Pebble's
		// checksum of the whole block, then ours and the copy) or from disk.
		// 256 MiB by default holds the index and a few hundred hot slices;
		// raise Options.CacheBytes to keep a bigger hot set. Pebble caches
		// no block larger than a cache shard (see LargestCachedSlice):
		// Pebble's 8 MiB default would hold a handful of slices at best.
		// Every memtable reserves its size in the block cache while it
		// lives (an account: its arena is allocated apart), so CacheBytes
		// bounds Pebble's memory for cached blocks and memtables together.
		// Memtables are sized to take at most 5/8 of it (memTableSize), so
		// a burst of fills leaves the hot slices at least 3/8 of the cache.
		CacheSize: cacheBytes,

		// Every flush writes one sstable and one blob file; with value
		// separation a store of 1 TiB is thousands of blob files that reads
		// must open. Go raises the soft RLIMIT_NOFILE to the hard limit at
		// start-up, so a higher soft limit than Pebble's 1000 is safe.
		MaxOpenFiles: 16384,

		// Range deletions (version changes, purges) free disk only once
		// flushed and compacted; flush a memtable holding one within 10 s
		// rather than waiting for it to fill.
		FlushDelayDeleteRange: 10 * time.Second,

		// One compaction normally, up to four when L0 or compaction debt
		// builds up. With value separation compactions move keys and blob
		// handles, not slice bytes, so they are cheap.
		CompactionConcurrencyRange: func() (int, int) { return 1, 4 },

		// Pebble's own log is quiet unless Options.Logger is set, and then
		// carries errors only. Fatal I/O errors go to the store (health.go).
		Logger: pebbleLogger{logf: o.Logger, c: c},

		// Flush failures, write stalls and background errors drive the
		// store's write health (health.go).
		EventListener: c.eventListener(),

		// The operating system's, unless a test injects faults.
		FS: o.FS,
	}

	// One sstable per flush. Pebble splits a flush's output to keep each
	// L0 sstable near TargetFileSizes[0] (2 MiB by default), counting the
	// blob bytes it references, and gives every piece its own blob file:
	// with 1 MiB slices one flush wrote 30 to 90 sstable and blob file
	// pairs, each synced, and L0 filled with files for compactions to
	// merge. Twice the memtable keeps a flush in one piece (the sizes of
	// lower levels double from it). BenchmarkFill2GiB, one run each:
	// 630 and 648 MB/s written (16 fills, random order) against 469 and
	// 424, and no compaction debt left (0.20 bytes per byte put before).
	po.TargetFileSizes[0] = 2 * int64(po.MemTableSize)

	// Value separation: values of MinimumSize bytes or more go to blob files
	// when a memtable is flushed, and compactions then move only the small
	// key+handle entries in sstables; a slice is written once, by the flush,
	// and again only when a blob file is rewritten. Write amplification
	// (bytes written to any file / payload bytes put, BenchmarkFill2GiB) for
	// 1 MiB slices of many objects written in random order, 2 GiB: 1.00 with
	// these settings, 3.89 without value separation (6.55 once fully
	// compacted); earlier, with 2 MiB L0 files, 1.68 with
	// MaxBlobReferenceDepth 10.
	//   - MinimumSize 8 KiB: every full slice (64 KiB+) is separated; metas
	//     (a few hundred bytes) and the odd short tail slice stay inline.
	//   - MaxBlobReferenceDepth 64: an sstable may reference up to 64
	//     overlapping blob files before a compaction rewrites its values into
	//     new ones. Slice keys start with a hash, so every flush's blob file
	//     spans the whole keyspace and depth grows by one per flush; at
	//     Pebble's usual 10 a random fill rewrote 0.7 bytes per byte put. The
	//     locality a low depth buys matters for scans, and slice reads are
	//     point gets that touch one blob file whatever the depth.
	//   - TargetGarbageRatio and RewriteMinimumAge (see garbageRatioNormal
	//     and blobRewriteMinAge above): a cache deletes constantly (replaced
	//     versions, purges, eviction), and the disk budget must hold, so
	//     dead bytes in blob files are given back early: once a fifth of
	//     them are dead (a twentieth while over budget), rewrite the files
	//     with the most garbage, if older than two seconds. Lower means less
	//     wasted disk and more rewriting.
	po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           8 << 10,
			MaxBlobReferenceDepth: 64,
			RewriteMinimumAge:     blobRewriteMinAge,
			TargetGarbageRatio:    c.garbageRatio(),
		}
	}
	if o.noValueSeparation {
		po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy { return pebble.ValueSeparationPolicy{} }
	}

	// No compression anywhere. Media and disk images do not compress, so
	// compressing blob values would burn CPU for nothing; keys are mostly
	// hash bytes and metas are a rounding error next to the slices, so
	// compressing sstables would save well under 0.1% of the disk. (Pebble
	// profiles are per level, not per block kind we could name without
	// reaching into internal packages.)
	po.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })

	// Bloom filters let a Get for an absent key (a Meta lookup of an object
	// never seen, a slice read that races a purge) skip sstables without
	// reading their index blocks. 10 bits per key: ~1% false positives.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return po
}

// pebbleLogger passes Pebble's errors to Options.Logger and drops its
// informational messages (file deletions, WAL recycling), which say nothing
// an operator can act on.
type pebbleLogger struct {
	logf func(format string, args ...any) // nil: silent
	c    *control                         // nil in tests of the logger alone
}

func (l pebbleLogger) Infof(format string, args ...any) {}

func (l pebbleLogger) Errorf(format string, args ...any) {
	if l.logf != nil {
		l.logf("segstore: pebble: "+format, args...)
	}
}

// Fatalf is called by Pebble when it cannot continue; it must not return.
//
// Most callers report a broken invariant (a bug): those panic. The exception
// is a failed MANIFEST write or sync after a flush or compaction
// (version_set.go: "any error ... is considered fatal"), which a full disk or
// a failing device can cause. Crashing the edge for that would turn a disk
// problem into an outage, so instead the store is marked failed (writes are
// refused, reads go on: see health.go) and the calling goroutine, always
// one of Pebble's background goroutines or the one Open starts for
// pebble.Open, ends with runtime.Goexit, which runs its deferred unlocks.
// Pebble makes no further progress on that job; a restart recovers from the
// MANIFEST as after a crash.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.Errorf("%s", msg)
	if l.c != nil && (isManifestIOError(msg) || l.c.fatalError() != nil) {
		// After a first fatal I/O error, one of Pebble's jobs was abandoned
		// mid-way, so later fatal calls (another job meeting the state it
		// left) are consequences of it, not new bugs: they end their
		// goroutine too rather than crash a store that still serves reads.
		var cause error // the I/O error, for errors.Is(err, syscall.ENOSPC)
		for _, a := range args {
			if e, ok := a.(error); ok {
				cause = e
				break
			}
		}
		l.c.setFatal(&fatalIOError{msg: "pebble: " + msg, err: cause})
		runtime.Goexit()
	}
	panic("segstore: pebble: " + msg)
}

// fatalIOError is a fatal Pebble I/O error (a failed MANIFEST write or
// sync), with the error that caused it.
type fatalIOError struct {
	msg string
	err error // nil if the message carried none
}

func (e *fatalIOError) Error() string { return e.msg }
func (e *fatalIOError) Unwrap() error { return e.err }

// isManifestIOError reports whether a Fatalf message is one of Pebble's
// MANIFEST I/O failures (version_set.go), rather than a broken invariant.
func isManifestIOError(msg string) bool {
	for _, p := range []string{
		"MANIFEST create failed", "MANIFEST next record write failed",
		"MANIFEST write failed", "MANIFEST flush failed", "MANIFEST sync failed",
		"MANIFEST set current failed",
	} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// diskUsage is m.DiskSpaceUsage() corrected for pebble#5493 (fixed after
// v2.1.7): Open does not count the blob files already on disk in
// BlobFiles.Local.LiveSize, so DiskSpaceUsage leaves them out until they are
// deleted, and then subtracts them (an unsigned wrap-around). BlobFiles.LiveSize
// is computed from the current version and is right; every file is local
// here. The unsigned arithmetic undoes the wrap-around.
func diskUsage(m *pebble.Metrics) uint64 {
	return m.DiskSpaceUsage() - m.BlobFiles.Local.LiveSize + m.BlobFiles.LiveSize
}
