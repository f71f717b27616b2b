package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// found is the outcome of a lookup shared by every request collapsed on it.
type found struct {
	meta      *segstore.Meta
	pass      string // non-empty: the object is not slice-cached, and why
	status    string // how the meta was obtained: "hit", "stale", "miss", "revalidated", "refreshed"
	detail    string // for Cache-Status: why stale was served
	failed5xx bool   // the origin answered 5xx (pass is set too)
	// beyond: the origin answered 416 to the first slices asked for; size
	// is the length its Content-Range gave, or -1. fetchMeta has already
	// remembered an object found uncacheable (passes).
	beyond   bool
	size     int64
	unstored bool // the origin's answer was served but not stored (a purge overtook it, or the store failed)
}

// lead is what only the request that ran the origin fetch gets back: an
// origin answer it can relay instead of asking again.
type lead struct {
	ran   bool
	relay *http.Response // a non-slicable origin answer (404, 500, 3xx) to relay
}

// lookup returns the meta of q's object: from the store when fresh, after
// one collapsed revalidation when stale, after one collapsed discovery
// fetch when unknown. want is the bytes the request needs first; a discovery
// fetches exactly the slices holding them (at most max_run), so a cold
// request costs no extra round trip. A stale object inside its
// stale-while-revalidate window is served at once while one background
// request revalidates it; one inside its stale-if-error window is served
// when revalidation fails. forceVersion, when non-zero, names a version
// found to be gone: the lookup then discovers afresh unless another request
// already did.
func (s *Server) lookup(q *request, want wantBytes, forceVersion uint64) (found, *lead, error) {
	var stale *segstore.Meta
	var pol policy
	if forceVersion == 0 {
		m, err := s.Store.Meta(q.key)
		switch {
		case err == nil && s.fresh(m):
			return found{meta: m, status: "hit"}, nil, nil
		case err == nil:
			stale = m
			pol, _, _ = freshness(http.Header(m.Header), m.StoredAt, q.rule)
			if !pol.mustRevalidate && s.staleness(m) <= pol.swr {
				s.revalidateInBackground(q, want)
				s.m().staleServed("while_revalidate")
				return found{meta: m, status: "stale", detail: "stale-while-revalidate"}, nil, nil
			}
		case !errors.Is(err, segstore.ErrNotFound):
			s.Log.Warn().Err(err).Str("key", q.key).Msg("edge: read meta; treating the object as unknown")
		}
	}
	ld := &lead{}
	v, err, _ := s.lookups.Do(q.key, func() (any, error) {
		ld.ran = true
		return s.fetchMeta(q, want, forceVersion, ld)
	})
	if !ld.ran {
		s.m().lookupsCollapsed.Inc()
		ld = nil
	}
	f, _ := v.(found)
	if stale != nil && !pol.mustRevalidate && s.staleness(stale) <= pol.sie && (err != nil || f.failed5xx) {
		// The origin is down or failing: serve what we have (RFC 5861 §4).
		if ld != nil && ld.relay != nil {
			ld.relay.Body.Close()
			ld.relay = nil
		}
		s.m().staleServed("if_error")
		return found{meta: stale, status: "stale", detail: "stale-if-error"}, nil, nil
	}
	if err != nil {
		return found{}, ld, err
	}
	return f, ld, nil
}

// revalidateInBackground revalidates q's object in a goroutine of its own,
// collapsed with any other lookup of the key; nobody waits for it.
func (s *Server) revalidateInBackground(q *request, want wantBytes) {
	bq := *q
	bq.r = q.r.Clone(context.WithoutCancel(q.r.Context()))
	bq.background, bq.holding = true, nil
	s.lookups.DoChan(q.key, func() (any, error) {
		return s.fetchMeta(&bq, want, 0, &lead{})
	})
}

func (s *Server) fresh(m *segstore.Meta) bool {
	return s.now().Before(m.StoredAt.Add(m.Lifetime))
}

// staleness is how long ago m stopped being fresh.
func (s *Server) staleness(m *segstore.Meta) time.Duration {
	return s.now().Sub(m.StoredAt.Add(m.Lifetime))
}

// fetchMeta runs inside the per-key singleflight: one origin request that
// discovers, revalidates or replaces the object's version.
func (s *Server) fetchMeta(q *request, want wantBytes, forceVersion uint64, ld *lead) (found, error) {
	old, err := s.Store.Meta(q.key)
	if err != nil {
		old = nil
	}
	switch {
	case old != nil && forceVersion != 0 && old.Version != forceVersion:
		return found{meta: old, status: "hit"}, nil // someone already moved on
	case old != nil && forceVersion == 0 && s.fresh(old):
		return found{meta: old, status: "hit"}, nil // filled while we queued
	case old != nil && forceVersion != 0:
		old = nil // that version is gone: discover afresh
	}

	sliceSize := q.rule.SliceSize
	if old != nil {
		sliceSize = old.SliceSize
	}
	req := &origin.Request{
		URL:    originURL(q, q.rule.Origin),
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
		rng := want.run(sliceSize, q.rule.MaxRun).Bytes(sliceSize, -1)
		req.Range = &rng
	}
	kind := "discover"
	if old != nil {
		req.IfNoneMatch = validatorOf(old)
		kind = "revalidate"
	}
	s.m().originRequest(kind)
	epoch := s.purged.epoch()
	// The fetch outlives the client (the fill it starts completes for the
	// store), unless the rule drops abandoned fills.
	ctx, watch := s.fetchContext(q)
	sent := s.now()
	resp, err := s.client(q.rule.Origin).Fetch(ctx, req)
	var se *origin.StatusError
	switch {
	case errors.As(err, &se):
		code := se.Resp.StatusCode
		if code >= 500 {
			s.m().originError(err)
		}
		if old != nil {
			s.m().revalidation("error")
			if code == http.StatusNotFound || code == http.StatusGone {
				s.purge(q.key, old.Version) // the object is gone at the origin
			}
		}
		ld.relay = se.Resp
		return found{pass: fmt.Sprintf("origin answered %d", code), failed5xx: code >= 500}, nil
	case errors.Is(err, origin.ErrUnsatisfiable):
		re := &origin.RangeError{Size: -1}
		errors.As(err, &re)
		if re.Size > 0 && (req.Range == nil || re.Size > req.Range.Start) {
			// The origin's own length says the bytes asked for exist: it
			// refused bytes it has. Nothing is cached from it.
			s.m().originError(err)
			s.passes.add(q.key, s.now())
			return found{pass: "origin refused a range inside the object"}, nil
		}
		// The object is shorter than the first slice asked for, which
		// says nothing about caching it, unless it is empty.
		if re.Size == 0 {
			s.passes.add(q.key, s.now())
		}
		return found{pass: "range beyond the object", beyond: true, size: re.Size}, nil
	case errors.Is(err, origin.ErrBadAnswer):
		// A content coding or several parts in answer to the discovery:
		// this object's answers cannot be sliced as identity bytes (an
		// origin that stores its objects gzip-encoded sends them so to
		// every client). Passed through, as uncacheable.
		s.m().originError(err)
		s.Log.Info().Err(err).Str("key", q.key).Msg("edge: the origin's answer cannot be sliced; passing the object through uncached")
		s.passes.add(q.key, s.now())
		if old != nil {
			s.purge(q.key, old.Version)
		}
		return found{pass: "answer not one part of identity bytes"}, nil
	case err != nil:
		s.m().originError(err)
		if old != nil {
			s.m().revalidation("error")
		}
		return found{}, err
	}
	s.m().originAnswer(req, resp)

	val := origin.ValidatorOf(resp.Header, q.rule.LastModifiedValidator)
	if resp.Status == http.StatusNotModified || (old != nil && !val.IsZero() && validatorOf(old).Matches(val)) {
		// Still the stored version (a 304, or an origin that ignored
		// If-None-Match but sent the same validator): one answer refreshes
		// every slice at once.
		resp.Body.Close()
		if resp.Status == http.StatusNotModified && contradicts(old, resp.Header) {
			// A 304 that does not select the stored response updates
			// nothing (RFC 9111 §4.3.4): ask again, unconditionally.
			s.m().revalidation("contradicted")
			s.Log.Warn().Str("key", q.key).Str("stored", validatorOf(old).String()).
				Str("etag", resp.Header.Get("ETag")).Str("last_modified", resp.Header.Get("Last-Modified")).
				Msg("edge: the origin answered a revalidation 304 with another validator; refetching the object")
			return s.fetchMeta(q, want, old.Version, ld)
		}
		if cc := parseCacheControl(resp.Header); cc.noStore || cc.private {
			// The object may no longer be kept: drop it, and pass.
			s.m().revalidation("uncacheable")
			s.purge(q.key, old.Version)
			s.passes.add(q.key, s.now())
			return found{pass: "revalidation said " + map[bool]string{true: "no-store", false: "private"}[cc.noStore]}, nil
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
		s.m().revalidation("not_modified")
		return found{meta: &m, status: "revalidated", unstored: !stored}, nil
	}
	if old != nil {
		s.m().revalidation("changed")
	}

	if why := s.uncacheable(resp, val, q); why != "" {
		resp.Body.Close()
		s.passes.add(q.key, s.now())
		if old != nil {
			s.purge(q.key, old.Version)
		}
		return found{pass: why}, nil
	}
	if resp.Size > q.rule.MaxObjectSize {
		// Memory and work follow the slices stored, but an object this
		// large is not sliced at all: the operator's bound, whatever an
		// origin claims.
		resp.Body.Close()
		s.m().limitTrip("object_size")
		s.Log.Warn().Str("key", q.key).Int64("size", resp.Size).Int64("max_object_size", q.rule.MaxObjectSize).
			Msgf("edge: rules[%d]: the origin says the object has %d bytes, more than max_object_size; passing it through uncached (raise max_object_size to cache it)", q.rule.Index, resp.Size)
		s.passes.add(q.key, s.now())
		if old != nil {
			s.purge(q.key, old.Version)
		}
		return found{pass: "object-too-large"}, nil
	}
	pol, _, _ := freshness(resp.Header, s.now(), q.rule)
	m := &segstore.Meta{
		Key:          q.key,
		Size:         resp.Size,
		SliceSize:    sliceSize,
		Version:      segstore.NewVersion(),
		ETag:         val.ETag,
		LastModified: val.LastModified,
		Header:       replayHeader(resp.Header),
		StoredAt:     storedAt(resp.Header, sent, s.now()),
		Lifetime:     pol.lifetime,
		NoRange:      !resp.Ranged,
	}
	if m.LastModified == "" {
		m.LastModified = resp.Header.Get("Last-Modified")
	}
	// Claim the slices this response carries before the meta is visible,
	// so no other request can fetch them again.
	first, fills := s.claimResponse(m, resp)
	s.register(watch, fills)
	for _, f := range fills {
		if f != nil {
			q.originBytes += f.Len
		}
	}
	// Unstored (purged meanwhile, or the store failed), the answer is
	// served from the fills anyway; their writes then fail as stale.
	stored := s.storeMeta(m, epoch, "put meta")
	s.passes.forget(q.key)
	go func() {
		s.feed(ctx, m, resp, first, fills)
		s.finish(watch, fills)
	}()
	status := "miss"
	if old != nil {
		status = "refreshed"
	}
	return found{meta: m, status: status, unstored: !stored}, nil
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

// uncacheable says why a validated origin answer must not be slice-cached,
// or "".
func (s *Server) uncacheable(resp *origin.Response, val origin.Validator, q *request) string {
	h := resp.Header
	if _, ok, why := freshness(h, s.now(), q.rule); !ok {
		return why
	}
	switch {
	case val.IsZero():
		return "no strong validator"
	case resp.Size < 0:
		return "unknown length"
	case resp.Size == 0:
		return "empty object" // nothing to slice; passed through like a range past the end
	case h.Get("Set-Cookie") != "":
		return "Set-Cookie"
	case h.Get("Content-Encoding") != "" && !strings.EqualFold(h.Get("Content-Encoding"), "identity"):
		return "Content-Encoding " + h.Get("Content-Encoding")
	}
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "Accept-Encoding") {
				return "Vary: " + f
			}
		}
	}
	return ""
}

// claimResponse registers fills for the slices resp carries: the whole
// slices of its range, or, when the origin answered the whole object, the
// first slice of a whole-body feed that claims the others as its body
// reaches them (origin.WholeFeed) rather than all of them now, in memory
// that would follow the size the origin claims. Either way the claims are
// made before the meta is visible, so no request fetches these slices
// again: one that needs a slice further on reserves it on the feed.
func (s *Server) claimResponse(m *segstore.Meta, resp *origin.Response) (int64, []*origin.Fill) {
	n := m.SliceCount()
	if n == 0 {
		return 0, nil
	}
	have := func(i int64) bool { return s.Store.Has(m, i) }
	if !resp.Ranged {
		claims, _ := s.fills.ClaimWhole(m.Key, m.Version, slicer.Run{First: 0, Last: 0}, m.SliceLen, have)
		var f *origin.Fill
		if claims[0].Owned {
			f = claims[0].Fill
		}
		return 0, []*origin.Fill{f}
	}
	first, last := slicer.SliceSpan(resp.Range, m.SliceSize)
	if resp.Range.Start%m.SliceSize != 0 {
		first++ // an answer to a suffix range: its bytes before the next slice are skipped
	}
	if resp.Range.End%m.SliceSize != 0 && resp.Range.End != m.Size {
		last-- // a ranged answer must end on a slice boundary or at the end
	}
	if first > last {
		return 0, nil
	}
	run := slicer.Run{First: first, Last: last}
	claims := s.fills.Claim(m.Key, m.Version, run, m.SliceLen, have)
	fills := make([]*origin.Fill, len(claims))
	for i, c := range claims {
		if c.Owned {
			fills[i] = c.Fill
		}
	}
	return run.First, fills
}

// feed streams an origin body into fills and the store; it runs detached
// from any client. fills[k] is slice first+k (nil: not this answer's to
// fill); fills of a whole-body feed (origin.WholeFeed) stand for the feed,
// which takes the whole body.
func (s *Server) feed(ctx context.Context, m *segstore.Meta, resp *origin.Response, first int64, fills []*origin.Fill) {
	defer resp.Body.Close()
	body := &countingReader{r: resp.Body, c: s.m().originBytes}
	store := func(f *origin.Fill) { s.storeFill(m, f) }
	var err error
	if wf := wholeOf(fills); wf != nil {
		// Drop mode: the feed's own fills come and go as it passes, so
		// readers find its fetch's watch under the feed (see watchFill).
		for _, f := range fills {
			if v, ok := s.watches.Load(f); f != nil && ok {
				s.watches.Store(wf, v)
				defer s.watches.Delete(wf)
				break
			}
		}
		if resp.Range.Start != 0 {
			// Cannot be: a whole-body feed asks without Range, and a 206
			// to that fails the check.
			s.fills.Abandon(fills, fmt.Errorf("edge: origin body starts at %d, not at the whole body's first byte: %w", resp.Range.Start, origin.ErrBadContentRange))
			return
		}
		err = s.fills.FeedWhole(body, wf, m.SliceCount(), m.SliceLen, func(i int64) bool { return s.Store.Has(m, i) }, store)
	} else {
		span := slicer.Run{First: first, Last: first + int64(len(fills)) - 1}.Bytes(m.SliceSize, m.Size)
		skip := span.Start - resp.Range.Start
		if skip < 0 || (resp.Ranged && skip >= m.SliceSize) {
			s.fills.Abandon(fills, fmt.Errorf("edge: origin body starts at %d, not at slice %d: %w", resp.Range.Start, first, origin.ErrBadContentRange))
			return
		}
		if _, err := io.CopyN(io.Discard, body, skip); err != nil {
			// The bytes before the first whole slice of a suffix answer,
			// or of a whole body before the slices a fill asked for.
			s.fills.Abandon(fills, fmt.Errorf("edge: origin body before slice %d: %w", first, err))
			s.fillFailed(ctx, err, fills)
			return
		}
		var src io.Reader = body
		if !resp.Ranged {
			// A whole body answering a ranged fill: read up to the end of
			// the slices asked for, not the rest of the object.
			src = io.LimitReader(body, span.Len())
		}
		// An answer checked only at its end is held until then, so that
		// nothing of a lie is stored.
		err = s.fills.Feed(src, first, fills, m.SliceLen, resp.CheckedAtEnd, store)
	}
	switch {
	case err == nil:
	case s.fillFailed(ctx, err, fills):
		s.Log.Debug().Err(err).Str("key", m.Key).Msg("edge: origin fill dropped, its clients are gone")
	case errors.Is(err, origin.ErrBadAnswer):
		s.Log.Warn().Err(err).Str("key", m.Key).Msg("edge: origin answer refused; nothing of it is stored, and its readers are cut")
	default:
		s.Log.Warn().Err(err).Str("key", m.Key).Msg("edge: origin fill failed; waiting requests retry")
	}
}

// wholeOf returns the whole-body feed fills belong to, or nil.
func wholeOf(fills []*origin.Fill) *origin.WholeFeed {
	for _, f := range fills {
		if f != nil {
			return f.Whole()
		}
	}
	return nil
}

// fetchRun fetches, in the background, the slices of fills for a known
// version: fills[k] is slice first+k, nil for a slice this request does
// not own. With range support fills are consecutive and all owned; for an
// origin without, they are the ones this request reserved on a new
// whole-body feed, which the fetch of the whole body feeds.
func (s *Server) fetchRun(q *request, m *segstore.Meta, first int64, fills []*origin.Fill) {
	req := &origin.Request{
		URL:     originURL(q, q.rule.Origin),
		Host:    q.rule.Origin.Host,
		Header:  s.upstreamHeader(q, true),
		IfMatch: validatorOf(m),
	}
	if !m.NoRange {
		rng := slicer.Run{First: first, Last: first + int64(len(fills)) - 1}.Bytes(m.SliceSize, m.Size)
		req.Range = &rng
	}
	client := s.client(q.rule.Origin)
	ctx, watch := s.fetchContext(q)
	s.register(watch, fills)
	wf := wholeOf(fills)
	if wf != nil && watch != nil {
		s.watches.Store(wf, watch) // see feed
	}
	s.m().originRequest("fill")
	for _, f := range fills {
		if f != nil {
			q.originBytes += f.Len
		}
	}
	go func() {
		defer s.finish(watch, fills)
		if wf != nil && watch != nil {
			defer s.watches.Delete(wf)
		}
		resp, err := client.Fetch(ctx, req)
		if err == nil {
			s.m().originAnswer(req, resp)
		}
		if err == nil && resp.Size != m.Size {
			resp.Body.Close()
			err = fmt.Errorf("edge: origin now reports %d bytes, version has %d: %w", resp.Size, m.Size, origin.ErrVersionChanged)
		}
		if err != nil {
			var se *origin.StatusError
			if errors.As(err, &se) {
				se.Resp.Body.Close()
			}
			s.fills.Abandon(fills, err)
			if !s.fillFailed(ctx, err, fills) && !errors.Is(err, origin.ErrVersionChanged) {
				s.Log.Warn().Err(err).Str("key", m.Key).Msg("edge: origin fill failed before its body")
			}
			return
		}
		s.feed(ctx, m, resp, first, fills)
	}()
}

func validatorOf(m *segstore.Meta) origin.Validator {
	if m.ETag != "" {
		return origin.Validator{ETag: m.ETag}
	}
	return origin.Validator{LastModified: m.LastModified}
}

// purge drops a version found to be gone, unless the object already moved
// on to another one.
func (s *Server) purge(key string, version uint64) {
	if m, err := s.Store.Meta(key); err == nil && m.Version == version {
		if err := s.Store.Purge(key); err != nil {
			s.storeError(err, "purge stale version")
		}
	}
}

// replayHeader keeps the end-to-end response headers that describe the
// representation and are replayed on every answer from the store. A
// parent cache's Cache-Status is kept: ours is added after it.
func replayHeader(h http.Header) map[string][]string {
	out := make(map[string][]string)
	for k, vv := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Te", "Trailer", "Upgrade",
			"Content-Length", "Content-Range", "Date", "Age", "Set-Cookie", "Accept-Ranges", "Server",
			"X-Cache", "Via", "Alt-Svc":
			continue
		}
		out[k] = append([]string(nil), vv...)
	}
	return out
}

// mergeHeader updates stored headers with those of a 304 (RFC 9111
// §4.3.4), except those that describe the stored bytes themselves: their
// encoding, length and range, and the validator, which a 304 never
// replaces (§3.2).
func mergeHeader(stored map[string][]string, fresh http.Header) http.Header {
	out := http.Header{}
	for k, vv := range stored {
		out[k] = vv
	}
	for k, vv := range replayHeader(fresh) {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Encoding", "Etag", "Last-Modified":
			continue
		}
		out[k] = vv
	}
	return out
}

// contradicts reports whether a 304's validator names another
// representation than the stored one m (RFC 9111 §4.3.4): an entity tag
// whose opaque tag is not the stored one's (a weak comparison: a 304 may
// carry W/), or, when there is no tag to compare, another Last-Modified.
// A 304 without a validator selects the one stored response.
func contradicts(m *segstore.Meta, h http.Header) bool {
	stored := m.ETag
	if stored == "" {
		stored = http.Header(m.Header).Get("ETag") // a weak one, kept for replay
	}
	if et := h.Get("ETag"); et != "" && stored != "" {
		return strings.TrimPrefix(et, "W/") != strings.TrimPrefix(stored, "W/")
	}
	lm := h.Get("Last-Modified")
	return lm != "" && m.LastModified != "" && lm != m.LastModified
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

// runLimit is the most slices one origin request fetches: the rule's
// max_run, config.DefaultMaxRun when unset (a Config built in code).
func runLimit(maxRun int64) int64 {
	if maxRun <= 0 {
		return config.DefaultMaxRun
	}
	return maxRun
}

// maxPendingWrites bounds the bytes of completed slices waiting for the
// store, server-wide: the feed reads on while the store absorbs a short
// stall, and blocks (slowing the origin read) only when this much is
// queued. Each write also holds a batch copy, so the memory is twice this.
const maxPendingWrites = 16 << 20

// storeFill writes a completed slice to the store without holding up the
// feed, and releases the fill when done.
func (s *Server) storeFill(m *segstore.Meta, f *origin.Fill) {
	s.lazy()
	n := min(f.Len, maxPendingWrites)
	if err := s.writes.Acquire(context.Background(), n); err != nil {
		s.fills.Release(f)
		return
	}
	go func() {
		defer s.writes.Release(n)
		defer s.fills.Release(f)
		if err := s.Store.WriteSlice(m, f.Index, f.Bytes()); err != nil && !errors.Is(err, segstore.ErrStale) {
			s.storeError(err, "write slice")
		}
	}()
}
