package segstore

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Write health.
//
// With the WAL disabled a commit does no I/O: a batch goes to the memtable,
// and the disk is written by flushes and compactions in the background. So a
// full or failing disk shows up there, never as an error from Commit, and
// Pebble reacts in one of three ways (read in pebble v2.1 compaction.go,
// version_set.go, db.go):
//
//   - A flush that cannot write its sstable or blob file fails, reports
//     EventListener.FlushEnd with the error and BackgroundError, and is
//     retried at once, in a loop, until it succeeds. Nothing is lost (the
//     memtable stays readable), but memtables queue up behind it, and once
//     MemTableStopWritesThreshold of them are queued every Commit blocks.
//   - Pebble stalls writes (WriteStallBegin/End) when memtables or L0 files
//     pile up faster than flushes and compactions drain them.
//   - A failed MANIFEST write or sync, after a flush or compaction has
//     written its files, is fatal: Pebble calls Logger.Fatalf.
//
// The store turns all three into refused writes rather than blocked or
// crashed ones: from the first failed flush until the next successful one,
// while Pebble stalls, and for good after a fatal error, WriteSlice and
// PutMeta (and purges and evictions) return an error wrapping ErrWriteFailed
// at once, and Stats counts them in WriteErrors. The edge logs the error and
// serves from the origin without caching. Reads are unaffected: the
// memtables and files Pebble already has stay readable. Only a fatal error
// needs a restart (Close then skips Pebble's own Close, which would wait for
// the job that failed); Open recovers from the MANIFEST as after a crash.

// ErrWriteFailed: the store cannot write now: the disk is full or failing,
// Pebble is stalling writes, or (WriteSlice) the store is full because fills
// outran eviction. Nothing was written, except by purges, which then hold
// in memory and also wrap ErrPurgePending. Reads still work. The error says
// why, and whether writes will resume by themselves.
var ErrWriteFailed = errors.New("segstore: cannot write")

// control is the store's side of Pebble's callbacks: the event listener and
// logger report into it, and the value-separation policy reads from it.
type control struct {
	logf func(format string, args ...any) // never nil

	mu       sync.Mutex    // protects flushErr, fatalErr, stalled and changed
	flushErr error         // why the last flush failed; nil once a flush succeeds
	fatalErr error         // a fatal Pebble I/O error; permanent
	stalled  string        // why Pebble is stalling writes (WriteStallBegin to WriteStallEnd), or ""
	changed  chan struct{} // closed, and replaced, whenever the three above change

	blocked atomic.Bool   // flushErr != nil || fatalErr != nil || stalled, for a lock-free check
	fatal   chan struct{} // closed when fatalErr is set

	flushFailures atomic.Int64 // consecutive failed flushes
	lastLog       atomic.Int64 // when (UnixNano) a background error was last logged
	unlogged      atomic.Int64 // background errors not logged since then

	// For the estimate of disk usage between samples (evict.go, overBudget):
	// bytes committed to memtables and not yet flushed (the store adds,
	// FlushEnd subtracts what it flushed), and bytes flushed since the last
	// sample.
	unflushed    atomic.Int64
	flushedSince atomic.Int64
}

func newControl(logf func(string, ...any)) *control {
	c := &control{logf: logf, changed: make(chan struct{}), fatal: make(chan struct{})}
	return c
}

// writeErr returns nil if the store may write now, or an error wrapping
// ErrWriteFailed that says why not.
func (c *control) writeErr() error {
	if !c.blocked.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.fatalErr != nil:
		return fmt.Errorf("%w: fatal disk error, the store is read-only until sliceedge restarts: %w", ErrWriteFailed, c.fatalErr)
	case c.flushErr != nil:
		return fmt.Errorf("%w: flushes are failing (disk full or failing?); writes resume when one succeeds: %w", ErrWriteFailed, c.flushErr)
	case c.stalled != "":
		return fmt.Errorf("%w: Pebble is stalling writes until flushes and compactions catch up (%s)", ErrWriteFailed, c.stalled)
	}
	return nil
}

// onlyStalled reports whether writes are blocked by a stall alone, which
// ends by itself.
func (c *control) onlyStalled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stalled != "" && c.flushErr == nil && c.fatalErr == nil
}

// flushFailing reports whether flushes are failing now (or Pebble hit a
// fatal error): Pebble's DB.mu may then be held for long, so Stats does not
// ask for Metrics.
func (c *control) flushFailing() bool {
	if !c.blocked.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushErr != nil || c.fatalErr != nil
}

// fatalError returns the fatal error, if there was one.
func (c *control) fatalError() error {
	if !c.blocked.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatalErr
}

// changes returns a channel closed at the next change of write health.
func (c *control) changes() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// update changes the health under c.mu and wakes whoever waits on changes.
func (c *control) update(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f()
	c.blocked.Store(c.flushErr != nil || c.fatalErr != nil || c.stalled != "")
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *control) setFatal(err error) {
	first := false
	c.update(func() {
		if c.fatalErr == nil {
			c.fatalErr, first = err, true
		}
	})
	if first {
		c.logf("segstore: %v: the store now refuses writes; restart sliceedge to recover", err)
		close(c.fatal)
	}
}

// flushBackoff is how long a failed flush waits before Pebble retries it:
// 10 ms, doubling with each consecutive failure, at most half a second.
func flushBackoff(failures int64) time.Duration {
	if failures > 6 {
		return 500 * time.Millisecond
	}
	return min(10*time.Millisecond<<(failures-1), 500*time.Millisecond)
}

func (c *control) eventListener() *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: c.backgroundError,
		FlushEnd:        c.flushEnd,
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) { c.update(func() { c.stalled = info.Reason }) },
		WriteStallEnd:   func() { c.update(func() { c.stalled = "" }) },
	}
}

func (c *control) flushEnd(info pebble.FlushInfo) {
	// A flush with nothing to write reports errEmptyTable, an unexported
	// sentinel, and has succeeded.
	if info.Err == nil || (len(info.Output) == 0 && info.Err.Error() == "pebble: empty table") {
		n := int64(info.InputBytes)
		c.flushedSince.Add(n)
		for u := c.unflushed.Load(); !c.unflushed.CompareAndSwap(u, max(u-n, 0)); u = c.unflushed.Load() {
		}
		if n := c.flushFailures.Swap(0); n > 0 {
			c.update(func() { c.flushErr = nil })
			c.logf("segstore: flushes work again after %d failures; writes resume", n)
		}
		return
	}
	n := c.flushFailures.Add(1)
	if n == 1 {
		c.update(func() { c.flushErr = info.Err })
	}
	// Pebble retries a failed flush immediately, in a loop (compaction.go,
	// DB.flush: "TODO(peter): count consecutive flush errors and backoff").
	// This callback runs on the flush goroutine, so sleeping here is the
	// backoff. It holds Pebble's DB.mu meanwhile, which delays only commits
	// (refused by the store while flushes fail) and Metrics (which Stats and
	// the evictor skip meanwhile); reads do not take it.
	time.Sleep(flushBackoff(n))
}

// backgroundError logs Pebble's background errors (failed flushes and
// compactions), at most one every 10 s: a failing flush is retried many
// times a second.
func (c *control) backgroundError(err error) {
	now := time.Now().UnixNano()
	last := c.lastLog.Load()
	if now-last < int64(10*time.Second) || !c.lastLog.CompareAndSwap(last, now) {
		c.unlogged.Add(1)
		return
	}
	if n := c.unlogged.Swap(0); n > 0 {
		c.logf("segstore: pebble background error (and %d more since the last one logged): %v", n, err)
		return
	}
	c.logf("segstore: pebble background error: %v", err)
}
