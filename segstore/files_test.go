package segstore_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// filesIn returns the length of every regular file under root, by path;
// none if root does not exist. A file or directory removed during the
// walk is left out.
func filesIn(t testing.TB, root string) map[string]int64 {
	t.Helper()
	files := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			var fi fs.FileInfo
			if fi, err = d.Info(); err == nil {
				files[p] = fi.Size()
			}
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// checkFiles checks the slice files of the store s in dir against its
// index: the files under slices/ are exactly those of the slices of ms
// that s holds, each as long as its slice, and tmp/ holds no file (no
// write is in progress).
func checkFiles(t testing.TB, s *segstore.Store, dir string, ms ...*segstore.Meta) {
	t.Helper()
	want := map[string]int64{}
	for _, m := range ms {
		_, runs := s.StoredRuns(m)
		for _, r := range runs {
			for i := r.First; i <= r.Last; i++ {
				want[s.SlicePath(m.Key, m.Version, i)] = m.SliceLen(i)
			}
		}
	}
	got := filesIn(t, filepath.Join(dir, "slices"))
	var extra, missing []string
	for p, n := range got {
		if w, ok := want[p]; !ok || w != n {
			extra = append(extra, p)
		}
	}
	for p, n := range want {
		if g, ok := got[p]; !ok || g != n {
			missing = append(missing, p)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	if len(extra) > 0 || len(missing) > 0 {
		t.Errorf("%d slice files for %d stored slices: %d not of a stored slice or of the wrong length (%q), %d missing or of the wrong length (%q)",
			len(got), len(want), len(extra), extra[:min(len(extra), 3)], len(missing), missing[:min(len(missing), 3)])
	}
	if tmp := filesIn(t, filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("%d files left in tmp/: %v", len(tmp), tmp)
	}
}

// openSlice returns the bytes of the file OpenSlice gives for slice i of m.
func openSlice(s *segstore.Store, m *segstore.Meta, i int64) ([]byte, error) {
	f, err := s.OpenSlice(m, i)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// copyEntry puts slice from's entry and file under slice to's key and
// name: a slice whose entry and file agree with each other, but are
// another slice's.
func copyEntry(t *testing.T, s *segstore.Store, from *segstore.Meta, fi int64, to *segstore.Meta, ti int64) {
	t.Helper()
	v := getValue(t, s.DB(), segstore.SliceKey(from.Key, from.Version, fi))
	if err := s.DB().Set(segstore.SliceKey(to.Key, to.Version, ti), v, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	setSliceFile(t, s, to, ti, sliceFile(t, s, from, fi))
}

// TestSliceUnderAnotherKeyFails moves a slice whole, entry and file, to
// another slice's key and name, as a bug or a hand could: each chunk's
// checksum covers the slice key, so the moved slice fails as corrupt
// (and is dropped) rather than serve another slice's bytes, whether it is
// read (ReadSlice), or sent after a restart (OpenSlice). The slices it
// came from are untouched.
func TestSliceUnderAnotherKeyFails(t *testing.T) {
	s, dir := newStore(t)
	// Slices of three chunks and a bit; b has the same geometry as a.
	a := newMeta("example.com/files/a", 3*(3*chunk+100), 3*chunk+100)
	b := newMeta("example.com/files/b", a.Size, a.SliceSize)
	for _, m := range []*segstore.Meta{a, b} {
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
	}
	copyEntry(t, s, a, 0, a, 2) // another slice of the same version
	copyEntry(t, s, b, 1, a, 1) // another object's slice
	for _, i := range []int64{2, 1} {
		_, err := s.ReadSlice(a, i, nil)
		if !errors.Is(err, segstore.ErrCorrupt) || !strings.Contains(err.Error(), "chunk 0 ") {
			t.Errorf("ReadSlice(%d) of another slice's entry and file: %v, want ErrCorrupt at chunk 0", i, err)
		}
		expectDeleted(t, s, a, i)
	}

	// After a restart, the first send verifies the file: b's slice 2
	// moved to a's slice 0 fails there.
	copyEntry(t, s, b, 2, a, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	if !s.Has(a, 0) {
		t.Fatal("the moved slice is not in the index after a restart: Open should not read files")
	}
	if got, err := openSlice(s, a, 0); !errors.Is(err, segstore.ErrCorrupt) {
		t.Errorf("OpenSlice of another object's entry and file after a restart: %d bytes, %v; want ErrCorrupt", len(got), err)
	}
	expectDeleted(t, s, a, 0)
	for i := range b.SliceCount() {
		if got, err := openSlice(s, b, i); err != nil || !bytes.Equal(got, payload(b, i)) {
			t.Errorf("OpenSlice(b, %d), a slice that was copied from: %v, right bytes %v", i, err, bytes.Equal(got, payload(b, i)))
		}
	}
	if st := s.Stats(); st.Slices != 3 || st.Corrupt != 1 || st.Verified != 3 {
		t.Errorf("Stats = %+v; want b's 3 slices, verified, and 1 corrupt since the restart", st)
	}
	checkFiles(t, s, dir, a, b)
}

// TestScrubberRemovesOrphans plants, while the store runs, files that no
// entry names (what a crash between a file's rename and its entry's
// commit, or a failed removal, leaves) and an empty object directory: a
// pass removes them and leaves the slices alone.
func TestScrubberRemovesOrphans(t *testing.T) {
	defer segstore.SetScrubPause(segstore.SetScrubPause(10 * time.Millisecond))
	dir := t.TempDir()
	s, err := segstore.Open(segstore.Options{Dir: dir, ScrubRate: 1 << 30, Logger: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := newMeta("example.com/files/orphans", 2*chunk+1, chunk)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, m)
	// Past the object's end, of another version, and of a key the store
	// does not know (in a directory of its own).
	orphans := []string{
		s.SlicePath(m.Key, m.Version, m.SliceCount()),
		s.SlicePath(m.Key, m.Version+1, 0),
		filepath.Join(dir, "slices", "ab", "ab00000000000001", "0000000000000001-0"),
	}
	for _, p := range orphans {
		// The scrubber, already running, removes an empty directory it
		// finds: one made for an orphan may go before the file is in it.
		var err error
		for range 100 {
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err = os.WriteFile(p, payload(m, 0), 0o644); !errors.Is(err, os.ErrNotExist) {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	emptyDir := filepath.Join(dir, "slices", "cd", "cd00000000000002")
	if err := os.MkdirAll(emptyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	gone := func(p string) bool { _, err := os.Stat(p); return errors.Is(err, os.ErrNotExist) }
	origintest.WaitFor(t, "the scrubber to remove the orphans and the empty directories", func() bool {
		for _, p := range orphans {
			if !gone(p) {
				return false
			}
		}
		return gone(emptyDir) && gone(filepath.Dir(orphans[2]))
	})
	if n := s.Orphans(); n != int64(len(orphans)) {
		t.Errorf("Orphans = %d, want %d", n, len(orphans))
	}
	checkFiles(t, s, dir, m)
	for i := range m.SliceCount() {
		if got, err := s.ReadSlice(m, i, nil); err != nil || !bytes.Equal(got, payload(m, i)) {
			t.Errorf("ReadSlice(%d) after the orphans went: %v", i, err)
		}
	}
	if st := s.Stats(); st.Slices != m.SliceCount() || st.Corrupt != 0 {
		t.Errorf("Stats = %+v, want the %d slices and nothing corrupt", st, m.SliceCount())
	}
}

// TestEvictionRemovesFiles checks that eviction gives the disk back at
// once: an evicted slice's file is gone from the directory when Evict
// returns (there is nothing left to compact), so is the directory of an
// object whose last slice went, and the files left are exactly those of
// the slices the store still holds.
func TestEvictionRemovesFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := segstore.Open(segstore.Options{Dir: dir, MaxBytes: 1 << 30, Logger: t.Logf, ScrubRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ms []*segstore.Meta
	for _, k := range []string{"a", "b"} {
		m := newMeta("example.com/files/evict/"+k, 8*chunk-10, chunk)
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
		ms = append(ms, m)
	}
	a, b := ms[0], ms[1]
	checkFiles(t, s, dir, a, b)
	before := filesIn(t, filepath.Join(dir, "slices"))

	// All of a (written first), then 3 slices of b.
	if got, want := s.Evict(a.Size+3*chunk), a.Size+3*chunk; got != want {
		t.Fatalf("Evict freed %d bytes, want %d", got, want)
	}
	checkFiles(t, s, dir, a, b)
	after := filesIn(t, filepath.Join(dir, "slices"))
	if len(after) != 5 || len(before) != 16 {
		t.Errorf("%d slice files before the eviction and %d after, want 16 and 5", len(before), len(after))
	}
	var freed int64
	for p, n := range before {
		if _, ok := after[p]; !ok {
			freed += n
		}
	}
	if freed != a.Size+3*chunk {
		t.Errorf("the files removed held %d bytes, want the %d evicted", freed, a.Size+3*chunk)
	}
	if _, err := os.Stat(filepath.Dir(s.SlicePath(a.Key, a.Version, 0))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a's directory, all of its slices evicted: stat %v, want it gone", err)
	}
	if st := s.Stats(); st.Slices != 5 || st.Bytes != 5*chunk-10 || st.DiskBytes < st.Bytes {
		t.Errorf("Stats = %+v; want 5 slices of %d bytes in all, on disk", st, 5*chunk-10)
	}
	// The survivors read right, and the evicted slices are not found.
	for _, m := range ms {
		for i := range m.SliceCount() {
			got, err := openSlice(s, m, i)
			switch {
			case s.Has(m, i) && (err != nil || !bytes.Equal(got, payload(m, i))):
				t.Errorf("OpenSlice(%q, %d), kept: %v", m.Key, i, err)
			case !s.Has(m, i) && !errors.Is(err, segstore.ErrNotFound):
				t.Errorf("OpenSlice(%q, %d), evicted: %v, want ErrNotFound", m.Key, i, err)
			}
		}
	}
}

// TestProcessCrashOrphansScrubbed kills the process (a crash clone of the
// filesystem keeping everything written, as kill -9 does): the entries of
// the slices written since the last flush are lost with the memtable (no
// WAL), their files are not. The reopened store does not count them (Open
// reads no file) and they are not readable; the orphan sweep that Open
// starts removes them at once, even with the scrubber off; a scrub pass
// then finds nothing more to remove.
func TestProcessCrashOrphansScrubbed(t *testing.T) {
	mem := vfs.NewCrashableMem()
	dir := t.TempDir()
	s, err := segstore.Open(segstore.Options{Dir: dir, FS: mem, ScrubRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := newMeta("example.com/files/crash/flushed", 4*chunk, chunk)
	n := newMeta("example.com/files/crash/unflushed", 4*chunk, chunk)
	for _, m := range []*segstore.Meta{m, n} {
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
	}
	writeAll(t, s, m)
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, n)
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 1))})

	orphans := func() []string {
		names, err := crashed.List(filepath.Dir(s.SlicePath(n.Key, n.Version, 0)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return names
	}
	c, err := segstore.Open(segstore.Options{Dir: dir, FS: crashed, ScrubRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Slices != 4 || st.Bytes != m.Size || st.Objects != 2 {
		t.Errorf("after the crash: Stats = %+v, want m's 4 slices and both metas", st)
	}
	origintest.WaitFor(t, "the orphan sweep", func() bool { return len(orphans()) == 0 && c.Orphans() == 4 })
	if stored, _ := storedBits(c, n); stored != 0 {
		t.Errorf("%d slices of the unflushed object stored after the crash, want 0", stored)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	defer segstore.SetScrubPause(segstore.SetScrubPause(10 * time.Millisecond))
	c, err = segstore.Open(segstore.Options{Dir: dir, FS: crashed, ScrubRate: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	origintest.WaitFor(t, "a scrub pass", func() bool { return c.ScrubPasses() >= 1 })
	if k := orphans(); len(k) != 0 || c.Orphans() != 0 {
		t.Errorf("after a scrub pass, n's directory holds %q, Orphans %d; want none, 0 (all gone at the last Open)", k, c.Orphans())
	}
	if got := checkReadable(t, c, m, n); got != 4 {
		t.Errorf("%d slices readable, want m's 4", got)
	}
	if st := c.Stats(); st.Corrupt != 0 || st.Scrubbed < 4 || st.Slices != 4 {
		t.Errorf("Stats = %+v, want m's 4 slices scrubbed (in each pass) and kept, none corrupt", st)
	}
}

// TestPeriodicFlushSurvivesCrash: with no write-ahead log, a process crash
// loses the index entries written since the memtable's last flush. The
// store flushes a memtable that took writes every FlushInterval, so slices
// written longer ago than that survive a kill -9 (a crash clone keeping
// everything written) instead of waiting for the memtable to fill.
func TestPeriodicFlushSurvivesCrash(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		survive  bool
	}{{50 * time.Millisecond, true}, {-1, false}} {
		mem := vfs.NewCrashableMem()
		dir := t.TempDir()
		s, err := segstore.Open(segstore.Options{Dir: dir, FS: mem, ScrubRate: -1, FlushInterval: tc.interval})
		if err != nil {
			t.Fatal(err)
		}
		m := newMeta("example.com/files/crash/periodic", 4*chunk, chunk)
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
		time.Sleep(500 * time.Millisecond) // ten intervals
		crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 1))})
		c, err := segstore.Open(segstore.Options{Dir: dir, FS: crashed, ScrubRate: -1})
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := storedBits(c, m)
		if survived := stored == 4; survived != tc.survive {
			t.Errorf("FlushInterval %v: %d of 4 slices stored after a crash 500 ms after they were written; want survived=%v", tc.interval, stored, tc.survive)
		}
		c.Close()
		s.Close()
	}
}
