package edge

// Abandoned fills. By default an origin fetch outlives its clients: the
// slices it carries complete for the store, so no byte is fetched twice.
// A rule with abandoned_fills: drop instead ties the fetch to the clients
// reading its slices: each request that reads (or started) a fill of the
// fetch holds the fetch's watch until the request ends, and when the last
// one lets go the fetch is cancelled; its complete slices are stored, the
// rest are dropped, and a request that then wants one of them fetches it
// again.

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/sliceedge/sliceedge/origin"
)

// fillWatch counts the requests holding one drop-mode origin fetch.
type fillWatch struct {
	holders atomic.Int64
	cancel  context.CancelFunc
}

func (w *fillWatch) release() {
	if w.holders.Add(-1) == 0 {
		w.cancel()
	}
}

// fillFailed counts an origin fetch for fills that failed with err, and
// reports whether it was dropped: cancelled because its clients left
// (abandoned_fills: drop), which is not an origin error. A dropped fetch
// counts in fillsDropped if it left a slice incomplete (one whose last
// reader left just as it completed dropped nothing).
func (s *Server) fillFailed(ctx context.Context, err error, fills []*origin.Fill) (dropped bool) {
	if ctx.Err() == nil {
		s.metrics().originError(err)
		return false
	}
	if fills == nil {
		// An open feed's (startFill): it claims its fills as it goes,
		// and was cut inside one.
		s.metrics().fillsDropped.Inc()
		return true
	}
	for _, f := range fills {
		if f != nil && f.Bytes() == nil {
			s.metrics().fillsDropped.Inc()
			break
		}
	}
	return true
}

// fetchContext returns the context of an origin fetch that fills slices
// for q: detached from every client, or, under abandoned_fills: drop,
// held by q (and by every request that reads one of its fills, see
// watchFill) until they have all ended. The watch is nil in the first
// case; register and finish take nil.
func (s *Server) fetchContext(q *request) (context.Context, *fillWatch) {
	ctx := context.WithoutCancel(q.r.Context())
	if !q.rule.DropAbandonedFills || q.background {
		return ctx, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &fillWatch{cancel: cancel}
	q.hold(w)
	return ctx, w
}

// register makes fills findable by the requests that will read them.
func (s *Server) register(w *fillWatch, fills []*origin.Fill) {
	if w == nil {
		return
	}
	for _, f := range fills {
		if f != nil {
			s.watches.Store(f, w)
		}
	}
}

// finish forgets a drop-mode fetch that has ended, with or without error.
func (s *Server) finish(w *fillWatch, fills []*origin.Fill) {
	if w == nil {
		return
	}
	for _, f := range fills {
		if f != nil {
			s.watches.Delete(f)
		}
	}
}

// watchFill makes q hold the fetch of f, if it is a drop-mode one, until q
// ends.
func (s *Server) watchFill(q *request, f *origin.Fill) {
	v, ok := s.watches.Load(f)
	if wf := f.Whole(); !ok && wf != nil {
		v, ok = s.watches.Load(wf) // a whole-body feed's fills are made as it goes
	}
	if ok {
		q.hold(v.(*fillWatch))
	}
}

// hold adds q to w's holders, once.
func (q *request) hold(w *fillWatch) {
	if slices.Contains(q.holding, w) {
		return
	}
	w.holders.Add(1)
	q.holding = append(q.holding, w)
}

// letGo releases every fetch q holds, and detaches it from the feeds it
// read; ServeHTTP calls it as q ends.
func (q *request) letGo() {
	for _, w := range q.holding {
		w.release()
	}
	q.holding = nil
	for _, wf := range q.feeds {
		wf.Detach()
	}
	q.feeds = nil
}
