package origin_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/slicer"
)

const answerPath = "/lie/4MiB.bin"

// lie answers a request for bytes [a, b] of answerPath (4 MiB, version 1).
type lie func(w http.ResponseWriter, a, b int64)

// partial writes the headers of a 206 for [a, b], whose body the caller
// then writes.
func partial(w http.ResponseWriter, a, b int64, extra ...string) {
	h := w.Header()
	h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, 4*MiB))
	h.Set("ETag", origintest.ETag(answerPath, 1))
	h.Set("Content-Type", "application/octet-stream")
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, ": ")
		h.Set(k, v)
	}
}

// gzipped is p compressed, padded with zeros to n bytes when it is shorter
// (gzip readers ignore what follows the stream).
func gzipped(p []byte, n int) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(p)
	zw.Close()
	out := buf.Bytes()
	if len(out) < n {
		out = append(out, make([]byte, n-len(out))...)
	}
	return out[:n]
}

// Every answer that is not one part of identity bytes of the range asked
// for is refused with ErrBadAnswer before a byte of it is used, whatever
// its Content-Range says.
func TestFetchRefusesWrongKindsOfAnswer(t *testing.T) {
	tests := []struct {
		name string
		lie  lie
	}{
		{"multipart/byteranges 206 to one range", func(w http.ResponseWriter, a, b int64) {
			body := origintest.Expected(answerPath, 1, a, b+1)
			mp := fmt.Sprintf("--XYZ\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes %d-%d/%d\r\n\r\n%s\r\n--XYZ--\r\n", a, b, 4*MiB, body)
			partial(w, a, b, "Content-Type: multipart/byteranges; boundary=XYZ")
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, mp)
		}},
		{"multipart/byteranges, padded to the range's length", func(w http.ResponseWriter, a, b int64) {
			partial(w, a, b, "Content-Type: Multipart/Byteranges;boundary=XYZ", fmt.Sprintf("Content-Length: %d", b-a+1))
			w.WriteHeader(http.StatusPartialContent)
			body := origintest.Expected(answerPath, 1, a, b+1)
			copy(body, "--XYZ\r\nContent-Range: ...\r\n\r\n")
			w.Write(body)
		}},
		{"gzip padded to the range's length", func(w http.ResponseWriter, a, b int64) {
			partial(w, a, b, "Content-Encoding: gzip", fmt.Sprintf("Content-Length: %d", b-a+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(gzipped(origintest.Expected(answerPath, 1, a, b+1), int(b-a+1)))
		}},
		{"gzip chunked", func(w http.ResponseWriter, a, b int64) {
			partial(w, a, b, "Content-Encoding: gzip")
			w.WriteHeader(http.StatusPartialContent)
			w.(http.Flusher).Flush()
			w.Write(gzipped(origintest.Expected(answerPath, 1, a, b+1), 0))
		}},
		{"gzip behind identity", func(w http.ResponseWriter, a, b int64) {
			partial(w, a, b, "Content-Encoding: identity, gzip", fmt.Sprintf("Content-Length: %d", b-a+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(gzipped(origintest.Expected(answerPath, 1, a, b+1), int(b-a+1)))
		}},
		{"gzip named in Connection", func(w http.ResponseWriter, a, b int64) {
			partial(w, a, b, "Content-Encoding: gzip", "Connection: Content-Encoding", fmt.Sprintf("Content-Length: %d", b-a+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(gzipped(origintest.Expected(answerPath, 1, a, b+1), int(b-a+1)))
		}},
		{"gzip 200 to a range", func(w http.ResponseWriter, a, b int64) {
			w.Header().Set("ETag", origintest.ETag(answerPath, 1))
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", fmt.Sprint(4*MiB))
			w.WriteHeader(http.StatusOK)
			w.Write(gzipped(origintest.Expected(answerPath, 1, 0, 4*MiB), 4*MiB))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var a, b int64
				if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b); err != nil {
					t.Errorf("Range %q", r.Header.Get("Range"))
				}
				tt.lie(w, a, b)
			}))
			defer srv.Close()
			c := origin.NewClient(origin.Options{})
			defer c.Close()
			req := &origin.Request{URL: srv.URL + answerPath, Range: &slicer.Range{Start: MiB, End: 2 * MiB},
				IfMatch: origin.Validator{ETag: origintest.ETag(answerPath, 1)}}
			resp, err := c.Fetch(context.Background(), req)
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, origin.ErrBadAnswer) {
				t.Fatalf("Range %s: err = %v, want ErrBadAnswer", req.Range.Header(), err)
			}
		})
	}
}

// rawOrigin is an origin on a bare listener that writes reply(a, b)
// verbatim for a request of bytes=a-b and closes the connection: answers
// net/http would not write.
func rawOrigin(t *testing.T, reply func(a, b int64) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				var a, b int64
				fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b)
				io.WriteString(conn, reply(a, b))
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// chunk is one chunk of a chunked body.
func chunk(p []byte) string { return fmt.Sprintf("%x\r\n%s\r\n", len(p), p) }

// A body without Content-Length is checked at its end: bytes past the
// announced range are ErrBadAnswer, not silently cut; one that ends where
// it said reads back exactly.
func TestFetchChecksTheEndOfUnframedBodies(t *testing.T) {
	head := func(a, b int64, framing string) string {
		return fmt.Sprintf("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\nETag: %s\r\n%s\r\n",
			a, b, 4*MiB, origintest.ETag(answerPath, 1), framing)
	}
	want := func(a, b int64) []byte { return origintest.Expected(answerPath, 1, a, b+1) }
	tests := []struct {
		name    string
		reply   func(a, b int64) string
		wantErr error // nil: the body reads back right
	}{
		{"chunked, exact", func(a, b int64) string {
			return head(a, b, "Transfer-Encoding: chunked\r\n") + chunk(want(a, b)) + "0\r\n\r\n"
		}, nil},
		{"chunked, exact in many chunks", func(a, b int64) string {
			p, s := want(a, b), head(a, b, "Transfer-Encoding: chunked\r\n")
			for len(p) > 0 {
				n := min(len(p), 1000)
				s, p = s+chunk(p[:n]), p[n:]
			}
			return s + "0\r\n\r\n"
		}, nil},
		{"chunked, extra bytes in the last chunk", func(a, b int64) string {
			return head(a, b, "Transfer-Encoding: chunked\r\n") + chunk(append(want(a, b), "trailing lie"...)) + "0\r\n\r\n"
		}, origin.ErrBadAnswer},
		{"chunked, an extra chunk", func(a, b int64) string {
			return head(a, b, "Transfer-Encoding: chunked\r\n") + chunk(want(a, b)) + chunk([]byte("x")) + "0\r\n\r\n"
		}, origin.ErrBadAnswer},
		{"chunked, the whole object under the range's Content-Range", func(a, b int64) string {
			return head(a, b, "Transfer-Encoding: chunked\r\n") + chunk(origintest.Expected(answerPath, 1, 0, 4*MiB)) + "0\r\n\r\n"
		}, origin.ErrBadAnswer},
		{"chunked, cut before the last chunk", func(a, b int64) string {
			return head(a, b, "Transfer-Encoding: chunked\r\n") + chunk(want(a, b))
		}, origin.ErrTruncated},
		{"close-delimited, exact", func(a, b int64) string {
			return head(a, b, "Connection: close\r\n") + string(want(a, b))
		}, nil},
		{"close-delimited, extra bytes", func(a, b int64) string {
			return head(a, b, "Connection: close\r\n") + string(want(a, b)) + "more"
		}, origin.ErrBadAnswer},
	}
	c := origin.NewClient(origin.Options{ReadTimeout: 5 * time.Second})
	defer c.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := rawOrigin(t, tt.reply)
			rng := slicer.Range{Start: MiB, End: 2 * MiB}
			resp, body, err := fetch(t, c, &origin.Request{URL: url + answerPath, Range: &rng})
			if resp != nil && !resp.CheckedAtEnd {
				t.Errorf("an answer without Content-Length not marked CheckedAtEnd")
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v after %d bytes, want %v", err, len(body), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if int64(len(body)) != rng.Len() {
				t.Fatalf("body of %d bytes, want %d", len(body), rng.Len())
			}
			if at, ok := origintest.Verify(body, answerPath, 1, rng.Start); !ok {
				t.Fatalf("wrong byte at %d", at)
			}
		})
	}
	// With a Content-Length the transport stops at the length itself.
	o := origintest.NewTest(t)
	resp, _, err := fetch(t, c, &origin.Request{URL: o.URL() + answerPath, Range: &slicer.Range{Start: 0, End: MiB}})
	if err != nil || resp.CheckedAtEnd {
		t.Errorf("an answer with Content-Length: err %v, CheckedAtEnd %v; want nil, false", err, resp != nil && resp.CheckedAtEnd)
	}
}

// Hop-by-hop headers, and the headers a Connection header names, cross
// Fetch in neither direction (RFC 9110 §7.6.1): not to the origin, and not
// into an answer that would be stored and replayed.
func TestFetchDropsHopByHopHeaders(t *testing.T) {
	o := origintest.NewTest(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Origin-Hop, keep-alive")
		h.Add("Connection", "X-Other-Hop")
		h.Set("X-Origin-Hop", "secret")
		h.Set("X-Other-Hop", "secret")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Upgrade", "h2c")
		h.Set("X-End-To-End", "kept")
		if r.URL.Path == "/missing" {
			http.Error(w, "gone", http.StatusNotFound)
			return
		}
		o.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := origin.NewClient(origin.Options{})
	defer c.Close()
	reqHeader := http.Header{
		"Connection":   {"X-Client-Hop"},
		"X-Client-Hop": {"secret"},
		"Keep-Alive":   {"timeout=5"},
		"Te":           {"trailers"},
		"User-Agent":   {"player/1"},
	}
	resp, _, err := fetch(t, c, &origin.Request{URL: srv.URL + "/h/1MiB.bin", Header: reqHeader, Range: &slicer.Range{Start: 0, End: MiB}})
	if err != nil {
		t.Fatal(err)
	}
	hop := []string{"Connection", "X-Origin-Hop", "X-Other-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade"}
	for _, k := range hop {
		if v := resp.Header.Values(k); len(v) > 0 {
			t.Errorf("answer kept %s: %q", k, v)
		}
	}
	if resp.Header.Get("X-End-To-End") != "kept" || resp.Header.Get("ETag") == "" {
		t.Errorf("end-to-end headers lost: %v", resp.Header)
	}
	recs := o.LastRequests()
	sent := recs[len(recs)-1].Header
	for _, k := range []string{"X-Client-Hop", "Keep-Alive", "Te"} {
		if v := sent.Values(k); len(v) > 0 {
			t.Errorf("origin got the client's %s: %q", k, v)
		}
	}
	if sent.Get("User-Agent") != "player/1" {
		t.Errorf("User-Agent not forwarded: %v", sent)
	}
	if reqHeader.Get("X-Client-Hop") != "secret" {
		t.Errorf("Fetch changed the caller's header")
	}
	// A status the edge relays is stripped too.
	_, err = c.Fetch(context.Background(), &origin.Request{URL: srv.URL + "/missing", Range: &slicer.Range{Start: 0, End: MiB}})
	var se *origin.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("404: err = %v, want a *StatusError", err)
	}
	defer se.Resp.Body.Close()
	for _, k := range hop {
		if v := se.Resp.Header.Values(k); len(v) > 0 {
			t.Errorf("relayed 404 kept %s: %q", k, v)
		}
	}
}

// Response headers past MaxHeaderBytes (64 KiB by default) are
// ErrHeadersTooLarge, naming the limit and how to raise it, whether our
// own transport stops reading them or a given one read them whole.
func TestFetchHeadersTooLarge(t *testing.T) {
	o := origintest.NewTest(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 100 {
			w.Header().Set(fmt.Sprintf("X-Padding-%d", i), strings.Repeat("p", 1000)) // ~100 KiB
		}
		o.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	url := srv.URL + "/h/1MiB.bin"
	tests := []struct {
		name    string
		opts    origin.Options
		wantErr bool
	}{
		{"default limit", origin.Options{}, true},
		{"default limit, given transport", origin.Options{Transport: http.DefaultTransport.(*http.Transport).Clone()}, true},
		{"raised limit", origin.Options{MaxHeaderBytes: 1 << 20}, false},
		{"raised limit, given transport", origin.Options{MaxHeaderBytes: 1 << 20, Transport: http.DefaultTransport.(*http.Transport).Clone()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := origin.NewClient(tt.opts)
			defer c.Close()
			_, body, err := fetch(t, c, &origin.Request{URL: url, Range: &slicer.Range{Start: 0, End: MiB}})
			if !tt.wantErr {
				if err != nil || len(body) != MiB {
					t.Fatalf("err = %v, %d bytes; want the range", err, len(body))
				}
				return
			}
			if !errors.Is(err, origin.ErrHeadersTooLarge) {
				t.Fatalf("err = %v, want ErrHeadersTooLarge", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "65536") || !strings.Contains(msg, "max_header_bytes") {
				t.Errorf("error %q does not say the limit and how to raise it", msg)
			}
		})
	}
}

// An https origin that accepts the connection and never speaks fails the
// fetch within the connect timeout (the TLS handshake's), not never.
func TestFetchTLSHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			held <- conn // silent until the test ends
		}
	}()
	defer func() {
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	}()
	const connect = 200 * time.Millisecond
	c := origin.NewClient(origin.Options{ConnectTimeout: connect, ReadTimeout: time.Minute})
	defer c.Close()
	// The test's own bound, far past the one under test: a hang fails
	// instead of blocking the run.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.Fetch(ctx, &origin.Request{URL: "https://" + ln.Addr().String() + "/x", Range: &slicer.Range{Start: 0, End: MiB}})
	took := time.Since(start)
	if err == nil {
		t.Fatal("a silent TLS origin answered")
	}
	if took > 10*connect {
		t.Fatalf("a silent TLS origin held the fetch for %v (connect timeout %v): %v", took, connect, err)
	}
	if !errors.Is(err, origin.ErrTimeout) || !strings.Contains(err.Error(), "connect_timeout") {
		t.Errorf("err = %v, want ErrTimeout naming connect_timeout", err)
	}
}

// Close closes the idle connections of the client's own transport.
func TestClientCloseClosesIdleConnections(t *testing.T) {
	o := origintest.NewTest(t)
	closed := make(chan struct{}, 4)
	srv := httptest.NewUnstartedServer(o.Handler())
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	defer srv.Close()
	c := origin.NewClient(origin.Options{})
	if _, _, err := fetch(t, c, &origin.Request{URL: srv.URL + "/c/1KiB.bin", Range: &slicer.Range{Start: 0, End: 1024}}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle origin connection was not closed")
	}
}
