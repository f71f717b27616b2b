package segstore

import (
	"fmt"
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

func pebbleOptions(o Options) *pebble.Options {
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
		// memtables may queue while a flush runs before writes stall
		// (256 MiB of RAM at worst).
		MemTableSize:                64 << 20,
		MemTableStopWritesThreshold: 4,

		// The block cache holds sstable blocks (keys, blob handles, metas,
		// bloom filters: small and read on every lookup) and blob value
		// blocks (the slices, one per block). A ReadSlice that hits it runs
		// at ~8-10 GB/s here; one that misses reads from the page cache at
		// ~2-3 GB/s (pread, Pebble's block checksum, a fresh 1 MiB
		// allocation, our own checksum and copy) or from disk. 256 MiB by
		// default holds the index and a few hundred hot slices; raise
		// Options.CacheBytes to keep a bigger hot set. Pebble caches no
		// block larger than a cache shard (size / (4 x GOMAXPROCS), or size/4
		// when that would be under 4 MiB): Pebble's 8 MiB default would hold
		// a handful of slices at best.
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
		// carries errors only.
		Logger: pebbleLogger{logf: o.Logger},
	}

	// Value separation: values of MinimumSize bytes or more go to blob files
	// when a memtable is flushed, and compactions then move only the small
	// key+handle entries in sstables; a slice is written once, by the flush,
	// and again only when a blob file is rewritten. Write amplification
	// (bytes written to any file / payload bytes put, BenchmarkFill2GiB) for
	// 1 MiB slices of many objects written in random order: 2 GiB: 1.00 with
	// these settings, 1.68 with MaxBlobReferenceDepth 10, 3.86 without value
	// separation (4.71 once fully compacted); 8 GiB: 1.00 against 5.16 (6.22).
	//   - MinimumSize 8 KiB: every full slice (64 KiB+) is separated; metas
	//     (a few hundred bytes) and the odd short tail slice stay inline.
	//   - MaxBlobReferenceDepth 64: an sstable may reference up to 64
	//     overlapping blob files before a compaction rewrites its values into
	//     new ones. Slice keys start with a hash, so every flush's blob file
	//     spans the whole keyspace and depth grows by one per flush; at
	//     Pebble's usual 10 a random fill rewrote 0.7 bytes per byte put. The
	//     locality a low depth buys matters for scans, and slice reads are
	//     point gets that touch one blob file whatever the depth.
	//   - TargetGarbageRatio 0.25, RewriteMinimumAge 5 min: a cache deletes
	//     constantly (replaced versions, purges, eviction); once a quarter of
	//     the bytes in blob files are dead, rewrite files older than five
	//     minutes to give the space back. Lower means less wasted disk and
	//     more rewriting.
	po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           8 << 10,
			MaxBlobReferenceDepth: 64,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    0.25,
		}
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
}

func (l pebbleLogger) Infof(format string, args ...any) {}

func (l pebbleLogger) Errorf(format string, args ...any) {
	if l.logf != nil {
		l.logf("segstore: pebble: "+format, args...)
	}
}

// Fatalf is called by Pebble when it cannot continue (for example a failed
// commit); it must not return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.Errorf(format, args...)
	panic(fmt.Sprintf("segstore: pebble: "+format, args...))
}
