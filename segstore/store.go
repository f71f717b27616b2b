package segstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sliceedge/sliceedge/internal/invariants"
	"github.com/sliceedge/sliceedge/slicer"
)

var (
	// ErrNotFound: no such object, or no such slice of it.
	ErrNotFound = errors.New("not found")
	// ErrOutOfRange: ReadSliceRange asked for bytes outside the slice, or
	// for none.
	ErrOutOfRange = errors.New("byte range out of bounds")
	// ErrCorrupt: the slice failed its checksum and has been deleted
	// (unless the error also says deleting it failed); refetch it.
	ErrCorrupt = errors.New("checksum mismatch")
	// ErrStale: WriteSlice for a version that is no longer the object's
	// current one (purged or replaced); nothing was written.
	ErrStale = errors.New("stale version")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("segstore: closed")
)

// Options configure Open. Only Dir is required.
type Options struct {
	Dir string // Pebble directory; created if missing
	// MaxBytes is the disk budget: slices are evicted so that Pebble's disk
	// usage stays within it (see the package doc). 0 means no budget and no
	// eviction. Below a few hundred MiB, Pebble's fixed costs (a memtable
	// of headroom, at least 4 MiB) take a noticeable share of it.
	MaxBytes int64
	// HighWater and LowWater are fractions of MaxBytes: when the slices
	// stored plus Pebble's own share of the disk (sstables, a memtable of
	// headroom) exceed HighWater×MaxBytes, slices are evicted until they
	// are under LowWater×MaxBytes. 0 means DefaultHighWater (0.95) and
	// DefaultLowWater (0.90).
	HighWater, LowWater float64
	// CacheBytes is the size of Pebble's block cache, which also accounts
	// for its memtables (sized to take at most 5/8 of it); 0 means
	// DefaultCacheBytes. See pebble.go.
	CacheBytes int64
	// Logger receives notable events (orphans removed at Open, corrupt
	// records dropped, Pebble errors); nil means silent.
	Logger func(format string, args ...any)
	// FS is the filesystem the store lives on; nil means the operating
	// system's. Tests set it to inject disk faults (Pebble's errorfs). Slice
	// files can be sent (OpenSlice) only from the operating system's
	// filesystem, wrapped or not.
	FS vfs.FS
	// ScrubRate is how many bytes of slice files per second the scrubber
	// reads back and verifies against their checksums (scrub.go); 0 means
	// DefaultScrubRate, a negative value turns the scrubber off.
	ScrubRate int64
	// FlushInterval bounds what a crash of the process loses of the
	// index: the store has no write-ahead log, so the entries written
	// since the memtable's last flush are lost with it (their slices are
	// fetched again). A memtable that took writes is flushed at least this
	// often. 0 means DefaultFlushInterval, a negative value flushes only
	// when the memtable fills.
	FlushInterval time.Duration
}

// DefaultFlushInterval is Options.FlushInterval when not set: a crash
// loses at most about the last 30 seconds of fills (and at most one
// memtable), not everything since the memtable last filled.
const DefaultFlushInterval = 30 * time.Second

// keyStripes is the number of locks serialising writers per key.
const keyStripes = 256

// maxCachedMetas bounds the decoded-meta cache; beyond it an arbitrary entry
// is dropped (and read back from Pebble when next needed).
const maxCachedMetas = 1 << 16

// Store is the slice store. Its methods are safe for concurrent use,
// Close included: a call that is using Pebble when Close begins finishes
// first, and later calls return ErrClosed.
type Store struct {
	db       *pebble.DB
	files    *sliceFiles // the slice bytes (files.go)
	dir      string
	maxBytes int64
	logf     func(format string, args ...any) // never nil
	ctl      *control                         // write health, from Pebble's events (health.go)
	ev       *evictor                         // nil without a budget
	metaCap  int64                            // metas beyond which emptied objects lose theirs (evict.go)

	// ctx is cancelled by Close and by a fatal Pebble error, to abandon
	// waits for flushes and compactions.
	ctx    context.Context
	cancel context.CancelFunc

	closed  atomic.Bool
	dirty   atomic.Bool    // a commit since the last periodic flush (flushEvery)
	flusher sync.WaitGroup // the periodic flush; Close waits for it
	busy    atomic.Int64   // calls using Pebble now (enter/exit); Close waits for none
	idle    chan struct{}  // signalled when busy drops to 0 after Close began

	// keyMu[stripe(hash(key))] serialises every change to one key's meta,
	// slices and index entry: PutMeta, WriteSlice, Purge, evicting, dropping
	// a missing or corrupt slice, and filling the meta cache from Pebble (so
	// a fill racing a purge cannot cache what the purge removed). PurgeAll
	// takes them all. Readers (Meta on a cache hit, Has, StoredRuns,
	// CountStored, ReadSlice of a good slice, ScanMeta) never take it.
	keyMu [keyStripes]sync.Mutex

	metaMu sync.RWMutex          // protects metas
	metas  map[string]*metaEntry // decoded metas, a subset of those stored

	idx index // stored slices per object and the clock; lock-free reads, changes under keyMu

	pend pendingPurges // purges that hold in memory, awaiting their deletion on disk (pending.go)

	objects atomic.Int64 // metas stored
	slices  atomic.Int64 // slices stored (the sum of the index)
	bytes   atomic.Int64 // payload bytes of those slices

	evictions    atomic.Int64 // slices evicted since Open
	evictedBytes atomic.Int64 // their payload bytes
	writeErrors  atomic.Int64 // writes refused or failed for want of a working disk
	disk         atomic.Int64 // the last DiskSpaceUsage sampled (sampleDisk)

	scrub scrubState // the scrubber's counters (scrub.go)
}

// metaEntry is a cached meta with its encoded value, which WriteSlice writes
// back alongside each slice.
type metaEntry struct {
	meta *Meta
	raw  []byte
}

// Stats describe the store at one moment. Counters count since Open.
type Stats struct {
	Objects   int64 // metas stored (objects known, with or without slices)
	Slices    int64 // slices stored, complete and checksummed
	Bytes     int64 // bytes of those slices (not their files' blocks, entries or Pebble overhead)
	DiskBytes int64 // disk used: the slice files (their bytes and a block each) plus Pebble's files (Metrics().DiskSpaceUsage(); its last sample while flushes fail)
	MaxBytes  int64 // the configured budget (Options.MaxBytes)

	Evictions    int64 // slices evicted to keep within MaxBytes (not purges or version changes)
	EvictedBytes int64 // payload bytes of those slices
	// PendingPurges counts purges that hold in memory but are not on disk
	// yet, because the store could not write them; they are retried in the
	// background, and a restart before they land undoes them.
	PendingPurges int64
	// NotOpen says why the store is not open, for a Reopening that has not
	// opened it yet; "" once it is (and always for a Store).
	NotOpen string `json:",omitempty"`
	// WriteErrors counts writes (WriteSlice, PutMeta, purges, evictions)
	// that returned an error wrapping ErrWriteFailed: refused or failed
	// because the disk could not be written (full, failing, Pebble stalled)
	// or, for WriteSlice, because the store was full (writes outran
	// eviction). Not ErrStale, ErrClosed or invalid arguments.
	WriteErrors int64
	// Verified counts slice files read back whole and found to match
	// their checksums: before their first send in this process (OpenSlice)
	// or by the scrubber. Scrubbed counts the scrubber's share of them and
	// ScrubbedBytes their bytes.
	Verified, Scrubbed, ScrubbedBytes int64
	// Corrupt counts slices dropped because their file did not match
	// their checksums, or was missing or of the wrong size (by a read,
	// OpenSlice or the scrubber): the edge fetches them again.
	Corrupt int64
}

// Open opens the store in opts.Dir, creating it if needed. It rebuilds the
// in-memory index from the slice keys and deletes orphan slices: slices with
// no meta, or of a version other than their meta's.
//
// An error that comes from the state of the disk (full, read-only, not
// writable, failing: ENOSPC, EDQUOT, EROFS, EACCES, EPERM, EIO, or a fatal
// MANIFEST write) wraps ErrWriteFailed: the store may open once that
// changes, and Reopening retries it. Any other error (no directory given,
// bad watermarks, a store locked by another process, written by another
// version, damaged) does not: it needs an operator.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("segstore: open: no directory given (store.dir)")
	}
	high, low := opts.HighWater, opts.LowWater
	if high == 0 {
		high = DefaultHighWater
	}
	if low == 0 {
		low = DefaultLowWater
	}
	if !(0 < low && low < high && high <= 1) || opts.MaxBytes < 0 {
		return nil, fmt.Errorf("segstore: open %s: watermarks low %v, high %v, budget %d: want 0 < low < high <= 1 and a budget >= 0", opts.Dir, low, high, opts.MaxBytes)
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if err := makeDir(opts.FS, opts.Dir); err != nil {
		if diskState(err) {
			return nil, fmt.Errorf("segstore: open %s: cannot create the store directory: %w: %w", opts.Dir, ErrWriteFailed, err)
		}
		return nil, fmt.Errorf("segstore: open %s: cannot create the store directory; check the path and its permissions: %w", opts.Dir, err)
	}
	if err := checkRoom(opts.FS, opts.Dir); err != nil {
		return nil, fmt.Errorf("segstore: open %s: %w: %w", opts.Dir, ErrWriteFailed, err)
	}
	files := newSliceFiles(opts.FS, opts.Dir)
	if err := files.prepare(); err != nil {
		if diskState(err) {
			return nil, fmt.Errorf("segstore: open %s: %w: %w", opts.Dir, ErrWriteFailed, err)
		}
		return nil, fmt.Errorf("segstore: open %s: %w; check the directory's permissions", opts.Dir, err)
	}
	logf := opts.Logger
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ctl := newControl(logf)
	db, err := openPebble(opts.Dir, pebbleOptions(opts, ctl), ctl)
	if err != nil {
		switch {
		case isLockError(err):
			return nil, fmt.Errorf("segstore: open %s: %w: directory is locked by another sliceedge process? Stop it or give this one another store directory: %w", opts.Dir, ErrLocked, err)
		case diskState(err):
			return nil, fmt.Errorf("segstore: open %s: %w: %w", opts.Dir, ErrWriteFailed, err)
		}
		return nil, fmt.Errorf("segstore: open %s: %w (if the store is damaged, delete the directory: its contents are a cache and will be refetched)", opts.Dir, err)
	}
	s := &Store{
		db:       db,
		files:    files,
		dir:      opts.Dir,
		maxBytes: opts.MaxBytes,
		logf:     logf,
		ctl:      ctl,
		metaCap:  max(opts.MaxBytes/metaBytesPerObject, minMetaCap),
		metas:    make(map[string]*metaEntry),
		idle:     make(chan struct{}, 1),
	}
	s.pend.kick = make(chan struct{}, 1)
	s.idx.clock = opts.MaxBytes > 0
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go func() { // a fatal error abandons whatever waits for Pebble
		select {
		case <-ctl.fatal:
			s.cancel()
		case <-s.ctx.Done():
		}
	}()
	if err := s.checkFormat(); err != nil {
		s.cancel()
		_ = db.Close()
		if diskState(err) {
			return nil, fmt.Errorf("%w: %w", ErrWriteFailed, err)
		}
		return nil, err
	}
	if err := s.rebuild(); err != nil {
		s.cancel()
		_ = db.Close()
		if diskState(err) {
			err = fmt.Errorf("%w: %w", ErrWriteFailed, err)
		}
		return nil, fmt.Errorf("segstore: open %s: rebuild index: %w", opts.Dir, err)
	}
	s.sampleDisk()
	if opts.MaxBytes > 0 {
		s.ev = newEvictor(opts.MaxBytes, int64(memTableSize(opts.MaxBytes, opts.CacheBytes)), high, low)
		s.startEvictor()
	}
	s.startRetry(s.ctx)
	s.startScrub(s.ctx, opts.ScrubRate)
	s.flushEvery(s.ctx, cmp.Or(opts.FlushInterval, DefaultFlushInterval))
	return s, nil
}

// flushEvery flushes the memtable every interval when it took writes
// since the last time: with no write-ahead log, what a crash loses of the
// index is then at most interval's worth of writes. It stops with ctx.
func (s *Store) flushEvery(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	s.flusher.Add(1)
	go func() {
		defer s.flusher.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !s.dirty.Swap(false) {
				continue
			}
			if s.ctl.writeErr() != nil {
				s.dirty.Store(true) // the disk cannot take it now; next time
				continue
			}
			if _, err := s.db.AsyncFlush(); err != nil {
				s.dirty.Store(true)
				s.logf("segstore: periodic flush of the index: %v", err)
			}
		}
	}()
}

// openPebble runs pebble.Open on a goroutine of its own, so that a fatal
// error during Open (which ends the goroutine that meets it: see
// pebbleLogger.Fatalf) becomes an error here. Such an error (a failed
// MANIFEST write, on a full disk) may also come from a flush that Open
// starts and then waits for, forever: that Open never returns, and the
// directory stays locked in this process, so the store cannot open again
// before a restart. checkRoom keeps a full disk from getting there.
func openPebble(dir string, po *pebble.Options, ctl *control) (*pebble.DB, error) {
	type result struct {
		db  *pebble.DB
		err error
	}
	ch := make(chan result, 1)
	go func() {
		db, err := pebble.Open(dir, po)
		ch <- result{db, err}
	}()
	select {
	case r := <-ch:
		return r.db, r.err
	case <-ctl.fatal:
		return nil, ctl.fatalError()
	}
}

// makeDir creates dir and its missing parents, and syncs the parent of
// each directory it creates. Pebble does that only for a directory it
// creates itself, and Open creates the store's first (checkRoom needs it):
// unsynced, its entry, and with it everything flushed into it, could be
// lost to a crash soon after the store's first Open.
func makeDir(fsys vfs.FS, dir string) error {
	var parents []string // to sync: of each directory created, nearest first
	for p := dir; ; {
		_, err := fsys.Stat(p)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		parent := fsys.PathDir(p)
		parents = append(parents, parent)
		if parent == p {
			break
		}
		p = parent
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range parents {
		d, err := fsys.OpenDir(p)
		if err != nil {
			return err
		}
		err = d.Sync()
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
	}
	return nil
}

// minOpenRoom is the free space below which Open does not try: Pebble
// writes an OPTIONS file and a MANIFEST at every open, and a failed
// MANIFEST write is fatal and leaves the directory locked in this process
// (see openPebble), so that a Reopening could never open it.
const minOpenRoom = 4 << 20

// checkRoom returns an error wrapping ENOSPC if the filesystem holding dir
// has less than minOpenRoom free for this process (root may use the blocks
// reserved for it). It says nothing if it cannot tell.
func checkRoom(fs vfs.FS, dir string) error {
	du, err := fs.GetDiskUsage(dir)
	if err != nil || du.TotalBytes == 0 {
		return nil
	}
	free := du.AvailBytes
	if os.Geteuid() == 0 {
		free = du.TotalBytes - du.UsedBytes
	}
	if free < minOpenRoom {
		return fmt.Errorf("%d bytes free on its filesystem, under the %d needed to open it: %w", free, minOpenRoom, syscall.ENOSPC)
	}
	return nil
}

// isLockError reports whether Pebble could not lock the directory because
// another process (or this one) holds the lock. fcntl says so with EAGAIN
// or EACCES, as a bare errno; failing to open the LOCK file at all (a
// *fs.PathError) is the disk's state, not a lock.
func isLockError(err error) bool {
	if strings.Contains(err.Error(), "lock held by current process") {
		return true
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return false
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES)
}

// diskState reports whether err comes from the state of the disk: full,
// over quota, read-only, not writable by us, failing, or a fatal MANIFEST
// write (see pebbleLogger.Fatalf). Those may change without a new
// configuration.
func diskState(err error) bool {
	var fatal *fatalIOError
	if errors.As(err, &fatal) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.EIO} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// checkFormat refuses a directory written in a layout this code does not
// know, and marks a new one.
func (s *Store) checkFormat() error {
	v, closer, err := s.db.Get([]byte(formatKey))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := s.db.Set([]byte(formatKey), []byte(formatValue), writeOpts); err != nil {
			return fmt.Errorf("segstore: open %s: write format marker: %w", s.dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("segstore: open %s: read format marker: %w", s.dir, err)
	}
	got := string(v)
	if err := closer.Close(); err != nil {
		return fmt.Errorf("segstore: open %s: read format marker: %w", s.dir, err)
	}
	if got == formatValue {
		return nil
	}
	if !slices.Contains(formatsDropped, got) {
		return fmt.Errorf("segstore: open %s: store format %q is not %q: written by another sliceedge version; use that version or delete the directory", s.dir, got, formatValue)
	}
	// Slices kept in Pebble values by an earlier version: this version
	// keeps slice bytes in files and does not read them. They go, in the
	// batch that writes the new marker (the first of this Open: with the
	// WAL off a crash keeps a prefix of the batches, see pebble.go); the
	// metas stay, so their objects are revalidated rather than learned
	// anew, and their slices fetched again as clients ask.
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange([]byte{slicePrefix}, []byte{slicePrefix + 1}, nil)
	_ = b.Set([]byte(formatKey), []byte(formatValue), nil)
	if err := b.Commit(writeOpts); err != nil {
		return fmt.Errorf("segstore: open %s: upgrade format marker: %w", s.dir, err)
	}
	s.logf("segstore: open %s: store format %q upgraded to %q: the slices it held are dropped (they are fetched again as clients ask); the objects' metas are kept", s.dir, got, formatValue)
	return nil
}

// objectID names one version of one object by its slice-key prefix.
type objectID struct{ hash, version uint64 }

// rebuild loads the object count and the slice index, deleting corrupt metas
// and orphan or malformed slices.
func (s *Store) rebuild() error {
	live := make(map[objectID]*Meta)
	del := s.db.NewBatch()
	defer del.Close()
	var badMetas, orphanRuns, badSlices int

	// Metas: only the fixed header is decoded (no JSON).
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{metaPrefix}, UpperBound: []byte{metaPrefix + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		key := string(it.Key()[1:])
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("read meta %q: %w", key, err)
		}
		m, err := decodeMetaHeader(key, v)
		if err != nil {
			s.logf("segstore: open %s: dropping meta %q: %v", s.dir, key, err)
			_ = del.Delete(it.Key(), nil)
			badMetas++
			continue // its slices are orphans now, removed below
		}
		live[objectID{keyHash(key), m.Version}] = &m
	}
	if err := it.Close(); err != nil {
		return err
	}
	s.objects.Store(int64(len(live)))

	// Slices: their entries (a few dozen bytes each), not their files.
	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{slicePrefix}, UpperBound: []byte{slicePrefix + 1}})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; {
		k := it.Key()
		h, version, i, ok := parseSliceKey(k)
		if !ok {
			_ = del.Delete(k, nil)
			badSlices++
			valid = it.Next()
			continue
		}
		m := live[objectID{h, version}]
		if m == nil {
			// No meta names this version: drop all of it and skip past it.
			start, end := versionSpan(h, version)
			_ = del.DeleteRange(start, end, nil)
			orphanRuns++
			valid = it.SeekGE(end)
			continue
		}
		// The entry's form is checked here; its checksums, against the
		// file, before the slice's first send (OpenSlice).
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("read slice entry %x: %w", k, err)
		}
		if !validEntry(v, m.SliceLen(i)) {
			_ = del.Delete(k, nil)
			badSlices++
		} else {
			ds, db := s.idx.add(m, i, false)
			s.slices.Add(ds)
			s.bytes.Add(db)
		}
		valid = it.Next()
	}
	if err := it.Close(); err != nil {
		return err
	}
	if !del.Empty() {
		if err := del.Commit(writeOpts); err != nil {
			return fmt.Errorf("delete orphans: %w", err)
		}
		s.logf("segstore: open %s: removed %d corrupt metas, %d orphan slice versions, %d malformed slices",
			s.dir, badMetas, orphanRuns, badSlices)
	}
	return nil
}

// Close stops the evictor, flushes the memtable, so everything written
// survives a restart, and closes Pebble. After a fatal Pebble error it
// leaves Pebble as it is (its Close would wait for the job that failed) and
// says so; the process should then restart.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	s.cancel()
	if s.ev != nil {
		close(s.ev.stop)
		s.ev.done.Wait()
	}
	s.pend.done.Wait()
	s.flusher.Wait()
	// Wait for the calls that entered before closed was set, unless Pebble
	// has failed: then one of them may wait on it forever, and Pebble is
	// left open anyway.
	for s.busy.Load() > 0 && s.ctl.fatalError() == nil {
		select {
		case <-s.idle:
		case <-s.ctl.fatal:
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := s.ctl.fatalError(); err != nil {
		return fmt.Errorf("segstore: close %s: Pebble left open after a fatal error; restart to recover: %w", s.dir, err)
	}
	var ferr error
	if s.pend.n.Load() > 0 || s.pend.unflushed.Load() > 0 {
		// Last chance for pending purges: landPending flushes too.
		ferr = s.landPending(context.Background())
		if ferr != nil {
			s.logf("segstore: close %s: %d purges are not on disk and come back at the next start; purge them again then: %v",
				s.dir, s.pend.n.Load()+s.pend.unflushed.Load(), ferr)
		}
	} else {
		ferr = s.flush(context.Background())
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("segstore: close %s: %w", s.dir, err)
	}
	if ferr != nil {
		return fmt.Errorf("segstore: close %s: flush: %w (writes since the last flush are lost)", s.dir, ferr)
	}
	return nil
}

// flush flushes the memtable and waits for it to reach the disk, unless the
// store cannot write (then it returns why), flushes start failing, or ctx
// ends. A stall is waited out.
func (s *Store) flush(ctx context.Context) error {
	for {
		changed := s.ctl.changes()
		err := s.ctl.writeErr()
		if err == nil {
			break
		}
		if !s.ctl.onlyStalled() {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	done, err := s.db.AsyncFlush()
	if err != nil {
		return err
	}
	for {
		// Look after taking the channel: a flush that failed before it was
		// taken closed the previous one, and this one may never close.
		changed := s.ctl.changes()
		select {
		case <-done:
			return nil
		default:
		}
		if err := s.ctl.writeErr(); err != nil && !s.ctl.onlyStalled() {
			return err
		}
		select {
		case <-done:
			return nil
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flushPurge flushes after a purge, so that a crash cannot undo it. If it
// cannot, the purge holds in memory (reads no longer see the objects) but
// not on disk: a store that cannot write says so with ErrPurgePending, and
// the flush is retried in the background (pending.go).
func (s *Store) flushPurge() error {
	err := s.flush(s.ctx)
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrWriteFailed) {
		s.writeErrors.Add(1)
		s.pend.unflushed.Add(1)
		signal(s.pend.kick)
		s.logf("segstore: a purge holds in memory only, its flush failed: %v; the flush is retried in the background (a restart before it lands would bring the objects back)", err)
		return fmt.Errorf("%w: flush: %w", ErrPurgePending, err)
	}
	return fmt.Errorf("purged, but not on disk yet (a crash now would undo it): flush: %w", err)
}

// commit commits b unless the store cannot write now. A failure wraps
// ErrWriteFailed and counts in Stats.WriteErrors.
func (s *Store) commit(b *pebble.Batch) error {
	err := s.ctl.writeErr()
	if err == nil {
		if err = b.Commit(writeOpts); err != nil {
			err = fmt.Errorf("%w: %w", ErrWriteFailed, err)
		}
	}
	if err != nil {
		s.writeErrors.Add(1)
	} else {
		s.dirty.Store(true)
	}
	return err
}

// admitWait is how long a slice write waits for eviction and compaction to
// make room in a full store, and how long a meta write or purge waits for a
// Pebble write stall to end, before it is refused. A refused slice is
// fetched from the origin again by the next request that needs it.
const admitWait = 2 * time.Second

// stallWait is how long a slice write waits for a write stall to end.
// Slice writes come from fills, on the goroutine reading the origin's body
// (edge.storeFill): waiting holds up that read, and the clients waiting
// for the next slices, while refusing fetches the slice a second time
// later. With slice bytes in files, Pebble writes only small entries, and
// stalls are rare and short; a stall longer than this is a disk in
// trouble.
const stallWait = 2 * time.Second

// admit waits for the store to accept n more bytes (up to admitWait for
// room, stallWait for a stall to end), and returns why not if it does not,
// counting the refusal in Stats.WriteErrors. A failing disk (not a mere
// stall) is refused at once.
func (s *Store) admit(n int64) error {
	return s.await(func() error { return s.overBudget(n) }, stallWait)
}

// writable returns nil once the store may write: at once, or after a write
// stall ends (waiting up to admitWait: metas are written on a client's
// request). A failing disk, or a stall that lasts, is refused and counted
// in Stats.WriteErrors. Unlike admit it ignores the budget: metas and
// purges must get through a full store.
func (s *Store) writable() error { return s.await(nil, admitWait) }

// await waits until Pebble takes writes and fits (if not nil) returns nil:
// up to stall for a write stall to end, up to admitWait for fits. Close
// ends the wait with ErrClosed.
func (s *Store) await(fits func() error, stall time.Duration) error {
	start := time.Now()
	for {
		if s.closed.Load() {
			return ErrClosed
		}
		changed := s.ctl.changes()
		err := s.ctl.writeErr()
		wait := stall
		if err == nil {
			if fits == nil {
				return nil
			}
			if err = fits(); err == nil {
				return nil
			}
			wait = admitWait
		} else if !s.ctl.onlyStalled() {
			s.writeErrors.Add(1)
			return err
		}
		if time.Since(start) > wait {
			s.writeErrors.Add(1)
			return err
		}
		select {
		case <-changed:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// enter marks a call as using Pebble, or returns ErrClosed once Close has
// begun; a nil return must be paired with exit. Close waits until every
// entered call has exited before it closes Pebble, which panics on use
// after Close.
func (s *Store) enter() error {
	s.busy.Add(1)
	if s.closed.Load() {
		s.exit()
		return ErrClosed
	}
	return nil
}

func (s *Store) exit() {
	if s.busy.Add(-1) == 0 && s.closed.Load() {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

func (s *Store) keyLock(h uint64) *sync.Mutex { return &s.keyMu[h%keyStripes] }

// Meta returns the meta of key, or ErrNotFound. The result is shared: do not
// modify it.
func (s *Store) Meta(key string) (*Meta, error) {
	s.metaMu.RLock()
	e := s.metas[key]
	s.metaMu.RUnlock()
	if e != nil && !s.hidden(key) {
		return e.meta, nil
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	mu := s.keyLock(keyHash(key))
	mu.Lock()
	defer mu.Unlock()
	e, err := s.loadMetaLocked(key)
	if err != nil {
		return nil, fmt.Errorf("segstore: meta %q: %w", key, err)
	}
	if e == nil {
		return nil, fmt.Errorf("segstore: meta %q: %w", key, ErrNotFound)
	}
	return e.meta, nil
}

// loadMetaLocked returns key's meta from the cache or Pebble (caching it),
// or nil if there is none or a pending purge hides it. A meta that fails to
// decode is deleted with its slices and reported as absent. The caller
// holds key's stripe lock.
func (s *Store) loadMetaLocked(key string) (*metaEntry, error) {
	if s.hidden(key) {
		return nil, nil
	}
	s.metaMu.RLock()
	e := s.metas[key]
	s.metaMu.RUnlock()
	if e != nil {
		return e, nil
	}
	mk := metaKey(key)
	v, closer, err := s.db.Get(mk)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	raw := bytes.Clone(v)
	if err := closer.Close(); err != nil {
		return nil, err
	}
	m, err := decodeMeta(key, raw)
	if err != nil {
		s.logf("segstore: dropping meta %q and its slices: %v", key, err)
		if _, _, err := s.purgeLocked(key, keyHash(key)); err != nil {
			return nil, err
		}
		return nil, nil
	}
	e = &metaEntry{meta: m, raw: raw}
	s.cacheMeta(key, e)
	return e, nil
}

func (s *Store) cacheMeta(key string, e *metaEntry) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if _, ok := s.metas[key]; !ok && len(s.metas) >= maxCachedMetas {
		for k := range s.metas { // an arbitrary victim: map order is random
			delete(s.metas, k)
			break
		}
	}
	s.metas[key] = e
}

func (s *Store) uncacheMeta(key string) {
	s.metaMu.Lock()
	delete(s.metas, key)
	s.metaMu.Unlock()
}

// PutMeta stores m (a copy of it) as the meta of m.Key. If the previous meta
// has another Version, that version's slices are deleted in the same batch.
// Size and SliceSize cannot change without a new Version.
func (s *Store) PutMeta(m *Meta) error {
	if err := m.check(); err != nil {
		return fmt.Errorf("segstore: put meta %q: %w", m.Key, err)
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	if err := s.writable(); err != nil {
		return fmt.Errorf("segstore: put meta %q: %w", m.Key, err)
	}
	m = m.clone()
	raw, err := encodeMeta(m)
	if err != nil {
		return fmt.Errorf("segstore: put meta %q: encode: %w", m.Key, err)
	}
	h := keyHash(m.Key)
	mu := s.keyLock(h)
	mu.Lock()
	defer mu.Unlock()
	hidden := s.hidden(m.Key) // by a pending purge: prev is nil
	prev, err := s.loadMetaLocked(m.Key)
	if err != nil {
		return fmt.Errorf("segstore: put meta %q: %w", m.Key, err)
	}
	if prev != nil && prev.meta.Version == m.Version &&
		(prev.meta.Size != m.Size || prev.meta.SliceSize != m.SliceSize) {
		return fmt.Errorf("segstore: put meta %q: version %016x has size %d and slice size %d, not %d and %d: mint a new version (NewVersion) when they change",
			m.Key, m.Version, prev.meta.Size, prev.meta.SliceSize, m.Size, m.SliceSize)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(metaKey(m.Key), raw, nil)
	replaced := prev != nil && prev.meta.Version != m.Version
	if replaced {
		start, end := versionSpan(h, prev.meta.Version)
		_ = b.DeleteRange(start, end, nil)
	}
	if hidden {
		// What the pending purge left on disk goes now: the old meta is
		// overwritten, and its slices, of whatever version, deleted.
		start, end := hashSpan(h)
		_ = b.DeleteRange(start, end, nil)
	}
	if err := s.commit(b); err != nil {
		return fmt.Errorf("segstore: put meta %q: %w", m.Key, err)
	}
	if hidden {
		s.markRewritten(m.Key) // visible again, and spared by the retry
	}
	if replaced || hidden {
		if err := s.files.removeOthers(h, m.Version); err != nil {
			s.logf("segstore: put meta %q: remove the files of the version it replaces: %v (the scrubber removes them later)", m.Key, err)
		}
	}
	s.cacheMeta(m.Key, &metaEntry{meta: m, raw: raw})
	if replaced {
		s.apply(s.idx.drop(m.Key))
	}
	if prev == nil {
		s.objects.Add(1)
	}
	if invariants.Enabled {
		// The index holds slices of the meta's version only, or none.
		if ss := s.idx.load(m.Key); ss != nil {
			ss.checkMeta(m)
		}
	}
	return nil
}

func (s *Store) apply(dSlices, dBytes int64) {
	s.slices.Add(dSlices)
	s.bytes.Add(dBytes)
}

// Has reports whether slice i of m's version is stored. It does no I/O.
func (s *Store) Has(m *Meta, i int64) bool {
	return s.idx.has(m.Key, m.Version, i)
}

// StoredRuns returns how many slices of m's version are stored, and which:
// runs of consecutive stored slices, ascending and not adjacent. It does no
// I/O, and its cost and memory grow with the slices stored (in runs), not
// with the object's size.
func (s *Store) StoredRuns(m *Meta) (count int64, runs []slicer.Run) {
	return s.idx.storedRuns(m.Key, m.Version)
}

// CountStored returns how many of the slices first to last (inclusive) of
// m's version are stored; indices outside the object count as not stored.
// It does no I/O and costs O(stored pages of slices in the span), not
// O(last-first): the edge asks it whether a request is a hit, a miss or
// partly both.
func (s *Store) CountStored(m *Meta, first, last int64) int64 {
	return s.idx.countStored(m.Key, m.Version, first, last)
}

// ReadSlice copies slice i of m's version into dst (grown if too small) and
// returns dst[:len], verifying every checksum of the slice. It is
// ReadSliceRange of the whole slice.
func (s *Store) ReadSlice(m *Meta, i int64, dst []byte) ([]byte, error) {
	return s.readSlice(m, i, 0, m.SliceLen(i), dst, "read slice")
}

// ReadSliceRange copies bytes [off, off+n) of slice i of m's version into
// dst (grown if too small) and returns dst[:n], reading them from the
// slice's file and verifying the checksums of the 64 KiB chunks they
// overlap, whether or not the file was verified before. A damaged chunk
// outside the range goes unnoticed until a read, OpenSlice's first
// verification or the scrubber covers it. The edge sends slices with
// OpenSlice; this is for tools and tests.
//
// It returns ErrNotFound if the slice is not stored (or i is not a slice of
// m), ErrOutOfRange, doing no I/O, unless 0 <= off, 1 <= n and off+n <=
// m.SliceLen(i), or ErrCorrupt after deleting a slice that failed a check.
// A successful read sets the slice's reference bit (see the package doc,
// Capacity and eviction).
func (s *Store) ReadSliceRange(m *Meta, i, off, n int64, dst []byte) ([]byte, error) {
	return s.readSlice(m, i, off, n, dst, "read slice range")
}

// readSlice is ReadSliceRange; op names the caller in errors.
func (s *Store) readSlice(m *Meta, i, off, n int64, dst []byte, op string) ([]byte, error) {
	sliceLen := m.SliceLen(i)
	if sliceLen == 0 {
		return nil, fmt.Errorf("segstore: %s %d of %q: %w (object has %d slices)", op, i, m.Key, ErrNotFound, m.SliceCount())
	}
	if off < 0 || n < 1 || off > sliceLen-n {
		return nil, fmt.Errorf("segstore: %s %d of %q: %d bytes at offset %d of a slice of %d: %w", op, i, m.Key, n, off, sliceLen, ErrOutOfRange)
	}
	if s.hidden(m.Key) { // purged, though still on disk
		return nil, fmt.Errorf("segstore: %s %d of %q: %w (purged)", op, i, m.Key, ErrNotFound)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	h := keyHash(m.Key)
	k := makeSliceKey(h, m.Version, i)
	var v []byte
	var f vfs.File
	for try := 0; ; try++ {
		var err error
		if v, err = s.entry(m, i, k, op); err != nil {
			return nil, err
		}
		if f, err = s.files.open(h, m.Version, i); err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("segstore: %s %d of %q: %w", op, i, m.Key, err)
		}
		if err = s.fileGone(m, i, k, op, fmt.Errorf("open its file: %w", err)); err != errLookAgain {
			return nil, err
		}
		if try > 0 {
			return nil, fmt.Errorf("segstore: %s %d of %q: %w (its file was gone twice while its entry stayed)", op, i, m.Key, ErrNotFound)
		}
	}
	defer f.Close()
	if int64(cap(dst)) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	if bad := readChunks(f, k[:], v, sliceLen, off, dst); bad != nil {
		return nil, s.fileFailed(m, i, k, op, bad)
	}
	// The clock's reference bit: in memory only, no lock, no Pebble write.
	s.idx.touch(m.Key, m.Version, i)
	return dst, nil
}

// readChunks reads bytes [off, off+len(dst)) of the slice file f into dst,
// verifying the chunks they overlap: a chunk wanted whole is read into dst
// and checked there, one wanted in part is read into a chunk buffer,
// checked, and the part copied.
func readChunks(f io.ReaderAt, k, v []byte, sliceLen, off int64, dst []byte) error {
	end := off + int64(len(dst))
	for j := off >> chunkShift; j<<chunkShift < end; j++ {
		cs, ce := j<<chunkShift, min((j+1)<<chunkShift, sliceLen)
		lo, hi := max(cs, off), min(ce, end)
		buf := dst[lo-off : hi-off]
		var bp *[]byte
		if lo != cs || hi != ce {
			bp = chunkBufs.Get().(*[]byte)
			buf = (*bp)[:ce-cs]
		}
		_, err := f.ReadAt(buf, cs)
		if err == nil {
			err = checkChunks(k, v, sliceLen, j, buf)
		}
		if err == nil && bp != nil {
			copy(dst[lo-off:hi-off], buf[lo-cs:hi-cs])
		}
		if bp != nil {
			chunkBufs.Put(bp)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("file shorter than its %d bytes: %w", sliceLen, err)
			}
			return err
		}
	}
	return nil
}

// entry returns the entry of slice i of m (key k): a copy, since Pebble's
// memory is released at once. A slice Pebble does not have is forgotten by
// the index and reported as ErrNotFound.
func (s *Store) entry(m *Meta, i int64, k sliceKey, op string) ([]byte, error) {
	v, closer, err := s.db.Get(k[:])
	if errors.Is(err, pebble.ErrNotFound) {
		if s.idx.has(m.Key, m.Version, i) {
			// The slice went from under the index (a purge of another key
			// with the same hash): believe Pebble.
			s.forgetSlice(m, i, k)
		}
		return nil, fmt.Errorf("segstore: %s %d of %q: %w", op, i, m.Key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("segstore: %s %d of %q: %w", op, i, m.Key, err)
	}
	v = bytes.Clone(v)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("segstore: %s %d of %q: %w", op, i, m.Key, err)
	}
	if !validEntry(v, m.SliceLen(i)) {
		return nil, s.fileFailed(m, i, k, op, fmt.Errorf("malformed entry of %d bytes", len(v)))
	}
	return v, nil
}

// errLookAgain: a slice's file was missing at open because the slice was
// written again meanwhile; look it up again.
var errLookAgain = errors.New("segstore: slice rewritten during the lookup")

// fileGone handles the file of slice i of m missing at open (why). Under
// the key's lock nothing is installed or removed, so: an entry that is gone
// too was purged, evicted or replaced between the lookup and the open
// (ErrNotFound); an entry whose file is back was written again meanwhile
// (errLookAgain); an entry whose file is still missing lost it (ErrCorrupt,
// and the slice is dropped).
func (s *Store) fileGone(m *Meta, i int64, k sliceKey, op string, why error) error {
	h := keyHash(m.Key)
	mu := s.keyLock(h)
	mu.Lock()
	_, closer, err := s.db.Get(k[:])
	if err == nil {
		_ = closer.Close()
		_, serr := s.files.fs.Stat(s.files.path(h, m.Version, i))
		mu.Unlock()
		switch {
		case serr == nil:
			return errLookAgain
		case !errors.Is(serr, fs.ErrNotExist):
			// Not known to be gone (a permission, an I/O error): say so,
			// and keep the slice.
			return fmt.Errorf("segstore: %s %d of %q: %w (and then: %w)", op, i, m.Key, why, serr)
		}
		return s.fileFailed(m, i, k, op, why)
	}
	if errors.Is(err, pebble.ErrNotFound) {
		s.apply(s.idx.remove(m.Key, m.Version, i, m.SliceLen(i)))
	}
	mu.Unlock()
	if errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("segstore: %s %d of %q: %w", op, i, m.Key, ErrNotFound)
	}
	return fmt.Errorf("segstore: %s %d of %q: %w", op, i, m.Key, err)
}

// fileFailed drops slice i of m, whose file is missing, unreadable or does
// not match its entry (why), and returns the error to report: ErrCorrupt,
// so that the caller fetches the slice again.
func (s *Store) fileFailed(m *Meta, i int64, k sliceKey, op string, why error) error {
	s.scrub.corrupt.Add(1)
	s.logf("segstore: deleting slice %d of %q version %016x, its file is damaged or gone: %v", i, m.Key, m.Version, why)
	if err := s.deleteSlice(m, i, k); err != nil {
		return fmt.Errorf("segstore: %s %d of %q: %w (%v); deleting it failed: %w", op, i, m.Key, ErrCorrupt, why, err)
	}
	return fmt.Errorf("segstore: %s %d of %q: %w (%v): deleted it, refetch it", op, i, m.Key, ErrCorrupt, why)
}

// OpenSlice opens slice i of m's version for sending: the returned file
// holds exactly m.SliceLen(i) bytes, the slice's, positioned at its first;
// the caller closes it. The edge hands it to the client's connection,
// which sends it with sendfile(2), so its bytes never pass through this
// process.
//
// The first OpenSlice of a slice in a process reads the file back whole and
// verifies every chunk against the entry (a slice written by this process
// counts as verified: its checksums were computed from the bytes it
// wrote); after that it is one open(2), with no Pebble read. So a file
// torn by a crash or damaged while the process was down is never sent, and
// damage that happens to a file while the process runs is caught by the
// scrubber (scrub.go) within its interval. Errors are those of ReadSlice.
func (s *Store) OpenSlice(m *Meta, i int64) (*os.File, error) {
	const op = "open slice"
	sliceLen := m.SliceLen(i)
	if sliceLen == 0 {
		return nil, fmt.Errorf("segstore: %s %d of %q: %w (object has %d slices)", op, i, m.Key, ErrNotFound, m.SliceCount())
	}
	if s.hidden(m.Key) {
		return nil, fmt.Errorf("segstore: %s %d of %q: %w (purged)", op, i, m.Key, ErrNotFound)
	}
	h := keyHash(m.Key)
	if s.idx.verified(m.Key, m.Version, i) {
		f, err := s.files.openOS(h, m.Version, i)
		if err == nil {
			s.idx.touch(m.Key, m.Version, i)
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("segstore: %s %d of %q: %w", op, i, m.Key, err)
		}
		// Evicted or purged meanwhile, or removed by hand: look again.
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	k := makeSliceKey(h, m.Version, i)
	var v []byte
	var f *os.File
	for try := 0; ; try++ {
		var err error
		if v, err = s.entry(m, i, k, op); err != nil {
			return nil, err
		}
		if f, err = s.files.openOS(h, m.Version, i); err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("segstore: %s %d of %q: %w", op, i, m.Key, err)
		}
		if err = s.fileGone(m, i, k, op, fmt.Errorf("its file is gone: %w", err)); err != errLookAgain {
			return nil, err
		}
		if try > 0 {
			return nil, fmt.Errorf("segstore: %s %d of %q: %w (its file was gone twice while its entry stayed)", op, i, m.Key, ErrNotFound)
		}
	}
	st, err := f.Stat()
	if err == nil {
		err = verifyFile(f, st.Size(), k[:], v, sliceLen)
	}
	if err != nil {
		_ = f.Close()
		return nil, s.fileFailed(m, i, k, op, err)
	}
	s.scrub.verified.Add(1)
	s.idx.setVerified(m.Key, m.Version, i)
	s.idx.touch(m.Key, m.Version, i)
	return f, nil
}

// forgetSlice clears slice i of m from the index if Pebble does not have it.
func (s *Store) forgetSlice(m *Meta, i int64, k sliceKey) {
	mu := s.keyLock(keyHash(m.Key))
	mu.Lock()
	defer mu.Unlock()
	_, closer, err := s.db.Get(k[:]) // again: a write may have won the race
	if err == nil {
		_ = closer.Close()
		return
	}
	if errors.Is(err, pebble.ErrNotFound) {
		s.apply(s.idx.remove(m.Key, m.Version, i, m.SliceLen(i)))
	}
}

// deleteSlice deletes slice i of m: its entry, its file and its place in
// the index.
func (s *Store) deleteSlice(m *Meta, i int64, k sliceKey) error {
	h := keyHash(m.Key)
	mu := s.keyLock(h)
	mu.Lock()
	defer mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(k[:], nil)
	if err := s.commit(b); err != nil {
		return err
	}
	s.apply(s.idx.remove(m.Key, m.Version, i, m.SliceLen(i)))
	s.removeFile(h, m.Version, i)
	return nil
}

// removeFile removes the file of slice i of (h, version), whose entry is
// gone; a failure leaves an orphan for the scrubber to remove.
func (s *Store) removeFile(h, version uint64, i int64) {
	if err := s.files.remove(h, version, i); err != nil {
		s.logf("segstore: remove slice file %s: %v (the scrubber removes it later)", s.files.path(h, version, i), err)
	}
}

// stale reports whether m's version is no longer its object's current one
// (purged or replaced).
func (s *Store) stale(m *Meta) bool {
	mu := s.keyLock(keyHash(m.Key))
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.loadMetaLocked(m.Key)
	return err == nil && (cur == nil || cur.meta.Version != m.Version)
}

// Purge deletes the meta of key and every slice of every version of it, and
// flushes so that a crash cannot bring them back. Purging a key the store
// does not hold is not an error.
//
// If the store cannot write the deletion (the disk is full or failing,
// Pebble stalls past admitWait, or the flush fails), the purge holds in
// memory at once and is retried in the background until it is on disk:
// the error then wraps ErrPurgePending and ErrWriteFailed (see pending.go).
func (s *Store) Purge(key string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	err := s.writable()
	h := keyHash(key)
	mu := s.keyLock(h)
	mu.Lock()
	var deleted bool
	if err == nil {
		_, deleted, err = s.purgeLocked(key, h)
	}
	if errors.Is(err, ErrWriteFailed) {
		_, err = s.hideKey(key, err)
	}
	mu.Unlock()
	if err != nil {
		return fmt.Errorf("segstore: purge %q: %w", key, err)
	}
	if !deleted {
		return nil
	}
	if err := s.flushPurge(); err != nil {
		return fmt.Errorf("segstore: purge %q: %w", key, err)
	}
	return nil
}

// purgeLocked deletes key's meta and all slices of its hash, if Pebble holds
// a meta for key, including one that a pending purge hides (which this
// lands early). It returns whether key was stored and visible, for counts,
// and whether anything was deleted. The caller holds key's stripe lock.
func (s *Store) purgeLocked(key string, h uint64) (existed, deleted bool, err error) {
	hidden := s.hidden(key)
	s.metaMu.RLock()
	_, cached := s.metas[key]
	s.metaMu.RUnlock()
	if !cached {
		// Nothing to delete without a meta: slices are only written under
		// one, and Open removes any a crash left without one.
		if exists, err := s.metaOnDisk(key); err != nil || !exists {
			return false, false, err
		}
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(metaKey(key), nil)
	start, end := hashSpan(h)
	_ = b.DeleteRange(start, end, nil)
	if err := s.commit(b); err != nil {
		return false, false, err
	}
	s.removeObjectFiles(key, h)
	if hidden { // its memory went when it was hidden
		return false, true, nil
	}
	s.dropLocked(key)
	return true, true, nil
}

// PurgePrefix purges every object whose key starts with prefix ("" is
// everything) and returns how many there were. Like Purge, it flushes, and
// if the store cannot write, the purge (of what is left to purge) holds in
// memory and the error wraps ErrPurgePending; the count includes the
// objects purged that way.
func (s *Store) PurgePrefix(prefix string) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	if err := s.writable(); err != nil {
		if errors.Is(err, ErrWriteFailed) {
			n, err := s.hidePrefix(prefix, err)
			return n, fmt.Errorf("segstore: purge prefix %q: %w", prefix, err)
		}
		return 0, fmt.Errorf("segstore: purge prefix %q: %w", prefix, err)
	}
	lower := metaKey(prefix)
	upper := successor(lower)
	var purged int
	var deleted bool
	for {
		// Collect a chunk of keys, then purge them with the iterator closed,
		// so the iterator never pins memtables across many commits.
		keys, more, err := s.metaKeys(lower, upper, 1024)
		if err != nil {
			return purged, fmt.Errorf("segstore: purge prefix %q: %w", prefix, err)
		}
		for _, key := range keys {
			h := keyHash(key)
			mu := s.keyLock(h)
			mu.Lock()
			existed, del, err := s.purgeLocked(key, h)
			mu.Unlock()
			if errors.Is(err, ErrWriteFailed) { // hide the rest
				n, err := s.hidePrefix(prefix, err)
				return purged + n, fmt.Errorf("segstore: purge prefix %q: %w", prefix, err)
			}
			if err != nil {
				return purged, fmt.Errorf("segstore: purge prefix %q: key %q: %w", prefix, key, err)
			}
			if existed {
				purged++
			}
			deleted = deleted || del
		}
		if !more {
			break
		}
		lower = append(metaKey(keys[len(keys)-1]), 0) // the key right after the last one
	}
	if deleted {
		if err := s.flushPurge(); err != nil {
			return purged, fmt.Errorf("segstore: purge prefix %q: %w", prefix, err)
		}
	}
	return purged, nil
}

// PurgeAll deletes every object and slice with two range deletions, flushes,
// and returns how many objects there were. Writers wait for it; readers do
// not, and see either everything or nothing of each object. The disk is
// given back as Pebble compacts the ranges; the evictor asks for that at
// once. If the store cannot write, the purge holds in memory and the error
// wraps ErrPurgePending, as for Purge.
func (s *Store) PurgeAll() (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	err := s.writable()
	var n int64
	if err == nil {
		n, err = s.purgeAllLocked()
	}
	if errors.Is(err, ErrWriteFailed) {
		n, err := s.hidePrefix("", err)
		return n, fmt.Errorf("segstore: purge all: %w", err)
	}
	if err != nil {
		return 0, fmt.Errorf("segstore: purge all: %w", err)
	}
	if err := s.flushPurge(); err != nil {
		return int(n), fmt.Errorf("segstore: purge all: %w", err)
	}
	return int(n), nil
}

// removeObjectFiles removes the files of every slice of key's hash, whose
// entries are gone; a failure leaves orphans for the scrubber.
func (s *Store) removeObjectFiles(key string, h uint64) {
	if err := s.files.removeObject(h); err != nil {
		s.logf("segstore: purge %q: remove its slice files: %v (the scrubber removes them later)", key, err)
	}
}

// removeAllFiles removes every slice file (in the background), after a
// purge of everything. The caller holds every stripe lock, so no file is
// installed meanwhile.
func (s *Store) removeAllFiles() {
	err := s.files.removeAll(func(err error) {
		if err != nil {
			s.logf("segstore: purge all: remove the slice files: %v (the scrubber removes them later)", err)
		}
	})
	if err != nil {
		s.logf("segstore: purge all: move the slice files aside: %v (the scrubber removes them later)", err)
	}
}

// purgeAllLocked deletes everything, holding every stripe lock so that no
// write can land between the deletion and the reset of the index.
func (s *Store) purgeAllLocked() (int64, error) {
	s.lockAll()
	defer s.unlockAll()
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange([]byte{metaPrefix}, []byte{metaPrefix + 1}, nil)
	_ = b.DeleteRange([]byte{slicePrefix}, []byte{slicePrefix + 1}, nil)
	if err := s.commit(b); err != nil {
		return 0, err
	}
	s.removeAllFiles()
	s.metaMu.Lock()
	clear(s.metas)
	s.metaMu.Unlock()
	s.idx.clear()
	s.slices.Store(0)
	s.bytes.Store(0)
	return s.objects.Swap(0), nil
}

// ScanMeta calls fn with the meta of every object whose cache key starts
// with prefix, in key order, until fn returns false. Metas are read from
// Pebble in chunks and fn runs between chunks' reads with no lock held and
// no iterator open, so a slow fn delays neither requests nor writers; an
// object stored or purged during the scan may or may not be visited. The
// Meta is shared, as Meta's result is: do not modify it. Metas that fail
// their checksum are skipped (and logged).
func (s *Store) ScanMeta(prefix string, fn func(m *Meta) bool) error {
	lower := metaKey(prefix)
	upper := successor(lower)
	for {
		metas, last, more, err := s.metaChunk(lower, upper, 256)
		if err != nil {
			return fmt.Errorf("segstore: scan metas %q: %w", prefix, err)
		}
		for _, m := range metas {
			if !fn(m) {
				return nil
			}
		}
		if !more {
			return nil
		}
		lower = append(metaKey(last), 0)
	}
}

// metaChunk returns the metas of up to limit keys in [lower, upper), but
// those that pending purges hide, the last key it looked at, and whether
// there may be more; cached metas are used as they are.
func (s *Store) metaChunk(lower, upper []byte, limit int) (metas []*Meta, last string, more bool, err error) {
	if err := s.enter(); err != nil {
		return nil, "", false, err
	}
	defer s.exit()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, "", false, err
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n == limit {
			more = true
			break
		}
		n++
		key := string(it.Key()[1:])
		last = key
		if s.hidden(key) {
			continue
		}
		s.metaMu.RLock()
		e := s.metas[key]
		s.metaMu.RUnlock()
		if e != nil {
			metas = append(metas, e.meta)
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, "", false, fmt.Errorf("read meta %q: %w", key, err)
		}
		m, err := decodeMeta(key, v) // copies what it keeps
		if err != nil {
			s.logf("segstore: scan metas: skipping meta %q: %v", key, err)
			continue
		}
		metas = append(metas, m)
	}
	return metas, last, more, it.Close()
}

// metaKeys returns up to limit cache keys with meta keys in [lower, upper),
// and whether there may be more.
func (s *Store) metaKeys(lower, upper []byte, limit int) (keys []string, more bool, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, err
	}
	for it.First(); it.Valid(); it.Next() {
		if len(keys) == limit {
			more = true
			break
		}
		keys = append(keys, string(it.Key()[1:]))
	}
	return keys, more, it.Close()
}

// Stats returns the store's counters and Pebble's disk usage.
func (s *Store) Stats() Stats {
	st := Stats{
		Verified:      s.scrub.verified.Load(),
		Scrubbed:      s.scrub.slices.Load(),
		ScrubbedBytes: s.scrub.bytes.Load(),
		Corrupt:       s.scrub.corrupt.Load(),
		Objects:       s.objects.Load(),
		Slices:        s.slices.Load(),
		Bytes:         s.bytes.Load(),
		MaxBytes:      s.maxBytes,
		Evictions:     s.evictions.Load(),
		EvictedBytes:  s.evictedBytes.Load(),
		WriteErrors:   s.writeErrors.Load(),
		DiskBytes:     s.disk.Load(),
		PendingPurges: s.pend.n.Load() + s.pend.unflushed.Load(),
	}
	if !s.ctl.flushFailing() && s.enter() == nil {
		st.DiskBytes = int64(diskUsage(s.db.Metrics()))
		s.exit()
	}
	st.DiskBytes += s.fileBytes()
	return st
}
