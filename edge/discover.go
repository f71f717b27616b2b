package edge

// Discovery and revalidation: the one origin request per key that learns an
// object's version. Its answer is a version's first slices (claimed before
// the meta is visible, so no one fetches them again), a 304 that refreshes
// every stored slice at once, or a reason to pass the object through.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// fetchMeta runs inside the per-key singleflight: one origin request that
// discovers, revalidates or replaces the object's version. An origin
// answer the edge does not store is left in *out for the requester, which
// answers from it: the one origin request its miss costs.
func (s *Server) fetchMeta(q *request, want wantBytes, forceVersion uint64, out *handoff) (lookupResult, error) {
	old, done := s.recheck(q, forceVersion)
	if done != nil {
		return done, nil
	}
	req, kind := s.metaRequest(q, want, old)
	epoch := s.purged.epoch()
	// The fetch outlives the client (the fill it starts completes for the
	// store), unless the rule drops abandoned fills.
	ctx, watch := s.fetchContext(q)
	sent := s.now()
	first := int64(-1) // a suffix (its slices are not known yet), or a revalidation: the meta's owner
	if req.Range != nil && old == nil {
		first = req.Range.Start / sliceSizeFor(q, old)
	}
	up := s.route(q, first)
	up.kind = kind
	resp, err := up.fetch(ctx, req)
	if err != nil {
		var se *origin.StatusError
		if errors.As(err, &se) {
			if v, ok := s.storeStatus(q, old, se.Resp, sent, epoch); ok {
				return v, nil
			}
		}
		return s.metaFailed(q, req, old, err, out)
	}
	s.metrics().originAnswer(req, resp)

	if q.auth && resp.Status != http.StatusNotModified && !sharedForAuth(resp.Header, q.rule) {
		// An answer to credentials that a shared cache may not keep
		// (RFC 9111 §3.5): this client's alone. The stored version,
		// if any, is left as it was.
		out.answer = resp
		return passed{why: "authorization"}, nil
	}
	val := origin.ValidatorOf(resp.Header, q.rule.LastModifiedValidator)
	if resp.Status == http.StatusNotModified || (old != nil && sameVersion(old, val, resp.Size)) {
		return s.refresh(q, want, old, resp, sent, epoch, out)
	}
	if old != nil {
		s.metrics().revalidation("changed")
	}
	if why, forClient := s.varyRefusal(q, resp.Header, req.Header, epoch); why != "" {
		// Keyed on other request fields than this fetch was: not stored.
		// The answer is this request's only if the fetch carried what
		// the client has of those fields; else the client's own request
		// goes to the origin.
		if old != nil {
			s.purge(q.key, old.Version)
		}
		if forClient {
			out.answer = resp
		} else {
			resp.Body.Close()
		}
		return passed{why: why}, nil
	}
	if q.base != "" && old == nil && !s.variants.admit(q.base, q.key, cmp.Or(q.rule.MaxVariants, config.DefaultMaxVariants)) {
		s.metrics().limitTrip("variants")
		out.answer = resp
		return passed{why: "too many variants"}, nil
	}
	if why := s.refusal(q, resp, val); why != "" {
		// Not stored, but it is this request's answer: it streams
		// through (passthrough.go) rather than being asked for again.
		out.answer = resp
		s.passes.add(q.key, s.now())
		if old != nil {
			s.purge(q.key, old.Version)
		}
		return passed{why: why}, nil
	}
	open := resp.Ranged && req.Range != nil && req.Range.End == math.MaxInt64
	if open && resp.CheckedAtEnd {
		// An answer to an open range that no Content-Length frames can
		// only be checked at the object's end, so none of it may be
		// stored before: it streams through, and the next request asks
		// for a run of slices as usual.
		out.answer = resp
		return passed{why: "open range answered without Content-Length"}, nil
	}
	if old == nil && s.inPOP() && forceVersion == 0 {
		// Checked and stored under one lock, so that two lookups
		// answered at once make one version.
		mu := s.versionLock(q.key)
		mu.Lock()
		defer mu.Unlock()
		if cur, err := s.Store.Meta(q.key); err == nil && !isMarker(cur) && cur.Class() != segstore.Unproven && sameVersion(cur, val, resp.Size) {
			// Another lookup of this node (in a POP, lookups through
			// different nodes are not collapsed: lookupKey) stored this
			// version meanwhile: the answer fills it rather than start a
			// second version of the same bytes.
			return s.startFill(ctx, watch, q, cur, resp, epoch, false, open), nil
		}
	}
	m := s.newVersion(q, resp, val, old, sent)
	if s.inPOP() && (m.Class() == segstore.Unproven || m.NoRange) {
		// Nothing proves two answers to be one version, so no other
		// node's bytes can fill this one; or the origin sends whole
		// bodies, which one fetch cuts into every slice: this node
		// fetches the object alone, from the origin (peers.go).
		s.localOnly.add(q.key, s.now())
	}
	return s.startFill(ctx, watch, q, m, resp, epoch, old != nil, open), nil
}

// recheck reads the key's meta again once the singleflight is entered. A
// result means the lookup is already done: another request moved on from
// the version being forced out, or filled the object while this one
// queued (fresh enough for q's own directives). Else old is the stored
// version to revalidate, or nil.
func (s *Server) recheck(q *request, forceVersion uint64) (old *segstore.Meta, done lookupResult) {
	old, err := s.Store.Meta(q.key)
	switch {
	case err != nil || isMarker(old):
		return nil, nil
	case forceVersion != 0 && old.Version != forceVersion:
		return nil, version{meta: old, source: fromStore} // someone already moved on
	case forceVersion == 0 && !q.auth && s.freshFor(old, clientDirectives(q.r.Header, q.rule.HonorClientCacheControl)):
		return nil, version{meta: old, source: fromStore} // filled while we queued
	case forceVersion != 0:
		return nil, nil // that version is gone: discover afresh
	}
	return old, nil
}

// sliceSizeFor is the slice size of q's object: the stored version's, which
// a revalidation keeps, or the rule's.
func sliceSizeFor(q *request, old *segstore.Meta) int64 {
	if old != nil {
		return old.SliceSize
	}
	return q.rule.SliceSize
}

// metaRequest builds the discovery or revalidation request: the slices
// holding want (at most max_run of them), conditional on old's validator
// when there is a stored version.
func (s *Server) metaRequest(q *request, want wantBytes, old *segstore.Meta) (req *origin.Request, kind string) {
	sliceSize := sliceSizeFor(q, old)
	req = &origin.Request{
		URL:    originTarget(q),
		Host:   q.rule.Origin.Host,
		Header: s.upstreamHeader(q, true),
	}
	if want.Suffix > 0 && old != nil {
		want = wantBytes{Start: max(old.Size-want.Suffix, 0), End: -1} // the size is known
	}
	if want.Suffix > 0 {
		// The last bytes of an object of unknown size, in one request:
		// a slice more than they need, so that the answer holds whole
		// every slice they touch (its first, partial slice is skipped).
		req.Suffix = min(want.Suffix, (runLimit(q.rule.MaxRun)-1)*sliceSize) + sliceSize
	} else {
		run := want.run(sliceSize, q.rule.MaxRun)
		run.Last = min(run.Last, s.groupEnd(q, run.First))
		rng := run.Bytes(sliceSize, -1)
		if want.End < 0 && !s.grouped(q) {
			// A full GET, or a range to the end: asked to the end too, so
			// that the answer serves the request whatever it turns out to
			// be. A cacheable one is cut into slices as it passes, for
			// as long as requests wait for them (startFill). In a POP
			// each group's slices come through the group's owner, so a
			// discovery asks for one group's run (peers.go).
			rng.End = math.MaxInt64
		}
		req.Range = &rng
	}
	if old == nil {
		return req, "discover"
	}
	req.IfNoneMatch = validatorOf(old)
	return req, "revalidate"
}

// metaFailed turns a failed discovery or revalidation into what the
// requests get: a pass (the origin's own answer, relayed), a range past
// the end, or the error.
func (s *Server) metaFailed(q *request, req *origin.Request, old *segstore.Meta, err error, out *handoff) (lookupResult, error) {
	var se *origin.StatusError
	switch {
	case errors.As(err, &se):
		code := se.Resp.StatusCode
		if code >= 500 {
			s.metrics().originError(err)
		}
		if old != nil {
			s.metrics().revalidation("error")
			if code == http.StatusNotFound || code == http.StatusGone {
				s.purge(q.key, old.Version) // the object is gone at the origin
			}
		}
		out.relay = se.Resp
		return passed{why: fmt.Sprintf("origin answered %d", code), failed5xx: code >= 500}, nil
	case errors.Is(err, origin.ErrUnsatisfiable):
		re := &origin.RangeError{Size: -1}
		errors.As(err, &re)
		if re.Size > 0 && (req.Range == nil || re.Size > req.Range.Start) {
			// The origin's own length says the bytes asked for exist: it
			// refused bytes it has. Nothing is cached from it.
			s.metrics().originError(err)
			s.passes.add(q.key, s.now())
			return passed{why: "origin refused a range inside the object"}, nil
		}
		// The object is shorter than the first slice asked for, which
		// says nothing about caching it, unless it is empty.
		if re.Size == 0 {
			s.passes.add(q.key, s.now())
		}
		return pastEnd{size: re.Size}, nil
	case errors.Is(err, origin.ErrBadAnswer):
		// A content coding or several parts in answer to the discovery:
		// this object's answers cannot be sliced as identity bytes (an
		// origin that stores its objects gzip-encoded sends them so to
		// every client). Passed through, as uncacheable.
		s.metrics().originError(err)
		s.Log.Info().Err(err).Str("key", q.key).Msg("edge: the origin's answer cannot be sliced; passing the object through uncached")
		s.passes.add(q.key, s.now())
		if old != nil {
			s.purge(q.key, old.Version)
		}
		return passed{why: "answer not one part of identity bytes"}, nil
	}
	s.metrics().originError(err)
	if old != nil {
		s.metrics().revalidation("error")
	}
	return nil, err
}

// refresh handles an answer that is still the stored version old (a 304,
// or an origin that ignored If-None-Match but sent the same validator):
// one answer refreshes every slice at once (RFC 9111 §4.3.4).
func (s *Server) refresh(q *request, want wantBytes, old *segstore.Meta, resp *origin.Response, sent time.Time, epoch uint64, out *handoff) (lookupResult, error) {
	resp.Body.Close()
	if resp.Status == http.StatusNotModified && contradicts(old, resp.Header) {
		// A 304 that does not select the stored response updates
		// nothing (RFC 9111 §4.3.4): ask again, unconditionally.
		s.metrics().revalidation("contradicted")
		s.Log.Warn().Str("key", q.key).Str("stored", validatorOf(old).String()).
			Str("etag", resp.Header.Get("ETag")).Str("last_modified", resp.Header.Get("Last-Modified")).
			Msg("edge: the origin answered a revalidation 304 with another validator; refetching the object")
		return s.fetchMeta(q, want, old.Version, out)
	}
	if q.auth && !sharedForAuth(mergeHeader(old.Header, resp.Header), q.rule) {
		// The origin lets this client have the stored version; nothing
		// of its answer to credentials is kept (RFC 9111 §3.5).
		s.metrics().revalidation("not_modified")
		return version{meta: old, source: revalidated, unstored: true}, nil
	}
	if cc, _ := cacheDirectives(mergeHeader(old.Header, resp.Header), q.rule); cc.noStore || cc.private {
		// The object may no longer be kept: drop it, and pass.
		s.metrics().revalidation("uncacheable")
		s.purge(q.key, old.Version)
		s.passes.add(q.key, s.now())
		return passed{why: "revalidation said " + map[bool]string{true: "no-store", false: "private"}[cc.noStore]}, nil
	}
	m := *old
	m.StoredAt = storedAt(resp.Header, sent, s.now())
	merged := mergeHeader(old.Header, resp.Header)
	m.Header = map[string][]string(merged)
	// Expires counts from the 304's Date, which is not replayed.
	fh := merged.Clone()
	if d := resp.Header.Get("Date"); d != "" {
		fh.Set("Date", d)
	}
	if pol, ok, _ := freshness(fh, s.now(), q.rule); ok {
		m.Lifetime = pol.lifetime
	}
	stored := s.storeMeta(&m, epoch, "put meta after revalidation")
	// Counted once the refreshed meta is stored, so that whoever sees
	// the count also sees the object fresh.
	s.metrics().revalidation("not_modified")
	return version{meta: &m, source: revalidated, unstored: !stored}, nil
}

// refusal says why a validated origin answer must not be slice-cached, or
// "".
func (s *Server) refusal(q *request, resp *origin.Response, val origin.Validator) string {
	if why := s.uncacheable(resp, val, q); why != "" {
		return why
	}
	if resp.Size > q.rule.MaxObjectSize {
		// Memory and work follow the slices stored, but an object this
		// large is not sliced at all: the operator's bound, whatever an
		// origin claims.
		s.metrics().limitTrip("object_size")
		s.Log.Warn().Str("key", q.key).Int64("size", resp.Size).Int64("max_object_size", q.rule.MaxObjectSize).
			Msgf("edge: rules[%d]: the origin says the object has %d bytes, more than max_object_size; passing it through uncached (raise max_object_size to cache it)", q.rule.Index, resp.Size)
		return "object-too-large"
	}
	return ""
}

// uncacheable says why an origin answer must not be stored at all, or "".
func (s *Server) uncacheable(resp *origin.Response, val origin.Validator, q *request) string {
	h := resp.Header
	if _, ok, why := freshness(h, s.now(), q.rule); !ok {
		return why
	}
	switch {
	case resp.Size < 0:
		return "unknown length"
	case h.Get("Set-Cookie") != "":
		return "Set-Cookie"
	case h.Get("Content-Encoding") != "" && !strings.EqualFold(h.Get("Content-Encoding"), "identity"):
		return "Content-Encoding " + h.Get("Content-Encoding")
	}
	return ""
}

// newVersion mints the version an origin answer describes: its size,
// validator, headers to replay and freshness, under a new version id.
func (s *Server) newVersion(q *request, resp *origin.Response, val origin.Validator, old *segstore.Meta, sent time.Time) *segstore.Meta {
	pol, _, _ := freshness(resp.Header, s.now(), q.rule)
	m := &segstore.Meta{
		Key:          q.key,
		Size:         resp.Size,
		SliceSize:    sliceSizeFor(q, old),
		Version:      segstore.NewVersion(),
		ETag:         val.ETag,
		LastModified: val.LastModified,
		Header:       replayHeader(resp.Header),
		StoredAt:     storedAt(resp.Header, sent, s.now()),
		Lifetime:     pol.lifetime,
		NoRange:      !resp.Ranged && resp.Size != 0, // an empty object's 200 says nothing about ranges
		Consistency:  classOf(val),
	}
	if m.LastModified == "" {
		m.LastModified = resp.Header.Get("Last-Modified") // for clients' conditionals
	}
	return m
}

// classOf is the consistency class of a version whose validator is val.
func classOf(val origin.Validator) segstore.Class {
	switch {
	case val.ETag != "":
		return segstore.ByETag
	case val.LastModified != "":
		return segstore.ByLastModified
	}
	return segstore.Unproven
}

// sameVersion reports whether an answer with validator val, of an object
// of size bytes, is provably the stored version old: the same strong
// ETag, or the same Last-Modified and length. Without a validator nothing
// is.
func sameVersion(old *segstore.Meta, val origin.Validator, size int64) bool {
	v := validatorOf(old)
	switch old.Class() {
	case segstore.ByETag:
		return v.Matches(val)
	case segstore.ByLastModified:
		return val.ETag == "" && v.Matches(val) && size == old.Size
	}
	return false
}

// startFill makes version m visible and starts feeding the slices resp
// carries, which it claims first so that no other request can fetch them
// again. The answer to an open range (a full GET's) is fed as an open
// feed (origin.Fills.OpenFeed): it claims its slices as it reaches them,
// requests that need them wait for it, and it stops once past its first
// run when no request waits for a slice ahead.
func (s *Server) startFill(ctx context.Context, watch *fillWatch, q *request, m *segstore.Meta, resp *origin.Response, epoch uint64, replaces, open bool) lookupResult {
	var first int64
	var fills []*origin.Fill
	var wf *origin.WholeFeed
	if open && m.SliceCount() > 0 {
		first = resp.Range.Start / m.SliceSize
		// A request reading from the feed claims at most a run and a
		// half ahead of it (claimAhead), and those slices must wait for
		// the feed rather than be fetched twice: a window of two runs.
		run := runLimit(q.rule.MaxRun)
		window := 2 * run
		if m.Class() == segstore.Unproven {
			// No other answer can fill this version: every slice a
			// request wants waits for this one.
			window = math.MaxInt64 / 2
		}
		wf = s.fills.OpenFeed(m.Key, m.Version, first, window, run)
		if !q.background {
			// This request reads the answer from its first byte: the feed
			// goes on while it does, even when it has already stored the
			// slices the request claims first (a fast origin, a slow
			// client), so that its next claim does not fetch the rest of
			// the body a second time.
			q.attach(wf)
		}
		if watch != nil {
			s.watches.Store(wf, watch) // see watchFill
		}
		q.originBytes += min(run*m.SliceSize, m.Size-resp.Range.Start)
	} else {
		first, fills = s.claimResponse(m, resp)
		s.register(watch, fills)
		_, fromPeer := resp.Body.(countingBody)
		q.addOriginBytes(fills, fromPeer)
	}
	// Unstored (purged meanwhile, or the store failed), the answer is
	// served from the fills anyway; their writes then fail as stale.
	stored := s.storeMeta(m, epoch, "put meta")
	s.passes.forget(q.key)
	if m.SliceCount() == 0 {
		resp.Body.Close() // an empty object: the meta is all there is
	} else {
		s.fetches.Add(1)
		go func() {
			defer s.fetches.Add(-1)
			if wf != nil {
				s.feedOpen(ctx, m, resp, wf)
				s.watches.Delete(wf)
			} else {
				s.feed(ctx, m, resp, first, fills)
			}
			s.finish(watch, fills)
		}()
	}
	src := discovered
	if replaces {
		src = refreshed
	}
	return version{meta: m, source: src, unstored: !stored}
}

// storeMeta stores m, fetched from epoch on, unless a purge of its key
// ran meanwhile (the answer must not bring back what was purged), and says
// whether it did.
func (s *Server) storeMeta(m *segstore.Meta, epoch uint64, what string) bool {
	return s.purged.storeUnlessPurged(m.Key, epoch, func() error {
		err := s.Store.PutMeta(m)
		if err != nil {
			s.storeError(err, what)
		}
		return err
	})
}

// purge drops a version found to be gone, unless the object already moved
// on to another one.
func (s *Server) purge(key string, ver uint64) {
	if m, err := s.Store.Meta(key); err == nil && m.Version == ver {
		if err := s.Store.Purge(key); err != nil {
			s.storeError(err, "purge stale version")
		}
	}
}

// validatorOf is what proves an answer to be version m, by its class:
// zero for an Unproven one.
func validatorOf(m *segstore.Meta) origin.Validator {
	switch m.Class() {
	case segstore.ByETag:
		return origin.Validator{ETag: m.ETag}
	case segstore.ByLastModified:
		return origin.Validator{LastModified: m.LastModified}
	}
	return origin.Validator{}
}

// wantBytes is the first span of bytes a request needs, known before the
// object's size is: End < 0 means "to the end". Suffix > 0 means the last
// Suffix bytes instead, wherever they start.
type wantBytes struct{ Start, End, Suffix int64 }

// run is the slices holding w, at most maxRun of them.
func (w wantBytes) run(sliceSize, maxRun int64) slicer.Run {
	maxRun = runLimit(maxRun)
	first := w.Start / sliceSize
	last := first + maxRun - 1
	if w.End > w.Start {
		last = min(last, (w.End-1)/sliceSize)
	}
	return slicer.Run{First: first, Last: last}
}
