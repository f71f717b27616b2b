package segstore

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/sliceedge/sliceedge/internal/invariants"
	"github.com/sliceedge/sliceedge/slicer"
)

// index records which slices the store holds, per object, in memory, and
// keeps the clock the evictor runs (see evict.go). It holds one version per
// key: the one its meta names (older versions are deleted when the meta
// changes, and Open drops any it finds).
//
// Reads (has, storedRuns, countStored, touch) take no lock, and touch writes only a slice's
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
// is what it always was (values of one Pebble blob file died together when
// slices lived in Pebble); with slices in files of their own it costs
// nothing and keeps the queue short. Consecutive slices of one object written one after another
// share one queue entry (a run), so a sequential fill costs one entry.
type index struct {
	objects sync.Map // cache key → *sliceSet
	byHash  sync.Map // keyHash(cache key) → *sliceSet, for the scrubber, which finds files by hash

	// clock is false for a store without a budget: nothing is queued. Set
	// by Open before anything else uses the index.
	clock bool

	// clockMu protects the queue (runs, head, seq) and the stamps of every
	// sliceSet's pages. Taken by writers (add) and the evictor; never by reads.
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

// The slice set of an object is sparse, so that memory and work grow with
// the slices stored, never with the size an origin claims: an origin may
// say its object has 2^63-1 bytes, and a client may then ask for its last
// byte. The slices are grouped in pages of pageSlices consecutive slices;
// a page (its stored bits, reference bits and clock stamps) exists only
// while at least one of its slices is stored: add allocates it, remove
// frees it when its last slice goes, and with it any directory node left
// empty. Pages are found through a radix tree of directory nodes with
// dirFanout children each, tall enough for the object's page count: one
// leaf for objects of up to dirFanout pages (64 Ki slices: 64 GiB of
// 1 MiB slices), at most 9 levels for the largest object (2^63 slices of
// one byte). Readers walk it with atomic loads and no lock; writers of one
// key are serialised by the caller, and publish a page or node only once
// it is initialised.
//
// A page of pageSlices slices costs 2 × 128 bytes of bits and, with a
// clock, 2 KiB of stamps; a node 512 bytes. The last page and the nodes at
// the end of the object are cut to what they cover, so an object of one
// slice costs a few words, as a dense set would. The worst case is a
// store whose objects hold one slice per page (a client reading one
// slice every GiB of 1 MiB slices): about 3 KiB per stored slice, on top
// of the slice itself.
const (
	pageShift  = 10
	pageSlices = 1 << pageShift
	dirShift   = 6
	dirFanout  = 1 << dirShift
)

// slicePage is the state of the slices [p*pageSlices, p*pageSlices+n) of
// one sliceSet, for page p.
type slicePage struct {
	bits   []atomic.Uint64 // bit j set: slice j of the page is stored
	ref    []atomic.Uint64 // bit j set: slice j was read since the hand last passed it
	ver    []atomic.Uint64 // bit j set: slice j's file was verified (or written) by this process
	count  atomic.Int64    // bits set; changed by the key's writer only
	stamps []uint16        // stamp of each slice's current queue entry; protected by index.clockMu; nil without a clock
}

func newSlicePage(n int64, clock bool) *slicePage {
	words := (n + 63) / 64
	pg := &slicePage{bits: make([]atomic.Uint64, words), ref: make([]atomic.Uint64, words), ver: make([]atomic.Uint64, words)}
	if clock {
		pg.stamps = make([]uint16, n)
	}
	return pg
}

func (pg *slicePage) has(j int64) bool { return pg.bits[j/64].Load()&(1<<(j%64)) != 0 }

// dirNode is a node of a sliceSet's page directory. A node of height h
// covers dirFanout^(h+1) pages from a multiple of that; a leaf (h = 0)
// holds pages, any other node holds nodes of height h-1. Entries past the
// object's last page are not allocated.
type dirNode struct {
	kids  []atomic.Pointer[dirNode]   // h > 0
	pages []atomic.Pointer[slicePage] // h = 0
	live  int                         // non-nil entries; changed by the key's writer only, read by nobody else
}

// newDirNode returns an empty node of height h covering pages from base,
// for an object of n pages.
func newDirNode(h int, base, n int64) *dirNode {
	unit := int64(1) << (dirShift * h) // pages under one entry
	entries := min(dirFanout, (n-base+unit-1)/unit)
	if h == 0 {
		return &dirNode{pages: make([]atomic.Pointer[slicePage], entries)}
	}
	return &dirNode{kids: make([]atomic.Pointer[dirNode], entries)}
}

// sliceSet is the stored slices of one version of one object.
type sliceSet struct {
	// Fixed at creation.
	key       string
	hash      uint64 // keyHash(key)
	version   uint64
	size      int64
	sliceSize int64
	slices    int64    // the object's slice count
	pages     int64    // its page count
	height    int      // of root
	root      *dirNode // never nil
	clock     bool     // pages have stamps

	count atomic.Int64 // slices stored
	bytes atomic.Int64 // payload bytes of those slices
	gone  atomic.Bool  // dropped from the index (purged, replaced): its queue entries are dead
}

func newSliceSet(m *Meta, clock bool) *sliceSet {
	ss := &sliceSet{
		key:       m.Key,
		hash:      keyHash(m.Key),
		version:   m.Version,
		size:      m.Size,
		sliceSize: m.SliceSize,
		slices:    m.SliceCount(),
		clock:     clock,
	}
	if ss.slices > 0 {
		ss.pages = (ss.slices-1)>>pageShift + 1 // without overflow: an object may have 2^63-1 slices
	}
	for span := int64(dirFanout); span < ss.pages; span <<= dirShift {
		ss.height++
	}
	ss.root = newDirNode(ss.height, 0, ss.pages)
	return ss
}

// sliceLen is Meta.SliceLen for the object's version.
func (ss *sliceSet) sliceLen(i int64) int64 {
	if i < 0 || i*ss.sliceSize >= ss.size {
		return 0
	}
	return min(ss.sliceSize, ss.size-i*ss.sliceSize)
}

// pageLen is the number of slices of page p.
func (ss *sliceSet) pageLen(p int64) int64 {
	return min(pageSlices, ss.slices-p<<pageShift)
}

// page returns page p, or nil if none of its slices is stored. p must be a
// page of the object.
func (ss *sliceSet) page(p int64) *slicePage {
	n := ss.root
	for h := ss.height; h > 0; h-- {
		if n = n.kids[(p>>(dirShift*h))&(dirFanout-1)].Load(); n == nil {
			return nil
		}
	}
	return n.pages[p&(dirFanout-1)].Load()
}

// pageOf returns the page holding slice i and i's place in it; pg is nil
// if i is not a slice of the object or its page does not exist.
func (ss *sliceSet) pageOf(i int64) (pg *slicePage, j int64) {
	if i < 0 || i >= ss.slices {
		return nil, 0
	}
	return ss.page(i >> pageShift), i & (pageSlices - 1)
}

func (ss *sliceSet) stored(i int64) bool {
	pg, j := ss.pageOf(i)
	return pg != nil && pg.has(j)
}

// makePage returns page p, creating it and the nodes above it if missing.
// The caller is the key's writer.
func (ss *sliceSet) makePage(p int64) *slicePage {
	n := ss.root
	for h := ss.height; h > 0; h-- {
		e := &n.kids[(p>>(dirShift*h))&(dirFanout-1)]
		next := e.Load()
		if next == nil {
			base := p >> (dirShift * h) << (dirShift * h) // first page under the child
			next = newDirNode(h-1, base, ss.pages)
			e.Store(next)
			n.live++
		}
		n = next
	}
	e := &n.pages[p&(dirFanout-1)]
	pg := e.Load()
	if pg == nil {
		pg = newSlicePage(ss.pageLen(p), ss.clock)
		e.Store(pg)
		n.live++
	}
	return pg
}

// freePage unlinks page p, which has no slice stored any more, and every
// node it leaves empty. Readers holding them see a snapshot that says
// nothing is stored, which is true. The caller is the key's writer.
func (ss *sliceSet) freePage(p int64) {
	var path [16]*dirNode // 9 levels at most
	n := ss.root
	for h := ss.height; h > 0; h-- {
		path[h] = n
		if n = n.kids[(p>>(dirShift*h))&(dirFanout-1)].Load(); n == nil {
			return
		}
	}
	n.pages[p&(dirFanout-1)].Store(nil)
	n.live--
	for h := 1; h <= ss.height && n.live == 0; h++ {
		n = path[h]
		n.kids[(p>>(dirShift*h))&(dirFanout-1)].Store(nil)
		n.live--
	}
}

// eachPage calls fn for every existing page p with lo <= p <= hi, in
// ascending order, until fn returns false. It costs O(existing pages and
// nodes in the span), whatever the span.
func (ss *sliceSet) eachPage(lo, hi int64, fn func(p int64, pg *slicePage) bool) {
	hi = min(hi, ss.pages-1)
	if lo < 0 {
		lo = 0
	}
	if lo > hi {
		return
	}
	ss.root.each(ss.height, 0, lo, hi, fn)
}

func (n *dirNode) each(h int, base, lo, hi int64, fn func(p int64, pg *slicePage) bool) bool {
	shift := dirShift * h
	c0, c1 := max(lo-base, 0)>>shift, (hi-base)>>shift
	if h == 0 {
		for c := c0; c <= c1 && c < int64(len(n.pages)); c++ {
			if pg := n.pages[c].Load(); pg != nil && !fn(base+c, pg) {
				return false
			}
		}
		return true
	}
	for c := c0; c <= c1 && c < int64(len(n.kids)); c++ {
		if k := n.kids[c].Load(); k != nil && !k.each(h-1, base+c<<shift, lo, hi, fn) {
			return false
		}
	}
	return true
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
	if ss == nil || ss.version != version {
		return
	}
	pg, j := ss.pageOf(i)
	if pg == nil {
		return
	}
	w, b := &pg.ref[j/64], uint64(1)<<(j%64)
	if w.Load()&b == 0 {
		w.Or(b)
	}
}

// verified reports whether slice i of (key, version) is stored and its file
// was verified against its checksums, or written, by this process.
func (x *index) verified(key string, version uint64, i int64) bool {
	ss := x.load(key)
	if ss == nil || ss.version != version {
		return false
	}
	pg, j := ss.pageOf(i)
	return pg != nil && pg.has(j) && pg.ver[j/64].Load()&(1<<(j%64)) != 0
}

// setVerified records that slice i of (key, version), if still stored,
// was verified.
func (x *index) setVerified(key string, version uint64, i int64) {
	ss := x.load(key)
	if ss == nil || ss.version != version {
		return
	}
	if pg, j := ss.pageOf(i); pg != nil {
		pg.ver[j/64].Or(1 << (j % 64))
	}
}

// add marks slice i of m's version as stored, verified if written by this
// process, and queues it at the back of the clock (a slice written again
// is new).
// It drops what the index held for another version of m.Key, and returns
// the change in the number of stored slices and bytes. New slices start
// with a clear reference bit: a slice written once and never read again is
// the first to go. The caller serialises changes to m.Key.
func (x *index) add(m *Meta, i int64, verified bool) (dSlices, dBytes int64) {
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
		x.byHash.Store(ss.hash, ss)
	}
	if invariants.Enabled {
		ss.checkMeta(m)
	}
	pg, j := ss.makePage(i>>pageShift), i&(pageSlices-1)
	if verified {
		pg.ver[j/64].Or(1 << (j % 64))
	} else {
		pg.ver[j/64].And(^(1 << (j % 64)))
	}
	if old := pg.bits[j/64].Or(1 << (j % 64)); old&(1<<(j%64)) == 0 {
		pg.count.Add(1)
		ss.count.Add(1)
		ss.bytes.Add(n)
		dSlices, dBytes = dSlices+1, dBytes+n
	}
	if invariants.Enabled {
		ss.check()
	}
	if x.clock {
		x.clockMu.Lock()
		x.push(ss, i)
		x.clockMu.Unlock()
	}
	return dSlices, dBytes
}

// push queues slice i of ss at the back, extending the last run if it ends
// just before i. The caller holds clockMu. A slice whose page is gone (its
// last slice removed meanwhile) is not stored and not queued.
func (x *index) push(ss *sliceSet, i int64) {
	pg, j := ss.pageOf(i)
	if pg == nil {
		return
	}
	if k := len(x.runs) - 1; k >= x.head {
		if r := &x.runs[k]; r.ss == ss && r.first+int64(r.n) == i && r.n < math.MaxInt32 {
			r.n++
			pg.stamps[j] = r.stamp
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
	pg.stamps[j] = x.seq
}

// remove marks slice i of (key, version), n payload bytes, as not stored
// (its queue entry dies with it), freeing its page if it was the page's
// last. The caller serialises changes to key.
func (x *index) remove(key string, version uint64, i, n int64) (dSlices, dBytes int64) {
	ss := x.load(key)
	if ss == nil || ss.version != version {
		return 0, 0
	}
	pg, j := ss.pageOf(i)
	if pg == nil {
		return 0, 0
	}
	if old := pg.bits[j/64].And(^(1 << (j % 64))); old&(1<<(j%64)) == 0 {
		return 0, 0
	}
	if invariants.Enabled {
		invariants.Check(n == ss.sliceLen(i), "segstore: removing slice %d of %q version %016x as %d bytes; the version's slice has %d",
			i, key, version, n, ss.sliceLen(i))
	}
	pg.ref[j/64].And(^(1 << (j % 64)))
	pg.ver[j/64].And(^(1 << (j % 64)))
	if pg.count.Add(-1) == 0 {
		ss.freePage(i >> pageShift)
	}
	ss.count.Add(-1)
	ss.bytes.Add(-n)
	if invariants.Enabled {
		ss.check()
	}
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
	x.byHash.CompareAndDelete(ss.hash, ss)
	return -ss.count.Load(), -ss.bytes.Load()
}

// clear forgets everything. The caller holds every stripe lock.
func (x *index) clear() {
	x.objects.Range(func(k, v any) bool {
		v.(*sliceSet).gone.Store(true)
		return true
	})
	x.objects.Clear()
	x.byHash.Clear()
	x.clockMu.Lock()
	defer x.clockMu.Unlock()
	clear(x.runs) // let the slice sets go
	x.runs, x.head = x.runs[:0], 0
}

// storedRuns returns the stored slices of (key, version) as runs of
// consecutive slices, ascending, and their number. It costs O(pages
// stored + runs), whatever the object's size.
func (x *index) storedRuns(key string, version uint64) (n int64, runs []slicer.Run) {
	ss := x.load(key)
	if ss == nil || ss.version != version {
		return 0, nil
	}
	ss.eachPage(0, math.MaxInt64, func(p int64, pg *slicePage) bool {
		for w := range pg.bits {
			word, off := pg.bits[w].Load(), int64(0)
			base := p<<pageShift + int64(w)*64
			for word != 0 {
				z := int64(bits.TrailingZeros64(word)) // clear bits before the run
				word >>= z
				o := int64(bits.TrailingZeros64(^word)) // its length; 64 when word is all ones
				word >>= o                              // 0 when o is 64
				first := base + off + z
				if k := len(runs) - 1; k >= 0 && runs[k].Last+1 == first {
					runs[k].Last += o
				} else {
					runs = append(runs, slicer.Run{First: first, Last: first + o - 1})
				}
				off += z + o
				n += o
			}
		}
		return true
	})
	return n, runs
}

// countStored returns the number of slices of (key, version) stored in
// [first, last]. It costs O(pages stored in the span), whatever its length.
func (x *index) countStored(key string, version uint64, first, last int64) int64 {
	ss := x.load(key)
	if ss == nil || ss.version != version {
		return 0
	}
	first, last = max(first, 0), min(last, ss.slices-1)
	if first > last {
		return 0
	}
	var n int64
	ss.eachPage(first>>pageShift, last>>pageShift, func(p int64, pg *slicePage) bool {
		lo, hi := max(first-p<<pageShift, 0), min(last-p<<pageShift, ss.pageLen(p)-1) // in the page
		if lo == 0 && hi == ss.pageLen(p)-1 {
			n += pg.count.Load()
			return true
		}
		for w := lo / 64; w <= hi/64; w++ {
			word := pg.bits[w].Load()
			if w == lo/64 {
				word &= ^uint64(0) << (lo % 64)
			}
			if w == hi/64 {
				word &= ^uint64(0) >> (63 - hi%64)
			}
			n += int64(bits.OnesCount64(word))
		}
		return true
	})
	return n
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
		if ss.gone.Load() {
			continue
		}
		pg, j := ss.pageOf(i)
		if pg == nil || !pg.has(j) || pg.stamps[j] != stamp {
			continue
		}
		looked++
		if w, b := &pg.ref[j/64], uint64(1)<<(j%64); w.Load()&b != 0 {
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
		for i, end := r.first, r.first+int64(r.n); i < end; {
			pg, j := r.ss.pageOf(i)
			if pg == nil { // none of the page's slices is stored: skip it
				i = (i>>pageShift + 1) << pageShift
				continue
			}
			if pg.has(j) && pg.stamps[j] == r.stamp {
				live = append(live, r)
				break
			}
			i++
		}
	}
	clear(x.runs[len(live):])
	x.runs, x.head = live, 0
}

// checkMeta panics (under -tags invariants) unless ss, the set of m's
// version, has the size and slice size m says: a version's never change,
// and the set's slice lengths and byte counts come from them.
func (ss *sliceSet) checkMeta(m *Meta) {
	invariants.Check(ss.key == m.Key && ss.version == m.Version && ss.size == m.Size && ss.sliceSize == m.SliceSize,
		"segstore: index set of %q version %016x (size %d, slice size %d) used for meta %q version %016x (size %d, slice size %d)",
		ss.key, ss.version, ss.size, ss.sliceSize, m.Key, m.Version, m.Size, m.SliceSize)
}

// check panics (under -tags invariants) unless ss's counts match its bits:
// every page's count is its bits set, and not 0 (a page goes with its last
// slice); no bit is set past the page's last slice; every node's live is
// its non-nil entries; the set's count and bytes are the sums over its
// pages. The caller is the key's writer, so nothing changes meanwhile. It
// costs O(pages and nodes of ss), not O(stored slices).
func (ss *sliceSet) check() {
	count := ss.root.check(ss, ss.height, 0)
	invariants.Check(count == ss.count.Load(), "segstore: %q version %016x: count %d, %d bits set in its pages",
		ss.key, ss.version, ss.count.Load(), count)
	// Every slice is sliceSize bytes but the last.
	bytes := count * ss.sliceSize
	if last := ss.slices - 1; ss.stored(last) {
		bytes -= ss.sliceSize - ss.sliceLen(last)
	}
	invariants.Check(bytes == ss.bytes.Load(), "segstore: %q version %016x: bytes %d, %d for its %d slices stored",
		ss.key, ss.version, ss.bytes.Load(), bytes, count)
}

// check checks node n of height h, whose first page is base (see
// sliceSet.check), and returns the bits set in its pages.
func (n *dirNode) check(ss *sliceSet, h int, base int64) (count int64) {
	live := 0
	for c := range n.kids {
		if k := n.kids[c].Load(); k != nil {
			live++
			count += k.check(ss, h-1, base+int64(c)<<(dirShift*h))
		}
	}
	for c := range n.pages {
		pg := n.pages[c].Load()
		if pg == nil {
			continue
		}
		live++
		p := base + int64(c)
		var set int64
		for w := range pg.bits {
			set += int64(bits.OnesCount64(pg.bits[w].Load()))
		}
		invariants.Check(set == pg.count.Load() && set > 0, "segstore: %q version %016x page %d: count %d, %d bits set",
			ss.key, ss.version, p, pg.count.Load(), set)
		if tail := ss.pageLen(p) % 64; tail != 0 {
			invariants.Check(pg.bits[len(pg.bits)-1].Load()>>tail == 0, "segstore: %q version %016x page %d: a bit set past its %d slices",
				ss.key, ss.version, p, ss.pageLen(p))
		}
		count += set
	}
	invariants.Check(live == n.live, "segstore: %q version %016x: node of height %d at page %d: live %d, %d entries set",
		ss.key, ss.version, h, base, n.live, live)
	return count
}
