package edge_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// targetedRules adds to testConfig a rule that forwards the targeted
// fields to clients and one whose own targeted field is X-Edge-Control.
var targetedRules = edited("  - match: /swr/\n", `  - match: /fwd/
    origin: default
    forward_targeted_cache_control: true
  - match: /own/
    origin: default
    targeted_cache_control: X-Edge-Control
  - match: /swr/
`)

// addHeaders makes the origin send the given "Name: value" headers with
// every answer, 304s included, unless only says otherwise.
func addHeaders(h *harness, only func(r *http.Request) bool, headers ...string) {
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if only == nil || only(r) {
			for _, kv := range headers {
				k, v, _ := strings.Cut(kv, ":")
				w.Header().Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		return false
	})
}

// noTargeted fails t if an answer to a client carries a targeted field
// the edge follows.
func noTargeted(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	for _, k := range []string{"CDN-Cache-Control", "Sliceedge-Cache-Control"} {
		if v := resp.Header.Values(k); len(v) > 0 {
			t.Errorf("%s: the client got %s: %q (X-Cache %q)", what, k, v, resp.Header.Get("X-Cache"))
		}
	}
}

// RFC 9213 §3.1: "CDN-Cache-Control: max-age=600" with "Cache-Control:
// no-store" is cached by the edge for 600 s, and no client sees the
// targeted field; a 304 without it keeps the stored one's terms (RFC 9111
// §4.3.4).
func TestTargetedCacheControlStores(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/1MiB.bin"
	h.origin.SetMode(ccMode("no-store"))
	// The 304s say only Cache-Control: no-store: the stored
	// CDN-Cache-Control must still decide.
	addHeaders(h, func(r *http.Request) bool { return r.Header.Get("If-None-Match") == "" }, "CDN-Cache-Control: max-age=600")

	resp, body := h.get(t, path)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("first GET: status %d, X-Cache %q; want a 200 miss", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	wantBytes(t, "miss", body, path, 1, 0)
	noTargeted(t, "the miss", resp)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("the miss: Cache-Control %q, want the origin's no-store for browsers", cc)
	}
	h.settle(t)
	if st := h.store.Stats(); st.Objects != 1 || st.Slices != 1 {
		t.Fatalf("store holds %d objects, %d slices; want the object stored under CDN-Cache-Control", st.Objects, st.Slices)
	}

	h.advance(599 * time.Second)
	before := h.origin.PathRequests(path)
	resp = h.dirRange(t, path, 1, 1000, 100)
	if resp.Header.Get("X-Cache") != "HIT" || h.origin.PathRequests(path) != before {
		t.Fatalf("599 s in: X-Cache %q, %d origin requests; want a hit", resp.Header.Get("X-Cache"), h.origin.PathRequests(path)-before)
	}
	noTargeted(t, "the hit", resp)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("the hit: Cache-Control %q, want the origin's no-store", cc)
	}

	h.advance(2 * time.Second) // 601 s: stale
	h.dirExpectRevalidation(t, "601 s in", path)
	h.settle(t)
	if st := h.store.Stats(); st.Objects != 1 {
		t.Fatalf("after a 304 saying Cache-Control: no-store alone, the store holds %d objects; want the object kept", st.Objects)
	}
	h.advance(599 * time.Second)
	h.dirExpectHit(t, "599 s after the 304", path)
}

// RFC 9213 §3.1 the other way: "CDN-Cache-Control: no-store" with
// "Cache-Control: max-age=600" is not stored, and passed-through answers
// (the first streamed from its discovery, the next passed as a whole) do
// not show the targeted field either.
func TestTargetedCacheControlNoStore(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/1MiB.bin"
	h.origin.SetMode(ccMode("max-age=600"))
	addHeaders(h, nil, "CDN-Cache-Control: no-store")
	for i, rng := range []string{"", "bytes=100-199", ""} {
		var hdr []string
		start := int64(0)
		if rng != "" {
			hdr, start = []string{"Range: " + rng}, 100
		}
		resp, body := h.get(t, path, hdr...)
		if resp.StatusCode/100 != 2 || resp.Header.Get("X-Cache") != "PASS" {
			t.Fatalf("request %d: status %d, X-Cache %q; want a pass-through", i, resp.StatusCode, resp.Header.Get("X-Cache"))
		}
		wantBytes(t, "pass-through", body, path, 1, start)
		noTargeted(t, "pass-through "+itoa(int64(i)), resp)
		if cc := resp.Header.Get("Cache-Control"); cc != "max-age=600" {
			t.Errorf("request %d: Cache-Control %q, want the origin's", i, cc)
		}
	}
	h.settle(t)
	if st := h.store.Stats(); st.Objects != 0 || st.Slices != 0 {
		t.Errorf("store holds %d objects, %d slices of an answer whose CDN-Cache-Control says no-store", st.Objects, st.Slices)
	}
	if got := h.origin.PathRequests(path); got != 3 {
		t.Errorf("%d origin requests for 3 pass-throughs, want 3", got)
	}
}

// RFC 9213 §2.1: the target list is Sliceedge-Cache-Control, then
// CDN-Cache-Control; the first valid one wins and an invalid one is
// skipped.
func TestTargetedCacheControlOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []string
		fresh   time.Duration // fresh this long, stale after
	}{
		{"Sliceedge-Cache-Control over CDN-Cache-Control", []string{"CDN-Cache-Control: no-store", "Sliceedge-Cache-Control: max-age=300"}, 300 * time.Second},
		{"an invalid Sliceedge-Cache-Control yields to CDN-Cache-Control", []string{"CDN-Cache-Control: max-age=200", "Sliceedge-Cache-Control: max-age=300,"}, 200 * time.Second},
		{"an invalid CDN-Cache-Control yields to Cache-Control", []string{"CDN-Cache-Control: Max-Age=600"}, 60 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			const path = "/obj/1MiB.bin"
			h.origin.SetMode(ccMode("max-age=60"))
			addHeaders(h, nil, tc.headers...)
			h.warm(t, path)
			h.advance(tc.fresh - time.Second)
			h.dirExpectHit(t, "a second before the lifetime ends", path)
			resp := h.dirRange(t, path, 1, 0, 10)
			noTargeted(t, tc.name, resp)
			h.advance(2 * time.Second)
			h.dirExpectRevalidation(t, "a second after", path)
		})
	}
}

// forward_targeted_cache_control: true sends both fields on to clients;
// a rule whose own field is X-Edge-Control neither follows nor removes
// Sliceedge-Cache-Control (RFC 9213 §2.1: a field not on the target list
// changes nothing and is passed on).
func TestTargetedCacheControlForwarding(t *testing.T) {
	h := newHarnessWith(t, setup{Config: targetedRules})
	h.origin.SetMode(ccMode("max-age=60"))
	addHeaders(h, nil, "CDN-Cache-Control: max-age=600", "Sliceedge-Cache-Control: max-age=300", "X-Edge-Control: max-age=120")

	const fwd = "/fwd/1MiB.bin"
	h.warm(t, fwd)
	resp := h.dirRange(t, fwd, 1, 0, 100)
	if resp.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("%s: X-Cache %q, want a hit", fwd, resp.Header.Get("X-Cache"))
	}
	if a, b := resp.Header.Get("CDN-Cache-Control"), resp.Header.Get("Sliceedge-Cache-Control"); a != "max-age=600" || b != "max-age=300" {
		t.Errorf("%s: CDN-Cache-Control %q, Sliceedge-Cache-Control %q; want both forwarded", fwd, a, b)
	}

	const own = "/own/1MiB.bin"
	h.warm(t, own)
	h.advance(119 * time.Second)
	h.dirExpectHit(t, own+" 119 s in (X-Edge-Control: max-age=120)", own)
	resp = h.dirRange(t, own, 1, 0, 100)
	if got := resp.Header.Get("Sliceedge-Cache-Control"); got != "max-age=300" {
		t.Errorf("%s: Sliceedge-Cache-Control %q, want it passed on: it is not on this rule's target list", own, got)
	}
	for _, k := range []string{"X-Edge-Control", "CDN-Cache-Control"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("%s: the client got %s: %q", own, k, v)
		}
	}
	h.advance(2 * time.Second)
	h.dirExpectRevalidation(t, own+" 121 s in", own)
}

// An origin answer the edge relays as it came (a 404) loses the targeted
// fields too.
func TestTargetedCacheControlRelayed(t *testing.T) {
	h := newHarness(t)
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("CDN-Cache-Control", "max-age=60")
		w.Header().Set("Sliceedge-Cache-Control", "max-age=60")
		w.Header().Set("Cache-Control", "max-age=5")
		http.NotFound(w, r)
		return true
	})
	resp, _ := h.get(t, "/obj/missing.bin")
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cache-Control") != "max-age=5" {
		t.Fatalf("status %d, Cache-Control %q; want the origin's 404 relayed", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	noTargeted(t, "a relayed 404", resp)
	if got := h.origin.Requests(); got != 0 {
		t.Errorf("the hook answered, but the origin saw %d requests", got)
	}
}
