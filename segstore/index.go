package segstore

import (
	"hash/maphash"
	"math/bits"
	"sync"
)

// indexShards spreads the index over several locks so that Has on many cores
// does not contend on one reader count.
const indexShards = 64

// index records which slices the store holds, per object, in memory. It
// holds one version per key: the one its meta names (older versions are
// deleted when the meta changes, and Open drops any it finds).
type index struct {
	seed   maphash.Seed // chooses the shard; process-local, never stored
	shards [indexShards]indexShard
}

type indexShard struct {
	mu      sync.RWMutex         // protects objects and every sliceSet in it
	objects map[string]*sliceSet // cache key → its stored slices
	_       [64]byte             // keep neighbouring shards' locks off one cache line
}

// sliceSet is the stored slices of one version of one object.
type sliceSet struct {
	version uint64
	bits    []uint64 // bit i set: slice i is stored
	count   int64    // bits set
	bytes   int64    // payload bytes of those slices
}

func newIndex() *index {
	x := &index{seed: maphash.MakeSeed()}
	for i := range x.shards {
		x.shards[i].objects = make(map[string]*sliceSet)
	}
	return x
}

func (x *index) shard(key string) *indexShard {
	return &x.shards[maphash.String(x.seed, key)%indexShards]
}

// has reports whether slice i of (key, version) is stored.
func (x *index) has(key string, version uint64, i int64) bool {
	if i < 0 {
		return false
	}
	sh := x.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	ss := sh.objects[key]
	if ss == nil || ss.version != version {
		return false
	}
	w := i / 64
	return w < int64(len(ss.bits)) && ss.bits[w]&(1<<(i%64)) != 0
}

// add marks slice i of (key, version), n payload bytes, as stored, dropping
// what the index held for another version of key. It returns the change in
// the number of stored slices and bytes.
func (x *index) add(key string, version uint64, i, n int64) (dSlices, dBytes int64) {
	sh := x.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ss := sh.objects[key]
	if ss == nil || ss.version != version {
		if ss != nil {
			dSlices, dBytes = -ss.count, -ss.bytes
		}
		ss = &sliceSet{version: version}
		sh.objects[key] = ss
	}
	w := i / 64
	if w >= int64(len(ss.bits)) {
		grown := make([]uint64, w+1, max(w+1, 2*int64(len(ss.bits))))
		copy(grown, ss.bits)
		ss.bits = grown
	}
	if ss.bits[w]&(1<<(i%64)) == 0 {
		ss.bits[w] |= 1 << (i % 64)
		ss.count++
		ss.bytes += n
		dSlices, dBytes = dSlices+1, dBytes+n
	}
	return dSlices, dBytes
}

// remove marks slice i of (key, version), n payload bytes, as not stored.
func (x *index) remove(key string, version uint64, i, n int64) (dSlices, dBytes int64) {
	sh := x.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ss := sh.objects[key]
	if ss == nil || ss.version != version || i < 0 {
		return 0, 0
	}
	w := i / 64
	if w >= int64(len(ss.bits)) || ss.bits[w]&(1<<(i%64)) == 0 {
		return 0, 0
	}
	ss.bits[w] &^= 1 << (i % 64)
	ss.count--
	ss.bytes -= n
	if ss.count == 0 {
		delete(sh.objects, key)
	}
	return -1, -n
}

// drop forgets every slice of key.
func (x *index) drop(key string) (dSlices, dBytes int64) {
	sh := x.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ss := sh.objects[key]
	if ss == nil {
		return 0, 0
	}
	delete(sh.objects, key)
	return -ss.count, -ss.bytes
}

// stored returns the number of stored slices of (key, version) and, for each
// of the object's count slices, whether it is stored.
func (x *index) stored(key string, version uint64, count int64) (int64, []bool) {
	out := make([]bool, max(count, 0))
	sh := x.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	ss := sh.objects[key]
	if ss == nil || ss.version != version {
		return 0, out
	}
	var n int64
	for w, word := range ss.bits {
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
