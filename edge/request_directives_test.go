package edge_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// Request Cache-Control directives (RFC 9111 §5.2.1) through real HTTP:
// under /honor/ the rule says client_cache_control: honor; every other
// rule of testConfig ignores them (the default), but for only-if-cached.

// honorRules adds to testConfig a rule /honor/ that honours the client's
// Cache-Control.
var honorRules = edited("  - match: /swr/\n", `  - match: /honor/
    origin: default
    client_cache_control: honor
  - match: /swr/
`)

// rdGet GETs bytes [1000, 1100) of path with headers, checks them against
// version ver, and returns the answer and the origin requests it cost.
func (h *harness) rdGet(t *testing.T, path string, ver int, headers ...string) (*http.Response, int64) {
	t.Helper()
	before := h.origin.PathRequests(path)
	resp := h.dirRange(t, path, ver, 1000, 100, headers...)
	return resp, h.origin.PathRequests(path) - before
}

// wantHit fails t unless resp came from the store without the origin.
func wantHit(t *testing.T, what string, resp *http.Response, origin int64) {
	t.Helper()
	if x := resp.Header.Get("X-Cache"); x != "HIT" || origin != 0 {
		t.Fatalf("%s: X-Cache %q, %d origin requests; want a hit with none (Cache-Status %q)", what, x, origin, resp.Header.Get("Cache-Status"))
	}
}

// wantForced fails t unless resp cost one origin request, a revalidation
// of the stored version 1 answered 304, sent because the request's
// directives did not accept a fresh stored object (RFC 9211 §2.2
// fwd=request).
func wantForced(t *testing.T, h *harness, what, path string, resp *http.Response, origin int64) {
	t.Helper()
	if origin != 1 {
		t.Fatalf("%s: %d origin requests, want 1 revalidation (Cache-Status %q)", what, origin, resp.Header.Get("Cache-Status"))
	}
	recs := h.origin.LastRequests()
	if last := recs[len(recs)-1]; last.IfNoneMatch != origintest.ETag(path, 1) {
		t.Errorf("%s: the origin request had If-None-Match %q, want the stored ETag", what, last.IfNoneMatch)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=request; fwd-status=304") {
		t.Errorf("%s: Cache-Status %q, want fwd=request; fwd-status=304", what, cs)
	}
}

// RFC 9111 §5.2.1.1: max-age=N makes a stored answer older than N seconds
// unusable until it is revalidated; ignored by default.
func TestRequestMaxAge(t *testing.T) {
	h := newHarnessWith(t, setup{Config: honorRules})
	const path, ignored = "/honor/1MiB.bin", "/obj/1MiB.bin" // origin: max-age=3600
	h.warm(t, path)
	h.warm(t, ignored)
	h.advance(100 * time.Second)

	resp, n := h.rdGet(t, path, 1, "Cache-Control: max-age=200")
	wantHit(t, "100 s old, max-age=200", resp, n)
	resp, n = h.rdGet(t, path, 1, "Cache-Control: max-age=50")
	wantForced(t, h, "100 s old, max-age=50", path, resp, n)
	if age, _ := strconv.Atoi(resp.Header.Get("Age")); age > 1 {
		t.Errorf("after the revalidation: Age %q, want 0", resp.Header.Get("Age"))
	}
	resp, n = h.rdGet(t, path, 1, "Cache-Control: max-age=50")
	wantHit(t, "right after the 304, max-age=50", resp, n)
	for i := range 2 {
		resp, n = h.rdGet(t, path, 1, "Cache-Control: max-age=0")
		wantForced(t, h, "max-age=0, request "+strconv.Itoa(i), path, resp, n)
	}
	resp, n = h.rdGet(t, path, 1)
	wantHit(t, "without directives", resp, n)

	resp, n = h.rdGet(t, ignored, 1, "Cache-Control: max-age=0")
	wantHit(t, "client_cache_control: ignore, max-age=0", resp, n)
}

// RFC 9111 §5.2.1.3: min-fresh=N wants N more seconds of freshness.
func TestRequestMinFresh(t *testing.T) {
	h := newHarnessWith(t, setup{Config: honorRules})
	const path, ignored = "/honor/1MiB.bin", "/obj/1MiB.bin"
	h.warm(t, path)
	h.warm(t, ignored)
	h.advance(3000 * time.Second) // 600 s of max-age=3600 left

	resp, n := h.rdGet(t, path, 1, "Cache-Control: min-fresh=500")
	wantHit(t, "600 s left, min-fresh=500", resp, n)
	resp, n = h.rdGet(t, path, 1, "Cache-Control: min-fresh=700")
	wantForced(t, h, "600 s left, min-fresh=700", path, resp, n)
	resp, n = h.rdGet(t, path, 1, "Cache-Control: min-fresh=700")
	wantHit(t, "3600 s left after the 304, min-fresh=700", resp, n)

	resp, n = h.rdGet(t, ignored, 1, "Cache-Control: min-fresh=700")
	wantHit(t, "client_cache_control: ignore, min-fresh=700", resp, n)
}

// RFC 9111 §5.2.1.2: max-stale[=N] accepts a stale answer (stale by at
// most N) without revalidation, unless the object forbids serving it
// stale (must-revalidate, §4.2.4); ignored by default.
func TestRequestMaxStale(t *testing.T) {
	t.Run("honor", func(t *testing.T) {
		h := newHarnessWith(t, setup{Config: honorRules})
		const path = "/honor/1MiB.bin"
		h.origin.SetMode(ccMode("max-age=60"))
		h.warm(t, path)
		h.advance(90 * time.Second) // stale by 30 s

		resp, n := h.rdGet(t, path, 1, "Cache-Control: max-stale=60")
		if n != 0 || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=max-stale") {
			t.Fatalf("stale by 30 s, max-stale=60: %d origin requests, Cache-Status %q; want the stored answer",
				n, resp.Header.Get("Cache-Status"))
		}
		if age, _ := strconv.Atoi(resp.Header.Get("Age")); age < 90 || age > 91 {
			t.Errorf("stale answer: Age %q, want 90", resp.Header.Get("Age"))
		}
		_, n = h.rdGet(t, path, 1, "Cache-Control: max-stale=10")
		if n != 1 || h.edge.Counters().NotModified != 1 {
			t.Fatalf("stale by 30 s, max-stale=10: %d origin requests, counters %+v; want one revalidation", n, h.edge.Counters())
		}
		h.advance(24 * time.Hour)
		resp, n = h.rdGet(t, path, 1, "Cache-Control: max-stale")
		if n != 0 || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=max-stale") {
			t.Errorf("stale by a day, max-stale without a limit: %d origin requests, Cache-Status %q; want the stored answer",
				n, resp.Header.Get("Cache-Status"))
		}
		_, n = h.rdGet(t, path, 1, "Cache-Control: max-stale, max-age=60")
		if n != 1 {
			t.Errorf("a day old, max-stale with max-age=60: %d origin requests, want one revalidation", n)
		}
	})
	t.Run("must-revalidate", func(t *testing.T) {
		h := newHarnessWith(t, setup{Config: honorRules})
		const path = "/honor/1MiB.bin"
		h.origin.SetMode(ccMode("max-age=60, must-revalidate"))
		h.warm(t, path)
		h.advance(90 * time.Second)
		if _, n := h.rdGet(t, path, 1, "Cache-Control: max-stale=600"); n != 1 {
			t.Errorf("must-revalidate, max-stale=600: %d origin requests, want one revalidation", n)
		}
	})
	t.Run("ignore", func(t *testing.T) {
		h := newHarness(t)
		const path = "/obj/1MiB.bin"
		h.origin.SetMode(ccMode("max-age=60"))
		h.warm(t, path)
		h.advance(90 * time.Second)
		if _, n := h.rdGet(t, path, 1, "Cache-Control: max-stale=600"); n != 1 {
			t.Errorf("client_cache_control: ignore, max-stale=600: %d origin requests, want one revalidation", n)
		}
	})
}

// RFC 9111 §5.2.1.4: no-cache revalidates a fresh stored answer first; a
// changed object is then served new. With the origin down, the stored
// answer, fresh by its own terms, is served rather than an error.
// Ignored by default.
func TestRequestNoCache(t *testing.T) {
	h := newHarnessWith(t, setup{Config: honorRules})
	const path, ignored = "/honor/1MiB.bin", "/obj/1MiB.bin"
	h.warm(t, path)
	h.warm(t, ignored)

	resp, n := h.rdGet(t, path, 1, "Cache-Control: no-cache")
	wantForced(t, h, "fresh, no-cache", path, resp, n)
	resp, n = h.rdGet(t, path, 1)
	wantHit(t, "fresh, no directive", resp, n)

	h.origin.Bump(path)
	h.origin.Bump(ignored)
	resp, n = h.rdGet(t, path, 2, "Cache-Control: no-cache")
	if n != 1 || resp.Header.Get("ETag") != origintest.ETag(path, 2) {
		t.Fatalf("changed at the origin, no-cache: %d origin requests, ETag %q; want the new version", n, resp.Header.Get("ETag"))
	}
	h.settle(t)
	resp, n = h.rdGet(t, path, 2)
	wantHit(t, "the new version, stored", resp, n)
	resp, n = h.rdGet(t, ignored, 1, "Cache-Control: no-cache")
	wantHit(t, "client_cache_control: ignore, no-cache: the stored version", resp, n)

	h.stopOrigin()
	resp, n = h.rdGet(t, path, 2, "Cache-Control: no-cache")
	if cs := resp.Header.Get("Cache-Status"); n != 0 || !strings.Contains(cs, "fwd=request") || !strings.Contains(cs, "detail=origin-error") {
		t.Errorf("origin down, no-cache: Cache-Status %q; want the stored answer, saying the request went forward and failed", cs)
	}
}

// RFC 9111 §5.2.1.5: no-store. What the store holds fresh answers it;
// anything else is passed through, and nothing it fetches is stored.
// Ignored by default.
func TestRequestNoStore(t *testing.T) {
	h := newHarnessWith(t, setup{Config: honorRules})
	const path = "/honor/1MiB.bin"
	resp, n := h.rdGet(t, path, 1, "Cache-Control: no-store")
	if resp.Header.Get("X-Cache") != "PASS" || n != 1 {
		t.Fatalf("unknown, no-store: X-Cache %q, %d origin requests; want one pass-through", resp.Header.Get("X-Cache"), n)
	}
	h.settle(t)
	if st := h.store.Stats(); st.Objects != 0 || st.Slices != 0 {
		t.Fatalf("after a no-store request the store holds %d objects, %d slices; want none", st.Objects, st.Slices)
	}

	h.warm(t, path)
	resp, n = h.rdGet(t, path, 1, "Cache-Control: no-store")
	wantHit(t, "fresh, no-store", resp, n)

	h.advance(3601 * time.Second)
	resp, n = h.rdGet(t, path, 1, "Cache-Control: no-store")
	if resp.Header.Get("X-Cache") != "PASS" || n != 1 || h.edge.Counters().NotModified != 0 {
		t.Fatalf("stale, no-store: X-Cache %q, %d origin requests, counters %+v; want one pass-through and no revalidation",
			resp.Header.Get("X-Cache"), n, h.edge.Counters())
	}
	// The stored object was not refreshed by it: the next request
	// revalidates.
	h.dirExpectRevalidation(t, "stale, without directives", path)

	const ignored = "/obj/1MiB.bin"
	resp, _ = h.rdGet(t, ignored, 1, "Cache-Control: no-store")
	h.settle(t)
	if resp.Header.Get("X-Cache") == "PASS" || h.store.Stats().Objects != 2 {
		t.Errorf("client_cache_control: ignore, no-store: X-Cache %q, %d objects stored; want the answer stored",
			resp.Header.Get("X-Cache"), h.store.Stats().Objects)
	}
}

// RFC 9111 §5.2.1.7: only-if-cached is answered from the store or with
// 504, and never costs an origin request: not for an unknown object, a
// slice not stored, a stale one, a pass-through; in both modes.
func TestRequestOnlyIfCached(t *testing.T) {
	const oic = "Cache-Control: only-if-cached"
	for _, dir := range []string{"/obj/", "/honor/"} {
		t.Run(strings.Trim(dir, "/"), func(t *testing.T) {
			h := newHarnessWith(t, setup{Config: honorRules})
			path := dir + "4MiB.bin" // 1 MiB slices
			want504 := func(what string, resp *http.Response, body []byte) {
				t.Helper()
				if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=only-if-cached") {
					t.Errorf("%s: status %d, Cache-Status %q; want 504 only-if-cached (%q)", what, resp.StatusCode, resp.Header.Get("Cache-Status"), body)
				}
			}
			resp, body := h.get(t, path, oic)
			want504("unknown", resp, body)

			h.dirRange(t, path, 1, 0, 100) // slice 0 only
			h.settle(t)
			before := h.origin.PathRequests(path)

			resp = h.dirRange(t, path, 1, 100, 100, oic)
			if resp.Header.Get("X-Cache") != "HIT" {
				t.Errorf("a stored slice: X-Cache %q, want HIT", resp.Header.Get("X-Cache"))
			}
			resp, body = h.get(t, path, oic, "Range: bytes=2097157-2097200")
			want504("a slice not stored", resp, body)
			resp, body = h.get(t, path, oic, "Range: bytes=0-99,3145728-3145827")
			want504("two ranges, one not stored", resp, body)
			resp, body = h.get(t, path, oic)
			want504("the whole object, one slice of four stored", resp, body)
			resp, _ = h.do(t, http.MethodHead, path, oic)
			if resp.StatusCode != http.StatusOK || resp.ContentLength != 4*MiB {
				t.Errorf("HEAD: status %d, Content-Length %d; want 200 from the meta", resp.StatusCode, resp.ContentLength)
			}
			resp, _ = h.get(t, path, oic, "If-None-Match: "+origintest.ETag(path, 1))
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match of the stored version: status %d, want 304", resp.StatusCode)
			}
			resp, _ = h.get(t, path, oic, "Range: bytes=5000000-")
			if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
				t.Errorf("a range past the end: status %d, want 416 from the meta", resp.StatusCode)
			}
			h.advance(3601 * time.Second)
			resp, body = h.get(t, path, oic, "Range: bytes=0-99")
			want504("stale", resp, body)
			if dir == "/honor/" {
				resp = h.dirRange(t, path, 1, 0, 100, oic+", max-stale")
				if !strings.Contains(resp.Header.Get("Cache-Status"), "detail=max-stale") {
					t.Errorf("stale, only-if-cached with max-stale: Cache-Status %q, want the stored answer", resp.Header.Get("Cache-Status"))
				}
			}
			if got := h.origin.PathRequests(path) - before; got != 0 {
				t.Errorf("only-if-cached requests cost %d origin requests, want 0", got)
			}

			// Requests the edge passes through.
			nostore := dir + "1MiB-nostore.bin"
			h.origin.SetPathMode(nostore, ccMode("no-store"))
			h.dirRange(t, nostore, 1, 0, 100) // remembered as uncacheable
			for _, c := range []struct {
				what, method, path string
				headers            []string
			}{
				{"uncacheable", http.MethodGet, nostore, nil},
				{"a cookie", http.MethodGet, path, []string{"Cookie: a=b"}},
				{"POST", http.MethodPost, path, nil},
			} {
				before := h.origin.Requests()
				resp, body = h.do(t, c.method, c.path, append(c.headers, oic)...)
				want504(c.what, resp, body)
				if got := h.origin.Requests() - before; got != 0 {
					t.Errorf("%s: %d origin requests, want 0", c.what, got)
				}
			}
		})
	}
}

// RFC 9111 §5.2.1.7 with RFC 5861 §3: a stale object inside its
// stale-while-revalidate window answers only-if-cached, and starts no
// revalidation.
func TestRequestOnlyIfCachedStaleWhileRevalidate(t *testing.T) {
	h := newHarness(t)
	const path = "/swr/1MiB.bin"
	h.origin.SetMode(ccMode("max-age=60"))
	h.warm(t, path)
	h.advance(61 * time.Second)
	before := h.origin.PathRequests(path)
	resp := h.dirRange(t, path, 1, 0, 100, "Cache-Control: only-if-cached")
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=stale-while-revalidate") {
		t.Fatalf("Cache-Status %q, want a stale answer inside the window", cs)
	}
	time.Sleep(200 * time.Millisecond) // a background revalidation would have reached the origin
	if got := h.origin.PathRequests(path) - before; got != 0 {
		t.Errorf("%d origin requests, want none", got)
	}
}
