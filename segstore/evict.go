package segstore

import (
	"errors"
	"fmt"
	"sync"
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
)

// evictor is the state of the background goroutine that keeps the store
// within its budget. An eviction deletes entries and files: the disk of a
// file comes back when it is removed, with nothing to compact first.
type evictor struct {
	budget, high, low int64 // bytes: MaxBytes and its watermarks
	memtable          int64 // Pebble's memtable size: headroom for one flush

	kick chan struct{} // buffered; a write crossed the high-water mark or was refused
	stop chan struct{} // closed by Close
	done sync.WaitGroup
}

func newEvictor(budget, memtable int64, high, low float64) *evictor {
	return &evictor{
		budget:   budget,
		high:     int64(float64(budget) * high),
		low:      int64(float64(budget) * low),
		memtable: memtable,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// startEvictor starts the evictor; Close stops it.
func (s *Store) startEvictor() {
	e := s.ev
	e.done.Add(1)
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
}

// evictRound samples Pebble's disk usage and, if the store uses more than
// the high-water mark, evicts slices until it is under the low-water mark.
func (s *Store) evictRound() {
	e := s.ev
	if s.ctl.writeErr() != nil {
		return // deletions could not be written either; retry when healthy
	}
	s.sampleDisk()
	if q := s.idx.queued(); int64(q) > 2*s.slices.Load()+4096 {
		s.idx.prune()
	}
	if used := s.used(); used > e.high {
		s.evict(used - e.low)
	}
}

// fileBytes is the disk the slice files take: their bytes, and a block
// each for the last block's unused part, the inode and the directory entry.
func (s *Store) fileBytes() int64 {
	return s.bytes.Load() + s.slices.Load()*fileBlock
}

// used is what the budget counts: the slice files, and Pebble's disk usage
// at the last sample (at most evictTick old) plus what it will write once
// its memtables are flushed.
func (s *Store) used() int64 {
	return s.fileBytes() + s.diskEstimate()
}

// diskEstimate is the disk Pebble will use once its memtables are flushed,
// if nothing is compacted meanwhile: the disk usage at the last sample, plus
// what flushes have written since, plus what awaits a flush.
func (s *Store) diskEstimate() int64 {
	return s.disk.Load() + s.ctl.flushedSince.Load() + s.ctl.unflushed.Load()
}

// sampleDisk returns Pebble's disk usage now, and keeps it for Stats and
// for the admission of writes (see overBudget).
func (s *Store) sampleDisk() int64 {
	s.ctl.flushedSince.Store(0) // before sampling: what lands meanwhile counts twice, not never
	d := int64(diskUsage(s.db.Metrics()))
	s.disk.Store(d)
	return d
}

// overBudget returns an error if a write of n more bytes must be refused
// because the store is full: it would use more than its budget. Refusals
// happen only when writes outrun eviction.
func (s *Store) overBudget(n int64) error {
	if s.ev == nil {
		return nil
	}
	used := s.used()
	if used+n+fileBlock <= s.ev.budget {
		return nil
	}
	signal(s.ev.kick)
	return fmt.Errorf("%w: store full (%d bytes used, budget %d): eviction has not caught up", ErrWriteFailed, used, s.ev.budget)
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
		s.removeFile(ss.hash, ss.version, i)
	}
	if ss.count.Load() == 0 {
		_ = s.files.fs.Remove(s.files.objectDir(ss.hash)) // fails unless empty, as it should
	}
	s.evictedBytes.Add(freed)
	if dropMeta {
		s.uncacheMeta(ss.key)
		s.idx.drop(ss.key)
		s.objects.Add(-1)
	}
	return freed, nil
}
