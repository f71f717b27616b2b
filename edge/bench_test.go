package edge_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// discard is a ResponseWriter that drops the body: the handler's own cost.
type discard struct {
	h      http.Header
	status int
	n      int64
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.status = code }
func (d *discard) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

// BenchmarkServeHit measures the handler answering a 256 KiB range from
// stored slices: time, bytes and allocations per request.
func BenchmarkServeHit(b *testing.B) {
	h := newHarness(b)
	const path = "/obj/64MiB.bin"
	resp, _ := h.get(b, path)
	if resp.StatusCode != 200 {
		b.Fatal(resp.Status)
	}
	h.settle(b)
	req := httptest.NewRequest("GET", "http://edge.test"+path, nil)
	w := &discard{h: http.Header{}}
	b.SetBytes(256 << 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		start := int64(i%200) * 300 << 10
		i++
		req.Header.Set("Range", "bytes="+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(start+256<<10-1, 10))
		clear(w.h)
		w.status, w.n = 0, 0
		h.edge.ServeHTTP(w, req)
		if w.status != 206 || w.n != 256<<10 {
			b.Fatalf("status %d, %d bytes", w.status, w.n)
		}
	}
}

// BenchmarkServeHitTCP is BenchmarkServeHit over a real connection on
// loopback: the client's request, the handler, and the body sent from the
// slice files to the socket with sendfile, read and dropped by the client.
// (BenchmarkServeHit's writer has no ReadFrom, so there the body is copied
// through a buffer.)
func BenchmarkServeHitTCP(b *testing.B) {
	h := newHarness(b)
	const path = "/obj/64MiB.bin"
	resp, _ := h.get(b, path)
	if resp.StatusCode != 200 {
		b.Fatal(resp.Status)
	}
	h.settle(b)
	client := h.srv.Client()
	b.SetBytes(256 << 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		start := int64(i%200) * 300 << 10
		i++
		req, err := http.NewRequest("GET", h.srv.URL+path, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Range", "bytes="+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(start+256<<10-1, 10))
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 206 || n != 256<<10 {
			b.Fatalf("status %d, %d bytes, %v", resp.StatusCode, n, err)
		}
	}
}
