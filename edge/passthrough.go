package edge

// Streaming through an answer the edge may not store. A discovery asks for
// the bytes its request needs first; when the answer turns out to be
// uncacheable (no-store, private, Set-Cookie, Vary, no length, too large,
// ...) it is still the answer to that request, so the request is answered
// from it rather than asking the origin again: one origin request per
// miss, whatever the answer is.

import (
	"errors"
	"io"
	"net/http"

	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// passAnswer answers q from resp, a validated 2xx the edge does not store,
// and reports whether it could: false when resp does not hold the bytes q
// asks for (a full GET of an object longer than the discovery's run, a
// range beyond it), and then nothing was written and resp is closed.
func (s *Server) passAnswer(q *request, specs []slicer.Spec, resp *origin.Response, why string) bool {
	defer resp.Body.Close()
	// What the client's preconditions and ranges are checked against: the
	// answer's own validators and length (a weak ETag too, which
	// If-None-Match compares weakly).
	m := &segstore.Meta{
		Size:         resp.Size,
		ETag:         origin.ValidatorOf(resp.Header, false).ETag,
		LastModified: resp.Header.Get("Last-Modified"),
		Header:       resp.Header,
	}
	cond := checkPreconditions(q.r, m)
	if cond == condIgnoreRange {
		specs = nil
	}
	var ranges []slicer.Range
	unsatisfiable := false
	if specs != nil && resp.Size >= 0 && cond == condNone {
		var err error
		ranges, err = slicer.Resolve(specs, resp.Size, slicer.Limits{MaxRanges: q.rule.MaxRanges})
		unsatisfiable = errors.Is(err, slicer.ErrUnsatisfiable)
	}
	bodied := q.r.Method == http.MethodGet && !unsatisfiable && (cond == condNone || cond == condIgnoreRange)
	if bodied && !covers(resp, ranges) {
		return false
	}

	h := q.w.Header()
	for k, vv := range resp.Header { // origin.Fetch took out the hop-by-hop ones
		h[k] = vv
	}
	h.Del("Content-Range")
	h.Del("Content-Length")
	q.outcome, q.detail = cachePass, why
	s.tag(q, h, cacheStatus{fwd: "uri-miss", fwdStatus: resp.Status, reason: why})
	switch {
	case cond == condFailed:
		_ = s.writeEmpty(q, http.StatusPreconditionFailed)
		return true
	case cond == condNotModified:
		for _, k := range []string{"Content-Type", "Content-Encoding", "Content-Disposition", "Content-Language"} {
			h.Del(k)
		}
		_ = s.writeEmpty(q, http.StatusNotModified)
		return true
	case unsatisfiable:
		h.Set("Content-Range", slicer.UnsatisfiedContentRange(resp.Size))
		h.Del("Content-Type")
		_ = s.writeEmpty(q, http.StatusRequestedRangeNotSatisfiable)
		return true
	}
	parts := []slicer.Range{{Start: 0, End: -1}} // to the end, wherever it is
	var mp *multipartBody
	q.status = http.StatusOK
	if resp.Size >= 0 {
		q.status, parts, mp = frame(h, m, ranges)
	}
	if !bodied { // HEAD
		_ = s.writeEmpty(q, q.status)
		return true
	}
	if err := s.sendAnswer(q, resp, parts, mp); err != nil {
		if !q.statusSent {
			s.originFailed(q, err)
			return true
		}
		reason := "origin"
		if errors.Is(err, errClientGone) {
			reason = "client"
		}
		s.cut(q, reason, err)
		panic(http.ErrAbortHandler) // a short body must not look whole
	}
	return true
}

// covers reports whether resp's body holds ranges of the object, or the
// whole object when ranges is empty.
func covers(resp *origin.Response, ranges []slicer.Range) bool {
	if len(ranges) == 0 {
		return resp.Range.Start == 0 && (resp.Size < 0 || resp.Range.End == resp.Size)
	}
	for _, rg := range ranges {
		if rg.Start < resp.Range.Start || rg.End > resp.Range.End {
			return false
		}
	}
	return true
}

// sendAnswer copies parts, ascending and disjoint, out of resp's body,
// framed by mp when there are several. A part whose End is -1 runs to the
// body's end.
func (s *Server) sendAnswer(q *request, resp *origin.Response, parts []slicer.Range, mp *multipartBody) error {
	pos := resp.Range.Start
	buf := make([]byte, 32<<10)
	w := &answerWriter{q: q, s: s}
	for k, part := range parts {
		if mp != nil {
			if err := q.write(s, mp.partHeader(k)); err != nil {
				return err
			}
		}
		if _, err := io.CopyN(io.Discard, resp.Body, part.Start-pos); err != nil {
			return err
		}
		var err error
		if part.End < 0 {
			_, err = io.CopyBuffer(w, resp.Body, buf)
		} else {
			_, err = io.CopyBuffer(w, io.LimitReader(resp.Body, part.Len()), buf)
			if err == nil && w.n < part.Len() {
				err = io.ErrUnexpectedEOF
			}
			pos = part.End
		}
		if err != nil {
			return err
		}
		w.n = 0
	}
	if mp != nil {
		if err := q.write(s, mp.trailer()); err != nil {
			return err
		}
	}
	if !q.statusSent {
		return q.write(s, nil) // an empty body
	}
	return nil
}

// answerWriter writes body bytes for q, the status line first.
type answerWriter struct {
	q *request
	s *Server
	n int64 // bytes of the current part written
}

func (w *answerWriter) Write(p []byte) (int, error) {
	if err := w.q.write(w.s, p); err != nil {
		return 0, err
	}
	w.n += int64(len(p))
	return len(p), nil
}
