package edge_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// headerSetter adds headers to every answer of the origin, as an
// application server in front of the files would.
type headerSetter struct {
	http.ResponseWriter
	set   http.Header
	wrote bool
}

func (w *headerSetter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		for k, vv := range w.set {
			w.Header()[k] = vv
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerSetter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *headerSetter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestOneOriginRequestPerMiss: whatever an answer turns out to be, a
// client's miss costs one origin request. An answer the edge may not store
// (RFC 9111 §3) is the answer to the request whose discovery asked for it:
// it streams through, cut to what that client asked for, and later
// requests go straight to the origin (hit-for-pass), one request each.
func TestOneOriginRequestPerMiss(t *testing.T) {
	const size = 3*MiB + 12345 // several slices, within one discovery run
	kinds := []struct {
		name   string
		mode   origintest.Mode
		header http.Header // added to the origin's answers
		detail string      // in Cache-Status
	}{
		{name: "no-store", mode: ccMode("max-age=60, no-store"), detail: "no-store"},
		{name: "private", mode: ccMode("private, max-age=60"), detail: "private"},
		{name: "Set-Cookie", header: http.Header{"Set-Cookie": {"session=1; Path=/"}}, detail: "Set-Cookie"},
		{name: "unknown length", mode: origintest.Mode{Chunked: true, NoRange: true}, detail: "unknown length"},
	}
	requests := []struct {
		name    string
		method  string
		headers []string
		status  int
		start   int64 // first byte of the body, for status 200 and 206
		n       int64 // body bytes
	}{
		{name: "full GET", method: "GET", status: 200, start: 0, n: size},
		{name: "range", method: "GET", headers: []string{"Range: bytes=1048000-1049999"}, status: 206, start: 1048000, n: 2000},
		{name: "suffix", method: "GET", headers: []string{"Range: bytes=-5000"}, status: 206, start: size - 5000, n: 5000},
		{name: "open range", method: "GET", headers: []string{"Range: bytes=2000000-"}, status: 206, start: 2000000, n: size - 2000000},
		{name: "HEAD", method: "HEAD", status: 200},
		{name: "past the end", method: "GET", headers: []string{fmt.Sprintf("Range: bytes=%d-", size+10)}, status: 416},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			h := newHarness(t)
			if k.header != nil {
				h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					h.origin.Handler().ServeHTTP(&headerSetter{ResponseWriter: w, set: k.header}, r)
					return true
				})
			}
			var passes int64
			for _, rq := range requests {
				p := "/one/" + strings.ReplaceAll(k.name+"-"+rq.name, " ", "-") + ".bin"
				h.origin.Add(p, size)
				h.origin.SetPathMode(p, k.mode)
				for n := int64(1); n <= 3; n++ {
					resp, body := h.do(t, rq.method, p, rq.headers...)
					what := fmt.Sprintf("%s %s, request %d", rq.name, p, n)
					if k.mode.NoRange && rq.status == 206 {
						// An origin that ignores Range and sends no length:
						// its whole 200 is the answer (RFC 9110 §14.2
						// lets a server ignore Range).
						rq.status, rq.start, rq.n = 200, 0, size
					}
					if k.mode.NoRange && rq.status == 416 {
						rq.status, rq.start, rq.n = 200, 0, size
					}
					if resp.StatusCode != rq.status {
						t.Fatalf("%s: status %d, want %d", what, resp.StatusCode, rq.status)
					}
					if got := h.origin.PathRequests(p); got != n {
						t.Fatalf("%s: the origin saw %d requests for %d client requests", what, got, n)
					}
					cs := resp.Header.Get("Cache-Status")
					if n == 1 && !strings.Contains(cs, `detail="`+k.detail+`"`) {
						t.Errorf("%s: Cache-Status %q does not say %q", what, cs, k.detail)
					}
					if resp.Header.Get("X-Cache") != "PASS" {
						t.Errorf("%s: X-Cache %q, want PASS", what, resp.Header.Get("X-Cache"))
					} else {
						passes++
					}
					if rq.status == 416 {
						// The body of a pass-through's 416 is the origin's.
						if cr, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes */%d", size); cr != want {
							t.Errorf("%s: Content-Range %q, want %q", what, cr, want)
						}
						continue
					}
					if rq.method == "HEAD" {
						if len(body) != 0 {
							t.Errorf("%s: %d body bytes, want none", what, len(body))
						}
						if rq.method == "HEAD" && !k.mode.Chunked && resp.ContentLength != size {
							t.Errorf("%s: Content-Length %d, want %d", what, resp.ContentLength, size)
						}
						continue
					}
					if int64(len(body)) != rq.n {
						t.Fatalf("%s: %d body bytes, want %d", what, len(body), rq.n)
					}
					wantBytes(t, what, body, p, 1, rq.start)
					if rq.status == 206 {
						want := fmt.Sprintf("bytes %d-%d/%d", rq.start, rq.start+rq.n-1, size)
						if cr := resp.Header.Get("Content-Range"); cr != want {
							t.Errorf("%s: Content-Range %q, want %q", what, cr, want)
						}
					}
				}
			}
			h.settle(t)
			if st := h.store.Stats(); st.Slices != 0 {
				t.Errorf("the store holds %d slices of uncacheable answers", st.Slices)
			}
			// sliceedge stats counts them all as passed through (each
			// once its handler has returned, after the client has the
			// answer).
			origintest.WaitFor(t, fmt.Sprintf("Counters().Passed to reach the %d answers marked PASS", passes), func() bool {
				return h.edge.Counters().Passed == passes
			})
		})
	}
}

// TestOneOriginRequestConditional: a client's conditional request on an
// uncacheable object is answered from the discovery's answer too: 304
// when its validator matches (If-None-Match compares weakly, RFC 9110
// §13.1.2), 412 when If-Match fails, and the object when neither applies.
func TestOneOriginRequestConditional(t *testing.T) {
	const size = 200000
	h := newHarness(t)
	for _, tc := range []struct {
		name   string
		mode   origintest.Mode
		header string
		status int
	}{
		{"strong match", ccMode("no-store"), "If-None-Match: " + origintest.ETag("/cond/strong-match.bin", 1), 304},
		{"weak match", origintest.Mode{WeakETag: true}, "If-None-Match: " + origintest.ETag("/cond/weak-match.bin", 1), 304},
		{"no match", ccMode("no-store"), `If-None-Match: "other"`, 200},
		{"If-Match fails", ccMode("no-store"), `If-Match: "other"`, 412},
	} {
		p := "/cond/" + strings.ReplaceAll(tc.name, " ", "-") + ".bin"
		h.origin.Add(p, size)
		h.origin.SetPathMode(p, tc.mode)
		resp, body := h.get(t, p, tc.header)
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		if got := h.origin.PathRequests(p); got != 1 {
			t.Errorf("%s: the origin saw %d requests, want 1", tc.name, got)
		}
		if tc.status == 200 {
			if int64(len(body)) != size {
				t.Fatalf("%s: %d bytes, want %d", tc.name, len(body), size)
			}
			wantBytes(t, tc.name, body, p, 1, 0)
		} else if len(body) != 0 {
			t.Errorf("%s: %d body bytes with status %d", tc.name, len(body), tc.status)
		}
	}
}

// TestOpenRangeDiscovery: a full GET, or a range to the end, asks the
// origin for everything from its first slice ("bytes=N-"), so that one
// answer serves the client whatever it turns out to be: an uncacheable
// object larger than a run streams through whole, and a cacheable one is
// cut into slices as it passes, every slice fetched once.
func TestOpenRangeDiscovery(t *testing.T) {
	const size = 40*MiB + 777 // more than one run of 16 1 MiB slices
	h := newHarness(t)
	for _, tc := range []struct {
		path   string
		mode   origintest.Mode
		header []string
		start  int64
		stored int64 // slices stored afterwards
	}{
		{path: "/open/no-store.bin", mode: ccMode("no-store")},
		{path: "/open/no-store-from.bin", mode: ccMode("no-store"), header: []string{"Range: bytes=5000000-"}, start: 5000000},
		{path: "/open/cached.bin", stored: 41},
		{path: "/open/cached-from.bin", header: []string{"Range: bytes=5000000-"}, start: 5000000, stored: 41 - 4},
	} {
		h.origin.Add(tc.path, size)
		h.origin.SetPathMode(tc.path, tc.mode)
		resp, body := h.get(t, tc.path, tc.header...)
		if int64(len(body)) != size-tc.start {
			t.Fatalf("%s: status %d, %d bytes, want %d", tc.path, resp.StatusCode, len(body), size-tc.start)
		}
		wantBytes(t, tc.path, body, tc.path, 1, tc.start)
		h.settle(t)
		if got := h.origin.PathRequests(tc.path); got != 1 {
			t.Errorf("%s: the origin saw %d requests, want 1", tc.path, got)
		}
		// Slice-aligned: the bytes of the first slice before the range
		// come too.
		if got, want := h.origin.PathBodyBytes(tc.path), size-tc.start/MiB*MiB; got != want {
			t.Errorf("%s: the origin sent %d body bytes, want %d", tc.path, got, want)
		}
		if st := h.store.Stats(); st.Slices != 0 && tc.stored == 0 {
			t.Errorf("%s: %d slices stored of an uncacheable object", tc.path, st.Slices)
		}
		if tc.stored > 0 {
			resp, body := h.get(t, tc.path, tc.header...)
			wantBytes(t, tc.path+", again", body, tc.path, 1, tc.start)
			if int64(len(body)) != size-tc.start || resp.Header.Get("X-Cache") != "HIT" {
				t.Errorf("%s again: %d bytes, X-Cache %q; want every byte from the store", tc.path, len(body), resp.Header.Get("X-Cache"))
			}
			if got := h.origin.PathRequests(tc.path); got != 1 {
				t.Errorf("%s: the origin saw %d requests after a hit, want 1", tc.path, got)
			}
		}
	}
}

// TestOpenRangeStopsWhenClientLeaves: the answer to a full GET's open
// range goes on while a client reads it, and stops soon after its first
// run once the client has gone, as a fetch of that run would: a probe of
// a large object does not fetch all of it.
func TestOpenRangeStopsWhenClientLeaves(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/64MiB-probe.bin" // 1 MiB slices, runs of 16
	const size = 64 * MiB
	h.origin.SetPathMode(path, origintest.Mode{Bandwidth: 32 * MiB})
	h.openHead(t, path, 1536*KiB).Body.Close()
	h.settle(t)
	sent := h.origin.BodyBytes()
	t.Logf("the origin sent %.1f MiB", float64(sent)/(1<<20))
	if sent < 16*MiB || sent > 24*MiB {
		t.Errorf("the origin sent %d MiB after the only client left at 1.5 MiB; want the first run (16 MiB) and what was in flight", sent>>20)
	}
	stored := h.store.Stats().Slices
	if stored < 16 || stored*MiB > sent {
		t.Errorf("%d slices stored from %d bytes sent: want the first run's, complete", stored, sent)
	}
	resp, body := h.get(t, path)
	if int64(len(body)) != size || resp.Header.Get("X-Cache") != "PARTIAL" {
		t.Fatalf("after the probe: %d bytes, X-Cache %q; want the whole object, PARTIAL", len(body), resp.Header.Get("X-Cache"))
	}
	wantBytes(t, "after the probe", body, path, 1, 0)
}

// TestEmptyObject: a 0-byte object is cached like any other. A GET or HEAD
// of it is a hit after the first, and a Range on it is unsatisfiable: 416
// with "bytes */0" (RFC 9110 §14.1.1, §15.5.17). An origin that answers
// the discovery's range with 416 itself (as the test origin and S3 do)
// says the object is empty but not what its headers are: that one miss is
// answered 200 from it, and nothing is stored.
func TestEmptyObject(t *testing.T) {
	h := newHarness(t)
	// nginx, Apache and python answer a range of an empty file with 200.
	const path = "/empty/200.bin"
	h.origin.Add(path, 0)
	h.origin.SetPathMode(path, origintest.Mode{NoRange: true})
	etag := ""
	for n, want := range []string{"MISS", "HIT", "HIT"} {
		resp, body := h.get(t, path)
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 0 || resp.Header.Get("X-Cache") != want {
			t.Fatalf("GET %d: status %d, %d bytes, Content-Length %d, X-Cache %q; want 200, empty, %s",
				n, resp.StatusCode, len(body), resp.ContentLength, resp.Header.Get("X-Cache"), want)
		}
		if n == 0 {
			etag = resp.Header.Get("ETag")
		}
		if got := resp.Header.Get("ETag"); got == "" || got != etag {
			t.Errorf("GET %d: ETag %q, want the origin's %q", n, got, etag)
		}
	}
	resp, _ := h.do(t, http.MethodHead, path)
	if resp.StatusCode != 200 || resp.ContentLength != 0 || resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("HEAD: status %d, Content-Length %d, X-Cache %q; want 200, 0, HIT", resp.StatusCode, resp.ContentLength, resp.Header.Get("X-Cache"))
	}
	resp, _ = h.get(t, path, "Range: bytes=0-")
	if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */0" || resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("Range: status %d, Content-Range %q, X-Cache %q; want 416, bytes */0, HIT", resp.StatusCode, resp.Header.Get("Content-Range"), resp.Header.Get("X-Cache"))
	}
	if got := h.origin.PathRequests(path); got != 1 {
		t.Errorf("the origin saw %d requests, want 1", got)
	}

	// The test origin answers 416 to bytes=0- of an empty object.
	const p416 = "/empty/416.bin"
	h.origin.Add(p416, 0)
	resp, body := h.get(t, p416)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 0 {
		t.Fatalf("GET after a 416: status %d, %d bytes, Content-Length %d; want 200, empty", resp.StatusCode, len(body), resp.ContentLength)
	}
	if got := h.origin.PathRequests(p416); got != 1 {
		t.Errorf("the origin saw %d requests for one GET, want 1", got)
	}
	resp, _ = h.get(t, p416, "Range: bytes=0-99")
	if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */0" {
		t.Errorf("Range after a 416: status %d, Content-Range %q; want 416, bytes */0", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
}
