package edge_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// authOrigin answers every request without Authorization 401, and every
// request with it from the test origin with Cache-Control cc. It counts
// the requests with credentials it sees.
func authOrigin(h *harness, cc string) (withAuth, without *atomic.Int64) {
	withAuth, without = new(atomic.Int64), new(atomic.Int64)
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer good" {
			without.Add(1)
			http.Error(w, "who are you?", http.StatusUnauthorized)
			return true
		}
		withAuth.Add(1)
		h.origin.Handler().ServeHTTP(&headerSetter{ResponseWriter: w, set: http.Header{"Cache-Control": {cc}}}, r)
		return true
	})
	return withAuth, without
}

// TestAuthorizationStored: an answer to a request with Authorization is
// stored only when the origin's public, s-maxage or must-revalidate allows
// a shared cache to (RFC 9111 §3.5). Then it serves other clients too;
// a request with credentials still asks the origin (conditionally, so a
// 304 lets it have the stored bytes), and never shares another's lookup.
func TestAuthorizationStored(t *testing.T) {
	for _, cc := range []string{"public, max-age=600", "s-maxage=600", "max-age=600, must-revalidate"} {
		t.Run(cc, func(t *testing.T) {
			h := newHarness(t)
			const path = "/obj/2MiB-auth.bin"
			withAuth, without := authOrigin(h, cc)
			resp, body := h.get(t, path, "Authorization: Bearer good")
			wantBytes(t, "with credentials", body, path, 1, 0)
			if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "MISS" {
				t.Fatalf("with credentials: status %d, X-Cache %q; want 200 MISS, stored", resp.StatusCode, resp.Header.Get("X-Cache"))
			}
			h.settle(t)
			// Another client, without credentials: from the store.
			resp, body = h.get(t, path)
			wantBytes(t, "without credentials", body, path, 1, 0)
			if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "HIT" || without.Load() != 0 {
				t.Errorf("without credentials: status %d, X-Cache %q, %d origin requests; want a HIT", resp.StatusCode, resp.Header.Get("X-Cache"), without.Load())
			}
			// Credentials again: asked of the origin, a 304, the stored bytes.
			resp, body = h.get(t, path, "Authorization: Bearer good", "Range: bytes=1000-1999")
			wantBytes(t, "credentials again", body, path, 1, 1000)
			if got := withAuth.Load(); got != 2 {
				t.Errorf("the origin saw %d requests with credentials, want 2", got)
			}
			if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "sliceedge; fwd=request; fwd-status=304; stored;") {
				t.Errorf("credentials again: Cache-Status %q", cs)
			}
		})
	}
}

// TestAuthorizationNotStored: without public, s-maxage or must-revalidate
// an answer to credentials goes to that client alone, in one origin
// request: nothing is stored, and a stored object of the same URL is left
// as it was (RFC 9111 §3.5). Wrong credentials get the origin's 401.
func TestAuthorizationNotStored(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/2MiB-private.bin"
	withAuth, without := authOrigin(h, "max-age=600")
	for n := 1; n <= 2; n++ {
		resp, body := h.get(t, path, "Authorization: Bearer good", fmt.Sprintf("Range: bytes=%d-%d", n*1000, n*1000+99))
		wantBytes(t, "with credentials", body, path, 1, int64(n*1000))
		if resp.StatusCode != 206 || resp.Header.Get("X-Cache") != "PASS" {
			t.Errorf("request %d: status %d, X-Cache %q; want 206 PASS", n, resp.StatusCode, resp.Header.Get("X-Cache"))
		}
		if got := withAuth.Load(); got != int64(n) {
			t.Errorf("request %d: the origin saw %d requests, want one per request", n, got)
		}
	}
	h.settle(t)
	if st := h.store.Stats(); st.Objects != 0 {
		t.Errorf("the store holds %d objects of answers to credentials", st.Objects)
	}
	resp, body := h.get(t, path, "Authorization: Bearer bad")
	if resp.StatusCode != 401 || string(body) != "who are you?\n" || without.Load() != 1 {
		t.Errorf("wrong credentials: status %d, body %q; want the origin's 401", resp.StatusCode, body)
	}
}
