package edge_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
)

const adminToken = "s3cret-admin-token-for-tests"

// admin calls the admin API and decodes its JSON answer into out.
func (h *harness) admin(t *testing.T, method, path string, q url.Values, out any) int {
	t.Helper()
	if h.adminSrv == nil {
		h.adminSrv = httptest.NewServer(h.edge.AdminHandler())
		t.Cleanup(h.adminSrv.Close)
	}
	req, _ := http.NewRequest(method, h.adminSrv.URL+path+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, body)
		}
	}
	return resp.StatusCode
}

func TestAdminNeedsToken(t *testing.T) {
	h := newHarness(t)
	srv := httptest.NewServer(h.edge.AdminHandler())
	defer srv.Close()
	for _, c := range []struct{ path, auth string }{
		{"/stats", ""}, {"/stats", "Bearer wrong"}, {"/stats", "Basic czNjcmV0"},
		{"/stats", "Bearer " + adminToken + "x"}, {"/debug/pprof/goroutine", ""},
	} {
		path, auth := c.path, c.auth
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s with Authorization %q: status %d, want 401 with WWW-Authenticate", path, auth, resp.StatusCode)
		}
	}
	if code := h.admin(t, "GET", "/stats", nil, nil); code != 200 {
		t.Errorf("right token: status %d", code)
	}
	// Go's profiles, for an operator chasing CPU or memory.
	req, _ := http.NewRequest("GET", srv.URL+"/debug/pprof/goroutine?debug=1", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile: total") {
		t.Errorf("/debug/pprof/goroutine: status %d, body %.80q", resp.StatusCode, body)
	}
}

// Purge by URL removes every slice of the object; the next request is a
// miss that costs origin bytes again.
func TestAdminPurgeURL(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/3MiB.bin"
	h.warm(t, path)
	var res edge.PurgeResult
	if code := h.admin(t, "POST", "/purge", url.Values{"url": {"http://edge.test" + path}}, &res); code != 200 || res.Purged != 1 {
		t.Fatalf("purge: status %d, %+v", code, res)
	}
	if st := h.store.Stats(); st.Slices != 0 || st.Objects != 0 {
		t.Errorf("after purge the store holds %d objects, %d slices", st.Objects, st.Slices)
	}
	before := h.origin.BodyBytes()
	resp, body := h.get(t, path, "Range: bytes=0-99")
	wantBytes(t, "after purge", body, path, 1, 0)
	if resp.Header.Get("X-Cache") != "MISS" || h.origin.BodyBytes() == before {
		t.Errorf("after purge: X-Cache %q and %d origin bytes, want a miss", resp.Header.Get("X-Cache"), h.origin.BodyBytes()-before)
	}
	for _, bad := range []url.Values{{"url": {"/obj/3MiB.bin"}}, {"prefix": {"/obj/"}}, {}} {
		if code := h.admin(t, "POST", "/purge", bad, nil); code != http.StatusBadRequest {
			t.Errorf("purge %v: status %d, want 400", bad, code)
		}
	}
}

// A purge during a fill of the same object: the fill must not bring back
// any slice of what was purged.
func TestAdminPurgeDuringFill(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/16MiB.bin"
	h.origin.SetMode(origintest.Mode{Bandwidth: 32 * MiB}) // half a second for the object
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := h.try("GET", path)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		if n, err := verifyStream(resp.Body, path, 1, 0); err != nil && n > 0 && !strings.Contains(err.Error(), "EOF") {
			t.Errorf("during purge: %v after %d bytes", err, n)
		}
	}()
	origintest.WaitFor(t, "the fill to start", func() bool { return h.origin.BodyBytes() > 2*MiB })
	if code := h.admin(t, "POST", "/purge", url.Values{"url": {"http://edge.test" + path}}, nil); code != 200 {
		t.Fatalf("purge: status %d", code)
	}
	<-done
	h.settle(t)
	if st := h.store.Stats(); st.Slices != 0 || st.Objects != 0 {
		t.Errorf("the fill resurrected the purged object: %d objects, %d slices stored", st.Objects, st.Slices)
	}
}

// Purge by prefix and purge all leave nothing of the purged objects, and
// only them.
func TestAdminPurgePrefixAndAll(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"/obj/a/1MiB.bin", "/obj/a/2MiB.bin", "/obj/b/1MiB.bin"} {
		h.warm(t, p)
	}
	var res edge.PurgeResult
	h.admin(t, "POST", "/purge", url.Values{"prefix": {"http://edge.test/obj/a/"}}, &res)
	if res.Purged != 2 {
		t.Errorf("prefix purge: %+v, want 2 objects", res)
	}
	if st := h.store.Stats(); st.Objects != 1 || st.Slices != 1 {
		t.Errorf("after the prefix purge: %d objects, %d slices, want only /obj/b's 1 and 1", st.Objects, st.Slices)
	}
	h.admin(t, "POST", "/purge", url.Values{"all": {"1"}}, &res)
	if st := h.store.Stats(); st.Objects != 0 || st.Slices != 0 || res.Purged != 1 {
		t.Errorf("after purge all: %+v, %d objects, %d slices", res, st.Objects, st.Slices)
	}
}

// Soft purge marks stale: the slices stay, the next request revalidates
// once (a 304 costs no body bytes) and is served from them.
func TestAdminSoftPurge(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/4MiB.bin"
	h.warm(t, path)
	var res edge.PurgeResult
	h.admin(t, "POST", "/purge", url.Values{"prefix": {"edge.test/obj/"}, "soft": {"1"}}, &res)
	if !res.Soft || res.Purged != 1 {
		t.Fatalf("soft purge: %+v", res)
	}
	if st := h.store.Stats(); st.Slices != 4 {
		t.Errorf("soft purge dropped slices: %d left of 4", st.Slices)
	}
	h.origin.ResetCounters()
	resp, body := h.get(t, path, "Range: bytes=0-3999999")
	wantBytes(t, "after soft purge", body, path, 1, 0)
	if h.origin.Requests() != 1 || h.origin.BodyBytes() != 0 || resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("after soft purge: %d origin requests, %d body bytes, X-Cache %q; want one revalidation and a hit",
			h.origin.Requests(), h.origin.BodyBytes(), resp.Header.Get("X-Cache"))
	}
}

func TestAdminInspectAndStats(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/8MiB.bin"
	h.get(t, path, "Range: bytes=0-99")
	h.get(t, path, "Range: bytes=7340032-7340099")
	h.settle(t)
	var in edge.Inspection
	if code := h.admin(t, "GET", "/inspect", url.Values{"url": {"http://edge.test" + path}}, &in); code != 200 {
		t.Fatalf("inspect: status %d", code)
	}
	if in.Size != 8*MiB || in.SliceSize != MiB || in.Slices != 8 || in.Stored != 2 || in.Map != "[#......#]" ||
		in.ETag != origintest.ETag(path, 1) || !in.Fresh {
		t.Errorf("inspect: %+v", in)
	}
	if code := h.admin(t, "GET", "/inspect", url.Values{"url": {"http://edge.test/obj/none-1MiB.bin"}}, nil); code != 404 {
		t.Errorf("inspect of an object not stored: status %d, want 404", code)
	}
	var st edge.StatsReport
	h.admin(t, "GET", "/stats", nil, &st)
	if st.Store.Objects != 1 || st.Store.Slices != 2 || st.Counters.Requests != 2 || st.Counters.OriginBytes != 2*MiB {
		t.Errorf("stats: %+v", st)
	}
	req, _ := http.NewRequest("GET", h.adminSrv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sliceedge_requests_total{status="206",cache="MISS",rule="/"} 2`,
		`sliceedge_origin_bytes_total 2097152`,
		`sliceedge_origin_requests_total{kind="discover"} 1`,
		`sliceedge_store_slices 2`,
		`sliceedge_ttfb_seconds_bucket`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A purge, or an unsafe request, while discoveries are on their way keeps
// only the purged key's answer out of the store: the others store as
// usual.
func TestPurgeDuringDiscoveryOnlyItsKey(t *testing.T) {
	h := newHarness(t)
	const kept, purged = "/obj/1MiB-kept.bin", "/obj/1MiB-purged.bin"
	gate := make(chan struct{})
	var held atomic.Int32
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusNoContent)
			return true
		}
		held.Add(1)
		<-gate // both discoveries wait here until the purges are done
		return false
	})
	var wg sync.WaitGroup
	for _, p := range []string{kept, purged} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.try("GET", p, "Range: bytes=0-99")
			if err != nil {
				t.Errorf("GET %s: %v", p, err)
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusPartialContent {
				t.Errorf("GET %s: status %d, %v", p, resp.StatusCode, err)
				return
			}
			if at, ok := origintest.Verify(body, p, 1, 0); !ok || len(body) != 100 {
				t.Errorf("GET %s: %d bytes, wrong byte at %d", p, len(body), at)
			}
		}()
	}
	origintest.WaitFor(t, "both discoveries to reach the origin", func() bool { return held.Load() == 2 })
	if resp, _ := h.do(t, http.MethodPost, "/obj/unrelated"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST: status %d", resp.StatusCode)
	}
	if code := h.admin(t, "POST", "/purge", url.Values{"url": {"http://edge.test" + purged}}, nil); code != 200 {
		t.Fatalf("purge: status %d", code)
	}
	close(gate)
	wg.Wait()
	h.setHook(noHook)
	h.settle(t)

	if resp, body := h.get(t, kept, "Range: bytes=0-99"); resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("%s after a POST and a purge of other URLs: X-Cache %q, want HIT", kept, resp.Header.Get("X-Cache"))
	} else {
		wantBytes(t, kept, body, kept, 1, 0)
	}
	before := h.origin.Requests()
	if resp, body := h.get(t, purged, "Range: bytes=0-99"); resp.Header.Get("X-Cache") != "MISS" || h.origin.Requests() == before {
		t.Errorf("%s purged while its discovery was on its way: X-Cache %q, %d origin requests; the answer was stored",
			purged, resp.Header.Get("X-Cache"), h.origin.Requests()-before)
	} else {
		wantBytes(t, purged, body, purged, 1, 0)
	}
}
