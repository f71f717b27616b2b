package edge_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// scriptOrigin is the golden tests' origin: objects whose versions, headers
// and misbehaviour the test files script, and a log of every request it
// received. The bytes of version v of the object at path are
// origintest.Fill(path, v), so any body can be checked against them.
type scriptOrigin struct {
	now    func() time.Time
	active atomic.Int64 // requests being answered

	mu      sync.Mutex // protects objects and log
	objects map[string]*scriptObject
	log     []originHit
}

// scriptObject is one path of the origin.
type scriptObject struct {
	versions []*scriptVersion // every version so far; version n is versions[n-1]
	cur      int              // the version served now
	next     int              // a version that takes over ...
	nextAt   int              // ... once this many requests of the path were answered
	seen     int              // requests of the path so far

	ignoreRanges bool   // answer 200 with the whole body to a Range
	ignoreConds  bool   // ignore If-Match, If-None-Match and the dates
	lie          string // "range": Content-Range one byte off; "total": the wrong length
	lieAfter     int    // lie from the request after this many

	answer      *scriptAnswer // a fixed answer instead of the object, ...
	answerTimes int           // ... this many times more (-1: until cleared)
}

// scriptVersion is one version of an object.
type scriptVersion struct {
	n      int
	bytes  int // its bytes are origintest.Fill(path, bytes): n, or an earlier version's
	size   int64
	header http.Header // ETag, Last-Modified, Cache-Control, Content-Type, ...
}

// scriptAnswer is a fixed answer: a status with its headers and a short
// text body.
type scriptAnswer struct {
	status int
	header http.Header
}

// originHit is one request the origin received, and its answer's status.
type originHit struct {
	method, uri string
	header      http.Header
	pass        bool // not the edge's own fetch (its User-Agent): a pass-through
	status      int
}

// hitHeaders are the request headers an origin request is shown with.
var hitHeaders = []string{
	"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
	"Authorization", "Cookie", "Content-Length",
}

func (h originHit) String() string {
	var b strings.Builder
	if h.pass {
		b.WriteString("pass ")
	}
	b.WriteString(h.method + " " + h.uri)
	for _, k := range hitHeaders {
		if v := h.header.Get(k); v != "" {
			fmt.Fprintf(&b, " %s: %s", k, v)
		}
	}
	fmt.Fprintf(&b, " -> %d", h.status)
	return b.String()
}

// revalidation reports whether h is the edge's own conditional request for
// a stored object (it sends If-None-Match or If-Modified-Since only then).
func (h originHit) revalidation() bool {
	return !h.pass && (h.header.Get("If-None-Match") != "" || h.header.Get("If-Modified-Since") != "")
}

func newScriptOrigin(now func() time.Time) *scriptOrigin {
	return &scriptOrigin{now: now, objects: map[string]*scriptObject{}}
}

// define adds a version of the object at path (the first defines it) and
// makes it current at once, or once `after` more requests of the path have
// been answered. keepBytes gives it the bytes of the version before it
// (only its headers change).
func (o *scriptOrigin) define(path string, size int64, header http.Header, after int, keepBytes bool) *scriptVersion {
	o.mu.Lock()
	defer o.mu.Unlock()
	obj := o.objects[path]
	if obj == nil {
		obj = &scriptObject{}
		o.objects[path] = obj
	}
	v := &scriptVersion{n: len(obj.versions) + 1, size: size, header: header}
	v.bytes = v.n
	if keepBytes && len(obj.versions) > 0 {
		v.bytes = obj.versions[len(obj.versions)-1].bytes
	}
	obj.versions = append(obj.versions, v)
	if after > 0 {
		obj.next, obj.nextAt = v.n, obj.seen+after
	} else {
		obj.cur = v.n
	}
	return v
}

// versions returns every version of path defined so far.
func (o *scriptOrigin) versions(path string) []*scriptVersion {
	o.mu.Lock()
	defer o.mu.Unlock()
	if obj := o.objects[path]; obj != nil {
		return slices.Clone(obj.versions)
	}
	return nil
}

// latest returns the last version of path defined, or nil.
func (o *scriptOrigin) latest(path string) *scriptVersion {
	o.mu.Lock()
	defer o.mu.Unlock()
	if obj := o.objects[path]; obj != nil && len(obj.versions) > 0 {
		return obj.versions[len(obj.versions)-1]
	}
	return nil
}

// configure changes the object at path (creating it) under the lock.
func (o *scriptOrigin) configure(path string, f func(obj *scriptObject)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	obj := o.objects[path]
	if obj == nil {
		obj = &scriptObject{}
		o.objects[path] = obj
	}
	f(obj)
}

// hits returns the requests received since the first n.
func (o *scriptOrigin) hits(n int) []originHit {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]originHit(nil), o.log[n:]...)
}

// ServeHTTP answers as scripted and logs the request.
func (o *scriptOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.active.Add(1)
	defer o.active.Add(-1)
	o.mu.Lock()
	hit := originHit{method: r.Method, uri: r.URL.RequestURI(), header: r.Header.Clone(), pass: r.Header.Get("User-Agent") != "sliceedge"}
	status, header, body := o.answerLocked(r)
	hit.status = status
	o.log = append(o.log, hit)
	o.mu.Unlock()

	h := w.Header()
	for k, vv := range header {
		h[k] = vv
	}
	h.Set("Date", o.now().UTC().Format(http.TimeFormat))
	if status != http.StatusNotModified && status != http.StatusNoContent {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// answerLocked decides the answer to r: its status, headers and body (for
// HEAD, the body a GET would get).
func (o *scriptOrigin) answerLocked(r *http.Request) (int, http.Header, []byte) {
	obj := o.objects[r.URL.Path]
	if obj == nil {
		return text(http.StatusNotFound, nil)
	}
	if obj.next > 0 && obj.seen >= obj.nextAt {
		obj.cur, obj.next = obj.next, 0
	}
	obj.seen++
	if obj.answer != nil && obj.answerTimes != 0 {
		if obj.answerTimes > 0 {
			obj.answerTimes--
		}
		return text(obj.answer.status, obj.answer.header)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		return text(http.StatusCreated, nil)
	default:
		return http.StatusNoContent, http.Header{}, nil
	}
	if obj.cur == 0 { // only ever a fixed answer
		return text(http.StatusNotFound, nil)
	}
	v := obj.versions[obj.cur-1]
	h := v.header.Clone()
	if !obj.ignoreRanges {
		h.Set("Accept-Ranges", "bytes")
	}
	if !obj.ignoreConds {
		if status := v.preconditions(r); status != 0 {
			if status == http.StatusNotModified {
				for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Accept-Ranges"} {
					h.Del(k)
				}
			}
			return status, h, nil
		}
	}
	start, end, ranged := int64(0), v.size, false // end exclusive
	if !obj.ignoreRanges && (obj.ignoreConds || v.ifRangeHolds(r.Header.Get("If-Range"))) {
		var ok bool
		start, end, ranged, ok = parseOneRange(r.Header.Get("Range"), v.size)
		if !ok {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", v.size))
			h.Del("Content-Type")
			return http.StatusRequestedRangeNotSatisfiable, h, nil
		}
	}
	body := make([]byte, end-start)
	origintest.Fill(body, r.URL.Path, v.bytes, start)
	if !ranged {
		return http.StatusOK, h, body
	}
	first, last, total := start, end-1, v.size
	if obj.lie != "" && obj.seen > obj.lieAfter {
		switch obj.lie {
		case "range":
			first, last = first+1, last+1
		case "total":
			total += 1000
		}
	}
	h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, total))
	return http.StatusPartialContent, h, body
}

// text is a fixed answer with a short text body.
func text(status int, header http.Header) (int, http.Header, []byte) {
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	return status, h, []byte(fmt.Sprintf("origin: %d %s\n", status, http.StatusText(status)))
}

// preconditions evaluates r's preconditions against v in the order of
// RFC 9110 §13.2.2 and returns 412, 304, or 0 to go on.
func (v *scriptVersion) preconditions(r *http.Request) int {
	etag := v.header.Get("ETag")
	lm, lmErr := http.ParseTime(v.header.Get("Last-Modified"))
	if im := r.Header.Get("If-Match"); im != "" {
		if !etagIn(im, etag, true) {
			return http.StatusPreconditionFailed
		}
	} else if t, err := http.ParseTime(r.Header.Get("If-Unmodified-Since")); err == nil && lmErr == nil && lm.After(t) {
		return http.StatusPreconditionFailed
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if etagIn(inm, etag, false) {
			return http.StatusNotModified
		}
	} else if t, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && lmErr == nil && !lm.After(t) {
		return http.StatusNotModified
	}
	return 0
}

// ifRangeHolds reports whether an If-Range value (or none) lets the Range
// apply: a strong entity tag equal to v's, or v's Last-Modified date
// exactly (RFC 9110 §13.1.5).
func (v *scriptVersion) ifRangeHolds(ir string) bool {
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) {
		return ir == v.header.Get("ETag")
	}
	return ir == v.header.Get("Last-Modified")
}

// etagIn reports whether the entity-tag list (or "*") holds etag, by the
// strong or the weak comparison (RFC 9110 §8.8.3.2).
func etagIn(list, etag string, strong bool) bool {
	if etag == "" {
		return false
	}
	if strings.TrimSpace(list) == "*" {
		return true
	}
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		switch {
		case strong && t == etag && !strings.HasPrefix(t, "W/"):
			return true
		case !strong && strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/"):
			return true
		}
	}
	return false
}

// parseOneRange resolves a Range header of one byte range against size:
// [start, end) and ranged; a header that is absent, not one valid byte
// range, or of several ranges is ignored (the whole body, RFC 9110 §14.2
// lets a server do so). ok is false when the range is unsatisfiable.
func parseOneRange(v string, size int64) (start, end int64, ranged, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, size, false, true
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, size, false, true
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, size, false, true
		}
		if n == 0 || size == 0 {
			return 0, 0, true, false
		}
		return max(size-n, 0), size, true, true
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, size, false, true
	}
	last := size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
			return 0, size, false, true
		}
	}
	if first >= size {
		return 0, 0, true, false
	}
	return first, min(last+1, size), true, true
}
