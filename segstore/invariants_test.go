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
		x.add(m, i)
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
			mustPanic(t, c.want, func() { x.add(m, 2) })
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
	mustPanic(t, "used for meta", func() { x.add(&other, 3) })
	mustPanic(t, "removing slice 1 of \"example.com/inv\" version 0000000000000007 as 1000 bytes; the version's slice has 1024",
		func() { x.remove(m.Key, m.Version, 1, 1000) })
}

// checkRead catches a read that passed a damaged chunk it overlaps,
// failed a sound one, or copied the wrong bytes; damage outside the range
// is no contradiction.
func TestInvariantReadChecksEveryChunk(t *testing.T) {
	const n = 3*chunkSize + 100
	k := makeSliceKey(1, 2, 3)
	payload := make([]byte, n)
	for j := range payload {
		payload[j] = byte(j * 7)
	}
	v := make([]byte, sliceHdrLen2(n)+n)
	putSlice(v, k[:], payload)
	damaged := append([]byte(nil), v...)
	damaged[sliceHdrLen2(n)+2*chunkSize+5]++ // chunk 2

	off, dst := int64(chunkSize+10), make([]byte, 100) // in chunk 1
	copy(dst, payload[off:])
	checkRead(k[:], v, n, off, dst, nil)
	checkRead(k[:], damaged, n, off, dst, nil) // chunk 2 is not read

	mustPanic(t, "says <nil>, every chunk checked says damaged=true", func() {
		checkRead(k[:], damaged, n, 2*chunkSize, dst, nil)
	})
	mustPanic(t, "says made up, every chunk checked says damaged=false", func() {
		checkRead(k[:], v, n, off, dst, fmt.Errorf("made up"))
	})
	dst[50]++
	mustPanic(t, "copied bytes differ", func() { checkRead(k[:], v, n, off, dst, nil) })
}
