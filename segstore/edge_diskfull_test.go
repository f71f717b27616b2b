package segstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// logged returns how many of the JSON lines in logs have a message
// containing s.
func logged(t *testing.T, logs *origintest.LogBuffer, s string) int {
	t.Helper()
	n := 0
	for _, rec := range logs.Lines(t) {
		if strings.Contains(fmt.Sprint(rec["message"]), s) {
			n++
		}
	}
	return n
}

// TestEdgeServesThroughDiskFull runs the real edge in front of a real
// store on a real directory whose sstable and slice file writes fail with
// ENOSPC, the disk-full counterpart of edge's
// TestStoreWriteFailureServesFromOrigin (a fake failing store). While the
// disk is full every client request is answered with the right bytes (a
// hit from what was stored before, sent from its files, the rest from the
// origin), nothing of what is not stored is left on disk, the edge counts
// the store's refusals and logs them once a minute of its clock; once the
// disk has room the store caches again.
func TestEdgeServesThroughDiskFull(t *testing.T) {
	_, cfg := edgeConfig(t)

	var full atomic.Bool
	dir := t.TempDir()
	fs := errorfs.Wrap(vfs.Default, diskFull(&full, storeWrites(dir)))
	var storeLog origintest.LogBuffer
	st, err := segstore.Open(segstore.Options{Dir: dir, MaxBytes: cfg.Store.MaxBytes, FS: fs,
		Logger: func(format string, args ...any) { fmt.Fprintf(&storeLog, format+"\n", args...) }})
	if err != nil {
		t.Fatal(err)
	}
	// Deferred first, so run last: the disk gets room again (deferred
	// below) before Close, which must not meet a write blocked inside
	// Pebble or flushes still failing. Bounded all the same.
	defer func() {
		closed := make(chan error, 1)
		go func() { closed <- st.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Close blocked for 10 s")
		}
		if t.Failed() {
			t.Logf("store log:\n%s", storeLog.String())
		}
	}()
	defer func() {
		full.Store(false)
		// Let the retried flush succeed first, or Close finds flushes
		// still failing and says writes were lost.
		m := newMeta("edge.test/diskfull/close-probe", kib, kib)
		origintest.WaitFor(t, "writes to resume after the disk got room", func() bool { return !errors.Is(st.PutMeta(m), segstore.ErrWriteFailed) })
	}()

	var offset atomic.Int64 // nanoseconds the edge's clock is ahead
	var logs origintest.LogBuffer
	srv := &edge.Server{Config: cfg, Store: st, Log: zerolog.New(&logs),
		Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }}
	ts := httptest.NewServer(srv)
	defer func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Drain(ctx); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("edge log:\n%s", logs.String())
		}
	}()
	client := ts.Client()
	client.Timeout = 10 * time.Second

	// get asks for path (bytes first-last of it, or all when last < 0) and
	// checks the answer carries exactly those bytes; it returns X-Cache.
	get := func(path string, first, last int64) string {
		t.Helper()
		size, ok := origintest.SyntheticSize(path[strings.LastIndexByte(path, '/')+1:])
		if !ok {
			t.Fatalf("%s: no synthetic size", path)
		}
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.Host = "edge.test"
		want := http.StatusOK
		if last >= 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", first, last))
			want = http.StatusPartialContent
		} else {
			first, last = 0, size-1
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s %s: %v", path, req.Header.Get("Range"), err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s %s: reading the body: %v", path, req.Header.Get("Range"), err)
		}
		if resp.StatusCode != want || int64(len(body)) != last-first+1 {
			t.Fatalf("GET %s %s: %d with %d bytes (X-Cache %q), want %d with %d",
				path, req.Header.Get("Range"), resp.StatusCode, len(body), resp.Header.Get("X-Cache"), want, last-first+1)
		}
		if !bytes.Equal(body, origintest.Expected(path, 1, first, last+1)) {
			at, _ := origintest.Verify(body, path, 1, first)
			t.Fatalf("GET %s %s: wrong byte at object offset %d", path, req.Header.Get("Range"), at)
		}
		return resp.Header.Get("X-Cache")
	}
	const failing = "store failing"

	// Warm an object with the disk fine, and get it onto the disk.
	const warm = "/diskfull/warm/4MiB.bin"
	get(warm, 0, -1)
	origintest.WaitFor(t, "the warm object's fills", func() bool { return srv.InFlight() == 0 })
	if err := st.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	if s := st.Stats(); s.Slices != 4 || s.WriteErrors != 0 {
		t.Fatalf("after warming: %+v, want 4 slices and no write errors", s)
	}
	if c := srv.Counters(); c.StoreErrors != 0 {
		t.Fatalf("store errors while the disk was fine: %d", c.StoreErrors)
	}

	// Fill the disk. Writes go on into the memtable until a flush fails:
	// make one (as a purge does) and wait for the store to refuse writes.
	full.Store(true)
	probe := newMeta("edge.test/diskfull/probe", kib, kib)
	if err := st.PutMeta(probe); err != nil {
		t.Fatalf("PutMeta into the memtable: %v", err)
	}
	purged := make(chan error, 1)
	go func() { purged <- st.Purge(probe.Key) }()
	select {
	case err := <-purged:
		if !errors.Is(err, segstore.ErrWriteFailed) {
			t.Fatalf("Purge while the disk is full: %v, want ErrWriteFailed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Purge blocked while the disk is full")
	}
	if err := st.PutMeta(probe); !errors.Is(err, segstore.ErrWriteFailed) {
		t.Fatalf("PutMeta while flushes fail: %v, want ErrWriteFailed", err)
	}
	writeErrors := st.Stats().WriteErrors

	// Every request is answered in full while the disk is full: cold ones
	// from the origin (the store refusing their meta and slices), the warm
	// object from the store.
	const cold, big = "/diskfull/cold/4MiB.bin", "/diskfull/big/8MiB.bin"
	get(cold, 0, -1)
	get(big, 500_000, 3*mib+12_345) // four slices
	get(big, 5*mib-1, 7*mib+1)      // three, a byte of the first and last
	get(cold, mib/2, 2*mib+mib/2)   // again: nothing of cold was stored
	if x := get(warm, mib-100, 3*mib+100); x != "HIT" {
		t.Errorf("warm object while the disk is full: X-Cache %q, want HIT", x)
	}
	get(big, 0, -1)
	origintest.WaitFor(t, "fills while the disk is full", func() bool { return srv.InFlight() == 0 })
	errs := srv.Counters().StoreErrors
	if errs < 5 { // five cold requests, each refused its meta at least
		t.Errorf("store errors counted while the disk is full: %d, want at least one per cold request", errs)
	}
	if s := st.Stats(); s.WriteErrors <= writeErrors || s.Slices != 4 {
		t.Errorf("store while the disk is full: %+v, want more than %d write errors and the warm object's 4 slices only",
			s, writeErrors)
	}
	for _, p := range []string{cold, big} {
		if _, err := st.Meta("edge.test" + p); !errors.Is(err, segstore.ErrNotFound) {
			t.Errorf("meta of %s stored while the disk is full: %v", p, err)
		}
	}
	// On disk, only the warm object's files: nothing half written is left.
	if m, err := st.Meta("edge.test" + warm); err != nil {
		t.Error(err)
	} else {
		checkFiles(t, st, dir, m)
	}
	if n := logged(t, &logs, failing); n != 1 {
		t.Errorf("%q logged %d times for %d store errors within a minute, want once", failing, n, errs)
	}

	// A minute later on the edge's clock, the next failure is logged again,
	// and only once.
	offset.Store(int64(61 * time.Second))
	get(cold, 3*mib, 4*mib-1)
	get(big, 2*mib, 6*mib)
	origintest.WaitFor(t, "fills a minute later", func() bool { return srv.InFlight() == 0 })
	if c := srv.Counters(); c.StoreErrors <= errs {
		t.Errorf("store errors a minute later: %d, want more than %d", c.StoreErrors, errs)
	}
	if n := logged(t, &logs, failing); n != 2 {
		t.Errorf("%q logged %d times after the clock moved 61 s, want twice", failing, n)
	}

	// The disk has room again: the retried flush succeeds, writes resume,
	// and the edge caches again.
	full.Store(false)
	start := time.Now()
	origintest.WaitFor(t, "writes to resume", func() bool { return st.PutMeta(probe) == nil })
	t.Logf("writes resumed %v after the disk got room; %d store errors counted by the edge, %d refused writes by the store",
		time.Since(start).Round(time.Millisecond), srv.Counters().StoreErrors, st.Stats().WriteErrors)
	errs = srv.Counters().StoreErrors
	if x := get(big, 3*mib+7, 5*mib+7); x == "HIT" {
		t.Errorf("first request after the disk got room: X-Cache %q, want a miss (nothing of it stored)", x)
	}
	origintest.WaitFor(t, "fills after the disk got room", func() bool { return srv.InFlight() == 0 })
	if x := get(big, 3*mib+7, 5*mib+7); x != "HIT" {
		t.Errorf("second request after the disk got room: X-Cache %q, want HIT", x)
	}
	if x := get(warm, 0, -1); x != "HIT" {
		t.Errorf("warm object after the disk got room: X-Cache %q, want HIT", x)
	}
	if c := srv.Counters(); c.StoreErrors != errs {
		t.Errorf("store errors after writes resumed: %d, want still %d", c.StoreErrors, errs)
	}
	if n := logged(t, &logs, failing); n != 2 {
		t.Errorf("%q logged %d times in all, want twice", failing, n)
	}
}
