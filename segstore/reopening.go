package segstore

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sliceedge/sliceedge/slicer"
)

// DefaultReopenInterval is Reopening.Retry when it is 0.
const DefaultReopenInterval = 30 * time.Second

// lockedRetry is how often a store locked by another process is tried
// again with WaitLocked: the process that held it is about to exit.
const lockedRetry = 200 * time.Millisecond

// lockedWarnEvery is how often the wait for a locked store is logged.
const lockedWarnEvery = 30 * time.Second

// ErrLocked is the error (wrapped) of Open on a store another process has
// open.
var ErrLocked = errors.New("store locked")

// Reopening is a store that opens in the background when it cannot open at
// once because of the state of its disk: after a SIGTERM on a full disk,
// Pebble's Open fails (it must write a MANIFEST), and on a read-only or
// unwritable directory it cannot take its lock. Exiting then would be a
// restart loop under systemd for a cache, whose node can serve everything
// from the origin meanwhile. So, until the store opens, Reopening answers
// as an empty store that cannot write: Meta says ErrNotFound, Has is false,
// reads say ErrNotFound, writes fail with an error wrapping ErrWriteFailed
// that says the store is not open and why, and purges are recorded (they
// return ErrPurgePending) and applied to the store as soon as it opens,
// before anything reads it, so that nothing purged comes back. It retries
// Open every Retry, warning at every failed attempt.
//
// A store that cannot be opened for another reason (see Open: no
// directory, bad watermarks, a lock held by another process, a format
// written by another version, damage) is an error of Open, for the
// operator to fix.
//
// Set the fields, then call Open once. Once the store is open every method
// is the Store's, behind one atomic load.
type Reopening struct {
	Options Options
	// Retry is the interval between attempts to open; 0 means
	// DefaultReopenInterval.
	Retry time.Duration
	// Warn receives the warning logged at every failed attempt; nil means
	// Options.Logger.
	Warn func(format string, args ...any)
	// WaitLocked makes a store locked by another process (ErrLocked) wait
	// like a full disk does, tried again every lockedRetry: the new
	// process of a zero-downtime upgrade serves from the origin while
	// the old one finishes its responses and closes the store.
	WaitLocked bool

	st atomic.Pointer[Store] // nil until open

	// mu protects the fields below, and is held while recorded purges are
	// applied to a store just opened and it is swapped in: a purge either
	// is recorded before that or finds the store open.
	mu      sync.Mutex
	why     error         // why the last attempt to open failed
	purges  []recorded    // purges made while not open, in order
	closed  bool          // Close was called
	stop    chan struct{} // closed by Close
	stopped chan struct{} // closed when the retrying goroutine ends; nil if none
	wedged  bool          // an attempt met a fatal MANIFEST error: the directory stays locked in this process
	// lockedSince is when the store was first found locked (WaitLocked),
	// and lockedLogged when that was last logged; zero when not locked.
	lockedSince, lockedLogged time.Time
}

// recorded is a purge made while the store was not open.
type recorded struct {
	key    string
	prefix bool // key is a prefix
	all    bool
}

// Open tries to open the store. It returns nil if the store opened, or if
// it could not because of the state of its disk (an error wrapping
// ErrWriteFailed): then it warns, and goes on trying in the background.
// It returns Open's error otherwise.
func (r *Reopening) Open() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil || r.closed {
		return errors.New("segstore: Reopening.Open called twice, or after Close")
	}
	r.stop = make(chan struct{})
	st, err := Open(r.Options)
	if err == nil {
		r.st.Store(st)
		return nil
	}
	if !errors.Is(err, ErrWriteFailed) && !(r.WaitLocked && errors.Is(err, ErrLocked)) {
		return err
	}
	r.failed(err)
	r.stopped = make(chan struct{})
	go r.retry()
	return nil
}

// failed records and warns about a failed attempt. The caller holds mu.
func (r *Reopening) failed(err error) {
	if errors.Is(err, ErrLocked) {
		r.why = err
		now := time.Now()
		if r.lockedSince.IsZero() {
			r.lockedSince = now
		}
		switch {
		case r.lockedLogged.IsZero():
			r.lockedLogged = now
			r.warnf("segstore: the store in %s is open in another process (the one this process replaces, finishing its responses?); "+
				"requests are served from the origin, uncached, until it closes, and the store opens as soon as it is free", r.Options.Dir)
		case now.Sub(r.lockedLogged) >= lockedWarnEvery:
			r.lockedLogged = now
			r.warnf("segstore: the store in %s is still open in another process (the one this process replaces, finishing its responses?) after %v; "+
				"until it closes, requests are served from the origin, uncached. sliceedge opens it as soon as it is free (if no old process runs, another one uses the directory: stop it)",
				r.Options.Dir, now.Sub(r.lockedSince).Round(time.Second))
		}
		return
	}
	r.lockedSince = time.Time{}
	var fatal *fatalIOError
	if errors.As(err, &fatal) {
		r.wedged = true
	}
	if r.wedged {
		err = fmt.Errorf("%w (an earlier attempt met a fatal MANIFEST write error, which leaves the directory locked in this process: restart sliceedge once the disk has room)", err)
	}
	r.why = err
	r.warn(err)
}

// next is the wait before the next attempt: lockedRetry while the store
// is locked by another process, else every().
func (r *Reopening) next() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if errors.Is(r.why, ErrLocked) {
		return min(lockedRetry, r.every())
	}
	return r.every()
}

func (r *Reopening) every() time.Duration {
	if r.Retry > 0 {
		return r.Retry
	}
	return DefaultReopenInterval
}

func (r *Reopening) warnf(format string, args ...any) {
	warn := r.Warn
	if warn == nil {
		warn = r.Options.Logger
	}
	if warn != nil {
		warn(format, args...)
	}
}

func (r *Reopening) warn(err error) {
	r.warnf("segstore: WARNING: the store in %s cannot be opened: %v. Until it opens, every request is served from the origin and nothing is cached. "+
		"Free space on its disk, or make the directory writable by this process; sliceedge retries every %v and caches again once it opens (no restart needed).",
		r.Options.Dir, err, r.every())
}

// retry tries to open the store every Retry until it opens or Close is
// called.
func (r *Reopening) retry() {
	defer close(r.stopped)
	t := time.NewTimer(r.next())
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		t.Reset(r.next())
		st, err := Open(r.Options)
		if err != nil {
			r.mu.Lock()
			r.failed(err)
			r.mu.Unlock()
			continue
		}
		if r.swapIn(st) {
			return
		}
	}
}

// swapIn applies the recorded purges to st and makes it the store, unless
// Close was called meanwhile (then it closes st). It reports whether the
// retries are over.
func (r *Reopening) swapIn(st *Store) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		_ = st.Close()
		return true
	}
	for _, p := range r.purges {
		var err error
		switch {
		case p.all:
			_, err = st.PurgeAll()
		case p.prefix:
			_, err = st.PurgePrefix(p.key)
		default:
			err = st.Purge(p.key)
		}
		// A purge the store cannot write holds in memory (ErrPurgePending)
		// and is the store's to retry; any other failure leaves the objects
		// there, which must not be served.
		if err != nil && !errors.Is(err, ErrPurgePending) {
			st.logf("segstore: store %s opened, but a purge made while it was not open failed: %v; retrying to open", r.Options.Dir, err)
			_ = st.Close()
			return false
		}
	}
	st.logf("segstore: store %s is open: caching again (%d purges made meanwhile applied)", r.Options.Dir, len(r.purges))
	r.purges, r.why = nil, nil
	r.st.Store(st)
	return true
}

// notOpen returns why the store is not open.
func (r *Reopening) notOpen() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	return fmt.Errorf("the store is not open (%v); the edge serves from the origin, uncached, until it opens", r.why)
}

// Err returns why the store is not open, or nil once it is.
func (r *Reopening) Err() error {
	if r.st.Load() != nil {
		return nil
	}
	return r.notOpen()
}

// Close stops the attempts to open and closes the store, if open.
func (r *Reopening) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closed = true
	if r.stop != nil {
		close(r.stop)
	}
	stopped := r.stopped
	r.mu.Unlock()
	if stopped != nil {
		<-stopped
	}
	if st := r.st.Load(); st != nil {
		return st.Close()
	}
	return nil
}

// Meta is Store.Meta, or ErrNotFound while the store is not open.
func (r *Reopening) Meta(key string) (*Meta, error) {
	if st := r.st.Load(); st != nil {
		return st.Meta(key)
	}
	return nil, fmt.Errorf("segstore: meta %q: %w: %w", key, ErrNotFound, r.notOpen())
}

// PutMeta is Store.PutMeta, or an error wrapping ErrWriteFailed while the
// store is not open.
func (r *Reopening) PutMeta(m *Meta) error {
	if st := r.st.Load(); st != nil {
		return st.PutMeta(m)
	}
	return fmt.Errorf("segstore: put meta %q: %w: %w", m.Key, ErrWriteFailed, r.notOpen())
}

// Has is Store.Has, or false while the store is not open.
func (r *Reopening) Has(m *Meta, i int64) bool {
	if st := r.st.Load(); st != nil {
		return st.Has(m, i)
	}
	return false
}

// StoredRuns is Store.StoredRuns, or nothing while the store is not open.
func (r *Reopening) StoredRuns(m *Meta) (int64, []slicer.Run) {
	if st := r.st.Load(); st != nil {
		return st.StoredRuns(m)
	}
	return 0, nil
}

// CountStored is Store.CountStored, or 0 while the store is not open.
func (r *Reopening) CountStored(m *Meta, first, last int64) int64 {
	if st := r.st.Load(); st != nil {
		return st.CountStored(m, first, last)
	}
	return 0
}

// ReadSlice is Store.ReadSlice, or ErrNotFound while the store is not open.
func (r *Reopening) ReadSlice(m *Meta, i int64, dst []byte) ([]byte, error) {
	if st := r.st.Load(); st != nil {
		return st.ReadSlice(m, i, dst)
	}
	return nil, fmt.Errorf("segstore: read slice %d of %q: %w: %w", i, m.Key, ErrNotFound, r.notOpen())
}

// ReadSliceRange is Store.ReadSliceRange, or ErrNotFound while the store is
// not open.
func (r *Reopening) ReadSliceRange(m *Meta, i, off, n int64, dst []byte) ([]byte, error) {
	if st := r.st.Load(); st != nil {
		return st.ReadSliceRange(m, i, off, n, dst)
	}
	return nil, fmt.Errorf("segstore: read slice range %d of %q: %w: %w", i, m.Key, ErrNotFound, r.notOpen())
}

// OpenSlice is Store.OpenSlice, or ErrNotFound while the store is not
// open.
func (r *Reopening) OpenSlice(m *Meta, i int64) (*os.File, error) {
	if st := r.st.Load(); st != nil {
		return st.OpenSlice(m, i)
	}
	return nil, fmt.Errorf("segstore: open slice %d of %q: %w: %w", i, m.Key, ErrNotFound, r.notOpen())
}

// WriteSlice is Store.WriteSlice, or an error wrapping ErrWriteFailed while
// the store is not open.
func (r *Reopening) WriteSlice(m *Meta, i int64, data []byte) error {
	if st := r.st.Load(); st != nil {
		return st.WriteSlice(m, i, data)
	}
	return fmt.Errorf("segstore: write slice %d of %q: %w: %w", i, m.Key, ErrWriteFailed, r.notOpen())
}

// record records a purge made while the store is not open, and returns an
// error wrapping ErrPurgePending; or, if the store is open after all, the
// store, for the caller to purge.
func (r *Reopening) record(p recorded) (*Store, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.st.Load(); st != nil {
		return st, nil
	}
	if r.closed {
		return nil, ErrClosed
	}
	if p.all {
		r.purges = r.purges[:0] // everything goes anyway
	}
	r.purges = append(r.purges, p)
	return nil, fmt.Errorf("%w: %w: %v; the purge is applied as soon as the store opens", ErrPurgePending, ErrWriteFailed, r.why)
}

// Purge is Store.Purge; while the store is not open, the purge is recorded,
// applied when it opens, and the error wraps ErrPurgePending.
func (r *Reopening) Purge(key string) error {
	st := r.st.Load()
	if st == nil {
		var err error
		if st, err = r.record(recorded{key: key}); err != nil {
			return fmt.Errorf("segstore: purge %q: %w", key, err)
		}
	}
	return st.Purge(key)
}

// PurgePrefix is Store.PurgePrefix; while the store is not open, see Purge
// (the count is then 0: the store cannot say what it holds).
func (r *Reopening) PurgePrefix(prefix string) (int, error) {
	st := r.st.Load()
	if st == nil {
		var err error
		if st, err = r.record(recorded{key: prefix, prefix: true}); err != nil {
			return 0, fmt.Errorf("segstore: purge prefix %q: %w", prefix, err)
		}
	}
	return st.PurgePrefix(prefix)
}

// PurgeAll is Store.PurgeAll; while the store is not open, see PurgePrefix.
func (r *Reopening) PurgeAll() (int, error) {
	st := r.st.Load()
	if st == nil {
		var err error
		if st, err = r.record(recorded{all: true}); err != nil {
			return 0, fmt.Errorf("segstore: purge all: %w", err)
		}
	}
	return st.PurgeAll()
}

// ScanMeta is Store.ScanMeta; while the store is not open there is nothing
// to scan.
func (r *Reopening) ScanMeta(prefix string, fn func(m *Meta) bool) error {
	if st := r.st.Load(); st != nil {
		return st.ScanMeta(prefix, fn)
	}
	return nil
}

// Stats is Store.Stats; while the store is not open, it is empty but for
// MaxBytes, PendingPurges (the purges recorded) and NotOpen.
func (r *Reopening) Stats() Stats {
	if st := r.st.Load(); st != nil {
		return st.Stats()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.st.Load(); st != nil { // opened meanwhile
		return st.Stats()
	}
	why := "Open not called"
	switch {
	case r.closed:
		why = "closed"
	case r.why != nil:
		why = r.why.Error()
	}
	return Stats{MaxBytes: r.Options.MaxBytes, PendingPurges: int64(len(r.purges)), NotOpen: why}
}
