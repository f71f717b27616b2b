package origintest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// client returns an HTTP client with its own connections, closed at the
// end of the test.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// do sends method to s's path with the headers given as "Key: value" and
// returns the response with its body read (and any read error).
func do(t *testing.T, c *http.Client, s *Server, method, path string, headers ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s %q: %v", method, path, headers, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// get is do for a GET whose body must read without error.
func get(t *testing.T, c *http.Client, s *Server, path string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := do(t, c, s, http.MethodGet, path, headers...)
	if err != nil {
		t.Fatalf("GET %s %q: reading body: %v", path, headers, err)
	}
	return resp, body
}

func wantStatus(t *testing.T, resp *http.Response, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("%s %s %q: status %d, want %d", resp.Request.Method, resp.Request.URL.Path, resp.Request.Header, resp.StatusCode, code)
	}
}

// wantBody checks that body is bytes [off, off+n) of name at version.
func wantBody(t *testing.T, body []byte, name string, version int, off, n int64) {
	t.Helper()
	if int64(len(body)) != n {
		t.Fatalf("%s: body of %d bytes, want %d", name, len(body), n)
	}
	if bad, ok := Verify(body, name, version, off); !ok {
		t.Fatalf("%s: body differs from version %d at offset %d (versions %v)", name, version, bad, WhichVersion(body, name, off, version+3))
	}
}

func TestGetAndHead(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	const name = "/video/1MiB.mp4"
	resp, body := get(t, c, s, name)
	wantStatus(t, resp, 200)
	wantBody(t, body, name, 1, 0, 1<<20)
	for k, want := range map[string]string{
		"ETag":           ETag(name, 1),
		"Last-Modified":  LastModified(1).Format(http.TimeFormat),
		"Content-Type":   "video/mp4",
		"Content-Length": "1048576",
		"Accept-Ranges":  "bytes",
		"Cache-Control":  "max-age=3600",
		"Content-Range":  "",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("GET %s: %s = %q, want %q", name, k, got, want)
		}
	}

	resp, body, err := do(t, c, s, http.MethodHead, name)
	if err != nil || len(body) != 0 {
		t.Fatalf("HEAD: body %d bytes, err %v", len(body), err)
	}
	wantStatus(t, resp, 200)
	if resp.ContentLength != 1<<20 || resp.Header.Get("ETag") != ETag(name, 1) {
		t.Fatalf("HEAD: Content-Length %d, ETag %q", resp.ContentLength, resp.Header.Get("ETag"))
	}

	resp, _ = get(t, c, s, "/5.weird")
	if resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("Content-Type of an unknown extension: %q", resp.Header.Get("Content-Type"))
	}
}

func TestObjects(t *testing.T) {
	s := NewTest(t)
	c := client(t)

	resp, _ := get(t, c, s, "/movie.mp4")
	wantStatus(t, resp, 404)
	s.Add("movie.mp4", 777) // a leading slash is implied
	resp, body := get(t, c, s, "/movie.mp4?x=1")
	wantStatus(t, resp, 200)
	wantBody(t, body, "/movie.mp4", 1, 0, 777)

	resp, body = get(t, c, s, "/a/b/0.bin")
	wantStatus(t, resp, 200)
	if len(body) != 0 || resp.ContentLength != 0 {
		t.Fatalf("empty object: %d bytes, Content-Length %d", len(body), resp.ContentLength)
	}

	resp, _, _ = do(t, c, s, http.MethodPost, "/movie.mp4")
	wantStatus(t, resp, 405)
	if resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("405 without Allow: %q", resp.Header.Get("Allow"))
	}

	if size, v, ok := s.Object("/movie.mp4"); size != 777 || v != 1 || !ok {
		t.Fatalf("Object = %d, %d, %v", size, v, ok)
	}
	if _, _, ok := s.Object("/nothing"); ok {
		t.Fatal("Object of a missing path is ok")
	}

	// A new version changes bytes and validators.
	if v := s.Bump("/movie.mp4"); v != 2 {
		t.Fatalf("Bump = %d, want 2", v)
	}
	resp, body = get(t, c, s, "/movie.mp4")
	wantBody(t, body, "/movie.mp4", 2, 0, 777)
	if resp.Header.Get("ETag") != ETag("/movie.mp4", 2) || resp.Header.Get("Last-Modified") != LastModified(2).Format(http.TimeFormat) {
		t.Fatalf("after Bump: ETag %q, Last-Modified %q", resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"))
	}
	s.SetVersion("/1KiB", 7)
	_, body = get(t, c, s, "/1KiB")
	wantBody(t, body, "/1KiB", 7, 0, 1024)

	// Re-registering with another size is another version.
	s.Add("/movie.mp4", 778)
	if size, v, _ := s.Object("/movie.mp4"); size != 778 || v != 3 {
		t.Fatalf("after re-Add: size %d, version %d", size, v)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("SetVersion of a missing object did not panic")
			}
		}()
		s.SetVersion("/nothing", 2)
	}()
}

func TestRanges(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	const name = "/1000.bin"
	for _, tc := range []struct {
		r            string
		code         int
		contentRange string
		off, n       int64
	}{
		{"bytes=0-99", 206, "bytes 0-99/1000", 0, 100},
		{"bytes=100-", 206, "bytes 100-999/1000", 100, 900},
		{"bytes=-100", 206, "bytes 900-999/1000", 900, 100},
		{"bytes=-2000", 206, "bytes 0-999/1000", 0, 1000},
		{"bytes=995-2000", 206, "bytes 995-999/1000", 995, 5},
		{"bytes=0-", 206, "bytes 0-999/1000", 0, 1000},
		{"bytes=1000-", 416, "bytes */1000", 0, 0},
		{"bytes=-0", 416, "bytes */1000", 0, 0},
		{"bytes=5-2", 200, "", 0, 1000},
		{"bytes=0-1,5-6", 200, "", 0, 1000},
		{"pages=1-2", 200, "", 0, 1000},
	} {
		resp, body := get(t, c, s, name, "Range: "+tc.r)
		if resp.StatusCode != tc.code || resp.Header.Get("Content-Range") != tc.contentRange {
			t.Errorf("range=%q: status %d Content-Range %q, want %d %q", tc.r, resp.StatusCode, resp.Header.Get("Content-Range"), tc.code, tc.contentRange)
			continue
		}
		if tc.code == 416 {
			continue
		}
		wantBody(t, body, name, 1, tc.off, tc.n)
		if resp.ContentLength != tc.n {
			t.Errorf("range=%q: Content-Length %d, want %d", tc.r, resp.ContentLength, tc.n)
		}
	}

	// HEAD answers the same headers.
	resp, _, _ := do(t, c, s, http.MethodHead, name, "Range: bytes=10-19")
	wantStatus(t, resp, 206)
	if resp.Header.Get("Content-Range") != "bytes 10-19/1000" || resp.ContentLength != 10 {
		t.Fatalf("HEAD range: %q, %d", resp.Header.Get("Content-Range"), resp.ContentLength)
	}
	// Empty object: nothing to point at.
	resp, _ = get(t, c, s, "/0.bin", "Range: bytes=0-")
	wantStatus(t, resp, 416)
	if resp.Header.Get("Content-Range") != "bytes */0" {
		t.Fatalf("empty object: Content-Range %q", resp.Header.Get("Content-Range"))
	}
}

func TestHugeObject(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	const name = "/video/10GiB.mp4"
	resp, _, err := do(t, c, s, http.MethodHead, name)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentLength != 10<<30 {
		t.Fatalf("HEAD: Content-Length %d, want %d", resp.ContentLength, int64(10)<<30)
	}
	const at = int64(9) << 30
	resp, body := get(t, c, s, name, fmt.Sprintf("Range: bytes=%d-%d", at, at+(1<<20)-1))
	wantStatus(t, resp, 206)
	if want := fmt.Sprintf("bytes %d-%d/%d", at, at+(1<<20)-1, int64(10)<<30); resp.Header.Get("Content-Range") != want {
		t.Fatalf("Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
	}
	wantBody(t, body, name, 1, at, 1<<20)
	resp, body = get(t, c, s, name, "Range: bytes=-3")
	wantStatus(t, resp, 206)
	wantBody(t, body, name, 1, 10<<30-3, 3)
}

func TestConditional(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	const name = "/4KiB.bin"
	etag := ETag(name, 1)
	lm := LastModified(1)
	date := func(d time.Duration) string { return lm.Add(d).Format(http.TimeFormat) }
	for _, tc := range []struct {
		headers []string
		code    int
	}{
		{[]string{"If-Match: " + etag}, 200},
		{[]string{"If-Match: " + etag, "Range: bytes=0-9"}, 206},
		{[]string{`If-Match: "nope", ` + etag}, 200},
		{[]string{`If-Match: "nope"`, "If-Match: " + etag}, 200},
		{[]string{"If-Match: *"}, 200},
		{[]string{`If-Match: "nope"`}, 412},
		{[]string{`If-Match: "nope"`, "Range: bytes=0-9"}, 412},
		{[]string{"If-Match: W/" + etag}, 412},
		{[]string{"If-Match: " + ETag(name, 2)}, 412},
		{[]string{"If-Unmodified-Since: " + date(0)}, 200},
		{[]string{"If-Unmodified-Since: " + date(-time.Second)}, 412},
		{[]string{"If-Unmodified-Since: bad date"}, 200},
		{[]string{"If-Match: " + etag, "If-Unmodified-Since: " + date(-time.Hour)}, 200},
		{[]string{"If-None-Match: " + etag}, 304},
		{[]string{"If-None-Match: W/" + etag}, 304},
		{[]string{`If-None-Match: "a", ` + etag}, 304},
		{[]string{"If-None-Match: *"}, 304},
		{[]string{`If-None-Match: "nope"`}, 200},
		{[]string{`If-None-Match: "nope"`, "If-Modified-Since: " + date(0)}, 200},
		{[]string{"If-Modified-Since: " + date(0)}, 304},
		{[]string{"If-Modified-Since: " + date(time.Hour)}, 304},
		{[]string{"If-Modified-Since: " + date(-time.Second)}, 200},
		{[]string{"Range: bytes=0-9", "If-Range: " + etag}, 206},
		{[]string{"Range: bytes=0-9", "If-Range: " + ETag(name, 2)}, 200},
		{[]string{"Range: bytes=0-9", "If-Range: W/" + etag}, 200},
		{[]string{"Range: bytes=0-9", "If-Range: " + date(0)}, 206},
		{[]string{"Range: bytes=0-9", "If-Range: " + date(-time.Minute)}, 200},
	} {
		resp, body := get(t, c, s, name, tc.headers...)
		if resp.StatusCode != tc.code {
			t.Errorf("%q: status %d, want %d", tc.headers, resp.StatusCode, tc.code)
			continue
		}
		switch tc.code {
		case 200:
			wantBody(t, body, name, 1, 0, 4096)
		case 304:
			if len(body) != 0 || resp.Header.Get("ETag") != etag || resp.Header.Get("Last-Modified") != date(0) ||
				resp.Header.Get("Cache-Control") != "max-age=3600" {
				t.Errorf("%q: 304 with %d body bytes, headers %v", tc.headers, len(body), resp.Header)
			}
		}
	}

	// An If-Match taken before a new version fails after it.
	s.Bump(name)
	resp, _ := get(t, c, s, name, "If-Match: "+etag, "Range: bytes=0-9")
	wantStatus(t, resp, 412)
	resp, _ = get(t, c, s, name, "If-None-Match: "+etag)
	wantStatus(t, resp, 200)
}

func TestCounters(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	get(t, c, s, "/100.bin")
	get(t, c, s, "/100.bin", "Range: bytes=10-19")
	do(t, c, s, http.MethodHead, "/100.bin")
	get(t, c, s, "/100.bin", "If-None-Match: "+ETag("/100.bin", 1))
	get(t, c, s, "/100.bin", "Range: bytes=500-")
	get(t, c, s, "/7.bin", "If-Match: \"x\"")
	get(t, c, s, "/missing")
	if s.Requests() != 7 || s.BodyBytes() != 110 {
		t.Fatalf("Requests %d BodyBytes %d, want 7 110", s.Requests(), s.BodyBytes())
	}
	if s.PathRequests("/100.bin") != 5 || s.PathBodyBytes("/100.bin") != 110 ||
		s.PathRequests("/7.bin") != 1 || s.PathBodyBytes("/7.bin") != 0 || s.PathRequests("/missing") != 0 {
		t.Fatalf("per path: %d %d %d %d", s.PathRequests("/100.bin"), s.PathBodyBytes("/100.bin"), s.PathRequests("/7.bin"), s.PathBodyBytes("/7.bin"))
	}

	log := s.LastRequests()
	if len(log) != 7 {
		t.Fatalf("LastRequests: %d records, want 7", len(log))
	}
	if r := log[1]; r.Method != "GET" || r.Path != "/100.bin" || r.Range != "bytes=10-19" || r.IfMatch != "" {
		t.Errorf("record 1: %+v", r)
	}
	if r := log[2]; r.Method != "HEAD" || r.Range != "" {
		t.Errorf("record 2: %+v", r)
	}
	if r := log[3]; r.IfNoneMatch != ETag("/100.bin", 1) {
		t.Errorf("record 3: %+v", r)
	}
	if r := log[5]; r.IfMatch != `"x"` || r.Path != "/7.bin" || r.Header.Get("If-Match") != `"x"` {
		t.Errorf("record 5: %+v", r)
	}

	s.ResetCounters()
	if s.Requests() != 0 || s.BodyBytes() != 0 || s.PathRequests("/100.bin") != 0 || s.PathBodyBytes("/100.bin") != 0 || len(s.LastRequests()) != 0 {
		t.Fatal("ResetCounters left something")
	}

	// The log keeps the last 256, oldest first.
	for i := range 300 {
		get(t, c, s, fmt.Sprintf("/1.bin?i=%d", i))
	}
	log = s.LastRequests()
	if len(log) != 256 || log[0].Header == nil || log[255].Path != "/1.bin" {
		t.Fatalf("LastRequests after 300: %d records", len(log))
	}
	if s.PathRequests("/1.bin") != 300 || s.BodyBytes() != 300 {
		t.Fatalf("after 300: %d requests, %d bytes", s.PathRequests("/1.bin"), s.BodyBytes())
	}
}

func TestLastRequestsOrder(t *testing.T) {
	s := New()
	h := s.Handler()
	for i := range 300 {
		req, _ := http.NewRequest(http.MethodGet, "/1.bin", nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=0-%d", i))
		h.ServeHTTP(discard{http.Header{}}, req)
	}
	log := s.LastRequests()
	for i, r := range log {
		if want := fmt.Sprintf("bytes=0-%d", 300-256+i); r.Range != want {
			t.Fatalf("record %d: Range %q, want %q", i, r.Range, want)
		}
	}
}

// discard is a ResponseWriter that throws the answer away.
type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(p []byte) (int, error) { return len(p), nil }
func (d discard) WriteHeader(int)             {}

func TestModeNoRange(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	s.SetMode(Mode{NoRange: true})
	resp, body := get(t, c, s, "/500.bin", "Range: bytes=10-19", "If-Range: "+ETag("/500.bin", 1))
	wantStatus(t, resp, 200)
	wantBody(t, body, "/500.bin", 1, 0, 500)
	if resp.Header.Get("Accept-Ranges") != "none" || resp.Header.Get("Content-Range") != "" {
		t.Fatalf("NoRange headers: %v", resp.Header)
	}
}

func TestModeChunked(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	s.SetMode(Mode{Chunked: true})
	for _, size := range []int64{0, 10, 200 << 10} {
		name := fmt.Sprintf("/%d.bin", size)
		resp, body := get(t, c, s, name)
		wantStatus(t, resp, 200)
		if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
			t.Fatalf("%s: Content-Length %d, Transfer-Encoding %v", name, resp.ContentLength, resp.TransferEncoding)
		}
		wantBody(t, body, name, 1, 0, size)
	}
	resp, body := get(t, c, s, "/1MiB", "Range: bytes=100-199")
	wantStatus(t, resp, 206)
	wantBody(t, body, "/1MiB", 1, 100, 100)
}

func TestModeFlapEvery(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	const name = "/64KiB.bin"
	s.SetPathMode(name, Mode{FlapEvery: 2})
	for i, want := range []int{1, 1, 2, 2, 3} {
		resp, body := get(t, c, s, name)
		if resp.Header.Get("ETag") != ETag(name, want) {
			t.Fatalf("request %d: ETag %q, want version %d", i+1, resp.Header.Get("ETag"), want)
		}
		wantBody(t, body, name, want, 0, 64<<10)
	}

	// With 1, the If-Match from a first answer fails on the next request.
	s.SetPathMode(name, Mode{FlapEvery: 1})
	resp, _, _ := do(t, c, s, http.MethodHead, name)
	etag := resp.Header.Get("ETag")
	resp, _ = get(t, c, s, name, "If-Match: "+etag, "Range: bytes=0-9")
	wantStatus(t, resp, 412)

	// IgnoreIfMatch serves the new version anyway.
	s.SetPathMode(name, Mode{FlapEvery: 1, IgnoreIfMatch: true})
	resp, body := get(t, c, s, name, "If-Match: "+etag, "Range: bytes=0-9")
	wantStatus(t, resp, 206)
	_, v, _ := s.Object(name)
	if resp.Header.Get("ETag") == etag || resp.Header.Get("ETag") != ETag(name, v) {
		t.Fatalf("flapped ETag %q, old %q, current version %d", resp.Header.Get("ETag"), etag, v)
	}
	wantBody(t, body, name, v, 0, 10)
}

func TestModeIgnoreIfMatch(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	s.SetMode(Mode{IgnoreIfMatch: true})
	resp, body := get(t, c, s, "/100.bin", `If-Match: "old"`, "If-Unmodified-Since: "+LastModified(0).Format(http.TimeFormat), "Range: bytes=1-2")
	wantStatus(t, resp, 206)
	wantBody(t, body, "/100.bin", 1, 1, 2)
}

func TestModeLieContentRange(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	for _, tc := range []struct{ lie, r, want string }{
		{"start", "bytes=10-19", "bytes 9-19/100"},
		{"start", "bytes=0-9", "bytes 1-9/100"},
		{"end", "bytes=10-19", "bytes 10-18/100"},
		{"total", "bytes=10-19", "bytes 10-19/101"},
		{"star", "bytes=10-19", "bytes 10-19/*"},
		{"malformed", "bytes=10-19", "bytes 10-19"},
	} {
		s.SetMode(Mode{LieContentRange: tc.lie})
		resp, body := get(t, c, s, "/100.bin", "Range: "+tc.r)
		wantStatus(t, resp, 206)
		if got := resp.Header.Get("Content-Range"); got != tc.want {
			t.Errorf("lie %q, range=%q: Content-Range %q, want %q", tc.lie, tc.r, got, tc.want)
		}
		start, _ := strconv.ParseInt(strings.TrimPrefix(strings.Split(tc.r, "-")[0], "bytes="), 10, 64)
		wantBody(t, body, "/100.bin", 1, start, 10)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("SetMode with an unknown lie did not panic")
			}
		}()
		s.SetMode(Mode{LieContentRange: "sometimes"})
	}()
}

func TestModeTruncateAfter(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	s.SetMode(Mode{TruncateAfter: 100<<10 + 7})
	resp, body, err := do(t, c, s, http.MethodGet, "/1MiB.bin")
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated body: err %v, want unexpected EOF", err)
	}
	if resp.ContentLength != 1<<20 {
		t.Fatalf("Content-Length %d, want the full size", resp.ContentLength)
	}
	wantBody(t, body, "/1MiB.bin", 1, 0, 100<<10+7)
	if s.BodyBytes() != 100<<10+7 {
		t.Fatalf("BodyBytes %d", s.BodyBytes())
	}
	// Chunked bodies are cut the same way.
	s.SetMode(Mode{TruncateAfter: 10, Chunked: true})
	_, body, err = do(t, c, s, http.MethodGet, "/100.bin", "Range: bytes=50-")
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) != 10 {
		t.Fatalf("chunked: %d bytes, err %v", len(body), err)
	}
	wantBody(t, body, "/100.bin", 1, 50, 10)
	// A body not longer than the limit is whole.
	s.SetMode(Mode{TruncateAfter: 100})
	_, body = get(t, c, s, "/100.bin")
	wantBody(t, body, "/100.bin", 1, 0, 100)
}

func TestModeLatencyAndStall(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	s.SetMode(Mode{Latency: 100 * time.Millisecond})
	start := time.Now()
	get(t, c, s, "/1.bin")
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("Latency 100ms answered in %v", d)
	}

	s.SetMode(Mode{Stall: 150 * time.Millisecond, StallAfter: 1000})
	start = time.Now()
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/300KiB", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1000)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 140*time.Millisecond {
		t.Logf("first 1000 bytes took %v (slow machine?)", d)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("Stall 150ms: body in %v", d)
	}
	wantBody(t, append(first, rest...), "/300KiB", 1, 0, 300<<10)
}

func TestModeBandwidth(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	s.SetPathMode("/512KiB", Mode{Bandwidth: 1 << 20})
	start := time.Now()
	_, body := get(t, c, s, "/512KiB")
	d := time.Since(start)
	wantBody(t, body, "/512KiB", 1, 0, 512<<10)
	if d < 250*time.Millisecond {
		t.Fatalf("512 KiB at 1 MiB/s took %v, want about 500ms", d)
	}
	if s.PathBodyBytes("/512KiB") != 512<<10 {
		t.Fatalf("PathBodyBytes %d", s.PathBodyBytes("/512KiB"))
	}
	// Other paths keep the server's mode.
	start = time.Now()
	get(t, c, s, "/512KiB.bin")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("unpaced path took %v", d)
	}
}

func TestModeValidatorsAndCacheControl(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	const name = "/10.bin"
	cc := "no-store"
	for _, tc := range []struct {
		what                       string
		mode                       Mode
		etag, lastModified, cCtrl  string
		ifMatchCode, ifNoneMatchCd int
	}{
		{"NoValidator", Mode{NoValidator: true}, "", "", "max-age=3600", 412, 200},
		{"WeakETag", Mode{WeakETag: true}, "W/" + ETag(name, 1), LastModified(1).Format(http.TimeFormat), "max-age=3600", 412, 304},
		{"NoLastModified", Mode{NoLastModified: true}, ETag(name, 1), "", "max-age=3600", 200, 304},
		{"CacheControl", Mode{CacheControl: &cc}, ETag(name, 1), LastModified(1).Format(http.TimeFormat), "no-store", 200, 304},
		{"CacheControl empty", Mode{CacheControl: new("")}, ETag(name, 1), LastModified(1).Format(http.TimeFormat), "", 200, 304},
	} {
		s.SetMode(tc.mode)
		resp, body := get(t, c, s, name)
		wantBody(t, body, name, 1, 0, 10)
		if resp.Header.Get("ETag") != tc.etag || resp.Header.Get("Last-Modified") != tc.lastModified || resp.Header.Get("Cache-Control") != tc.cCtrl {
			t.Errorf("%s: headers %v", tc.what, resp.Header)
		}
		if _, ok := resp.Header["Cache-Control"]; ok != (tc.cCtrl != "") {
			t.Errorf("%s: Cache-Control present %v", tc.what, ok)
		}
		resp, _ = get(t, c, s, name, "If-Match: "+ETag(name, 1))
		if resp.StatusCode != tc.ifMatchCode {
			t.Errorf("%s: If-Match: %d, want %d", tc.what, resp.StatusCode, tc.ifMatchCode)
		}
		resp, _ = get(t, c, s, name, "If-None-Match: "+ETag(name, 1))
		if resp.StatusCode != tc.ifNoneMatchCd {
			t.Errorf("%s: If-None-Match: %d, want %d", tc.what, resp.StatusCode, tc.ifNoneMatchCd)
		}
	}
	cc = "changed after SetMode" // must not reach requests
	s.SetMode(Mode{CacheControl: &cc})
	cc = "private"
	resp, _ := get(t, c, s, name)
	if resp.Header.Get("Cache-Control") != "changed after SetMode" {
		t.Fatalf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
}

func TestModeStatus(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	s.SetPathMode("/1KiB", Mode{Status: 503})
	resp, body := get(t, c, s, "/1KiB")
	wantStatus(t, resp, 503)
	if len(body) == 0 || len(body) > 100 || resp.Header.Get("ETag") != "" {
		t.Fatalf("503: body %q, ETag %q", body, resp.Header.Get("ETag"))
	}
	s.ClearPathMode("/1KiB")
	resp, _ = get(t, c, s, "/1KiB")
	wantStatus(t, resp, 200)
	if s.BodyBytes() != 1024 {
		t.Fatalf("BodyBytes %d counts an error body", s.BodyBytes())
	}
}

// TestModeChangesWhileServing runs requests while modes change; run with
// -race.
func TestModeChangesWhileServing(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	const name = "/256KiB"
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				resp, body := get(t, c, s, name, "Range: bytes=1000-")
				v := WhichVersion(body, name, 1000, 1000)
				if resp.StatusCode == 206 && len(v) != 1 {
					t.Errorf("body of versions %v", v)
				}
			}
		})
	}
	for i := range 50 {
		cc := strconv.Itoa(i)
		s.SetMode(Mode{FlapEvery: i%3 + 1, CacheControl: &cc, Chunked: i%2 == 0})
		s.SetPathMode(name, Mode{FlapEvery: 1})
		s.ClearPathMode(name)
		s.Bump(name)
	}
	wg.Wait()
	if s.PathRequests(name) != 80 {
		t.Fatalf("PathRequests %d, want 80", s.PathRequests(name))
	}
}

func TestClose(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.SetMode(Mode{Stall: time.Hour})
	c := client(t)
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Get(s.URL() + "/10MiB")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		errc <- err
	}()
	WaitFor(t, "the request to reach the origin", func() bool { return s.Requests() > 0 })
	start := time.Now()
	s.Close()
	s.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v with a stalled request", d)
	}
	if err := <-errc; err == nil {
		t.Fatal("stalled request completed after Close")
	}
	if _, err := c.Get(s.URL() + "/1.bin"); err == nil {
		t.Fatal("request after Close succeeded")
	}
}

func TestHandlerWithoutListener(t *testing.T) {
	s := New()
	if s.URL() != "" {
		t.Fatalf("URL of New() = %q", s.URL())
	}
	req, _ := http.NewRequest(http.MethodGet, "/10.bin", nil)
	rec := &recorder{h: http.Header{}}
	s.Handler().ServeHTTP(rec, req)
	wantBody(t, rec.body, "/10.bin", 1, 0, 10)
	s.Close()
	rec = &recorder{h: http.Header{}}
	s.Handler().ServeHTTP(rec, req)
	if rec.code != 503 {
		t.Fatalf("after Close: %d", rec.code)
	}
}

type recorder struct {
	h    http.Header
	code int
	body []byte
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(p []byte) (int, error) { r.body = append(r.body, p...); return len(p), nil }
func (r *recorder) WriteHeader(code int)        { r.code = code }

// BenchmarkGet measures ranged GETs of 1 MiB over loopback.
func BenchmarkGet(b *testing.B) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.SetBytes(1 << 20)
	for i := 0; b.Loop(); i++ {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"/1GiB.mp4", nil)
		off := int64(i%1024) << 20
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+1<<20-1))
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != 1<<20 {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}
