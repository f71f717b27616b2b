package edge

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

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
	r := q.r
	var specs []slicer.Spec
	if h := r.Header.Get("Range"); h != "" {
		var err error
		// Syntactically invalid or non-bytes ranges are ignored (RFC 9110 §14.2).
		if specs, err = slicer.Parse(h); err != nil {
			specs = nil
		}
	}
	want := firstWanted(specs, r.Method, conditional(r))
	var force uint64 // version to move away from, after a flap before the first byte
	for attempt := 0; ; attempt++ {
		f, ld, err := s.lookup(q, want, force)
		if err != nil {
			s.originFailed(q, err)
			return
		}
		if f.pass != "" {
			if ld != nil && ld.relay != nil {
				s.relay(q, ld.relay, f.pass)
				return
			}
			if f.beyond && f.size >= 0 && specs != nil {
				// Bytes past the end: the origin's 416 told the length.
				if _, err := slicer.Resolve(specs, f.size, slicer.Limits{MaxRanges: q.rule.MaxRanges}); errors.Is(err, slicer.ErrUnsatisfiable) {
					s.unsatisfiable(q, f.size)
					return
				}
			}
			s.pass(q, f.pass)
			return
		}
		err = s.serveMeta(q, f, specs)
		switch {
		case err == nil:
			return
		case q.wroteBody && errors.Is(err, errClientGone):
			s.cut(q, "client", err)
			return
		case q.wroteBody:
			// Bytes of this version are on the wire: the only honest end is
			// a truncated answer (DESIGN.md, lifecycle step 5).
			reason := "origin"
			if errors.Is(err, origin.ErrVersionChanged) {
				s.m().flapAborts.Inc()
				s.purge(q.key, f.meta.Version)
				reason = "origin_changed"
			}
			s.cut(q, reason, err)
			panic(http.ErrAbortHandler)
		case errors.Is(err, errClientGone):
			return
		case errors.Is(err, origin.ErrVersionChanged) && attempt == 0:
			s.m().flapRestarts.Inc()
			force = f.meta.Version
			continue
		case errors.Is(err, origin.ErrBadAnswer) && attempt == 0:
			// Nothing of the lying answer was sent or stored: once more,
			// on the same version, from fresh fills.
			s.m().flapRestarts.Inc()
			continue
		case errors.Is(err, origin.ErrVersionChanged):
			s.m().flapAborts.Inc()
			s.purge(q.key, f.meta.Version)
			q.cacheStatus, q.detail = "ERROR", "origin changed during fill"
			s.plainError(q, http.StatusBadGateway, "fwd=miss; detail=origin-changed", msgOriginChanged)
			return
		default:
			s.originFailed(q, err)
			return
		}
	}
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

// serveMeta answers from a version: preconditions, then 416, 304, 200 or
// 206. An error means nothing was written yet unless q.wroteBody.
func (s *Server) serveMeta(q *request, f found, specs []slicer.Spec) error {
	m, r, w := f.meta, q.r, q.w
	h := w.Header()
	for k, vv := range m.Header {
		h[k] = vv
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("Age", strconv.FormatInt(age(s.now(), m.StoredAt), 10))

	// An answer without body bytes needed the origin only if the meta
	// itself came from it; an answer with them, at least then.
	bodiless := "HIT"
	if f.status == "miss" || f.status == "refreshed" {
		bodiless = "MISS"
	}
	switch checkPreconditions(r, m) {
	case condFailed:
		q.cacheStatus, q.detail = bodiless, "precondition failed"
		s.setCacheHeaders(q, f)
		return s.writeEmpty(q, http.StatusPreconditionFailed)
	case condNotModified:
		q.cacheStatus = bodiless
		s.setCacheHeaders(q, f)
		for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Content-Disposition", "Content-Language"} {
			h.Del(k)
		}
		return s.writeEmpty(q, http.StatusNotModified)
	case condIgnoreRange:
		specs = nil
	}

	var ranges []slicer.Range
	if specs != nil {
		var err error
		ranges, err = slicer.Resolve(specs, m.Size, slicer.Limits{MaxRanges: q.rule.MaxRanges})
		if errors.Is(err, slicer.ErrUnsatisfiable) {
			q.cacheStatus = bodiless
			s.setCacheHeaders(q, f)
			h.Set("Content-Range", slicer.UnsatisfiedContentRange(m.Size))
			h.Del("Content-Type")
			return s.writeEmpty(q, http.StatusRequestedRangeNotSatisfiable)
		}
	}
	if len(ranges) > 1 && r.Method == http.MethodGet && s.overAllowance(q, m, ranges) {
		// Sparse ranges over slices not stored: fetching them would cost
		// the origin far more than the client asked for. The origin answers
		// them as asked, uncached.
		s.m().limitTrip("fetch_allowance")
		resetHeader(h)
		s.pass(q, "fetch-allowance")
		return nil
	}
	status := http.StatusOK
	parts := ranges
	switch {
	case len(ranges) == 0:
		parts = []slicer.Range{{Start: 0, End: m.Size}}
		h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	case len(ranges) == 1:
		status = http.StatusPartialContent
		h.Set("Content-Range", slicer.ContentRange(ranges[0], m.Size))
		h.Set("Content-Length", strconv.FormatInt(ranges[0].Len(), 10))
	default:
		status = http.StatusPartialContent
	}
	var mp *multipartBody
	if len(ranges) > 1 {
		mp = newMultipart(h.Get("Content-Type"), ranges, m.Size)
		h.Set("Content-Type", "multipart/byteranges; boundary="+mp.boundary)
		h.Set("Content-Length", strconv.FormatInt(mp.length(), 10))
	}

	// X-Cache and Cache-Status say what this answer needed from the origin.
	// Counted per run, not per slice: a HEAD or a full GET of an object
	// an origin says is a petabyte costs what is stored of it.
	hits, misses := int64(0), int64(0)
	for _, run := range slicer.Cover(parts, m.SliceSize) {
		n := s.Store.CountStored(m, run.First, run.Last)
		hits, misses = hits+n, misses+run.Len()-n
	}
	switch {
	case r.Method == http.MethodHead || bodiless == "MISS":
		// A meta that came from the origin now came with slices that are
		// this request's misses, even those stored before it counts them.
		q.cacheStatus = bodiless
	case misses == 0:
		q.cacheStatus = "HIT"
	case hits == 0:
		q.cacheStatus = "MISS"
	default:
		q.cacheStatus = "PARTIAL"
	}
	s.setCacheHeaders(q, f)
	q.status = status
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		q.markFirstByte(s.now())
		return nil
	}
	// The status line waits for the first body byte, so that an origin
	// that flaps before it can still be answered cleanly.
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
	if !q.wroteBody {
		w.WriteHeader(status) // an empty object
	}
	return nil
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

// setCacheHeaders writes X-Cache and Cache-Status (RFC 9211): hit when
// the answer needed nothing from the origin; else why it went forward:
// uri-miss (the object was unknown), partial (some of its slices were
// missing), stale (it was revalidated first); stored when what came back
// is kept.
func (s *Server) setCacheHeaders(q *request, f found) {
	h := q.w.Header()
	h.Set("X-Cache", q.cacheStatus)
	var cs string
	stored := !f.unstored
	switch {
	case f.status == "revalidated" || f.status == "refreshed":
		cs = "fwd=stale"
		if f.status == "revalidated" {
			cs += "; fwd-status=304"
		}
	case f.detail == "stale-if-error":
		cs, stored = "fwd=stale", false // asked, failed, served what the store has
	case q.cacheStatus == "HIT":
		cs, stored = "hit", false
	case f.status == "miss":
		cs = "fwd=uri-miss"
	default:
		cs = "fwd=partial"
	}
	if stored {
		cs += "; stored"
	}
	if f.meta != nil {
		ttl := f.meta.StoredAt.Add(f.meta.Lifetime).Sub(s.now())
		cs += "; ttl=" + strconv.FormatInt(int64(ttl/time.Second), 10)
	}
	if f.detail != "" {
		cs += "; detail=" + f.detail
	}
	s.addCacheStatus(h, cs)
}

// addCacheStatus adds this edge's member, with parameters params, to h's
// Cache-Status. Members already there, from caches nearer the origin, are
// kept before it: RFC 9211 §2 lists caches from the one closest to the
// origin to the one closest to the client.
func (s *Server) addCacheStatus(h http.Header, params string) {
	member := s.cacheName() + "; " + params
	if prior := strings.Join(h.Values("Cache-Status"), ", "); prior != "" {
		member = prior + ", " + member
	}
	h.Set("Cache-Status", member)
}

// unsatisfiable answers 416 for an object the store does not hold, from
// the length the origin's own 416 gave.
func (s *Server) unsatisfiable(q *request, size int64) {
	h := q.w.Header()
	h.Set("Content-Range", slicer.UnsatisfiedContentRange(size))
	q.cacheStatus, q.detail = "MISS", "range beyond the object"
	h.Set("X-Cache", q.cacheStatus)
	s.addCacheStatus(h, "fwd=uri-miss; fwd-status=416")
	_ = s.writeEmpty(q, http.StatusRequestedRangeNotSatisfiable)
}

// writeEmpty answers with a status and no body.
func (s *Server) writeEmpty(q *request, status int) error {
	q.status = status
	q.w.WriteHeader(status)
	q.wroteBody = true
	q.markFirstByte(s.now())
	return nil
}

// write sends body bytes, writing the status line first if it is pending.
func (q *request) write(s *Server, p []byte) error {
	if !q.wroteBody {
		q.w.WriteHeader(q.status)
		q.wroteBody = true
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

// copyRange sends bytes rg of version m, slice by slice: stored slices from
// the store, the others from fills, claiming and fetching missing runs of
// slices (at most max_run at a time, the next run claimed while the
// current one is half read).
func (s *Server) copyRange(q *request, m *segstore.Meta, rg slicer.Range) error {
	first, last := slicer.SliceSpan(rg, m.SliceSize)
	q.rangeEnd = rg.End
	claimedTo := first - 1
	for i := first; i <= last; i++ {
		sr := slicer.SliceRange(i, m.SliceSize, m.Size)
		a, b := max(rg.Start, sr.Start)-sr.Start, min(rg.End, sr.End)-sr.Start
		if err := s.copySlice(q, m, i, a, b, last, &claimedTo); err != nil {
			return err
		}
	}
	return nil
}

// maxFillRetries bounds how often one slice is refetched after a failed
// fill (truncation, timeout) before the request gives up.
const maxFillRetries = 2

// copySlice sends bytes [a, b) of slice i: from a fill in flight, from the
// store, or from a fill this request claims. A failed fill (truncated,
// timed out) is claimed again and the copy resumes where it stopped.
func (s *Server) copySlice(q *request, m *segstore.Meta, i, a, b, last int64, claimedTo *int64) error {
	var f *origin.Fill
	storeFailed := false // the store could not read this slice: fetch it instead
	for tries := 0; ; {
		if f == nil {
			f = s.fills.Lookup(m.Key, m.Version, i)
		}
		if f == nil && !storeFailed && s.Store.Has(m, i) {
			n, err := s.sendStored(q, m, i, a, b, last)
			a += n
			if err == nil {
				q.sliceHits++
				s.m().sliceHits.Inc()
				return nil
			}
			if errors.Is(err, errClientGone) {
				return err
			}
			if !errors.Is(err, segstore.ErrNotFound) && !errors.Is(err, segstore.ErrCorrupt) {
				// A store that cannot read never fails the request: this
				// slice comes from the origin.
				s.storeError(err, "read slice")
				storeFailed = true
			}
			// Gone (evicted) or corrupt (and dropped): fetch it again.
		}
		if f == nil {
			// The claim hands back this slice's fill itself, so a fill
			// that completes at once cannot slip between claim and read.
			if f = s.claim(q, m, i, last, claimedTo, storeFailed); f == nil {
				// Stored between the look and the claim: read it.
				if tries++; tries > maxFillRetries+2 {
					return fmt.Errorf("edge: slice %d of %q: neither stored nor fetchable", i, m.Key)
				}
				continue
			}
		}
		s.readAhead(q, m, i, last, claimedTo)
		n, err := s.copyFill(q, f, a, b)
		a += n
		if err == nil {
			q.sliceMisses++
			s.m().sliceMisses.Inc()
			return nil
		}
		if errors.Is(err, origin.ErrVersionChanged) || errors.Is(err, origin.ErrBadAnswer) || errors.Is(err, errClientGone) || tries >= maxFillRetries {
			return err
		}
		s.Log.Debug().Err(err).Int64("slice", i).Str("key", m.Key).Msg("edge: retrying slice after failed fill")
		tries++
		f = nil
	}
}

// claim claims a run of slices from i, starts origin fetches for the ones
// this request owns, and returns the fill to read slice i from (nil when
// the store has it).
func (s *Server) claim(q *request, m *segstore.Meta, i, last int64, claimedTo *int64, bypass bool) *origin.Fill {
	maxRun := runLimit(q.rule.MaxRun)
	run := slicer.Run{First: i, Last: min(i+maxRun-1, last)}
	// bypass: the store says it has slice i but cannot read it.
	have := func(j int64) bool { return !(bypass && j == i) && s.Store.Has(m, j) }
	var claims []origin.Claim
	if m.NoRange {
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
			fills := make([]*origin.Fill, len(claims))
			for k, c := range claims {
				if c.Owned {
					fills[k] = c.Fill
				}
			}
			s.fetchRun(q, m, run.First, fills)
		}
	} else {
		claims = s.fills.Claim(m.Key, m.Version, run, m.SliceLen, have)
		owned := func(j int64) bool { return claims[j-run.First].Owned }
		for _, r := range slicer.PlanRuns(run, owned, 0) {
			fills := make([]*origin.Fill, r.Len())
			for j := r.First; j <= r.Last; j++ {
				fills[j-r.First] = claims[j-run.First].Fill
			}
			s.fetchRun(q, m, r.First, fills)
		}
	}
	*claimedTo = max(*claimedTo, run.Last)
	return claims[i-run.First].Fill
}

// readAhead claims the next run while the current one is being read, so a
// long miss streams without a round trip's pause between runs.
func (s *Server) readAhead(q *request, m *segstore.Meta, i, last int64, claimedTo *int64) {
	maxRun := runLimit(q.rule.MaxRun)
	if m.NoRange || *claimedTo >= last || *claimedTo-i >= maxRun/2 {
		return
	}
	s.claim(q, m, *claimedTo+1, last, claimedTo, false)
}

// Read buffers. Sending a stored range takes one store read into a buffer
// as large as the slice, then one write, while the server's slice-sized
// buffers total at most readBudget; beyond that (a thousand clients
// streaming at once, each blocked in a write most of the time) it goes in
// pieces of pieceSize, one store read each, so that memory grows by
// pieceSize per connection, not by a slice.
const (
	readBudget = 32 << 20
	pieceSize  = 64 << 10 // a multiple of the store's 64 KiB checksum chunk
)

// sendStored sends bytes [a, b) of stored slice i of m; n is how many it
// sent. A failed write wraps errClientGone; a failed read is the store's
// error (and n tells where to go on from).
func (s *Server) sendStored(q *request, m *segstore.Meta, i, a, b, last int64) (n int64, err error) {
	if r := q.ahead; r != nil {
		q.ahead = nil
		if r.m == m && r.i == i && r.a == a && r.b == b {
			<-r.done
			if r.err == nil {
				s.startReadAhead(q, m, i, last)
				return s.sendRead(q, r)
			}
		}
		s.dropRead(r)
	}
	if r := s.newRead(m, i, a, b); r != nil {
		r.data, r.err = s.Store.ReadSliceRange(m, i, a, b-a, *r.bp)
		if r.err != nil {
			err := r.err
			s.dropRead(r)
			return 0, err
		}
		s.startReadAhead(q, m, i, last)
		return s.sendRead(q, r)
	}
	bp := getBuf(&s.pieces, pieceSize)
	defer s.pieces.Put(bp)
	for a+n < b {
		// Pieces end on chunk boundaries, so each read checks one chunk.
		off := a + n
		end := min(b, (off/pieceSize+1)*pieceSize)
		data, err := s.Store.ReadSliceRange(m, i, off, end-off, *bp)
		if err != nil {
			return n, err
		}
		if err := q.write(s, data); err != nil {
			return n, err
		}
		n += end - off
	}
	return n, nil
}

// storedRead is a read of bytes [a, b) of stored slice i into a
// slice-sized buffer that holds need bytes of the read budget.
type storedRead struct {
	m       *segstore.Meta
	i, a, b int64
	need    int64
	bp      *[]byte
	data    []byte
	err     error
	done    chan struct{} // closed when a read ahead has finished
}

// newRead returns a read of bytes [a, b) of stored slice i of m into a
// slice-sized buffer, or nil if the read budget has no room for one. The
// budget is an atomic count, not a semaphore: no lock on the hit path.
func (s *Server) newRead(m *segstore.Meta, i, a, b int64) *storedRead {
	need := m.SliceSize
	if s.readMem.Add(need) > readBudget {
		s.readMem.Add(-need)
		return nil
	}
	return &storedRead{m: m, i: i, a: a, b: b, need: need, bp: getBuf(&s.bufs, need)}
}

// sendRead writes r's bytes to the client and lets go of r.
func (s *Server) sendRead(q *request, r *storedRead) (int64, error) {
	err := q.write(s, r.data)
	s.dropRead(r)
	if err != nil {
		return 0, err
	}
	return r.b - r.a, nil
}

// dropRead gives r's buffer and budget back.
func (s *Server) dropRead(r *storedRead) {
	if r.done != nil {
		<-r.done
	}
	if r.data != nil {
		*r.bp = r.data[:0]
	}
	s.bufs.Put(r.bp)
	s.readMem.Add(-r.need)
}

// startReadAhead reads the part of slice i+1 that q wants, if it is
// stored and the read budget allows, on a goroutine of its own, so that
// the store read overlaps the write of slice i: a client streaming stored
// slices then waits for the socket only. sendStored picks the read up.
func (s *Server) startReadAhead(q *request, m *segstore.Meta, i, last int64) {
	j := i + 1
	if j > last || !s.Store.Has(m, j) {
		return
	}
	sr := slicer.SliceRange(j, m.SliceSize, m.Size)
	a, b := int64(0), min(q.rangeEnd, sr.End)-sr.Start
	r := s.newRead(m, j, a, b)
	if r == nil {
		return
	}
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.data, r.err = s.Store.ReadSliceRange(m, j, a, b-a, *r.bp)
	}()
	q.ahead = r
}

// copyFill sends bytes [a, b) of a slice in flight as they arrive; n is how
// many it sent.
func (s *Server) copyFill(q *request, f *origin.Fill, a, b int64) (int64, error) {
	s.watchFill(q, f)
	bp := getBuf(&s.pieces, pieceSize)
	defer s.pieces.Put(bp)
	buf := (*bp)[:pieceSize]
	var sent int64
	ctx := q.r.Context()
	for a+sent < b {
		want := min(int64(len(buf)), b-a-sent)
		n, err := f.ReadAt(ctx, buf[:want], a+sent)
		// Until the status line is out, a whole piece (or the whole range)
		// is gathered first: an origin that stalls inside its first bytes
		// then gets the client a 504, not a status line and a cut.
		for err == nil && !q.wroteBody && int64(n) < want {
			var m int
			m, err = f.ReadAt(ctx, buf[n:want], a+sent+int64(n))
			n += m
		}
		if err != nil && !q.wroteBody && !errors.Is(err, io.EOF) {
			return sent, err // nothing sent: the request can still fail cleanly
		}
		if n > 0 {
			if werr := q.write(s, buf[:n]); werr != nil {
				return sent, werr
			}
			sent += int64(n)
			// What the origin sent goes on to the client now, not when a
			// buffer fills: the next bytes may be slow to come.
			_ = http.NewResponseController(q.w).Flush()
		}
		if err != nil {
			if clientGone(q.r.Context()) {
				return sent, fmt.Errorf("%w: %w", errClientGone, err)
			}
			if err == io.EOF && a+sent < b {
				err = fmt.Errorf("edge: fill of slice %d ended early: %w", f.Index, origin.ErrTruncated)
			} else if err == io.EOF {
				break
			}
			return sent, err
		}
	}
	return sent, nil
}

// getBuf returns a buffer from pool with at least n bytes of capacity.
func getBuf(pool *sync.Pool, n int64) *[]byte {
	if bp, ok := pool.Get().(*[]byte); ok {
		if int64(cap(*bp)) >= n {
			*bp = (*bp)[:n]
			return bp
		}
	}
	b := make([]byte, n)
	return &b
}

// originFailed answers 502 (or 504 for a timeout) when nothing was sent.
func (s *Server) originFailed(q *request, err error) {
	s.Log.Warn().Err(err).Str("key", q.key).Msg("edge: origin failed")
	q.cacheStatus, q.detail = "ERROR", err.Error()
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
	s.plainError(q, status, "fwd=miss; detail=origin-error", msg)
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

// plainError answers with a short text for people; cs is the Cache-Status
// parameters after the cache name.
func (s *Server) plainError(q *request, status int, cs, msg string) {
	h := q.w.Header()
	resetHeader(h)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	s.addCacheStatus(h, cs)
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	q.status = status
	q.w.WriteHeader(status)
	q.wroteBody = true
	n, _ := io.WriteString(q.w, msg)
	q.sent += int64(n)
}
