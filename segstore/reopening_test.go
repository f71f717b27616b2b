package segstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// faultFS is the operating system's filesystem with two faults to switch
// on and off. full: writes to files fail with ENOSPC and statfs says no
// byte is free. readOnly: every write fails with EROFS, as on a read-only
// mount (the tests run as root, for whom chmod makes nothing read-only).
type faultFS struct {
	vfs.FS
	full, readOnly *atomic.Bool
}

func newFaultFS() faultFS {
	f := faultFS{full: new(atomic.Bool), readOnly: new(atomic.Bool)}
	f.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() != errorfs.OpIsWrite {
			return nil
		}
		isDir := false
		if fi, err := os.Stat(op.Path); err == nil && fi.IsDir() {
			isDir = true
		}
		switch {
		case f.readOnly.Load() && !(op.Kind == errorfs.OpMkdirAll && isDir):
			return fmt.Errorf("injected: op %d on %s: %w", op.Kind, op.Path, syscall.EROFS)
		case f.full.Load() && !isDir:
			switch op.Kind {
			case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFilePreallocate, errorfs.OpFileSync,
				errorfs.OpFileSyncData, errorfs.OpFileSyncTo, errorfs.OpFileFlush:
				return fmt.Errorf("injected: op %d on %s: %w", op.Kind, op.Path, syscall.ENOSPC)
			}
		}
		return nil
	}))
	return f
}

func (f faultFS) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	du, err := f.FS.GetDiskUsage(path)
	if f.full.Load() {
		du.AvailBytes, du.UsedBytes = 0, du.TotalBytes
	}
	return du, err
}

// `sliceedge serve` must start on a store it cannot open because of its
// disk: full (after a SIGTERM on a full disk, Pebble's Open fails writing
// its MANIFEST) or read-only. A Reopening in front of the edge warns, the
// edge serves every request from the origin with the right bytes and caches
// nothing, a purge made meanwhile is recorded (202 Accepted); once the
// fault is gone the store opens within a few retry intervals, the purge is
// applied before anything reads it, what was stored before is a hit again,
// and new objects are cached.
func TestReopeningServesThroughAndOpens(t *testing.T) {
	for _, fault := range []string{"full", "read-only"} {
		t.Run(fault, func(t *testing.T) {
			_, cfg := edgeConfig(t)
			fs := newFaultFS()
			dir := t.TempDir() + "/store"
			var logs origintest.LogBuffer
			logf := func(format string, args ...any) { fmt.Fprintf(&logs, format+"\n", args...) }
			defer func() {
				if t.Failed() {
					t.Logf("store log:\n%s", logs.String())
				}
			}()

			// The store as it was before the fault: two objects.
			const kept, purged, fresh = "/reopen/kept/2MiB.bin", "/reopen/purged/1MiB.bin", "/reopen/fresh/1MiB.bin"
			get := func(h *httptest.Server, srv *edge.Server, path string) string {
				t.Helper()
				return getWhole(t, h, srv, path)
			}
			st, err := segstore.Open(segstore.Options{Dir: dir, MaxBytes: cfg.Store.MaxBytes, FS: fs, Logger: logf})
			if err != nil {
				t.Fatal(err)
			}
			before := &edge.Server{Config: cfg, Store: st, Log: zerolog.Nop()}
			bh := httptest.NewServer(before)
			for _, p := range []string{kept, purged} {
				get(bh, before, p)
				if x := get(bh, before, p); x != "HIT" {
					t.Fatalf("%s before the fault: X-Cache %q, want HIT", p, x)
				}
			}
			bh.Close()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}

			// The fault, and a start on it.
			if fault == "full" {
				fs.full.Store(true)
			} else {
				fs.readOnly.Store(true)
			}
			var warnings atomic.Int64
			r := &segstore.Reopening{
				Options: segstore.Options{Dir: dir, MaxBytes: cfg.Store.MaxBytes, FS: fs, Logger: logf},
				Retry:   50 * time.Millisecond,
				Warn: func(format string, args ...any) {
					warnings.Add(1)
					logf(format, args...)
				},
			}
			if err := r.Open(); err != nil {
				t.Fatalf("Reopening.Open on a %s disk: %v, want nil (pass-through)", fault, err)
			}
			defer r.Close()
			if err := r.Err(); err == nil {
				t.Fatalf("the store opened on a %s disk", fault)
			} else {
				t.Logf("not open: %v", err)
			}
			if w := logs.String(); !strings.Contains(w, "served from the origin") || !strings.Contains(w, "Free space") {
				t.Errorf("no warning saying what happens and what to do:\n%s", w)
			}
			srv := &edge.Server{Config: cfg, Store: r, Log: zerolog.Nop()}
			h := httptest.NewServer(srv)
			defer h.Close()
			admin := httptest.NewServer(srv.AdminHandler())
			defer admin.Close()
			defer func() { _ = srv.Drain(context.Background()) }()

			for range 2 {
				for _, p := range []string{kept, fresh} {
					if x := get(h, srv, p); x == "HIT" {
						t.Errorf("%s while the store cannot open: X-Cache %q, want a miss", p, x)
					}
				}
			}
			if st := r.Stats(); st.NotOpen == "" || st.Objects != 0 {
				t.Errorf("Stats while not open: %+v, want NotOpen said and nothing stored", st)
			}
			if err := r.WriteSlice(newMeta("x", 1, 1), 0, []byte{1}); !errors.Is(err, segstore.ErrWriteFailed) || !strings.Contains(err.Error(), "not open") {
				t.Errorf("WriteSlice while not open: %v, want ErrWriteFailed saying the store is not open", err)
			}
			if code, res := adminPurge(t, admin, url.Values{"url": {"http://edge.test" + purged}}); code != http.StatusAccepted || !res.Pending {
				t.Errorf("purge while not open: %d %+v, want 202 pending", code, res)
			}
			origintest.WaitFor(t, "a warning at every attempt", func() bool { return warnings.Load() >= 3 })

			// The fault goes; the store opens within a few retries.
			fs.full.Store(false)
			fs.readOnly.Store(false)
			start := time.Now()
			origintest.WaitFor(t, "the store to open", func() bool { return r.Err() == nil })
			t.Logf("opened %v after the fault went (retry every %v), after %d warnings", time.Since(start).Round(time.Millisecond), r.Retry, warnings.Load())
			if !strings.Contains(logs.String(), "is open: caching again (1 purges") {
				t.Errorf("no log line saying the store opened and applied the purge")
			}
			if _, err := r.Meta("edge.test" + purged); !errors.Is(err, segstore.ErrNotFound) {
				t.Errorf("Meta of the object purged while the store was not open: %v, want ErrNotFound", err)
			}
			if x := get(h, srv, purged); x == "HIT" {
				t.Errorf("%s, purged while the store was not open: X-Cache %q, want a miss", purged, x)
			}
			if x := get(h, srv, kept); x != "HIT" {
				t.Errorf("%s, stored before the fault: X-Cache %q, want HIT", kept, x)
			}
			get(h, srv, fresh)
			if x := get(h, srv, fresh); x != "HIT" {
				t.Errorf("%s, second request once open: X-Cache %q, want HIT", fresh, x)
			}
			if st := r.Stats(); st.NotOpen != "" || st.PendingPurges != 0 {
				t.Errorf("Stats once open: %+v", st)
			}
		})
	}
}

// A store that cannot open for a reason the disk's state does not explain
// is an error of Open, as from segstore.Open, for the operator to fix:
// serve exits with it rather than serve uncached forever.
func TestReopeningRefusesConfigurationErrors(t *testing.T) {
	locked := t.TempDir()
	s := openStore(t, locked)
	defer s.Close()
	foreign := t.TempDir()
	f := openStore(t, foreign)
	if err := f.DB().Set([]byte(segstore.FormatKey), []byte("segstore/99"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	notDir := t.TempDir() + "/file"
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opts segstore.Options
		want string
	}{
		{"no directory", segstore.Options{}, "no directory given"},
		{"watermarks", segstore.Options{Dir: t.TempDir(), HighWater: 0.5, LowWater: 0.6}, "watermarks"},
		{"locked", segstore.Options{Dir: locked}, "locked by another sliceedge process"},
		{"another version", segstore.Options{Dir: foreign}, "written by another sliceedge version"},
		{"not a directory", segstore.Options{Dir: notDir + "/store"}, "cannot create the store directory"},
	} {
		r := &segstore.Reopening{Options: c.opts}
		err := r.Open()
		if err == nil || errors.Is(err, segstore.ErrWriteFailed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Open: %v, want an error saying %q that is not ErrWriteFailed", c.name, err, c.want)
		}
		if _, err := segstore.Open(c.opts); err == nil || errors.Is(err, segstore.ErrWriteFailed) {
			t.Errorf("%s: segstore.Open: %v, want an error that is not ErrWriteFailed", c.name, err)
		}
		_ = r.Close()
	}
}

// TestReopeningWaitsForLock: with WaitLocked, a store another opener
// holds is waited for: Open succeeds, the store serves nothing until the
// other closes it, then opens within moments; without it, Open fails
// with segstore.ErrLocked.
func TestReopeningWaitsForLock(t *testing.T) {
	dir := t.TempDir()
	first, err := segstore.Open(segstore.Options{Dir: dir, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := segstore.Open(segstore.Options{Dir: dir, MaxBytes: 1 << 30}); !errors.Is(err, segstore.ErrLocked) {
		t.Fatalf("a second Open: %v, want segstore.ErrLocked", err)
	}
	var logs strings.Builder
	var mu sync.Mutex
	r := &segstore.Reopening{Options: segstore.Options{Dir: dir, MaxBytes: 1 << 30}, WaitLocked: true,
		Warn: func(f string, a ...any) { mu.Lock(); fmt.Fprintf(&logs, f+"\n", a...); mu.Unlock() }}
	if err := r.Open(); err != nil {
		t.Fatalf("Open with WaitLocked: %v", err)
	}
	defer r.Close()
	if err := r.Err(); err == nil || !errors.Is(err, segstore.ErrLocked) && !strings.Contains(err.Error(), "locked") {
		t.Fatalf("Err while locked: %v", err)
	}
	if _, err := r.Meta("x"); err == nil {
		t.Fatal("Meta while locked: no error")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still not open 5 s after the lock was released: %v", r.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "open in another process") {
		t.Errorf("the wait was not logged:\n%s", logs.String())
	}
}
