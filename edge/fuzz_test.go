package edge_test

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

var fuzzMethods = []string{"GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"}

// FuzzHandler drives the whole handler, over real HTTP, against a real
// store and a healthy test origin, with random methods, paths, Range and
// conditional headers: no panic (an aborted connection), no 5xx, and every
// 200/206 body byte-correct. One harness serves every input of a fuzz
// process, so the store accumulates state across inputs.
func FuzzHandler(f *testing.F) {
	f.Add(byte(0), "obj/4MiB.bin", "bytes=0-99", "", "")
	f.Add(byte(0), "obj/3MiB.bin", "bytes=1048570-1048580,-5", "", "")
	f.Add(byte(0), "big/8MiB.bin", "bytes=5000000-", "\"x\"", "")
	f.Add(byte(3), "lm/1MiB.bin", "bytes=-100", "", "*")
	f.Add(byte(0), "obj/%2e%2e/1MiB.bin", "bytes=0-0,2-2,4-4", "", "")
	f.Add(byte(4), "obj/2MiB.bin", "", "", "")
	f.Add(byte(0), "noheur/100KiB", "bytes=99999-", "Mon, 01 Jan 2024 00:01:00 GMT", "")
	f.Add(byte(0), "obj/0.bin", "bytes=0-", "", "")
	f.Add(byte(0), "obj/12345.bin?a=1", "bytes=12000-12344,0-10", "", "\"zz\", W/\"y\"")
	h := newHarness(f)
	f.Fuzz(func(t *testing.T, m byte, p, rng, ifRange, ifNoneMatch string) {
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		req, err := http.NewRequest(method, h.srv.URL+"/"+p, nil)
		if err != nil {
			return
		}
		// The object name the origin sees: the path without dot segments.
		name := withoutDotSegments(t, (&url.URL{Path: req.URL.Path}).EscapedPath())
		name, _ = url.PathUnescape(name)
		if size, ok := origintest.SyntheticSize(path.Base(name)); ok && size > 8*MiB {
			return // keep every input cheap
		}
		req.Host = "edge.test"
		for k, v := range map[string]string{"Range": rng, "If-Range": ifRange, "If-None-Match": ifNoneMatch} {
			if v != "" {
				req.Header[k] = []string{v}
			}
		}
		if err := req.Write(io.Discard); err != nil {
			return // not a request a client can send
		}
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			if strings.Contains(err.Error(), "invalid header") || strings.Contains(err.Error(), "invalid method") {
				return
			}
			t.Fatalf("%s %q Range %q If-Range %q If-None-Match %q: %v", method, req.URL, rng, ifRange, ifNoneMatch, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		what := fmt.Sprintf("%s %q Range %q If-Range %q If-None-Match %q: status %d", method, req.URL, rng, ifRange, ifNoneMatch, resp.StatusCode)
		if err != nil {
			t.Fatalf("%s: body cut: %v", what, err)
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("%s: %q", what, body)
		}
		if method != http.MethodGet || resp.Header.Get("X-Cache") == "PASS" && resp.StatusCode/100 != 2 {
			return
		}
		switch resp.StatusCode {
		case http.StatusOK:
			checkFuzzBody(t, what, body, name, 0)
			if resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
				t.Fatalf("%s: %d bytes, Content-Length %d", what, len(body), resp.ContentLength)
			}
		case http.StatusPartialContent:
			mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if mt != "multipart/byteranges" {
				var a, b, total int64
				if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &a, &b, &total); err != nil || int64(len(body)) != b-a+1 {
					t.Fatalf("%s: Content-Range %q with %d bytes", what, resp.Header.Get("Content-Range"), len(body))
				}
				checkFuzzBody(t, what, body, name, a)
				return
			}
			mr := multipart.NewReader(strings.NewReader(string(body)), params["boundary"])
			for {
				part, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: multipart: %v", what, err)
				}
				var a, b, total int64
				pb, _ := io.ReadAll(part)
				if _, err := fmt.Sscanf(part.Header.Get("Content-Range"), "bytes %d-%d/%d", &a, &b, &total); err != nil || int64(len(pb)) != b-a+1 {
					t.Fatalf("%s: part Content-Range %q with %d bytes", what, part.Header.Get("Content-Range"), len(pb))
				}
				checkFuzzBody(t, what, pb, name, a)
			}
		}
	})
}

// checkFuzzBody checks body against the origin's bytes of name (version 1:
// the fuzz origin never changes) from offset off. A name the origin does
// not know as an object (no size) is not checked.
func checkFuzzBody(t *testing.T, what string, body []byte, name string, off int64) {
	t.Helper()
	if _, ok := origintest.SyntheticSize(path.Base(name)); !ok {
		return
	}
	if at, ok := origintest.Verify(body, name, 1, off); !ok {
		t.Fatalf("%s: wrong byte at object offset %d of %q", what, at, name)
	}
}
