package edge

// Answering from a version: the client's preconditions, then 412, 304,
// 416, 200 or 206 (one range, or several as multipart/byteranges), the
// headers that describe it, and the body, range by range (rangecopy.go).
// The status line waits for the first body byte, so that an origin that
// flaps before it can still be answered cleanly. Errors the edge answers
// itself are here too.

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// respond answers q from version v. An error means nothing was written yet
// unless q.statusSent.
func (s *Server) respond(q *request, v version, specs []slicer.Spec) error {
	if v.meta.Status != 0 && v.meta.Status != http.StatusOK {
		return s.respondStatus(q, v)
	}
	m, h := v.meta, q.w.Header()
	for k, vv := range m.Header {
		h[k] = vv
	}
	dropEdgeFields(h, q.rule)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Age", strconv.FormatInt(age(s.now(), m.StoredAt), 10))

	// An answer without body bytes needed the origin only if the meta
	// itself came from it; an answer with them, at least then.
	bodiless := cacheHit
	if v.source.fromOrigin() {
		bodiless = cacheMiss
	}
	switch checkPreconditions(q.r, m) {
	case condFailed:
		q.detail = "precondition failed"
		return s.respondEmpty(q, v, bodiless, http.StatusPreconditionFailed)
	case condNotModified:
		for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Content-Disposition", "Content-Language"} {
			h.Del(k)
		}
		return s.respondEmpty(q, v, bodiless, http.StatusNotModified)
	case condIgnoreRange:
		specs = nil
	}

	var ranges []slicer.Range
	if specs != nil {
		var err error
		ranges, err = slicer.Resolve(specs, m.Size, slicer.Limits{MaxRanges: q.rule.MaxRanges})
		if errors.Is(err, slicer.ErrUnsatisfiable) {
			h.Set("Content-Range", slicer.UnsatisfiedContentRange(m.Size))
			h.Del("Content-Type")
			return s.respondEmpty(q, v, bodiless, http.StatusRequestedRangeNotSatisfiable)
		}
	}
	if len(ranges) > 1 && q.r.Method == http.MethodGet && s.overAllowance(q, m, ranges) {
		// Sparse ranges over slices not stored: fetching them would cost
		// the origin far more than the client asked for. The origin answers
		// them as asked, uncached.
		s.metrics().limitTrip("fetch_allowance")
		resetHeader(h)
		s.pass(q, "fetch-allowance")
		return nil
	}
	status, parts, mp := frame(h, m, ranges)
	if m.Class() == segstore.Unproven && q.r.Method == http.MethodGet && (!v.source.fromOrigin() || s.inPOP()) {
		// No other answer may fill this version: a body it cannot
		// complete must not start (serve.go fetches it again first). A
		// discovery answers the whole request with its open range,
		// except in a POP, where it asked for one group (peers.go).
		if i := s.unfillable(m, parts); i >= 0 {
			return unproven(m, i)
		}
	}
	q.outcome = s.outcomeOf(q, v, parts, bodiless)
	s.tag(q, h, v.cacheStatus(q.outcome, s.now()))
	q.status = status
	if q.r.Method == http.MethodHead {
		q.w.WriteHeader(status)
		q.markFirstByte(s.now())
		return nil
	}
	return s.sendBody(q, m, parts, mp)
}

// sendBody sends parts of m, framed by mp when there are several.
func (s *Server) sendBody(q *request, m *segstore.Meta, parts []slicer.Range, mp *multipartBody) error {
	for k, part := range parts {
		if mp != nil {
			if err := q.write(s, mp.partHeader(k)); err != nil {
				return err
			}
		}
		if err := s.copyRange(q, m, part); err != nil {
			return err
		}
	}
	if mp != nil {
		if err := q.write(s, mp.trailer()); err != nil {
			return err
		}
	}
	if !q.statusSent {
		q.w.WriteHeader(q.status) // an empty object
	}
	return nil
}

// respondEmpty answers from v with a status and no body.
func (s *Server) respondEmpty(q *request, v version, o cacheOutcome, status int) error {
	q.outcome = o
	s.tag(q, q.w.Header(), v.cacheStatus(o, s.now()))
	return s.writeEmpty(q, status)
}

// frame sets the length and range headers of an answer of ranges of m (none:
// the whole object) and returns its status, the parts of the body in order,
// and the multipart framing when there are several.
func frame(h http.Header, m *segstore.Meta, ranges []slicer.Range) (int, []slicer.Range, *multipartBody) {
	switch len(ranges) {
	case 0:
		h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
		return http.StatusOK, []slicer.Range{{Start: 0, End: m.Size}}, nil
	case 1:
		h.Set("Content-Range", slicer.ContentRange(ranges[0], m.Size))
		h.Set("Content-Length", strconv.FormatInt(ranges[0].Len(), 10))
		return http.StatusPartialContent, ranges, nil
	}
	mp := newMultipart(h.Get("Content-Type"), ranges, m.Size)
	h.Set("Content-Type", "multipart/byteranges; boundary="+mp.boundary)
	h.Set("Content-Length", strconv.FormatInt(mp.length(), 10))
	return http.StatusPartialContent, ranges, mp
}

// outcomeOf is what an answer of parts of v needs from the origin. Counted
// per run, not per slice: a HEAD or a full GET of an object an origin says
// is a petabyte costs what is stored of it.
func (s *Server) outcomeOf(q *request, v version, parts []slicer.Range, bodiless cacheOutcome) cacheOutcome {
	if q.r.Method == http.MethodHead || bodiless == cacheMiss {
		// A meta that came from the origin now came with slices that are
		// this request's misses, even those stored before it counts them.
		return bodiless
	}
	hits, misses := int64(0), int64(0)
	for _, run := range slicer.Cover(parts, v.meta.SliceSize) {
		n := s.Store.CountStored(v.meta, run.First, run.Last)
		hits, misses = hits+n, misses+run.Len()-n
	}
	switch {
	case misses == 0:
		return cacheHit
	case hits == 0:
		return cacheMiss
	}
	return cachePartial
}

// overAllowance reports whether answering ranges of m would make the edge
// fetch more from the origin than the rule's fetch allowance lets one
// request: max(fetch_allowance, FetchFactor × the bytes asked for), counting
// the slices neither stored nor being filled.
func (s *Server) overAllowance(q *request, m *segstore.Meta, ranges []slicer.Range) bool {
	var asked int64
	for _, rg := range ranges {
		asked += rg.Len()
	}
	allowance := max(q.rule.FetchAllowance, config.FetchFactor*min(asked, math.MaxInt64/config.FetchFactor))
	runs := slicer.Cover(ranges, m.SliceSize)
	var covered int64
	for _, run := range runs {
		covered += run.Len() * m.SliceSize
		if covered > allowance {
			break
		}
	}
	if covered <= allowance {
		return false // even with nothing stored: the common case, decided without a look
	}
	// Here the slices are few: their bytes are more than FetchFactor times
	// what is asked, so most of each is not asked for.
	var need int64
	for _, run := range runs {
		for i := run.First; i <= run.Last; i++ {
			if !s.Store.Has(m, i) && s.fills.Lookup(m.Key, m.Version, i) == nil {
				if need += m.SliceLen(i); need > allowance {
					return true
				}
			}
		}
	}
	return false
}

// unfillable returns the first slice of parts of m that is neither stored
// nor on its way from the origin, or -1.
func (s *Server) unfillable(m *segstore.Meta, parts []slicer.Range) int64 {
	for _, run := range slicer.Cover(parts, m.SliceSize) {
		if s.Store.CountStored(m, run.First, run.Last) == run.Len() {
			continue // the hit: one walk of the index per run, not a lookup per slice
		}
		for i := run.First; i <= run.Last; i++ {
			if !s.Store.Has(m, i) && s.fills.Lookup(m.Key, m.Version, i) == nil {
				return i
			}
		}
	}
	return -1
}

// unsatisfiable answers 416 for an object the store does not hold, from
// the length the origin's own 416 gave.
func (s *Server) unsatisfiable(q *request, size int64) {
	h := q.w.Header()
	h.Set("Content-Range", slicer.UnsatisfiedContentRange(size))
	q.outcome, q.detail = cacheMiss, "range beyond the object"
	s.tag(q, h, cacheStatus{fwd: "uri-miss", fwdStatus: http.StatusRequestedRangeNotSatisfiable})
	_ = s.writeEmpty(q, http.StatusRequestedRangeNotSatisfiable)
}

// writeEmpty answers with a status and no body.
func (s *Server) writeEmpty(q *request, status int) error {
	q.status = status
	q.w.WriteHeader(status)
	q.statusSent = true
	q.markFirstByte(s.now())
	return nil
}

// write sends body bytes, writing the status line first if it is pending.
func (q *request) write(s *Server, p []byte) error {
	if !q.statusSent {
		q.w.WriteHeader(q.status)
		q.statusSent = true
		q.markFirstByte(s.now())
	}
	n, err := q.w.Write(p)
	q.sent += int64(n)
	if err != nil {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	return nil
}

func (q *request) markFirstByte(now time.Time) {
	if q.ttfb == 0 {
		q.ttfb = max(now.Sub(q.start), 1)
	}
}

// originFailed answers 502 (or 504 for a timeout) when nothing was sent.
func (s *Server) originFailed(q *request, err error) {
	s.Log.Warn().Err(err).Str("key", q.key).Msg("edge: origin failed")
	q.outcome, q.detail = cacheError, err.Error()
	status, msg := http.StatusBadGateway, "sliceedge: the origin failed to deliver the object; retry later\n"
	switch {
	case errors.Is(err, origin.ErrTimeout):
		status, msg = http.StatusGatewayTimeout, "sliceedge: the origin did not answer in time; retry later\n"
	case errors.Is(err, origin.ErrBadContentRange):
		msg = "sliceedge: the origin answered a range request with the wrong bytes; not served\n"
	case errors.Is(err, origin.ErrBadAnswer):
		msg = "sliceedge: the origin answered with something other than the bytes asked for (several parts, a content coding, or more bytes than it announced); not served\n"
	case errors.Is(err, origin.ErrHeadersTooLarge):
		msg = "sliceedge: the origin's response headers are larger than this edge accepts (origins.*.max_header_bytes); not served\n"
	}
	s.plainError(q, status, cacheStatus{fwd: "miss", detail: "origin-error"}, msg)
}

// resetHeader drops the response headers set so far, but for the
// Connection: close that refuseBody may have set.
func resetHeader(h http.Header) {
	for k := range h {
		if k != "Connection" {
			delete(h, k)
		}
	}
}

// plainError answers with a short text for people.
func (s *Server) plainError(q *request, status int, cs cacheStatus, msg string) {
	h := q.w.Header()
	resetHeader(h)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	s.addCacheStatus(h, cs)
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	q.status = status
	q.w.WriteHeader(status)
	q.statusSent = true
	n, _ := io.WriteString(q.w, msg)
	q.sent += int64(n)
}
