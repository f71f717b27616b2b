package edge_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// failingStore is a real store whose writes fail as a full disk's do
// (segstore.ErrWriteFailed). A full disk cannot be made portably in a
// test; segstore's own tests inject one below Pebble.
type failingStore struct {
	*segstore.Store
}

var errDiskFull = fmt.Errorf("%w: no space left on device", segstore.ErrWriteFailed)

func (f failingStore) WriteSlice(*segstore.Meta, int64, []byte) error { return errDiskFull }
func (f failingStore) PutMeta(*segstore.Meta) error                   { return errDiskFull }

// A store that cannot write never fails a client request: every answer
// comes from the origin, correct, and the condition is logged once a
// minute and counted.
func TestStoreWriteFailureServesFromOrigin(t *testing.T) {
	h := newHarnessWith(t, setup{Store: func(st *segstore.Store) edge.Store { return failingStore{st} }})
	for i, rng := range []string{"bytes=0-99", "bytes=1048576-3000000", "", "bytes=0-99"} {
		var headers []string
		start := int64(0)
		if rng != "" {
			headers = append(headers, "Range: "+rng)
			fmt.Sscanf(rng, "bytes=%d-", &start)
		}
		resp := h.open(t, "/obj/4MiB.bin", headers...)
		n, err := verifyStream(resp.Body, "/obj/4MiB.bin", 1, start)
		resp.Body.Close()
		if err != nil || resp.StatusCode/100 != 2 || n == 0 {
			t.Fatalf("request %d (%q) with a failing store: status %d, %d bytes, %v", i, rng, resp.StatusCode, n, err)
		}
	}
	h.settle(t)
	if c := h.edge.Counters(); c.StoreErrors < 4 {
		t.Errorf("store errors counted: %d, want every failed write", c.StoreErrors)
	}
	logged := 0
	for _, l := range h.logs.Lines(t) {
		if strings.Contains(fmt.Sprint(l["message"]), "store failing") {
			logged++
		}
	}
	if logged != 1 {
		t.Errorf("the store failure was logged %d times in a few milliseconds, want once a minute", logged)
	}
}

// Origin failures are counted by kind.
func TestOriginErrorMetrics(t *testing.T) {
	h := newHarness(t)
	h.origin.SetPathMode("/obj/2MiB-cr.bin", origintest.Mode{LieContentRange: "start"})
	h.origin.SetPathMode("/obj/2MiB-5xx.bin", origintest.Mode{Status: 503})
	h.get(t, "/obj/2MiB-cr.bin", "Range: bytes=0-9")
	h.get(t, "/obj/2MiB-5xx.bin", "Range: bytes=0-9")
	h.origin.SetPathMode("/obj/2MiB-flip.bin", origintest.Mode{})
	h.get(t, "/obj/2MiB-flip.bin", "Range: bytes=0-9")
	h.settle(t)
	h.origin.Bump("/obj/2MiB-flip.bin") // the next slice fill meets a new version
	h.get(t, "/obj/2MiB-flip.bin", "Range: bytes=1048576-1048585")
	text := h.metrics(t)
	for _, want := range []string{
		`sliceedge_origin_errors_total{kind="bad_content_range"} 1`,
		`sliceedge_origin_errors_total{kind="status_5xx"} 1`,
		`sliceedge_origin_errors_total{kind="validator_mismatch"} 1`,
		`sliceedge_flap_restarts_total 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", grep(text, "sliceedge_origin_errors_total", "sliceedge_flap"))
	}
}

func (h *harness) metrics(t *testing.T) string {
	t.Helper()
	if h.adminSrv == nil {
		h.adminSrv = httptest.NewServer(h.edge.AdminHandler())
		t.Cleanup(h.adminSrv.Close)
	}
	req, _ := http.NewRequest("GET", h.adminSrv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(text string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// The access log: one JSON line per request with what an operator needs.
func TestAccessLog(t *testing.T) {
	h := newHarness(t)
	h.get(t, "/obj/3MiB.bin", "Range: bytes=1048576-2097151")
	h.settle(t)
	h.get(t, "/obj/3MiB.bin", "Range: bytes=1048576-2097151")
	// A handler logs after its last byte is written, which can be after
	// the client has read it.
	var reqs []map[string]any
	requests := func() []map[string]any {
		reqs = reqs[:0]
		for _, l := range h.logs.Lines(t) {
			if l["message"] == "request" {
				reqs = append(reqs, l)
			}
		}
		return reqs
	}
	origintest.WaitFor(t, "two access log lines", func() bool { return len(requests()) >= 2 })
	if len(reqs) != 2 {
		t.Fatalf("%d access log lines for 2 requests: %v", len(reqs), reqs)
	}
	first, second := reqs[0], reqs[1]
	for _, k := range []string{"method", "path", "range", "status", "cache", "slice_hits", "slice_misses", "origin_bytes", "bytes_sent", "ttfb_ms", "duration_ms"} {
		if _, ok := first[k]; !ok {
			t.Errorf("access log line lacks %q: %v", k, first)
		}
	}
	if first["cache"] != "MISS" || first["slice_misses"] != 1.0 || first["origin_bytes"] != float64(1<<20) || first["bytes_sent"] != float64(1<<20) || first["status"] != 206.0 {
		t.Errorf("first request logged as %v", first)
	}
	if second["cache"] != "HIT" || second["slice_hits"] != 1.0 || second["origin_bytes"] != 0.0 {
		t.Errorf("second request logged as %v", second)
	}
}

// countingStore is a real store that counts the writes the edge asks of it.
type countingStore struct {
	*segstore.Store
	writes atomic.Int64
}

func (c *countingStore) WriteSlice(m *segstore.Meta, i int64, data []byte) error {
	c.writes.Add(1)
	return c.Store.WriteSlice(m, i, data)
}

func (c *countingStore) CreateSlice(m *segstore.Meta, i int64) (*segstore.SliceWriter, error) {
	c.writes.Add(1)
	return c.Store.CreateSlice(m, i)
}

func (c *countingStore) PutMeta(m *segstore.Meta) error {
	c.writes.Add(1)
	return c.Store.PutMeta(m)
}

func (c *countingStore) Purge(key string) error {
	c.writes.Add(1)
	return c.Store.Purge(key)
}

// Hits write nothing to the store: eviction's bookkeeping is in memory.
func TestHitPathWritesNothing(t *testing.T) {
	var cs *countingStore
	h := newHarnessWith(t, setup{Store: func(st *segstore.Store) edge.Store { cs = &countingStore{Store: st}; return cs }})
	const path = "/obj/4MiB.bin"
	get := func(headers ...string) *http.Response {
		t.Helper()
		resp := h.open(t, path, headers...)
		defer resp.Body.Close()
		start := int64(0)
		if r := resp.Request.Header.Get("Range"); r != "" {
			fmt.Sscanf(r, "bytes=%d-", &start)
		}
		if resp.StatusCode/100 == 2 {
			if _, err := verifyStream(resp.Body, path, 1, start); err != nil {
				t.Fatalf("%v: %v", headers, err)
			}
		}
		return resp
	}
	get()
	h.settle(t)
	warm := cs.writes.Load()
	if warm != 5 {
		t.Errorf("warming a 4-slice object wrote %d records, want 5 (a meta and 4 slices)", warm)
	}
	for i := range 20 {
		for _, hs := range [][]string{nil, {"Range: bytes=" + strconv.Itoa(i*200000) + "-" + strconv.Itoa(i*200000+999)},
			{"If-None-Match: " + origintest.ETag(path, 1)}} {
			if resp := get(hs...); resp.Header.Get("X-Cache") != "HIT" {
				t.Fatalf("%v: X-Cache %q", hs, resp.Header.Get("X-Cache"))
			}
		}
	}
	if n := cs.writes.Load() - warm; n != 0 {
		t.Errorf("60 hits wrote %d records to the store, want 0", n)
	}
}

// Reloads keep one connection pool per origin: a reload that changes
// nothing of an origin keeps its connections, and one that changes it
// closes the old pool's idle connections instead of leaving them open.
func TestReloadKeepsOriginPools(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	opened := 0
	o := httptest.NewUnstartedServer(h.origin.Handler())
	o.Config.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch st {
		case http.StateNew:
			open[c] = true
			opened++
		case http.StateClosed, http.StateHijacked:
			delete(open, c)
		}
	}
	o.Start()
	defer o.Close()
	reload := func(readTimeout string) {
		cfg, err := config.Parse("reload.yaml", []byte(edited("read_timeout: 5s", "read_timeout: "+readTimeout)(o.URL)))
		if err != nil {
			t.Fatal(err)
		}
		h.edge.SetConfig(cfg)
	}
	counts := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(open), opened
	}
	for i := range 20 {
		reload("5s")
		p := fmt.Sprintf("/pool/64KiB-%d.bin", i)
		_, body := h.get(t, p)
		wantBytes(t, p, body, p, 1, 0)
	}
	h.settle(t)
	if n, total := counts(); total > 2 || n > 2 {
		t.Errorf("20 reloads that change nothing: %d connections opened, %d open; want the one pool reused", total, n)
	}
	for i := range 10 {
		reload(fmt.Sprintf("%ds", 6+i)) // a changed origin: a new pool
		p := fmt.Sprintf("/pool/64KiB-changed-%d.bin", i)
		_, body := h.get(t, p)
		wantBytes(t, p, body, p, 1, 0)
		h.settle(t)
	}
	origintest.WaitFor(t, "old pools to close their idle connections", func() bool { n, _ := counts(); return n <= 2 })
}

// The access log names who asked (behind trusted proxies, the client they
// forwarded for), with what, over which protocol, under which rule, and
// which origin member answered; X-Request-ID is taken from a sane client
// value or made, sent back, forwarded to the origin and logged.
func TestAccessLogFields(t *testing.T) {
	h := newHarnessWith(t, setup{Config: edited("name: sliceedge\n", "name: sliceedge\ntrusted_proxies: [127.0.0.0/8]\n")})
	var mu sync.Mutex
	var originIDs []string
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		originIDs = append(originIDs, r.Header.Get("X-Request-ID"))
		mu.Unlock()
		return false
	})
	type ask struct {
		path    string
		headers []string
	}
	asks := []ask{
		// Through two proxies: 127.0.0.2 is trusted, 198.51.100.7 is the
		// client; what lies left of it could be forged and is not read.
		{"/obj/64KiB.bin", []string{"X-Request-ID: trace-abc-123", "User-Agent: aria2/1.36.0", "Referer: https://example.com/page",
			"X-Forwarded-For: 6.6.6.6, 198.51.100.7, 127.0.0.2"}},
		// No id: one is made.
		{"/obj/32KiB.bin", nil},
		// An id with a space in it is replaced.
		{"/obj/16KiB.bin", []string{"X-Request-ID: bad id"}},
	}
	var sent []string
	for _, a := range asks {
		resp, body := h.get(t, a.path, a.headers...)
		wantBytes(t, a.path, body, a.path, 1, 0)
		sent = append(sent, resp.Header.Get("X-Request-ID"))
	}
	if sent[0] != "trace-abc-123" {
		t.Errorf("X-Request-ID answered %q, want the client's", sent[0])
	}
	for i, id := range sent[1:] {
		if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("request %d: X-Request-ID %q, want 16 new hex digits", i+1, id)
		}
	}
	if sent[1] == sent[2] {
		t.Errorf("two requests got the same id %q", sent[1])
	}
	mu.Lock()
	if !slices.Equal(originIDs, sent) {
		t.Errorf("the origin got the ids %q, the clients %q", originIDs, sent)
	}
	mu.Unlock()

	var reqs []map[string]any
	origintest.WaitFor(t, "three access log lines", func() bool {
		reqs = reqs[:0]
		for _, l := range h.logs.Lines(t) {
			if l["message"] == "request" {
				reqs = append(reqs, l)
			}
		}
		return len(reqs) >= 3
	})
	member := strings.TrimPrefix(h.front.URL, "http://")
	for i, l := range reqs {
		want := map[string]any{"request_id": sent[i], "proto": "HTTP/1.1", "rule": "/", "origin": "default", "origin_member": member, "path": asks[i].path}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, l[k], v, l)
			}
		}
		if _, ok := l["tls"]; ok {
			t.Errorf("line %d: a tls field on a plaintext request: %v", i, l)
		}
	}
	if reqs[0]["client"] != "198.51.100.7" || reqs[0]["user_agent"] != "aria2/1.36.0" || reqs[0]["referer"] != "https://example.com/page" {
		t.Errorf("first line: %v", reqs[0])
	}
	if reqs[1]["client"] != "127.0.0.1" {
		t.Errorf("a direct client logged as %v, want 127.0.0.1", reqs[1]["client"])
	}

	// Without trusted proxies, X-Forwarded-For is the client's word and
	// not taken.
	h2 := newHarness(t)
	h2.get(t, "/obj/64KiB.bin", "X-Forwarded-For: 198.51.100.7")
	origintest.WaitFor(t, "an access log line", func() bool {
		for _, l := range h2.logs.Lines(t) {
			if l["message"] == "request" {
				if l["client"] != "127.0.0.1" {
					t.Fatalf("an untrusted X-Forwarded-For was logged as the client: %v", l)
				}
				return true
			}
		}
		return false
	})
}
