package segstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/segstore"
)

// diskUse is what a store directory takes on disk: blocks allocated, as
// du counts them, not lengths.
type diskUse struct {
	slices int64 // the slice files, under slices/ and tmp/
	pebble int64 // Pebble's files: sstables, MANIFEST, OPTIONS, ...
	dirs   int64 // the directories
	ndirs  int
}

// diskOf measures the store directory dir. Files removed during the walk
// are skipped.
func diskOf(t *testing.T, dir string) diskUse {
	var u diskUse
	slices, tmp := filepath.Join(dir, "slices")+string(filepath.Separator), filepath.Join(dir, "tmp")+string(filepath.Separator)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // removed meanwhile
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		n := fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n = st.Blocks * 512 // what the file takes on disk, not its length
		}
		switch {
		case d.IsDir():
			u.dirs += n
			u.ndirs++
		case strings.HasPrefix(p, slices) || strings.HasPrefix(p, tmp):
			u.slices += n
		default:
			u.pebble += n
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	return u
}

// TestChurnDiskWithinBudget writes four times the budget in objects of
// 64 KiB to 1 MiB slices, reading the heads of a few hot objects all
// along, and samples every 10 ms, once the store has filled, both the disk
// the store counts (Stats.DiskBytes: the slice files and Pebble's) and the
// disk its directory really takes (the blocks of the slice files, of
// Pebble's files, and of the directories). Neither may exceed the budget
// but by what the store, by design, does not count at every instant:
//
//   - The store counts a slice file as its length plus 4 KiB (fileBlock),
//     at least the whole 4 KiB blocks it takes, and refuses a slice that
//     would take it over the budget; this test has one writer, so no two
//     writes are admitted against the same room.
//   - Pebble's files are counted as of the last sample (at most 100 ms
//     old) plus the flushes since; a compaction's output, written before
//     its inputs are deleted, is not. That is at most Pebble's own disk,
//     metas and entries only: well under pebbleSlack here (logged).
//   - Directories are not counted: one block each (4 KiB on ext4), for
//     the 256 fan-out directories and one per object with files, added
//     as measured.
func TestChurnDiskWithinBudget(t *testing.T) {
	budget, total := int64(256*mib), int64(1<<30)
	if testing.Short() {
		budget, total = 64*mib, 256*mib
	}
	const pebbleSlack = mib
	dir := t.TempDir()
	s, err := segstore.Open(segstore.Options{Dir: dir, MaxBytes: budget, Logger: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var (
		filled  atomic.Bool
		mu      sync.Mutex // protects the maxima
		maxDisk int64      // Stats.DiskBytes
		maxReal diskUse    // the sample with the most files (slices and Pebble's)
		maxAll  int64      // files and directories
		maxPeb  int64      // Pebble's files
		over    []string   // samples over their limit
		samples atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			disk, u := s.Stats().DiskBytes, diskOf(t, dir)
			if !filled.Load() {
				continue
			}
			samples.Add(1)
			mu.Lock()
			maxDisk = max(maxDisk, disk)
			if u.slices+u.pebble > maxReal.slices+maxReal.pebble {
				maxReal = u
			}
			maxAll = max(maxAll, u.slices+u.pebble+u.dirs)
			maxPeb = max(maxPeb, u.pebble)
			limit := budget + pebbleSlack
			switch {
			case disk > limit:
				over = append(over, fmt.Sprintf("Stats.DiskBytes %d > %d", disk, limit))
			case u.slices+u.pebble > limit:
				over = append(over, fmt.Sprintf("files %+v: %d > %d", u, u.slices+u.pebble, limit))
			case u.slices+u.pebble+u.dirs > limit+int64(u.ndirs)*4*kib:
				over = append(over, fmt.Sprintf("files and directories %+v: %d > %d + 4 KiB × %d directories", u, u.slices+u.pebble+u.dirs, limit, u.ndirs))
			}
			mu.Unlock()
		}
	}()
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, mib)
	for i := 0; i < len(data); i += 8 {
		binary.LittleEndian.PutUint64(data[i:], r.Uint64())
	}
	var hot []*segstore.Meta
	readBuf := make([]byte, mib)
	var written, refused int64
	start := time.Now()
	for n := 0; written < total; n++ {
		sliceSize := int64(64*kib) << r.IntN(5) // 64 KiB to 1 MiB
		m := newMeta(fmt.Sprintf("example.com/churn/%d", n), sliceSize*int64(1+r.IntN(16))-r.Int64N(sliceSize), sliceSize)
		if err := s.PutMeta(m); err != nil {
			if errors.Is(err, segstore.ErrWriteFailed) { // as the edge would: serve, do not cache
				refused++
				time.Sleep(time.Millisecond)
				continue
			}
			t.Fatal(err)
		}
		for i := range m.SliceCount() {
			binary.LittleEndian.PutUint64(data, uint64(n)<<32|uint64(i)) // every slice differs
			err := s.WriteSlice(m, i, data[:m.SliceLen(i)])
			switch {
			case errors.Is(err, segstore.ErrWriteFailed):
				refused++
				time.Sleep(time.Millisecond)
			case err != nil:
				t.Fatal(err)
			default:
				written += m.SliceLen(i)
			}
		}
		if written >= budget {
			filled.Store(true)
		}
		if n%50 == 0 && len(hot) < 20 && s.Has(m, 0) {
			hot = append(hot, m)
		}
		for range min(len(hot), 3) { // viewers keep watching the first slices of hot objects
			if h := hot[r.IntN(len(hot))]; s.Has(h, 0) {
				if _, err := s.ReadSlice(h, 0, readBuf); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()

	st := s.Stats()
	var hotKept int
	for _, h := range hot {
		if s.Has(h, 0) {
			hotKept++
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("wrote %d MiB in %v (%.0f MB/s; %d writes refused while the store was full) under a %d MiB budget; after the first fill, over %d samples: max Stats.DiskBytes %.1f MiB = %.3f × budget; max files on disk %.1f MiB = %.3f × budget (%+v); max with directories %.1f MiB = %.3f × budget; Pebble's files at most %d KiB; %d of %d hot heads kept; %+v",
		written>>20, elapsed.Round(time.Millisecond), float64(written)/elapsed.Seconds()/1e6, refused, budget>>20, samples.Load(),
		float64(maxDisk)/mib, float64(maxDisk)/float64(budget),
		float64(maxReal.slices+maxReal.pebble)/mib, float64(maxReal.slices+maxReal.pebble)/float64(budget), maxReal,
		float64(maxAll)/mib, float64(maxAll)/float64(budget), maxPeb>>10, hotKept, len(hot), st)
	if samples.Load() == 0 || maxDisk < budget/2 || maxReal.slices < budget/2 {
		t.Fatalf("%d samples after the first fill, peaks %d and %+v: the store never held half its budget", samples.Load(), maxDisk, maxReal)
	}
	if len(over) > 0 {
		t.Errorf("%d of %d samples over the budget of %d bytes and what it leaves out (see the test's doc), the first: %s", len(over), samples.Load(), budget, over[0])
	}
	if st.Evictions == 0 || st.Bytes > budget {
		t.Errorf("Stats = %+v: want evictions and at most %d bytes stored", st, budget)
	}
	if hotKept < len(hot)*3/4 {
		t.Errorf("only %d of %d hot first slices survived the churn", hotKept, len(hot))
	}
}

// zipfTrace returns n slice accesses to objects × slices: objects by a Zipf
// law (s = 1.1) in a shuffled order, slices within an object falling off
// geometrically from the head (P(i) ∝ 0.7^i), as viewers start at the
// beginning and give up along the way.
func zipfTrace(seed uint64, n, objects, slices int) [][2]int {
	r := rand.New(rand.NewPCG(seed, seed))
	z := rand.NewZipf(r, 1.1, 1, uint64(objects-1))
	perm := r.Perm(objects)
	trace := make([][2]int, n)
	for j := range trace {
		i := 0
		for i < slices-1 && r.Float64() < 0.7 {
			i++
		}
		trace[j] = [2]int{perm[z.Uint64()], i}
	}
	return trace
}

// simulate returns the hit ratio, over the second half of trace, of a cache
// of capacity slices that evicts a uniformly random slice (random) or the
// least recently used one.
func simulate(trace [][2]int, capacity int, random bool) float64 {
	type node struct {
		k          [2]int
		prev, next *node
	}
	r := rand.New(rand.NewPCG(9, 9))
	where := map[[2]int]int{} // random: position in keys
	var keys [][2]int
	lru := map[[2]int]*node{}
	head := &node{}
	head.prev, head.next = head, head
	unlink := func(n *node) { n.prev.next, n.next.prev = n.next, n.prev }
	pushFront := func(n *node) { n.next, n.prev = head.next, head; head.next.prev = n; head.next = n }
	hits := 0
	for j, k := range trace {
		hit := false
		if random {
			if _, ok := where[k]; ok {
				hit = true
			} else {
				if len(keys) == capacity {
					v := r.IntN(len(keys))
					delete(where, keys[v])
					keys[v] = keys[len(keys)-1]
					where[keys[v]] = v
					keys = keys[:len(keys)-1]
				}
				where[k] = len(keys)
				keys = append(keys, k)
			}
		} else {
			if n, ok := lru[k]; ok {
				hit = true
				unlink(n)
				pushFront(n)
			} else {
				if len(lru) == capacity {
					v := head.prev
					unlink(v)
					delete(lru, v.k)
				}
				n := &node{k: k}
				lru[k] = n
				pushFront(n)
			}
		}
		if hit && j >= len(trace)/2 {
			hits++
		}
	}
	return float64(hits) / float64(len(trace)-len(trace)/2)
}

// TestZipfHitRatio replays a Zipf trace over 2000 objects of 8 slices of
// 16 KiB against a store whose budget holds an eighth of them, and checks
// that the store's slice hit ratio (CLOCK) clearly beats what random
// eviction gets on the same trace holding as many slices (simulated). A
// fill that finds the store full waits and retries, as this measures the
// policy, not how fast Pebble gives disk back.
func TestZipfHitRatio(t *testing.T) {
	const objects, slices, sliceSize = 2000, 8, 16 * kib
	n, budget := 120000, int64(objects*slices*sliceSize/8)
	if testing.Short() {
		n = 20000
	}
	trace := zipfTrace(1, n, objects, slices)
	s, err := segstore.Open(segstore.Options{Dir: t.TempDir(), MaxBytes: budget, Logger: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	metas := make([]*segstore.Meta, objects)
	for o := range metas {
		metas[o] = newMeta(fmt.Sprintf("example.com/zipf/%04d", o), slices*sliceSize, sliceSize)
		if err := s.PutMeta(metas[o]); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, sliceSize)
	var hits, refused int
	var held, heldSamples int64 // slices stored, sampled over the second half
	start := time.Now()
	for j, a := range trace {
		if j >= n/2 && j%500 == 0 {
			held += s.Stats().Slices
			heldSamples++
		}
		m, i := metas[a[0]], int64(a[1])
		if s.Has(m, i) {
			if _, err := s.ReadSlice(m, i, buf); err == nil {
				if j >= n/2 {
					hits++
				}
				continue
			}
		}
		binary.LittleEndian.PutUint64(buf, uint64(j))
		for try := 0; ; try++ {
			err := s.WriteSlice(m, i, buf)
			if errors.Is(err, segstore.ErrWriteFailed) && try < 1000 {
				refused++
				time.Sleep(100 * time.Microsecond)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	elapsed := time.Since(start)
	clock := float64(hits) / float64(n-n/2)
	// The simulations hold as many slices as the store did on average (the
	// rest of the budget is the block counted per file beyond its bytes,
	// a fifth of a 16 KiB slice's cost, Pebble's files, and the room
	// between the watermarks), and, for reference, the whole budget's
	// worth.
	capacity, full := int(held/heldSamples), int(budget/sliceSize)
	random, lru := simulate(trace, capacity, true), simulate(trace, capacity, false)
	st := s.Stats()
	t.Logf("%d accesses in %v; budget %d MiB = %.1f%% of the working set; store held %d slices on average (%.0f%% of the budget); slice hit ratio over the second half: CLOCK (store) %.3f; simulated with as many slices: random %.3f, LRU %.3f; with the whole budget: random %.3f, LRU %.3f; %d writes refused (retried); %+v",
		n, elapsed.Round(time.Millisecond), budget>>20, 100*float64(budget)/float64(objects*slices*sliceSize),
		capacity, 100*float64(capacity)/float64(full), clock, random, lru, simulate(trace, full, true), simulate(trace, full, false), refused, st)
	if clock < random+0.02 {
		t.Errorf("CLOCK hit ratio %.3f is not clearly better than random eviction's %.3f", clock, random)
	}
	if st.Evictions == 0 {
		t.Error("nothing was evicted")
	}
}

// TestClockOrder checks the policy on a quiet store: the hand evicts slices
// in the order they were written, except those read since it last passed,
// which get a second chance and go to the back.
func TestClockOrder(t *testing.T) {
	s, err := segstore.Open(segstore.Options{Dir: t.TempDir(), MaxBytes: 1 << 30, Logger: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Three objects of 8 slices of 16 KiB, written one after another, then
	// the head of b and slice 5 of a read.
	var ms []*segstore.Meta
	for _, k := range []string{"a", "b", "c"} {
		m := newMeta("example.com/clock/"+k, 8*16*kib, 16*kib)
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
		ms = append(ms, m)
	}
	a, b, c := ms[0], ms[1], ms[2]
	if n := s.ClockRuns(); n != 3 {
		t.Errorf("%d clock entries for 3 sequential fills, want 3", n)
	}
	for _, r := range []struct {
		m *segstore.Meta
		i int64
	}{{b, 0}, {b, 1}, {a, 5}} {
		if _, err := s.ReadSlice(r.m, r.i, nil); err != nil {
			t.Fatal(err)
		}
	}
	stored := func(m *segstore.Meta) []bool { _, st := storedBits(s, m); return st }

	// 10 slices: a's 7 unread slices, then b's slices 2, 3, 4 (0 and 1 were read).
	if got := s.Evict(10 * 16 * kib); got != 10*16*kib {
		t.Fatalf("Evict evicted %d bytes, want %d", got, 10*16*kib)
	}
	wantA := []bool{false, false, false, false, false, true, false, false}
	wantB := []bool{true, true, false, false, false, true, true, true}
	if got := stored(a); !reflect.DeepEqual(got, wantA) {
		t.Errorf("a stored %v, want %v", got, wantA)
	}
	if got := stored(b); !reflect.DeepEqual(got, wantB) {
		t.Errorf("b stored %v, want %v", got, wantB)
	}
	// Then the rest of b, all of c, and only then the slices that had their
	// second chance (a5, b0, b1), in that order.
	s.Evict(3*16*kib + 8*16*kib + 16*kib)
	if got, want := stored(a), []bool{false, false, false, false, false, false, false, false}; !reflect.DeepEqual(got, want) {
		t.Errorf("a stored %v, want %v", got, want)
	}
	if got, want := stored(b), []bool{true, true, false, false, false, false, false, false}; !reflect.DeepEqual(got, want) {
		t.Errorf("b stored %v, want %v", got, want)
	}
	if n, _ := storedBits(s, c); n != 0 {
		t.Errorf("c has %d slices left, want 0", n)
	}
	st := s.Stats()
	if st.Evictions != 22 || st.EvictedBytes != 22*16*kib || st.Slices != 2 {
		t.Errorf("Stats = %+v, want 22 evictions, 2 slices left", st)
	}
	// Metas stay (there are few).
	for _, m := range ms {
		if _, err := s.Meta(m.Key); err != nil {
			t.Errorf("meta of %q: %v", m.Key, err)
		}
	}
	// Evicted slices are gone from Pebble too.
	if keys := keysWithPrefix(t, s, segstore.VersionPrefix(c.Key, c.Version)); len(keys) != 0 {
		t.Errorf("%d slice keys of c left in Pebble", len(keys))
	}
}

// TestRestartAfterEviction fills a store past its budget, so that the
// evictor has removed some slices of most objects, closes it and opens it
// again: the reopened store must hold exactly what was readable before, and
// Has must agree with what is readable.
func TestRestartAfterEviction(t *testing.T) {
	dir := t.TempDir()
	opts := segstore.Options{Dir: dir, MaxBytes: 16 * mib, Logger: t.Logf}
	s, err := segstore.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	var ms []*segstore.Meta
	for o := 0; o < 40; o++ {
		m := newMeta(fmt.Sprintf("example.com/restart/%02d", o), 32*16*kib, 16*kib)
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		for i := range m.SliceCount() {
			err := s.WriteSlice(m, i, payload(m, i))
			for try := 0; errors.Is(err, segstore.ErrWriteFailed) && try < 1000; try++ {
				time.Sleep(time.Millisecond) // the store is full for a moment
				err = s.WriteSlice(m, i, payload(m, i))
			}
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if _, err := s.ReadSlice(m, 0, nil); err != nil { // a viewed head
					t.Fatal(err)
				}
			}
		}
		ms = append(ms, m)
	}
	before := settleEviction(t, s)
	readable := checkReadable(t, s, ms...)
	if before.Evictions == 0 || int64(readable) != before.Slices {
		t.Fatalf("before restart: %d readable, Stats %+v; want evictions and every stored slice readable", readable, before)
	}
	checkFiles(t, s, dir, ms...) // the evicted slices' files are gone
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = segstore.Open(opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after := s.Stats()
	if after.Slices != before.Slices || after.Bytes != before.Bytes || after.Objects != before.Objects {
		t.Errorf("Stats after restart = %+v, before %+v", after, before)
	}
	if n := checkReadable(t, s, ms...); n != readable {
		t.Errorf("%d slices readable after restart, %d before", n, readable)
	}
	if keys := keysWithPrefix(t, s, []byte("s")); int64(len(keys)) != after.Slices {
		t.Errorf("%d slice keys in Pebble, Stats says %d", len(keys), after.Slices)
	}
	checkFiles(t, s, dir, ms...)
	t.Logf("%d of %d slices survived eviction and restart; %+v", readable, 40*32, after)
}

// TestConcurrentEviction runs writers and readers against a store whose
// budget is a fraction of what they write, so that the evictor works all
// along; run it with -race. Every read returns the bytes written or
// ErrNotFound, and the index agrees with Pebble and the slice files at the
// end.
func TestConcurrentEviction(t *testing.T) {
	dir := t.TempDir()
	s, err := segstore.Open(segstore.Options{Dir: dir, MaxBytes: 16 * mib, Logger: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const objects = 64
	ms := make([]*segstore.Meta, objects)
	for o := range ms {
		ms[o] = newMeta(fmt.Sprintf("example.com/ce/%02d", o), 64*16*kib, 16*kib)
		if err := s.PutMeta(ms[o]); err != nil {
			t.Fatal(err)
		}
	}
	rounds := 3000
	if testing.Short() {
		rounds = 1000
	}
	var wg sync.WaitGroup
	var fails atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			buf := make([]byte, 16*kib)
			for range rounds {
				m := ms[r.IntN(objects)]
				i := r.Int64N(m.SliceCount())
				if w%2 == 0 {
					err := s.WriteSlice(m, i, payload(m, i))
					if err != nil && !errors.Is(err, segstore.ErrWriteFailed) && fails.Add(1) < 5 {
						t.Errorf("WriteSlice: %v", err)
					}
					continue
				}
				got, err := s.ReadSlice(m, i, buf)
				switch {
				case errors.Is(err, segstore.ErrNotFound):
				case err != nil:
					if fails.Add(1) < 5 {
						t.Errorf("ReadSlice: %v", err)
					}
				case !bytes.Equal(got, payload(m, i)):
					if fails.Add(1) < 5 {
						t.Errorf("ReadSlice(%q, %d): other bytes", m.Key, i)
					}
				}
			}
		}()
	}
	wg.Wait()
	st := settleEviction(t, s)
	t.Logf("%+v", st)
	if st.Evictions == 0 {
		t.Error("nothing evicted")
	}
	if n := checkReadable(t, s, ms...); int64(n) != st.Slices {
		t.Errorf("%d slices readable, Stats says %d", n, st.Slices)
	}
	checkFiles(t, s, dir, ms...) // no file left by a write that raced an eviction
}

// settleEviction waits until the evictor has stopped evicting (no eviction for three
// of its ticks) and returns the store's Stats.
func settleEviction(t *testing.T, s *segstore.Store) segstore.Stats {
	t.Helper()
	st := s.Stats()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		next := s.Stats()
		if next.Evictions == st.Evictions && next.Slices == st.Slices {
			return next
		}
		st = next
	}
	t.Fatalf("the evictor did not settle: %+v", st)
	return st
}

// TestEvictMetasUnderPressure checks that metas are kept when their last
// slice is evicted, unless there are more of them than the budget allows
// (one per 64 KiB, at least 4096).
func TestEvictMetasUnderPressure(t *testing.T) {
	s, err := segstore.Open(segstore.Options{Dir: t.TempDir(), MaxBytes: 64 * mib, Logger: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 5000
	for i := range n {
		m := newMeta(fmt.Sprintf("example.com/metas/%04d", i), kib, kib)
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
	}
	s.Evict(n * kib)
	st := s.Stats()
	if st.Slices != 0 || st.Objects != 4096 {
		t.Errorf("after evicting every slice Stats = %+v, want no slices and 4096 metas", st)
	}
	// The oldest objects lost their metas; the newest kept theirs.
	if _, err := s.Meta("example.com/metas/0000"); !errors.Is(err, segstore.ErrNotFound) {
		t.Errorf("oldest meta: %v, want ErrNotFound", err)
	}
	if _, err := s.Meta(fmt.Sprintf("example.com/metas/%04d", n-1)); err != nil {
		t.Errorf("newest meta: %v", err)
	}
}

func TestOpenRejectsWatermarks(t *testing.T) {
	for _, o := range []segstore.Options{
		{HighWater: 0.9, LowWater: 0.95},
		{HighWater: 1.2},
		{LowWater: -0.1},
		{MaxBytes: -1},
	} {
		o.Dir = t.TempDir()
		if s, err := segstore.Open(o); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded, want an error", o)
		}
	}
}
