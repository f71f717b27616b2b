package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/slicer"
)

// rg is the range [start, end).
func rg(start, end int64) slicer.Range { return slicer.Range{Start: start, End: end} }

func TestIntervals(t *testing.T) {
	for _, tc := range []struct {
		add  []slicer.Range
		want []slicer.Range
	}{
		{nil, nil},
		{[]slicer.Range{rg(0, 10)}, []slicer.Range{rg(0, 10)}},
		{[]slicer.Range{rg(0, 10), rg(20, 30)}, []slicer.Range{rg(0, 10), rg(20, 30)}},
		{[]slicer.Range{rg(20, 30), rg(0, 10)}, []slicer.Range{rg(0, 10), rg(20, 30)}},
		{[]slicer.Range{rg(0, 10), rg(10, 20)}, []slicer.Range{rg(0, 20)}},            // adjacent
		{[]slicer.Range{rg(0, 10), rg(5, 15)}, []slicer.Range{rg(0, 15)}},             // overlapping
		{[]slicer.Range{rg(0, 10), rg(20, 30), rg(5, 25)}, []slicer.Range{rg(0, 30)}}, // bridging
		{[]slicer.Range{rg(0, 10), rg(20, 30), rg(40, 50), rg(15, 45)}, []slicer.Range{rg(0, 10), rg(15, 50)}},
		{[]slicer.Range{rg(0, 100), rg(10, 20)}, []slicer.Range{rg(0, 100)}}, // inside
		{[]slicer.Range{rg(5, 5)}, nil},                                      // empty
	} {
		var s intervals
		for _, r := range tc.add {
			s.add(r)
		}
		if fmt.Sprint([]slicer.Range(s)) != fmt.Sprint(tc.want) {
			t.Errorf("add %v: %v, want %v", tc.add, s, tc.want)
		}
	}
	// Against a bitmap, at random.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var s intervals
		var bits [540]bool
		for range 1 + rng.IntN(12) {
			a := rng.Int64N(500)
			b := a + rng.Int64N(40)
			s.add(slicer.Range{Start: a, End: b})
			for i := a; i < b; i++ {
				bits[i] = true
			}
		}
		var n int64
		for _, b := range bits {
			if b {
				n++
			}
		}
		if s.bytes() != n {
			t.Fatalf("intervals %v hold %d bytes, the bitmap %d", s, s.bytes(), n)
		}
		for i := 1; i < len(s); i++ {
			if s[i].Start <= s[i-1].End {
				t.Fatalf("intervals %v not disjoint and apart", s)
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	d := func(ms ...int) []time.Duration {
		var out []time.Duration
		for _, m := range ms {
			out = append(out, time.Duration(m)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		in   []time.Duration
		p    int
		want time.Duration
	}{
		{nil, 50, 0},
		{d(7), 50, 7 * time.Millisecond},
		{d(7), 99, 7 * time.Millisecond},
		{d(1, 2), 50, 1 * time.Millisecond},
		{d(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{d(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{d(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
	} {
		var d durations
		for _, v := range tc.in {
			d.record(v)
		}
		// An HDR histogram keeps 3 significant digits.
		if got := d.percentile(float64(tc.p)); got < tc.want || got > tc.want+tc.want/1000 {
			t.Errorf("percentile(%v, %d) = %v, want %v", tc.in, tc.p, got, tc.want)
		}
	}
}

func TestRequestShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const size = 16 << 20
	for range 1000 {
		rs := multiRange(rng, size)
		if len(rs) < 1 || len(rs) > 4 {
			t.Fatalf("multiRange: %d ranges", len(rs))
		}
		for i, r := range rs {
			if r.Start < 0 || r.End > size || r.Len() < 1<<10 || r.Len() > 1<<20 || i > 0 && r.Start <= rs[i-1].End {
				t.Fatalf("multiRange: %v", rs)
			}
		}
		if n := logLen(rng, 1<<10, 4<<20); n < 1<<10 || n > 4<<20 {
			t.Fatalf("logLen %d", n)
		}
		if r := randRange(rng, 5<<20, 4<<20); r != (slicer.Range{Start: 0, End: 4 << 20}) {
			t.Fatalf("randRange longer than the object: %v", r)
		}
	}
	q := request{path: "/a", size: 100, ranges: []slicer.Range{rg(0, 10), rg(20, 21)}}
	if h := q.header(); h != "bytes=0-9,20-20" {
		t.Errorf("header %q", h)
	}
	for size, want := range map[int64]string{1 << 30: "1GiB", 16 << 20: "16MiB", 1536 << 10: "1536KiB", 4097: "4097"} {
		got := sizeName(size)
		if got != want {
			t.Errorf("sizeName(%d) = %q, want %q", size, got, want)
		}
		if n, ok := origintest.SyntheticSize(got + "-0.bin"); !ok || n != size {
			t.Errorf("origintest reads %q as %d, %v", got+"-0.bin", n, ok)
		}
	}
}

func TestHumanUnits(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 29: "1.5 GiB", 100 << 20: "100 MiB", -1: "0 B"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "-", 812 * time.Microsecond: "812µs", 1234 * time.Microsecond: "1.23ms", 12345 * time.Microsecond: "12.3ms", 1250 * time.Millisecond: "1.25s"} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for _, tc := range []struct {
		name string
		v    float64
		want string
	}{{"rounds", 14, "14"}, {"origin_bytes_per_object_byte", 1, "1.00"}, {"warm_seconds", 0.5, "500.0ms"}, {"warm_origin_bytes", 2048, "2.0 KiB"}} {
		if got := humanFigure(tc.name, tc.v); got != tc.want {
			t.Errorf("humanFigure(%s, %v) = %q, want %q", tc.name, tc.v, got, tc.want)
		}
	}
}

// multipartServer answers every request with a multipart/byteranges body of
// the given parts of name, version 1, corrupting part bad (if >= 0).
func multipartServer(t *testing.T, name string, size int64, parts []slicer.Range, bad int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for i, p := range parts {
			pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Range": {slicer.ContentRange(p, size)}})
			body := origintest.Expected(name, 1, p.Start, p.End)
			if i == bad {
				body[0] ^= 1
			}
			_, _ = pw.Write(body)
		}
		_ = mw.Close()
		w.Header().Set("Content-Type", "multipart/byteranges; boundary="+mw.Boundary())
		w.Header().Set("ETag", origintest.ETag(name, 1))
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(b.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchMultipart(t *testing.T) {
	o := origintest.NewTest(t)
	const name, size = "/m/4MiB.bin", 4 << 20
	asked := []slicer.Range{rg(10, 5000), rg(1<<20, 1<<20+300000), rg(3<<20, 4<<20)}
	for _, tc := range []struct {
		what    string
		parts   []slicer.Range
		bad     int
		outcome outcome
		wrong   int64
	}{
		{"as asked", asked, -1, clean, 0},
		{"coalesced", []slicer.Range{rg(0, 2<<20), rg(3<<20, 4<<20)}, -1, clean, 0},
		{"a byte wrong", asked, 1, clean, 1},
		{"a range missing", asked[:2], -1, failed, 0},
		{"short of a range", []slicer.Range{rg(10, 5000), rg(1<<20, 1<<20+300000), rg(3<<20, 4<<20-1)}, -1, failed, 0},
	} {
		e := &env{client: newClient(1), target: multipartServer(t, name, size, tc.parts, tc.bad).URL, origin: newOriginClient(o.URL())}
		f := newFetcher(e, newVersions(e.origin))
		a := f.fetch(context.Background(), request{path: name, size: size, ranges: asked})
		var want int64
		for _, p := range tc.parts {
			want += p.Len()
		}
		if a.outcome != tc.outcome || a.wrong != tc.wrong || a.mixed || a.object != want {
			t.Errorf("%s: outcome %d (err %v), %d wrong, mixed %v, %d bytes; want outcome %d, %d wrong, %d bytes",
				tc.what, a.outcome, a.err, a.wrong, a.mixed, a.object, tc.outcome, tc.wrong, want)
		}
		if a.outcome == clean && (a.ttfb <= 0 || a.ttfb > a.latency) {
			t.Errorf("%s: ttfb %v, latency %v", tc.what, a.ttfb, a.latency)
		}
		e.client.CloseIdleConnections()
	}
}

// TestFetchCut: a body that ends before its Content-Length is a cut
// answer, and the bytes that came are still verified.
func TestFetchCut(t *testing.T) {
	o := origintest.NewTest(t)
	const name, size = "/c/1MiB.bin", 1 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", origintest.ETag(name, 1))
		w.Header().Set("Content-Length", fmt.Sprint(size))
		body := origintest.Expected(name, 1, 0, 1000)
		copy(body[500:], origintest.Expected(name, 2, 500, 1000)) // and stitched
		_, _ = w.Write(body)
		_ = http.NewResponseController(w).Flush() // headers and 1000 bytes out, then cut
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(srv.Close)
	o.SetVersion(name, 2)
	e := &env{client: newClient(1), target: srv.URL, origin: newOriginClient(o.URL())}
	a := newFetcher(e, newVersions(e.origin)).fetch(context.Background(), request{path: name, size: size})
	if a.outcome != cut || !a.mixed || a.object != 1000 || a.wrong == 0 {
		t.Errorf("outcome %d (err %v), mixed %v, %d bytes, %d wrong; want cut, mixed, 1000 bytes, some wrong", a.outcome, a.err, a.mixed, a.object, a.wrong)
	}
}

// TestDefaultWorkloads: pop runs by default only without a target: it
// measures the POP it starts, not the target.
func TestDefaultWorkloads(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil || !slices.Equal(c.Workloads, AllWorkloads()) || c.Nodes != DefaultNodes {
		t.Errorf("no target: workloads %v, nodes %d, %v; want all, %d", c.Workloads, c.Nodes, err, DefaultNodes)
	}
	c, err = Config{Target: "http://127.0.0.1:1", Origin: "http://127.0.0.1:2"}.withDefaults()
	if err != nil || slices.Contains(c.Workloads, "pop") || len(c.Workloads) != len(AllWorkloads())-1 {
		t.Errorf("with a target: workloads %v, %v; want all but pop", c.Workloads, err)
	}
}

// TestPopMix: request i of the stream is the same whatever order the
// workers ask for it in, and unique bytes are the slices touched, once.
func TestPopMix(t *testing.T) {
	const size = 5<<20 + 100
	a, b := newPopMix(rand.New(rand.NewPCG(1, 2)), 8, size), newPopMix(rand.New(rand.NewPCG(1, 2)), 8, size)
	b.at(40)
	for i := int64(40); i >= 0; i-- {
		if x, y := a.at(40-i), b.at(40-i); x.object != y.object || !slices.Equal(x.ranges, y.ranges) {
			t.Fatalf("request %d: %+v in order, %+v out of order", 40-i, x, y)
		}
	}

	m := &popMix{size: size, asks: []popAsk{
		{object: 0, ranges: []slicer.Range{rg(10, 20)}},           // slice 0
		{object: 0, ranges: []slicer.Range{rg(1<<20-1, 1<<20+1)}}, // slices 0 and 1
		{object: 1}, // the whole of another
		{object: 0, ranges: []slicer.Range{rg(4<<20, 4<<20+1)}}, // slice 4
	}}
	for _, tc := range []struct {
		n, want int64
	}{{0, 0}, {1, 1 << 20}, {2, 2 << 20}, {3, 2<<20 + size}, {4, 3<<20 + size}, {9, 3<<20 + size}} {
		if got := m.uniqueBytes(tc.n, 1<<20); got != tc.want {
			t.Errorf("uniqueBytes(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}
