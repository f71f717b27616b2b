package segstore_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// fullDisk makes every sstable and slice file write fail with ENOSPC from
// now on, and waits until the store knows (a flush has failed): from then
// on the store refuses writes at once.
func fullDisk(t *testing.T, s *segstore.Store, full *atomic.Bool) {
	t.Helper()
	full.Store(true)
	probe := newMeta("probe/full", 1, 1)
	if err := s.PutMeta(probe); err != nil && !errors.Is(err, segstore.ErrWriteFailed) {
		t.Fatal(err)
	}
	_, _ = s.DB().AsyncFlush()
	origintest.WaitFor(t, "flushes to fail", func() bool { return errors.Is(s.PutMeta(probe), segstore.ErrWriteFailed) })
}

// roomOnDisk lets writes through again and waits until the store writes.
func roomOnDisk(t *testing.T, s *segstore.Store, full *atomic.Bool) {
	t.Helper()
	full.Store(false)
	probe := newMeta("probe/room", 1, 1)
	origintest.WaitFor(t, "writes to resume", func() bool { return s.PutMeta(probe) == nil })
}

// keysOf returns how many keys Pebble holds for m's version: its slices,
// and its meta if that names the version.
func keysOf(t *testing.T, s *segstore.Store, m *segstore.Meta) int {
	t.Helper()
	n := len(keysWithPrefix(t, s, segstore.VersionPrefix(m.Key, m.Version)))
	v, closer, err := s.DB().Get(segstore.MetaKey(m.Key))
	switch {
	case err == nil:
		// The header: format, CRC-32C, then the version (see record.go).
		if binary.BigEndian.Uint64(v[5:13]) == m.Version {
			n++
		}
		_ = closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		t.Fatal(err)
	}
	return n
}

// A purge must hold even when the store cannot write it: on a full disk the
// edge in front of the store misses on purged objects (the first purge,
// whose flush fails, and later ones, which cannot even be committed: by
// URL through the admin API, answered 202 Accepted, by prefix, and Purge
// itself), Meta says not found, reads, writes and ScanMeta agree, and Stats
// drops them. Metas stored after the purge, once the disk has room but
// before the retry lands, are visible, and the retry spares them. The
// retry then deletes every key of the purged objects, and a restart finds
// none of them.
func TestPurgeHoldsWhileDiskFull(t *testing.T) {
	_, cfg := edgeConfig(t)
	var full atomic.Bool
	dir := t.TempDir()
	fs := errorfs.Wrap(vfs.Default, diskFull(&full, storeWrites(dir)))
	var storeLog origintest.LogBuffer
	open := func() *segstore.Store {
		st, err := segstore.Open(segstore.Options{Dir: dir, MaxBytes: cfg.Store.MaxBytes, FS: fs,
			Logger: func(format string, args ...any) { fmt.Fprintf(&storeLog, format+"\n", args...) }})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	defer func() {
		if t.Failed() {
			t.Logf("store log:\n%s", storeLog.String())
		}
	}()
	defer func() { full.Store(false); _ = st.Close() }()

	srv := &edge.Server{Config: cfg, Store: st, Log: zerolog.Nop()}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	admin := httptest.NewServer(srv.AdminHandler())
	defer admin.Close()
	defer func() { _ = srv.Drain(context.Background()) }()

	get := func(path string) string { t.Helper(); return getWhole(t, ts, srv, path) }
	purge := func(q url.Values) (int, edge.PurgeResult) { t.Helper(); return adminPurge(t, admin, q) }
	meta := func(path string) *segstore.Meta {
		t.Helper()
		m, err := st.Meta("edge.test" + path)
		if err != nil {
			t.Fatalf("Meta(%s): %v", path, err)
		}
		return m
	}
	const a, b, c, keep = "/pending/a/2MiB.bin", "/pending/b/2MiB.bin", "/pending/c/1MiB.bin", "/pending/keep/1MiB.bin"
	for _, p := range []string{a, b, c, keep} {
		get(p)
		if x := get(p); x != "HIT" {
			t.Fatalf("%s warmed: X-Cache %q, want HIT", p, x)
		}
	}
	ma, mb, mc, mkeep := meta(a), meta(b), meta(c), meta(keep)
	if err := st.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	before := st.Stats()

	// The disk fills. The first purge commits, but its flush fails.
	full.Store(true)
	code, res := purge(url.Values{"url": {"http://edge.test" + a}})
	if code != http.StatusAccepted || !res.Pending || res.Purged != 1 {
		t.Fatalf("purge of %s on a full disk: %d %+v, want 202, pending, 1 purged", a, code, res)
	}
	t.Logf("purge on a full disk: %d %+v", code, res)
	fullDisk(t, st, &full)

	// Flushes fail now: purges cannot even be committed, and hold in memory.
	code, res = purge(url.Values{"prefix": {"http://edge.test/pending/b/"}})
	if code != http.StatusAccepted || !res.Pending || res.Purged != 1 {
		t.Fatalf("prefix purge on a full disk: %d %+v, want 202, pending, 1 purged", code, res)
	}
	if err := st.Purge(mc.Key); !errors.Is(err, segstore.ErrPurgePending) || !errors.Is(err, segstore.ErrWriteFailed) {
		t.Fatalf("Purge on a full disk: %v, want ErrPurgePending and ErrWriteFailed", err)
	}
	if n := keysOf(t, st, mb); n != 3 {
		t.Fatalf("%d keys of %s in Pebble, want its meta and 2 slices still there", n, b)
	}
	for _, m := range []*segstore.Meta{ma, mb, mc} {
		if _, err := st.Meta(m.Key); !errors.Is(err, segstore.ErrNotFound) {
			t.Errorf("Meta(%q) after its purge: %v, want ErrNotFound", m.Key, err)
		}
		if st.Has(m, 0) {
			t.Errorf("Has(%q, 0) after its purge", m.Key)
		}
		if _, err := st.ReadSlice(m, 0, nil); !errors.Is(err, segstore.ErrNotFound) {
			t.Errorf("ReadSlice(%q, 0) after its purge: %v, want ErrNotFound", m.Key, err)
		}
		if err := st.WriteSlice(m, 0, make([]byte, m.SliceLen(0))); !errors.Is(err, segstore.ErrStale) {
			t.Errorf("WriteSlice(%q, 0) after its purge: %v, want ErrStale", m.Key, err)
		}
	}
	var scanned []string
	if err := st.ScanMeta("edge.test/pending/", func(m *segstore.Meta) bool { scanned = append(scanned, m.Key); return true }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"edge.test" + keep}; fmt.Sprint(scanned) != fmt.Sprint(want) {
		t.Errorf("ScanMeta after the purges: %q, want %q", scanned, want)
	}
	if s := st.Stats(); s.Objects != before.Objects-3 || s.Slices != before.Slices-5 || s.PendingPurges != 3 {
		t.Errorf("Stats after 3 purges of 5 slices on a full disk: %+v, before %+v; want 3 pending", s, before)
	}
	for _, p := range []string{a, b, c} {
		if x := get(p); x == "HIT" {
			t.Errorf("%s after its purge on a full disk: X-Cache %q, want a miss", p, x)
		}
	}
	if x := get(keep); x != "HIT" {
		t.Errorf("%s, not purged: X-Cache %q, want HIT", keep, x)
	}

	// The disk has room again, but the retry has not run yet: what is stored
	// now under the purged keys is visible, and cached again.
	st.HoldPendingPurges(true)
	roomOnDisk(t, st, &full)
	if s := st.Stats(); s.PendingPurges != 3 {
		t.Fatalf("Stats with the retry held: %+v, want 3 pending", s)
	}
	if x := get(b); x == "HIT" {
		t.Errorf("%s, first request after the disk got room: X-Cache %q, want a miss", b, x)
	}
	if x := get(b); x != "HIT" {
		t.Errorf("%s, second request after the disk got room: X-Cache %q, want HIT", b, x)
	}
	mb2 := meta(b)
	if mb2.Version == mb.Version {
		t.Fatalf("%s stored again with its purged version", b)
	}
	newer := newMeta("edge.test/pending/b/newer", 3, 1)
	if err := st.PutMeta(newer); err != nil {
		t.Fatal(err)
	}
	writeAll(t, st, newer)

	// The retry lands the purges, and spares what was written since.
	st.HoldPendingPurges(false)
	origintest.WaitFor(t, "the pending purges to land", func() bool { return st.Stats().PendingPurges == 0 })
	check := func(when string) {
		t.Helper()
		for _, m := range []*segstore.Meta{ma, mb, mc} {
			if n := keysOf(t, st, m); n != 0 {
				t.Errorf("%s: %d keys of purged %q version %016x in Pebble, want none", when, n, m.Key, m.Version)
			}
			if _, err := st.Meta(m.Key); m != mb && !errors.Is(err, segstore.ErrNotFound) { // b is stored again
				t.Errorf("%s: Meta(%q): %v, want ErrNotFound", when, m.Key, err)
			}
		}
		for _, m := range []*segstore.Meta{mb2, newer} {
			if n := keysOf(t, st, m); n != int(m.SliceCount())+1 {
				t.Errorf("%s: %d keys of %q, stored after the purge, in Pebble; want its meta and %d slices", when, n, m.Key, m.SliceCount())
			}
			if got, err := st.Meta(m.Key); err != nil || got.Version != m.Version {
				t.Errorf("%s: Meta(%q) = %v, %v; want version %016x", when, m.Key, got, err, m.Version)
			}
			if n, _ := st.StoredRuns(m); n != m.SliceCount() {
				t.Errorf("%s: %d slices of %q stored, want %d", when, n, m.Key, m.SliceCount())
			}
		}
		// The files of what is stored, and none of the purged versions.
		checkFiles(t, st, dir, mkeep, mb2, newer)
	}
	check("after the retry")
	if !strings.Contains(storeLog.String(), "is on disk now") {
		t.Errorf("no log line saying the pending purges landed")
	}

	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open()
	check("after a restart")
}

// PurgeAll holds too, and its retry, when a key was stored after it, deletes
// key by key the others rather than everything.
func TestPurgeAllHoldsWhileDiskFull(t *testing.T) {
	var full atomic.Bool
	dir := t.TempDir()
	fs := errorfs.Wrap(vfs.NewMem(), diskFull(&full, storeWrites(dir)))
	s := openFS(t, dir, fs)
	defer func() { full.Store(false); _ = s.Close() }()
	ms := []*segstore.Meta{newMeta("example.com/all/x", 3*kib, kib), newMeta("example.com/all/y", 2*kib, kib)}
	for _, m := range ms {
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
	}
	fullDisk(t, s, &full)
	n, err := s.PurgeAll()
	if !errors.Is(err, segstore.ErrPurgePending) || n != 3 { // x, y and the probe
		t.Fatalf("PurgeAll on a full disk: %d, %v; want 3 and ErrPurgePending", n, err)
	}
	if st := s.Stats(); st.Objects != 0 || st.Slices != 0 || st.Bytes != 0 || st.PendingPurges != 1 {
		t.Errorf("Stats after PurgeAll on a full disk: %+v, want nothing stored and 1 pending", st)
	}
	for _, m := range ms {
		if _, err := s.Meta(m.Key); !errors.Is(err, segstore.ErrNotFound) {
			t.Errorf("Meta(%q) after PurgeAll: %v", m.Key, err)
		}
		if _, err := s.ReadSlice(m, 0, nil); !errors.Is(err, segstore.ErrNotFound) {
			t.Errorf("ReadSlice(%q, 0) after PurgeAll: %v", m.Key, err)
		}
	}
	s.HoldPendingPurges(true)
	roomOnDisk(t, s, &full)
	z := newMeta("example.com/all/z", 2*kib, kib)
	if err := s.PutMeta(z); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, z)
	s.HoldPendingPurges(false)
	origintest.WaitFor(t, "the pending purge to land", func() bool { return s.Stats().PendingPurges == 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openFS(t, dir, fs)
	for _, m := range ms {
		if n := keysOf(t, s, m); n != 0 {
			t.Errorf("%d keys of %q after the purge landed and a restart", n, m.Key)
		}
	}
	if n := keysOf(t, s, z); n != 3 {
		t.Errorf("%d keys of %q, stored after the purge, after a restart; want 3", n, z.Key)
	}
	if st := s.Stats(); st.Objects != 2 || st.Slices != 2 { // z and the room probe
		t.Errorf("Stats after a restart: %+v, want 2 objects (z and a probe), z's 2 slices", st)
	}
}
