package segstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

const chunk = segstore.ChunkSize

// rangeCases returns (off, n) pairs for a slice of sliceLen bytes: every
// chunk boundary and its neighbours as start and end, whole chunks, the
// whole slice, single bytes, and random ranges.
func rangeCases(sliceLen int64, r *rand.Rand) [][2]int64 {
	var points []int64
	for b := int64(0); b <= sliceLen; b += chunk {
		points = append(points, b-1, b, b+1)
	}
	points = append(points, sliceLen-1, sliceLen, sliceLen+1, 0, 1)
	var cases [][2]int64
	add := func(off, end int64) {
		if 0 <= off && off < end && end <= sliceLen {
			cases = append(cases, [2]int64{off, end - off})
		}
	}
	for _, p := range points {
		for _, q := range points {
			if q-p <= 2*chunk+1 { // every pair of nearby boundaries
				add(p, q)
			}
		}
		add(0, p)
		add(p, sliceLen)
		add(p, p+1)
		add(p, p+3*chunk)
	}
	random := 200
	if testing.Short() {
		random = 20
	}
	for range random {
		off := r.Int64N(sliceLen)
		add(off, off+1+r.Int64N(sliceLen-off))
	}
	return cases
}

// checkRanges reads every range of rangeCases from every slice of m and
// compares it with payload(m, i).
func checkRanges(t *testing.T, s *segstore.Store, m *segstore.Meta) {
	t.Helper()
	r := rand.New(rand.NewPCG(m.Version, 7))
	buf := make([]byte, 0, 8)
	for i := range m.SliceCount() {
		want := payload(m, i)
		sliceLen := int64(len(want))
		cases := rangeCases(sliceLen, r)
		for _, c := range cases {
			off, n := c[0], c[1]
			got, err := s.ReadSliceRange(m, i, off, n, buf)
			if err != nil {
				t.Fatalf("ReadSliceRange(slice %d of %d bytes, off %d, n %d): %v", i, sliceLen, off, n, err)
			}
			if !bytes.Equal(got, want[off:off+n]) {
				t.Fatalf("ReadSliceRange(slice %d of %d bytes, off %d, n %d): wrong bytes", i, sliceLen, off, n)
			}
			if cap(buf) >= int(n) && &got[0] != &buf[:1][0] {
				t.Fatalf("ReadSliceRange did not use a big enough dst")
			}
			if cap(got) > cap(buf) {
				buf = got[:0] // grown: keep the bigger buffer
			}
		}
		if got, err := s.ReadSlice(m, i, nil); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ReadSlice(%d): err %v, equal %v", i, err, bytes.Equal(got, want))
		}
	}
}

func TestReadSliceRange(t *testing.T) {
	s, dir := newStore(t)
	ms := []*segstore.Meta{
		// 1 MiB slices, the last short and not a multiple of a chunk.
		newMeta("example.com/range/mib", 2*mib+5*chunk+17, mib),
		// Slices that are not a multiple of a chunk.
		newMeta("example.com/range/odd", 3*(100*kib+3)-1000, 100*kib+3),
		// Slices smaller than a chunk.
		newMeta("example.com/range/small", 5*kib+1, 2*kib),
		// One slice of exactly one chunk.
		newMeta("example.com/range/chunk", chunk, mib),
	}
	for _, m := range ms {
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
	}
	for _, m := range ms {
		checkRanges(t, s, m) // entries in the memtable
	}
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		checkRanges(t, s, m) // entries in an sstable
	}
	// And after a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	if st := s.Stats(); st.Slices != 3+3+3+1 {
		t.Fatalf("after restart: Stats = %+v, want 10 slices", st)
	}
	for _, m := range ms {
		checkRanges(t, s, m)
	}
}

func TestReadSliceRangeBounds(t *testing.T) {
	s, _ := newStore(t)
	m := newMeta("example.com/range/bounds", 2*mib+1000, mib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, m)
	for _, c := range []struct {
		i, off, n int64
	}{
		{0, 0, 0},         // empty: rejected
		{0, 5, 0},         // empty: rejected
		{0, mib, 0},       // empty at the end: rejected
		{0, -1, 10},       // before the start
		{0, 0, -1},        // negative length
		{0, 0, mib + 1},   // one past the end
		{0, mib, 1},       // starts at the end
		{0, mib - 10, 11}, // ends one past the end
		{0, 1 << 62, 1},   // far away
		{0, 1, 1<<63 - 1}, // overflows off+n
		{2, 0, 1001},      // past the end of the short last slice
		{2, 1000, 1},      // at the end of the short last slice
		{1, -1 << 63, 1},  // most negative offset
		{1, 10, -1 << 63}, // most negative length
		{1, mib / 2, mib/2 + 1},
	} {
		got, err := s.ReadSliceRange(m, c.i, c.off, c.n, nil)
		if !errors.Is(err, segstore.ErrOutOfRange) || got != nil {
			t.Errorf("ReadSliceRange(%d, off %d, n %d) = %d bytes, %v; want ErrOutOfRange", c.i, c.off, c.n, len(got), err)
		}
	}
	// No such slice: ErrNotFound, as from ReadSlice.
	for _, i := range []int64{-1, 3, 100} {
		if _, err := s.ReadSliceRange(m, i, 0, 1, nil); !errors.Is(err, segstore.ErrNotFound) {
			t.Errorf("ReadSliceRange of slice %d of 3: %v, want ErrNotFound", i, err)
		}
	}
	// A slice not stored.
	other := newMeta("example.com/range/absent", 2*mib, mib)
	if err := s.PutMeta(other); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadSliceRange(other, 1, 10, 10, nil); !errors.Is(err, segstore.ErrNotFound) {
		t.Errorf("ReadSliceRange of a slice not stored: %v, want ErrNotFound", err)
	}
	// The extremes that are allowed.
	for _, c := range [][3]int64{{0, 0, 1}, {0, mib - 1, 1}, {0, 0, mib}, {2, 999, 1}, {2, 0, 1000}} {
		want := payload(m, c[0])[c[1] : c[1]+c[2]]
		if got, err := s.ReadSliceRange(m, c[0], c[1], c[2], nil); err != nil || !bytes.Equal(got, want) {
			t.Errorf("ReadSliceRange(%d, off %d, n %d): err %v, equal %v", c[0], c[1], c[2], err, bytes.Equal(got, want))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadSliceRange(m, 0, 0, 1, nil); !errors.Is(err, segstore.ErrClosed) {
		t.Errorf("ReadSliceRange after Close: %v, want ErrClosed", err)
	}
}

// getValue returns a copy of the raw Pebble value under key k.
func getValue(t *testing.T, db *pebble.DB, k []byte) []byte {
	t.Helper()
	v, closer, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	v = bytes.Clone(v)
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	return v
}

// sliceFile returns the bytes of slice i's file.
func sliceFile(t *testing.T, s *segstore.Store, m *segstore.Meta, i int64) []byte {
	t.Helper()
	b, err := os.ReadFile(s.SlicePath(m.Key, m.Version, i))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setSliceFile replaces slice i's file with b.
func setSliceFile(t *testing.T, s *segstore.Store, m *segstore.Meta, i int64, b []byte) {
	t.Helper()
	if err := os.WriteFile(s.SlicePath(m.Key, m.Version, i), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// expectDeleted checks that slice i of m was dropped after ErrCorrupt:
// gone from the index, from Pebble and from the disk.
func expectDeleted(t *testing.T, s *segstore.Store, m *segstore.Meta, i int64) {
	t.Helper()
	if s.Has(m, i) {
		t.Errorf("Has(%d) = true after ErrCorrupt", i)
	}
	if _, closer, err := s.DB().Get(segstore.SliceKey(m.Key, m.Version, i)); !errors.Is(err, pebble.ErrNotFound) {
		if err == nil {
			closer.Close()
		}
		t.Errorf("slice %d still in Pebble after ErrCorrupt (err %v)", i, err)
	}
	if _, err := os.Stat(s.SlicePath(m.Key, m.Version, i)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("slice %d's file still there after ErrCorrupt (stat: %v)", i, err)
	}
	if _, err := s.ReadSliceRange(m, i, 0, 1, nil); !errors.Is(err, segstore.ErrNotFound) {
		t.Errorf("ReadSliceRange(%d) after ErrCorrupt: %v, want ErrNotFound", i, err)
	}
}

// TestReadSliceRangeCorruptChunk damages one chunk of a slice, in its file
// or in its entry's checksum: reads that do not overlap it succeed (it goes
// unnoticed), the first read that overlaps it, by as little as one byte,
// fails and deletes the slice.
func TestReadSliceRangeCorruptChunk(t *testing.T) {
	for _, where := range []string{"file", "checksum"} {
		t.Run(where, func(t *testing.T) {
			s, _ := newStore(t)
			m := newMeta("example.com/range/corrupt", 2*mib, mib)
			if err := s.PutMeta(m); err != nil {
				t.Fatal(err)
			}
			writeAll(t, s, m)
			const bad = 10 // the damaged chunk of slice 1
			if where == "file" {
				f := sliceFile(t, s, m, 1)
				f[bad*chunk+chunk/2] ^= 0x01
				setSliceFile(t, s, m, 1, f)
			} else {
				k := segstore.SliceKey(m.Key, m.Version, 1)
				v := getValue(t, s.DB(), k)
				if len(v) != segstore.EntryLen(mib) || len(v) != 1+4*16 {
					t.Fatalf("entry of %d bytes, want %d", len(v), 1+4*16)
				}
				v[1+4*bad+3] ^= 0x80
				if err := s.DB().Set(k, v, pebble.NoSync); err != nil {
					t.Fatal(err)
				}
			}
			want := payload(m, 1)
			for _, c := range [][2]int64{
				{0, bad * chunk},               // everything before
				{(bad + 1) * chunk, 5 * chunk}, // everything after
				{bad*chunk - 100, 100},         // up to its first byte
				{(bad + 1) * chunk, 1},         // from just past its last byte
				{(bad + 1) * chunk, mib - (bad+1)*chunk},
			} {
				got, err := s.ReadSliceRange(m, 1, c[0], c[1], nil)
				if err != nil || !bytes.Equal(got, want[c[0]:c[0]+c[1]]) {
					t.Fatalf("range %d+%d, clear of chunk %d: err %v", c[0], c[1], bad, err)
				}
			}
			if !s.Has(m, 1) {
				t.Fatal("slice dropped by reads that did not touch the damage")
			}
			// One byte of overlap, at the chunk's first byte.
			_, err := s.ReadSliceRange(m, 1, bad*chunk-5, 6, nil)
			if !errors.Is(err, segstore.ErrCorrupt) {
				t.Fatalf("range overlapping the damaged chunk by one byte: %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("chunk %d ", bad)) {
				t.Errorf("error %q does not name chunk %d", err, bad)
			}
			expectDeleted(t, s, m, 1)
			if n := s.Stats().Corrupt; n != 1 {
				t.Errorf("Stats.Corrupt = %d, want 1", n)
			}
			// Other slices are untouched, and the slice can be refetched.
			if got, err := s.ReadSliceRange(m, 0, bad*chunk, chunk, nil); err != nil || !bytes.Equal(got, payload(m, 0)[bad*chunk:(bad+1)*chunk]) {
				t.Fatalf("slice 0: %v", err)
			}
			if err := s.WriteSlice(m, 1, want); err != nil {
				t.Fatal(err)
			}
			checkRanges(t, s, m)
		})
	}
}

// TestReadSliceRangeCorrupt checks damage that every read must catch: a file
// under another slice's name, chunks that traded places, a file one byte
// short, a missing file, a malformed entry, a damaged last chunk read by
// its last byte.
func TestReadSliceRangeCorrupt(t *testing.T) {
	s, _ := newStore(t)
	m := newMeta("example.com/range/damaged", 8*mib-100, mib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, m)

	setSliceFile(t, s, m, 1, sliceFile(t, s, m, 0)) // slice 0's bytes under slice 1's name

	f := sliceFile(t, s, m, 2) // chunks 3 and 4 swapped
	c3 := bytes.Clone(f[3*chunk : 4*chunk])
	copy(f[3*chunk:], f[4*chunk:5*chunk])
	copy(f[4*chunk:], c3)
	setSliceFile(t, s, m, 2, f)

	setSliceFile(t, s, m, 3, sliceFile(t, s, m, 3)[:mib-1]) // one byte short

	k := segstore.SliceKey(m.Key, m.Version, 4)
	v := getValue(t, s.DB(), k)
	v[0] = 9 // unknown format
	if err := s.DB().Set(k, v, pebble.NoSync); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(s.SlicePath(m.Key, m.Version, 5)); err != nil {
		t.Fatal(err)
	}

	f = sliceFile(t, s, m, 7) // the last, short slice: damage its last byte
	f[len(f)-1] ^= 0xff
	setSliceFile(t, s, m, 7, f)

	for _, c := range []struct {
		i, off, n int64
		why       string
	}{
		{1, 5 * chunk, 10, "crc32c"},
		{2, 4*chunk - 1, 2, "chunk 3 "},
		{3, mib - 10, 10, "shorter than"},
		{4, 100, 100, "malformed entry"},
		{5, 0, 1, "open its file"},
		{7, mib - 101, 1, "chunk 15 "},
	} {
		_, err := s.ReadSliceRange(m, c.i, c.off, c.n, nil)
		if !errors.Is(err, segstore.ErrCorrupt) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("ReadSliceRange(%d, off %d, n %d): %v; want ErrCorrupt saying %q", c.i, c.off, c.n, err, c.why)
		}
		expectDeleted(t, s, m, c.i)
	}
	// The undamaged slices are intact.
	for _, i := range []int64{0, 6} {
		if got, err := s.ReadSlice(m, i, nil); err != nil || !bytes.Equal(got, payload(m, i)) {
			t.Errorf("ReadSlice(%d): %v", i, err)
		}
	}
	if st := s.Stats(); st.Slices != 2 || st.Corrupt != 6 {
		t.Errorf("Stats = %+v, want 2 slices left and 6 corrupt", st)
	}
}

// TestOpenSliceVerifiesOnce checks the hit path's integrity: OpenSlice
// returns a file holding exactly the slice; a slice this process wrote is
// not read back; after a restart each slice's file is verified whole
// before its first open, once, and a damaged, short or missing file is
// dropped as corrupt instead of opened. Damage done after the
// verification is not seen by OpenSlice (the scrubber's job).
func TestOpenSliceVerifiesOnce(t *testing.T) {
	s, dir := newStore(t)
	m := newMeta("example.com/range/open", 5*mib-7, mib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, m)
	open := func(s *segstore.Store, i int64) ([]byte, error) {
		t.Helper()
		f, err := s.OpenSlice(m, i)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(f)
	}
	for i := range m.SliceCount() {
		if got, err := open(s, i); err != nil || !bytes.Equal(got, payload(m, i)) {
			t.Fatalf("OpenSlice(%d) of a slice just written: %v, right bytes %v", i, err, bytes.Equal(got, payload(m, i)))
		}
	}
	if n := s.Stats().Verified; n != 0 {
		t.Errorf("Verified = %d after opening slices this process wrote, want 0", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Damage while the store is closed.
	s = openStore(t, dir)
	f := sliceFile(t, s, m, 1)
	f[mib-1] ^= 0x02 // the last byte of a full slice
	setSliceFile(t, s, m, 1, f)
	setSliceFile(t, s, m, 2, sliceFile(t, s, m, 2)[:mib/2])
	if err := os.Remove(s.SlicePath(m.Key, m.Version, 3)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		i   int64
		why string
	}{{1, "chunk 15 "}, {2, "file of 524288 bytes"}, {3, "its file is gone"}} {
		if _, err := open(s, c.i); !errors.Is(err, segstore.ErrCorrupt) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("OpenSlice(%d) after damage: %v; want ErrCorrupt saying %q", c.i, err, c.why)
		}
		expectDeleted(t, s, m, c.i)
	}
	for _, i := range []int64{0, 4} {
		for range 3 {
			if got, err := open(s, i); err != nil || !bytes.Equal(got, payload(m, i)) {
				t.Fatalf("OpenSlice(%d) after a restart: %v", i, err)
			}
		}
	}
	if st := s.Stats(); st.Verified != 2 || st.Corrupt != 3 {
		t.Errorf("Verified %d, Corrupt %d; want 2 (each good slice once) and 3", st.Verified, st.Corrupt)
	}
	// Verified: damage now goes unseen by OpenSlice, and is caught by a
	// read that checks the chunks.
	f = sliceFile(t, s, m, 0)
	f[7] ^= 0x01
	setSliceFile(t, s, m, 0, f)
	if got, err := open(s, 0); err != nil || len(got) != mib {
		t.Errorf("OpenSlice(0) of a verified slice: %d bytes, %v", len(got), err)
	}
	if _, err := s.ReadSliceRange(m, 0, 0, 8, nil); !errors.Is(err, segstore.ErrCorrupt) {
		t.Errorf("ReadSliceRange over the damage: %v, want ErrCorrupt", err)
	}
	s.Close()
}

// TestScrubber checks the background scrubber: a slice whose file is
// damaged while the store runs, after a pass verified it and after
// OpenSlice did (so that sending it is one open(2), which reads nothing),
// is dropped by a later pass and counted as corrupt, and the good slices
// stay. (TestScrubberRemovesOrphans checks what a pass does with files no
// entry names.)
func TestScrubber(t *testing.T) {
	defer segstore.SetScrubPause(segstore.SetScrubPause(10 * time.Millisecond))
	dir := t.TempDir()
	s, err := segstore.Open(segstore.Options{Dir: dir, ScrubRate: 1 << 30, Logger: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := newMeta("example.com/range/scrub", 4*mib, mib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, m)
	origintest.WaitFor(t, "a pass over the 4 slices", func() bool { return s.Stats().Scrubbed >= 4 })
	for i := range m.SliceCount() {
		if got, err := openSlice(s, m, i); err != nil || !bytes.Equal(got, payload(m, i)) {
			t.Fatalf("OpenSlice(%d) before the damage: %v", i, err)
		}
	}
	if st := s.Stats(); st.Corrupt != 0 || st.ScrubbedBytes < 4*mib {
		t.Fatalf("Stats after a pass = %+v, want 4 MiB scrubbed and nothing corrupt", st)
	}

	flipByte(t, s.SlicePath(m.Key, m.Version, 2), 3*chunk+1)
	origintest.WaitFor(t, "the scrubber to drop the damaged slice", func() bool {
		_, err := os.Stat(s.SlicePath(m.Key, m.Version, 2))
		return s.Stats().Corrupt == 1 && !s.Has(m, 2) && errors.Is(err, os.ErrNotExist)
	})
	expectDeleted(t, s, m, 2)
	if _, err := openSlice(s, m, 2); !errors.Is(err, segstore.ErrNotFound) {
		t.Errorf("OpenSlice of the dropped slice: %v, want ErrNotFound", err)
	}
	if st := s.Stats(); st.Corrupt != 1 || st.Slices != 3 || st.Bytes != 3*mib {
		t.Errorf("Stats = %+v; want 1 corrupt, the 3 good slices kept", st)
	}
	for _, i := range []int64{0, 1, 3} {
		if got, err := openSlice(s, m, i); err != nil || !bytes.Equal(got, payload(m, i)) {
			t.Errorf("OpenSlice(%d) after scrubbing: %v", i, err)
		}
		if got, err := s.ReadSlice(m, i, nil); err != nil || !bytes.Equal(got, payload(m, i)) {
			t.Errorf("ReadSlice(%d) after scrubbing: %v", i, err)
		}
	}
	checkFiles(t, s, dir, m)
	// Fetched again, it is sent again.
	if err := s.WriteSlice(m, 2, payload(m, 2)); err != nil {
		t.Fatal(err)
	}
	if got, err := openSlice(s, m, 2); err != nil || !bytes.Equal(got, payload(m, 2)) {
		t.Errorf("OpenSlice(2) after it was written again: %v", err)
	}
}

// TestOldFormatSlicesDropped checks Open of a store an earlier version
// wrote (markers segstore/1 and segstore/2, slice bytes in Pebble values):
// it keeps the metas, drops the slices (their keys gone from Pebble), says
// so, writes the new marker, and the objects fill again, into files.
func TestOldFormatSlicesDropped(t *testing.T) {
	for _, format := range []string{"segstore/1", "segstore/2"} {
		t.Run(format, func(t *testing.T) {
			s, dir := newStore(t)
			m := newMeta("example.com/range/old", 2*mib, mib)
			other := newMeta("example.com/range/old/other", kib, kib)
			for _, m := range []*segstore.Meta{m, other} {
				if err := s.PutMeta(m); err != nil {
					t.Fatal(err)
				}
			}
			// As the previous version left it: its marker, and slice values
			// of its format (a format byte, checksums, the bytes).
			if err := s.DB().Set([]byte(segstore.FormatKey), []byte(format), pebble.NoSync); err != nil {
				t.Fatal(err)
			}
			f := format[len(format)-1] - '0'
			for _, w := range []struct {
				m *segstore.Meta
				i int64
			}{{m, 0}, {m, 1}, {other, 0}} {
				old := append([]byte{f}, make([]byte, 4*16+w.m.SliceLen(w.i))...)
				if err := s.DB().Set(segstore.SliceKey(w.m.Key, w.m.Version, w.i), old, pebble.NoSync); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			var logs strings.Builder
			var logMu sync.Mutex
			s, err := segstore.Open(segstore.Options{Dir: dir, Logger: func(format string, args ...any) {
				logMu.Lock()
				defer logMu.Unlock()
				fmt.Fprintf(&logs, format+"\n", args...)
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			logMu.Lock()
			if !strings.Contains(logs.String(), fmt.Sprintf("%q upgraded to \"segstore/3\"", format)) || !strings.Contains(logs.String(), "dropped") {
				t.Errorf("Open of a %s store logged:\n%s", format, logs.String())
			}
			logMu.Unlock()
			if v := getValue(t, s.DB(), []byte(segstore.FormatKey)); string(v) != segstore.FormatValue {
				t.Fatalf("format marker after Open: %q, want %q", v, segstore.FormatValue)
			}
			if st := s.Stats(); st.Slices != 0 || st.Objects != 2 || s.Has(m, 0) || s.Has(other, 0) {
				t.Fatalf("after the upgrade: Stats = %+v, Has %v %v; want the 2 metas and no slice", st, s.Has(m, 0), s.Has(other, 0))
			}
			if keys := keysWithPrefix(t, s, []byte("s")); len(keys) != 0 {
				t.Errorf("%d slice keys left in Pebble after the upgrade", len(keys))
			}
			for _, m := range []*segstore.Meta{m, other} {
				got, err := s.Meta(m.Key)
				if err != nil || !reflect.DeepEqual(got, m) {
					t.Fatalf("meta after the upgrade: %+v, %v; want %+v", got, err, m)
				}
				if _, err := s.ReadSlice(m, 0, nil); !errors.Is(err, segstore.ErrNotFound) {
					t.Errorf("ReadSlice(%q, 0) after the upgrade: %v, want ErrNotFound", m.Key, err)
				}
			}
			writeAll(t, s, m)
			checkRanges(t, s, m)
			checkFiles(t, s, dir, m, other)
		})
	}
}

// TestFormatMarker checks Open's handling of the store's format marker: a
// new store gets the current one, and a marker this version does not know
// is refused without touching the store.
func TestFormatMarker(t *testing.T) {
	s, dir := newStore(t)
	if got := string(getValue(t, s.DB(), []byte(segstore.FormatKey))); got != "segstore/3" {
		t.Fatalf("new store's marker %q, want %q", got, "segstore/3")
	}
	m := newMeta("example.com/range/marker", 2*kib, kib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, m)
	if err := s.DB().Set([]byte(segstore.FormatKey), []byte("segstore/4"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := segstore.Open(segstore.Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), `"segstore/4"`) || !strings.Contains(err.Error(), "another sliceedge version") {
		t.Fatalf("Open of a segstore/4 store: %v, want a refusal naming the format", err)
	}
	// Refused without changes: put the marker back and everything is there.
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte(segstore.FormatKey), []byte(segstore.FormatValue), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	checkRanges(t, s, m)
}

// quietLogger is a pebble.Logger for tests that open Pebble directly.
type quietLogger struct{ t *testing.T }

func (quietLogger) Infof(string, ...any)           {}
func (l quietLogger) Errorf(f string, args ...any) { l.t.Logf(f, args...) }
func (l quietLogger) Fatalf(f string, args ...any) { l.t.Fatalf(f, args...) }

// TestReadSliceRangeReferenceBit checks that ReadSliceRange gives a slice its
// second chance as ReadSlice does, and a failed read does not.
func TestReadSliceRangeReferenceBit(t *testing.T) {
	s, _ := newStore(t)
	m := newMeta("example.com/range/clock", 4*16*kib, 16*kib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, m)
	if _, err := s.ReadSliceRange(m, 0, 100, 200, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadSliceRange(m, 1, 100, 16*kib, nil); !errors.Is(err, segstore.ErrOutOfRange) {
		t.Fatal(err)
	}
	if got := s.Evict(2 * 16 * kib); got != 2*16*kib {
		t.Fatalf("evicted %d bytes, want %d", got, 2*16*kib)
	}
	if _, st := storedBits(s, m); !st[0] || st[1] || st[2] || !st[3] {
		t.Fatalf("stored %v after evicting two: want slice 0 (read) and 3 kept", st)
	}
}

// TestReadSliceRangeConcurrent reads random ranges while slices are
// rewritten and evicted (run it with -race): every read returns the right
// bytes or ErrNotFound.
func TestReadSliceRangeConcurrent(t *testing.T) {
	s, _ := newStore(t)
	m := newMeta("example.com/range/concurrent", 8*256*kib-1, 256*kib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, m)
	want := make([][]byte, m.SliceCount())
	for i := range want {
		want[i] = payload(m, int64(i))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var readErr error
	var errMu sync.Mutex
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			buf := make([]byte, 256*kib)
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := r.Int64N(m.SliceCount())
				sl := m.SliceLen(i)
				off := r.Int64N(sl)
				n := 1 + r.Int64N(sl-off)
				got, err := s.ReadSliceRange(m, i, off, n, buf)
				switch {
				case errors.Is(err, segstore.ErrNotFound):
				case err != nil || !bytes.Equal(got, want[i][off:off+n]):
					errMu.Lock()
					readErr = fmt.Errorf("slice %d, off %d, n %d: err %v", i, off, n, err)
					errMu.Unlock()
					return
				}
			}
		}()
	}
	r := rand.New(rand.NewPCG(9, 9))
	n := 200
	if testing.Short() {
		n = 50
	}
	for range n {
		i := r.Int64N(m.SliceCount())
		if err := s.WriteSlice(m, i, want[i]); err != nil {
			t.Fatal(err)
		}
		if r.IntN(4) == 0 {
			s.Evict(256 * kib)
		}
	}
	close(stop)
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
}
