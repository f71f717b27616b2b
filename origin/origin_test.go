package origin_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/slicer"
)

const MiB = 1 << 20

func fetch(t *testing.T, c *origin.Client, req *origin.Request) (*origin.Response, []byte, error) {
	t.Helper()
	resp, err := c.Fetch(context.Background(), req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestFetchValidates(t *testing.T) {
	o := origintest.NewTest(t)
	const path = "/a/4MiB.bin"
	url := o.URL() + path
	etag := origintest.ETag(path, 1)
	rng := func(a, b int64) *slicer.Range { return &slicer.Range{Start: a, End: b} }
	tests := []struct {
		name    string
		mode    origintest.Mode
		req     origin.Request
		wantErr error
		ranged  bool
		size    int64
		got     slicer.Range
	}{
		{name: "slice run", req: origin.Request{URL: url, Range: rng(MiB, 3*MiB), IfMatch: origin.Validator{ETag: etag}}, ranged: true, size: 4 * MiB, got: slicer.Range{Start: MiB, End: 3 * MiB}},
		{name: "discovery past the end", req: origin.Request{URL: url, Range: rng(2*MiB, 16*MiB)}, ranged: true, size: 4 * MiB, got: slicer.Range{Start: 2 * MiB, End: 4 * MiB}},
		{name: "chunked 206", mode: origintest.Mode{Chunked: true}, req: origin.Request{URL: url, Range: rng(0, MiB)}, ranged: true, size: 4 * MiB, got: slicer.Range{Start: 0, End: MiB}},
		{name: "no range support", mode: origintest.Mode{NoRange: true}, req: origin.Request{URL: url, Range: rng(MiB, 2*MiB)}, ranged: false, size: 4 * MiB, got: slicer.Range{Start: 0, End: 4 * MiB}},
		{name: "suffix", req: origin.Request{URL: url, Suffix: MiB}, ranged: true, size: 4 * MiB, got: slicer.Range{Start: 3 * MiB, End: 4 * MiB}},
		{name: "suffix longer than the object", req: origin.Request{URL: url, Suffix: 16 * MiB}, ranged: true, size: 4 * MiB, got: slicer.Range{Start: 0, End: 4 * MiB}},
		{name: "suffix, content-range start", mode: origintest.Mode{LieContentRange: "start"}, req: origin.Request{URL: url, Suffix: MiB}, wantErr: origin.ErrBadContentRange},
		{name: "suffix, no range support", mode: origintest.Mode{NoRange: true}, req: origin.Request{URL: url, Suffix: MiB}, ranged: false, size: 4 * MiB, got: slicer.Range{Start: 0, End: 4 * MiB}},
		{name: "if-match fails", req: origin.Request{URL: url, Range: rng(0, MiB), IfMatch: origin.Validator{ETag: `"other"`}}, wantErr: origin.ErrVersionChanged},
		{name: "lying origin serves another version", mode: origintest.Mode{IgnoreIfMatch: true}, req: origin.Request{URL: url, Range: rng(0, MiB), IfMatch: origin.Validator{ETag: `"other"`}}, wantErr: origin.ErrVersionChanged},
		{name: "content-range start", mode: origintest.Mode{LieContentRange: "start"}, req: origin.Request{URL: url, Range: rng(MiB, 2*MiB)}, wantErr: origin.ErrBadContentRange},
		{name: "content-range end", mode: origintest.Mode{LieContentRange: "end"}, req: origin.Request{URL: url, Range: rng(MiB, 2*MiB)}, wantErr: origin.ErrBadContentRange},
		{name: "content-range star", mode: origintest.Mode{LieContentRange: "star"}, req: origin.Request{URL: url, Range: rng(MiB, 2*MiB)}, wantErr: origin.ErrBadContentRange},
		{name: "content-range malformed", mode: origintest.Mode{LieContentRange: "malformed"}, req: origin.Request{URL: url, Range: rng(MiB, 2*MiB)}, wantErr: origin.ErrBadContentRange},
		{name: "range beyond the object", req: origin.Request{URL: url, Range: rng(8*MiB, 9*MiB)}, wantErr: origin.ErrUnsatisfiable},
		{name: "truncated", mode: origintest.Mode{TruncateAfter: 1000}, req: origin.Request{URL: url, Range: rng(0, MiB)}, wantErr: origin.ErrTruncated},
		{name: "truncated chunked", mode: origintest.Mode{TruncateAfter: 1000, Chunked: true}, req: origin.Request{URL: url, Range: rng(0, MiB)}, wantErr: origin.ErrTruncated},
		{name: "stall past the read timeout", mode: origintest.Mode{Stall: 2 * time.Second, StallAfter: 1000}, req: origin.Request{URL: url, Range: rng(0, MiB)}, wantErr: origin.ErrTimeout},
		{name: "no headers within the read timeout", mode: origintest.Mode{Latency: 2 * time.Second}, req: origin.Request{URL: url, Range: rng(0, MiB)}, wantErr: origin.ErrTimeout},
	}
	c := origin.NewClient(origin.Options{ReadTimeout: 300 * time.Millisecond})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o.SetMode(tt.mode)
			resp, body, err := fetch(t, c, &tt.req)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if resp.Ranged != tt.ranged || resp.Size != tt.size || resp.Range != tt.got {
				t.Fatalf("ranged %v size %d range %v, want %v %d %v", resp.Ranged, resp.Size, resp.Range, tt.ranged, tt.size, tt.got)
			}
			if int64(len(body)) != tt.got.Len() {
				t.Fatalf("body %d bytes, want %d", len(body), tt.got.Len())
			}
			if at, ok := origintest.Verify(body, path, 1, tt.got.Start); !ok {
				t.Fatalf("wrong byte at %d", at)
			}
		})
	}
}

func TestFetchSendsConditions(t *testing.T) {
	o := origintest.NewTest(t)
	c := origin.NewClient(origin.Options{})
	url := o.URL() + "/b/1MiB.bin"
	hdr := http.Header{"Range": {"bytes=5-6"}, "If-None-Match": {`"client"`}, "Accept-Encoding": {"gzip"}, "User-Agent": {"player/1"}}
	_, _, err := fetch(t, c, &origin.Request{URL: url, Header: hdr, Range: &slicer.Range{Start: 0, End: MiB}, IfMatch: origin.Validator{LastModified: "Mon, 01 Jan 2024 00:01:00 GMT"}})
	if err != nil {
		t.Fatal(err)
	}
	recs := o.LastRequests()
	got := recs[len(recs)-1]
	if got.Range != "bytes=0-1048575" || got.IfNoneMatch != "" || got.IfUnmodifiedSince == "" || got.IfMatch != "" {
		t.Errorf("origin saw Range %q If-None-Match %q If-Unmodified-Since %q If-Match %q", got.Range, got.IfNoneMatch, got.IfUnmodifiedSince, got.IfMatch)
	}
	if ae := got.Header.Get("Accept-Encoding"); ae != "identity" {
		t.Errorf("Accept-Encoding %q, want identity (slices address identity bytes)", ae)
	}
	if ua := got.Header.Get("User-Agent"); ua != "player/1" {
		t.Errorf("User-Agent %q not forwarded", ua)
	}
}

func TestRevalidate(t *testing.T) {
	o := origintest.NewTest(t)
	c := origin.NewClient(origin.Options{})
	const path = "/c/1MiB.bin"
	v := origin.Validator{ETag: origintest.ETag(path, 1)}
	resp, err := c.Fetch(context.Background(), &origin.Request{URL: o.URL() + path, Range: &slicer.Range{Start: 0, End: MiB}, IfNoneMatch: v})
	if err != nil || resp.Status != http.StatusNotModified {
		t.Fatalf("status %v err %v, want 304", resp, err)
	}
	o.Bump(path)
	resp, err = c.Fetch(context.Background(), &origin.Request{URL: o.URL() + path, Range: &slicer.Range{Start: 0, End: MiB}, IfNoneMatch: v})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Status != http.StatusPartialContent || origin.ValidatorOf(resp.Header, false).ETag != origintest.ETag(path, 2) {
		t.Fatalf("status %d ETag %q after a change, want 206 with the new ETag", resp.Status, resp.Header.Get("ETag"))
	}
}

func TestValidatorOf(t *testing.T) {
	h := http.Header{"Etag": {`W/"weak"`}, "Last-Modified": {"Mon, 01 Jan 2024 00:00:00 GMT"}}
	if v := origin.ValidatorOf(h, false); !v.IsZero() {
		t.Errorf("weak ETag taken as a validator: %v", v)
	}
	if v := origin.ValidatorOf(h, true); v.LastModified == "" || v.ETag != "" {
		t.Errorf("Last-Modified not used when allowed: %v", v)
	}
	h.Set("ETag", `"strong"`)
	if v := origin.ValidatorOf(h, true); v.ETag != `"strong"` || v.LastModified != "" {
		t.Errorf("strong ETag not preferred: %v", v)
	}
	a, b := origin.Validator{ETag: `"x"`}, origin.Validator{ETag: `"X"`}
	if a.Matches(b) || !a.Matches(a) {
		t.Errorf("validators must compare byte for byte")
	}
}

// A 416 is a *RangeError carrying the complete length its Content-Range
// gives (the edge tells a range beyond the object from one the origin
// refused inside it by that length), -1 when there is none.
func TestFetchRangeErrorSize(t *testing.T) {
	o := origintest.NewTest(t)
	lying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cr := r.URL.Query().Get("cr"); cr != "" {
			w.Header().Set("Content-Range", cr)
		}
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
	}))
	t.Cleanup(lying.Close)
	tests := []struct {
		name string
		url  string
		rng  slicer.Range
		size int64
	}{
		{"beyond the object", o.URL() + "/d/4MiB.bin", slicer.Range{Start: 8 * MiB, End: 9 * MiB}, 4 * MiB},
		{"refused inside the object", lying.URL + "/x?cr=bytes%20*/4194304", slicer.Range{Start: MiB, End: 2 * MiB}, 4 * MiB},
		{"no Content-Range", lying.URL + "/x", slicer.Range{Start: MiB, End: 2 * MiB}, -1},
		{"malformed Content-Range", lying.URL + "/x?cr=bytes%200-1/4", slicer.Range{Start: MiB, End: 2 * MiB}, -1},
	}
	c := origin.NewClient(origin.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := fetch(t, c, &origin.Request{URL: tt.url, Range: &tt.rng})
			var re *origin.RangeError
			if !errors.As(err, &re) || !errors.Is(err, origin.ErrUnsatisfiable) {
				t.Fatalf("Range %s: err = %v, want a *RangeError wrapping ErrUnsatisfiable", tt.rng.Header(), err)
			}
			if re.Size != tt.size {
				t.Fatalf("Range %s: RangeError.Size = %d, want %d", tt.rng.Header(), re.Size, tt.size)
			}
		})
	}
}
