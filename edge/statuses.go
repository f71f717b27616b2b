package edge

// Answers other than 200 and 206 that a shared cache may store: a 404, a
// 410, a permanent redirect (RFC 9111 §3, RFC 9110 §15.1). They are small,
// carry their whole body, and Range does not apply to them, so such an
// answer is stored whole as slice 0 of a version of its own, read at once
// from the discovery's answer. 5xx are never stored.

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// heuristicStatuses are the statuses RFC 9110 §15.1 calls heuristically
// cacheable: stored with explicit freshness, or with heuristic freshness
// when the answer has a Last-Modified.
var heuristicStatuses = map[int]bool{
	http.StatusOK: true, http.StatusNonAuthoritativeInfo: true, http.StatusNoContent: true,
	http.StatusPartialContent: true, http.StatusMultipleChoices: true, http.StatusMovedPermanently: true,
	http.StatusPermanentRedirect: true, http.StatusNotFound: true, http.StatusMethodNotAllowed: true,
	http.StatusGone: true, http.StatusRequestURITooLong: true, http.StatusNotImplemented: true,
}

// explicitOnly are statuses stored only with explicit freshness
// (max-age, s-maxage or Expires): temporary redirects.
var explicitOnly = map[int]bool{http.StatusFound: true, http.StatusTemporaryRedirect: true}

// statusPolicy says whether a shared cache may store an answer of status
// code with header h, and for how long: explicit freshness for the
// statuses that allow it, else heuristic freshness for the heuristically
// cacheable ones, else the rule's negative_ttl for a 404 or 410. The rule's
// default_ttl and override_ttl are for objects, not for these.
func statusPolicy(code int, h http.Header, now time.Time, rule *config.Rule) (policy, bool) {
	if !heuristicStatuses[code] && !explicitOnly[code] {
		return policy{}, false
	}
	cc, targeted := cacheDirectives(h, rule) // a targeted field (RFC 9213) first
	if fields, star := varyFields(h); cc.noStore || cc.private || h.Get("Set-Cookie") != "" || star || len(fields) > 0 {
		return policy{}, false
	}
	bare := *rule
	bare.DefaultTTL, bare.OverrideTTL = 0, 0
	explicit := cc.hasMaxAge || cc.hasSMaxAge || cc.noCache || (targeted == "" && h.Get("Expires") != "")
	if !explicit && explicitOnly[code] {
		return policy{}, false
	}
	if explicit || h.Get("Last-Modified") != "" {
		if p, ok, _ := freshness(h, now, &bare); ok {
			return p, true
		}
	}
	if (code == http.StatusNotFound || code == http.StatusGone) && rule.NegativeTTL > 0 {
		p, _, _ := freshness(http.Header{}, now, &bare) // the rule's stale windows
		p.lifetime = rule.NegativeTTL
		return p, true
	}
	return policy{}, false
}

// storeStatus stores resp, an answer to q's discovery with a status other
// than 200 or 206, when a shared cache may, and returns the version to
// answer from. Otherwise it returns false, and resp is as it came (what of
// its body was read is put back), for the caller to relay.
func (s *Server) storeStatus(q *request, old *segstore.Meta, resp *http.Response, sent time.Time, epoch uint64) (lookupResult, bool) {
	pol, ok := statusPolicy(resp.StatusCode, resp.Header, s.now(), q.rule)
	limit := min(sliceSizeFor(q, old), maxStatusBody)
	if !ok || resp.ContentLength > limit || q.auth && !sharedForAuth(resp.Header, q.rule) {
		return nil, false
	}
	// The body is read now, within the origin's read timeout: it is the
	// whole of what is stored, and no more than one slice.
	timer := time.AfterFunc(q.rule.Origin.ReadTimeout, func() { resp.Body.Close() })
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	stopped := timer.Stop()
	switch {
	case err != nil || !stopped:
		// Cut, or too slow: nothing stored, and nothing left to relay.
		resp.Body.Close()
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{errors.Join(errStatusBody, err)}))
		return nil, false
	case int64(len(body)) > limit || (resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength):
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return nil, false
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		body = nil
	}
	m := &segstore.Meta{
		Key:          q.key,
		Size:         int64(len(body)),
		SliceSize:    limit,
		Version:      segstore.NewVersion(),
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
		Header:       replayHeader(resp.Header),
		StoredAt:     storedAt(resp.Header, sent, s.now()),
		Lifetime:     pol.lifetime,
		NoRange:      true,
		// Its one slice comes from this answer; should it be lost, the
		// answer is fetched again.
		Consistency: segstore.Unproven,
		Status:      resp.StatusCode,
	}
	stored := s.storeMeta(m, epoch, "put meta")
	if stored && len(body) > 0 {
		if err := s.Store.WriteSlice(m, 0, body); err != nil && !errors.Is(err, segstore.ErrStale) {
			s.storeError(err, "write slice")
			stored = false
		}
	}
	s.passes.forget(q.key)
	src := discovered
	if old != nil {
		s.metrics().revalidation("changed")
		src = refreshed
	}
	return version{meta: m, source: src, unstored: !stored}, true
}

// maxStatusBody bounds the body of a status answer that is stored: it is
// read whole into memory before it is stored, one per key being
// discovered. Error pages and redirects are far smaller.
const maxStatusBody = 1 << 20

var errStatusBody = errors.New("edge: the origin's answer body could not be read in time")

// errReader is a reader that fails with its error.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// respondStatus answers from a stored answer whose status is not 200:
// its headers and whole body, whatever the request's Range and
// preconditions (RFC 9110 §13.2.1: they apply to 2xx answers).
func (s *Server) respondStatus(q *request, v version) error {
	m, h := v.meta, q.w.Header()
	bodiless := m.Status == http.StatusNoContent || m.Status == http.StatusNotModified
	if q.r.Method == http.MethodGet && !bodiless && !v.source.fromOrigin() {
		if i := s.unfillable(m, []slicer.Range{{Start: 0, End: m.Size}}); i >= 0 {
			return unproven(m, i)
		}
	}
	for k, vv := range m.Header {
		h[k] = vv
	}
	dropEdgeFields(h, q.rule)
	h.Set("Age", strconv.FormatInt(age(s.now(), m.StoredAt), 10))
	if !bodiless {
		h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	}
	q.outcome = cacheHit
	if v.source.fromOrigin() {
		q.outcome = cacheMiss
	}
	s.tag(q, h, v.cacheStatus(q.outcome, s.now()))
	q.status = m.Status
	if q.r.Method == http.MethodHead || bodiless {
		return s.writeEmpty(q, m.Status)
	}
	return s.sendBody(q, m, []slicer.Range{{Start: 0, End: m.Size}}, nil)
}
