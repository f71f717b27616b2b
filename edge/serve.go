package edge

// The cached path: parse Range, look the version up, answer from it. A
// version that turns out to be gone (the origin changed it) or an origin
// that lied is retried once, as long as nothing of the answer was sent;
// after that, the answer is cut, never stitched from two versions.

import (
	"errors"
	"math"
	"net/http"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// msgOriginChanged is the 502's text when the origin changed versions
// under a request twice before its first byte.
const msgOriginChanged = "sliceedge: the origin changed the object while it was being filled; retry the request\n"

// serveCached answers a GET or HEAD for an object a rule caches.
func (s *Server) serveCached(q *request) {
	var specs []slicer.Spec
	// Range is defined for GET only: any other method ignores it (RFC 9110
	// §14.2), so a HEAD answers as the GET without Range would.
	if h := q.r.Header.Get("Range"); h != "" && q.r.Method == http.MethodGet {
		var err error
		// Syntactically invalid or non-bytes ranges are ignored (RFC 9110 §14.2).
		if specs, err = slicer.Parse(h); err != nil {
			specs = nil
		}
	}
	// A peer's conditions name the version it holds, which is this one
	// but for a change in between: what it wants first is its run.
	want := firstWanted(specs, q.r.Method, conditional(q.r) && !q.fromPeer)
	rd := clientDirectives(q.r.Header, q.rule.HonorClientCacheControl)
	var force uint64 // version to move away from, after a flap before the first byte
	for attempt := 0; ; attempt++ {
		res, err := s.lookup(q, rd, want, force)
		if err != nil {
			s.originFailed(q, err)
			return
		}
		var v version
		switch res := res.(type) {
		case passed:
			if res.answer != nil {
				// passAnswer copies these headers to the client as they are.
				dropEdgeFields(res.answer.Header, q.rule)
			}
			switch {
			case res.relay != nil:
				s.relay(q, res.relay, res.why)
			case res.answer != nil && s.passAnswer(q, specs, res.answer, res.why):
			default:
				s.pass(q, res.why)
			}
			return
		case pastEnd:
			s.servePastEnd(q, specs, res.size)
			return
		case notStored:
			s.notCached(q)
			return
		case version:
			v = res
		}
		if rd.onlyIfCached && !s.holds(q, v.meta, specs) {
			// The meta is stored, but not every slice the answer needs.
			s.notCached(q)
			return
		}
		err = s.respond(q, v, specs)
		if err == nil || !s.retry(q, v, err, attempt) {
			return
		}
		// Nothing was sent: the next attempt's version sets its own
		// headers, with none of this one's left among them.
		resetHeader(q.w.Header())
		if errors.Is(err, origin.ErrVersionChanged) {
			force = v.meta.Version
		}
	}
}

// msgNotCached is the 504's text for a request that wants only what the
// edge has stored, and it has not.
const msgNotCached = "sliceedge: only-if-cached: this edge has not stored what the request asks for\n"

// notCached answers a request under only-if-cached that the store cannot
// answer: 504, and nothing sent to the origin (RFC 9111 §5.2.1.7).
func (s *Server) notCached(q *request) {
	q.outcome, q.detail = cacheError, "only-if-cached"
	s.plainError(q, http.StatusGatewayTimeout, cacheStatus{fwd: "miss", detail: "only-if-cached"}, msgNotCached)
}

// holds reports whether the answer to q from m needs no slice the store
// lacks: none for a HEAD or an answer without a body (304, 412, 416),
// else every slice of its ranges, or of the whole object.
func (s *Server) holds(q *request, m *segstore.Meta, specs []slicer.Spec) bool {
	if q.r.Method == http.MethodHead {
		return true
	}
	switch checkPreconditions(q.r, m) {
	case condFailed, condNotModified:
		return true
	case condIgnoreRange:
		specs = nil
	}
	parts := []slicer.Range{{Start: 0, End: m.Size}}
	if specs != nil {
		ranges, err := slicer.Resolve(specs, m.Size, slicer.Limits{MaxRanges: q.rule.MaxRanges})
		if errors.Is(err, slicer.ErrUnsatisfiable) {
			return true
		}
		if len(ranges) > 0 {
			parts = ranges
		}
	}
	for _, run := range slicer.Cover(parts, m.SliceSize) {
		if s.Store.CountStored(m, run.First, run.Last) != run.Len() {
			return false
		}
	}
	return true
}

// servePastEnd answers a request whose first bytes the origin said are past
// the object's end: 416 when its own length shows that of every range, else
// the origin answers the request itself.
func (s *Server) servePastEnd(q *request, specs []slicer.Spec, size int64) {
	if size == 0 && specs == nil && !conditional(q.r) {
		// An origin that answers 416 "bytes */0" to a range of an empty
		// object (S3 does): the object is known, and empty. Its headers
		// did not come with the 416, so nothing is stored.
		h := q.w.Header()
		h.Set("Content-Length", "0")
		q.outcome, q.detail = cacheMiss, "empty object"
		s.tag(q, h, cacheStatus{fwd: "uri-miss", fwdStatus: http.StatusRequestedRangeNotSatisfiable, detail: "empty-object"})
		_ = s.writeEmpty(q, http.StatusOK)
		return
	}
	if size >= 0 && specs != nil {
		if _, err := slicer.Resolve(specs, size, slicer.Limits{MaxRanges: q.rule.MaxRanges}); errors.Is(err, slicer.ErrUnsatisfiable) {
			s.unsatisfiable(q, size)
			return
		}
	}
	s.pass(q, "range beyond the object")
}

// retry ends a request whose answer from v failed with err, and reports
// whether it should be tried once more: before the first byte, after an
// origin that changed versions or lied. Once bytes of a version are on the
// wire, the only honest end is a truncated answer (DESIGN.md, lifecycle
// step 5).
func (s *Server) retry(q *request, v version, err error, attempt int) bool {
	changed := errors.Is(err, origin.ErrVersionChanged)
	switch {
	case q.statusSent && errors.Is(err, errClientGone):
		s.cut(q, "client", err)
		return false
	case q.statusSent:
		reason := "origin"
		switch {
		case errors.Is(err, errUnproven):
			// A slice evicted while the answer was going out: the next
			// request fetches the object again.
			s.purge(q.key, v.meta.Version)
			reason = "unproven"
		case changed:
			s.metrics().flapAborts.Inc()
			s.purge(q.key, v.meta.Version)
			reason = "origin_changed"
		}
		s.cut(q, reason, err)
		panic(http.ErrAbortHandler)
	case errors.Is(err, errClientGone):
		return false
	case errors.Is(err, errUnproven) && attempt == 0:
		// An object without validator lost a slice: fetched again as a
		// new version (segstore.Unproven), which drops the old slices.
		s.metrics().unprovenRefetches.Inc()
		return true
	case errors.Is(err, errUnproven):
		// The new version's answer does not hold every byte asked for
		// either (several ranges far apart): the origin answers them.
		resetHeader(q.w.Header())
		s.pass(q, "no validator to fill other slices with")
		return false
	case attempt == 0 && (changed || errors.Is(err, origin.ErrBadAnswer)):
		// Nothing was sent or stored: once more, on a new version after a
		// change, or on the same one from fresh fills after a lie.
		s.metrics().flapRestarts.Inc()
		return true
	case changed:
		s.metrics().flapAborts.Inc()
		s.purge(q.key, v.meta.Version)
		q.outcome, q.detail = cacheError, "origin changed during fill"
		s.plainError(q, http.StatusBadGateway, cacheStatus{fwd: "miss", detail: "origin-changed"}, msgOriginChanged)
		return false
	}
	s.originFailed(q, err)
	return false
}

// firstWanted is the span a request needs first, before the size is known:
// its lowest absolute range, the object's last bytes for suffix ranges,
// one slice when suffix and absolute ranges are mixed, for a HEAD (the
// size comes with it) or for a conditional request (the validator decides
// whether a body is wanted at all), or the object's head for a full GET.
func firstWanted(specs []slicer.Spec, method string, cond bool) wantBytes {
	if method == http.MethodHead || cond {
		return wantBytes{Start: 0, End: 1}
	}
	if len(specs) == 0 {
		return wantBytes{Start: 0, End: -1}
	}
	if n, ok := slicer.LongestSuffix(specs); ok {
		return wantBytes{Suffix: n} // a footer, an index at the end
	}
	start, ok := slicer.FirstKnownStart(specs)
	if !ok {
		return wantBytes{Start: 0, End: 1}
	}
	end := int64(-1)
	for _, sp := range specs {
		if sp.First == start && sp.Last >= 0 && sp.Last < math.MaxInt64 {
			end = max(end, sp.Last+1)
		}
		if sp.First == start && (sp.Last < 0 || sp.Last == math.MaxInt64) {
			end = -1
			break
		}
	}
	return wantBytes{Start: start, End: end}
}

// conditional reports whether r asks for a body only if a validator says
// so (RFC 9110 §13.1).
func conditional(r *http.Request) bool {
	for _, k := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since"} {
		if r.Header.Get(k) != "" {
			return true
		}
	}
	return false
}

// runLimit is the most slices one origin request fetches: the rule's
// max_run, config.DefaultMaxRun when unset (a Config built in code).
func runLimit(maxRun int64) int64 {
	if maxRun <= 0 {
		return config.DefaultMaxRun
	}
	return maxRun
}
