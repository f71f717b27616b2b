package segstore

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// index records which slices the store holds, per object, in memory. It
// holds one version per key: the one its meta names (older versions are
// deleted when the meta changes, and Open drops any it finds).
//
// Reads (has, stored) take no lock and write no shared memory, so Has on a
// popular object scales across cores. Changes to one key's entry must be
// serialised by the caller (the store's per-key stripe lock).
type index struct {
	objects sync.Map // cache key → *sliceSet
}

// sliceSet is the stored slices of one version of one object.
type sliceSet struct {
	version uint64          // fixed
	bits    []atomic.Uint64 // bit i set: slice i is stored; length fixed by the slice count
	count   atomic.Int64    // bits set
	bytes   atomic.Int64    // payload bytes of those slices
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
	if ss == nil || ss.version != version || i < 0 || i/64 >= int64(len(ss.bits)) {
		return false
	}
	return ss.bits[i/64].Load()&(1<<(i%64)) != 0
}

// add marks slice i of (key, version), n payload bytes, as stored; the
// object has count slices. It drops what the index held for another version
// of key, and returns the change in the number of stored slices and bytes.
// The caller serialises changes to key.
func (x *index) add(key string, version uint64, count, i, n int64) (dSlices, dBytes int64) {
	if i < 0 || i >= count {
		return 0, 0
	}
	ss := x.load(key)
	if ss == nil || ss.version != version {
		if ss != nil {
			dSlices, dBytes = -ss.count.Load(), -ss.bytes.Load()
		}
		ss = &sliceSet{version: version, bits: make([]atomic.Uint64, (count+63)/64)}
		x.objects.Store(key, ss)
	}
	if i/64 >= int64(len(ss.bits)) { // cannot happen: one version has one count
		return dSlices, dBytes
	}
	if old := ss.bits[i/64].Or(1 << (i % 64)); old&(1<<(i%64)) == 0 {
		ss.count.Add(1)
		ss.bytes.Add(n)
		dSlices, dBytes = dSlices+1, dBytes+n
	}
	return dSlices, dBytes
}

// remove marks slice i of (key, version), n payload bytes, as not stored.
// The caller serialises changes to key.
func (x *index) remove(key string, version uint64, i, n int64) (dSlices, dBytes int64) {
	ss := x.load(key)
	if ss == nil || ss.version != version || i < 0 || i/64 >= int64(len(ss.bits)) {
		return 0, 0
	}
	if old := ss.bits[i/64].And(^(1 << (i % 64))); old&(1<<(i%64)) == 0 {
		return 0, 0
	}
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
	return -ss.count.Load(), -ss.bytes.Load()
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
