//go:build invariants

package segstore

import (
	"fmt"
	"strings"
	"testing"
)

// mustPanic runs fn and fails unless it panics with a message holding want.
func mustPanic(t *testing.T, want string, fn func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatalf("no panic; want one saying %q", want)
		}
		if msg := fmt.Sprint(r); !strings.Contains(msg, want) {
			t.Fatalf("panic %q; want one saying %q", msg, want)
		}
	}()
	fn()
}

// invIndex returns an index with a clock holding slices 0, 1, 1500 and
// 2999 of an object of 3000 slices of 1 KiB, the last one 5 bytes short:
// 3 pages, the last of 952 slices.
func invIndex(t *testing.T) (*index, *Meta, *sliceSet) {
	t.Helper()
	x := &index{clock: true}
	m := &Meta{Key: "example.com/inv", Version: 7, Size: 3000<<10 - 5, SliceSize: 1 << 10}
	for _, i := range []int64{0, 1, 1500, 2999} {
		x.add(m, i, false)
	}
	return x, m, x.load(m.Key)
}

// Each corruption of a slice set's counts is caught by the next change.
func TestInvariantSliceSetCounts(t *testing.T) {
	for _, c := range []struct {
		name, want string
		corrupt    func(ss *sliceSet)
	}{
		{"page count", "page 0: count 4, 3 bits set", func(ss *sliceSet) { ss.page(0).count.Add(1) }},
		{"page bit", "page 0: count 3, 4 bits set", func(ss *sliceSet) { ss.page(0).bits[0].Or(1 << 9) }},
		{"bit past the end", "a bit set past its 952 slices", func(ss *sliceSet) {
			pg := ss.page(2)
			pg.bits[len(pg.bits)-1].Or(1 << 63)
			pg.count.Add(1)
		}},
		{"set count", "count 6, 5 bits set", func(ss *sliceSet) { ss.count.Add(1) }},
		{"set bytes", "bytes 5116, 5115 for its 5 slices", func(ss *sliceSet) { ss.bytes.Add(1) }},
		{"node live", "live 4, 3 entries set", func(ss *sliceSet) { ss.root.live++ }},
	} {
		t.Run(c.name, func(t *testing.T) {
			x, m, ss := invIndex(t)
			c.corrupt(ss)
			mustPanic(t, c.want, func() { x.add(m, 2, false) })
		})
	}
	t.Run("remove", func(t *testing.T) {
		x, m, ss := invIndex(t)
		ss.count.Add(-1)
		mustPanic(t, "count 2, 3 bits set in its pages", func() { x.remove(m.Key, m.Version, 1, m.SliceLen(1)) })
	})
	t.Run("the last slice's bytes", func(t *testing.T) {
		_, _, ss := invIndex(t)
		if got, want := ss.bytes.Load(), int64(3<<10+1019); got != want {
			t.Fatalf("bytes %d, want %d", got, want)
		}
	})
}

// The index refuses a meta of the same version that disagrees with it, and
// a removal of a slice by a length other than the version's.
func TestInvariantIndexMatchesMeta(t *testing.T) {
	x, m, _ := invIndex(t)
	other := *m
	other.Size += 1 << 10
	mustPanic(t, "used for meta", func() { x.add(&other, 3, false) })
	mustPanic(t, "removing slice 1 of \"example.com/inv\" version 0000000000000007 as 1000 bytes; the version's slice has 1024",
		func() { x.remove(m.Key, m.Version, 1, 1000) })
}

// A slice whose checksums, computed as its bytes were written, disagree
// with the file it wrote is caught at Commit, before it is visible.
func TestInvariantEntryMatchesFile(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), ScrubRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := &Meta{Key: "example.com/inv/entry", Version: 9, Size: 3*chunkSize + 100, SliceSize: 4 * chunkSize}
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, m.Size)
	for j := range data {
		data[j] = byte(j * 7)
	}
	w, err := s.CreateSlice(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	w.ent[1+4*2] ^= 1 // chunk 2's checksum
	mustPanic(t, "checksums computed as it was written differ from its file's", func() { _ = w.Commit() })
	if s.Has(m, 0) {
		t.Error("the slice became visible")
	}
	// The same bytes, sound, commit.
	if err := s.WriteSlice(m, 0, data); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadSlice(m, 0, nil); err != nil || string(got) != string(data) {
		t.Fatalf("ReadSlice: %v", err)
	}
}
