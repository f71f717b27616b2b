package segstore

// The scrubber: a background goroutine that reads stored slice files back
// at a bounded rate and verifies them against their entries, so that
// damage done to a file while the process runs (a disk that rots, a file
// changed by hand) is caught within one pass, not only after a restart.
// A slice that fails is dropped (entry, file, index) and counted in
// Stats.Corrupt; the edge fetches it again when a client asks.
//
// Each pass walks the tree of slice files, one object directory at a time.
// A file whose entry Pebble does not hold is an orphan (a crash between
// the rename and the commit of a write, a removal that failed) and is
// removed; an empty object directory too. A file whose entry is there is
// verified, unless it is no longer in the index. Reading the files goes
// through the page cache; a slice nobody read since the clock last passed
// it is dropped from the page cache again after its check (fadvise), so a
// pass does not push hot slices out.

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/sys/unix"
)

// DefaultScrubRate is Options.ScrubRate when 0: 8 MiB/s, a pass over
// 1 TiB in about a day and a half, a few percent of one disk's bandwidth.
const DefaultScrubRate = 8 << 20

// scrubPause is how long the scrubber waits between passes, and before
// its first.
var scrubPause = 10 * time.Second

// scrubState holds the scrubber's counters (see Stats).
type scrubState struct {
	verified atomic.Int64 // slices verified whole, by OpenSlice or a pass
	slices   atomic.Int64 // by a pass
	bytes    atomic.Int64
	corrupt  atomic.Int64 // slices dropped for a bad, missing or short file
	orphans  atomic.Int64 // files without an entry removed
	passes   atomic.Int64 // passes completed
}

// startScrub starts the scrubber at rate bytes per second (0: the
// default, < 0: none). It stops when ctx ends; Close waits for it.
//
// Its first pass, at once and unpaced, only removes orphans: the files of
// slices whose entries a crash lost (with the WAL off, those written since
// the last flush) take disk the budget does not count, and must not wait
// for a verifying pass to reach them. It runs even with the scrubber off.
func (s *Store) startScrub(ctx context.Context, rate int64) {
	if rate == 0 {
		rate = DefaultScrubRate
	}
	s.pend.done.Add(1) // Close waits for the background goroutines on it
	go func() {
		defer s.pend.done.Done()
		if err := s.scrubPass(ctx, 0); err != nil && ctx.Err() == nil {
			s.logf("segstore: remove orphan slice files: %v", err)
		}
		if n := s.scrub.orphans.Load(); n > 0 {
			s.logf("segstore: removed %d slice files whose entries were lost (a crash before their flush)", n)
		}
		if rate < 0 {
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(scrubPause):
			}
			if err := s.scrubPass(ctx, rate); err != nil && ctx.Err() == nil {
				s.logf("segstore: scrub: %v", err)
			}
		}
	}()
}

// scrubPass walks every slice file once (see the file's doc), verifying
// them at rate bytes per second; with rate 0 it only removes orphans, as
// fast as it can.
func (s *Store) scrubPass(ctx context.Context, rate int64) error {
	start := time.Now()
	var read int64 // bytes read this pass, paced against rate
	tops, err := s.files.fs.List(s.files.root)
	if err != nil {
		return err
	}
	for _, top := range tops {
		objs, err := s.files.fs.List(filepath.Join(s.files.root, top))
		if err != nil {
			continue // removed meanwhile (a purge of everything)
		}
		for _, obj := range objs {
			h, err := strconv.ParseUint(obj, 16, 64)
			if err != nil || len(obj) != 16 {
				continue
			}
			dir := filepath.Join(s.files.root, top, obj)
			names, err := s.files.fs.List(dir)
			if err != nil {
				continue
			}
			if len(names) == 0 {
				s.removeEmptyDir(h, dir)
			}
			for _, name := range names {
				if ctx.Err() != nil {
					return nil
				}
				version, i, ok := parseFileName(name)
				if !ok {
					continue
				}
				if rate == 0 {
					if k := makeSliceKey(h, version, i); s.enter() == nil {
						_, _ = s.scrubEntry(h, k)
						s.exit()
					}
					continue
				}
				read += s.scrubFile(h, version, i)
				// Pace: sleep until the bytes read so far are due.
				if due := start.Add(time.Duration(float64(read) / float64(rate) * float64(time.Second))); time.Until(due) > 0 {
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(time.Until(due)):
					}
				}
			}
		}
	}
	if rate > 0 {
		s.scrub.passes.Add(1)
	}
	return nil
}

// removeEmptyDir removes an object directory left empty, under the key's
// lock so that no write is installing a file in it.
func (s *Store) removeEmptyDir(h uint64, dir string) {
	mu := s.keyLock(h)
	mu.Lock()
	defer mu.Unlock()
	_ = s.files.fs.Remove(dir) // fails unless still empty
}

// scrubFile checks the file of slice i of (h, version) and returns the
// bytes it read.
func (s *Store) scrubFile(h, version uint64, i int64) int64 {
	if s.enter() != nil {
		return 0
	}
	defer s.exit()
	k := makeSliceKey(h, version, i)
	v, err := s.scrubEntry(h, k)
	if err != nil || v == nil {
		return 0
	}
	ss := s.setOf(h, version)
	if ss == nil || !ss.stored(i) {
		return 0 // an entry the index does not know yet (a write committing) or any more
	}
	n := ss.sliceLen(i)
	f, err := s.files.open(h, version, i)
	if err != nil {
		return 0 // evicted meanwhile
	}
	st, err := f.Stat()
	bad := err
	if err == nil {
		bad = verifyFile(f, st.Size(), k[:], v, n)
	}
	pg, j := ss.pageOf(i)
	if pg != nil && pg.ref[j/64].Load()&(1<<(j%64)) == 0 {
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	}
	_ = f.Close()
	if bad != nil {
		if errors.Is(bad, fs.ErrNotExist) {
			return 0
		}
		m := &Meta{Key: ss.key, Version: ss.version, Size: ss.size, SliceSize: ss.sliceSize}
		_ = s.fileFailed(m, i, k, "scrub slice", bad)
		return n
	}
	s.scrub.verified.Add(1)
	s.scrub.slices.Add(1)
	s.scrub.bytes.Add(n)
	s.idx.setVerified(ss.key, ss.version, i)
	return n
}

// scrubEntry returns the entry under k, or nil after removing the file of
// an entry Pebble does not hold (an orphan), under the key's lock so that
// a write installing that file and committing its entry is not undone.
func (s *Store) scrubEntry(h uint64, k sliceKey) ([]byte, error) {
	get := func() ([]byte, error) {
		v, closer, err := s.db.Get(k[:])
		if err != nil {
			return nil, err
		}
		defer closer.Close()
		return append([]byte(nil), v...), nil
	}
	v, err := get()
	if !errors.Is(err, pebble.ErrNotFound) {
		return v, err
	}
	mu := s.keyLock(h)
	mu.Lock()
	defer mu.Unlock()
	v, err = get()
	if !errors.Is(err, pebble.ErrNotFound) {
		return v, err
	}
	_, version, i, _ := parseSliceKey(k[:])
	if err := s.files.remove(h, version, i); err == nil {
		s.scrub.orphans.Add(1)
	}
	return nil, nil
}

// setOf returns the index's set of the object with hash h at version, or
// nil.
func (s *Store) setOf(h, version uint64) *sliceSet {
	v, ok := s.idx.byHash.Load(h)
	if !ok {
		return nil
	}
	ss := v.(*sliceSet)
	if ss.version != version || ss.gone.Load() {
		return nil
	}
	return ss
}
