package segstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"runtime/metrics"
	"slices"
	"testing"

	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// heapChild is set in the environment of a test process started to
// measure the live heap alone.
const heapChild = "SEGSTORE_HEAP_TEST_CHILD"

// liveHeap returns the bytes of live heap after a full collection (twice,
// so that sync.Pools, which survive one, are emptied too).
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// modelRuns returns the runs of the sorted slice indices in stored.
func modelRuns(stored []int64) []slicer.Run {
	var runs []slicer.Run
	for _, i := range stored {
		if k := len(runs) - 1; k >= 0 && runs[k].Last+1 == i {
			runs[k].Last = i
			continue
		}
		runs = append(runs, slicer.Run{First: i, Last: i})
	}
	return runs
}

// modelCount returns how many of the sorted indices in stored lie in
// [first, last].
func modelCount(stored []int64, first, last int64) int64 {
	lo, _ := slices.BinarySearch(stored, first)
	hi, _ := slices.BinarySearch(stored, last+1)
	if last == math.MaxInt64 {
		hi = len(stored)
	}
	return int64(max(hi-lo, 0))
}

// An origin may claim any size up to 2^63-1. The index must cost memory and
// time for the slices stored, not for the size claimed: an object of
// 2^62-4097 bytes (2^42 slices of 1 MiB, the last one short), one of 64 PiB
// and one of 2^63-1 bytes, each with four slices stored at the start, in
// the middle and at the end, add under a MiB to the live heap beyond what
// the same writes into small objects add, and Has, StoredRuns and
// CountStored answer for them at once, before and after a restart rebuilds
// the index from the keys (when the reopened store, too, takes under a MiB
// more than the small objects' store).
func TestHugeObjectsCostWhatIsStored(t *testing.T) {
	if os.Getenv(heapChild) == "" {
		// The live heap is the whole process's: measure it in a process of
		// its own, where nothing an earlier test left running (the Pebble
		// that TestFatalWriteFailure abandons on a memory filesystem) can
		// allocate meanwhile.
		cmd := exec.Command(os.Args[0], "-test.run=^TestHugeObjectsCostWhatIsStored$", "-test.v")
		cmd.Env = append(os.Environ(), heapChild+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in a process of its own:\n%s", out)
		if err != nil {
			t.Fatalf("in a process of its own: %v", err)
		}
		return
	}
	// Slices 0, mid, mid+1 and last of each: mid and mid+1 straddle a page
	// boundary of the index for these counts (powers of two).
	written := func(m *segstore.Meta) []int64 {
		n := m.SliceCount()
		return []int64{0, n/2 - 1, n / 2, n - 1}
	}
	// growth opens a store in dir, warms it, and returns it and how much the
	// live heap grows while the slices written(m) of ms are stored.
	growth := func(dir string, ms []*segstore.Meta) (*segstore.Store, int64) {
		s := openStore(t, dir)
		warm := newMeta("example.com/huge/warm", 2*mib, mib)
		if err := s.PutMeta(warm); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, warm)
		for _, m := range ms {
			if err := s.PutMeta(m); err != nil {
				t.Fatal(err)
			}
		}
		before := liveHeap()
		for _, m := range ms {
			for _, i := range written(m) {
				if err := s.WriteSlice(m, i, payload(m, i)); err != nil {
					t.Fatalf("%s slice %d: %v", m.Key, i, err)
				}
			}
		}
		return s, liveHeap() - before
	}
	// The control: the same writes into objects of 4 slices. Pebble's own
	// memory (its memtables are on the Go heap in a race build) grows the
	// same way for both.
	control := []*segstore.Meta{
		newMeta("example.com/huge/ctl-a", 4*mib-4097, mib),
		newMeta("example.com/huge/ctl-b", 4*mib, mib),
		newMeta("example.com/huge/ctl-c", 4*mib, mib),
	}
	controlDir := t.TempDir()
	s, base := growth(controlDir, control)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	huge := []*segstore.Meta{
		newMeta("example.com/huge/4EiB", 1<<62-4097, mib), // last slice 4097 bytes short
		newMeta("example.com/huge/64PiB", 64<<50, mib),
		newMeta("example.com/huge/max", math.MaxInt64, mib),
	}
	dir := t.TempDir()
	s, grew := growth(dir, huge)
	defer func() { _ = s.Close() }()
	t.Logf("live heap grew by %d bytes for 12 slices of objects claiming %d, %d and %d bytes; by %d for 12 slices of 4-slice objects",
		grew, huge[0].Size, huge[1].Size, huge[2].Size, base)
	if grew-base > 1<<20 {
		t.Errorf("live heap grew by %d bytes more for 12 slices of huge objects than of small ones, want under 1 MiB", grew-base)
	}
	if got := huge[0].SliceLen(huge[0].SliceCount() - 1); got != mib-4097 {
		t.Fatalf("the last slice of %s has %d bytes, want %d", huge[0].Key, got, mib-4097)
	}

	check := func(when string) {
		t.Helper()
		for _, m := range huge {
			n := m.SliceCount()
			w := written(m)
			for _, i := range []int64{-1, 0, 1, n/2 - 2, n/2 - 1, n / 2, n/2 + 1, n - 2, n - 1, n, math.MaxInt64} {
				if got, want := s.Has(m, i), slices.Contains(w, i); got != want {
					t.Errorf("%s: %s: Has(%d) = %v, want %v", when, m.Key, i, got, want)
				}
			}
			count, runs := s.StoredRuns(m)
			want := []slicer.Run{{First: 0, Last: 0}, {First: n/2 - 1, Last: n / 2}, {First: n - 1, Last: n - 1}}
			if count != 4 || !reflect.DeepEqual(runs, want) {
				t.Errorf("%s: %s: StoredRuns = %d %v, want 4 %v", when, m.Key, count, runs, want)
			}
			for _, c := range []struct{ first, last, want int64 }{
				{0, n - 1, 4}, {math.MinInt64, math.MaxInt64, 4}, {1, n - 2, 2}, {n/2 - 1, n/2 - 1, 1},
				{n / 2, n - 1, 2}, {1, n/2 - 2, 0}, {n/2 + 1, n - 2, 0}, {n - 1, n - 1, 1}, {n, math.MaxInt64, 0},
				{5, 4, 0},
			} {
				if got := s.CountStored(m, c.first, c.last); got != c.want {
					t.Errorf("%s: %s: CountStored(%d, %d) = %d, want %d", when, m.Key, c.first, c.last, got, c.want)
				}
			}
			last := n - 1
			got, err := s.ReadSlice(m, last, nil)
			if err != nil || !bytes.Equal(got, payload(m, last)) {
				t.Errorf("%s: %s: ReadSlice(%d): %d bytes, %v", when, m.Key, last, len(got), err)
			}
		}
	}
	check("after writing")

	// A restart rebuilds the index from the keys: the live heap of a store
	// just opened holds no more for the huge objects than for the control.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, controlDir)
	opened := liveHeap()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	if more := liveHeap() - opened; more > 1<<20 {
		t.Errorf("the store holding the huge objects takes %d bytes more of live heap once reopened than the control, want under 1 MiB", more)
	} else {
		t.Logf("once reopened, the store holding the huge objects takes %d bytes more of live heap than the control", more)
	}
	check("after a restart")
	if st := s.Stats(); st.Slices != 2+4*int64(len(huge)) {
		t.Errorf("after a restart Stats().Slices = %d, want %d", st.Slices, 2+4*len(huge))
	}
	for _, m := range huge {
		if err := s.Purge(m.Key); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range huge {
		if n, runs := s.StoredRuns(m); n != 0 || runs != nil {
			t.Errorf("%s after its purge: StoredRuns = %d %v", m.Key, n, runs)
		}
	}
}

// The sparse slice set against a model (a sorted list of the slices stored,
// reconciled with Pebble's own keys after each eviction): random writes
// clustered around a few spots of a large object, spanning page
// boundaries, reads (which give slices their second chance), evictions by
// the clock (which empty pages and free them), rewrites of evicted slices
// (which bring pages back), and a restart. After every step Has, StoredRuns,
// CountStored and Stats agree with the model.
func TestSparseIndexMatchesModel(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer func() { _ = s.Close() }()
	const sliceSize = 16
	m := newMeta("example.com/sparse/model", 1<<40*sliceSize-3, sliceSize) // 2^40 slices, the last short
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	n := m.SliceCount()
	r := rand.New(rand.NewPCG(1, 2))
	spots := []int64{0, 1000, 5000, n / 3, n/2 - 1500, n - 2500, n - 1}
	pick := func() int64 {
		at := spots[r.IntN(len(spots))] + r.Int64N(3000) - 1500
		return min(max(at, 0), n-1)
	}
	stored := map[int64]bool{}
	peak := 0 // most slices stored at a check
	sorted := func() []int64 {
		out := make([]int64, 0, len(stored))
		for i := range stored {
			out = append(out, i)
		}
		slices.Sort(out)
		return out
	}
	// fromPebble replaces the model with the slice keys Pebble holds.
	fromPebble := func() {
		clear(stored)
		for _, k := range keysWithPrefix(t, s, segstore.VersionPrefix(m.Key, m.Version)) {
			stored[int64(binary.BigEndian.Uint64(k[len(k)-8:]))] = true
		}
	}
	check := func(step int) {
		t.Helper()
		want := sorted()
		count, runs := s.StoredRuns(m)
		if count != int64(len(want)) || !reflect.DeepEqual(runs, modelRuns(want)) {
			t.Fatalf("step %d: StoredRuns = %d %v, want %d %v", step, count, runs, len(want), modelRuns(want))
		}
		if st := s.Stats(); st.Slices != int64(len(want)) {
			t.Fatalf("step %d: Stats().Slices = %d, want %d", step, st.Slices, len(want))
		}
		pages := map[int64]bool{}
		for _, i := range want {
			pages[i/segstore.IndexPageSlices] = true
		}
		if got := s.IndexPages(m); got != len(pages) {
			t.Fatalf("step %d: the index holds %d pages, want %d (the pages with a slice stored)", step, got, len(pages))
		}
		peak = max(peak, len(want))
		for range 50 {
			i := pick()
			if s.Has(m, i) != stored[i] {
				t.Fatalf("step %d: Has(%d) = %v, want %v", step, i, !stored[i], stored[i])
			}
			first, last := pick(), pick()
			if r.IntN(8) == 0 {
				first, last = r.Int64N(n), r.Int64N(n)
			}
			if first > last {
				first, last = last, first
			}
			if got, want := s.CountStored(m, first, last), modelCount(want, first, last); got != want {
				t.Fatalf("step %d: CountStored(%d, %d) = %d, want %d", step, first, last, got, want)
			}
		}
	}

	for step := range 3000 {
		switch op := r.IntN(20); {
		case op < 14: // a write, or a rewrite
			i := pick()
			if err := s.WriteSlice(m, i, payload(m, i)); err != nil {
				t.Fatalf("step %d: write %d: %v", step, i, err)
			}
			stored[i] = true
		case op < 19: // a read of a stored slice: its second chance
			for i := range stored {
				if _, err := s.ReadSlice(m, i, nil); err != nil {
					t.Fatalf("step %d: read %d: %v", step, i, err)
				}
				break
			}
		default: // the clock evicts some
			s.Evict(int64(1+r.IntN(8)) * sliceSize)
			fromPebble()
		}
		if step%25 == 0 {
			check(step)
		}
	}
	check(3000)
	// Evict everything: every page is freed, and the set is empty.
	s.Evict(int64(len(stored)+1) * sliceSize)
	fromPebble()
	check(3001)
	t.Logf("up to %d slices stored at a check; %d after evicting them all; %+v", peak, len(stored), s.Stats())
	for range 500 {
		i := pick()
		if err := s.WriteSlice(m, i, payload(m, i)); err != nil {
			t.Fatal(err)
		}
		stored[i] = true
	}
	check(3002)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	fromPebble()
	check(3003)
	if _, err := s.ReadSlice(m, n-1, nil); stored[n-1] == (err != nil) {
		t.Errorf("last slice after a restart: stored %v, read: %v", stored[n-1], err)
	}
	if err := s.Purge(m.Key); err != nil && !errors.Is(err, segstore.ErrNotFound) {
		t.Fatal(err)
	}
	clear(stored)
	check(3004)
}
