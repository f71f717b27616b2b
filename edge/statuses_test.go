package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// doAsIs sends a request and does not follow redirects: the edge's own
// answer is what is under test.
func (h *harness) doAsIs(t *testing.T, method, path string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "edge.test"
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	c := *h.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, body
}

// TestStatusesStored: which answers other than 200 and 206 the edge
// stores (RFC 9111 §3): the heuristically cacheable statuses of RFC 9110
// §15.1 with explicit freshness, or heuristic freshness from
// Last-Modified (§4.2.2); 302 and 307 only with explicit freshness; a 404
// or 410 without any under a rule's negative_ttl; never a 5xx other than
// 501, nor what no-store, private or Set-Cookie forbid. A stored answer is
// replayed whole, with its status, body and headers, to GET and HEAD and
// whatever Range a request carries (RFC 9110 §14.2: Range applies to 200).
func TestStatusesStored(t *testing.T) {
	lm := "Last-Modified: " + time.Unix(0, 0).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		path   string
		code   int
		header []string
		stored bool
	}{
		{"/s/404-max-age", 404, []string{"Cache-Control: max-age=60"}, true},
		{"/s/404-bare", 404, nil, false},
		{"/neg/404-bare", 404, nil, true}, // negative_ttl: 30s
		{"/neg/410-bare", 410, nil, true},
		{"/neg/403-bare", 403, nil, false}, // negative_ttl is for 404 and 410
		{"/neg/404-no-store", 404, []string{"Cache-Control: no-store"}, false},
		{"/s/404-private", 404, []string{"Cache-Control: private, max-age=60"}, false},
		{"/s/404-cookie", 404, []string{"Cache-Control: max-age=60", "Set-Cookie: a=b"}, false},
		{"/s/410-expires", 410, []string{"Expires: " + time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, true},
		{"/s/301-heuristic", 301, []string{lm, "Location: /elsewhere"}, true},
		{"/s/301-bare", 301, []string{"Location: /elsewhere"}, false},
		{"/s/308-max-age", 308, []string{"Cache-Control: max-age=60", "Location: /elsewhere"}, true},
		{"/s/302-heuristic", 302, []string{lm, "Location: /elsewhere"}, false},
		{"/s/302-max-age", 302, []string{"Cache-Control: max-age=60", "Location: /elsewhere"}, true},
		{"/s/307-s-maxage", 307, []string{"Cache-Control: s-maxage=60", "Location: /elsewhere"}, true},
		{"/s/300-max-age", 300, []string{"Cache-Control: max-age=60"}, true},
		{"/s/203-max-age", 203, []string{"Cache-Control: max-age=60"}, true},
		{"/s/204-max-age", 204, []string{"Cache-Control: max-age=60"}, true},
		{"/s/405-max-age", 405, []string{"Cache-Control: max-age=60"}, true},
		{"/s/414-max-age", 414, []string{"Cache-Control: max-age=60"}, true},
		{"/s/501-max-age", 501, []string{"Cache-Control: max-age=60"}, true},
		{"/s/500-max-age", 500, []string{"Cache-Control: max-age=60"}, false},
		{"/s/503-max-age", 503, []string{"Cache-Control: max-age=60"}, false},
		{"/s/403-max-age", 403, []string{"Cache-Control: max-age=60"}, false}, // not heuristically cacheable
		{"/s/404-vary", 404, []string{"Cache-Control: max-age=60", "Vary: Cookie"}, false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			h := newHarness(t)
			body := fmt.Sprintf("the origin's own %d page for %s\n", tc.code, tc.path)
			if tc.code == 204 {
				body = ""
			}
			var asked atomic.Int64
			h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				asked.Add(1)
				for _, kv := range tc.header {
					k, v, _ := strings.Cut(kv, ":")
					w.Header().Add(k, strings.TrimSpace(v))
				}
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(tc.code)
				fmt.Fprint(w, body)
				return true
			})
			requests := []struct {
				method string
				header []string
			}{{"GET", nil}, {"GET", []string{"Range: bytes=5-9"}}, {"HEAD", nil}, {"GET", nil}}
			for n, rq := range requests {
				resp, got := h.doAsIs(t, rq.method, tc.path, rq.header...)
				what := fmt.Sprintf("%s %s %v", rq.method, tc.path, rq.header)
				if resp.StatusCode != tc.code {
					t.Fatalf("%s: status %d, want %d", what, resp.StatusCode, tc.code)
				}
				wantBody := body
				if rq.method == "HEAD" {
					wantBody = ""
				}
				if string(got) != wantBody {
					t.Errorf("%s: body %q, want %q", what, got, wantBody)
				}
				if loc := resp.Header.Get("Location"); strings.Contains(strings.Join(tc.header, "\n"), "Location") && loc != "/elsewhere" {
					t.Errorf("%s: Location %q", what, loc)
				}
				if cl := resp.Header.Get("Content-Length"); tc.code != 204 && cl != fmt.Sprint(len(body)) {
					t.Errorf("%s: Content-Length %q, want %d", what, cl, len(body))
				}
				wantCache := "PASS"
				switch {
				case tc.stored && n == 0:
					wantCache = "MISS"
				case tc.stored:
					wantCache = "HIT"
				}
				if got := resp.Header.Get("X-Cache"); got != wantCache {
					t.Errorf("%s: X-Cache %q, want %s (Cache-Status %q)", what, got, wantCache, resp.Header.Get("Cache-Status"))
				}
				want := int64(n + 1)
				if tc.stored {
					want = 1
				}
				if got := asked.Load(); got != want {
					t.Fatalf("%s: the origin saw %d requests, want %d", what, got, want)
				}
			}
		})
	}
}

// TestStatusStoredExpires: a stored 404 is fresh for its max-age and then
// asked for again; when the object appears meanwhile, the next answer is
// the object.
func TestStatusStoredExpires(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/appears.bin"
	var asked atomic.Int64
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if _, _, ok := h.origin.Object(path); ok {
			return false
		}
		asked.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		http.Error(w, "not yet", http.StatusNotFound)
		return true
	})
	for range 2 {
		if resp, _ := h.get(t, path); resp.StatusCode != 404 {
			t.Fatalf("status %d, want the stored 404", resp.StatusCode)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the origin saw %d requests, want 1", n)
	}
	h.origin.Add(path, 3*MiB)
	h.advance(61 * time.Second)
	resp, body := h.get(t, path)
	if resp.StatusCode != 200 || int64(len(body)) != 3*MiB {
		t.Fatalf("after the 404 expired: status %d, %d bytes", resp.StatusCode, len(body))
	}
	wantBytes(t, "the object that appeared", body, path, 1, 0)
}

// TestStatusBodyBounded: a status answer is stored only when its body is
// at most 1 MiB (it is read whole before it is stored); a larger one is
// relayed whole, the bytes already read and the rest, and not stored.
func TestStatusBodyBounded(t *testing.T) {
	h := newHarness(t)
	const path = "/s/big-404"
	page := strings.Repeat("not here. ", 200_000) // 2,000,000 bytes
	var asked atomic.Int64
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		asked.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, page)
		return true
	})
	for n := range 2 {
		resp, body := h.doAsIs(t, "GET", path)
		if resp.StatusCode != 404 || string(body) != page {
			t.Fatalf("request %d: status %d, %d bytes; want the 404 page whole", n, resp.StatusCode, len(body))
		}
		if got := asked.Load(); got != int64(n+1) {
			t.Errorf("request %d: the origin saw %d requests; want each relayed, none stored", n, got)
		}
	}
}
