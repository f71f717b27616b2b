package edge_test

import (
	"net/http"
	"testing"
	"time"
)

// TestNotModifiedUpdatesHeaders: a 304 to a revalidation updates the
// stored headers with its own (RFC 9111 §4.3.4): a new Cache-Control and a
// new end-to-end field take effect, while the fields that describe the
// stored bytes (Content-Length, Content-Encoding, Content-Range) are
// kept, whatever the 304 says; the bytes are not fetched again. (A 304
// whose validator names another representation updates nothing:
// golden/freshness.txt.)
func TestNotModifiedUpdatesHeaders(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/2MiB-304.bin"
	h.origin.SetPathMode(path, ccMode("max-age=60"))
	h.warm(t, path)
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("If-None-Match") == "" {
			return false
		}
		hd := w.Header()
		hd.Set("Cache-Control", "max-age=600")
		hd.Set("X-Origin-Note", "refreshed")
		hd.Set("Content-Encoding", "gzip")
		hd.Set("Content-Range", "bytes 0-9/10")
		w.WriteHeader(http.StatusNotModified)
		return true
	})
	h.advance(61 * time.Second)
	before := h.origin.BodyBytes()
	resp, body := h.get(t, path)
	if resp.StatusCode != 200 || int64(len(body)) != 2*MiB {
		t.Fatalf("after the 304: status %d, %d bytes", resp.StatusCode, len(body))
	}
	wantBytes(t, "after the 304", body, path, 1, 0)
	for k, want := range map[string]string{
		"Cache-Control":    "max-age=600",
		"X-Origin-Note":    "refreshed",
		"Content-Encoding": "",
		"Content-Length":   "2097152",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if got := h.origin.BodyBytes() - before; got != 0 {
		t.Errorf("the origin sent %d body bytes for a 304 revalidation", got)
	}
	// The 304's max-age=600 counts from the revalidation.
	h.advance(300 * time.Second)
	if resp, _ := h.get(t, path, "Range: bytes=0-9"); resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("300 s into a 600 s lifetime from the 304: X-Cache %q, want HIT", resp.Header.Get("X-Cache"))
	}
}
