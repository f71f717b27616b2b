package edge

// Filling slices from the origin. A request claims the missing slices of a
// run (origin.Fills: a slice is stored, in flight, or missing, and only one
// claim owns a missing one); the owner fetches its slices in runs with
// Range and the version's precondition, and the answer is fed to every
// reader of those fills and then stored, detached from any client (unless
// abandon.go cancels it). Nothing of a slice is stored until it is whole
// and checked.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// claim claims a run of slices from i, starts origin fetches for the ones
// this copy owns, and returns the fill to read slice i from (nil when the
// store has it). bypass: the store says it has slice i but cannot read it.
func (c *rangeCopy) claim(i int64, bypass bool) *origin.Fill {
	s, m := c.s, c.m
	run := slicer.Run{First: i, Last: min(i+runLimit(c.q.rule.MaxRun)-1, c.last, s.groupEnd(c.q, i))}
	have := func(j int64) bool { return !(bypass && j == i) && s.Store.Has(m, j) }
	var claims []origin.Claim
	if m.Class() == segstore.Unproven {
		// Only the answer that created the version may fill it: a slice
		// not stored and not on its way is refetched as a new version.
		if m.NoRange {
			// Reserved on the whole body in flight, if any; a new one
			// would be another answer.
			claims, _ = s.fills.ClaimWhole(m.Key, m.Version, run, m.SliceLen, have)
		} else {
			claims = s.fills.Claim(m.Key, m.Version, run, m.SliceLen, have)
		}
		var owned []*origin.Fill
		for _, cl := range claims {
			if cl.Owned {
				owned = append(owned, cl.Fill)
			}
		}
		s.fills.Abandon(owned, unproven(m, i))
	} else if m.NoRange {
		// The origin sends whole bodies, from byte 0 whatever is asked.
		// The run's missing slices are reserved on a whole-body feed in
		// flight that has not passed them yet, so one fetch serves every
		// request, or else on a new feed this request starts, which takes
		// every other missing slice as it passes (origin.WholeFeed).
		// Nothing claims the whole object up front: its size is only what
		// the origin says.
		var wf *origin.WholeFeed
		claims, wf = s.fills.ClaimWhole(m.Key, m.Version, run, m.SliceLen, have)
		if wf != nil {
			s.fetchRun(c.q, m, run.First, ownedFills(claims))
		}
	} else {
		claims = s.fills.Claim(s.fillKey(c.q, m, i), m.Version, run, m.SliceLen, have)
		owned := func(j int64) bool { return claims[j-run.First].Owned }
		for _, r := range slicer.PlanRuns(run, owned, 0) {
			s.fetchRun(c.q, m, r.First, ownedFills(claims[r.First-run.First:r.Last-run.First+1]))
		}
	}
	for _, cl := range claims {
		if cl.Fill != nil && cl.Fill.Whole() != nil {
			c.q.attach(cl.Fill.Whole())
		}
	}
	c.claimedTo = max(c.claimedTo, run.Last)
	return claims[i-run.First].Fill
}

// attach keeps the whole-body feed wf going while q reads from it, once
// per feed (origin.WholeFeed.Attach); letGo detaches.
func (q *request) attach(wf *origin.WholeFeed) {
	if slices.Contains(q.feeds, wf) {
		return
	}
	wf.Attach()
	q.feeds = append(q.feeds, wf)
}

// unproven is the error of a request that needs slice i of an Unproven
// version that no answer in flight will fill: the serve loop fetches the
// object again as a new version, before its first byte (serve.go).
func unproven(m *segstore.Meta, i int64) error {
	return fmt.Errorf("edge: slice %d of %q is not stored, and an object without validator is filled only by the answer that created its version: %w: %w",
		i, m.Key, errUnproven, origin.ErrVersionChanged)
}

var errUnproven = errors.New("no validator proves another answer to be this version")

// claimAhead claims the next run while slice i, of the current one, is
// being sent, once the copy is past the current run's middle.
func (c *rangeCopy) claimAhead(i int64) {
	if c.m.NoRange || c.claimedTo >= c.last || c.claimedTo-i >= runLimit(c.q.rule.MaxRun)/2 {
		return
	}
	c.claim(c.claimedTo+1, false)
}

// ownedFills is the fills of claims, nil for the claims not owned.
func ownedFills(claims []origin.Claim) []*origin.Fill {
	fills := make([]*origin.Fill, len(claims))
	for k, c := range claims {
		if c.Owned {
			fills[k] = c.Fill
		}
	}
	return fills
}

// addOriginBytes counts the bytes of the fills q fetches, from the origin
// or, in a POP, from a peer.
func (q *request) addOriginBytes(fills []*origin.Fill, fromPeer bool) {
	for _, f := range fills {
		if f == nil {
			continue
		}
		if fromPeer {
			q.peerBytes += f.Len
		} else {
			q.originBytes += f.Len
		}
	}
}

// fetchRun fetches, in the background, the slices of fills for a known
// version: fills[k] is slice first+k, nil for a slice this request does
// not own. With range support fills are consecutive and all owned; for an
// origin without, they are the ones this request reserved on a new
// whole-body feed, which the fetch of the whole body feeds.
func (s *Server) fetchRun(q *request, m *segstore.Meta, first int64, fills []*origin.Fill) {
	req := &origin.Request{
		URL:     originTarget(q),
		Host:    q.rule.Origin.Host,
		Header:  s.upstreamHeader(q, true),
		IfMatch: validatorOf(m),
	}
	if !m.NoRange {
		rng := slicer.Run{First: first, Last: first + int64(len(fills)) - 1}.Bytes(m.SliceSize, m.Size)
		req.Range = &rng
	}
	up := s.route(q, first)
	ctx, watch := s.fetchContext(q)
	s.register(watch, fills)
	wf := wholeOf(fills)
	if wf != nil && watch != nil {
		s.watches.Store(wf, watch) // see feedWhole
	}
	up.kind = "fill"
	q.addOriginBytes(fills, up.peer != nil)
	s.fetches.Add(1)
	go func() {
		defer s.fetches.Add(-1)
		defer s.finish(watch, fills)
		if wf != nil && watch != nil {
			defer s.watches.Delete(wf)
		}
		resp, err := up.fetch(ctx, req)
		if err == nil {
			s.metrics().originAnswer(req, resp)
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

// claimResponse registers fills for the slices a discovery's answer resp
// carries: the whole slices of its range, or, when the origin answered the
// whole object, the first slice of a whole-body feed that claims the others
// as its body reaches them (origin.WholeFeed) rather than all of them now,
// in memory that would follow the size the origin claims. Either way the
// claims are made before the meta is visible, so no request fetches these
// slices again: one that needs a slice further on reserves it on the feed.
func (s *Server) claimResponse(m *segstore.Meta, resp *origin.Response) (int64, []*origin.Fill) {
	if m.SliceCount() == 0 {
		return 0, nil
	}
	have := func(i int64) bool { return s.Store.Has(m, i) }
	if !resp.Ranged {
		claims, _ := s.fills.ClaimWhole(m.Key, m.Version, slicer.Run{First: 0, Last: 0}, m.SliceLen, have)
		return 0, ownedFills(claims)
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
	key := m.Key
	if _, fromPeer := resp.Body.(countingBody); fromPeer {
		key += peerFills // see fillKey
	}
	return run.First, ownedFills(s.fills.Claim(key, m.Version, run, m.SliceLen, have))
}

// feed streams an origin body into fills and the store; it runs detached
// from any client. fills[k] is slice first+k (nil: not this answer's to
// fill); fills of a whole-body feed (origin.WholeFeed) stand for the feed,
// which takes the whole body.
func (s *Server) feed(ctx context.Context, m *segstore.Meta, resp *origin.Response, first int64, fills []*origin.Fill) {
	defer resp.Body.Close()
	body := &countingReader{r: resp.Body, c: s.metrics().fillBytes(resp)}
	var err error
	if wf := wholeOf(fills); wf != nil {
		err = s.feedWhole(m, resp, body, wf, fills)
	} else {
		err = s.feedRun(ctx, m, resp, body, first, fills)
	}
	s.fed(ctx, m, err, fills)
}

// feedOpen feeds the answer to an open range to its feed, wf, until the
// body ends or the feed stops; then the body is closed, cut.
func (s *Server) feedOpen(ctx context.Context, m *segstore.Meta, resp *origin.Response, wf *origin.WholeFeed) {
	defer resp.Body.Close()
	body := &countingReader{r: resp.Body, c: s.metrics().fillBytes(resp)}
	s.fed(ctx, m, s.feedWhole(m, resp, body, wf, nil), nil)
}

// fed says how a feed of fills ended, when it failed.
func (s *Server) fed(ctx context.Context, m *segstore.Meta, err error, fills []*origin.Fill) {
	switch {
	case err == nil || errors.Is(err, errFeedRefused):
	case s.fillFailed(ctx, err, fills):
		s.Log.Debug().Err(err).Str("key", m.Key).Msg("edge: origin fill dropped, its clients are gone")
	case errors.Is(err, origin.ErrBadAnswer):
		s.Log.Warn().Err(err).Str("key", m.Key).Msg("edge: origin answer refused; nothing of it is stored, and its readers are cut")
	default:
		s.Log.Warn().Err(err).Str("key", m.Key).Msg("edge: origin fill failed; waiting requests retry")
	}
}

// errFeedRefused: the body was not where its fills start, and the fills
// are already abandoned with the reason.
var errFeedRefused = errors.New("edge: origin body refused")

// feedWhole feeds a whole body to the whole-body feed wf.
func (s *Server) feedWhole(m *segstore.Meta, resp *origin.Response, body io.Reader, wf *origin.WholeFeed, fills []*origin.Fill) error {
	// Drop mode: the feed's own fills come and go as it passes, so
	// readers find its fetch's watch under the feed (see watchFill).
	for _, f := range fills {
		if v, ok := s.watches.Load(f); f != nil && ok {
			s.watches.Store(wf, v)
			defer s.watches.Delete(wf)
			break
		}
	}
	if resp.Range.Start%m.SliceSize != 0 || (!resp.Ranged && resp.Range.Start != 0) {
		// Cannot be: a whole-body feed asks without Range, an open feed
		// from a slice's start, and the check holds an answer to that.
		err := fmt.Errorf("edge: origin body starts at %d, not at a slice's first byte: %w", resp.Range.Start, origin.ErrBadContentRange)
		s.fills.Abandon(fills, err)
		wf.End(err)
		return errFeedRefused
	}
	has := func(i int64) bool { return s.Store.Has(m, i) }
	first := resp.Range.Start / m.SliceSize
	return s.fills.FeedWhole(body, wf, first, m.SliceCount(), m.SliceLen, has, s.sink(m), func(f *origin.Fill) { s.storeFill(m, f) })
}

// feedRun feeds a body holding slices first.. to their fills.
func (s *Server) feedRun(ctx context.Context, m *segstore.Meta, resp *origin.Response, body io.Reader, first int64, fills []*origin.Fill) error {
	span := slicer.Run{First: first, Last: first + int64(len(fills)) - 1}.Bytes(m.SliceSize, m.Size)
	skip := span.Start - resp.Range.Start
	if skip < 0 || (resp.Ranged && skip >= m.SliceSize) {
		s.fills.Abandon(fills, fmt.Errorf("edge: origin body starts at %d, not at slice %d: %w", resp.Range.Start, first, origin.ErrBadContentRange))
		return errFeedRefused
	}
	if _, err := io.CopyN(io.Discard, body, skip); err != nil {
		// The bytes before the first whole slice of a suffix answer, or
		// of a whole body before the slices a fill asked for.
		s.fills.Abandon(fills, fmt.Errorf("edge: origin body before slice %d: %w", first, err))
		s.fillFailed(ctx, err, fills)
		return errFeedRefused
	}
	src := body
	if !resp.Ranged {
		// A whole body answering a ranged fill: read up to the end of the
		// slices asked for, not the rest of the object.
		src = io.LimitReader(body, span.Len())
	}
	// An answer checked only at its end is held until then, so that
	// nothing of a lie is stored.
	return s.fills.Feed(src, first, fills, m.SliceLen, resp.CheckedAtEnd, s.sink(m), func(f *origin.Fill) { s.storeFill(m, f) })
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

// sliceCreator is a store that takes a slice's bytes as they arrive
// (segstore's); a store without it gets each slice whole when complete.
type sliceCreator interface {
	CreateSlice(m *segstore.Meta, i int64) (*segstore.SliceWriter, error)
}

// sink returns where the fills of m write their bytes as they arrive: a
// new slice in the store, so that a completed slice costs only a rename
// and a small index write, and no write of a whole slice holds up the
// feed. A slice the store will not take (full, failing, purged) gets no
// sink and is not stored.
func (s *Server) sink(m *segstore.Meta) origin.Sink {
	sc, ok := s.Store.(sliceCreator)
	if !ok {
		return nil
	}
	return func(f *origin.Fill) io.WriteCloser {
		w, err := sc.CreateSlice(m, f.Index)
		if err != nil {
			if !errors.Is(err, segstore.ErrStale) {
				s.storeError(err, "write slice")
			}
			return refused{}
		}
		return storeSink{w, s}
	}
}

// storeSink is the sink of a slice the store is writing; a failed write
// is said, then the fill drops the sink.
type storeSink struct {
	*segstore.SliceWriter
	s *Server
}

func (w storeSink) Write(p []byte) (int, error) {
	n, err := w.SliceWriter.Write(p)
	if err != nil {
		w.s.storeError(err, "write slice")
	}
	return n, err
}

// refused is the sink of a slice the store refused: it takes nothing, so
// the fill ends with no sink and storeFill stores nothing.
type refused struct{}

func (refused) Write([]byte) (int, error) { return 0, errRefused }
func (refused) Close() error              { return nil }

var errRefused = errors.New("edge: the store refused the slice")

// storeFill stores a completed slice and releases the fill: it commits the
// slice its bytes were written to as they arrived (see sink), or, for a
// store that takes whole slices only, writes it whole. Either way it runs
// on the feed's goroutine and nothing queues: a store that cannot keep up
// slows the origin read rather than growing memory. Readers of the fill
// read its bytes from memory until it is released, and from the store
// after.
func (s *Server) storeFill(m *segstore.Meta, f *origin.Fill) {
	defer s.fills.Release(f)
	var err error
	switch w := f.Sink().(type) {
	case storeSink:
		err = w.Commit()
	case nil:
		if _, ok := s.Store.(sliceCreator); ok {
			return // refused, or a write failed: already said
		}
		err = s.Store.WriteSlice(m, f.Index, f.Bytes())
	}
	if err != nil && !errors.Is(err, segstore.ErrStale) {
		s.storeError(err, "write slice")
	}
}

// countingReader adds the bytes read through it to c.
type countingReader struct {
	r io.Reader
	c *vm.Counter
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.c.Add(n)
	return n, err
}
