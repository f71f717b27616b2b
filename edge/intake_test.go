package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// fileOrigin is a real static file server (net/http's FileServer, which
// decodes the path and cleans it as most static servers do) over a folder
// with public/hello.txt and private/secret.txt, recording every path it is
// asked for.
type fileOrigin struct {
	srv   *httptest.Server
	mu    sync.Mutex
	paths []string // decoded request paths, in order
}

func newFileOrigin(t *testing.T) *fileOrigin {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"public/hello.txt": "hello, world\n", "private/secret.txt": "the secret\n"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := &fileOrigin{}
	fs := http.FileServer(http.Dir(dir))
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.paths = append(o.paths, r.URL.Path)
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *fileOrigin) asked() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.paths...)
}

// Dot segments, encoded or not, and encoded slashes never take a request
// to a path that no rule allows, nor out of the origin's base path; a path
// that climbs above the root is answered 400.
func TestDotSegmentsStayInsideRules(t *testing.T) {
	o := newFileOrigin(t)
	h := newHarnessWith(t, setup{Config: func(string) string {
		return fmt.Sprintf(`
name: sliceedge
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:1, token: %s}
store: {dir: unused, max_bytes: 1GiB}
origins:
  files: {url: %s}
  based: {url: %s/public}
rules:
  - {match: /public/, hosts: [edge.test], origin: files, last_modified_validator: true}
  - {match: /, hosts: [based.test], origin: based, last_modified_validator: true}
`, adminToken, o.srv.URL, o.srv.URL)
	}})
	addr := hostPort(h.srv.URL)
	tests := []struct {
		host, target string
		status       int
		body         string
	}{
		{"edge.test", "/public/hello.txt", 200, "hello, world\n"},
		{"edge.test", "/public/x/../hello.txt", 200, "hello, world\n"},
		{"edge.test", "/public/./hello.txt", 200, "hello, world\n"},
		{"edge.test", "/public/%2e/hello.txt", 200, "hello, world\n"},
		{"edge.test", "/public/../private/secret.txt", 404, ""},
		{"edge.test", "/public/%2e%2e/private/secret.txt", 404, ""},
		{"edge.test", "/public/%2E%2E%2Fprivate%2Fsecret.txt", 404, ""},
		{"edge.test", "/public/./../private/secret.txt", 404, ""},
		{"edge.test", "/public/x%2F..%2F..%2Fprivate/secret.txt", 404, ""},
		{"edge.test", "/../public/hello.txt", 400, ""},
		{"edge.test", "/public/../../private/secret.txt", 400, ""},
		{"edge.test", "/public/..%5Cprivate%5Csecret.txt", 400, ""},
		{"edge.test", "/public/..\\private\\secret.txt", 400, ""},
		{"edge.test", "/public/%252e%252e/private/secret.txt", 400, ""},
		{"edge.test", "/public/%00secret.txt", 400, ""},
		{"based.test", "/hello.txt", 200, "hello, world\n"},
		{"based.test", "/../private/secret.txt", 400, ""},
		{"based.test", "/%2e%2e/private/secret.txt", 400, ""},
		{"based.test", "/x/../../private/secret.txt", 400, ""},
	}
	for _, tt := range tests {
		resp, body := rawGet(t, addr, tt.target, tt.host)
		if resp.StatusCode != tt.status || (tt.body != "" && string(body) != tt.body) {
			t.Errorf("Host %s, GET %s: status %d, body %q; want %d %q", tt.host, tt.target, resp.StatusCode, body, tt.status, tt.body)
		}
		if strings.Contains(string(body), "secret") && tt.status != 200 {
			t.Errorf("Host %s, GET %s: the private file was served", tt.host, tt.target)
		}
		if resp.StatusCode == 400 && !strings.Contains(resp.Header.Get("Cache-Status"), "detail=bad-request") {
			t.Errorf("Host %s, GET %s: 400 without its Cache-Status detail: %q", tt.host, tt.target, resp.Header.Get("Cache-Status"))
		}
	}
	for _, p := range o.asked() {
		if p != "/public/hello.txt" {
			t.Errorf("the origin was asked for %q", p)
		}
	}
	if v := metricValue(h.metrics(t), `sliceedge_limit_trips_total{limit="bad_request"}`); v != 9 {
		t.Errorf("bad requests counted: %v, want the 9 answered 400", v)
	}
}

// Rules match hosts; the key holds one spelling of the host, so every
// spelling shares one copy and one purge; a host no rule serves gets 421
// and stores nothing; a request without Host gets 400.
func TestHostRules(t *testing.T) {
	h := newHarnessWith(t, setup{Config: func(url string) string {
		return fmt.Sprintf(`
name: sliceedge
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:1, token: %s}
store: {dir: unused, max_bytes: 1GiB}
origins:
  default: {url: %s}
rules:
  - {match: /, hosts: [www.site.test, "*.cdn.site.test"], origin: default}
`, adminToken, url)
	}})
	addr := hostPort(h.srv.URL)
	const path = "/v/64KiB.bin"
	for i, host := range []string{"www.site.test", "WWW.Site.Test", "www.site.test.", "www.site.test:80", "WWW.SITE.TEST.:80"} {
		resp, body := rawGet(t, addr, path, host)
		if resp.StatusCode != 200 {
			t.Fatalf("Host %q: status %d", host, resp.StatusCode)
		}
		wantBytes(t, host, body, path, 1, 0)
		if want := map[bool]string{true: "MISS", false: "HIT"}[i == 0]; resp.Header.Get("X-Cache") != want {
			t.Errorf("Host %q: X-Cache %q, want %q", host, resp.Header.Get("X-Cache"), want)
		}
		h.settle(t)
	}
	if n := h.origin.PathRequests(path); n != 1 {
		t.Errorf("%d origin requests for five spellings of one host, want 1", n)
	}
	// A host no rule serves: 421, nothing fetched or stored.
	objects := h.store.Stats().Objects
	for _, host := range []string{"keep-me", "site.test", "evil.example"} {
		resp, _ := rawGet(t, addr, path, host)
		if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=unknown-host") {
			t.Errorf("Host %q: status %d, Cache-Status %q; want 421 with detail=unknown-host", host, resp.StatusCode, resp.Header.Get("Cache-Status"))
		}
	}
	if n := h.origin.PathRequests(path); n != 1 {
		t.Errorf("unknown hosts reached the origin: %d requests", n)
	}
	if v := metricValue(h.metrics(t), `sliceedge_limit_trips_total{limit="unknown_host"}`); v != 3 {
		t.Errorf("unknown hosts counted: %v, want 3", v)
	}
	if got := h.store.Stats().Objects; got != objects {
		t.Errorf("unknown hosts stored %d objects", got-objects)
	}
	// A wildcard host has keys of its own.
	if resp, body := rawGet(t, addr, path, "a.cdn.site.test"); resp.StatusCode != 200 {
		t.Errorf("wildcard host: status %d", resp.StatusCode)
	} else {
		wantBytes(t, "wildcard host", body, path, 1, 0)
	}
	// A purge under another spelling removes the object.
	if code := h.admin(t, "POST", "/purge", url.Values{"url": {"http://WWW.Site.TEST.:80/v/./x/../64KiB.bin"}}, nil); code != 200 {
		t.Fatalf("purge: status %d", code)
	}
	if resp, _ := rawGet(t, addr, path, "www.site.test"); resp.Header.Get("X-Cache") != "MISS" {
		t.Errorf("after a purge under another spelling: X-Cache %q, want MISS", resp.Header.Get("X-Cache"))
	}
	// No Host at all (HTTP/1.0): 400, not a key of its own.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 {
		t.Errorf("no Host: status %d, want 400", resp.StatusCode)
	}
}

// One header policy for cached fetches and pass-throughs: spoofable and
// hop-by-hop headers never reach the origin, the edge sets the forwarding
// headers itself (extending a trusted proxy's), and a cached fetch carries
// no other client header, so that an unkeyed header cannot poison what
// every client gets.
func TestHeaderPolicy(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	var seen []http.Header
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/manifest") {
			// An origin that builds links from X-Forwarded-Host without
			// saying Vary: what a cache must not let a client choose.
			host := r.Header.Get("X-Forwarded-Host")
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("ETag", `"m1"`)
			body := "http://" + host + "/video/seg1.ts\n"
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(body)-1, len(body)))
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, body)
			return true
		}
		return false
	})
	last := func() http.Header {
		mu.Lock()
		defer mu.Unlock()
		return seen[len(seen)-1]
	}
	hostile := []string{
		"X-Forwarded-Host: evil.example", "Forwarded: for=1.2.3.4;host=evil.example", "X-Forwarded-For: 6.6.6.6",
		"X-Forwarded-Proto: https", "X-Original-URL: /admin", "X-Rewrite-URL: /admin", "X-HTTP-Method-Override: DELETE",
		"X-Real-IP: 6.6.6.6", "Connection: X-Named", "X-Named: 1", "Proxy-Authorization: Basic eDp5", "X-Custom: kept-on-pass",
	}
	check := func(what string, got http.Header, pass bool) {
		t.Helper()
		for _, k := range []string{"X-Original-Url", "X-Rewrite-Url", "X-Http-Method-Override", "X-Real-Ip", "Forwarded", "X-Named", "Proxy-Authorization"} {
			if v := got.Get(k); v != "" {
				t.Errorf("%s: the origin got %s: %q", what, k, v)
			}
		}
		if v := got.Get("X-Forwarded-Host"); v != "edge.test" {
			t.Errorf("%s: X-Forwarded-Host %q, want edge.test", what, v)
		}
		if v := got.Get("X-Forwarded-For"); v != "127.0.0.1" {
			t.Errorf("%s: X-Forwarded-For %q, want the client's address alone", what, v)
		}
		if v := got.Get("X-Forwarded-Proto"); v != "http" {
			t.Errorf("%s: X-Forwarded-Proto %q, want http", what, v)
		}
		if v := got.Get("Via"); v != "1.1 sliceedge" {
			t.Errorf("%s: Via %q, want 1.1 sliceedge", what, v)
		}
		if v := got.Get("X-Custom"); (v != "") != pass {
			t.Errorf("%s: X-Custom %q (a pass-through carries the client's headers, a cached fetch none)", what, v)
		}
	}
	// A cached fetch.
	resp, body := h.get(t, "/obj/64KiB.bin", hostile...)
	wantBytes(t, "cached fetch", body, "/obj/64KiB.bin", 1, 0)
	if resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("X-Cache %q", resp.Header.Get("X-Cache"))
	}
	check("cached fetch", last(), false)
	// A pass-through (a cookie).
	h.get(t, "/obj/32KiB.bin", append(hostile, "Cookie: session=1")...)
	check("pass-through", last(), true)
	if v := last().Get("Cookie"); v != "session=1" {
		t.Errorf("pass-through: Cookie %q not forwarded", v)
	}
	// Credentials: a cached fetch that carries them, and nothing else of
	// the client's (RFC 9111 §3.5, lookupAuth).
	h.get(t, "/obj/16KiB.bin", append(hostile, "Authorization: Bearer x")...)
	check("cached fetch with credentials", last(), false)
	if v := last().Get("Authorization"); v != "Bearer x" {
		t.Errorf("cached fetch with credentials: Authorization %q not forwarded", v)
	}
	// The poisoning attempt stores the edge's own host, for everyone.
	_, body = h.get(t, "/obj/manifest", "X-Forwarded-Host: evil.example")
	_, clean := h.get(t, "/obj/manifest")
	for _, b := range [][]byte{body, clean} {
		if string(b) != "http://edge.test/video/seg1.ts\n" {
			t.Errorf("manifest %q, want the edge's own host", b)
		}
	}
}

// A trusted proxy's X-Forwarded-For and -Proto are extended, not replaced.
func TestTrustedProxyForwarding(t *testing.T) {
	h := newHarnessWith(t, setup{Config: edited("name: sliceedge\n", "name: sliceedge\ntrusted_proxies: [127.0.0.0/8]\n")})
	var got http.Header
	var mu sync.Mutex
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		return false
	})
	h.get(t, "/obj/64KiB.bin", "X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https", "Via: 1.1 lb")
	mu.Lock()
	defer mu.Unlock()
	if v := got.Get("X-Forwarded-For"); v != "203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want the proxy's list extended", v)
	}
	if v := got.Get("X-Forwarded-Proto"); v != "https" {
		t.Errorf("X-Forwarded-Proto %q, want the trusted proxy's https", v)
	}
	if v := got.Get("Via"); v != "1.1 lb, 1.1 sliceedge" {
		t.Errorf("Via %q", v)
	}
}

// A GET or HEAD whose declared body never arrives is answered at once and
// its connection closed; so is any request with Transfer-Encoding (it may
// have carried a Content-Length too, RFC 9112 §6.1).
func TestRequestBodyNeverHolds(t *testing.T) {
	h := newHarness(t)
	addr := hostPort(h.srv.URL)
	const path = "/obj/256KiB.bin"
	ask := func(req string) (*http.Response, []byte, error) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, req); err != nil {
			return nil, nil, err
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, &http.Request{Method: strings.Fields(req)[0]})
		if err != nil {
			return nil, nil, fmt.Errorf("no answer: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, nil, err
		}
		// The edge closes the connection: the next read ends at once.
		if n, err := br.Read(make([]byte, 1)); err != io.EOF {
			return resp, body, fmt.Errorf("connection still open after the answer (read %d, %v)", n, err)
		}
		return resp, body, nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			method := map[bool]string{true: "GET", false: "HEAD"}[i%5 != 0]
			resp, body, err := ask(method + " " + path + " HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 200000\r\n\r\n")
			switch {
			case err != nil:
				errs <- fmt.Errorf("%s with a body that never comes: %w", method, err)
			case resp.StatusCode != 200:
				errs <- fmt.Errorf("%s with a body that never comes: status %d", method, resp.StatusCode)
			case method == "GET":
				if _, ok := origintest.Verify(body, path, 1, 0); !ok || len(body) != 256<<10 {
					errs <- fmt.Errorf("GET with a body: %d wrong bytes", len(body))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v := metricValue(h.metrics(t), `sliceedge_limit_trips_total{limit="request_body"}`); v != 50 {
		t.Errorf("GET and HEAD bodies counted: %v, want 50", v)
	}
	for _, req := range []string{
		"GET " + path + " HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
		"POST " + path + " HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
	} {
		resp, _, err := ask(req)
		if err != nil {
			t.Errorf("%q: %v", strings.SplitN(req, "\r\n", 2)[0]+" with Transfer-Encoding and Content-Length", err)
		} else if resp.StatusCode/100 == 5 {
			t.Errorf("%q: status %d", req, resp.StatusCode)
		}
	}
}

// Cache-Status keeps a parent cache's member first and ours after it (RFC
// 9211 §2: from the cache nearest the origin to the one nearest the
// client), on the miss and on later hits; our member's name is the
// configured name, or the host name.
func TestCacheStatusChain(t *testing.T) {
	h := newHarness(t)
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Cache-Status", `parent; hit; ttl=100`)
		return false
	})
	const path = "/obj/64KiB.bin"
	resp, _ := h.get(t, path)
	if got := resp.Header.Get("Cache-Status"); !strings.HasPrefix(got, "parent; hit; ttl=100, sliceedge; fwd=uri-miss; stored") {
		t.Errorf("miss: Cache-Status %q", got)
	}
	h.settle(t)
	resp, _ = h.get(t, path)
	if got := resp.Header.Get("Cache-Status"); !strings.HasPrefix(got, "parent; hit; ttl=100, sliceedge; hit") {
		t.Errorf("hit: Cache-Status %q", got)
	}
	resp, _ = h.get(t, path, "Cookie: x")
	if got := resp.Header.Get("Cache-Status"); !strings.HasPrefix(got, "parent; hit; ttl=100, sliceedge; fwd=bypass") {
		t.Errorf("pass: Cache-Status %q", got)
	}
	// Without name: the host name.
	h.restart(t, setup{Config: edited("name: sliceedge\n", "")})
	host, _ := os.Hostname()
	resp, _ = h.get(t, path)
	if got := resp.Header.Get("Cache-Status"); !strings.Contains(got, ", "+host+"; hit") && !strings.Contains(got, `, "`+host+`"; hit`) {
		t.Errorf("default name: Cache-Status %q, want the host name %q", got, host)
	}
}
