package edge_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthEndpoints: /healthz and /readyz answer without the admin
// token; /readyz is 503, saying why, while the origin has no member in its
// pool and once the node drains, and 200 otherwise. Every other admin
// endpoint still wants the token.
func TestHealthEndpoints(t *testing.T) {
	h := newHarnessWith(t, setup{Config: edited("    read_timeout: 5s\n", "    read_timeout: 5s\n    max_fails: 1\n    fail_timeout: 1h\n")})
	srv := httptest.NewServer(h.edge.AdminHandler())
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path) // no token
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	if code, _ := get("/stats"); code != http.StatusUnauthorized {
		t.Fatalf("/stats without the token: %d", code)
	}

	// The origin stops: one failed fetch (max_fails 1) takes its only
	// member out, and the node is not ready.
	h.stopOrigin()
	if resp, err := h.try(http.MethodGet, "/gone/1MiB.bin"); err == nil {
		resp.Body.Close()
	}
	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no member of origin default is healthy") {
		t.Fatalf("/readyz with the origin down: %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz with the origin down: %d (alive is not ready)", code)
	}

	h.edge.StartDraining()
	code, body = get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("/readyz while draining: %d %q", code, body)
	}
}
