package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// Chaos: origins that misbehave. For each misbehaviour the client gets a
// defined answer (the right bytes, a 5xx with a clear body, or a cut body
// whose bytes are right), the store holds no bad slice afterwards, and a
// metric counts it.

// newChaosHarness is newHarness with a short origin read timeout, so that a
// stalled origin is given up on quickly.
func newChaosHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessWith(t, setup{Config: edited("read_timeout: 5s", "read_timeout: 500ms")})
}

// noHook is the hook that lets every request through to the origin.
func noHook(http.ResponseWriter, *http.Request) bool { return false }

// fetched is what a client got: status (0 when the request failed before
// the headers), header, the body bytes received and the read error.
type fetched struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// fetch sends a GET without following redirects and keeps whatever body
// arrived, also when the connection is cut.
func (h *harness) fetch(t testing.TB, path string, headers ...string) fetched {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "edge.test"
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	c := &http.Client{
		Transport:     h.srv.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       60 * time.Second,
	}
	resp, err := c.Do(req)
	if err != nil {
		return fetched{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return fetched{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// metricValue is the value of the sample named exactly name in the
// /metrics text, 0 when absent.
func metricValue(text, name string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// oneVersion checks that body, at object offset start of path, is the
// bytes of exactly one version of the object, and returns it.
func oneVersion(t testing.TB, what string, body []byte, path string, start int64, maxVersion int) int {
	t.Helper()
	if len(body) == 0 {
		return 0
	}
	vs := origintest.WhichVersion(body, path, start, maxVersion)
	if len(vs) != 1 || vs[0] < 0 {
		t.Fatalf("%s: %d bytes from %d are versions %v of %s: wrong bytes", what, len(body), start, vs, path)
	}
	return vs[0]
}

// rangeOf parses a "bytes=a-b" request header; ok is false otherwise.
func rangeOf(r *http.Request) (a, b int64, ok bool) {
	_, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b)
	return a, b, err == nil
}

// rawReply hijacks the connection, writes head and body verbatim and
// closes it.
func rawReply(w http.ResponseWriter, head string, body []byte) {
	conn, bw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	bw.WriteString(head)
	bw.Write(body)
	bw.Flush()
}

// etagRewriter passes the origin's answer through with its ETag rewritten.
type etagRewriter struct {
	http.ResponseWriter
	f     func(string) string
	wrote bool
}

func (e *etagRewriter) WriteHeader(code int) {
	if !e.wrote {
		e.wrote = true
		if et := e.Header().Get("ETag"); et != "" {
			e.Header().Set("ETag", e.f(et))
		}
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *etagRewriter) Write(p []byte) (int, error) {
	if !e.wrote {
		e.WriteHeader(http.StatusOK)
	}
	return e.ResponseWriter.Write(p)
}

func (e *etagRewriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// prime stores the object's meta and first slice with a healthy origin.
func prime(t testing.TB, h *harness, path string) {
	t.Helper()
	resp, body := h.get(t, path, "Range: bytes=0-9")
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("prime %s: status %d", path, resp.StatusCode)
	}
	wantBytes(t, "prime", body, path, 1, 0)
	h.settle(t)
}

const chaosPath = "/obj/4MiB.bin"

// wantRangeRefusedOnly checks that the origin's 416s (one per fetch the
// edge tried) were counted as range_refused and under no other kind.
func wantRangeRefusedOnly(t *testing.T, h *harness, _ fetched) {
	t.Helper()
	h.settle(t)
	if c := h.edge.Counters(); c.RangeRefused < 1 || c.RangeRefused != c.OriginErrors {
		t.Errorf("counters: %d range_refused of %d origin errors; want all of at least 1", c.RangeRefused, c.OriginErrors)
	}
	if v := metricValue(h.metrics(t), `sliceedge_origin_errors_total{kind="other"}`); v != 0 {
		t.Errorf(`origin_errors_total{kind="other"} = %v; want 0`, v)
	}
}

// withMode is a chaos case's setup that puts the origin in mode m for the
// case's path.
func withMode(m origintest.Mode) func(t *testing.T, h *harness, p string) {
	return func(t *testing.T, h *harness, p string) { h.origin.SetPathMode(p, m) }
}

func TestChaosOrigin(t *testing.T) {
	const size = 4 * MiB
	type tc struct {
		name  string
		path  string // default chaosPath
		setup func(t *testing.T, h *harness, path string)
		rng   string // client Range header; "" for a full GET
		// statuses the client may get; 0 is a request that failed before
		// the status line. A 200/206 may be cut short.
		statuses []int
		// metric must be >= 1 afterwards ("" for none).
		metric string
		// noSlices: the store holds no slice afterwards.
		noSlices bool
		// noHeal: the origin cannot be healed (it is gone).
		noHeal bool
		check  func(t *testing.T, h *harness, got fetched)
	}
	cases := []tc{
		{
			name:     "connection refused",
			setup:    func(t *testing.T, h *harness, _ string) { h.stopOrigin() },
			statuses: []int{502},
			metric:   `sliceedge_origin_errors_total{kind="connect"}`,
			noSlices: true, noHeal: true,
		},
		{
			name:     "reset mid-body",
			setup:    withMode(origintest.Mode{TruncateAfter: 1536 * KiB}),
			statuses: []int{200},
			metric:   `sliceedge_origin_errors_total{kind="truncated"}`,
		},
		{
			name:     "stall mid-body",
			path:     "/obj/1MiB-stall.bin",
			setup:    withMode(origintest.Mode{Stall: 30 * time.Second, StallAfter: 512 * KiB}),
			statuses: []int{200, 504},
			metric:   `sliceedge_origin_errors_total{kind="timeout"}`,
			noSlices: true,
			check: func(t *testing.T, h *harness, got fetched) {
				if got.status == 200 && (got.err == nil || int64(len(got.body)) >= MiB) {
					t.Errorf("a stalled origin gave a complete answer: %d bytes, err %v", len(got.body), got.err)
				}
			},
		},
		{
			name: "Content-Length longer than the body",
			setup: func(t *testing.T, h *harness, p string) {
				prime(t, h, p)
				h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					a, b, ok := rangeOf(r)
					if !ok || r.URL.Path != p || a == 0 {
						return false
					}
					b = min(b, size-1)
					body := origintest.Expected(p, 1, a, b+1)
					rawReply(w, fmt.Sprintf("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\nContent-Length: %d\r\nETag: %s\r\nCache-Control: max-age=3600\r\n\r\n",
						a, b, size, len(body), origintest.ETag(p, 1)), body[:len(body)/2])
					return true
				})
			},
			statuses: []int{200},
			metric:   `sliceedge_origin_errors_total{kind="truncated"}`,
		},
		{
			name: "Content-Length shorter than the body",
			setup: func(t *testing.T, h *harness, p string) {
				prime(t, h, p)
				h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					a, b, ok := rangeOf(r)
					if !ok || r.URL.Path != p || a == 0 {
						return false
					}
					b = min(b, size-1)
					body := origintest.Expected(p, 1, a, b+1)
					rawReply(w, fmt.Sprintf("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\nContent-Length: %d\r\nETag: %s\r\nCache-Control: max-age=3600\r\n\r\n",
						a, b, size, len(body)-1000, origintest.ETag(p, 1)), body)
					return true
				})
			},
			statuses: []int{200},
			metric:   `sliceedge_origin_errors_total{kind="bad_content_range"}`,
		},
		{
			name:     "Content-Range lies about the start",
			setup:    withMode(origintest.Mode{LieContentRange: "start"}),
			rng:      "bytes=1048576-2097151",
			statuses: []int{502},
			metric:   `sliceedge_origin_errors_total{kind="bad_content_range"}`,
			noSlices: true,
		},
		{
			name:     "Content-Range lies about the end",
			setup:    withMode(origintest.Mode{LieContentRange: "end"}),
			rng:      "bytes=1048576-2097151",
			statuses: []int{502},
			metric:   `sliceedge_origin_errors_total{kind="bad_content_range"}`,
			noSlices: true,
		},
		{
			// A full GET's discovery asks for more than the object: the
			// answer's end and complete length disagree with the request.
			name:     "Content-Range lies about the complete length",
			setup:    withMode(origintest.Mode{LieContentRange: "total"}),
			statuses: []int{502},
			metric:   `sliceedge_origin_errors_total{kind="bad_content_range"}`,
			noSlices: true,
		},
		{
			// A short first range cannot check the complete length, so
			// the version gets the wrong size; the last slice's fetch
			// finds it out and the 200 announcing that size is cut.
			name: "Content-Range lies about the complete length after discovery",
			setup: func(t *testing.T, h *harness, p string) {
				h.origin.SetPathMode(p, origintest.Mode{LieContentRange: "total"})
				if got := h.fetch(t, p, "Range: bytes=0-9"); got.status != 206 {
					t.Fatalf("discovery through the lying origin: status %d, err %v", got.status, got.err)
				}
				h.settle(t)
			},
			statuses: []int{200, 502},
			metric:   `sliceedge_origin_errors_total{kind="bad_content_range"}`,
			check: func(t *testing.T, h *harness, got fetched) {
				if got.status == 200 && got.err == nil {
					t.Errorf("a 200 of %d bytes (Content-Length %s) ended cleanly; want it cut", len(got.body), got.header.Get("Content-Length"))
				}
			},
		},
		{
			name:     "Content-Range with * length",
			setup:    withMode(origintest.Mode{LieContentRange: "star"}),
			statuses: []int{502},
			metric:   `sliceedge_origin_errors_total{kind="bad_content_range"}`,
			noSlices: true,
		},
		{
			name:     "Content-Range malformed",
			setup:    withMode(origintest.Mode{LieContentRange: "malformed"}),
			rng:      "bytes=100-199",
			statuses: []int{502},
			metric:   `sliceedge_origin_errors_total{kind="bad_content_range"}`,
			noSlices: true,
		},
		{
			// The object is first learnt from an origin ignoring Range
			// (a whole-body version), whose body is cut; the refetch of
			// the missing slices, sent without Range, gets a 206.
			name: "206 to a request without Range",
			setup: func(t *testing.T, h *harness, p string) {
				h.origin.SetPathMode(p, origintest.Mode{NoRange: true, TruncateAfter: 1536 * KiB})
				h.fetch(t, p)
				h.settle(t)
				h.origin.SetPathMode(p, origintest.Mode{})
				h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					if r.URL.Path != p || r.Header.Get("Range") != "" {
						return false
					}
					r.Header.Set("Range", "bytes=0-") // answered 206
					h.origin.Handler().ServeHTTP(w, r)
					return true
				})
			},
			statuses: []int{200},
			metric:   `sliceedge_origin_errors_total{kind="bad_content_range"}`,
		},
		{
			name:     "200 to a request with Range",
			setup:    withMode(origintest.Mode{NoRange: true}),
			rng:      "bytes=1048576-2097151",
			statuses: []int{206},
			// Not an error: the edge cuts the whole body into slices.
			metric: "sliceedge_origin_no_range_total",
			check: func(t *testing.T, h *harness, got fetched) {
				if int64(len(got.body)) != MiB || got.err != nil {
					t.Errorf("got %d bytes, %v; want the whole range", len(got.body), got.err)
				}
				h.settle(t)
				if c := h.edge.Counters(); c.OriginNoRange != 1 || c.OriginErrors != 0 {
					t.Errorf("counters: %d no-range answers, %d origin errors; want 1 and 0", c.OriginNoRange, c.OriginErrors)
				}
				if st := h.store.Stats(); st.Slices != 4 {
					t.Errorf("store holds %d slices of the whole body, want 4", st.Slices)
				}
			},
		},
		{
			name: "416 for a range inside the object",
			setup: func(t *testing.T, h *harness, p string) {
				prime(t, h, p)
				h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					if a, _, ok := rangeOf(r); !ok || r.URL.Path != p || a == 0 {
						return false
					}
					w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
					w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
					return true
				})
			},
			rng:      "bytes=2097152-2097251",
			statuses: []int{502},
			metric:   `sliceedge_origin_errors_total{kind="range_refused"}`,
			check:    wantRangeRefusedOnly,
		},
		{
			// At discovery the 416's own complete length shows the range
			// lies inside the object; the origin's answer is relayed.
			name: "416 for a range inside a cold object",
			setup: func(t *testing.T, h *harness, p string) {
				h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					if _, _, ok := rangeOf(r); !ok || r.URL.Path != p {
						return false
					}
					w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
					w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
					return true
				})
			},
			rng:      "bytes=2097152-2097251",
			statuses: []int{416},
			metric:   `sliceedge_origin_errors_total{kind="range_refused"}`,
			noSlices: true,
			check:    wantRangeRefusedOnly,
		},
		{
			name: "validator changes every request",
			setup: func(t *testing.T, h *harness, p string) {
				h.origin.SetPathMode(p, origintest.Mode{FlapEvery: 1})
				h.fetch(t, p, "Range: bytes=0-9")
				h.settle(t)
			},
			statuses: []int{200, 502},
			metric:   `sliceedge_origin_errors_total{kind="validator_mismatch"}`,
		},
		{
			// A weak ETag proves nothing for ranges (RFC 9110 §8.8.1), so
			// the object is cached in the Last-Modified class.
			name:     "weak ETag only",
			setup:    withMode(origintest.Mode{WeakETag: true}),
			statuses: []int{200},
			metric:   `sliceedge_origin_requests_total{kind="discover"}`,
			check: func(t *testing.T, h *harness, got fetched) {
				if int64(len(got.body)) != size || got.err != nil {
					t.Errorf("got %d bytes, %v; want the whole object", len(got.body), got.err)
				}
				if c := h.edge.Counters(); c.OriginRequests != 1 || c.PassRequests != 0 {
					t.Errorf("counters %+v: want the one discovery, no pass-through", c)
				}
				if cs := got.header.Get("Cache-Status"); !strings.Contains(cs, "class=last-modified") {
					t.Errorf("Cache-Status %q does not name the Last-Modified class", cs)
				}
			},
		},
		{
			name: "ETag differs only by case",
			setup: func(t *testing.T, h *harness, p string) {
				prime(t, h, p)
				h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					h.origin.Handler().ServeHTTP(&etagRewriter{ResponseWriter: w, f: strings.ToUpper}, r)
					return true
				})
			},
			statuses: []int{200, 502},
			metric:   `sliceedge_origin_errors_total{kind="validator_mismatch"}`,
		},
		{
			name: "ETag differs only by quoting",
			setup: func(t *testing.T, h *harness, p string) {
				prime(t, h, p)
				h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					h.origin.Handler().ServeHTTP(&etagRewriter{ResponseWriter: w, f: func(s string) string { return strings.Trim(s, `"`) }}, r)
					return true
				})
			},
			statuses: []int{200, 502},
			metric:   `sliceedge_origin_errors_total{kind="validator_mismatch"}`,
		},
		{
			name: "5xx burst during fills",
			setup: func(t *testing.T, h *harness, p string) {
				prime(t, h, p)
				var left atomic.Int64
				left.Store(3)
				h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					if left.Add(-1) < 0 {
						return false
					}
					http.Error(w, "busy", http.StatusServiceUnavailable)
					return true
				})
			},
			statuses: []int{200},
			metric:   `sliceedge_origin_errors_total{kind="status_5xx"}`,
		},
		{
			name: "5xx burst at discovery",
			setup: func(t *testing.T, h *harness, p string) {
				h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					http.Error(w, "busy", http.StatusServiceUnavailable)
					return true
				})
			},
			statuses: []int{503},
			metric:   `sliceedge_origin_errors_total{kind="status_5xx"}`,
			noSlices: true,
		},
		{
			name: "redirect passed through, not followed",
			setup: func(t *testing.T, h *harness, p string) {
				h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					if r.URL.Path == "/elsewhere/4MiB.bin" {
						t.Errorf("the edge followed a redirect")
					}
					if r.URL.Path != p {
						return false
					}
					http.Redirect(w, r, "/elsewhere/4MiB.bin", http.StatusFound)
					return true
				})
			},
			statuses: []int{302},
			metric:   `sliceedge_requests_total{status="302",cache="PASS",rule="/"}`,
			noSlices: true,
			check: func(t *testing.T, h *harness, got fetched) {
				if loc := got.header.Get("Location"); loc != "/elsewhere/4MiB.bin" {
					t.Errorf("Location %q not passed through", loc)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newChaosHarness(t)
			path := c.path
			if path == "" {
				path = chaosPath
			}
			c.setup(t, h, path)
			var hdr []string
			start := int64(0)
			if c.rng != "" {
				hdr = append(hdr, "Range: "+c.rng)
				fmt.Sscanf(c.rng, "bytes=%d-", &start)
			}
			got := h.fetch(t, path, hdr...)
			okStatus := false
			for _, s := range c.statuses {
				okStatus = okStatus || s == got.status
			}
			if !okStatus {
				t.Fatalf("status %d (err %v, body %.200q), want one of %v", got.status, got.err, got.body, c.statuses)
			}
			switch {
			case got.status/100 == 2:
				oneVersion(t, "client body", got.body, path, start, 50)
			case got.status >= 500 && got.status != 503:
				if !strings.HasPrefix(string(got.body), "sliceedge: ") {
					t.Errorf("%d with an unclear body %q", got.status, got.body)
				}
			}
			t.Logf("client: status %d, %d bytes, err %v", got.status, len(got.body), got.err)
			if c.check != nil {
				c.check(t, h, got)
			}
			h.settle(t)
			text := h.metrics(t)
			if c.metric != "" && metricValue(text, c.metric) < 1 {
				t.Errorf("metric %s not counted:\n%s", c.metric, grep(text, "sliceedge_origin_errors_total", "sliceedge_requests_total", "sliceedge_origin_requests_total"))
			}
			if c.noSlices {
				if st := h.store.Stats(); st.Slices != 0 {
					t.Errorf("store holds %d slices after a failed fetch", st.Slices)
				}
			}
			if c.noHeal {
				return
			}
			// Heal the origin; whatever the store holds must read back
			// right, as one version, twice (the second time from the store).
			h.setHook(noHook)
			h.origin.SetMode(origintest.Mode{})
			h.origin.ClearPathMode(path)
			osize, _, _ := h.origin.Object(path)
			for i := range 2 {
				var r fetched
				for try := range 3 {
					if r = h.fetch(t, path); r.status == 200 && r.err == nil {
						break
					}
					t.Logf("re-read %d try %d: status %d, %d bytes, %v", i, try, r.status, len(r.body), r.err)
					h.settle(t)
				}
				if r.status != 200 || r.err != nil || int64(len(r.body)) != osize {
					t.Fatalf("re-read %d after healing: status %d, %d bytes, %v", i, r.status, len(r.body), r.err)
				}
				oneVersion(t, fmt.Sprintf("re-read %d", i), r.body, path, 0, 50)
				h.settle(t)
			}
		})
	}
}

// A 10 GiB object is served from anywhere in it without holding it in
// memory.
func TestChaosHugeObject(t *testing.T) {
	if testing.Short() {
		t.Skip("moves a few hundred MiB")
	}
	h := newHarness(t)
	const path = "/big/10GiB.bin"
	const size = 10 << 30
	far := int64(size - 3*MiB - 17)
	got := h.fetch(t, path, fmt.Sprintf("Range: bytes=%d-", far))
	if got.status != 206 || got.err != nil || int64(len(got.body)) != size-far {
		t.Fatalf("tail range: status %d, %d bytes, %v", got.status, len(got.body), got.err)
	}
	wantBytes(t, "tail", got.body, path, 1, far)
	if cr := got.header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", far, size-1, int64(size)) {
		t.Errorf("Content-Range %q", cr)
	}

	// A full GET read for 256 MiB, then dropped: the heap stays small.
	resp := h.open(t, path)
	if resp.ContentLength != size {
		t.Errorf("Content-Length %d", resp.ContentLength)
	}
	var peak uint64
	n, err := verifyStream(io.LimitReader(&heapWatch{r: resp.Body, peak: &peak}, 256*MiB), path, 1, 0)
	resp.Body.Close()
	if err != nil || n != 256*MiB {
		t.Fatalf("full GET: %d bytes, %v", n, err)
	}
	h.settle(t)
	if peak > 512<<20 {
		t.Errorf("heap reached %d MiB while streaming a 10 GiB object", peak>>20)
	}
	t.Logf("peak heap %d MiB, origin sent %d MiB", peak>>20, h.origin.BodyBytes()>>20)
	if ob := h.origin.BodyBytes(); ob > 512*MiB {
		t.Errorf("origin sent %d MiB for 259 MiB asked", ob>>20)
	}
}

// heapWatch samples the heap every 16 MiB read.
type heapWatch struct {
	r    io.Reader
	n    int64
	peak *uint64
}

func (w *heapWatch) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if w.n/(16*MiB) != (w.n+int64(n))/(16*MiB) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		*w.peak = max(*w.peak, ms.HeapInuse)
	}
	w.n += int64(n)
	return n, err
}
