package edge_test

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

const (
	KiB = int64(1) << 10
	MiB = int64(1) << 20
	GiB = int64(1) << 30
)

// A repeated range costs zero origin bytes, and an overlapping one fetches
// only the slices not yet stored.
func TestRangeReuse(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/8MiB.bin"
	steps := []struct {
		rng        string
		start, end int64 // expected body [start, end)
		originBody int64 // origin body bytes this step may cost
		xcache     string
	}{
		{"bytes=0-99", 0, 100, 1 * MiB, "MISS"},
		{"bytes=0-49", 0, 50, 0, "HIT"},
		{"bytes=50-2000000", 50, 2000001, 1 * MiB, "PARTIAL"},
		{"bytes=1000-1999999", 1000, 2000000, 0, "HIT"},
	}
	for _, st := range steps {
		before := h.origin.BodyBytes()
		resp, body := h.get(t, path, "Range: "+st.rng)
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("range=%q: status %d, want 206", st.rng, resp.StatusCode)
		}
		want := slicer.ContentRange(slicer.Range{Start: st.start, End: st.end}, 8*MiB)
		if got := resp.Header.Get("Content-Range"); got != want {
			t.Errorf("range=%q: Content-Range %q, want %q", st.rng, got, want)
		}
		if int64(len(body)) != st.end-st.start {
			t.Fatalf("range=%q: body %d bytes, want %d", st.rng, len(body), st.end-st.start)
		}
		wantBytes(t, st.rng, body, path, 1, st.start)
		// The fill goes on after the client has its bytes: let it land.
		h.settle(t)
		if got := h.origin.BodyBytes() - before; got != st.originBody {
			t.Errorf("range=%q: origin sent %d body bytes, want %d", st.rng, got, st.originBody)
		}
		if got := resp.Header.Get("X-Cache"); got != st.xcache {
			t.Errorf("range=%q: X-Cache %q, want %q", st.rng, got, st.xcache)
		}
	}
	// The origin saw only ranged, slice-aligned requests.
	for _, rec := range h.origin.LastRequests() {
		if rec.Range != "bytes=0-1048575" && rec.Range != "bytes=1048576-2097151" {
			t.Errorf("origin got Range %q, want slice-aligned 1MiB ranges", rec.Range)
		}
	}
}

// A cold range deep in a 1 GiB object costs one slice from the origin, and
// the first byte leaves after that slice starts arriving, not after the
// bytes before it.
func TestColdSeekDeep(t *testing.T) {
	h := newHarness(t)
	const path = "/video/1GiB.mp4"
	// 20 MiB/s: one 1 MiB slice takes 50 ms; the 900 MiB before the range
	// would take 45 s.
	// The origin also stalls for 3 s after 128 KiB of the slice: the
	// client's 64 KiB must all arrive before the slice is complete, or the
	// edge waited for the slice instead of streaming it.
	h.origin.SetMode(origintest.Mode{Latency: 50 * time.Millisecond, Bandwidth: 20 * MiB, Stall: 3 * time.Second, StallAfter: 128 * KiB})
	resp := h.open(t, path, "Range: bytes=943718400-943783935")
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.origin.BodyBytes(); got >= 1*MiB {
		t.Errorf("the whole answer waited for the origin's whole slice (%d body bytes sent); it should stream as bytes arrive", got)
	}
	if resp.StatusCode != http.StatusPartialContent || len(body) != 64*1024 {
		t.Fatalf("status %d, %d bytes; want 206 with 65536", resp.StatusCode, len(body))
	}
	wantBytes(t, "deep range", body, path, 1, 943718400)
	h.settle(t)
	if got := h.origin.BodyBytes(); got != 1*MiB {
		t.Errorf("origin sent %d body bytes, want exactly one slice (%d)", got, MiB)
	}
	if got := h.origin.Requests(); got != 1 {
		t.Errorf("origin got %d requests, want 1 (the discovery fetch is the slice fetch)", got)
	}
}

// A cold suffix range (a Parquet footer, an MP4 index at the end) costs
// one origin request: the edge asks for the object's last bytes without
// knowing its size, with one slice more so that every slice it keeps is
// whole. Repeating it costs nothing.
func TestColdSuffixOneRequest(t *testing.T) {
	for _, tc := range []struct {
		path   string
		suffix int64
	}{
		{"/obj/10000123.bin", 100},     // inside the short last slice
		{"/obj/10000123-b.bin", 3e6},   // across slices
		{"/obj/1GiB.bin", 8},           // a footer's length field
		{"/obj/5000.bin", 10000},       // more than the object
		{"/obj/4MiB.bin", 2*MiB + 100}, // ends on a slice boundary
		{"/obj/4MiB-all.bin", math.MaxInt64},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/obj/"), func(t *testing.T) {
			h := newHarness(t)
			size, _ := origintest.SyntheticSize(path.Base(tc.path))
			rng := "Range: bytes=-" + strconv.FormatInt(tc.suffix, 10)
			resp, body := h.get(t, tc.path, rng)
			start := max(size-tc.suffix, 0)
			if resp.StatusCode != http.StatusPartialContent || int64(len(body)) != size-start ||
				resp.Header.Get("Content-Range") != "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(size-1, 10)+"/"+strconv.FormatInt(size, 10) {
				t.Fatalf("status %d, %d bytes, Content-Range %q", resp.StatusCode, len(body), resp.Header.Get("Content-Range"))
			}
			wantBytes(t, "suffix", body, tc.path, 1, start)
			h.settle(t)
			if n, b, most := h.origin.Requests(), h.origin.BodyBytes(), min(min(tc.suffix, size)+MiB, size); n != 1 || b > most {
				t.Errorf("origin: %d requests, %d body bytes; want 1 request of at most %d bytes", n, b, most)
			}
			resp, body = h.get(t, tc.path, rng)
			if resp.Header.Get("X-Cache") != "HIT" || h.origin.Requests() != 1 {
				t.Errorf("repeated suffix range: X-Cache %q, %d origin requests", resp.Header.Get("X-Cache"), h.origin.Requests())
			}
			wantBytes(t, "suffix again", body, tc.path, 1, start)
		})
	}
}

// A range past the end of an object the edge does not hold yet gets the
// origin's 416 with the real length, and leaves the object cacheable.
func TestColdRangePastEnd(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/4MiB.bin"
	resp, _ := h.get(t, path, "Range: bytes=5000000-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != "bytes */4194304" {
		t.Fatalf("status %d, Content-Range %q; want 416 with bytes */4194304", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	if n := h.origin.Requests(); n != 1 {
		t.Errorf("%d origin requests for a range past the end, want 1", n)
	}
	for i, want := range []string{"MISS", "HIT"} {
		h.settle(t)
		resp, body := h.get(t, path, "Range: bytes=0-99")
		if got := resp.Header.Get("X-Cache"); got != want {
			t.Fatalf("request %d after the 416: X-Cache %q, want %q (the object must stay cacheable)", i+1, got, want)
		}
		wantBytes(t, "after 416", body, path, 1, 0)
	}
}

// Cache-Status (RFC 9211) says what each answer needed from the origin.
func TestCacheStatus(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/4MiB.bin"
	h.origin.SetMode(ccMode("max-age=60"))
	for _, tc := range []struct {
		what, method string
		headers      []string
		want         string // Cache-Status up to its ttl or detail
	}{
		{"cold range", "GET", []string{"Range: bytes=0-99"}, "sliceedge; fwd=uri-miss; stored"},
		{"stored range", "GET", []string{"Range: bytes=100-199"}, "sliceedge; hit"},
		{"range with a slice missing", "GET", []string{"Range: bytes=0-1048576"}, "sliceedge; fwd=partial; stored"},
		{"a method the edge does not cache", "POST", nil, "sliceedge; fwd=method; fwd-status=405"},
		{"cookie", "GET", []string{"Cookie: a=b"}, "sliceedge; fwd=bypass; fwd-status=200"},
		// RFC 9111 §3.5: credentials are checked by the origin, which
		// here lets the client have the stored version.
		{"credentials", "GET", []string{"Authorization: Bearer x"}, "sliceedge; fwd=request; fwd-status=304"},
		{"stale, then a 304", "GET", []string{"Range: bytes=0-99"}, "sliceedge; fwd=stale; fwd-status=304; stored"},
	} {
		if tc.what == "stale, then a 304" {
			h.advance(61 * time.Second)
		}
		h.settle(t)
		resp, _ := h.do(t, tc.method, path, tc.headers...)
		if got := resp.Header.Get("Cache-Status"); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: Cache-Status %q, want %q...", tc.what, got, tc.want)
		}
	}
}

// Fifty concurrent cold full GETs of one 64 MiB object cost the origin
// exactly 64 MiB.
func TestCollapseColdFullGets(t *testing.T) {
	h := newHarness(t)
	path, size := "/obj/64MiB.bin", 64*MiB
	if testing.Short() { // the race detector makes every byte costly
		path, size = "/obj/16MiB.bin", 16*MiB
	}
	const clients = 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.srv.Client().Get(h.srv.URL + path)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			n, err := verifyStream(resp.Body, path, 1, 0)
			if err != nil || resp.StatusCode != 200 || n != size {
				errs <- fmt.Errorf("status %d, %d bytes: %v", resp.StatusCode, n, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := h.origin.BodyBytes(); got != size {
		t.Errorf("origin sent %d body bytes for 50 cold GETs, want exactly %d", got, size)
	}
}

// Range header forms and the status each gets.
func TestRangeAnswers(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/3000000.bin"
	const size = 3000000
	h.get(t, path) // warm
	tests := []struct {
		rng    string
		code   int
		ranges []slicer.Range // nil with 200: the whole object
	}{
		{"", 200, nil},
		{"bytes=0-0", 206, []slicer.Range{{Start: 0, End: 1}}},
		{"bytes=-500", 206, []slicer.Range{{Start: size - 500, End: size}}},
		{"bytes=2999000-", 206, []slicer.Range{{Start: 2999000, End: size}}},
		{"bytes=2999000-99999999", 206, []slicer.Range{{Start: 2999000, End: size}}},
		{"BYTES = 5-9", 200, nil}, // whitespace before "=" is invalid: ignored
		{"Bytes=5-9", 206, []slicer.Range{{Start: 5, End: 10}}},
		{"bytes=5-1", 200, nil},
		{"items=0-9", 200, nil},
		{"bytes=abc", 200, nil},
		{"bytes=3000000-", 416, nil},
		{"bytes=-0", 416, nil},
		{"bytes=0-9,200-209", 206, []slicer.Range{{Start: 0, End: 10}, {Start: 200, End: 210}}},
		{"bytes=200-209, 0-9 ,5-12", 206, []slicer.Range{{Start: 0, End: 13}, {Start: 200, End: 210}}},
		{"bytes=0-9,10-19", 206, []slicer.Range{{Start: 0, End: 20}}},
		// Ranges less than slicer.MergeGap apart come back as one part
		// holding the gap: cheaper than a second part's framing.
		{"bytes=0-9,20-29", 206, []slicer.Range{{Start: 0, End: 30}}},
		{"bytes=20-29,0-9,126-135", 206, []slicer.Range{{Start: 0, End: 30}, {Start: 126, End: 136}}}, // a gap of exactly MergeGap
		{"bytes=0-0,2-2,4-4,-1", 206, []slicer.Range{{Start: 0, End: 5}, {Start: size - 1, End: size}}},
		{"bytes=0-99999999999999999999999", 206, []slicer.Range{{Start: 0, End: size}}},
		{"bytes=99999999999999999999999-", 416, nil},
		{"bytes=1048570-1048580,2500000-2500010,-3", 206, []slicer.Range{{Start: 1048570, End: 1048581}, {Start: 2500000, End: 2500011}, {Start: size - 3, End: size}}},
	}
	for _, tt := range tests {
		var hdr []string
		if tt.rng != "" {
			hdr = append(hdr, "Range: "+tt.rng)
		}
		resp, body := h.get(t, path, hdr...)
		if resp.StatusCode != tt.code {
			t.Errorf("range=%q: status %d, want %d", tt.rng, resp.StatusCode, tt.code)
			continue
		}
		switch {
		case tt.code == 416:
			if got, want := resp.Header.Get("Content-Range"), "bytes */3000000"; got != want {
				t.Errorf("range=%q: Content-Range %q, want %q", tt.rng, got, want)
			}
		case tt.code == 200:
			if len(body) != size {
				t.Errorf("range=%q: 200 with %d bytes, want %d", tt.rng, len(body), size)
			}
			wantBytes(t, tt.rng, body, path, 1, 0)
		case len(tt.ranges) == 1:
			rg := tt.ranges[0]
			if got, want := resp.Header.Get("Content-Range"), slicer.ContentRange(rg, size); got != want {
				t.Errorf("range=%q: Content-Range %q, want %q", tt.rng, got, want)
			}
			if int64(len(body)) != rg.Len() {
				t.Fatalf("range=%q: %d bytes, want %d", tt.rng, len(body), rg.Len())
			}
			wantBytes(t, tt.rng, body, path, 1, rg.Start)
		default:
			checkMultipart(t, tt.rng, resp, body, path, size, tt.ranges)
		}
		if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) && tt.code != 416 {
			t.Errorf("range=%q: Content-Length %q for a body of %d bytes", tt.rng, cl, len(body))
		}
	}
}

func checkMultipart(t *testing.T, rng string, resp *http.Response, body []byte, path string, size int64, want []slicer.Range) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("range=%q: Content-Type %q, want multipart/byteranges", rng, resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("range=%q: %d parts, want %d", rng, i, len(want))
			}
			return
		}
		if err != nil {
			t.Fatalf("range=%q: part %d: %v", rng, i, err)
		}
		if i >= len(want) {
			t.Fatalf("range=%q: more than %d parts", rng, len(want))
		}
		if got, w := part.Header.Get("Content-Range"), slicer.ContentRange(want[i], size); got != w {
			t.Errorf("range=%q: part %d Content-Range %q, want %q", rng, i, got, w)
		}
		data, _ := io.ReadAll(part)
		if int64(len(data)) != want[i].Len() {
			t.Fatalf("range=%q: part %d has %d bytes, want %d", rng, i, len(data), want[i].Len())
		}
		wantBytes(t, rng, data, path, 1, want[i].Start)
	}
}

// HEAD answers the same headers as a GET without Range, with no body and
// no slice fetch when the object is known: it ignores Range, which is
// defined for GET only (RFC 9110 §14.2).
func TestHead(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/5MiB.iso"
	if ranged, _ := h.get(t, path, "Range: bytes=10-19"); ranged.StatusCode != http.StatusPartialContent {
		t.Fatalf("GET with Range: %d, want 206", ranged.StatusCode)
	}
	get, _ := h.get(t, path)
	reqs := h.origin.Requests()
	head, body := h.do(t, http.MethodHead, path, "Range: bytes=10-19")
	if len(body) != 0 {
		t.Errorf("HEAD body of %d bytes", len(body))
	}
	for _, k := range []string{"Content-Length", "Content-Type", "ETag", "Last-Modified", "Accept-Ranges"} {
		if get.Header.Get(k) != head.Header.Get(k) || head.Header.Get(k) == "" {
			t.Errorf("%s: HEAD %q, GET %q", k, head.Header.Get(k), get.Header.Get(k))
		}
	}
	if cr := head.Header.Get("Content-Range"); cr != "" {
		t.Errorf("HEAD with Range: Content-Range %q, want none", cr)
	}
	if head.StatusCode != get.StatusCode {
		t.Errorf("HEAD status %d, GET %d", head.StatusCode, get.StatusCode)
	}
	if h.origin.Requests() != reqs {
		t.Errorf("HEAD of a known object went to the origin")
	}
}

// HEAD of a cold object learns the size with one slice, and says it.
func TestHeadCold(t *testing.T) {
	h := newHarness(t)
	resp, body := h.do(t, http.MethodHead, "/obj/7MiB.bin")
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") != strconv.FormatInt(7*MiB, 10) {
		t.Fatalf("HEAD: status %d, Content-Length %q, body %d bytes", resp.StatusCode, resp.Header.Get("Content-Length"), len(body))
	}
	h.settle(t)
	if got := h.origin.BodyBytes(); got > 1*MiB {
		t.Errorf("HEAD cost %d origin body bytes, want at most one slice", got)
	}
}

// Conditional requests: If-None-Match and If-Modified-Since give 304,
// If-Match a 412, If-Range with a strong match keeps the range and any
// other value sends the whole object.
func TestConditionals(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/2MiB.bin"
	resp, _ := h.get(t, path, "Range: bytes=0-0")
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatalf("no validators: ETag %q Last-Modified %q", etag, lm)
	}
	tests := []struct {
		name    string
		headers []string
		code    int
		bodyLen int
	}{
		{"if-none-match", []string{"If-None-Match: " + etag}, 304, 0},
		{"if-none-match other", []string{`If-None-Match: "nope"`}, 200, int(2 * MiB)},
		{"if-none-match weak", []string{"If-None-Match: W/" + etag}, 304, 0},
		{"if-modified-since", []string{"If-Modified-Since: " + lm}, 304, 0},
		{"if-modified-since old", []string{"If-Modified-Since: Mon, 01 Jan 1990 00:00:00 GMT"}, 200, int(2 * MiB)},
		{"if-match fails", []string{`If-Match: "nope"`}, 412, 0},
		{"if-match ok", []string{"If-Match: " + etag, "Range: bytes=0-9"}, 206, 10},
		{"if-range strong", []string{"If-Range: " + etag, "Range: bytes=0-9"}, 206, 10},
		{"if-range other", []string{`If-Range: "old"`, "Range: bytes=0-9"}, 200, int(2 * MiB)},
		{"if-range weak", []string{"If-Range: W/" + etag, "Range: bytes=0-9"}, 200, int(2 * MiB)},
		{"if-range date", []string{"If-Range: " + lm, "Range: bytes=0-9"}, 200, int(2 * MiB)},
	}
	for _, tt := range tests {
		resp, body := h.get(t, path, tt.headers...)
		if resp.StatusCode != tt.code || len(body) != tt.bodyLen {
			t.Errorf("%s %q: status %d with %d bytes, want %d with %d", tt.name, tt.headers, resp.StatusCode, len(body), tt.code, tt.bodyLen)
		}
		if tt.code == 304 && resp.Header.Get("ETag") != etag {
			t.Errorf("%s: 304 without the ETag", tt.name)
		}
	}
}

// An origin that ignores Range: every answer is right, and after one full
// pass the object is served from the store alone.
func TestOriginWithoutRangeSupport(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/6MiB.bin"
	h.origin.SetMode(origintest.Mode{NoRange: true})
	resp, body := h.get(t, path, "Range: bytes=2097152-2097251")
	if resp.StatusCode != 206 || len(body) != 100 {
		t.Fatalf("first range: status %d, %d bytes", resp.StatusCode, len(body))
	}
	wantBytes(t, "first range", body, path, 1, 2097152)
	// Wait for the full body that passed by to be stored.
	origintest.WaitFor(t, "whole object stored", func() bool { return h.edge.Counters().OriginBytes == 6*MiB && h.inFlight() == 0 })
	reqs := h.origin.Requests()
	for _, rng := range []string{"bytes=0-", "bytes=5000000-5000100", "bytes=-1", ""} {
		var hdr []string
		if rng != "" {
			hdr = []string{"Range: " + rng}
		}
		resp, body := h.get(t, path, hdr...)
		start := int64(0)
		if cr := resp.Header.Get("Content-Range"); cr != "" {
			r, _, _, err := slicer.ParseContentRange(cr)
			if err != nil {
				t.Fatal(err)
			}
			start = r.Start
		}
		wantBytes(t, rng, body, path, 1, start)
		if resp.Header.Get("X-Cache") != "HIT" {
			t.Errorf("range=%q: X-Cache %q after a full pass, want HIT", rng, resp.Header.Get("X-Cache"))
		}
	}
	if got := h.origin.Requests() - reqs; got != 0 {
		t.Errorf("%d origin requests after the object was stored, want 0", got)
	}
}

// Requests with credentials, unsafe methods and no-store answers pass
// through and store nothing.
func TestPassThrough(t *testing.T) {
	h := newHarness(t)
	noStore := "no-store"
	h.origin.SetPathMode("/obj/nostore-1MiB.bin", origintest.Mode{CacheControl: &noStore})
	cases := []struct {
		method, path string
		headers      []string
	}{
		{"GET", "/obj/auth-1MiB.bin", []string{"Authorization: Bearer x"}},
		{"GET", "/obj/cookie-1MiB.bin", []string{"Cookie: a=b"}},
		{"GET", "/obj/nostore-1MiB.bin", nil},
		{"POST", "/obj/post-1MiB.bin", nil},
	}
	for _, c := range cases {
		for i := range 2 {
			before := h.origin.Requests()
			resp, body := h.do(t, c.method, c.path, append(c.headers, "Range: bytes=0-99")...)
			if h.origin.Requests() == before {
				t.Errorf("%s %s #%d: did not reach the origin", c.method, c.path, i)
			}
			if resp.StatusCode/100 == 2 && c.method == "GET" {
				wantBytes(t, c.path, body, c.path, 1, 0)
			}
		}
	}
	if st := h.store.Stats(); st.Slices != 0 {
		t.Errorf("store holds %d slices after pass-through requests", st.Slices)
	}
}

// A 404 from the origin reaches the client as it came.
func TestOriginErrorStatusRelayed(t *testing.T) {
	h := newHarness(t)
	resp, _ := h.get(t, "/no-such-object", "Range: bytes=0-9")
	if resp.StatusCode != 404 {
		t.Errorf("status %d, want the origin's 404", resp.StatusCode)
	}
	h.origin.SetMode(origintest.Mode{Status: 503})
	resp, _ = h.get(t, "/obj/1MiB.bin")
	if resp.StatusCode != 503 {
		t.Errorf("status %d, want the origin's 503", resp.StatusCode)
	}
}

// An origin that lies about Content-Range is never served: 502 with a body
// that says why, and nothing stored.
func TestLyingContentRange(t *testing.T) {
	// "total" alone is not detectable in one answer: it is tested below.
	for _, lie := range []string{"start", "end", "star", "malformed"} {
		t.Run(lie, func(t *testing.T) {
			h := newHarness(t)
			h.origin.SetMode(origintest.Mode{LieContentRange: lie})
			resp, body := h.get(t, "/obj/4MiB.bin", "Range: bytes=1048576-1048675")
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", resp.StatusCode)
			}
			if !strings.Contains(string(body), "wrong bytes") {
				t.Errorf("502 body %q does not say what went wrong", body)
			}
			if st := h.store.Stats(); st.Slices != 0 {
				t.Errorf("%d slices stored from a lying origin", st.Slices)
			}
		})
	}
}

// An origin that lies consistently about the complete length can't be
// caught by one answer; the edge must still never serve a wrong byte, and
// the first answer that contradicts the stored size is refused.
func TestLyingTotalLength(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/2MiB.bin"
	h.origin.SetMode(origintest.Mode{LieContentRange: "total"})
	resp, body := h.get(t, path, "Range: bytes=0-99")
	if resp.StatusCode == 206 {
		wantBytes(t, "first range", body, path, 1, 0)
	}
	h.settle(t)
	// The edge now believes 2MiB+1 bytes; asking for the byte that does
	// not exist must not invent it.
	resp, err := h.try("GET", path, "Range: bytes=1048576-")
	if err != nil {
		return // refused before the headers: fine
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode == 206 {
		if int64(len(body)) > 1*MiB {
			t.Fatalf("served %d bytes from 1MiB of a 2MiB object", len(body))
		}
		wantBytes(t, "tail", body, path, 1, 1*MiB)
	} else if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 206 (truncated) or 502", resp.StatusCode)
	}
}

// A body cut short is never stored as a short slice; the client sees a
// truncated answer or an error, never wrong bytes, and a later request is
// whole.
func TestTruncatedOrigin(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/4MiB.bin"
	h.origin.SetMode(origintest.Mode{TruncateAfter: 1536 * KiB})
	resp, err := h.try("GET", path)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && int64(len(body)) == 4*MiB {
			// Retries may complete it, but then every byte must be right.
			wantBytes(t, "retried body", body, path, 1, 0)
		} else if resp.StatusCode == 200 {
			wantBytes(t, "truncated body", body, path, 1, 0)
		}
	}
	h.settle(t)
	h.origin.SetMode(origintest.Mode{})
	resp2, body := h.get(t, path)
	if resp2.StatusCode != 200 || int64(len(body)) != 4*MiB {
		t.Fatalf("after the origin recovered: status %d, %d bytes", resp2.StatusCode, len(body))
	}
	wantBytes(t, "after recovery", body, path, 1, 0)
}

// The slice size is fixed per object: changing the rule never misreads
// stored slices.
func TestSliceSizeFixedAtFirstFill(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/5MiB.bin"
	_, body := h.get(t, path)
	wantBytes(t, "first fill", body, path, 1, 0)
	h.settle(t)
	h.restart(t, setup{Config: edited("slice_size: 1MiB", "slice_size: 256KiB")})
	before := h.origin.BodyBytes()
	resp, body := h.get(t, path, "Range: bytes=1000000-3000000")
	if resp.StatusCode != 206 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	wantBytes(t, "after the slice size changed", body, path, 1, 1000000)
	if got := h.origin.BodyBytes() - before; got != 0 {
		t.Errorf("origin sent %d bytes for stored slices after a config change", got)
	}
}

func (h *harness) inFlight() int { return h.edge.InFlight() }

// A cold full GET is one origin request, whatever the race between the
// answer's feed and the client: the feed of the open range may store its
// first run before the request looks at it (a fast origin, a busy edge),
// and must not stop there and leave the rest of the body to a second
// request. Each object has five slices, the feed stopping after four
// (max_run) unless a request reads from it; the store is in memory and
// the GETs run eight at a time, so the feed often wins the race.
func TestColdFullGetOneFetch(t *testing.T) {
	h := newHarnessWith(t, setup{
		Config: edited("  - match: /drop/\n", "  - match: /run4/\n    origin: default\n    slice_size: 64KiB\n    max_run: 4\n  - match: /drop/\n"),
		Store:  func(*segstore.Store) edge.Store { return newMemStore() },
	})
	const size, objects, workers = 5*64<<10 - 1000, 400, 8
	paths := make(chan string, objects)
	for k := range objects {
		path := fmt.Sprintf("/run4/%d.bin", k)
		h.origin.Add(path, size)
		paths <- path
	}
	close(paths)
	var wg sync.WaitGroup
	errs := make(chan error, objects)
	for range workers {
		wg.Go(func() {
			for path := range paths {
				_, version, _ := h.origin.Object(path)
				resp, err := h.srv.Client().Get(h.srv.URL + path)
				if err != nil {
					errs <- err
					continue
				}
				n, err := verifyStream(resp.Body, path, version, 0)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || n != size {
					errs <- fmt.Errorf("%s: status %d, %d bytes: %v", path, resp.StatusCode, n, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.settle(t)
	twice := 0
	for k := range objects {
		path := fmt.Sprintf("/run4/%d.bin", k)
		if got, body := h.origin.PathRequests(path), h.origin.PathBodyBytes(path); got != 1 || body != size {
			if twice++; twice <= 3 {
				t.Errorf("%s: a cold full GET cost %d origin requests and %d bytes, want 1 and %d", path, got, body, size)
			}
		}
	}
	if twice > 0 {
		t.Errorf("%d of %d cold full GETs cost more than one origin request", twice, objects)
	}
}
