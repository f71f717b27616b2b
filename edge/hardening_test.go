package edge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// An origin whose answer claims an object beyond max_object_size (the
// 2^63-1 and 64 PiB lengths that ran the node out of memory) is passed
// through uncached, with a Cache-Status detail, a metric and nothing
// stored; memory does not follow the claim.
func TestHugeClaimPassedThrough(t *testing.T) {
	h := newHarness(t)
	for i, tc := range []struct {
		name  string
		total int64
		whole bool // a 200 with that Content-Length to the ranged request
	}{
		{"206 claiming 2^63-1", 1<<63 - 1, false},
		{"206 claiming 64 PiB", 64 << 50, false},
		{"200 claiming 2^63-1", 1<<63 - 1, true},
		{"206 claiming 1 TiB and a byte", 1<<40 + 1, false},
	} {
		path := fmt.Sprintf("/obj/huge-%d.bin", i)
		t.Run(tc.name, func(t *testing.T) {
			var asked atomic.Int64
			h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != path {
					return false
				}
				asked.Add(1)
				w.Header().Set("ETag", `"huge"`)
				w.Header().Set("Cache-Control", "max-age=3600")
				var a, b int64
				fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b)
				if tc.whole && r.Header.Get("Authorization") == "" && asked.Load() == 1 {
					w.Header().Set("Content-Length", strconv.FormatInt(tc.total, 10))
					w.WriteHeader(200)
					w.Write(origintest.Expected(path, 1, 0, 64<<10))
					return true // a body far shorter than it says: the edge must not wait for it
				}
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, tc.total))
				w.Header().Set("Content-Length", strconv.FormatInt(b-a+1, 10))
				w.WriteHeader(206)
				w.Write(origintest.Expected(path, 1, a, b+1))
				return true
			})
			before := h.store.Stats().Objects
			stop := watchHeap(false)
			resp, body := h.get(t, path, "Range: bytes=100-199")
			grew, _ := stop()
			if resp.StatusCode != 206 || len(body) != 100 {
				t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
			}
			wantBytes(t, tc.name, body, path, 1, 100)
			if cs := resp.Header.Get("Cache-Status"); resp.Header.Get("X-Cache") != "PASS" || !strings.Contains(cs, `detail="object-too-large"`) {
				t.Errorf("X-Cache %q, Cache-Status %q; want PASS with detail object-too-large", resp.Header.Get("X-Cache"), cs)
			}
			if got := h.store.Stats().Objects; got != before {
				t.Errorf("%d objects stored for a claim beyond max_object_size", got-before)
			}
			heapUnder(t, grew, 64<<20, tc.name)
			// The next request goes straight through (hit-for-pass).
			resp, _ = h.get(t, path, "Range: bytes=0-9", "Authorization: x")
			if resp.Header.Get("X-Cache") != "PASS" {
				t.Errorf("second request: X-Cache %q", resp.Header.Get("X-Cache"))
			}
			h.settle(t)
		})
	}
	if v := metricValue(h.metrics(t), `sliceedge_limit_trips_total{limit="object_size"}`); v < 4 {
		t.Errorf("object_size limit trips: %v, want at least 4", v)
	}
}

// A revalidation 304 never rewrites what the stored bytes are: one naming
// another validator updates nothing (the object is fetched again); one
// with the same validator refreshes freshness but not the encoding, length
// or validator; one saying no-store or private drops the object.
func TestContradictingRevalidation(t *testing.T) {
	const path = "/obj/1MiB.bin"
	for _, tc := range []struct {
		name    string
		header  map[string]string
		refetch bool // the object is fetched again at once
		dropped bool // the object is no longer stored
	}{
		{"another ETag, gzip, private", map[string]string{"ETag": `"not-the-stored-one"`, "Content-Encoding": "gzip", "Cache-Control": "private, no-store"}, true, false},
		{"same ETag, gzip and a length", map[string]string{"Content-Encoding": "gzip", "Content-Length": "5", "Cache-Control": "max-age=600"}, false, false},
		{"same ETag, private", map[string]string{"Cache-Control": "private"}, false, true},
		{"same ETag, no-store", map[string]string{"Cache-Control": "no-store"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			_, body := h.get(t, path)
			wantBytes(t, "first", body, path, 1, 0)
			h.settle(t)
			etag := origintest.ETag(path, 1)
			var revalidations atomic.Int64
			h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Header.Get("If-None-Match") == "" {
					return false
				}
				revalidations.Add(1)
				w.Header().Set("ETag", etag)
				for k, v := range tc.header {
					w.Header()[k] = []string{v}
				}
				w.WriteHeader(http.StatusNotModified)
				return true
			})
			h.advance(2 * time.Hour) // max-age=3600: stale
			resp, body := h.get(t, path)
			wantBytes(t, "after the 304", body, path, 1, 0)
			if ce := resp.Header.Get("Content-Encoding"); ce != "" {
				t.Errorf("identity bytes labelled Content-Encoding %q", ce)
			}
			if n := revalidations.Load(); n != 1 {
				t.Errorf("%d revalidations, want 1", n)
			}
			h.settle(t)
			resp, body = h.get(t, path)
			wantBytes(t, "then", body, path, 1, 0)
			switch {
			case tc.dropped:
				if resp.Header.Get("X-Cache") == "HIT" {
					t.Errorf("a no-store/private object is still a HIT")
				}
			default:
				if resp.Header.Get("X-Cache") != "HIT" || resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("ETag") != etag {
					t.Errorf("then: X-Cache %q, Content-Encoding %q, ETag %q; want a HIT of the stored identity bytes", resp.Header.Get("X-Cache"), resp.Header.Get("Content-Encoding"), resp.Header.Get("ETag"))
				}
			}
			m := h.metrics(t)
			if tc.refetch && metricValue(m, `sliceedge_revalidations_total{outcome="contradicted"}`) != 1 {
				t.Errorf("contradicted revalidations not counted")
			}
			if tc.dropped && metricValue(m, `sliceedge_revalidations_total{outcome="uncacheable"}`) != 1 {
				t.Errorf("uncacheable revalidations not counted")
			}
		})
	}
}

// A cold conditional request costs the origin one slice, not a run, and
// is labelled a miss.
func TestColdConditional(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/512MiB.bin"
	etag := origintest.ETag(path, 1)
	lm := origintest.LastModified(1).Add(time.Hour).UTC().Format(http.TimeFormat)
	for i, hdr := range []string{"If-None-Match: " + etag, "If-Modified-Since: " + lm} {
		p := fmt.Sprintf("/obj/512MiB-%d.bin", i)
		if i == 0 {
			p = path
		}
		before := h.origin.BodyBytes()
		resp, body := h.get(t, p, hdr)
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Fatalf("%s: status %d, %d bytes; want 304", hdr, resp.StatusCode, len(body))
		}
		if xc := resp.Header.Get("X-Cache"); xc != "MISS" {
			t.Errorf("%s: X-Cache %q, want MISS (the meta came from the origin)", hdr, xc)
		}
		h.settle(t)
		if got := h.origin.BodyBytes() - before; got > 1<<20 {
			t.Errorf("%s: the origin sent %d bytes to decide, want at most one slice (1 MiB)", hdr, got)
		}
		resp, _ = h.get(t, p, hdr)
		if resp.StatusCode != http.StatusNotModified || resp.Header.Get("X-Cache") != "HIT" {
			t.Errorf("%s again: status %d, X-Cache %q; want a 304 HIT", hdr, resp.StatusCode, resp.Header.Get("X-Cache"))
		}
	}
}

// Sparse ranges over a cold object do not make the edge fetch a slice per
// range: past the fetch allowance the request goes to the origin as asked,
// uncached, and the answer is right.
func TestFetchAllowance(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/1GiB.bin"
	// The origin answers several ranges with multipart/byteranges, as
	// net/http's ServeContent (and nginx, Apache) do.
	var sent atomic.Int64
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != path || strings.Count(r.Header.Get("Range"), ",") == 0 {
			return false
		}
		w.Header().Set("ETag", origintest.ETag(path, 1))
		w.Header().Set("Cache-Control", "max-age=3600")
		cw := &countingWriter{ResponseWriter: w, n: &sent}
		http.ServeContent(cw, r, "", origintest.LastModified(1), &fuzzContent{name: path, version: 1, size: 1 << 30})
		return true
	})
	var ranges []string
	var want [][2]int64
	for i := range int64(64) {
		off := i * 16 << 20
		ranges = append(ranges, fmt.Sprintf("%d-%d", off, off))
		want = append(want, [2]int64{off, off + 1})
	}
	resp, body := h.get(t, path, "Range: bytes="+strings.Join(ranges, ","))
	if resp.StatusCode != 206 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, `detail="fetch-allowance"`) {
		t.Errorf("Cache-Status %q, want detail fetch-allowance", cs)
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(strings.NewReader(string(body)), params["boundary"])
	var got int
	for ; ; got++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pb, _ := io.ReadAll(part)
		if got >= len(want) {
			t.Fatalf("more parts than ranges")
		}
		if cr := part.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", want[got][0], want[got][1]-1, 1<<30) {
			t.Errorf("part %d: Content-Range %q", got, cr)
		}
		wantBytes(t, "part", pb, path, 1, want[got][0])
	}
	if got != 64 {
		t.Errorf("%d parts, want 64", got)
	}
	h.settle(t)
	if b := h.origin.BodyBytes() + sent.Load(); b > 2<<20 {
		t.Errorf("the origin sent %d bytes for a %d-byte answer, want at most 2 MiB (the discovery's slice and the answer)", b, len(body))
	}
	// A dense multi-range request within the allowance is cached as usual.
	resp, body = h.get(t, path, "Range: bytes=0-99,2097152-2097251")
	if resp.Header.Get("X-Cache") == "PASS" || resp.StatusCode != 206 {
		t.Errorf("two ranges within the allowance: status %d, X-Cache %q", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	if v := metricValue(h.metrics(t), `sliceedge_limit_trips_total{limit="fetch_allowance"}`); v != 1 {
		t.Errorf("fetch_allowance trips %v, want 1", v)
	}
	_ = body
}

// An origin that stalls inside its first bytes gets the client a 504 with
// a body, not an empty reply; one that stalls later gets a cut, and the
// access log says which status was sent and that the answer was cut.
func TestOriginStallsEarly(t *testing.T) {
	h := newChaosHarness(t) // read_timeout 500ms
	const early, late = "/obj/4MiB-early.bin", "/obj/4MiB-late.bin"
	h.origin.SetPathMode(early, origintest.Mode{Stall: 10 * time.Second, StallAfter: 100})
	h.origin.SetPathMode(late, origintest.Mode{Stall: 10 * time.Second, StallAfter: 300 << 10})
	got := h.fetch(t, early, "Range: bytes=0-999")
	if got.status != http.StatusGatewayTimeout || !strings.Contains(string(got.body), "did not answer in time") {
		t.Errorf("stall in the first bytes: status %d, body %q, err %v; want 504", got.status, got.body, got.err)
	}
	got = h.fetch(t, late)
	if got.status != 200 || got.err == nil || len(got.body) >= 4<<20 {
		t.Errorf("stall after 300 KiB: status %d, %d bytes, err %v; want 200 then a cut", got.status, len(got.body), got.err)
	}
	wantBytes(t, "bytes before the cut", got.body, late, 1, 0)
	var sawEarly, sawLate bool
	for _, l := range h.logs.Lines(t) {
		if l["message"] != "request" {
			continue
		}
		switch l["path"] {
		case early:
			sawEarly = true
			if l["status"] != float64(504) || l["cut"] != nil {
				t.Errorf("access log for the early stall: status %v, cut %v; want 504, no cut", l["status"], l["cut"])
			}
		case late:
			sawLate = true
			if l["status"] != float64(200) || l["cut"] != "origin" {
				t.Errorf("access log for the late stall: status %v, cut %v; want 200, cut origin", l["status"], l["cut"])
			}
		}
	}
	if !sawEarly || !sawLate {
		t.Errorf("access log lines missing: early %v, late %v", sawEarly, sawLate)
	}
	if v := metricValue(h.metrics(t), `sliceedge_responses_cut_total{reason="origin"}`); v != 1 {
		t.Errorf("cuts by the origin: %v, want 1", v)
	}
}

// countingWriter adds the body bytes written through it to n.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// fuzzContent is an io.ReadSeeker over version of the test origin's
// object name, for http.ServeContent.
type fuzzContent struct {
	name      string
	version   int
	size, off int64
}

func (c *fuzzContent) Read(p []byte) (int, error) {
	if c.off >= c.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), c.size-c.off)]
	origintest.Fill(p, c.name, c.version, c.off)
	c.off += int64(len(p))
	return len(p), nil
}

func (c *fuzzContent) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		c.off = off
	case io.SeekCurrent:
		c.off += off
	case io.SeekEnd:
		c.off = c.size + off
	}
	return c.off, nil
}

// An origin's response headers are bounded (max_header_bytes, 64 KiB by
// default): 8 MiB of them is a 502 that says why, counted, and nothing is
// stored; headers an origin names in Connection are neither stored nor
// replayed.
func TestOriginHeaderBounds(t *testing.T) {
	h := newHarness(t)
	const big, hop = "/obj/64KiB-bigheaders.bin", "/obj/64KiB-hop.bin"
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case big:
			for i := range 128 {
				w.Header().Set(fmt.Sprintf("X-Pad-%d", i), strings.Repeat("p", 64<<10))
			}
		case hop:
			w.Header().Set("Connection", "X-Hop-Secret")
			w.Header().Set("X-Hop-Secret", "not for clients")
			w.Header().Set("X-Kept", "yes")
		}
		return false
	})
	objects := h.store.Stats().Objects
	resp, body := h.get(t, big)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "max_header_bytes") {
		t.Errorf("8 MiB of origin headers: status %d, body %.100q; want 502 naming max_header_bytes", resp.StatusCode, body)
	}
	if got := h.store.Stats().Objects; got != objects {
		t.Errorf("%d objects stored from an answer with too many header bytes", got-objects)
	}
	if v := metricValue(h.metrics(t), `sliceedge_origin_errors_total{kind="headers_too_large"}`); v != 1 {
		t.Errorf("headers_too_large: %v, want 1", v)
	}
	for _, want := range []string{"MISS", "HIT"} {
		resp, body = h.get(t, hop)
		h.settle(t)
		wantBytes(t, hop, body, hop, 1, 0)
		if resp.Header.Get("X-Cache") != want || resp.Header.Get("X-Hop-Secret") != "" || resp.Header.Get("X-Kept") != "yes" {
			t.Errorf("%s: X-Cache %q, X-Hop-Secret %q, X-Kept %q; want the Connection-named header gone", want, resp.Header.Get("X-Cache"), resp.Header.Get("X-Hop-Secret"), resp.Header.Get("X-Kept"))
		}
	}
}

// hasCounter is a real store that counts the slices asked about one by
// one.
type hasCounter struct {
	*segstore.Store
	has atomic.Int64
}

func (c *hasCounter) Has(m *segstore.Meta, i int64) bool {
	c.has.Add(1)
	return c.Store.Has(m, i)
}

// An object an origin says is 64 PiB, where a rule allows it: the HEADs,
// the ranged GETs and inspect that follow cost what is stored of it, not
// 2^36 slices each.
func TestHugeObjectCostsWhatIsStored(t *testing.T) {
	const path, claimed = "/obj/64pib.bin", int64(64 << 50)
	var cs *hasCounter
	h := newHarnessWith(t, setup{
		Config: func(url string) string {
			return fmt.Sprintf(`
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:1, token: %s}
store: {dir: unused, max_bytes: 1GiB}
origins: {default: {url: %q}}
rules:
  - {match: /, origin: default, max_object_size: 65536TiB}
`, adminToken, url)
		},
		Store: func(st *segstore.Store) edge.Store { cs = &hasCounter{Store: st}; return cs },
	})
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		var a, b int64
		fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b)
		w.Header().Set("ETag", `"petabyte"`)
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, claimed))
		w.Header().Set("Content-Length", strconv.FormatInt(b-a+1, 10))
		w.WriteHeader(206)
		w.Write(origintest.Expected(path, 1, a, b+1))
		return true
	})
	adm := httptest.NewServer(h.edge.AdminHandler())
	defer adm.Close()
	do := func(method string, headers ...string) *http.Response {
		t.Helper()
		resp, body := h.do(t, method, path, headers...)
		if resp.StatusCode == 206 {
			var a int64
			fmt.Sscanf(resp.Request.Header.Get("Range"), "bytes=%d-", &a)
			wantBytes(t, "range", body, path, 1, a)
		}
		return resp
	}
	do("GET", "Range: bytes=0-99")
	do("GET", fmt.Sprintf("Range: bytes=%d-%d", claimed-100, claimed-1))
	h.settle(t)
	cs.has.Store(0)
	for range 3 {
		if resp := do("HEAD"); resp.StatusCode != 200 || resp.ContentLength != claimed {
			t.Fatalf("HEAD: status %d, length %d", resp.StatusCode, resp.ContentLength)
		}
		if resp := do("GET", "Range: bytes=0-99", "If-None-Match: \"x\""); resp.StatusCode != 206 || resp.Header.Get("X-Cache") != "HIT" {
			t.Fatalf("stored range: status %d, X-Cache %q", resp.StatusCode, resp.Header.Get("X-Cache"))
		}
	}
	req, _ := http.NewRequest("GET", adm.URL+"/inspect?url="+url.QueryEscape("http://edge.test"+path), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var in edge.Inspection
	json.NewDecoder(resp.Body).Decode(&in)
	resp.Body.Close()
	if in.Size != claimed || in.Stored != 2 || len(in.Map) != 66 || in.Map[1] != '+' || in.Map[64] != '+' {
		t.Errorf("inspect: size %d, stored %d, map %q", in.Size, in.Stored, in.Map)
	}
	if n := cs.has.Load(); n > 100 {
		t.Errorf("3 HEADs, 3 stored ranges and an inspect asked the store about %d slices one by one, want a handful", n)
	}
}

// landedFirst is a real store whose CountStored waits for the fills in
// flight to land first: the race in which a discovery's small fill is
// stored before its request counts its slices, made certain.
type landedFirst struct {
	*segstore.Store
	srv *edge.Server
}

func (l *landedFirst) CountStored(m *segstore.Meta, first, last int64) int64 {
	// On a handler's goroutine, which must not fail the test: at worst the
	// request counts its slices early and the test sees a HIT.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = l.srv.Drain(ctx)
	return l.Store.CountStored(m, first, last)
}

// An answer whose meta came from the origin is a MISS, also when its
// slices were stored before it counted them.
func TestDiscoveryIsAMiss(t *testing.T) {
	lf := &landedFirst{}
	h := newHarnessWith(t, setup{Store: func(st *segstore.Store) edge.Store { lf.Store = st; return lf }})
	lf.srv = h.edge
	const path = "/obj/64KiB.bin"
	for _, want := range []string{"MISS", "HIT"} {
		resp, body := h.get(t, path)
		wantBytes(t, want, body, path, 1, 0)
		if got := resp.Header.Get("X-Cache"); got != want {
			t.Errorf("X-Cache %q (Cache-Status %q), want %s", got, resp.Header.Get("Cache-Status"), want)
		}
	}
}
