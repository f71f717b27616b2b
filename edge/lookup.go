package edge

// Lookup: the version a request is answered from. Fresh, it comes from the
// store; stale, from one revalidation per key (or at once, while one runs
// in the background, inside a stale-while-revalidate window); unknown, from
// one discovery per key (discover.go). Every request collapsed on a lookup
// shares its result.

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
)

// lookupResult is what a lookup found: a version (answer from it), passed
// (send the request to the origin instead), pastEnd (the object ends
// before the bytes asked for) or notStored (only-if-cached, and nothing
// usable is stored).
type lookupResult interface{ lookupResult() }

// version is a stored object's version to answer from.
type version struct {
	meta     *segstore.Meta
	source   metaSource
	detail   string // for Cache-Status: why stale (or, forced, unvalidated) was served
	unstored bool   // the origin's answer is served but not stored (a purge overtook it, or the store failed)
	// forced: the stored version was fresh, but the request's directives
	// (no-cache, max-age, min-fresh) sent it to the origin first.
	forced bool
}

// passed: the object is not slice-cached; why says why.
type passed struct {
	why       string
	failed5xx bool // the origin answered 5xx
	handoff        // for the request that asked: the origin's answer
}

// handoff is an origin answer the edge does not store, for the one
// request whose lookup asked for it (requests collapsed on that lookup
// ask the origin themselves): a status the edge does not slice (404, 500,
// 3xx), relayed as it came, or a 2xx it may not store, which streams
// through (passthrough.go). At most one is set.
type handoff struct {
	relay  *http.Response
	answer *origin.Response
}

// close closes whichever answer h holds.
func (h *handoff) close() {
	if h.relay != nil {
		h.relay.Body.Close()
	}
	if h.answer != nil {
		h.answer.Body.Close()
	}
}

// held reports whether h holds an answer.
func (h *handoff) held() bool { return h.relay != nil || h.answer != nil }

// pastEnd: the origin answered 416 to the first slices asked for. size is
// the length its Content-Range gave, or -1.
type pastEnd struct{ size int64 }

// notStored: the request said only-if-cached and the store holds nothing
// it may be answered from (RFC 9111 §5.2.1.7): the answer is 504, and the
// origin is not asked.
type notStored struct{}

func (version) lookupResult()   {}
func (passed) lookupResult()    {}
func (pastEnd) lookupResult()   {}
func (notStored) lookupResult() {}

// metaSource is how a version's meta was obtained.
type metaSource uint8

const (
	fromStore   metaSource = iota // fresh in the store
	servedStale                   // stale in the store, served as such
	discovered                    // unknown, fetched from the origin now
	revalidated                   // stale, and the origin said it is unchanged
	refreshed                     // stale, and the origin sent a new version
)

// fromOrigin reports whether the meta came from the origin for this
// request: then even an answer without body bytes needed the origin.
func (src metaSource) fromOrigin() bool { return src == discovered || src == refreshed }

// lookup returns what q's object is: from the store when fresh, after one
// collapsed revalidation when stale, after one collapsed discovery fetch
// when unknown. want is the bytes the request needs first; a discovery
// fetches exactly the slices holding them (at most max_run), so a cold
// request costs no extra round trip. A stale object inside its
// stale-while-revalidate window is served at once while one background
// request revalidates it; one inside its stale-if-error window is served
// when revalidation fails. forceVersion, when non-zero, names a version
// found to be gone: the lookup then discovers afresh unless another request
// already did.
//
// rd are q's request directives (clientDirectives): under a rule that
// honours them, max-age, min-fresh and no-cache can make a fresh object go
// to the origin first, max-stale lets a stale one answer without it, and
// no-store passes a request the store cannot answer through, so that
// nothing it fetches is stored (RFC 9111 §5.2.1). Under only-if-cached the
// origin is never asked: what the store cannot answer is notStored.
func (s *Server) lookup(q *request, rd requestDirectives, want wantBytes, forceVersion uint64) (lookupResult, error) {
	if q.auth {
		if rd.onlyIfCached {
			return notStored{}, nil
		}
		return s.lookupAuth(q, want, forceVersion)
	}
	var stale *segstore.Meta
	var pol policy
	forced := false // stored and fresh, but not fresh enough for rd
	if forceVersion == 0 {
		m, err := s.Store.Meta(q.key)
		if err == nil && isMarker(m) {
			// The URL began to vary after this request chose its key:
			// discovered afresh, which learns the variant to store.
			m, err = nil, segstore.ErrNotFound
		}
		switch {
		case err == nil && s.freshFor(m, rd):
			return version{meta: m, source: fromStore}, nil
		case err == nil:
			stale = m
			pol, _, _ = freshness(http.Header(m.Header), m.StoredAt, q.rule)
			forced = s.fresh(m)
			if v, ok := s.staleAnswer(q, rd, m, pol, want); ok {
				return v, nil
			}
		case !errors.Is(err, segstore.ErrNotFound):
			s.Log.Warn().Err(err).Str("key", q.key).Msg("edge: read meta; treating the object as unknown")
		}
	}
	switch {
	case rd.onlyIfCached:
		return notStored{}, nil
	case rd.noStore:
		return passed{why: "request no-store"}, nil
	}
	var out handoff // set only when this request ran the fetch
	led := false
	v, err, _ := s.lookups.Do(s.lookupKey(q, want, stale != nil), func() (any, error) {
		led = true
		return s.fetchMeta(q, want, forceVersion, &out)
	})
	if !led {
		s.metrics().lookupsCollapsed.Inc()
	}
	res, _ := v.(lookupResult)
	p, isPass := res.(passed)
	failing := err != nil || isPass && p.failed5xx
	switch {
	case failing && forced:
		// The origin failed to validate what is fresh by its own terms:
		// the stored object answers, as it would without the request's
		// directives (RFC 9111 §4.3.3).
		out.close()
		return version{meta: stale, source: fromStore, detail: "origin-error", forced: true}, nil
	case failing && stale != nil && !pol.mustRevalidate && s.staleness(stale) <= pol.sie:
		// The origin is down or failing: serve what we have (RFC 5861 §4).
		out.close()
		s.metrics().staleServed("if_error")
		return version{meta: stale, source: servedStale, detail: "stale-if-error"}, nil
	case err != nil:
		out.close()
		return nil, err
	case isPass && out.held():
		p.handoff = out
		return p, nil
	}
	out.close()
	if v, ok := res.(version); ok && forced && (v.source == revalidated || v.source == refreshed) {
		v.forced = true
		return v, nil
	}
	return res, nil
}

// staleAnswer is how m, stored but not fresh enough for q, may answer q
// without waiting for the origin: inside a stale-while-revalidate window
// (RFC 5861 §3), while one background request revalidates it, or within
// the client's max-stale (RFC 9111 §5.2.1.2). Neither may serve an object
// that forbids serving it stale (§4.2.4), nor one that is fresh but not
// for this request's directives. A request that wants a fresh answer
// (wantsFresh) or stores nothing (no-store) is not given a
// stale-while-revalidate answer; one under only-if-cached is, without the
// revalidation.
func (s *Server) staleAnswer(q *request, rd requestDirectives, m *segstore.Meta, pol policy, want wantBytes) (version, bool) {
	if s.fresh(m) || pol.mustRevalidate {
		return version{}, false
	}
	if !rd.wantsFresh() && !rd.noStore && s.staleness(m) <= pol.swr {
		if !rd.onlyIfCached {
			s.revalidateInBackground(q, want)
		}
		s.metrics().staleServed("while_revalidate")
		return version{meta: m, source: servedStale, detail: "stale-while-revalidate"}, true
	}
	if rd.accepts(s.now().Sub(m.StoredAt), m.Lifetime, true) {
		return version{meta: m, source: servedStale, detail: "max-stale"}, true
	}
	return version{}, false
}

// lookupAuth is lookup for a request with credentials (RFC 9111 §3.5):
// it is answered only with what the origin gives it, asked with its
// credentials, never collapsed with another request (whose answer may not
// be this client's) and never from the store unasked. A stored version
// makes the request conditional: a 304 says the client may have it. An
// answer the origin allows a shared cache to keep (public, s-maxage,
// must-revalidate) is stored as any other; otherwise it goes to this
// client alone, and the stored version is left as it was (fetchMeta).
func (s *Server) lookupAuth(q *request, want wantBytes, forceVersion uint64) (lookupResult, error) {
	var out handoff
	res, err := s.fetchMeta(q, want, forceVersion, &out)
	switch p, isPass := res.(passed); {
	case err != nil:
		out.close()
		return nil, err
	case isPass && out.held():
		p.handoff = out
		return p, nil
	}
	out.close()
	if v, ok := res.(version); ok && (v.source == revalidated || v.source == refreshed) {
		v.forced = true // asked because of the credentials, stale or not (Cache-Status fwd=request)
		return v, nil
	}
	return res, nil
}

// sharedForAuth reports whether an answer to a request with credentials
// may be stored by a shared cache (RFC 9111 §3.5): its directives say
// public, s-maxage or must-revalidate.
func sharedForAuth(h http.Header, rule *config.Rule) bool {
	cc, _ := cacheDirectives(h, rule)
	return cc.public || cc.hasSMaxAge || cc.mustRevalidate
}

// revalidateInBackground revalidates q's object in a goroutine of its own,
// collapsed with any other lookup of the key; nobody waits for it.
func (s *Server) revalidateInBackground(q *request, want wantBytes) {
	bq := *q
	bq.r = q.r.Clone(context.WithoutCancel(q.r.Context()))
	bq.background, bq.holding, bq.feeds = true, nil, nil
	s.lookups.DoChan(s.lookupKey(&bq, want, true), func() (any, error) {
		var out handoff
		res, err := s.fetchMeta(&bq, want, 0, &out)
		out.close() // no client to answer from it
		return res, err
	})
}

func (s *Server) fresh(m *segstore.Meta) bool {
	return s.now().Before(m.StoredAt.Add(m.Lifetime))
}

// freshFor reports whether m is fresh and may answer a request with
// directives rd as it is (requestDirectives.accepts); with none that
// count, whether it is fresh.
func (s *Server) freshFor(m *segstore.Meta, rd requestDirectives) bool {
	return rd.accepts(s.now().Sub(m.StoredAt), m.Lifetime, false)
}

// staleness is how long ago m stopped being fresh.
func (s *Server) staleness(m *segstore.Meta) time.Duration {
	return s.now().Sub(m.StoredAt.Add(m.Lifetime))
}

// cacheStatus is the Cache-Status member of an answer from v whose outcome
// is o: hit when the answer needed nothing from the origin; else why it
// went forward: uri-miss (the object was unknown), partial (some of its
// slices were missing), stale (it was revalidated first); stored when what
// came back is kept.
func (v version) cacheStatus(o cacheOutcome, now time.Time) cacheStatus {
	cs := cacheStatus{stored: !v.unstored, detail: v.detail}
	switch {
	case v.source == revalidated || v.source == refreshed:
		cs.fwd = "stale"
		if v.forced {
			// RFC 9211 §2.2: a fresh response the request's
			// directives did not allow.
			cs.fwd = "request"
		}
		if v.source == revalidated {
			cs.fwdStatus = http.StatusNotModified
		}
	case v.forced:
		cs.fwd, cs.stored = "request", false // asked, failed, served what the store has
	case v.detail == "stale-if-error":
		cs.fwd, cs.stored = "stale", false // asked, failed, served what the store has
	case o == cacheHit:
		cs.hit, cs.stored = true, false
	case v.source == discovered:
		cs.fwd = "uri-miss"
	default:
		cs.fwd = "partial"
	}
	cs.ttl, cs.hasTTL = v.meta.StoredAt.Add(v.meta.Lifetime).Sub(now), true
	cs.class = v.meta.Class()
	return cs
}

// lookupKey is the singleflight key of q's lookup: its cache key, and in
// a POP the node its discovery asks. Lookups that ask the origin (a peer's,
// or a client's of a group this node owns) collapse together; one that
// asks a peer collapses only with those asking the same peer. Otherwise
// two nodes discovering one object could each wait on the other's lookup
// (a client's lookup here asking a peer whose peer-lookup waits on its own
// client's, which asks this node) until a timeout. Two lookups of one key
// on one node may then run at once; the second adopts the version the
// first stored (fetchMeta). stored says the lookup revalidates a stored
// version: that goes to the owner of the object's meta (group -1), so
// that the POP revalidates an object once.
func (s *Server) lookupKey(q *request, want wantBytes, stored bool) string {
	if !s.clustered(q) {
		return q.key
	}
	first := int64(-1)
	if want.Suffix == 0 && !stored {
		first = want.Start / sliceSizeFor(q, nil)
	}
	if u := s.route(q, first); u.peer != nil {
		return q.key + "\x00via\x00" + u.name
	}
	return q.key
}
