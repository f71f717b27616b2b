package edge

import (
	"io"
	"sync/atomic"
	"time"
)

// Stats counts what a Server did since it started. Each field says when it
// is incremented.
type Stats struct {
	Requests       atomic.Int64 // client requests answered (one per access log line)
	Passes         atomic.Int64 // requests passed through to the origin uncached
	SliceHits      atomic.Int64 // slices (or parts of slices) sent from the store
	OriginRequests atomic.Int64 // requests sent to origins, of every kind
	OriginBytes    atomic.Int64 // body bytes read from origins by slice fills
	OriginErrors   atomic.Int64 // origin fetches that failed (status, timeout, validation, truncation)
	FlapRestarts   atomic.Int64 // requests restarted because the origin changed before their first byte
	FlapAborts     atomic.Int64 // responses ended early (or 502) because the origin changed mid-answer
	StoreErrors    atomic.Int64 // store reads or writes that failed (served from the origin instead)

	lastStoreLog atomic.Int64 // unix seconds of the last store error logged
}

// storeError counts a store failure and logs it at most once a minute: a
// full disk must not flood the log, and never fails a client request.
func (s *Server) storeError(err error, what string) {
	s.Stats.StoreErrors.Add(1)
	now := s.now().Unix()
	last := s.Stats.lastStoreLog.Load()
	if now-last >= int64(time.Minute/time.Second) && s.Stats.lastStoreLog.CompareAndSwap(last, now) {
		s.Log.Error().Err(err).Str("op", what).Int64("errors_total", s.Stats.StoreErrors.Load()).
			Msg("edge: store failing; serving from the origin (check disk space and the store directory)")
	}
}

// countingReader adds the bytes read through it to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
