package edge

// Copying one range: slice by slice, each from a fill in flight, from the
// store, or from a fill this request claims. The copy claims the slices it
// will need a run at a time (at most max_run), and the next run while the
// current one is half sent (claimAhead, fill.go), so a long miss streams
// without a round trip's pause between runs. Stored slices go out with
// sendfile (read.go), read ahead by the kernel.

import (
	"errors"
	"fmt"

	"github.com/sliceedge/sliceedge/internal/invariants"
	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// rangeCopy is the state of sending one byte range of a version.
type rangeCopy struct {
	s  *Server
	q  *request
	m  *segstore.Meta
	rg slicer.Range
	// last is the range's last slice.
	last int64
	// claimedTo is the last slice this copy has claimed fills for.
	claimedTo int64
}

// maxFillRetries bounds how often one slice is refetched after a failed
// fill (truncation, timeout) before the request gives up.
const maxFillRetries = 2

// copyRange sends bytes rg of version m.
func (s *Server) copyRange(q *request, m *segstore.Meta, rg slicer.Range) error {
	if rg.Len() == 0 {
		return nil // the whole of an empty object
	}
	first, last := slicer.SliceSpan(rg, m.SliceSize)
	c := &rangeCopy{s: s, q: q, m: m, rg: rg, last: last, claimedTo: first - 1}
	sentBefore := q.sent
	for i := first; i <= last; i++ {
		sr := slicer.SliceRange(i, m.SliceSize, m.Size)
		a, b := max(rg.Start, sr.Start)-sr.Start, min(rg.End, sr.End)-sr.Start
		if err := c.slice(i, a, b); err != nil {
			return err
		}
	}
	if invariants.Enabled {
		invariants.Check(q.sent-sentBefore == rg.Len(), "edge: range %d-%d of %q sent %d bytes, not %d",
			rg.Start, rg.End-1, m.Key, q.sent-sentBefore, rg.Len())
	}
	return nil
}

// slice sends bytes [a, b) of slice i: from a fill in flight, from the
// store, or from a fill this copy claims. A failed fill (truncated, timed
// out) is claimed again and the copy resumes where it stopped.
func (c *rangeCopy) slice(i, a, b int64) error {
	s, m := c.s, c.m
	var f *origin.Fill
	storeFailed := false // the store could not read this slice: fetch it instead
	restarts := 0        // claims again after a stopped open-range answer
	for tries := 0; ; {
		if f == nil {
			f = s.fills.Lookup(s.fillKey(c.q, m, i), m.Version, i)
		}
		if f == nil && !storeFailed && s.Store.Has(m, i) {
			n, err := c.sendStored(i, a, b)
			a += n
			if err == nil {
				c.q.sliceHits++
				s.metrics().sliceHits.Inc()
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
			if f = c.claim(i, storeFailed); f == nil {
				// Stored between the look and the claim: read it.
				if tries++; tries > maxFillRetries+2 {
					return fmt.Errorf("edge: slice %d of %q: neither stored nor fetchable", i, m.Key)
				}
				continue
			}
		}
		c.claimAhead(i)
		n, err := s.sendFill(c.q, f, a, b)
		a += n
		if err == nil {
			c.q.sliceMisses++
			s.metrics().sliceMisses.Inc()
			return nil
		}
		if errors.Is(err, origin.ErrFeedStopped) && restarts < maxFillRetries*4 {
			// Not a failure: the open-range answer it was reserved on
			// stopped short of it (origin.OpenFeed). Claimed again.
			restarts++
			f = nil
			continue
		}
		if errors.Is(err, origin.ErrVersionChanged) || errors.Is(err, origin.ErrBadAnswer) || errors.Is(err, errClientGone) || tries >= maxFillRetries {
			return err
		}
		s.Log.Debug().Err(err).Int64("slice", i).Str("key", m.Key).Msg("edge: retrying slice after failed fill")
		tries++
		f = nil
	}
}
