package edge_test

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"

	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/slicer"
)

// oneByteRanges returns a Range header of n one-byte ranges, step bytes
// apart from start, and the ranges themselves.
func oneByteRanges(n int, start, step int64) (string, []slicer.Range) {
	specs := make([]string, n)
	rs := make([]slicer.Range, n)
	for i := range specs {
		off := start + int64(i)*step
		specs[i] = fmt.Sprintf("%d-%d", off, off)
		rs[i] = slicer.Range{Start: off, End: off + 1}
	}
	return "bytes=" + strings.Join(specs, ","), rs
}

// multipartCost is the exact length of a multipart/byteranges body that
// sends each of ranges as its own part, framed as mime/multipart frames it.
func multipartCost(t *testing.T, contentType string, ranges []slicer.Range, size int64) int64 {
	t.Helper()
	var n countWriter
	mw := multipart.NewWriter(&n)
	for _, rg := range ranges {
		h := textproto.MIMEHeader{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		h.Set("Content-Range", slicer.ContentRange(rg, size))
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, rg.Len())); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return int64(n)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// Thousands of one-byte ranges two bytes apart on a cold 64 MiB object are
// merged across their gaps (RFC 9110 §14.2) into one 206: byte-exact, one
// slice from the origin, and fewer bytes than the parts sent separately
// would be. Before, they exceeded max_ranges and cost the whole object.
func TestRangeAbuseCloseRangesMerged(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/64MiB-abuse.bin"
	const size = 64 * MiB
	const sliceSize = MiB // the "/" rule of the harness
	header, asked := oneByteRanges(2000, 0, 2)

	got := h.fetch(t, path, "Range: "+header)
	if got.err != nil || got.status != 206 {
		t.Fatalf("2000 one-byte ranges two apart: status %d, err %v, body %.200q; want 206", got.status, got.err, got.body)
	}
	if ct := got.header.Get("Content-Type"); strings.HasPrefix(ct, "multipart/") {
		t.Fatalf("Content-Type %q; want a single part", ct)
	}
	want := slicer.Range{Start: 0, End: 3999}
	if cr, w := got.header.Get("Content-Range"), slicer.ContentRange(want, size); cr != w {
		t.Fatalf("Content-Range %q, want %q", cr, w)
	}
	if int64(len(got.body)) != want.Len() {
		t.Fatalf("%d body bytes, want %d", len(got.body), want.Len())
	}
	// Every byte, those asked for and those of the gaps, is the origin's.
	wantBytes(t, "merged range", got.body, path, 1, want.Start)

	// The handler counts the slice after its last write, which the client
	// may have read before.
	origintest.WaitFor(t, "fills to settle", func() bool { return h.inFlight() == 0 && h.edge.Counters().SliceMisses >= 1 })
	if n := h.origin.PathRequests(path); n != 1 {
		t.Errorf("origin asked %d times, want 1", n)
	}
	if ob := h.origin.PathBodyBytes(path); ob > sliceSize {
		t.Errorf("origin sent %d bytes, want at most one slice (%d)", ob, sliceSize)
	}
	if c := h.edge.Counters(); c.OriginBytes > sliceSize || c.SliceMisses != 1 {
		t.Errorf("edge counted %d origin bytes and %d slice misses, want at most %d and 1", c.OriginBytes, c.SliceMisses, sliceSize)
	}
	if st := h.store.Stats(); st.Slices != 1 {
		t.Errorf("store holds %d slices, want 1", st.Slices)
	}
	separate := multipartCost(t, got.header.Get("Content-Type"), asked, size)
	if int64(len(got.body)) >= separate {
		t.Errorf("merged answer of %d bytes; %d parts sent separately would be %d", len(got.body), len(asked), separate)
	}
	t.Logf("merged answer %d bytes, separate parts %d bytes, origin %d bytes", len(got.body), separate, h.origin.PathBodyBytes(path))

	// The same request again is a hit: nothing more from the origin.
	again := h.fetch(t, path, "Range: "+header)
	if again.status != 206 || string(again.body) != string(got.body) {
		t.Errorf("repeat: status %d, %d bytes; want the same 206", again.status, len(again.body))
	}
	if n := h.origin.PathRequests(path); n != 1 {
		t.Errorf("repeat asked the origin again: %d requests", n)
	}
}

// Ranges separated by gaps of at least slicer.MergeGap stay separate parts;
// up to max_ranges of them are a multipart 206, more are a 200 of the whole
// object (RFC 9110 §14.2 lets a server ignore Range), as before.
func TestRangeAbuseSpreadRanges(t *testing.T) {
	const path = "/obj/4MiB-spread.bin"
	const size = 4 * MiB
	step := int64(slicer.MergeGap + 1) // a gap of exactly MergeGap: not merged
	t.Run("max_ranges spread out: multipart", func(t *testing.T) {
		h := newHarness(t)
		header, asked := oneByteRanges(slicer.DefaultMaxRanges, 1000, step)
		got := h.fetch(t, path, "Range: "+header)
		if got.err != nil || got.status != 206 || !strings.HasPrefix(got.header.Get("Content-Type"), "multipart/byteranges") {
			t.Fatalf("status %d, Content-Type %q, err %v; want a multipart 206", got.status, got.header.Get("Content-Type"), got.err)
		}
		if n := countParts(t, got, path); n != len(asked) {
			t.Errorf("%d parts, want %d", n, len(asked))
		}
	})
	for _, n := range []int{slicer.DefaultMaxRanges + 1, 2000} {
		t.Run(fmt.Sprintf("%d spread out: whole object", n), func(t *testing.T) {
			h := newHarness(t)
			header, _ := oneByteRanges(n, 0, step)
			got := h.fetch(t, path, "Range: "+header)
			if got.err != nil || got.status != 200 {
				t.Fatalf("status %d, err %v; want 200", got.status, got.err)
			}
			if int64(len(got.body)) != size {
				t.Fatalf("200 with %d bytes, want %d", len(got.body), size)
			}
			wantBytes(t, "200 body", got.body, path, 1, 0)
			h.settle(t)
			if ob := h.origin.PathBodyBytes(path); ob > size {
				t.Errorf("origin sent %d bytes for a %d-byte object", ob, size)
			}
		})
	}
}

// countParts verifies every part of a multipart answer against the origin
// and returns how many there are.
func countParts(t *testing.T, got fetched, path string) int {
	t.Helper()
	_, boundary, ok := strings.Cut(got.header.Get("Content-Type"), "boundary=")
	if !ok {
		t.Fatalf("Content-Type %q without a boundary", got.header.Get("Content-Type"))
	}
	mr := multipart.NewReader(strings.NewReader(string(got.body)), boundary)
	n := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("part %d: %v", n, err)
		}
		rg, _, _, err := slicer.ParseContentRange(part.Header.Get("Content-Range"))
		if err != nil {
			t.Fatalf("part %d: %v", n, err)
		}
		data, err := io.ReadAll(part)
		if err != nil || int64(len(data)) != rg.Len() {
			t.Fatalf("part %d (%v): %d bytes, %v", n, rg, len(data), err)
		}
		wantBytes(t, fmt.Sprintf("part %d", n), data, path, 1, rg.Start)
		n++
	}
}
