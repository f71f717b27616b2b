package edge_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// harness is an edge in front of a test origin, with a real Pebble store in
// a temp dir, over real loopback HTTP.
type harness struct {
	origin *origintest.Server
	front  *httptest.Server // what the edge talks to: hook, then origin
	hook   atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	clock  atomic.Int64 // nanoseconds added to the wall clock the edge sees
	store  *segstore.Store
	edge   *edge.Server
	srv    *httptest.Server
	dir    string

	adminSrv *httptest.Server      // started by admin()
	logs     *origintest.LogBuffer // the edge's log since the last start, JSON lines
}

// setup is how a test's edge differs from the default one, as
// httputil.ReverseProxy's fields are: every zero value is the default, so a
// test states only what differs. The default is an edge with testConfig in
// front of a test origin (behind the harness's hook), over a real store in
// a temp dir, served by httptest on loopback.
type setup struct {
	// Config is the YAML the edge runs with, given the URL it reaches the
	// origin at; nil means testConfig. See edited.
	Config func(originURL string) string
	// Store wraps the real store for the edge (a failing or counting
	// store); nil gives the edge the store itself.
	Store func(*segstore.Store) edge.Store
	// StoreLog receives the store's Logger lines; nil discards them.
	StoreLog io.Writer
	// SendTimeout is the edge's Server.SendTimeout; 0 means none.
	SendTimeout time.Duration
	// RealServer serves the edge with edge.NewHTTPServer, the http.Server
	// sliceedge serve listens with, rather than httptest's plain one.
	RealServer bool
}

// edited is a setup's Config: testConfig with its one old replaced by new.
// It panics, failing the test at once, if testConfig lacks old.
func edited(old, new string) func(string) string {
	if strings.Count(testConfig, old) != 1 {
		panic(fmt.Sprintf("testConfig holds %q %d times, want once", old, strings.Count(testConfig, old)))
	}
	return func(url string) string { return strings.Replace(fmt.Sprintf(testConfig, url), old, new, 1) }
}

// testConfig is the YAML the harness runs with; %s is the origin URL.
const testConfig = `
name: sliceedge
listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:1
  token: s3cret-admin-token-for-tests
store:
  dir: unused
  max_bytes: 64GiB
origins:
  default:
    url: %s
    read_timeout: 5s
rules:
  - match: /big/
    origin: default
    slice_size: 4MiB
  - match: /lm/
    origin: default
    slice_size: 64KiB
    last_modified_validator: true
  - match: /noheur/
    origin: default
    heuristic_fraction: 0
  - match: /sie/
    origin: default
    stale_if_error: 10m
  - match: /drop/
    origin: default
    abandoned_fills: drop
    max_run: 64
  - match: /ttl/
    origin: default
    default_ttl: 10m
    heuristic_fraction: 0
  - match: /override/
    origin: default
    override_ttl: 1h
  - match: /swr/
    origin: default
    stale_while_revalidate: 10m
  - match: /neg/
    origin: default
    negative_ttl: 30s
  - match: /vary2/
    origin: default
    max_variants: 2
  - match: /fwdh/
    origin: default
    forward_headers: [X-Device]
  - match: /
    origin: default
    slice_size: 1MiB
`

// newHarness is an edge with the default setup.
func newHarness(t testing.TB) *harness { return newHarnessWith(t, setup{}) }

// newHarnessWith starts a test origin behind a hook and an edge in front of
// it as s says.
func newHarnessWith(t testing.TB, s setup) *harness {
	t.Helper()
	h := &harness{origin: origintest.NewTest(t), dir: t.TempDir()}
	h.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := h.hook.Load(); f != nil && (*f)(w, r) {
			return
		}
		h.origin.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(h.front.Close)
	h.start(t, s)
	return h
}

// setHook makes f see every origin request first; f returns true when it
// answered the request itself.
func (h *harness) setHook(f func(w http.ResponseWriter, r *http.Request) bool) { h.hook.Store(&f) }

// advance moves the edge's clock forward.
func (h *harness) advance(d time.Duration) { h.clock.Add(int64(d)) }

// stopOrigin makes the origin unreachable: connections are refused.
func (h *harness) stopOrigin() { h.front.Close() }

// restart stops the edge and closes the store, then reopens the same store
// directory under a new edge set up as s says, in front of the same origin.
func (h *harness) restart(t testing.TB, s setup) {
	t.Helper()
	h.stop(t)
	h.start(t, s)
}

// start opens the store in h.dir and an edge over it as s says.
func (h *harness) start(t testing.TB, s setup) {
	t.Helper()
	yaml := fmt.Sprintf(testConfig, h.front.URL)
	if s.Config != nil {
		yaml = s.Config(h.front.URL)
	}
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	opts := segstore.Options{Dir: h.dir, MaxBytes: cfg.Store.MaxBytes}
	if s.StoreLog != nil {
		opts.Logger = func(format string, args ...any) { fmt.Fprintf(s.StoreLog, format+"\n", args...) }
	}
	st, err := segstore.Open(opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	h.store = st
	var es edge.Store = st
	if s.Store != nil {
		es = s.Store(st)
	}
	h.logs = &origintest.LogBuffer{}
	h.edge = &edge.Server{Config: cfg, Store: es, Log: zerolog.New(h.logs), SendTimeout: s.SendTimeout,
		Now: func() time.Time { return time.Now().Add(time.Duration(h.clock.Load())) }}
	h.srv = httptest.NewUnstartedServer(h.edge)
	if s.RealServer {
		h.srv.Config = edge.NewHTTPServer(h.edge)
	}
	h.srv.Start()
	t.Cleanup(func() { h.stop(t) })
}

// stop closes the edge's listener, waits for the fills that outlived their
// requests, so that they do not run on into the next test (whose heap or
// origin figures they would disturb), and closes the store.
func (h *harness) stop(t testing.TB) {
	t.Helper()
	if h.srv != nil {
		h.srv.Close()
		h.srv = nil
	}
	if h.edge != nil {
		h.settle(t)
	}
	if h.store != nil {
		h.store.Close()
		h.store = nil
	}
}

// settle waits until no origin fill of the edge is in flight.
func (h *harness) settle(t testing.TB) {
	t.Helper()
	settle(t, h.edge)
}

// settle waits until no origin fill of s is in flight: the fills a test's
// requests started have stored their slices, or given up.
func settle(t testing.TB, s *edge.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("waiting for fills to settle: %v", err)
	}
}

// open sends a GET with headers given as "Name: value" strings and
// returns the response, its body unread: the caller reads and closes it.
func (h *harness) open(t testing.TB, path string, headers ...string) *http.Response {
	t.Helper()
	return h.send(t, http.MethodGet, path, headers...)
}

func (h *harness) send(t testing.TB, method, path string, headers ...string) *http.Response {
	t.Helper()
	resp, err := h.try(method, path, headers...)
	if err != nil {
		t.Fatalf("%s %s %v: %v", method, path, headers, err)
	}
	return resp
}

// try is send for callers that take the error themselves: goroutines,
// which must not call t.Fatal, and tests for which a refused request is a
// defined outcome.
func (h *harness) try(method, path string, headers ...string) (*http.Response, error) {
	req, err := http.NewRequest(method, h.srv.URL+path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = "edge.test" // the cache key must not depend on the test server's port
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return h.srv.Client().Do(req)
}

// openHead opens a GET of path and reads and checks its first n bytes
// (version 1), leaving the rest of the body unread.
func (h *harness) openHead(t testing.TB, path string, n int64) *http.Response {
	t.Helper()
	resp := h.open(t, path)
	head := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		resp.Body.Close()
		t.Fatalf("GET %s: first %d bytes: %v", path, n, err)
	}
	wantBytes(t, "first bytes of "+path, head, path, 1, 0)
	return resp
}

// do sends a request with headers given as "Name: value" strings and
// returns the response with its whole body.
func (h *harness) do(t testing.TB, method, path string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	resp := h.send(t, method, path, headers...)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s %v: read body: %v", method, path, headers, err)
	}
	return resp, body
}

func (h *harness) get(t testing.TB, path string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	return h.do(t, http.MethodGet, path, headers...)
}

// wantBytes checks body against the origin's bytes [start, start+len) of
// path at version.
func wantBytes(t testing.TB, what string, body []byte, path string, version int, start int64) {
	t.Helper()
	if at, ok := origintest.Verify(body, path, version, start); !ok {
		t.Fatalf("%s: wrong byte at object offset %d (body of %d bytes from %d)", what, at, len(body), start)
	}
}

// verifyStream reads r to its end, checking every byte against the
// origin's bytes of path at version from object offset start, without
// holding the body in memory. It returns the bytes read and the first
// read error or mismatch.
func verifyStream(r io.Reader, path string, version int, start int64) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if at, ok := origintest.Verify(buf[:m], path, version, start+n); !ok {
				return n, fmt.Errorf("wrong byte at object offset %d", at)
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// heapUnder fails t if the live heap grew by more than limit. In race
// builds the heap may hold Pebble's memtables and cache (see raceBuild), so
// there the figure is only logged; `go test` without -race checks it.
func heapUnder(t *testing.T, grew, limit int64, what string) {
	t.Helper()
	switch {
	case grew <= limit:
	case raceBuild:
		t.Logf("%s grew the live heap by %d MiB (limit %d MiB, not checked: race builds of Pebble may keep memtables in the Go heap)", what, grew>>20, limit>>20)
	default:
		t.Errorf("%s grew the live heap by %d MiB, want under %d MiB", what, grew>>20, limit>>20)
	}
}

// watchHeap samples the live heap every 5 ms until the returned function is
// called, which returns how far the peak rose above the live heap at the
// start, and that start. With collect, every sample runs a collection
// first, so it sees what is live now rather than at the last collection.
func watchHeap(collect bool) (stop func() (grew int64, base uint64)) {
	live := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	runtime.GC()
	base := live()
	var peak atomic.Uint64
	done := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if collect {
				runtime.GC()
			}
			if v := live(); v > peak.Load() {
				peak.Store(v)
			}
		}
	}()
	return func() (int64, uint64) {
		close(done)
		sampler.Wait()
		return int64(peak.Load()) - int64(base), base
	}
}
