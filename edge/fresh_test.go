package edge_test

import (
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

func ccMode(cc string) origintest.Mode { return origintest.Mode{CacheControl: &cc} }

// warm fetches the whole object and waits until its fills have landed.
func (h *harness) warm(t *testing.T, path string) {
	t.Helper()
	resp, body := h.get(t, path)
	if resp.StatusCode != 200 {
		t.Fatalf("warm %s: status %d", path, resp.StatusCode)
	}
	wantBytes(t, "warm", body, path, 1, 0)
	h.settle(t)
}

// A stale object is revalidated once for all its slices and all the
// requests that want it: one conditional request, a 304, no body bytes.
func TestRevalidateOncePerObject(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/8MiB.bin"
	h.origin.SetMode(ccMode("max-age=60"))
	h.warm(t, path)
	h.origin.ResetCounters()
	h.advance(61 * time.Second)

	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := int64(i) * 700 * KiB
			resp, body := h.get(t, path, "Range: bytes="+itoa(start)+"-"+itoa(start+99999))
			if resp.StatusCode != 206 {
				t.Errorf("status %d", resp.StatusCode)
				return
			}
			wantBytes(t, "after revalidation", body, path, 1, start)
		}()
	}
	wg.Wait()
	if got := h.origin.Requests(); got != 1 {
		t.Errorf("%d origin requests for 10 requests of a stale object, want 1", got)
	}
	recs := h.origin.LastRequests()
	if len(recs) == 0 || recs[0].IfNoneMatch != origintest.ETag(path, 1) {
		t.Errorf("revalidation did not send If-None-Match with the stored ETag: %+v", recs)
	}
	if got := h.origin.BodyBytes(); got != 0 {
		t.Errorf("revalidation cost %d body bytes, want 0", got)
	}
	if c := h.edge.Counters(); c.NotModified != 1 {
		t.Errorf("counters: %+v, want one not_modified revalidation", c)
	}

	// The object changes: the next stale request gets the new version, and
	// the old version's slices are gone from the store.
	h.origin.Bump(path)
	h.advance(61 * time.Second)
	resp, body := h.get(t, path, "Range: bytes=3000000-3000099")
	if resp.StatusCode != 206 || resp.Header.Get("ETag") != origintest.ETag(path, 2) {
		t.Fatalf("after a change: status %d ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	wantBytes(t, "new version", body, path, 2, 3000000)
	h.settle(t)
	if st := h.store.Stats(); st.Slices != 1 {
		t.Errorf("store holds %d slices after the change, want only the new version's one", st.Slices)
	}
}

// stale-while-revalidate: a stale object is served at once, even with the
// origin stopped, while one background request tries to revalidate it.
func TestStaleWhileRevalidate(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/2MiB.bin"
	h.origin.SetMode(ccMode("max-age=60, stale-while-revalidate=30"))
	h.warm(t, path)

	// Origin up: the stale answer is immediate and the background
	// revalidation refreshes the object.
	h.advance(70 * time.Second)
	resp, body := h.get(t, path, "Range: bytes=0-99")
	if resp.StatusCode != 206 || !strings.Contains(resp.Header.Get("Cache-Status"), "stale-while-revalidate") {
		t.Fatalf("status %d Cache-Status %q, want a stale 206", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	wantBytes(t, "stale", body, path, 1, 0)
	origintest.WaitFor(t, "background revalidation", func() bool { return h.edge.Counters().NotModified == 1 })
	resp, _ = h.get(t, path, "Range: bytes=0-99")
	if cs := resp.Header.Get("Cache-Status"); strings.Contains(cs, "stale") {
		t.Errorf("after revalidating, Cache-Status %q still says stale", cs)
	}

	// Origin stopped: still served stale inside the window...
	h.stopOrigin()
	h.advance(70 * time.Second)
	resp, body = h.get(t, path, "Range: bytes=100-199")
	if resp.StatusCode != 206 {
		t.Fatalf("origin stopped, inside the window: status %d", resp.StatusCode)
	}
	wantBytes(t, "stale, origin stopped", body, path, 1, 100)
	// ...and not past it.
	h.advance(time.Minute)
	resp, _ = h.get(t, path, "Range: bytes=100-199")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("origin stopped, past the window: status %d, want 502", resp.StatusCode)
	}
}

// stale-if-error, from the origin's header or the rule: a stale object is
// served when the origin is down or answers 5xx, within the window, and
// never when the object says must-revalidate.
func TestStaleIfError(t *testing.T) {
	for _, tc := range []struct {
		name, path, cc string
		window         time.Duration
	}{
		{"origin directive", "/obj/2MiB.bin", "max-age=60, stale-if-error=300", 300 * time.Second},
		{"rule", "/sie/2MiB.bin", "max-age=60", 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.origin.SetMode(ccMode(tc.cc))
			h.warm(t, tc.path)
			h.advance(61 * time.Second)

			h.origin.SetMode(origintest.Mode{Status: 503})
			resp, body := h.get(t, tc.path, "Range: bytes=10-19")
			if resp.StatusCode != 206 || !strings.Contains(resp.Header.Get("Cache-Status"), "stale-if-error") {
				t.Fatalf("origin 503: status %d Cache-Status %q, want a stale 206", resp.StatusCode, resp.Header.Get("Cache-Status"))
			}
			wantBytes(t, "stale on 503", body, tc.path, 1, 10)

			h.stopOrigin()
			resp, body = h.get(t, tc.path, "Range: bytes=10-19")
			if resp.StatusCode != 206 {
				t.Fatalf("origin stopped: status %d, want a stale 206", resp.StatusCode)
			}
			wantBytes(t, "stale, origin stopped", body, tc.path, 1, 10)
			if got := h.edge.Counters().StaleServed; got != 2 {
				t.Errorf("stale served %d times, want 2", got)
			}

			h.advance(tc.window)
			resp, _ = h.get(t, tc.path, "Range: bytes=10-19")
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("past the window: status %d, want 502", resp.StatusCode)
			}
		})
	}
	t.Run("must-revalidate", func(t *testing.T) {
		h := newHarness(t)
		const path = "/obj/1MiB.bin"
		h.origin.SetMode(ccMode("max-age=60, must-revalidate, stale-if-error=300"))
		h.warm(t, path)
		h.advance(61 * time.Second)
		h.stopOrigin()
		resp, _ := h.get(t, path)
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("must-revalidate with the origin down: status %d, want 502", resp.StatusCode)
		}
	})
}

// A response with no freshness information is stored only under heuristic
// freshness, which a rule can turn off.
func TestHeuristicFreshness(t *testing.T) {
	h := newHarness(t)
	h.origin.SetMode(ccMode("")) // no Cache-Control; Last-Modified is in 2024
	h.warm(t, "/obj/1MiB.bin")
	before := h.origin.Requests()
	resp, _ := h.get(t, "/obj/1MiB.bin", "Range: bytes=0-9")
	if resp.Header.Get("X-Cache") != "HIT" || h.origin.Requests() != before {
		t.Errorf("heuristic freshness: X-Cache %q, %d origin requests", resp.Header.Get("X-Cache"), h.origin.Requests()-before)
	}
	// Capped at heuristic_max (24h by default).
	h.advance(25 * time.Hour)
	h.get(t, "/obj/1MiB.bin", "Range: bytes=0-9")
	if h.origin.Requests() == before {
		t.Errorf("no revalidation after heuristic_max")
	}

	for i := range 2 {
		resp, body := h.get(t, "/noheur/1MiB.bin", "Range: bytes=0-9")
		wantBytes(t, "no heuristic", body, "/noheur/1MiB.bin", 1, 0)
		if resp.Header.Get("X-Cache") != "PASS" {
			t.Errorf("request %d with heuristic_fraction 0: X-Cache %q, want PASS", i, resp.Header.Get("X-Cache"))
		}
	}
}

// A successful unsafe request invalidates the stored object for its URL
// and for Location / Content-Location on the same host (RFC 9111 §4.4);
// a failed one does not.
func TestUnsafeMethodInvalidates(t *testing.T) {
	h := newHarness(t)
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return false
		}
		if loc := r.Header.Get("X-Test-Location"); loc != "" {
			w.Header().Set("Location", loc)
			w.Header().Set("Content-Location", r.Header.Get("X-Test-Content-Location"))
		}
		if r.Header.Get("X-Test-Fail") != "" {
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		w.WriteHeader(http.StatusNoContent)
		return true
	})
	paths := []string{"/obj/1MiB-a.bin", "/obj/1MiB-b.bin", "/obj/1MiB-c.bin", "/obj/1MiB-d.bin"}
	for _, p := range paths {
		h.warm(t, p)
	}
	stored := func(p string) bool {
		resp, _ := h.do(t, http.MethodHead, p)
		return resp.Header.Get("X-Cache") == "HIT"
	}
	resp, _ := h.do(t, http.MethodPost, paths[0], "X-Test-Fail: 1")
	if resp.StatusCode != http.StatusForbidden || !stored(paths[0]) {
		t.Errorf("a failed POST (status %d) invalidated the object", resp.StatusCode)
	}
	resp, _ = h.do(t, http.MethodPut, paths[0],
		"X-Test-Location: "+paths[1], "X-Test-Content-Location: http://edge.test"+paths[2])
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT: status %d", resp.StatusCode)
	}
	for i, p := range paths[:3] {
		if stored(p) {
			t.Errorf("%s (%d) still stored after a PUT that named it", p, i)
		}
	}
	h.do(t, http.MethodDelete, paths[3], "X-Test-Location: http://elsewhere.example"+paths[3])
	if stored(paths[3]) {
		t.Errorf("DELETE of %s did not invalidate it", paths[3])
	}
}

// Vary on anything but Accept-Encoding is not slice-cached.
func TestVary(t *testing.T) {
	h := newHarness(t)
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "vary-ua") {
			w.Header().Set("Vary", "User-Agent")
		} else {
			w.Header().Set("Vary", "Accept-Encoding")
		}
		return false
	})
	// The first answer reveals the Vary (a pass: the fetch carried the
	// edge's User-Agent, not the client's); then the client's variant is
	// stored (vary_test.go has the rest).
	for i, want := range []string{"PASS", "MISS", "HIT"} {
		resp, body := h.get(t, "/obj/1MiB-vary-ua.bin", "Range: bytes=0-9")
		wantBytes(t, "vary", body, "/obj/1MiB-vary-ua.bin", 1, 0)
		if resp.Header.Get("X-Cache") != want {
			t.Errorf("Vary: User-Agent, request %d: X-Cache %q, want %s", i, resp.Header.Get("X-Cache"), want)
		}
		h.settle(t) // the variant's slice lands
	}
	h.warm(t, "/obj/1MiB-vary-ae.bin")
	resp, _ := h.get(t, "/obj/1MiB-vary-ae.bin", "Range: bytes=0-9")
	if resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("Vary: Accept-Encoding: X-Cache %q, want HIT", resp.Header.Get("X-Cache"))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The age an answer already had at the origin's side (a parent cache's
// Age header) counts: in the Age the edge sends and in freshness
// (RFC 9111 §4.2.3).
func TestUpstreamAgeCounts(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/1MiB.bin"
	h.origin.SetMode(ccMode("max-age=3600"))
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Age", "3500")
		return false
	})
	h.warm(t, path)
	h.advance(60 * time.Second)
	resp, body := h.get(t, path, "Range: bytes=0-9")
	if resp.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("60 s after an answer aged 3500 s of 3600: X-Cache %q, want HIT", resp.Header.Get("X-Cache"))
	}
	wantBytes(t, "hit", body, path, 1, 0)
	if age, _ := strconv.Atoi(resp.Header.Get("Age")); age < 3560 || age > 3565 {
		t.Errorf("Age %q, want the origin's 3500 plus the 60 s stored", resp.Header.Get("Age"))
	}
	h.advance(60 * time.Second) // 3620 s old: stale
	before := h.origin.Requests()
	resp, body = h.get(t, path, "Range: bytes=0-9")
	if h.origin.Requests() != before+1 || h.edge.Counters().NotModified != 1 {
		t.Errorf("an answer past its max-age, counting the origin's Age, was not revalidated: %d origin requests, counters %+v",
			h.origin.Requests()-before, h.edge.Counters())
	}
	// The 304 is 3500 s old too: the refreshed object's age starts there.
	if age, _ := strconv.Atoi(resp.Header.Get("Age")); age < 3500 || age > 3505 {
		t.Errorf("Age after the revalidation %q, want the 304's 3500", resp.Header.Get("Age"))
	}
	wantBytes(t, "revalidated", body, path, 1, 0)
}

// no-cache: stored, but never served without revalidating, not even
// inside a stale-while-revalidate window (RFC 9111 §5.2.2.4).
func TestNoCacheAlwaysRevalidates(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/1MiB.bin"
	h.origin.SetMode(ccMode("no-cache, stale-while-revalidate=600"))
	h.warm(t, path)
	if st := h.store.Stats(); st.Objects != 1 {
		t.Fatalf("a no-cache answer was not stored: %d objects", st.Objects)
	}
	h.origin.Bump(path)
	before := h.origin.Requests()
	resp, body := h.get(t, path, "Range: bytes=0-9")
	if resp.Header.Get("ETag") != origintest.ETag(path, 2) || h.origin.Requests() == before {
		t.Fatalf("no-cache with stale-while-revalidate served without revalidation: ETag %q, Cache-Status %q",
			resp.Header.Get("ETag"), resp.Header.Get("Cache-Status"))
	}
	wantBytes(t, "new version", body, path, 2, 0)
}

// After a 304, Expires counts from the 304's Date, not from the edge's
// clock (RFC 9111 §4.2.1, §4.3.4): an origin whose clock is behind the
// edge's still gets its full Expires window.
func TestExpiresAfterRevalidationCountsFromDate(t *testing.T) {
	h := newHarness(t)
	const path = "/noheur/1MiB.bin"
	h.origin.SetMode(ccMode(""))
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Expires", time.Now().Add(10*time.Minute).UTC().Format(http.TimeFormat))
		return false
	})
	h.warm(t, path)
	h.advance(11 * time.Minute) // the edge's clock is now 11 minutes ahead of the origin's
	before := h.origin.Requests()
	resp, body := h.get(t, path, "Range: bytes=0-9")
	wantBytes(t, "revalidated", body, path, 1, 0)
	if h.origin.Requests() != before+1 || h.edge.Counters().NotModified != 1 {
		t.Fatalf("expired object not revalidated: %d origin requests, Cache-Status %q", h.origin.Requests()-before, resp.Header.Get("Cache-Status"))
	}
	resp, body = h.get(t, path, "Range: bytes=0-9")
	wantBytes(t, "after the 304", body, path, 1, 0)
	if resp.Header.Get("X-Cache") != "HIT" || h.origin.Requests() != before+1 {
		t.Errorf("right after a 304 with Expires 10 minutes past its Date: X-Cache %q, Cache-Status %q, %d more origin requests; want a fresh hit",
			resp.Header.Get("X-Cache"), resp.Header.Get("Cache-Status"), h.origin.Requests()-before-1)
	}
}

// A directive given twice counts the first time (RFC 9111 §4.2.1).
func TestRepeatedDirectiveFirstCounts(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/1MiB.bin"
	h.origin.SetMode(ccMode("max-age=60, max-age=3600"))
	h.warm(t, path)
	h.advance(61 * time.Second)
	before := h.origin.Requests()
	_, body := h.get(t, path, "Range: bytes=0-9")
	wantBytes(t, "after 61 s", body, path, 1, 0)
	if h.origin.Requests() != before+1 {
		t.Errorf("max-age=60, max-age=3600: 61 s later %d origin requests, want a revalidation", h.origin.Requests()-before)
	}
}

// Requests for a stale object wait for the one revalidation in flight,
// and are counted as collapsed lookups.
func TestStaleRequestsShareRevalidation(t *testing.T) {
	h := newHarness(t)
	const path, n = "/obj/2MiB.bin", 10
	h.origin.SetMode(ccMode("max-age=60"))
	h.warm(t, path)
	h.advance(61 * time.Second)
	gate := make(chan struct{})
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		<-gate
		return false
	})
	before := h.origin.Requests()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := int64(i) * 100_000
			resp, err := h.try("GET", path, "Range: bytes="+itoa(start)+"-"+itoa(start+999))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if n, err := verifyStream(resp.Body, path, 1, start); err != nil || n != 1000 {
				t.Errorf("request %d: %d bytes, %v", i, n, err)
			}
		}()
	}
	origintest.WaitFor(t, "the other requests to wait for the revalidation", func() bool { return waitingInSingleflight() == n-1 })
	close(gate)
	wg.Wait()
	if got := h.origin.Requests() - before; got != 1 {
		t.Errorf("%d origin requests for %d requests of a stale object, want 1", got, n)
	}
	if got := h.edge.Counters().LookupsCollapsed; got != n-1 {
		t.Errorf("%d lookups counted as collapsed, want %d", got, n-1)
	}
}

// waitingInSingleflight counts the goroutines waiting for another's call
// in a singleflight.Group: requests collapsed on a lookup in flight.
func waitingInSingleflight() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	waiting := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sync.(*WaitGroup).Wait") && strings.Contains(g, "singleflight.(*Group).Do") {
			waiting++
		}
	}
	return waiting
}
