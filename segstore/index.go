package segstore

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
)

// index records which slices the store holds, per object, in memory, and
// keeps the clock the evictor runs (see evict.go). It holds one version per
// key: the one its meta names (older versions are deleted when the meta
// changes, and Open drops any it finds).
//
// Reads (has, stored, touch) take no lock, and touch writes only a slice's
// reference bit (and only when it is clear), so ReadSlice on a popular object
// scales across cores. Changes to one key's entry must be serialised by the
// caller (the store's per-key stripe lock).
//
// The clock is kept as a FIFO queue of slices in the order they were
// written, with reinsertion: the hand takes the oldest entry; a slice whose
// reference bit is set has the bit cleared and goes to the back (its second
// chance), one whose bit is clear is evicted. This is CLOCK (a hand going
// round a circle of frames, new frames inserted just behind it) laid out as
// a queue. Keeping write order, rather than going round object by object,
// is what lets Pebble give the disk back cheaply: victims come from the
// oldest blob files, which die whole or keep only a few hot slices that a
// blob rewrite copies out, instead of every blob file losing a slice here
// and there. Consecutive slices of one object written one after another
// share one queue entry (a run), so a sequential fill costs one entry.
type index struct {
	objects sync.Map // cache key → *sliceSet

	// clock is false for a store without a budget: nothing is queued. Set
	// by Open before anything else uses the index.
	clock bool

	// clockMu protects the queue (runs, head, seq) and every sliceSet's
	// stamps. Taken by writers (add) and the evictor; never by reads.
	clockMu sync.Mutex
	runs    []clockRun // runs[head:] is the queue, oldest first
	head    int
	seq     uint16 // stamp of the newest run
}

// clockRun is a queue entry: slices [first, first+n) of ss, written or given
// their second chance together. A slice belongs to the entry only while its
// stamp equals the entry's: a slice written again, or sent to the back, has
// a newer entry and is skipped in the older one.
type clockRun struct {
	ss    *sliceSet
	first int64
	n     int32
	stamp uint16
}

// clockVictim is a slice the hand chose to evict.
type clockVictim struct {
	ss *sliceSet
	i  int64
}

// sliceSet is the stored slices of one version of one object.
type sliceSet struct {
	// Fixed at creation.
	key       string
	hash      uint64 // keyHash(key)
	version   uint64
	size      int64
	sliceSize int64

	bits  []atomic.Uint64 // bit i set: slice i is stored; length fixed by the slice count
	ref   []atomic.Uint64 // bit i set: slice i was read since the hand last passed it
	count atomic.Int64    // bits set
	bytes atomic.Int64    // payload bytes of those slices

	stamps []uint16    // stamp of each slice's current queue entry; protected by index.clockMu
	gone   atomic.Bool // dropped from the index (purged, replaced): its queue entries are dead
}

func newSliceSet(m *Meta, clock bool) *sliceSet {
	words := (m.SliceCount() + 63) / 64
	ss := &sliceSet{
		key:       m.Key,
		hash:      keyHash(m.Key),
		version:   m.Version,
		size:      m.Size,
		sliceSize: m.SliceSize,
		bits:      make([]atomic.Uint64, words),
		ref:       make([]atomic.Uint64, words),
	}
	if clock {
		ss.stamps = make([]uint16, m.SliceCount())
	}
	return ss
}

// sliceLen is Meta.SliceLen for the object's version.
func (ss *sliceSet) sliceLen(i int64) int64 {
	if i < 0 || i*ss.sliceSize >= ss.size {
		return 0
	}
	return min(ss.sliceSize, ss.size-i*ss.sliceSize)
}

func (ss *sliceSet) stored(i int64) bool {
	return i >= 0 && i/64 < int64(len(ss.bits)) && ss.bits[i/64].Load()&(1<<(i%64)) != 0
}

func (x *index) load(key string) *sliceSet {
	v, ok := x.objects.Load(key)
	if !ok {
		return nil
	}
	return v.(*sliceSet)
}

// has reports whether slice i of (key, version) is stored.
func (x *index) has(key string, version uint64, i int64) bool {
	ss := x.load(key)
	return ss != nil && ss.version == version && ss.stored(i)
}

// touch sets the reference bit of slice i of (key, version), if stored: the
// clock will pass over it once more before evicting it. It writes shared
// memory only when the bit is clear, so hot slices cost one atomic load.
func (x *index) touch(key string, version uint64, i int64) {
	ss := x.load(key)
	if ss == nil || ss.version != version || i < 0 || i/64 >= int64(len(ss.ref)) {
		return
	}
	w, b := &ss.ref[i/64], uint64(1)<<(i%64)
	if w.Load()&b == 0 {
		w.Or(b)
	}
}

// add marks slice i of m's version as stored and queues it at the back of
// the clock (a slice written again is a new value in a new place on disk).
// It drops what the index held for another version of m.Key, and returns
// the change in the number of stored slices and bytes. New slices start
// with a clear reference bit: a slice written once and never read again is
// the first to go. The caller serialises changes to m.Key.
func (x *index) add(m *Meta, i int64) (dSlices, dBytes int64) {
	n := m.SliceLen(i)
	if n == 0 {
		return 0, 0
	}
	ss := x.load(m.Key)
	if ss == nil || ss.version != m.Version {
		if ss != nil {
			dSlices, dBytes = -ss.count.Load(), -ss.bytes.Load()
			ss.gone.Store(true)
		}
		ss = newSliceSet(m, x.clock)
		x.objects.Store(m.Key, ss)
	}
	if old := ss.bits[i/64].Or(1 << (i % 64)); old&(1<<(i%64)) == 0 {
		ss.count.Add(1)
		ss.bytes.Add(n)
		dSlices, dBytes = dSlices+1, dBytes+n
	}
	if x.clock {
		x.clockMu.Lock()
		x.push(ss, i)
		x.clockMu.Unlock()
	}
	return dSlices, dBytes
}

// push queues slice i of ss at the back, extending the last run if it ends
// just before i. The caller holds clockMu.
func (x *index) push(ss *sliceSet, i int64) {
	if k := len(x.runs) - 1; k >= x.head {
		if r := &x.runs[k]; r.ss == ss && r.first+int64(r.n) == i && r.n < math.MaxInt32 {
			r.n++
			ss.stamps[i] = r.stamp
			return
		}
	}
	if x.head > 0 && x.head >= len(x.runs)/2 { // reuse the popped half
		n := copy(x.runs, x.runs[x.head:])
		clear(x.runs[n:])
		x.runs, x.head = x.runs[:n], 0
	}
	x.seq++
	x.runs = append(x.runs, clockRun{ss: ss, first: i, n: 1, stamp: x.seq})
	ss.stamps[i] = x.seq
}

// remove marks slice i of (key, version), n payload bytes, as not stored
// (its queue entry dies with it). The caller serialises changes to key.
func (x *index) remove(key string, version uint64, i, n int64) (dSlices, dBytes int64) {
	ss := x.load(key)
	if ss == nil || ss.version != version || i < 0 || i/64 >= int64(len(ss.bits)) {
		return 0, 0
	}
	if old := ss.bits[i/64].And(^(1 << (i % 64))); old&(1<<(i%64)) == 0 {
		return 0, 0
	}
	ss.ref[i/64].And(^(1 << (i % 64)))
	ss.count.Add(-1)
	ss.bytes.Add(-n)
	return -1, -n
}

// drop forgets every slice of key. The caller serialises changes to key.
func (x *index) drop(key string) (dSlices, dBytes int64) {
	v, ok := x.objects.LoadAndDelete(key)
	if !ok {
		return 0, 0
	}
	ss := v.(*sliceSet)
	ss.gone.Store(true)
	return -ss.count.Load(), -ss.bytes.Load()
}

// clear forgets everything. The caller holds every stripe lock.
func (x *index) clear() {
	x.objects.Range(func(k, v any) bool {
		v.(*sliceSet).gone.Store(true)
		return true
	})
	x.objects.Clear()
	x.clockMu.Lock()
	defer x.clockMu.Unlock()
	clear(x.runs) // let the slice sets go
	x.runs, x.head = x.runs[:0], 0
}

// stored returns the number of stored slices of (key, version) and, for each
// of the object's count slices, whether it is stored.
func (x *index) stored(key string, version uint64, count int64) (int64, []bool) {
	out := make([]bool, max(count, 0))
	ss := x.load(key)
	if ss == nil || ss.version != version {
		return 0, out
	}
	var n int64
	for w := range ss.bits {
		word := ss.bits[w].Load()
		for word != 0 {
			b := bits.TrailingZeros64(word)
			word &^= 1 << b
			if i := int64(w)*64 + int64(b); i < count {
				out[i] = true
				n++
			}
		}
	}
	return n, out
}

// queued returns the number of runs in the clock queue.
func (x *index) queued() int {
	x.clockMu.Lock()
	defer x.clockMu.Unlock()
	return len(x.runs) - x.head
}

// sweep runs the clock hand over at most limit queue positions, for at least
// need bytes of victims. Each stored slice met whose reference bit is set has
// it cleared and goes to the back of the queue; one whose bit is clear
// becomes a victim. Entries of objects gone and slices since written again,
// evicted or sent back are dropped on the way. sweep returns the victims
// (in queue order, so those of one object tend to be adjacent), their bytes,
// and the number of stored slices it looked at. Victims leave the queue:
// the caller deletes them under the key's stripe lock, checking that they
// are still stored, or gives them back with requeue.
func (x *index) sweep(need int64, limit int) (victims []clockVictim, vBytes int64, looked int) {
	x.clockMu.Lock()
	defer x.clockMu.Unlock()
	for steps := 0; x.head < len(x.runs) && vBytes < need && steps < limit; steps++ {
		r := &x.runs[x.head]
		ss, i, stamp := r.ss, r.first, r.stamp
		if r.n == 1 || ss.gone.Load() {
			*r = clockRun{}
			x.head++
		} else {
			r.first++
			r.n--
		}
		if ss.gone.Load() || !ss.stored(i) || ss.stamps[i] != stamp {
			continue
		}
		looked++
		if w, b := &ss.ref[i/64], uint64(1)<<(i%64); w.Load()&b != 0 {
			w.And(^b)
			x.push(ss, i)
			continue
		}
		victims = append(victims, clockVictim{ss, i})
		vBytes += ss.sliceLen(i)
	}
	return victims, vBytes, looked
}

// requeue puts back victims that could not be evicted and are still stored.
func (x *index) requeue(victims []clockVictim) {
	x.clockMu.Lock()
	defer x.clockMu.Unlock()
	for _, v := range victims {
		if !v.ss.gone.Load() && v.ss.stored(v.i) {
			x.push(v.ss, v.i)
		}
	}
}

// prune drops dead entries from the queue (objects gone, runs whose slices
// all moved on or were evicted), so that purges and version changes in a
// store under its budget, where the hand does not move, cannot grow it
// without bound.
func (x *index) prune() {
	x.clockMu.Lock()
	defer x.clockMu.Unlock()
	live := x.runs[:0]
	for _, r := range x.runs[x.head:] {
		if r.ss.gone.Load() {
			continue
		}
		for j := r.first; j < r.first+int64(r.n); j++ {
			if r.ss.stored(j) && r.ss.stamps[j] == r.stamp {
				live = append(live, r)
				break
			}
		}
	}
	clear(x.runs[len(live):])
	x.runs, x.head = live, 0
}
