package segstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Default watermarks, as fractions of Options.MaxBytes.
const (
	DefaultHighWater = 0.95
	DefaultLowWater  = 0.90
)

const (
	// evictTick is how often the evictor samples Pebble's disk usage when no
	// write has woken it.
	evictTick = 100 * time.Millisecond
	// sweepLimit bounds the queue entries the hand goes through per hold of
	// the clock lock, so that a writer queueing a slice never waits long.
	sweepLimit = 4096
	// metaBytesPerObject is the budget share one meta may use before metas of
	// objects whose every slice was evicted are evicted with their last
	// slice: one meta (~0.3-1 KiB) per 64 KiB of budget, 1.5% at worst.
	metaBytesPerObject = 64 << 10
	minMetaCap         = 4096
	// stuckAfter is how long writes may be refused, with disk usage over
	// the high-water mark after compactions, before the evictor decides that
	// Pebble cannot give the garbage back and evicts deeper.
	stuckAfter = 30 * time.Second
)

// evictor is the state of the background goroutines that keep the store
// within its budget: the evictor proper, which runs the clock and never
// waits for Pebble's background work, and the reclaimer, which makes Pebble
// give back the disk of what was evicted (flushes and compactions take
// tens of milliseconds to seconds; eviction must go on meanwhile).
type evictor struct {
	budget, high, low int64 // bytes: MaxBytes and its watermarks
	memtable          int64 // Pebble's memtable size: headroom for one flush

	kick    chan struct{} // buffered; a write crossed the high-water mark or was refused
	reclaim chan struct{} // buffered; the evictor asks the reclaimer to run
	stop    chan struct{} // closed by Close
	done    sync.WaitGroup

	// overhead is what the disk holds besides slice values, or will: the
	// sstables (keys, blob handles, metas) at the last sample and a
	// memtable. The watermarks apply to stored slices plus overhead.
	overhead    atomic.Int64
	deeper      atomic.Int64 // how much further to evict while Pebble cannot give back garbage
	refused     atomic.Bool  // a write was refused for want of room since the last reclaim
	wantCompact atomic.Bool  // PurgeAll asks for a compaction

	// Owned by the reclaimer goroutine.
	compactedAt   time.Time     // when the last compaction of the slice keys started
	compactTook   time.Duration // and how long it took
	refusingSince time.Time     // since when every round has seen writes refused; zero if not
}

func newEvictor(budget, memtable int64, high, low float64) *evictor {
	return &evictor{
		budget:   budget,
		high:     int64(float64(budget) * high),
		low:      int64(float64(budget) * low),
		memtable: memtable,
		kick:     make(chan struct{}, 1),
		reclaim:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// startEvictor starts the evictor and the reclaimer; Close stops them.
func (s *Store) startEvictor(ctx context.Context) {
	e := s.ev
	e.done.Add(2)
	go func() {
		defer e.done.Done()
		t := time.NewTicker(evictTick)
		defer t.Stop()
		for {
			select {
			case <-e.stop:
				return
			case <-e.kick:
			case <-t.C:
			}
			s.evictRound()
		}
	}()
	go func() {
		defer e.done.Done()
		for {
			select {
			case <-e.stop:
				return
			case <-e.reclaim:
			}
			if err := s.reclaimRound(ctx); err != nil && ctx.Err() == nil {
				s.logf("segstore: reclaim disk: %v", err)
			}
		}
	}()
}

// evictRound samples Pebble's disk usage and, if the slices stored plus the
// overhead exceed the high-water mark, evicts slices until they are under
// the low-water mark; and if Pebble's disk usage (estimated, see
// diskEstimate) exceeds the low-water mark, asks the reclaimer to run.
func (s *Store) evictRound() {
	e := s.ev
	if s.ctl.writeErr() != nil {
		return // deletions could not be written either; retry when healthy
	}
	s.sampleDisk()
	if q := s.idx.queued(); int64(q) > 2*s.slices.Load()+4096 {
		s.idx.prune()
	}
	over := e.overhead.Load() + e.deeper.Load()
	if live := s.bytes.Load(); live+over > e.high {
		s.evict(live + over - e.low)
	}
	if est := s.diskEstimate(); est > e.low || e.wantCompact.Load() {
		signal(e.reclaim)
	}
}

// reclaimRound makes Pebble give back the disk of evicted slices. A deletion
// frees disk only once flushed, compacted onto the key it deletes, and once
// the blob file holding the value is deleted (all its values dead) or
// rewritten (enough of them dead). So the round has Pebble rewrite blob
// files at the tight garbage ratio (which frees the files a few hot slices
// pin) and flushes once a quarter of a memtable awaits a flush. When disk
// usage nears the budget (the estimate is over the high-water mark, or
// writes were refused), it also compacts the slice keys, which deletes the
// blob files whose slices are all gone at once rather than when Pebble's own
// compactions get to them: CLOCK evicts in write order, so old files die
// whole. That compaction is cheap (with value separation the slice keys are
// keys and blob handles, not slice bytes), but its cost grows with their
// number, so it runs at most half of the time.
//
// The garbage ratio relaxes once disk usage is under the low-water mark. If
// writes have been refused for stuckAfter with disk usage still over the
// high-water mark after compactions, Pebble is not giving garbage back: the
// evictor then goes deeper, by 1% of the budget per round, trading stored
// slices for room to admit new ones; the depth halves again once disk usage
// is under the low-water mark.
func (s *Store) reclaimRound(ctx context.Context) error {
	e := s.ev
	s.ctl.setGarbageRatio(garbageRatioTight)
	urgent := s.diskEstimate() > e.high || e.refused.Load()
	if !e.wantCompact.Swap(false) && (!urgent || time.Since(e.compactedAt) < 2*e.compactTook) {
		if s.ctl.unflushed.Load() < e.memtable/4 {
			return nil
		}
		if err := s.flush(ctx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		return nil
	}
	if err := s.flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	e.compactedAt = time.Now()
	err := s.db.Compact(ctx, []byte{slicePrefix}, []byte{slicePrefix + 1}, false)
	e.compactTook = time.Since(e.compactedAt)
	if err != nil {
		return fmt.Errorf("compact slice keys: %w", err)
	}
	disk := s.sampleDisk()
	switch refused := e.refused.Swap(false); {
	case refused && e.refusingSince.IsZero():
		e.refusingSince = time.Now()
	case refused && disk > e.high && time.Since(e.refusingSince) > stuckAfter:
		e.deeper.Store(min(e.deeper.Load()+e.budget/100, e.low/2))
		signal(e.kick)
	case !refused:
		e.refusingSince = time.Time{}
		if disk < e.low {
			e.deeper.Store(e.deeper.Load() / 2)
			s.ctl.setGarbageRatio(garbageRatioNormal)
		}
	}
	return nil
}

// diskEstimate is the disk Pebble will use once its memtables are flushed,
// if nothing is compacted meanwhile: the disk usage at the last sample (at
// most evictTick old), plus what flushes have written since, plus what
// awaits a flush.
func (s *Store) diskEstimate() int64 {
	return s.disk.Load() + s.ctl.flushedSince.Load() + s.ctl.unflushed.Load()
}

// sampleDisk returns Pebble's disk usage now, and keeps it for Stats and
// for the admission of writes (see overBudget).
func (s *Store) sampleDisk() int64 {
	s.ctl.flushedSince.Store(0) // before sampling: what lands meanwhile counts twice, not never
	m := s.db.Metrics()
	d := int64(diskUsage(m))
	s.disk.Store(d)
	if s.ev != nil {
		s.ev.overhead.Store(int64(m.Table.Local.LiveSize) + s.ev.memtable)
	}
	return d
}

// overBudget returns an error if a write of n more bytes must be refused
// because the store is full: the slices stored, or the disk Pebble will use
// once its memtables are flushed (diskEstimate), would exceed the budget.
// Refusals happen only when writes outrun eviction and compaction.
func (s *Store) overBudget(n int64) error {
	if s.ev == nil {
		return nil
	}
	live, disk := s.bytes.Load(), s.diskEstimate()
	if live+n <= s.ev.budget && disk+n <= s.ev.budget {
		return nil
	}
	s.ev.refused.Store(true)
	signal(s.ev.kick)
	signal(s.ev.reclaim)
	return fmt.Errorf("%w: store full (%d bytes stored, ~%d on disk, budget %d): eviction and compaction have not caught up", ErrWriteFailed, live, disk, s.ev.budget)
}

// evict runs the clock hand until it has evicted need bytes of slices, or
// looked at every stored slice twice (the first time round may only clear
// reference bits). It returns the bytes evicted.
func (s *Store) evict(need int64) (freed int64) {
	looks := 2*s.slices.Load() + 64
	for freed < need && looks > 0 {
		victims, _, looked := s.idx.sweep(need-freed, sweepLimit)
		if looked == 0 && len(victims) == 0 && s.idx.queued() == 0 {
			break
		}
		looks -= int64(looked) + 1
		// One batch per object: victims of one object are adjacent when
		// its slices were written together.
		for len(victims) > 0 {
			n := 1
			for n < len(victims) && victims[n].ss == victims[0].ss {
				n++
			}
			f, err := s.evictSlices(victims[0].ss, victims[:n])
			freed += f
			if err != nil {
				s.idx.requeue(victims)
				if !errors.Is(err, ErrWriteFailed) {
					s.logf("segstore: evict from %q: %v", victims[0].ss.key, err)
				}
				return freed
			}
			victims = victims[n:]
		}
	}
	return freed
}

// evictSlices deletes the victims of ss that are still stored, in one batch,
// and returns the bytes freed.
func (s *Store) evictSlices(ss *sliceSet, victims []clockVictim) (int64, error) {
	mu := s.keyLock(ss.hash)
	mu.Lock()
	defer mu.Unlock()
	if s.idx.load(ss.key) != ss {
		return 0, nil // purged or replaced since the sweep
	}
	b := s.db.NewBatch()
	defer b.Close()
	gone := make([]int64, 0, len(victims))
	for _, v := range victims {
		if ss.stored(v.i) {
			k := makeSliceKey(ss.hash, ss.version, v.i)
			_ = b.Delete(k[:], nil)
			gone = append(gone, v.i)
		}
	}
	// Metas are kept when their object's last slice goes (a meta is small
	// and lets the edge revalidate rather than refetch), unless metas have
	// grown past their share of the budget (metaBytesPerObject).
	dropMeta := ss.count.Load() == int64(len(gone)) && s.objects.Load() > s.metaCap
	if dropMeta {
		_ = b.Delete(metaKey(ss.key), nil)
	}
	if b.Empty() {
		return 0, nil
	}
	if err := s.commit(b); err != nil {
		return 0, err
	}
	var freed int64
	for _, i := range gone {
		dSlices, dBytes := s.idx.remove(ss.key, ss.version, i, ss.sliceLen(i))
		s.apply(dSlices, dBytes)
		s.evictions.Add(-dSlices)
		freed -= dBytes
	}
	s.evictedBytes.Add(freed)
	if dropMeta {
		s.uncacheMeta(ss.key)
		s.idx.drop(ss.key)
		s.objects.Add(-1)
	}
	return freed, nil
}
