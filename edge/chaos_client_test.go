package edge_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// Chaos: clients that misbehave.

// rawGet sends a GET with an exact request target and Host over a new
// connection to addr (host:port) and returns the answer, body read whole.
func rawGet(t testing.TB, addr, target, host string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", target, host)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %q Host %q: %v", target, host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %q Host %q: body: %v", target, host, err)
	}
	return resp, body
}

func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

// Multi-range abuse: thousands of tiny or overlapping ranges are answered
// without fetching more than the slices they touch and without a
// response larger than the object.
func TestChaosMultiRangeAbuse(t *testing.T) {
	const path = "/obj/4MiB.bin"
	const size = 4 * MiB
	tiny := make([]string, 3000)
	for i := range tiny {
		tiny[i] = fmt.Sprintf("%d-%d", 2*i, 2*i)
	}
	overlap := make([]string, 3000)
	for i := range overlap {
		overlap[i] = fmt.Sprintf("%d-%d", i, i+1000)
	}
	same := make([]string, 3000)
	for i := range same {
		same[i] = "0-1048575"
	}
	spread := make([]string, 3000)
	for i := range spread {
		off := int64(i) * (size / 3000)
		spread[i] = fmt.Sprintf("%d-%d", off, off)
	}
	for _, tc := range []struct {
		name      string
		ranges    []string
		maxOrigin int64 // origin body bytes allowed
		maxResp   int64 // response body bytes allowed
	}{
		// Tiny ranges closer than slicer.MergeGap merge, gaps included,
		// into one range: one slice from the origin, one part back.
		{"3000 tiny ranges in one slice", tiny, MiB, 6000},
		// Beyond max_ranges (after coalescing) the whole object is sent:
		// no more than a plain GET costs.
		{"3000 overlapping ranges", overlap, MiB, 64 * KiB},
		{"3000 copies of one range", same, MiB, MiB + 4*KiB},
		{"3000 one-byte ranges over the object", spread, size, size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			got := h.fetch(t, path, "Range: bytes="+strings.Join(tc.ranges, ","))
			if got.err != nil || got.status/100 != 2 {
				t.Fatalf("status %d, err %v", got.status, got.err)
			}
			h.settle(t)
			ob := h.origin.BodyBytes()
			t.Logf("status %d, %d response bytes, %d origin bytes, Content-Type %q", got.status, len(got.body), ob, got.header.Get("Content-Type"))
			if ob > tc.maxOrigin {
				t.Errorf("origin sent %d bytes, want at most %d", ob, tc.maxOrigin)
			}
			if int64(len(got.body)) > tc.maxResp {
				t.Errorf("response of %d bytes, want at most %d", len(got.body), tc.maxResp)
			}
			switch {
			case got.status == 200:
				wantBytes(t, "200 body", got.body, path, 1, 0)
			case strings.HasPrefix(got.header.Get("Content-Type"), "multipart/byteranges"):
				checkParts(t, got, path)
			default:
				var start int64
				fmt.Sscanf(got.header.Get("Content-Range"), "bytes %d-", &start)
				wantBytes(t, "206 body", got.body, path, 1, start)
			}
		})
	}
}

// checkParts verifies every part of a multipart/byteranges body.
func checkParts(t *testing.T, got fetched, path string) {
	t.Helper()
	_, boundary, _ := strings.Cut(got.header.Get("Content-Type"), "boundary=")
	parts := strings.Split(string(got.body), "--"+boundary)
	n := 0
	for _, p := range parts {
		head, body, ok := strings.Cut(p, "\r\n\r\n")
		if !ok {
			continue
		}
		var a, b, total int64
		i := strings.Index(head, "Content-Range: bytes ")
		if i < 0 {
			t.Fatalf("part without Content-Range: %q", head)
		}
		fmt.Sscanf(head[i:], "Content-Range: bytes %d-%d/%d", &a, &b, &total)
		body = strings.TrimSuffix(body, "\r\n")
		if int64(len(body)) != b-a+1 {
			t.Fatalf("part %d-%d has %d bytes", a, b, len(body))
		}
		wantBytes(t, "part", []byte(body), path, 1, a)
		n++
	}
	t.Logf("%d parts", n)
}

// A client that disconnects mid-fill does not stop the fill: the store
// gets the slices, and another client reading the same slices gets every
// byte, from the one origin fetch.
func TestChaosClientDisconnectMidFill(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/4MiB-slow.bin"
	h.origin.SetPathMode(path, origintest.Mode{Bandwidth: 8 * MiB})

	a := h.openHead(t, path, 100*KiB)

	collapsed := h.edge.Counters().Collapsed
	done := make(chan error, 1)
	go func() {
		b, err := h.try("GET", path)
		if err != nil {
			done <- err
			return
		}
		defer b.Body.Close()
		n, err := verifyStream(b.Body, path, 1, 0)
		if err == nil && n != 4*MiB {
			err = fmt.Errorf("second client got %d bytes", n)
		}
		done <- err
	}()
	origintest.WaitFor(t, "the second client to join the fill", func() bool { return h.edge.Counters().Collapsed > collapsed })
	a.Body.Close() // the first one goes away
	if err := <-done; err != nil {
		t.Fatalf("waiter on the same slices: %v", err)
	}
	origintest.WaitFor(t, "the fill to complete for the store", func() bool { return h.inFlight() == 0 && h.store.Stats().Slices == 4 })
	if n := h.origin.PathRequests(path); n != 1 {
		t.Errorf("origin asked %d times, want one fetch shared by both clients", n)
	}
	before := h.origin.BodyBytes()
	resp, body := h.get(t, path)
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("re-read: status %d, X-Cache %q", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	wantBytes(t, "re-read", body, path, 1, 0)
	if h.origin.BodyBytes() != before {
		t.Errorf("re-read went to the origin")
	}
}

// Cache key hygiene: whatever the Host and however the path is spelled,
// every answer holds the bytes the origin gives for that request target
// with its dot segments removed (RFC 3986 §5.2.4), also when another
// spelling was cached first, and no dot segment ever reaches the origin.
func TestChaosCacheKeyHygiene(t *testing.T) {
	h := newHarness(t)
	edgeAddr, originAddr := hostPort(h.srv.URL), hostPort(h.front.URL)
	reqs := []struct{ host, target string }{
		{"edge.test", "/obj/64KiB.bin"},
		{"edge.test", "/obj/x/../64KiB.bin"},
		{"edge.test", "/obj/%2e%2e/obj/64KiB.bin"},
		{"edge.test", "/obj/%2E%2E/obj/64KiB.bin"},
		{"edge.test", "/obj//64KiB.bin"},
		{"edge.test", "//obj/64KiB.bin"},
		{"edge.test", "/obj/./64KiB.bin"},
		{"edge.test", "/obj%2F64KiB.bin"},
		{"edge.test", "/obj/64KiB.bin?"},
		{"edge.test", "/obj/64KiB.bin?a=1"},
		{"edge.test", "/OBJ/64KiB.bin"},
		{"edge.test", "/obj/64%4BiB.bin"},
		{"EDGE.test", "/obj/64KiB.bin"},
		{"edge.test:80", "/obj/64KiB.bin"},
		{"other.test", "/64KiB.bin"},
		{"other.test/obj", "/64KiB.bin"},
		{"other.test", "/obj/64KiB.bin"},
		{"edge.test", "http://other.test/obj/64KiB.bin"},
		{"edge.test", "http://other.test/64KiB.bin"},
	}
	// Twice: the second round is served from the store.
	for round := range 2 {
		for _, r := range reqs {
			resp, body := rawGet(t, edgeAddr, r.target, r.host)
			what := fmt.Sprintf("round %d: Host %q, target %q", round, r.host, r.target)
			if resp.StatusCode != 200 {
				t.Logf("%s: status %d (%q)", what, resp.StatusCode, body)
				if resp.StatusCode/100 == 2 {
					t.Errorf("%s: status %d", what, resp.StatusCode)
				}
				continue
			}
			target := r.target
			if strings.HasPrefix(target, "http://") {
				target = "/" + strings.SplitN(strings.TrimPrefix(target, "http://"), "/", 2)[1]
			}
			oresp, want := rawGet(t, originAddr, withoutDotSegments(t, target), "origin.test")
			if oresp.StatusCode != 200 {
				t.Fatalf("%s: origin answered %d", what, oresp.StatusCode)
			}
			if !bytes.Equal(body, want) {
				t.Errorf("%s: %d bytes (X-Cache %s) are not the origin's %d bytes for that target", what, len(body), resp.Header.Get("X-Cache"), len(want))
			}
		}
		h.settle(t)
	}
	for _, rec := range h.origin.LastRequests() {
		for _, seg := range strings.Split(rec.Path, "/") {
			if seg == "." || seg == ".." {
				t.Errorf("the origin was asked for %q", rec.Path)
			}
		}
	}
}

// withoutDotSegments is a request target (path and query) with the dot
// segments of its decoded path removed, by net/url's own RFC 3986
// resolution, and escaped again.
func withoutDotSegments(t testing.TB, target string) string {
	t.Helper()
	u, err := url.ParseRequestURI(target)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse("http://x/")
	clean := &url.URL{Path: base.ResolveReference(&url.URL{Path: u.Path}).Path, RawQuery: u.RawQuery, ForceQuery: u.ForceQuery}
	return clean.RequestURI()
}

// Oversized headers get 431 (net/http, MaxHeaderBytes), oversized URLs
// 414 (the edge), with the server settings sliceedge serve uses.
func TestChaosOversizedRequest(t *testing.T) {
	h := newHarnessWith(t, setup{RealServer: true, SendTimeout: time.Second})
	addr := hostPort(h.srv.URL)
	long := "/obj/" + strings.Repeat("a", 9<<10) + "-64KiB.bin"
	for _, tc := range []struct {
		name    string
		target  string
		headers []string
		status  int
	}{
		{"header of 100 KiB", "/obj/64KiB.bin", []string{"X-Big: " + strings.Repeat("b", 100<<10)}, 431},
		{"many headers", "/obj/64KiB.bin", manyHeaders(2000), 431},
		{"URL of 9 KiB", long, nil, 414},
		{"URL of 9 KiB in the query", "/obj/64KiB.bin?q=" + strings.Repeat("q", 9<<10), nil, 414},
		{"URL of 100 KiB", "/obj/" + strings.Repeat("a", 100<<10), nil, 431},
		{"sane request", "/obj/64KiB.bin", nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawGet(t, addr, tc.target, "edge.test", tc.headers...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%.100q), want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == 200 {
				wantBytes(t, "body", body, "/obj/64KiB.bin", 1, 0)
			}
		})
	}
	if n := h.origin.PathRequests(long); n != 0 {
		t.Errorf("a too-long URL reached the origin %d times", n)
	}
	if st := h.store.Stats(); st.Objects != 1 {
		t.Errorf("store holds %d objects, want only the sane one", st.Objects)
	}
}

func manyHeaders(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("X-H%d: %s", i, strings.Repeat("v", 40))
	}
	return out
}

// A client that reads 1 byte/s does not hold a request (and the slices it
// reads from) forever: a write that cannot complete within SendTimeout
// ends it, while the origin fill completes for the store.
func TestChaosSlowReader(t *testing.T) {
	h := newHarnessWith(t, setup{RealServer: true, SendTimeout: 300 * time.Millisecond})
	addr := hostPort(h.srv.URL)
	const path = "/big/64MiB.bin"
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: edge.test\r\n\r\n", path)
	start := time.Now()
	ended := func() bool {
		for _, l := range h.logs.Lines(t) {
			if l["message"] == "request" && l["path"] == path {
				return true
			}
		}
		return false
	}
	one := make([]byte, 1)
	for !ended() {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("a client reading 1 byte per 100ms still holds its request after %v", time.Since(start))
		}
		conn.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := conn.Read(one); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // the client's pace: the behaviour under test
	}
	origintest.WaitFor(t, "the request to end", ended)
	t.Logf("slow reader's request ended after %v", time.Since(start).Round(time.Millisecond))
	// Its answer is counted and logged as cut by the client.
	for _, l := range h.logs.Lines(t) {
		if l["message"] == "request" && l["path"] == path && l["cut"] != "client" {
			t.Errorf("access log of the slow reader: cut %v, want client", l["cut"])
		}
	}
	if n := h.edge.CutTotal()["client"]; n != 1 {
		t.Errorf("answers cut by the client: %d, want 1", n)
	}
	origintest.WaitFor(t, "the fill to complete for the store", func() bool { return h.edge.InFlight() == 0 && h.store.Stats().Slices == 16 })
	// The stored slices are right.
	resp, body := rawGet(t, addr, path, "edge.test", "Range: bytes=60000000-60999999")
	if resp.StatusCode != 206 || resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("re-read: status %d, X-Cache %q", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	wantBytes(t, "re-read", body, path, 1, 60000000)
}
