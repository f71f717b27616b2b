package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/slicer"
)

// request is one GET the bench sends.
type request struct {
	path   string         // object path; also its name for origintest
	size   int64          // the object's size, known from its name
	ranges []slicer.Range // nil: the whole object; else ascending, disjoint, not adjacent
	// via is the base URL of the server to ask; "" asks the run's target.
	// host, when not "", is the Host header: the pop workload asks any
	// node of its POP for one site, as a balancer would.
	via, host string
}

// header is the Range header of q.
func (q request) header() string {
	var b strings.Builder
	b.WriteString("bytes=")
	for i, r := range q.ranges {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(r.Start, 10))
		b.WriteByte('-')
		b.WriteString(strconv.FormatInt(r.End-1, 10))
	}
	return b.String()
}

// spans is what q asks for, as ranges.
func (q request) spans() []slicer.Range {
	if q.ranges == nil {
		return []slicer.Range{{Start: 0, End: q.size}}
	}
	return q.ranges
}

// outcome classifies an answer.
type outcome int

const (
	clean     outcome = iota // what was asked for, complete
	cut                      // right headers, then the body ended early: a cut connection
	status5xx                // a 5xx answer
	failed                   // anything else: transport error, wrong status, bad framing
)

// answer is what one request measured.
type answer struct {
	outcome outcome
	latency time.Duration // request sent to last body byte
	ttfb    time.Duration // request sent to first body byte (latency when none came)
	object  int64         // object bytes received (verified)
	wrong   int64         // bytes that are not the named version's
	mixed   bool          // bytes of two or more versions
	err     error         // why, unless clean
}

// fetcher sends requests for one worker and verifies every body byte.
type fetcher struct {
	client   *http.Client
	target   string
	versions *versions
	buf      []byte // read buffer, reused
	scratch  []byte // expected bytes when counting wrong ones
}

// readChunk is the size bodies are read and verified in.
const readChunk = 256 << 10

func newFetcher(e *env, vs *versions) *fetcher {
	return &fetcher{client: e.client, target: e.target, versions: vs, buf: make([]byte, readChunk)}
}

// timedBody records when the first body byte arrived and the first error
// of the connection (anything but a clean end).
type timedBody struct {
	r     io.Reader
	first time.Time
	err   error
}

func (t *timedBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 && t.first.IsZero() {
		t.first = time.Now()
	}
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// fetch sends q and reads, checks and verifies the answer.
func (f *fetcher) fetch(ctx context.Context, q request) (a answer) {
	base := f.target
	if q.via != "" {
		base = q.via
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+q.path, nil)
	if err != nil {
		return answer{outcome: failed, err: fmt.Errorf("GET %s: %w", q.path, err)}
	}
	if q.host != "" {
		req.Host = q.host
	}
	if q.ranges != nil {
		req.Header.Set("Range", q.header())
	}
	began := time.Now()
	body := &timedBody{}
	defer func() {
		a.latency = time.Since(began)
		a.ttfb = a.latency
		if !body.first.IsZero() {
			a.ttfb = body.first.Sub(began)
		}
		if a.err != nil {
			a.err = fmt.Errorf("GET %s%s (Range: %s): %w", q.via, q.path, req.Header.Get("Range"), a.err)
		}
	}()
	resp, err := f.client.Do(req)
	if err != nil {
		return answer{outcome: failed, err: err}
	}
	defer resp.Body.Close()
	body.r = resp.Body

	if resp.StatusCode >= 500 {
		_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
		return answer{outcome: status5xx, err: fmt.Errorf("status %d", resp.StatusCode)}
	}
	vf := &verifier{ctx: ctx, versions: f.versions, path: q.path, scratch: &f.scratch}
	vf.want = f.versions.named(ctx, q.path, resp.Header.Get("ETag"))
	a, got, err := f.readAnswer(resp, body, q, vf)
	a.wrong, a.mixed = vf.wrong, len(vf.seen) > 1
	if err == nil {
		err = covers(got, q.spans())
	}
	switch {
	case err == nil:
		a.outcome = clean
	case body.err != nil:
		a.outcome, a.err = cut, fmt.Errorf("body cut after %d object bytes: %w", a.object, body.err)
	default:
		a.outcome, a.err = failed, err
	}
	return a
}

// readAnswer reads the body of a 200 or 206 answer part by part, verifying
// each, and returns the ranges it held.
func (f *fetcher) readAnswer(resp *http.Response, body io.Reader, q request, vf *verifier) (a answer, got []slicer.Range, err error) {
	switch resp.StatusCode {
	case http.StatusOK:
		n, err := f.readPart(body, vf, 0)
		a.object = n
		if err != nil {
			return a, nil, err
		}
		if n != q.size {
			return a, nil, fmt.Errorf("200 with %d bytes, want the object's %d", n, q.size)
		}
		return a, []slicer.Range{{Start: 0, End: n}}, nil

	case http.StatusPartialContent:
		mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt != "multipart/byteranges" {
			r, err := f.readRangePart(body, resp.Header.Get("Content-Range"), q.size, vf, &a)
			if err != nil {
				return a, nil, err
			}
			return a, []slicer.Range{r}, nil
		}
		if params["boundary"] == "" {
			return a, nil, errors.New("multipart/byteranges without a boundary")
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return a, got, nil
			}
			if err != nil {
				return a, got, fmt.Errorf("multipart part %d: %w", len(got)+1, err)
			}
			r, err := f.readRangePart(p, p.Header.Get("Content-Range"), q.size, vf, &a)
			if err != nil {
				return a, got, fmt.Errorf("multipart part %d: %w", len(got)+1, err)
			}
			got = append(got, r)
		}

	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
		return a, nil, fmt.Errorf("status %d, want 200 or 206", resp.StatusCode)
	}
}

// readRangePart reads one range of a 206 whose Content-Range is cr and
// checks that it held exactly the bytes cr announced.
func (f *fetcher) readRangePart(r io.Reader, cr string, size int64, vf *verifier, a *answer) (slicer.Range, error) {
	rg, total, unsatisfied, err := slicer.ParseContentRange(cr)
	if err != nil || unsatisfied {
		return rg, fmt.Errorf("206 with Content-Range %q", cr)
	}
	if total >= 0 && total != size {
		return rg, fmt.Errorf("Content-Range %q: object size %d, want %d", cr, total, size)
	}
	n, err := f.readPart(r, vf, rg.Start)
	a.object += n
	if err != nil {
		return rg, err
	}
	if n != rg.Len() {
		return rg, fmt.Errorf("Content-Range %q announced %d bytes, body held %d", cr, rg.Len(), n)
	}
	return rg, nil
}

// readPart reads r to its end, verifying every byte as object bytes from
// offset off, and returns how many it read.
func (f *fetcher) readPart(r io.Reader, vf *verifier, off int64) (int64, error) {
	var n int64
	for {
		k, err := fill(r, f.buf)
		if k > 0 {
			vf.check(f.buf[:k], off+n)
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// fill reads into buf until it is full or r fails or ends.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// covers checks that every range asked for lies within one range received.
func covers(got, asked []slicer.Range) error {
	for _, w := range asked {
		ok := false
		for _, g := range got {
			if g.Start <= w.Start && w.End <= g.End {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("answer does not hold bytes %d-%d", w.Start, w.End-1)
		}
	}
	return nil
}

// verifier checks the bytes of one answer against the origin's
// deterministic content: every byte must be a byte of the version the
// answer's ETag names, and all of them of one version.
type verifier struct {
	ctx      context.Context
	versions *versions
	path     string
	want     int          // version the ETag names; 0: unknown until the first bytes say
	maxV     int          // highest version of path, asked once a check fails; 0 until then
	seen     map[int]bool // versions the bytes came from
	wrong    int64        // bytes not of version want
	scratch  *[]byte      // the fetcher's, for expected bytes
}

// check verifies p, the object bytes at offset off.
func (v *verifier) check(p []byte, off int64) {
	if v.want > 0 {
		if _, ok := origintest.Verify(p, v.path, v.want, off); ok {
			v.see(v.want)
			return
		}
	}
	// Slow path, only on a mismatch: which versions are these bytes?
	if v.maxV == 0 {
		v.maxV = max(v.want, 1) + 64 // when the origin cannot be asked
		if cur, err := v.versions.current(v.ctx, v.path); err == nil {
			v.maxV = max(cur, v.want, 1)
		}
	}
	for _, ver := range origintest.WhichVersion(p, v.path, off, v.maxV) {
		if ver >= 0 {
			v.see(ver)
			if v.want == 0 {
				v.want = ver // no ETag named one: hold the body to its first
			}
		}
	}
	if v.want == 0 {
		v.wrong += int64(len(p))
		return
	}
	v.wrong += v.countWrong(p, off)
}

func (v *verifier) see(ver int) {
	if v.seen == nil {
		v.seen = make(map[int]bool, 1)
	}
	v.seen[ver] = true
}

// countWrong counts the bytes of p that differ from version want.
func (v *verifier) countWrong(p []byte, off int64) int64 {
	if len(*v.scratch) < len(p) {
		*v.scratch = make([]byte, len(p))
	}
	want := (*v.scratch)[:len(p)]
	origintest.Fill(want, v.path, v.want, off)
	var n int64
	for i := range p {
		if p[i] != want[i] {
			n++
		}
	}
	return n
}
