package segstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

const kib = 1 << 10

// storedBits returns StoredRuns as one bool per slice of m (a small m), and
// checks that the runs are ascending, not adjacent, and add up to count.
func storedBits(s *segstore.Store, m *segstore.Meta) (int64, []bool) {
	n, runs := s.StoredRuns(m)
	bits := make([]bool, m.SliceCount())
	var sum int64
	for k, r := range runs {
		if r.First > r.Last || r.First < 0 || r.Last >= m.SliceCount() || (k > 0 && runs[k-1].Last+1 >= r.First) {
			panic(fmt.Sprintf("StoredRuns(%q) = %d %v: run %d is out of order or out of range", m.Key, n, runs, k))
		}
		for i := r.First; i <= r.Last; i++ {
			bits[i] = true
		}
		sum += r.Len()
	}
	if sum != n {
		panic(fmt.Sprintf("StoredRuns(%q) = %d %v: the runs hold %d slices", m.Key, n, runs, sum))
	}
	return n, bits
}

func openStore(t testing.TB, dir string) *segstore.Store {
	t.Helper()
	s, err := segstore.Open(segstore.Options{Dir: dir, MaxBytes: 1 << 30, Logger: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newStore(t testing.TB) (*segstore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s := openStore(t, dir)
	t.Cleanup(func() { _ = s.Close() })
	return s, dir
}

func newMeta(key string, size, sliceSize int64) *segstore.Meta {
	return &segstore.Meta{
		Key:          key,
		Size:         size,
		SliceSize:    sliceSize,
		Version:      segstore.NewVersion(),
		ETag:         `"abc"`,
		LastModified: "Mon, 02 Jan 2006 15:04:05 GMT",
		Header:       map[string][]string{"Content-Type": {"video/mp4"}, "Cache-Control": {"max-age=60"}},
		StoredAt:     time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Lifetime:     time.Minute,
	}
}

// payload returns the deterministic bytes of slice i of m.
func payload(m *segstore.Meta, i int64) []byte {
	b := make([]byte, m.SliceLen(i))
	r := rand.NewPCG(m.Version, uint64(i))
	for j := 0; j < len(b); j += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(b[j:], w[:])
	}
	return b
}

func writeAll(t testing.TB, s *segstore.Store, m *segstore.Meta) {
	t.Helper()
	for i := range m.SliceCount() {
		if err := s.WriteSlice(m, i, payload(m, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// keysWithPrefix scans Pebble for every key starting with p.
func keysWithPrefix(t testing.TB, s *segstore.Store, p []byte) [][]byte {
	t.Helper()
	upper := append(bytes.Clone(p), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	it, err := s.DB().NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upper})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var keys [][]byte
	for it.First(); it.Valid(); it.Next() {
		keys = append(keys, bytes.Clone(it.Key()))
	}
	return keys
}

func TestMetaRoundTrip(t *testing.T) {
	s, dir := newStore(t)
	if _, err := s.Meta("example.com/a"); !errors.Is(err, segstore.ErrNotFound) {
		t.Fatalf("Meta of unknown key: err = %v, want ErrNotFound", err)
	}
	m := newMeta("example.com/video/a.mp4?x=1", 10*kib, 4*kib)
	m.NoRange = true
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	got, err := s.Meta(m.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("Meta = %+v, want %+v", got, m)
	}
	m.Header["Content-Type"][0] = "changed by caller" // the store keeps its own copy
	if got, _ := s.Meta(m.Key); got.Header["Content-Type"][0] != "video/mp4" {
		t.Fatalf("stored meta shares the caller's header map")
	}
	m.Header["Content-Type"][0] = "video/mp4"
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	got, err = s.Meta(m.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("after reopen Meta = %+v, want %+v", got, m)
	}
	if st := s.Stats(); st.Objects != 1 || st.MaxBytes != 1<<30 {
		t.Fatalf("Stats = %+v, want 1 object and MaxBytes 1 GiB", st)
	}
}

func TestPutMetaRejects(t *testing.T) {
	s, _ := newStore(t)
	m := newMeta("k", 100, 10)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(m *segstore.Meta)
	}{
		{"empty key", func(m *segstore.Meta) { m.Key = "" }},
		{"version 0", func(m *segstore.Meta) { m.Version = 0 }},
		{"negative size", func(m *segstore.Meta) { m.Size = -1 }},
		{"slice size 0", func(m *segstore.Meta) { m.SliceSize = 0 }},
		{"slice size too big", func(m *segstore.Meta) { m.SliceSize = segstore.MaxSliceSize + 1 }},
		{"same version, new size", func(m *segstore.Meta) { m.Size = 101 }},
		{"same version, new slice size", func(m *segstore.Meta) { m.SliceSize = 20 }},
	}
	for _, tt := range tests {
		c := *m
		tt.change(&c)
		if err := s.PutMeta(&c); err == nil {
			t.Errorf("%s: PutMeta(%+v) succeeded, want error", tt.name, c)
		}
	}
}

func TestSliceMath(t *testing.T) {
	tests := []struct {
		size, sliceSize int64
		count           int64
		lens            []int64 // for i = -1, 0, 1, ...
	}{
		{0, 10, 0, []int64{0, 0}},
		{1, 10, 1, []int64{0, 1, 0}},
		{10, 10, 1, []int64{0, 10, 0}},
		{25, 10, 3, []int64{0, 10, 10, 5, 0}},
	}
	for _, tt := range tests {
		m := &segstore.Meta{Size: tt.size, SliceSize: tt.sliceSize}
		if got := m.SliceCount(); got != tt.count {
			t.Errorf("size=%d sliceSize=%d: SliceCount = %d, want %d", tt.size, tt.sliceSize, got, tt.count)
		}
		for j, want := range tt.lens {
			if got := m.SliceLen(int64(j - 1)); got != want {
				t.Errorf("size=%d sliceSize=%d: SliceLen(%d) = %d, want %d", tt.size, tt.sliceSize, j-1, got, want)
			}
		}
	}
	if segstore.NewVersion() == 0 {
		t.Error("NewVersion returned 0")
	}
}

func TestWriteReadSlices(t *testing.T) {
	s, _ := newStore(t)
	// 3 full slices of 64 KiB and a short one of 1000 bytes.
	m := newMeta("example.com/v/a.mp4", 3*64*kib+1000, 64*kib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	for i := range m.SliceCount() {
		if s.Has(m, i) {
			t.Fatalf("Has(%d) before any write", i)
		}
	}
	if _, err := s.ReadSlice(m, 0, nil); !errors.Is(err, segstore.ErrNotFound) {
		t.Fatalf("ReadSlice of unwritten slice: err = %v, want ErrNotFound", err)
	}
	for _, i := range []int64{3, 1} {
		if err := s.WriteSlice(m, i, payload(m, i)); err != nil {
			t.Fatal(err)
		}
	}
	n, runs := s.StoredRuns(m)
	if want := []slicer.Run{{First: 1, Last: 1}, {First: 3, Last: 3}}; n != 2 || !reflect.DeepEqual(runs, want) {
		t.Fatalf("StoredRuns = %d %v, want 2 %v", n, runs, want)
	}
	if got := s.CountStored(m, 1, 2); got != 1 {
		t.Fatalf("CountStored(1, 2) = %d, want 1", got)
	}
	writeAll(t, s, m) // rewriting a slice is harmless
	buf := make([]byte, 0, 64*kib)
	for i := range m.SliceCount() {
		if !s.Has(m, i) {
			t.Errorf("Has(%d) = false after write", i)
		}
		got, err := s.ReadSlice(m, i, buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := payload(m, i); !bytes.Equal(got, want) {
			t.Fatalf("slice %d: read %d bytes differing from the %d written", i, len(got), len(want))
		}
		if i < 3 && &got[0] != &buf[:1][0] {
			t.Errorf("slice %d: ReadSlice did not reuse dst", i)
		}
	}
	if got, _ := s.ReadSlice(m, 3, nil); len(got) != 1000 {
		t.Fatalf("last slice: %d bytes, want 1000", len(got))
	}
	if s.Has(m, 4) || s.Has(m, -1) {
		t.Fatal("Has of a slice past the end")
	}
	st := s.Stats()
	if st.Objects != 1 || st.Slices != 4 || st.Bytes != m.Size || st.DiskBytes <= 0 {
		t.Fatalf("Stats = %+v, want 1 object, 4 slices, %d bytes, some disk", st, m.Size)
	}
}

func TestWriteSliceRejectsWrongLength(t *testing.T) {
	s, _ := newStore(t)
	m := newMeta("k", 2*kib+10, kib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		i int64
		n int
	}{
		{0, kib - 1}, {0, kib + 1}, {2, kib}, {2, 9}, {2, 0}, {3, 10}, {-1, kib},
	}
	for _, tt := range tests {
		if err := s.WriteSlice(m, tt.i, make([]byte, tt.n)); err == nil {
			t.Errorf("WriteSlice(i=%d, %d bytes) succeeded, want error", tt.i, tt.n)
		}
		if s.Has(m, tt.i) {
			t.Errorf("Has(%d) after a rejected write", tt.i)
		}
	}
	other := *m
	other.Size = 3 * kib // same version, another size: a caller bug
	if err := s.WriteSlice(&other, 2, make([]byte, kib)); err == nil {
		t.Error("WriteSlice with a meta disagreeing with the stored one succeeded")
	}
	if st := s.Stats(); st.Slices != 0 {
		t.Fatalf("Stats = %+v after rejected writes", st)
	}
}

func TestCorruptSlice(t *testing.T) {
	s, _ := newStore(t)
	m := newMeta("example.com/corrupt", 3*64*kib, 64*kib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, m)
	// Flip one bit of slice 1's file.
	f1, err := os.ReadFile(s.SlicePath(m.Key, m.Version, 1))
	if err != nil {
		t.Fatal(err)
	}
	f1[1234] ^= 0x10
	if err := os.WriteFile(s.SlicePath(m.Key, m.Version, 1), f1, 0o644); err != nil {
		t.Fatal(err)
	}
	// Put slice 0's (valid) file under slice 2's name.
	f0, err := os.ReadFile(s.SlicePath(m.Key, m.Version, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.SlicePath(m.Key, m.Version, 2), f0, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, i := range []int64{1, 2} {
		if _, err := s.ReadSlice(m, i, nil); !errors.Is(err, segstore.ErrCorrupt) {
			t.Fatalf("ReadSlice(%d) of a damaged slice: err = %v, want ErrCorrupt", i, err)
		}
		if s.Has(m, i) {
			t.Errorf("Has(%d) = true after ErrCorrupt", i)
		}
		if _, closer, err := s.DB().Get(segstore.SliceKey(m.Key, m.Version, i)); !errors.Is(err, pebble.ErrNotFound) {
			if err == nil {
				closer.Close()
			}
			t.Errorf("slice %d still in Pebble after ErrCorrupt (err %v)", i, err)
		}
		if _, err := s.ReadSlice(m, i, nil); !errors.Is(err, segstore.ErrNotFound) {
			t.Errorf("second ReadSlice(%d): err = %v, want ErrNotFound", i, err)
		}
	}
	if got, err := s.ReadSlice(m, 0, nil); err != nil || !bytes.Equal(got, payload(m, 0)) {
		t.Fatalf("undamaged slice 0: err = %v", err)
	}
	if st := s.Stats(); st.Slices != 1 || st.Bytes != 64*kib {
		t.Fatalf("Stats = %+v, want 1 slice of 64 KiB left", st)
	}
	// Refetching the slice works.
	if err := s.WriteSlice(m, 1, payload(m, 1)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadSlice(m, 1, nil); err != nil || !bytes.Equal(got, payload(m, 1)) {
		t.Fatalf("rewritten slice 1: err = %v", err)
	}
}

func TestVersionChange(t *testing.T) {
	s, dir := newStore(t)
	old := newMeta("example.com/changing", 5*64*kib, 64*kib)
	if err := s.PutMeta(old); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, old)
	if err := s.DB().Flush(); err != nil { // their entries in an sstable
		t.Fatal(err)
	}
	// Refreshing the meta without a version change keeps the slices.
	refreshed := *old
	refreshed.StoredAt = refreshed.StoredAt.Add(time.Hour)
	if err := s.PutMeta(&refreshed); err != nil {
		t.Fatal(err)
	}
	if n, _ := storedBits(s, old); n != 5 {
		t.Fatalf("after a refresh Stored = %d, want 5", n)
	}

	cur := newMeta(old.Key, 2*64*kib, 64*kib)
	if err := s.PutMeta(cur); err != nil {
		t.Fatal(err)
	}
	if keys := keysWithPrefix(t, s, segstore.VersionPrefix(old.Key, old.Version)); len(keys) != 0 {
		t.Fatalf("%d keys of the old version remain, e.g. %x", len(keys), keys[0])
	}
	checkFiles(t, s, dir, old, cur) // the old version's files are gone
	for i := range old.SliceCount() {
		if s.Has(old, i) {
			t.Fatalf("Has(old, %d) after version change", i)
		}
	}
	if err := s.WriteSlice(old, 0, payload(old, 0)); !errors.Is(err, segstore.ErrStale) {
		t.Fatalf("WriteSlice of the old version: err = %v, want ErrStale", err)
	}
	if keys := keysWithPrefix(t, s, segstore.VersionPrefix(old.Key, old.Version)); len(keys) != 0 {
		t.Fatal("a stale write reached Pebble")
	}
	writeAll(t, s, cur)
	if st := s.Stats(); st.Objects != 1 || st.Slices != 2 || st.Bytes != cur.Size {
		t.Fatalf("Stats = %+v, want 1 object, 2 slices", st)
	}
	if got, _ := s.Meta(old.Key); got.Version != cur.Version {
		t.Fatalf("stale write changed the meta: version %x, want %x", got.Version, cur.Version)
	}
	checkFiles(t, s, dir, old, cur)
}

func TestPurge(t *testing.T) {
	s, dir := newStore(t)
	a := newMeta("example.com/a", 3*kib, kib)
	b := newMeta("example.com/b", 3*kib, kib)
	for _, m := range []*segstore.Meta{a, b} {
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
	}
	if err := s.Purge(a.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Meta(a.Key); !errors.Is(err, segstore.ErrNotFound) {
		t.Fatalf("Meta after purge: err = %v, want ErrNotFound", err)
	}
	if s.Has(a, 0) {
		t.Fatal("Has after purge")
	}
	if _, err := s.ReadSlice(a, 0, nil); !errors.Is(err, segstore.ErrNotFound) {
		t.Fatalf("ReadSlice after purge: err = %v, want ErrNotFound", err)
	}
	if keys := keysWithPrefix(t, s, segstore.VersionPrefix(a.Key, a.Version)); len(keys) != 0 {
		t.Fatalf("%d slice keys remain after purge", len(keys))
	}
	// Its files are gone at once, with their directory.
	checkFiles(t, s, dir, a, b)
	if _, err := os.Stat(filepath.Dir(s.SlicePath(a.Key, a.Version, 0))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the purged object's directory: stat %v, want it gone", err)
	}
	if err := s.WriteSlice(a, 0, payload(a, 0)); !errors.Is(err, segstore.ErrStale) {
		t.Fatalf("WriteSlice after purge: err = %v, want ErrStale", err)
	}
	if err := s.Purge(a.Key); err != nil {
		t.Fatalf("second purge: %v, want nil (purge is idempotent)", err)
	}
	if got, err := s.ReadSlice(b, 2, nil); err != nil || !bytes.Equal(got, payload(b, 2)) {
		t.Fatalf("other object damaged by purge: %v", err)
	}
	if st := s.Stats(); st.Objects != 1 || st.Slices != 3 || st.Bytes != 3*kib {
		t.Fatalf("Stats = %+v, want only b", st)
	}
}

func TestPurgePrefix(t *testing.T) {
	s, dir := newStore(t)
	const n = 10000
	var keep []*segstore.Meta
	for i := range n {
		// Most objects have one short 1 KiB slice; every hundredth has
		// two of 64 KiB.
		m := newMeta(fmt.Sprintf("example.com/p/%05d", i), kib, 64*kib)
		if i%100 == 0 {
			m.Size = 128 * kib
		}
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
	}
	for _, key := range []string{"example.com/o", "example.com/p", "example.com/q/1", "example.com/pz"} {
		m := newMeta(key, 2*kib, kib)
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
		keep = append(keep, m)
	}
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := s.PurgePrefix("example.com/p/")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PurgePrefix of %d objects: %v", got, time.Since(start))
	if got != n {
		t.Fatalf("PurgePrefix = %d, want %d", got, n)
	}
	// Full scan: only the kept objects' keys remain.
	var slices, metas int
	for _, k := range keysWithPrefix(t, s, nil) {
		switch k[0] {
		case 's':
			slices++
		case 'm':
			metas++
			if bytes.HasPrefix(k[1:], []byte("example.com/p/")) {
				t.Errorf("meta %q survived", k)
			}
		}
	}
	if metas != len(keep) || slices != 2*len(keep) {
		t.Fatalf("after purge: %d metas and %d slice keys, want %d and %d", metas, slices, len(keep), 2*len(keep))
	}
	for _, m := range keep {
		if got, err := s.ReadSlice(m, 1, nil); err != nil || !bytes.Equal(got, payload(m, 1)) {
			t.Errorf("%q: %v", m.Key, err)
		}
	}
	checkFiles(t, s, dir, keep...) // the purged objects' files are gone
	if st := s.Stats(); st.Objects != int64(len(keep)) || st.Slices != int64(2*len(keep)) {
		t.Fatalf("Stats = %+v", st)
	}
	if got, err := s.PurgePrefix("example.com/p/"); got != 0 || err != nil {
		t.Fatalf("second PurgePrefix = %d, %v", got, err)
	}
	if got, err := s.PurgePrefix(""); got != len(keep) || err != nil {
		t.Fatalf(`PurgePrefix("") = %d, %v, want %d`, got, err, len(keep))
	}
	if st := s.Stats(); st.Objects != 0 || st.Slices != 0 || st.Bytes != 0 {
		t.Fatalf("Stats after purging everything = %+v", st)
	}
}

func TestRestart(t *testing.T) {
	s, dir := newStore(t)
	ms := []*segstore.Meta{
		newMeta("example.com/r/1", 3*64*kib+7, 64*kib),
		newMeta("example.com/r/2", 300*kib, 64*kib),
		newMeta("example.com/r/empty", 0, 64*kib),
	}
	for _, m := range ms {
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
	}
	writeAll(t, s, ms[0])
	for _, i := range []int64{0, 2, 4} { // a sparse object
		if err := s.WriteSlice(ms[1], i, payload(ms[1], i)); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, segstore.ErrClosed) {
		t.Fatalf("second Close: err = %v, want ErrClosed", err)
	}
	s = openStore(t, dir)
	defer s.Close()
	after := s.Stats()
	if after.Objects != before.Objects || after.Slices != before.Slices || after.Bytes != before.Bytes {
		t.Fatalf("Stats after restart = %+v, before %+v", after, before)
	}
	for _, m := range ms {
		got, err := s.Meta(m.Key)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("Meta(%q) after restart = %+v, %v", m.Key, got, err)
		}
	}
	if _, bits := storedBits(s, ms[1]); !reflect.DeepEqual(bits, []bool{true, false, true, false, true}) {
		t.Fatalf("Stored after restart = %v", bits)
	}
	for _, m := range ms[:2] {
		for i := range m.SliceCount() {
			if !s.Has(m, i) {
				continue
			}
			if got, err := s.ReadSlice(m, i, nil); err != nil || !bytes.Equal(got, payload(m, i)) {
				t.Fatalf("%q slice %d after restart: %v", m.Key, i, err)
			}
		}
	}
	// Open rebuilds the index from the entries alone: with the slice
	// files out of the way it finds the same slices.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "slices"), filepath.Join(dir, "aside")); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	if st := s.Stats(); st.Slices != before.Slices || st.Bytes != before.Bytes {
		t.Errorf("Stats after an Open without the slice files = %+v, want %+v", st, before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "slices")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "aside"), filepath.Join(dir, "slices")); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	if got, err := s.ReadSlice(ms[0], 0, nil); err != nil || !bytes.Equal(got, payload(ms[0], 0)) {
		t.Errorf("ReadSlice with the files back: %v", err)
	}
}

func TestOrphansRemovedAtOpen(t *testing.T) {
	s, dir := newStore(t)
	m := newMeta("example.com/live", 2*kib, kib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, m)
	db := s.DB()
	// Slices under a version the meta does not name, slices of a key with no
	// meta, a slice past the object's end, and a slice of the wrong length.
	v, closer, err := db.Get(segstore.SliceKey(m.Key, m.Version, 0))
	if err != nil {
		t.Fatal(err)
	}
	v = bytes.Clone(v)
	closer.Close()
	stray := [][]byte{
		segstore.SliceKey(m.Key, m.Version+1, 0),
		segstore.SliceKey(m.Key, m.Version+1, 1),
		segstore.SliceKey("example.com/gone", 42, 0),
		segstore.SliceKey(m.Key, m.Version, 2),
	}
	for _, k := range stray {
		if err := db.Set(k, v, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Set(segstore.SliceKey(m.Key, m.Version, 1), v[:3], pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	slices := keysWithPrefix(t, s, []byte("s"))
	if len(slices) != 1 || !bytes.Equal(slices[0], segstore.SliceKey(m.Key, m.Version, 0)) {
		t.Fatalf("after open the slice keys are %x, want only slice 0 of the live version", slices)
	}
	if st := s.Stats(); st.Slices != 1 || st.Bytes != kib {
		t.Fatalf("Stats = %+v, want 1 slice", st)
	}
	if !s.Has(m, 0) || s.Has(m, 1) {
		t.Fatal("index does not match the surviving slices")
	}
}

func TestOpenErrors(t *testing.T) {
	s, dir := newStore(t)
	_ = s
	_, err := segstore.Open(segstore.Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Open of %s: err = %v, want one saying it is locked", dir, err)
	}
	if _, err := segstore.Open(segstore.Options{}); err == nil {
		t.Fatal("Open without a directory succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSlice(newMeta("k", 1, 1), 0, []byte{1}); !errors.Is(err, segstore.ErrClosed) {
		t.Fatalf("WriteSlice after Close: err = %v, want ErrClosed", err)
	}
}

// TestConcurrent runs writers, readers and purgers over a few keys at once;
// run it with -race. Every read must return exactly the bytes of the
// version it asked for, or ErrNotFound.
func TestConcurrent(t *testing.T) {
	s, dir := newStore(t)
	const keys, slices = 4, 8
	var current [keys]atomic.Pointer[segstore.Meta]
	for k := range keys {
		m := newMeta(fmt.Sprintf("example.com/c/%d", k), slices*4*kib, 4*kib)
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		current[k].Store(m)
	}
	var (
		wg       sync.WaitGroup
		stop     atomic.Bool
		reads    atomic.Int64
		hits     atomic.Int64
		stale    atomic.Int64
		failures atomic.Int64
	)
	fail := func(format string, args ...any) {
		if failures.Add(1) < 5 {
			t.Errorf(format, args...)
		}
	}
	for w := range 4 { // writers
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for !stop.Load() {
				m := current[r.IntN(keys)].Load()
				i := r.Int64N(slices)
				err := s.WriteSlice(m, i, payload(m, i))
				switch {
				case errors.Is(err, segstore.ErrStale):
					stale.Add(1)
				case err != nil:
					fail("WriteSlice: %v", err)
				}
			}
		}()
	}
	for w := range 4 { // readers
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 2))
			buf := make([]byte, 4*kib)
			for !stop.Load() {
				m := current[r.IntN(keys)].Load()
				i := r.Int64N(slices)
				_ = s.Has(m, i)
				got, err := s.ReadSlice(m, i, buf)
				reads.Add(1)
				switch {
				case errors.Is(err, segstore.ErrNotFound):
				case err != nil:
					fail("ReadSlice: %v", err)
				case !bytes.Equal(got, payload(m, i)):
					fail("ReadSlice(%q v%x, %d) returned other bytes", m.Key, m.Version, i)
				default:
					hits.Add(1)
				}
				if r.IntN(16) == 0 {
					s.StoredRuns(m)
					s.CountStored(m, 0, m.SliceCount()-1)
					s.Stats()
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // purger and replacer
		defer wg.Done()
		r := rand.New(rand.NewPCG(3, 3))
		for n := 0; n < 40 && failures.Load() == 0; n++ {
			k := r.IntN(keys)
			old := current[k].Load()
			if r.IntN(4) == 0 {
				if err := s.Purge(old.Key); err != nil {
					fail("Purge: %v", err)
				}
			}
			m := newMeta(old.Key, old.Size, old.SliceSize)
			if err := s.PutMeta(m); err != nil {
				fail("PutMeta: %v", err)
			}
			current[k].Store(m)
			if _, err := s.Meta(m.Key); err != nil {
				fail("Meta: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := s.PurgePrefix("example.com/c/"); err != nil {
			fail("PurgePrefix: %v", err)
		}
		stop.Store(true)
	}()
	wg.Wait()
	t.Logf("%d reads, %d hits, %d stale writes", reads.Load(), hits.Load(), stale.Load())
	if hits.Load() == 0 || stale.Load() == 0 {
		t.Errorf("the test exercised too little: %d hits, %d stale writes", hits.Load(), stale.Load())
	}
	// After the final purge nothing of any object remains.
	if st := s.Stats(); st.Objects != 0 || st.Slices != 0 || st.Bytes != 0 {
		t.Errorf("Stats after purging all = %+v", st)
	}
	if keys := keysWithPrefix(t, s, []byte("s")); len(keys) != 0 {
		t.Errorf("%d slice keys left after purging all", len(keys))
	}
	checkFiles(t, s, dir) // and no file: none left by a write that lost a race
}

// TestCrash simulates a crash of the machine at several moments (Pebble's
// crashable in-memory filesystem keeps synced data and a random part of the
// rest): the reopened store must hold only whole batches, and every slice
// must read right, with the meta that names it, or, its file lost (slice
// files are not synced: a cache's bytes can be fetched again), be dropped as
// corrupt; never read wrong. The index must match the keys.
func TestCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	dir := t.TempDir()
	s, err := segstore.Open(segstore.Options{Dir: dir, FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := newMeta("example.com/crash/a", 4*64*kib, 64*kib)
	if err := s.PutMeta(a); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, a)
	if err := s.DB().Flush(); err != nil { // a is durable from here on
		t.Fatal(err)
	}
	b := newMeta("example.com/crash/b", 3*64*kib+5, 64*kib)
	if err := s.PutMeta(b); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, b)
	a2 := newMeta(a.Key, 2*64*kib, 64*kib) // a changes version, unflushed
	if err := s.PutMeta(a2); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSlice(a2, 1, payload(a2, 1)); err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(7, 7))
	for _, pct := range []int{0, 30, 70, 100} {
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng})
		c, err := segstore.Open(segstore.Options{Dir: dir, FS: crashed})
		if err != nil {
			t.Fatalf("unsynced %d%%: reopen after crash: %v", pct, err)
		}
		var metas []*segstore.Meta
		for _, k := range keysWithPrefix(t, c, []byte("m")) {
			m, err := c.Meta(string(k[1:]))
			if err != nil {
				t.Fatalf("unsynced %d%%: meta %q: %v", pct, k, err)
			}
			metas = append(metas, m)
		}
		var slices, lost int64
		for _, m := range metas {
			for i := range m.SliceCount() {
				got, err := c.ReadSlice(m, i, nil)
				switch {
				case errors.Is(err, segstore.ErrNotFound):
					if c.Has(m, i) {
						t.Errorf("unsynced %d%%: Has(%q, %d) but the slice is missing", pct, m.Key, i)
					}
				case errors.Is(err, segstore.ErrCorrupt):
					lost++
					if c.Has(m, i) {
						t.Errorf("unsynced %d%%: Has(%q, %d) after its file failed", pct, m.Key, i)
					}
				case err != nil:
					t.Errorf("unsynced %d%%: ReadSlice(%q, %d): %v", pct, m.Key, i, err)
				case !bytes.Equal(got, payload(m, i)):
					t.Errorf("unsynced %d%%: slice %d of %q has other bytes", pct, i, m.Key)
				default:
					slices++
					if !c.Has(m, i) {
						t.Errorf("unsynced %d%%: slice %d of %q stored but Has is false", pct, i, m.Key)
					}
				}
			}
		}
		if n := len(keysWithPrefix(t, c, []byte("s"))); int64(n) != slices {
			t.Errorf("unsynced %d%%: %d slice keys, %d of them readable: orphans survived Open", pct, n, slices)
		}
		if st := c.Stats(); st.Slices != slices || st.Objects != int64(len(metas)) {
			t.Errorf("unsynced %d%%: Stats = %+v, want %d objects, %d slices", pct, st, len(metas), slices)
		}
		if pct == 0 {
			// Only what was flushed: a's first version, its slices read
			// right or lost with their files.
			if len(metas) != 1 || metas[0].Version != a.Version || slices+lost != 4 {
				t.Errorf("unsynced 0%%: %d metas, %d slices and %d lost; want a's first version with 4 slices", len(metas), slices, lost)
			}
		}
		t.Logf("unsynced %d%%: %d objects, %d slices survived, %d lost with their files", pct, len(metas), slices, lost)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Close may race with every other method: a call already using Pebble
// finishes first (Pebble panics on use after Close), later calls return
// ErrClosed, and what was written before Close survives it.
func TestCloseWhileInUse(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	m := newMeta("example.com/close", 64*4*kib, 4*kib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		started = make(chan struct{})
		once    sync.Once
		written [64]atomic.Bool
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4*kib)
			for n := 0; ; n++ {
				i := int64((w*16 + n) % 64)
				var err error
				switch n % 4 {
				case 0:
					err = s.WriteSlice(m, i, payload(m, i))
					if err == nil {
						written[i].Store(true)
					}
				case 1:
					_, err = s.ReadSlice(m, i, buf)
					if errors.Is(err, segstore.ErrNotFound) {
						err = nil
					}
				case 2:
					err = s.ScanMeta("example.com/", func(*segstore.Meta) bool { return true })
				case 3:
					_, err = s.Meta("example.com/absent")
					if errors.Is(err, segstore.ErrNotFound) {
						err = nil
					}
					_ = s.Stats()
				}
				if n == 8 {
					once.Do(func() { close(started) })
				}
				if errors.Is(err, segstore.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("call %d of worker %d: %v", n, w, err)
					return
				}
			}
		}()
	}
	<-started
	if err := s.Close(); err != nil {
		t.Fatalf("Close while in use: %v", err)
	}
	wg.Wait()
	if err := s.WriteSlice(m, 0, payload(m, 0)); !errors.Is(err, segstore.ErrClosed) {
		t.Fatalf("WriteSlice after Close = %v, want ErrClosed", err)
	}
	if err := s.Purge(m.Key); !errors.Is(err, segstore.ErrClosed) {
		t.Fatalf("Purge after Close = %v, want ErrClosed", err)
	}

	s = openStore(t, dir)
	defer s.Close()
	buf := make([]byte, 4*kib)
	var n int
	for i := range int64(64) {
		if !written[i].Load() {
			continue
		}
		got, err := s.ReadSlice(m, i, buf)
		if err != nil {
			t.Fatalf("slice %d written before Close: %v", i, err)
		}
		if !bytes.Equal(got, payload(m, i)) {
			t.Fatalf("slice %d: wrong bytes after reopen", i)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no slice was written before Close; the test proved nothing")
	}
}
