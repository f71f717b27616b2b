package edge_test

// Golden protocol tests, in the manner of Pebble's data-driven tests: each
// file under testdata/golden is one family of cases (ranges, conditionals,
// HEAD, flapping origins, pass-through, freshness), each case a script of
// origin objects and client requests, and under each request what the
// client got (status, the headers that matter, a digest of the body) and
// what the origin was asked. `go test ./edge -run TestGolden -rewrite`
// regenerates the expected output after a deliberate change; read the diff.
//
// The golden output is not the only oracle: every 200 or 206 body, and
// every part of a multipart one, is checked byte for byte against the
// origin's bytes of the version its validator names, and the test fails on
// a mismatch whatever the file says.
//
// Commands (headers, one "Name: value" a line, go in a command's input):
//
//	origin path=P [size=N] [keep-bytes] [after=K] [ranges=ignore] [conditions=ignore] [lie=range|total] [lie-after=K]
//	    Defines the object at P, or its next version: the previous
//	    version's headers with those given (an empty value deletes one),
//	    and new bytes unless keep-bytes.
//	    after=K: the new version takes over once the origin has answered
//	    K more requests of P. lie: 206 answers (after the first lie-after
//	    ones) claim a Content-Range one byte off, or a total 1000 bytes
//	    too long.
//	answer path=P status=S [times=K] | answer path=P clear
//	    The next K (default: every) requests of P get status S with a short
//	    text body and the headers given, instead of the object.
//	request [method=GET] path=P [body=TEXT]
//	    Sends a request for P to the edge with the headers given, waits
//	    until the edge is idle (no request, fill, revalidation or origin
//	    request left), and prints the answer and the origin requests.
//	advance D
//	    Moves the clock (the edge's and the origin's Date) on by D.
//	store path=P
//	    What the store holds of P.

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/slicer"
)

// goldenConfig is the edge's configuration; %s is the origin's URL. Slices
// are small (64KiB) and runs short (4 slices), so that a 300000-byte
// object has five slices and a full GET of it takes two origin requests.
const goldenConfig = `
name: sliceedge
listen: 127.0.0.1:0
store:
  dir: unused
  max_bytes: 64GiB
origins:
  default:
    url: %s
    read_timeout: 5s
rules:
  - match: /lm/
    hosts: [edge.test]
    origin: default
    slice_size: 64KiB
    max_run: 4
    last_modified_validator: true
  - match: /swr/
    hosts: [edge.test]
    origin: default
    slice_size: 64KiB
    max_run: 4
    stale_while_revalidate: 30s
  - match: /sie/
    hosts: [edge.test]
    origin: default
    slice_size: 64KiB
    max_run: 4
    stale_if_error: 10m
  - match: /few/
    hosts: [edge.test]
    origin: default
    slice_size: 64KiB
    max_run: 4
    max_ranges: 2
  - match: /
    hosts: [edge.test]
    origin: default
    slice_size: 64KiB
    max_run: 4
`

// goldenHost is the Host of every request: cache keys are goldenHost+path.
const goldenHost = "edge.test"

// goldenEpoch is the clock's start; Last-Modified dates in the files are
// before it.
var goldenEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// answerHeaders are the response headers the golden output shows, when
// present, in this (sorted) order. Date varies and is left out; the
// multipart boundary is replaced by BOUNDARY.
var answerHeaders = []string{
	"Accept-Ranges", "Age", "Cache-Control", "Cache-Status", "Content-Length", "Content-Range",
	"Content-Type", "ETag", "Expires", "Last-Modified", "Location", "Set-Cookie", "Vary", "X-Cache",
}

func TestGolden(t *testing.T) {
	if !slices.IsSorted(answerHeaders) {
		t.Fatal("answerHeaders must be sorted")
	}
	datadriven.Walk(t, "testdata/golden", func(t *testing.T, path string) {
		w := newGoldenWorld(t)
		datadriven.RunTest(t, path, w.run)
	})
}

// goldenWorld is one file's edge, origin, store and clock.
type goldenWorld struct {
	clock  atomic.Int64 // nanoseconds since goldenEpoch
	origin *scriptOrigin
	bodies *bodyCounter
	store  *memStore
	edge   *edge.Server
	front  *httptest.Server // the edge, as clients reach it
	client *http.Client
	leaked int64 // unclosed origin answers last reported
}

func newGoldenWorld(t *testing.T) *goldenWorld {
	w := &goldenWorld{}
	w.origin = newScriptOrigin(w.now)
	originSrv := httptest.NewServer(w.origin)
	t.Cleanup(func() {
		originSrv.CloseClientConnections() // an answer the edge never closed holds one
		originSrv.Close()
	})
	cfg, err := config.Parse("golden.yaml", fmt.Appendf(nil, goldenConfig, originSrv.URL))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	upstream := &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 16}
	t.Cleanup(upstream.CloseIdleConnections)
	w.bodies = &bodyCounter{rt: upstream}
	w.store = newMemStore()
	w.edge = &edge.Server{Config: cfg, Store: w.store, Now: w.now, Transport: w.bodies}
	w.front = httptest.NewServer(w.edge)
	t.Cleanup(w.front.Close)
	// A connection per request: net/http's client retries a GET on a
	// reused connection that closed before any answer, which would hide
	// what the edge did.
	w.client = &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableCompression: true, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return w
}

func (w *goldenWorld) now() time.Time { return goldenEpoch.Add(time.Duration(w.clock.Load())) }

// run executes one command of a golden file.
func (w *goldenWorld) run(t *testing.T, td *datadriven.TestData) string {
	switch td.Cmd {
	case "origin":
		return w.defineObject(t, td)
	case "answer":
		return w.fixedAnswer(t, td)
	case "request":
		return w.request(t, td)
	case "advance":
		if len(td.CmdArgs) != 1 {
			td.Fatalf(t, "advance takes a duration")
		}
		d, err := time.ParseDuration(td.CmdArgs[0].Key)
		if err != nil {
			td.Fatalf(t, "advance: %v", err)
		}
		w.clock.Add(int64(d))
		return fmt.Sprintf("clock: +%v", time.Duration(w.clock.Load()))
	case "store":
		var path string
		td.ScanArgs(t, "path", &path)
		return w.store.stored(goldenHost + path)
	}
	td.Fatalf(t, "unknown command %q", td.Cmd)
	return ""
}

// headerLines parses a command's input: one "Name: value" a line.
func headerLines(t *testing.T, td *datadriven.TestData) http.Header {
	h := http.Header{}
	for _, line := range strings.Split(td.Input, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			td.Fatalf(t, "header line %q has no colon", line)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return h
}

func (w *goldenWorld) defineObject(t *testing.T, td *datadriven.TestData) string {
	var path string
	td.ScanArgs(t, "path", &path)
	size, after := int64(-1), 0
	td.MaybeScanArgs(t, "size", &size)
	td.MaybeScanArgs(t, "after", &after)
	header := http.Header{}
	if prev := w.origin.latest(path); prev != nil {
		header = prev.header.Clone()
		if size < 0 {
			size = prev.size
		}
	}
	for k, vv := range headerLines(t, td) {
		if len(vv) == 1 && vv[0] == "" {
			delete(header, k)
			continue
		}
		header[k] = vv
	}
	if size < 0 {
		td.Fatalf(t, "origin: the first version of %s needs a size", path)
	}
	var ranges, conds, lie string
	lieAfter := 0
	td.MaybeScanArgs(t, "ranges", &ranges)
	td.MaybeScanArgs(t, "conditions", &conds)
	td.MaybeScanArgs(t, "lie", &lie)
	td.MaybeScanArgs(t, "lie-after", &lieAfter)
	keep := td.HasArg("keep-bytes")
	if prev := w.origin.latest(path); keep && prev != nil && size != prev.size {
		td.Fatalf(t, "origin: keep-bytes with another size")
	}
	v := w.origin.define(path, size, header, after, keep)
	w.origin.configure(path, func(obj *scriptObject) {
		if ranges != "" {
			obj.ignoreRanges = ranges == "ignore"
		}
		if conds != "" {
			obj.ignoreConds = conds == "ignore"
		}
		if lie != "" {
			obj.lie, obj.lieAfter = lie, lieAfter
		}
	})
	out := fmt.Sprintf("%s v%d: %d bytes", path, v.n, v.size)
	if v.bytes != v.n {
		out += fmt.Sprintf(", those of v%d", v.bytes)
	}
	if after > 0 {
		out += fmt.Sprintf(", current once %d more requests are answered", after)
	}
	return out
}

func (w *goldenWorld) fixedAnswer(t *testing.T, td *datadriven.TestData) string {
	var path string
	td.ScanArgs(t, "path", &path)
	if td.HasArg("clear") {
		w.origin.configure(path, func(obj *scriptObject) { obj.answer, obj.answerTimes = nil, 0 })
		return path + ": the object again"
	}
	var status int
	times := -1
	td.ScanArgs(t, "status", &status)
	td.MaybeScanArgs(t, "times", &times)
	header := headerLines(t, td)
	w.origin.configure(path, func(obj *scriptObject) {
		obj.answer, obj.answerTimes = &scriptAnswer{status: status, header: header}, times
	})
	if times < 0 {
		return fmt.Sprintf("%s: %d from now on", path, status)
	}
	return fmt.Sprintf("%s: %d for the next %d requests", path, status, times)
}

// request sends one request, waits for the edge to be idle, and describes
// the answer and the origin's requests.
func (w *goldenWorld) request(t *testing.T, td *datadriven.TestData) string {
	method, path, body := http.MethodGet, "", ""
	td.MaybeScanArgs(t, "method", &method)
	td.ScanArgs(t, "path", &path)
	td.MaybeScanArgs(t, "body", &body)
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.front.URL+path, rb)
	if err != nil {
		td.Fatalf(t, "%v", err)
	}
	req.Host = goldenHost
	req.Header = headerLines(t, td)
	req.Header.Set("User-Agent", "golden-client")
	mark := len(w.origin.hits(0))
	before := w.edge.Counters()

	var out strings.Builder
	resp, err := w.client.Do(req)
	if err != nil {
		// The edge closed the connection before its status line: no
		// answer at all. (url.Error's text holds the test server's port.)
		w.settle(t, td, mark, false)
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		fmt.Fprintf(&out, "no answer: %v\n", err)
		w.describeOrigin(&out, before, mark)
		return out.String()
	}
	got, readErr := io.ReadAll(resp.Body)
	resp.Body.Close()
	// A stale answer served while revalidating has started a background
	// revalidation, which may not have reached the origin yet.
	w.settle(t, td, mark, strings.Contains(resp.Header.Get("Cache-Status"), "detail=stale-while-revalidate"))

	fmt.Fprintf(&out, "%d %s\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	boundary := ""
	if mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && mt == "multipart/byteranges" {
		boundary = params["boundary"]
	}
	for _, k := range answerHeaders {
		for _, v := range resp.Header.Values(k) {
			if boundary != "" {
				v = strings.ReplaceAll(v, boundary, "BOUNDARY")
			}
			fmt.Fprintf(&out, "%s: %s\n", k, v)
		}
	}
	out.WriteString(w.describeBody(t, td, method, path, resp, got, readErr, boundary))
	w.describeOrigin(&out, before, mark)
	return out.String()
}

// describeOrigin prints the origin requests from the mark'th on, the
// edge's unusual events since before, and unclosed origin answers.
func (w *goldenWorld) describeOrigin(out *strings.Builder, before edge.Counters, mark int) {
	hits := w.origin.hits(mark)
	if len(hits) == 0 {
		out.WriteString("origin: none\n")
	} else {
		out.WriteString("origin:\n")
		for _, h := range hits {
			fmt.Fprintf(out, "  %s\n", h)
		}
	}
	if ev := events(before, w.edge.Counters()); ev != "" {
		fmt.Fprintf(out, "edge: %s\n", ev)
	}
	if n := w.bodies.openOther.Load(); n != w.leaked {
		fmt.Fprintf(out, "origin answers the edge never closed: %d\n", n)
		w.leaked = n
	}
}

// settle waits until nothing is left running: no client request, no fill,
// no origin request or unread 2xx origin body (nor, for two seconds, any
// other origin answer newly open), and a revalidation outcome
// counted for every revalidation the origin received (a background one
// has no client to wait for); with background, until the origin has
// received a revalidation since its mark'th request, too. Then the next
// request's HIT or MISS is deterministic.
func (w *goldenWorld) settle(t *testing.T, td *datadriven.TestData, mark int, background bool) {
	deadline := time.Now().Add(10 * time.Second)
	grace := time.Now().Add(2 * time.Second)
	for {
		revalidations, since := 0, 0
		for k, h := range w.origin.hits(0) {
			if h.revalidation() {
				revalidations++
				if k >= mark {
					since++
				}
			}
		}
		busy := []string{}
		if background && since == 0 {
			busy = append(busy, "a background revalidation not sent yet")
		}
		if n := w.edge.Active(); n > 0 {
			busy = append(busy, fmt.Sprintf("%d edge requests", n))
		}
		if n := w.edge.InFlight(); n > 0 {
			busy = append(busy, fmt.Sprintf("%d fills", n))
		}
		if n := w.origin.active.Load(); n > 0 {
			busy = append(busy, fmt.Sprintf("%d origin requests", n))
		}
		if n := w.bodies.open2xx.Load(); n > 0 {
			busy = append(busy, fmt.Sprintf("%d origin bodies open", n))
		}
		if n := w.edge.Counters().Revalidations; n < int64(revalidations) {
			busy = append(busy, fmt.Sprintf("%d of %d revalidations counted", n, revalidations))
		}
		// A background revalidation counts its outcome before it closes
		// the origin's answer. An answer still open after the grace is a
		// leak, which describeOrigin reports.
		if n := w.bodies.openOther.Load(); n > w.leaked && time.Now().Before(grace) {
			busy = append(busy, fmt.Sprintf("%d other origin answers open", n-w.leaked))
		}
		if len(busy) == 0 {
			return
		}
		if time.Now().After(deadline) {
			td.Fatalf(t, "the edge did not settle: %s", strings.Join(busy, ", "))
		}
		time.Sleep(time.Millisecond)
	}
}

// describeBody prints the body's length and digest (the multipart
// boundary replaced by BOUNDARY) and, for a GET of an object answered 200
// or 206, checks every byte against the origin's version and says which
// bytes of which version it holds.
func (w *goldenWorld) describeBody(t *testing.T, td *datadriven.TestData, method, path string, resp *http.Response, body []byte, readErr error, boundary string) string {
	var out strings.Builder
	norm := body
	if boundary != "" {
		norm = bytes.ReplaceAll(body, []byte(boundary), []byte("BOUNDARY"))
	}
	sum := sha256.Sum256(norm)
	switch {
	case len(body) == 0 && readErr == nil:
		out.WriteString("body: none\n")
	case strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") && len(body) <= 120 && readErr == nil:
		fmt.Fprintf(&out, "body: %q\n", body)
	default:
		fmt.Fprintf(&out, "body: %d bytes, sha256 %s", len(body), hex.EncodeToString(sum[:6]))
		if readErr != nil {
			fmt.Fprintf(&out, ", then %v", readErr)
		}
		out.WriteString("\n")
	}
	if method != http.MethodGet || len(w.origin.versions(path)) == 0 || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent) || len(body) == 0 {
		return out.String()
	}
	etag := resp.Header.Get("ETag")
	switch {
	case boundary != "":
		mr := multipart.NewReader(bytes.NewReader(body), boundary)
		for k := 1; ; k++ {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				td.Fatalf(t, "multipart body: part %d: %v", k, err)
			}
			data, err := io.ReadAll(part)
			if err != nil {
				td.Fatalf(t, "multipart body: part %d: %v", k, err)
			}
			cr := part.Header.Get("Content-Range")
			rg, size, unsatisfied, err := slicer.ParseContentRange(cr)
			if err != nil || unsatisfied || rg.Len() != int64(len(data)) {
				td.Fatalf(t, "multipart part %d: Content-Range %q for %d bytes", k, cr, len(data))
			}
			fmt.Fprintf(&out, "  part %d: Content-Range: %s, Content-Type: %s, %s\n", k, cr, part.Header.Get("Content-Type"),
				w.verify(t, td, path, etag, size, rg.Start, data, true))
		}
	case resp.StatusCode == http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		rg, size, unsatisfied, err := slicer.ParseContentRange(cr)
		if err != nil || unsatisfied {
			td.Fatalf(t, "206 with Content-Range %q", cr)
		}
		if readErr == nil && rg.Len() != int64(len(body)) {
			td.Fatalf(t, "206: Content-Range %q for %d bytes", cr, len(body))
		}
		fmt.Fprintf(&out, "  %s\n", w.verify(t, td, path, etag, size, rg.Start, body, readErr == nil))
	default:
		size := resp.ContentLength
		if size < 0 {
			size = int64(len(body))
		}
		fmt.Fprintf(&out, "  %s\n", w.verify(t, td, path, etag, size, 0, body, readErr == nil))
	}
	return out.String()
}

// verify finds the version of path (with the answer's ETag, if it has one)
// whose bytes from offset start are data, and says which, and whether the
// answer gave that version's length (size); the test fails if there is no
// such version. whole is false for an answer cut short.
func (w *goldenWorld) verify(t *testing.T, td *datadriven.TestData, path, etag string, size, start int64, data []byte, whole bool) string {
	versions := w.origin.versions(path)
	// Newest first, and those of the length the answer gives before the
	// others: a lying origin's Content-Range is relayed, so the length can
	// be wrong while the bytes are right.
	slices.Reverse(versions)
	slices.SortStableFunc(versions, func(a, b *scriptVersion) int {
		return cmp.Compare(b2i(a.size != size), b2i(b.size != size))
	})
	for _, v := range versions {
		if etag != "" && v.header.Get("ETag") != etag {
			continue
		}
		if _, ok := origintest.Verify(data, path, v.bytes, start); !ok || start+int64(len(data)) > v.size {
			continue
		}
		what := fmt.Sprintf("v%d bytes %d-%d", v.n, start, start+int64(len(data))-1)
		if !whole {
			what += " (the start of the answer)"
		}
		if v.size != size {
			what += fmt.Sprintf(" (the answer says the object has %d bytes; v%d has %d)", size, v.n, v.size)
		}
		return what
	}
	td.Fatalf(t, "%s: %d bytes at offset %d (size %d, ETag %s) are the bytes of no version of the object", path, len(data), start, size, etag)
	return ""
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// bodyCounter is the edge's transport to the origin: it counts the origin
// answers whose bodies are not closed yet, 2xx ones (a fill or a
// revalidation still going on) apart from the others (which nothing waits
// for: one left open is a leak).
type bodyCounter struct {
	rt                 http.RoundTripper
	open2xx, openOther atomic.Int64
}

func (c *bodyCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if err != nil || resp.Body == nil || resp.Body == http.NoBody {
		return resp, err
	}
	n := &c.openOther
	if resp.StatusCode/100 == 2 {
		n = &c.open2xx
	}
	n.Add(1)
	resp.Body = &countedBody{ReadCloser: resp.Body, n: n}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	n    *atomic.Int64
	once sync.Once
}

func (b *countedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.n.Add(-1) })
	return err
}

// events lists the counters of unusual events that went up between two
// snapshots, for the golden output: what the edge did that an answer's
// headers do not show.
func events(before, after edge.Counters) string {
	var out []string
	for _, c := range []struct {
		name string
		a, b int64
	}{
		{"flap-restarts", before.FlapRestarts, after.FlapRestarts},
		{"flap-aborts", before.FlapAborts, after.FlapAborts},
		{"origin-errors", before.OriginErrors, after.OriginErrors},
		{"stale-served", before.StaleServed, after.StaleServed},
		{"store-errors", before.StoreErrors, after.StoreErrors},
	} {
		if c.b != c.a {
			out = append(out, fmt.Sprintf("%s +%d", c.name, c.b-c.a))
		}
	}
	return strings.Join(out, ", ")
}
