package edge_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// varyingOrigin makes the test origin vary on Accept-Language (RFC 9111
// §4.1): a request with "fr" gets the bytes of the object at path+".fr",
// any other the object at path; every answer says Vary: Accept-Language.
// It accepts POSTs, and counts the requests it sees.
func varyingOrigin(h *harness, vary string) *atomic.Int64 {
	var n atomic.Int64
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		n.Add(1)
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusNoContent) // an update the origin accepts
			return true
		}
		if strings.TrimSpace(r.Header.Get("Accept-Language")) == "fr" {
			r.URL.Path += ".fr"
		}
		h.origin.Handler().ServeHTTP(&headerSetter{ResponseWriter: w, set: http.Header{"Vary": {vary}}}, r)
		return true
	})
	return &n
}

// TestVaryVariants: one variant per set of values of the request fields
// Vary names, normalised (RFC 9111 §4.1), each stored and sliced like any
// object; the fetches of a variant carry the client's values of those
// fields; a purge of the URL removes every variant.
func TestVaryVariants(t *testing.T) {
	h := newHarness(t)
	const path = "/vary/a.bin"
	h.origin.Add(path, 3*MiB)
	h.origin.Add(path+".fr", 3*MiB)
	asked := varyingOrigin(h, "Accept-Language")
	for _, tc := range []struct {
		lang   string // "" sends none
		cache  string
		origin int64 // origin requests so far
		bytes  string
	}{
		// The first answer reveals the Vary; the fetch carried no
		// Accept-Language, so it was not this client's: its own request
		// went to the origin too (the one miss that costs two).
		{"fr", "PASS", 2, path + ".fr"},
		{"fr", "MISS", 3, path + ".fr"},
		{"fr", "HIT", 3, path + ".fr"},
		{" fr ", "HIT", 3, path + ".fr"}, // the same value, normalised
		{"en", "MISS", 4, path},
		{"en", "HIT", 4, path},
		{"", "MISS", 5, path},
		{"", "HIT", 5, path},
	} {
		var hdr []string
		if tc.lang != "" {
			hdr = []string{"Accept-Language: " + tc.lang}
		}
		resp, body := h.get(t, path, hdr...)
		what := "Accept-Language " + tc.lang
		if resp.StatusCode != 200 || int64(len(body)) != 3*MiB {
			t.Fatalf("%s: status %d, %d bytes", what, resp.StatusCode, len(body))
		}
		wantBytes(t, what, body, tc.bytes, 1, 0)
		if got := resp.Header.Get("X-Cache"); got != tc.cache {
			t.Errorf("%s: X-Cache %q, want %s (Cache-Status %q)", what, got, tc.cache, resp.Header.Get("Cache-Status"))
		}
		h.settle(t)
		if got := asked.Load(); got != tc.origin {
			t.Fatalf("%s: the origin saw %d requests, want %d", what, got, tc.origin)
		}
	}
	// A range of a variant is filled from that variant's fetches.
	resp, body := h.get(t, path, "Accept-Language: fr", "Range: bytes=2000000-2000099")
	if resp.StatusCode != 206 {
		t.Fatalf("range of the fr variant: status %d", resp.StatusCode)
	}
	wantBytes(t, "range of the fr variant", body, path+".fr", 1, 2000000)

	var in map[string]any
	if code := h.admin(t, "POST", "/purge", url.Values{"url": {"http://edge.test" + path}}, &in); code != 200 {
		t.Fatalf("purge: status %d", code)
	}
	if st := h.store.Stats(); st.Objects != 0 || st.Slices != 0 {
		t.Errorf("after a purge of the URL the store holds %d objects, %d slices; want every variant gone", st.Objects, st.Slices)
	}
	before := asked.Load()
	resp, body = h.get(t, path, "Accept-Language: fr")
	wantBytes(t, "after the purge", body, path+".fr", 1, 0)
	if resp.Header.Get("X-Cache") == "HIT" || asked.Load() == before {
		t.Errorf("after the purge: X-Cache %q, the origin asked %d times; want a miss", resp.Header.Get("X-Cache"), asked.Load()-before)
	}
}

// TestVaryBounded: a rule stores at most max_variants variants of a URL;
// the others pass through, served right but not stored. Vary: * is never
// stored (RFC 9111 §4.1).
func TestVaryBounded(t *testing.T) {
	h := newHarness(t)
	const path = "/vary2/b.bin" // max_variants: 2
	h.origin.Add(path, MiB)
	h.origin.Add(path+".fr", MiB)
	varyingOrigin(h, "Accept-Language")
	h.get(t, path) // learns the Vary
	for _, lang := range []string{"de", "it", "es", "es"} {
		resp, body := h.get(t, path, "Accept-Language: "+lang)
		wantBytes(t, lang, body, path, 1, 0)
		want := "MISS"
		if lang == "es" {
			want = "PASS" // the third variant
		}
		if got := resp.Header.Get("X-Cache"); got != want {
			t.Errorf("%s: X-Cache %q, want %s (Cache-Status %q)", lang, got, want, resp.Header.Get("Cache-Status"))
		}
	}

	h2 := newHarness(t)
	const star = "/vary/star.bin"
	h2.origin.Add(star, MiB)
	varyingOrigin(h2, "*")
	for range 3 {
		resp, body := h2.get(t, star)
		wantBytes(t, "Vary: *", body, star, 1, 0)
		if resp.Header.Get("X-Cache") != "PASS" {
			t.Errorf("Vary: *: X-Cache %q, want PASS", resp.Header.Get("X-Cache"))
		}
	}
	h2.settle(t)
	if st := h2.store.Stats(); st.Objects != 0 {
		t.Errorf("the store holds %d objects of a Vary: * answer", st.Objects)
	}
}

// TestVaryInvalidated: an unsafe request that succeeds invalidates every
// variant of its URL (RFC 9111 §4.4).
func TestVaryInvalidated(t *testing.T) {
	h := newHarness(t)
	const path = "/vary/c.bin"
	h.origin.Add(path, MiB)
	h.origin.Add(path+".fr", MiB)
	varyingOrigin(h, "Accept-Language")
	for _, lang := range []string{"en", "en", "fr", "de"} {
		h.get(t, path, "Accept-Language: "+lang)
	}
	h.settle(t)
	if st := h.store.Stats(); st.Objects != 4 { // the marker and three variants
		t.Fatalf("the store holds %d objects, want the marker and 3 variants", st.Objects)
	}
	resp, _ := h.do(t, http.MethodPost, path)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST: status %d", resp.StatusCode)
	}
	h.settle(t)
	if st := h.store.Stats(); st.Objects != 0 {
		t.Errorf("after a POST the store holds %d objects; want none", st.Objects)
	}
	// The marker went with the URL's key: the Vary is learnt again.
	for _, want := range []string{"PASS", "MISS", "HIT"} {
		resp, body := h.get(t, path, "Accept-Language: fr")
		wantBytes(t, "after the POST", body, path+".fr", 1, 0)
		if resp.Header.Get("X-Cache") != want {
			t.Errorf("after the POST: X-Cache %q, want %s", resp.Header.Get("X-Cache"), want)
		}
		h.settle(t)
	}
}

// TestForwardHeaders: a rule's forward_headers reach the origin on cached
// fetches, the discovery and the fills after it; no other client header
// does.
func TestForwardHeaders(t *testing.T) {
	h := newHarness(t)
	const path = "/fwdh/a.bin"
	h.origin.Add(path, 3*MiB)
	for _, start := range []int64{0, 2 * MiB} {
		rng := fmt.Sprintf("bytes=%d-%d", start, start+9)
		resp, body := h.get(t, path, "Range: "+rng, "X-Device: tv", "X-Other: secret")
		if resp.StatusCode != 206 {
			t.Fatalf("%s: status %d", rng, resp.StatusCode)
		}
		wantBytes(t, rng, body, path, 1, start)
	}
	h.settle(t)
	recs := h.origin.LastRequests()
	if len(recs) != 2 {
		t.Fatalf("the origin saw %d requests, want the discovery and one fill", len(recs))
	}
	for i, r := range recs {
		if got := r.Header.Get("X-Device"); got != "tv" {
			t.Errorf("origin request %d: X-Device %q, want the client's", i, got)
		}
		if got := r.Header.Get("X-Other"); got != "" {
			t.Errorf("origin request %d: X-Other %q reached the origin", i, got)
		}
	}
}

// TestVaryForwardedField: when the discovery already carried the client's
// value of the field the answer varies on (here through the rule's
// forward_headers), the first answer is the client's own: one origin
// request, not two (RFC 9111 §4.1: the answer's Vary fields match the
// request that made it). The next request of that variant stores it.
func TestVaryForwardedField(t *testing.T) {
	h := newHarness(t)
	const path = "/fwdh/varies.bin" // forward_headers: [X-Device]
	h.origin.Add(path, 2*MiB)
	asked := varyingOrigin(h, "X-Device")
	for i, want := range []struct {
		cache  string
		origin int64
	}{{"PASS", 1}, {"MISS", 2}, {"HIT", 2}} {
		resp, body := h.get(t, path, "X-Device: tv")
		what := fmt.Sprintf("request %d", i)
		if resp.StatusCode != 200 || int64(len(body)) != 2*MiB {
			t.Fatalf("%s: status %d, %d bytes", what, resp.StatusCode, len(body))
		}
		wantBytes(t, what, body, path, 1, 0)
		if got := resp.Header.Get("X-Cache"); got != want.cache {
			t.Errorf("%s: X-Cache %q, want %s (Cache-Status %q)", what, got, want.cache, resp.Header.Get("Cache-Status"))
		}
		h.settle(t)
		if got := asked.Load(); got != want.origin {
			t.Fatalf("%s: the origin saw %d requests, want %d", what, got, want.origin)
		}
	}
}
