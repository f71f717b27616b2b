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
// upgrade touches one place. Pebble holds the index: metas, slice entries
// (a key and a few dozen bytes of checksums per slice), nothing of the
// slices' bytes, which are in files (files.go).

// DefaultCacheBytes is the block cache size when Options.CacheBytes is 0:
// the metas and entries of a few hundred thousand slices, which is what a
// lookup of an object or a slice's first send reads. The page cache, not
// this, keeps hot slice bytes in memory.
const DefaultCacheBytes = 64 << 20

// writeOpts: every write is NoSync. With the WAL disabled there is nothing to
// sync at commit; durability comes from flushes (see DisableWAL below).
var writeOpts = pebble.NoSync

// memTableStopWrites is Options.MemTableStopWritesThreshold: memtables
// that may queue for flushing before writes stall.
const memTableStopWrites = 4

// memTableSize is Options.MemTableSize for a store with the given budget
// and block cache size: 1/8 of the cache (memtables count against it, and
// up to five may live at once), at least 2 MiB and at most 64 MiB, and at
// most 1/32 of the budget (the disk needs a memtable of headroom). An
// entry is about 100 bytes, so the default 8 MiB holds tens of thousands.
func memTableSize(budget, cache int64) uint64 {
	size := int64(64 << 20)
	if budget > 0 {
		size = min(size, max(budget/32, 2<<20))
	}
	if cache <= 0 {
		cache = DefaultCacheBytes
	}
	return uint64(min(size, max(cache/8, 2<<20)))
}

// pebbleOptions returns the Pebble options for a store; c receives Pebble's
// events.
func pebbleOptions(o Options, c *control) *pebble.Options {
	cacheBytes := o.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	po := &pebble.Options{
		// The newest non-experimental format. A new directory is created
		// at it, an old one is ratcheted up at Open.
		FormatMajorVersion: pebble.FormatNewest,

		// No write-ahead log. Cache contents can be refetched, and every
		// slice entry is written in one batch with the meta that names it,
		// so a crash loses only whole recent batches (everything since the
		// last memtable flush): what survives is a prefix of the store's
		// history, in which every entry has its meta. Open drops entries
		// whose meta is missing or names another version, a slice's file
		// is verified before its first send, Close flushes, and Purge
		// flushes before returning so a purge is never undone by a crash.
		DisableWAL: true,

		MemTableSize:                memTableSize(o.MaxBytes, cacheBytes),
		MemTableStopWritesThreshold: memTableStopWrites,

		// The block cache holds sstable blocks: metas, slice entries and
		// bloom filters. Every memtable reserves its size in it while it
		// lives, so CacheBytes bounds Pebble's memory for cached blocks and
		// memtables together.
		CacheSize: cacheBytes,

		// Range deletions (version changes, purges) free disk only once
		// flushed and compacted; flush a memtable holding one within 10 s
		// rather than waiting for it to fill.
		FlushDelayDeleteRange: 10 * time.Second,

		// One compaction normally, up to four when L0 or compaction debt
		// builds up; they move keys and checksums, which are small.
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

	// One sstable per flush: twice the memtable keeps a flush in one piece
	// (the sizes of lower levels double from it).
	po.TargetFileSizes[0] = 2 * int64(po.MemTableSize)

	// No compression: keys are mostly hash bytes and entries checksums,
	// which do not compress, and metas are few.
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

// diskUsage is Pebble's disk usage. (Pebble v2.1.7's DiskSpaceUsage leaves
// out blob files present at Open, cockroachdb/pebble#5493: a store of an
// earlier format holds some until compactions drop the slices Open
// deleted, so they are added back.)
func diskUsage(m *pebble.Metrics) uint64 {
	return m.DiskSpaceUsage() - m.BlobFiles.Local.LiveSize + m.BlobFiles.LiveSize
}
