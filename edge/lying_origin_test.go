package edge_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// lyingPartial writes the headers of a 206 for bytes [a, b] of path's
// version 1 (of size bytes), with extra headers as "Name: value", and the
// status line: a chunked body when no Content-Length is among them.
func lyingPartial(w http.ResponseWriter, path string, a, b, size int64, extra ...string) {
	h := w.Header()
	h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, size))
	h.Set("ETag", origintest.ETag(path, 1))
	h.Set("Cache-Control", "max-age=3600")
	h.Set("Content-Type", "application/octet-stream")
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, ": ")
		h.Set(k, v)
	}
	w.WriteHeader(http.StatusPartialContent)
	if h.Get("Content-Length") == "" {
		w.(http.Flusher).Flush() // no length can be inferred now: chunked
	}
}

// gzipOf is p gzipped, cut or padded with zeros to n bytes when n > 0.
func gzipOf(p []byte, n int) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(p)
	zw.Close()
	out := buf.Bytes()
	if n > 0 {
		out = append(out, make([]byte, max(n-len(out), 0))...)[:n]
	}
	return out
}

// A fill answered with something other than one part of identity bytes of
// exactly the range asked for puts no wrong byte on the wire and leaves no
// slice of it in the store: the client gets the right bytes, or a 502, or
// a cut, and once the origin behaves the lying slices are fetched again.
func TestLyingFillsNotStored(t *testing.T) {
	const size = 4 * MiB
	cases := []struct {
		name string
		// lie answers the fill of bytes [a, b] of path.
		lie func(w http.ResponseWriter, path string, a, b int64)
	}{
		{"multipart/byteranges, chunked", func(w http.ResponseWriter, p string, a, b int64) {
			lyingPartial(w, p, a, b, size, "Content-Type: multipart/byteranges; boundary=XYZ")
			fmt.Fprintf(w, "--XYZ\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes %d-%d/%d\r\n\r\n", a, b, size)
			w.Write(origintest.Expected(p, 1, a, b+1))
			fmt.Fprintf(w, "\r\n--XYZ--\r\n")
		}},
		{"multipart/byteranges, cut to the range's length", func(w http.ResponseWriter, p string, a, b int64) {
			lyingPartial(w, p, a, b, size, "Content-Type: multipart/byteranges; boundary=XYZ", fmt.Sprintf("Content-Length: %d", b-a+1))
			body := origintest.Expected(p, 1, a, b+1)
			copy(body, fmt.Sprintf("--XYZ\r\nContent-Range: bytes %d-%d/%d\r\n\r\n", a, b, size))
			w.Write(body)
		}},
		{"gzip, padded to the range's length", func(w http.ResponseWriter, p string, a, b int64) {
			lyingPartial(w, p, a, b, size, "Content-Encoding: gzip", fmt.Sprintf("Content-Length: %d", b-a+1))
			w.Write(gzipOf(origintest.Expected(p, 1, a, b+1), int(b-a+1)))
		}},
		{"gzip, chunked", func(w http.ResponseWriter, p string, a, b int64) {
			lyingPartial(w, p, a, b, size, "Content-Encoding: gzip")
			w.Write(gzipOf(origintest.Expected(p, 1, a, b+1), 0))
		}},
		{"chunked, longer than its Content-Range", func(w http.ResponseWriter, p string, a, b int64) {
			// The range's right bytes, then more: which bytes were these?
			lyingPartial(w, p, a, b, size)
			w.Write(origintest.Expected(p, 1, a, b+1))
			w.Write(origintest.Expected(p, 1, b+1, min(b+1+64*KiB, size)))
			w.Write([]byte("and then some"))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// Not the chaos harness: making the lies takes long enough
			// under -race to trip its 500 ms read timeout.
			h := newHarness(t)
			const path = "/obj/4MiB-lie.bin" // 1 MiB slices
			prime(t, h, path)                // the meta and slice 0, learnt honestly
			h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				a, b, ok := rangeOf(r)
				if !ok || r.URL.Path != path || a < MiB {
					return false
				}
				c.lie(w, path, a, min(b, size-1))
				return true
			})
			const rng = "Range: bytes=1048576-4194303" // slices 1 to 3: one fill
			got := h.fetch(t, path, rng)
			switch got.status {
			case http.StatusPartialContent:
				// Right bytes, whole or cut: the lie may show only at
				// the end of an answer whose bytes were right.
				wantBytes(t, "client body", got.body, path, 1, MiB)
			case http.StatusBadGateway:
				if !strings.HasPrefix(string(got.body), "sliceedge: ") {
					t.Errorf("502 with an unclear body %q", got.body)
				}
			default:
				t.Fatalf("status %d (err %v, body %.200q), want 206 or 502", got.status, got.err, got.body)
			}
			t.Logf("client: status %d, %d bytes, err %v", got.status, len(got.body), got.err)
			h.settle(t)
			if n := h.store.Stats().Slices; n != 1 {
				t.Errorf("store holds %d slices, want only the honest slice 0", n)
			}
			if v := metricValue(h.metrics(t), `sliceedge_origin_errors_total{kind="bad_answer"}`); v < 1 {
				t.Errorf(`origin_errors_total{kind="bad_answer"} = %v, want >= 1`, v)
			}

			// The origin behaves: the slices come from it again, right,
			// and then from the store.
			h.setHook(noHook)
			before := h.origin.PathRequests(path)
			for _, want := range []string{"MISS", "HIT"} {
				got := h.fetch(t, path, rng)
				if got.status != http.StatusPartialContent || got.err != nil || int64(len(got.body)) != 3*MiB {
					t.Fatalf("after healing (%s): status %d, %d bytes, %v", want, got.status, len(got.body), got.err)
				}
				wantBytes(t, "after healing", got.body, path, 1, MiB)
				if xc := got.header.Get("X-Cache"); xc != want {
					t.Errorf("after healing: X-Cache %q, want %s", xc, want)
				}
				h.settle(t)
			}
			if n := h.origin.PathRequests(path) - before; n != 1 {
				t.Errorf("%d origin requests to refetch the lying slices, want 1", n)
			}
		})
	}
}
