package edge_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
)

// TestConsistencyClasses: an object is cached whatever validator it has
// (RFC 9111 §3 asks for none), and its class says how a fill from a later
// origin request is proved to be the stored version: If-Match with a
// strong ETag; If-Unmodified-Since with Last-Modified, the length checked
// too (a weak ETag proves nothing for ranges, RFC 9110 §8.8.1); with
// neither, nothing can be proved, so a slice missing later makes the
// object be fetched again as a new version, and the old slices go. The
// class shows in Cache-Status and inspect.
func TestConsistencyClasses(t *testing.T) {
	const size = 40 * MiB // 1 MiB slices, runs of 16
	for _, tc := range []struct {
		class string
		mode  origintest.Mode
	}{
		{"strong-etag", origintest.Mode{}},
		{"last-modified", origintest.Mode{WeakETag: true}},
		{"none", origintest.Mode{NoValidator: true}},
	} {
		t.Run(tc.class, func(t *testing.T) {
			h := newHarness(t)
			path := "/class/" + tc.class + ".bin"
			h.origin.Add(path, size)
			h.origin.SetPathMode(path, tc.mode)
			get := func(what string, start, end int64, cache string, origin int64) *http.Response {
				t.Helper()
				resp, body := h.get(t, path, fmt.Sprintf("Range: bytes=%d-%d", start, end-1))
				if resp.StatusCode != 206 || int64(len(body)) != end-start {
					t.Fatalf("%s: status %d, %d bytes", what, resp.StatusCode, len(body))
				}
				wantBytes(t, what, body, path, 1, start)
				if got := resp.Header.Get("X-Cache"); got != cache {
					t.Errorf("%s: X-Cache %q, want %q", what, got, cache)
				}
				if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "; class="+tc.class) {
					t.Errorf("%s: Cache-Status %q does not name class %s", what, cs, tc.class)
				}
				h.settle(t)
				if got := h.origin.PathRequests(path); got != origin {
					t.Fatalf("%s: the origin saw %d requests, want %d", what, got, origin)
				}
				return resp
			}
			get("cold", 100, 200, "MISS", 1) // slice 0 only
			get("again", 100, 200, "HIT", 1)

			var in edge.Inspection
			if code := h.admin(t, "GET", "/inspect", url.Values{"url": {"http://edge.test" + path}}, &in); code != 200 || in.Class != tc.class {
				t.Errorf("inspect: status %d, class %q, want %q", code, in.Class, tc.class)
			}

			// Another slice: a fill, conditional on the class's
			// validator, or a new version.
			get("another slice", 20*MiB+5, 20*MiB+100, "MISS", 2)
			last := h.origin.LastRequests()
			fill := last[len(last)-1]
			switch tc.class {
			case "strong-etag":
				if fill.IfMatch != origintest.ETag(path, 1) || fill.IfUnmodifiedSince != "" {
					t.Errorf("fill: If-Match %q, If-Unmodified-Since %q; want If-Match with the ETag", fill.IfMatch, fill.IfUnmodifiedSince)
				}
			case "last-modified":
				if fill.IfMatch != "" || fill.IfUnmodifiedSince != origintest.LastModified(1).UTC().Format(http.TimeFormat) {
					t.Errorf("fill: If-Match %q, If-Unmodified-Since %q; want If-Unmodified-Since with the Last-Modified", fill.IfMatch, fill.IfUnmodifiedSince)
				}
			case "none":
				if fill.IfMatch != "" || fill.IfUnmodifiedSince != "" {
					t.Errorf("refetch: If-Match %q, If-Unmodified-Since %q; want neither", fill.IfMatch, fill.IfUnmodifiedSince)
				}
				if c := h.edge.Counters(); c.UnprovenRefetch != 1 {
					t.Errorf("UnprovenRefetch = %d, want 1", c.UnprovenRefetch)
				}
			}
			// What the store holds: both slices, or for class none only
			// the new version's.
			wantSlices := int64(2)
			if tc.class == "none" {
				wantSlices = 1
			}
			if st := h.store.Stats(); st.Slices != wantSlices || st.Objects != 1 {
				t.Errorf("the store holds %d objects, %d slices; want 1, %d", st.Objects, st.Slices, wantSlices)
			}
			// The first slice again: stored in two classes, fetched
			// again (a new version once more) in the third.
			if tc.class == "none" {
				get("the first slice, dropped", 100, 200, "MISS", 3)
			} else {
				get("the first slice, kept", 100, 200, "HIT", 2)
			}
		})
	}
}

// TestLastModifiedClassLengthChecked: in the Last-Modified class an answer
// with the same Last-Modified but another length is another version: a
// fill that finds it fails before a byte is sent, and the request is
// answered from the new version whole (never stitched).
func TestLastModifiedClassLengthChecked(t *testing.T) {
	h := newHarness(t)
	const path = "/class/lm-length.bin"
	h.origin.Add(path, 40*MiB)
	h.origin.SetPathMode(path, origintest.Mode{WeakETag: true})
	resp, body := h.get(t, path, "Range: bytes=0-99")
	if resp.StatusCode != 206 || len(body) != 100 {
		t.Fatalf("cold: status %d, %d bytes", resp.StatusCode, len(body))
	}
	h.settle(t)
	// Same version, so the same Last-Modified and bytes, but 8 MiB
	// longer: only the length tells.
	h.origin.Add(path, 48*MiB)
	h.origin.SetVersion(path, 1)
	resp, body = h.get(t, path, "Range: bytes=41943000-41943099")
	if resp.StatusCode != 206 || len(body) != 100 {
		t.Fatalf("past the old end: status %d, %d bytes", resp.StatusCode, len(body))
	}
	wantBytes(t, "past the old end", body, path, 1, 41943000)
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 41943000-41943099/%d", 48*MiB) {
		t.Errorf("Content-Range %q, want the new length", cr)
	}
}
