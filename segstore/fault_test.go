package segstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// diskFull returns an injector that, while full is set, fails with ENOSPC
// every write to a file whose name matches.
func diskFull(full *atomic.Bool, match func(path string) bool) errorfs.Injector {
	return errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData,
			errorfs.OpFileSyncTo, errorfs.OpFileFlush, errorfs.OpFilePreallocate:
			if full.Load() && match(op.Path) {
				return fmt.Errorf("injected: op %d on %s: %w", op.Kind, op.Path, syscall.ENOSPC)
			}
		}
		return nil
	})
}

func openFS(t *testing.T, dir string, fs vfs.FS) *segstore.Store {
	t.Helper()
	s, err := segstore.Open(segstore.Options{Dir: dir, Logger: t.Logf, FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkNoWrongBytes checks that every slice of ms that Has reports reads
// with the right bytes or fails as corrupt (and is dropped), and that
// slices Has does not report are not found.
func checkNoWrongBytes(t *testing.T, s *segstore.Store, ms ...*segstore.Meta) {
	t.Helper()
	for _, m := range ms {
		for i := range m.SliceCount() {
			had := s.Has(m, i)
			got, err := s.ReadSlice(m, i, nil)
			switch {
			case err == nil && (!had || !bytes.Equal(got, payload(m, i))):
				t.Errorf("%q slice %d: read %d bytes (Has %v), wrong or not stored", m.Key, i, len(got), had)
			case err != nil && had && !errors.Is(err, segstore.ErrCorrupt):
				t.Errorf("%q slice %d: %v, want the bytes or ErrCorrupt", m.Key, i, err)
			case err != nil && !had && !errors.Is(err, segstore.ErrNotFound):
				t.Errorf("%q slice %d not stored: %v, want ErrNotFound", m.Key, i, err)
			}
		}
	}
}

// checkReadable checks that every slice of ms that Has reports is readable
// with the right bytes and every other one is not found, and returns how
// many were readable.
func checkReadable(t *testing.T, s *segstore.Store, ms ...*segstore.Meta) int {
	t.Helper()
	var n int
	for _, m := range ms {
		for i := range m.SliceCount() {
			has := s.Has(m, i)
			got, err := s.ReadSlice(m, i, nil)
			switch {
			case err == nil && !bytes.Equal(got, payload(m, i)):
				t.Errorf("%q slice %d: wrong bytes", m.Key, i)
			case err == nil && !has:
				t.Errorf("%q slice %d: readable but Has is false", m.Key, i)
			case err == nil:
				n++
			case !errors.Is(err, segstore.ErrNotFound):
				t.Errorf("%q slice %d: %v", m.Key, i, err)
			case has:
				t.Errorf("%q slice %d: Has is true but %v", m.Key, i, err)
			}
		}
	}
	return n
}

// storeWrites matches the files a full disk fails first under a store in
// dir: its sstables, and its slice files as they are written (in tmp/).
// (Pebble's MANIFEST is left alone: a failed MANIFEST write is fatal, see
// TestFatalWriteFailure.)
func storeWrites(dir string) func(path string) bool {
	tmp := filepath.Join(dir, "tmp")
	return func(p string) bool { return strings.HasSuffix(p, ".sst") || filepath.Dir(p) == tmp }
}

// TestWriteFailureRecovers fills the disk (every write to an sstable or a
// slice file fails with ENOSPC) under a store: slice writes fail at once,
// before Pebble notices, leaving nothing behind; flushes fail, then every
// write is refused at once with ErrWriteFailed and counted, nothing
// blocks, reads go on; when the disk has room again, the retried flush
// succeeds and writes resume, and a restart finds everything.
func TestWriteFailureRecovers(t *testing.T) {
	var full atomic.Bool
	mem := vfs.NewMem()
	dir := t.TempDir()
	fs := errorfs.Wrap(mem, diskFull(&full, storeWrites(dir)))
	s := openFS(t, dir, fs)
	a := newMeta("example.com/fail/a", 4*64*kib, 64*kib)
	b := newMeta("example.com/fail/b", 4*64*kib, 64*kib)
	e := newMeta("example.com/fail/e", 64*kib, 64*kib)
	for _, m := range []*segstore.Meta{a, b, e} {
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
	}
	writeAll(t, s, a)
	if err := s.DB().Flush(); err != nil { // a is on disk
		t.Fatal(err)
	}
	writeAll(t, s, b) // b's files are written, its entries in the memtable

	full.Store(true)
	// A slice file cannot be written: refused, and nothing of it is left.
	if err := s.WriteSlice(e, 0, payload(e, 0)); !errors.Is(err, segstore.ErrWriteFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteSlice of a file on a full disk: %v, want ErrWriteFailed and ENOSPC", err)
	}
	if tmp, err := mem.List(filepath.Join(dir, "tmp")); err != nil || len(tmp) != 0 {
		t.Errorf("tmp/ after a slice write failed: %q, %v; want it empty", tmp, err)
	}
	if _, err := mem.Stat(s.SlicePath(e.Key, e.Version, 0)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the slice file of a failed write: stat %v, want none", err)
	}
	if _, err := s.ReadSlice(e, 0, nil); s.Has(e, 0) || !errors.Is(err, segstore.ErrNotFound) {
		t.Errorf("a slice whose write failed: Has %v, ReadSlice %v; want it not stored", s.Has(e, 0), err)
	}
	// Purge flushes: the flush fails, and Purge says so rather than wait.
	// One channel each: the two purges may finish in either order.
	done, donePurge := make(chan error, 1), make(chan error, 1)
	go func() { done <- s.Purge("example.com/fail/none-such") }()
	if err := s.PutMeta(newMeta("example.com/fail/c", 1, 1)); err != nil {
		t.Fatal(err) // still in the memtable
	}
	c, _ := s.Meta("example.com/fail/c")
	go func() { donePurge <- s.Purge(c.Key) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("purge of an unknown key: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Purge of an unknown key blocked")
	}
	select {
	case err := <-donePurge:
		if !errors.Is(err, segstore.ErrWriteFailed) {
			t.Fatalf("Purge while the disk is full: err = %v, want ErrWriteFailed", err)
		}
		t.Logf("Purge while the disk is full: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Purge blocked while the disk is full")
	}

	// Refused at once, for the failing flushes: not waited on as a stall
	// or a store full of slices would be.
	d := newMeta("example.com/fail/d", 64*kib, 64*kib)
	if err := s.PutMeta(d); !errors.Is(err, segstore.ErrWriteFailed) || !strings.Contains(err.Error(), "flushes are failing") {
		t.Fatalf("PutMeta while flushes fail: err = %v, want ErrWriteFailed saying flushes fail", err)
	}
	if err := s.WriteSlice(e, 0, payload(e, 0)); !errors.Is(err, segstore.ErrWriteFailed) || !strings.Contains(err.Error(), "flushes are failing") {
		t.Fatalf("WriteSlice while flushes fail: err = %v, want ErrWriteFailed saying flushes fail", err)
	} else {
		t.Logf("WriteSlice while flushes fail: %v", err)
	}
	if n := checkReadable(t, s, a, b); n != 8 {
		t.Errorf("%d slices readable while flushes fail, want 8 (a on disk, b in the memtable)", n)
	}
	st := s.Stats()
	if st.WriteErrors < 3 || st.Slices != 8 {
		t.Errorf("Stats while flushes fail = %+v, want 8 slices and at least 3 write errors (a file, a meta, a slice)", st)
	}

	full.Store(false)
	room := time.Now()
	origintest.WaitFor(t, "writes to resume after the disk got room", func() bool {
		err := s.PutMeta(d)
		if err != nil && !errors.Is(err, segstore.ErrWriteFailed) {
			t.Fatalf("writes after the disk got room: %v", err)
		}
		return err == nil
	})
	t.Logf("writes resumed %v after the disk got room", time.Since(room).Round(time.Millisecond))
	writeAll(t, s, d)
	writeAll(t, s, e)
	if err := s.Purge(c.Key); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openFS(t, dir, fs)
	defer s.Close()
	if n := checkReadable(t, s, a, b, d, e); n != 10 {
		t.Errorf("after restart %d slices readable, want 10", n)
	}
	if _, err := s.Meta(c.Key); !errors.Is(err, segstore.ErrNotFound) {
		t.Errorf("purged meta after restart: %v", err)
	}
}

// TestSliceFileWriteFails fails, one at a time, each step of writing a
// slice's file on a real directory (ENOSPC: creating it in tmp/, writing
// it, writing its second half after the first went, creating its object's
// directory, renaming it into place): the write fails with ErrWriteFailed
// and is counted, leaves no file in tmp/ or under slices/ and no entry,
// no part of the slice is ever visible (Has, ReadSlice, OpenSlice), and
// metas go on being written meanwhile. Once the fault is gone the slice is
// written and sent byte for byte.
func TestSliceFileWriteFails(t *testing.T) {
	dir := t.TempDir()
	tmp, slices := filepath.Join(dir, "tmp"), filepath.Join(dir, "slices")
	inTmp := func(p string) bool { return filepath.Dir(p) == tmp }
	var fault atomic.Pointer[func(errorfs.Op) bool]
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if f := fault.Load(); f != nil && (*f)(op) {
			return fmt.Errorf("injected: op %d on %s: %w", op.Kind, op.Path, syscall.ENOSPC)
		}
		return nil
	}))
	s, err := segstore.Open(segstore.Options{Dir: dir, Logger: t.Logf, FS: fs, ScrubRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other := newMeta("example.com/filefault/other", 64*kib, 64*kib)
	if err := s.PutMeta(other); err != nil {
		t.Fatal(err)
	}
	all := []*segstore.Meta{other}

	for _, c := range []struct {
		name  string
		fails func(errorfs.Op) bool
		half  bool // the fault starts after the first half is written
	}{
		{"create", func(op errorfs.Op) bool { return op.Kind == errorfs.OpCreate && inTmp(op.Path) }, false},
		{"write", func(op errorfs.Op) bool { return op.Kind == errorfs.OpFileWrite && inTmp(op.Path) }, false},
		{"write midway", func(op errorfs.Op) bool { return op.Kind == errorfs.OpFileWrite && inTmp(op.Path) }, true},
		{"mkdir", func(op errorfs.Op) bool {
			return op.Kind == errorfs.OpMkdirAll && strings.HasPrefix(op.Path, slices+string(filepath.Separator))
		}, false},
		{"rename", func(op errorfs.Op) bool { return op.Kind == errorfs.OpRename && inTmp(op.Path) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMeta("example.com/filefault/"+c.name, 3*chunk+5, 3*chunk+5)
			if err := s.PutMeta(m); err != nil {
				t.Fatal(err)
			}
			all = append(all, m)
			data := payload(m, 0)
			notVisible := func(when string) {
				t.Helper()
				if s.Has(m, 0) {
					t.Errorf("%s: Has = true", when)
				}
				if _, err := s.ReadSlice(m, 0, nil); !errors.Is(err, segstore.ErrNotFound) {
					t.Errorf("%s: ReadSlice: %v, want ErrNotFound", when, err)
				}
				if _, err := openSlice(s, m, 0); !errors.Is(err, segstore.ErrNotFound) {
					t.Errorf("%s: OpenSlice: %v, want ErrNotFound", when, err)
				}
				if _, err := os.Stat(s.SlicePath(m.Key, m.Version, 0)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: the slice's file: stat %v, want none", when, err)
				}
				if keys := keysWithPrefix(t, s, segstore.VersionPrefix(m.Key, m.Version)); len(keys) != 0 {
					t.Errorf("%s: %d entries in Pebble", when, len(keys))
				}
			}
			before := s.Stats()
			if c.half {
				w, err := s.CreateSlice(m, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(data[:chunk+7]); err != nil {
					t.Fatal(err)
				}
				fault.Store(&c.fails)
				_, err = w.Write(data[chunk+7:])
				fault.Store(nil)
				if !errors.Is(err, segstore.ErrWriteFailed) || !errors.Is(err, syscall.ENOSPC) {
					t.Errorf("Write of the second half: %v, want ErrWriteFailed and ENOSPC", err)
				}
				if err := w.Commit(); !errors.Is(err, segstore.ErrWriteFailed) {
					t.Errorf("Commit after a failed Write: %v, want its ErrWriteFailed", err)
				}
				notVisible("half written")
				if err := w.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			} else {
				fault.Store(&c.fails)
				err := s.WriteSlice(m, 0, data)
				// Metas and slices whose files are not touched go on.
				if err := s.PutMeta(other); err != nil {
					t.Errorf("PutMeta while the slice file fails: %v", err)
				}
				fault.Store(nil)
				if !errors.Is(err, segstore.ErrWriteFailed) || !errors.Is(err, syscall.ENOSPC) {
					t.Errorf("WriteSlice: %v, want ErrWriteFailed and ENOSPC", err)
				}
			}
			notVisible("after the failed write")
			if after := s.Stats(); after.WriteErrors != before.WriteErrors+1 || after.Slices != before.Slices {
				t.Errorf("Stats = %+v, before %+v: want one more write error, no more slices", after, before)
			}
			checkFiles(t, s, dir, all...)

			// The disk has room again.
			if err := s.WriteSlice(m, 0, data); err != nil {
				t.Fatal(err)
			}
			if got, err := openSlice(s, m, 0); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("OpenSlice after the fault: %v, right bytes %v", err, bytes.Equal(got, data))
			}
			checkFiles(t, s, dir, all...)
		})
	}
	writeAll(t, s, other)
	checkFiles(t, s, dir, all...)
	if n := checkReadable(t, s, all...); n != len(all) {
		t.Errorf("%d slices readable, want %d", n, len(all))
	}
}

// TestFatalWriteFailure makes a MANIFEST write fail after a flush has
// written its files, which Pebble treats as fatal (Logger.Fatalf). The
// process must not panic: the store refuses writes, keeps serving reads,
// Stats and Close return, and a restart (here: a crash clone of the
// filesystem, opened anew) finds a consistent store with what was flushed
// before.
func TestFatalWriteFailure(t *testing.T) {
	var full atomic.Bool
	mem := vfs.NewCrashableMem()
	fs := errorfs.Wrap(mem, diskFull(&full, func(p string) bool { return strings.Contains(p, "MANIFEST") }))
	dir := t.TempDir()
	s := openFS(t, dir, fs)
	a := newMeta("example.com/fatal/a", 3*64*kib, 64*kib)
	b := newMeta("example.com/fatal/b", 3*64*kib, 64*kib)
	if err := s.PutMeta(a); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, a)
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta(b); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, b)

	full.Store(true)
	done := make(chan error, 1)
	go func() { done <- s.Purge(a.Key) }() // flushes: the MANIFEST write fails
	select {
	case err := <-done:
		if !errors.Is(err, segstore.ErrWriteFailed) {
			t.Fatalf("Purge: err = %v, want ErrWriteFailed", err)
		}
		t.Logf("Purge: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Purge blocked after a fatal error")
	}
	if err := s.WriteSlice(b, 0, payload(b, 0)); !errors.Is(err, segstore.ErrWriteFailed) || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("WriteSlice after a fatal error: err = %v, want ErrWriteFailed saying to restart", err)
	}
	if n := checkReadable(t, s, b); n != 3 {
		t.Errorf("%d slices of b readable after a fatal error, want 3", n)
	}
	if st := s.Stats(); st.WriteErrors == 0 {
		t.Errorf("Stats = %+v, want write errors", st)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err == nil {
			t.Error("Close after a fatal error returned nil")
		}
		t.Logf("Close: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked after a fatal error")
	}

	// Restart: what the filesystem holds, synced, as after kill -9.
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	// The failed store's Pebble is never closed (a restart is what recovers
	// it): let its background jobs find a working disk again rather than
	// keep failing for the rest of the test binary's life.
	full.Store(false)
	s = openFS(t, dir, crashed)
	defer s.Close()
	// Slice files are not synced (a cache's bytes can be fetched again), so
	// a crash of the machine may lose them: every slice is then either read
	// right or dropped, never read wrong.
	checkNoWrongBytes(t, s, a, b)
	if err := s.PutMeta(newMeta("example.com/fatal/c", 1, 1)); err != nil {
		t.Errorf("PutMeta after restart: %v", err)
	}
}

// A write stall (flushes held up, memtables queued to Pebble's limit) is
// waited out for up to 2 s (stallWait, admitWait) by slice and meta writes
// alike, then refused naming the stall: a slice is written on the fill's
// own goroutine, which must not hang. Once flushes go again, writes resume
// and everything written before is there. (Entries are small, so the
// memtables are filled here with metas carrying big headers.)
func TestWritesDuringStall(t *testing.T) {
	var held atomic.Bool
	release := make(chan struct{})
	mem := vfs.NewMem()
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if held.Load() && strings.HasSuffix(op.Path, ".sst") && op.Kind == errorfs.OpCreate {
			<-release // a flush that cannot start writing its files
		}
		return nil
	}))
	// 4 MiB memtables (a budget of 128 MiB): a few big metas fill them.
	s, err := segstore.Open(segstore.Options{Dir: t.TempDir(), MaxBytes: 128 * mib, Logger: t.Logf, FS: fs, ScrubRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var releaseOnce sync.Once
	unhold := func() {
		releaseOnce.Do(func() {
			held.Store(false)
			close(release)
		})
	}
	defer unhold() // before Close, which waits for the writes held up
	a := newMeta("example.com/stall/a", 4*64*kib, 64*kib)
	if err := s.PutMeta(a); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, a)

	held.Store(true)
	big := strings.Repeat("x", 512*kib)
	filled := make(chan int, 1)
	go func() {
		n := 0
		for ; n < 200; n++ {
			m := newMeta(fmt.Sprintf("example.com/stall/big/%d", n), kib, kib)
			m.Header = map[string][]string{"X-Big": {big}}
			if s.PutMeta(m) != nil {
				break // refused: the stall is on
			}
		}
		filled <- n
	}()
	origintest.WaitFor(t, "a write stall", s.Stalled)

	b := newMeta("example.com/stall/b", 64*kib, 64*kib)
	start := time.Now()
	err = s.WriteSlice(a, 0, payload(a, 0))
	if !errors.Is(err, segstore.ErrWriteFailed) || !strings.Contains(err.Error(), "stalling") {
		t.Fatalf("slice write during a stall: %v, want a refusal naming the stall", err)
	}
	t.Logf("slice write refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err := s.PutMeta(b); !errors.Is(err, segstore.ErrWriteFailed) || !strings.Contains(err.Error(), "stalling") {
		t.Fatalf("meta write during a stall: %v, want a refusal naming the stall", err)
	}
	for i := range a.SliceCount() { // reads go on
		if got, err := s.ReadSlice(a, i, nil); err != nil || !bytes.Equal(got, payload(a, i)) {
			t.Fatalf("slice %d during the stall: %v", i, err)
		}
	}

	unhold()
	t.Logf("%d big metas went in before the stall", <-filled)
	origintest.WaitFor(t, "the stall to end", func() bool { return !s.Stalled() })
	if err := s.PutMeta(b); err != nil {
		t.Fatalf("meta write after the stall: %v", err)
	}
	writeAll(t, s, b)
	for _, m := range []*segstore.Meta{a, b} {
		for i := range m.SliceCount() {
			got, err := s.ReadSlice(m, i, nil)
			if err != nil || !bytes.Equal(got, payload(m, i)) {
				t.Fatalf("%s slice %d after the stall: %v", m.Key, i, err)
			}
		}
	}
}
