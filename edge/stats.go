package edge

import (
	"io"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/semaphore"

	"github.com/sliceedge/sliceedge/segstore"
)

// lazy builds the server's internal state on first use, so that a Server
// literal with only the fields a test needs works.
func (s *Server) lazy() {
	s.once.Do(func() {
		s.metricsSet = newMetrics(&s.fills, s.storeStats)
		s.writes = semaphore.NewWeighted(maxPendingWrites)
	})
}

// m returns the server's metrics.
func (s *Server) m() *metrics {
	s.lazy()
	return s.metricsSet
}

// storeStats reads the store's own figures when it has them.
func (s *Server) storeStats() (segstore.Stats, bool) {
	if st, ok := s.Store.(interface{ Stats() segstore.Stats }); ok {
		return st.Stats(), true
	}
	return segstore.Stats{}, false
}

// storeError counts a store failure and logs it at most once a minute: a
// full disk must not flood the log, and never fails a client request.
func (s *Server) storeError(err error, what string) {
	s.m().storeErrors.Inc()
	now := s.now().Unix()
	last := s.lastStoreLog.Load()
	if now-last >= int64(time.Minute/time.Second) && s.lastStoreLog.CompareAndSwap(last, now) {
		s.Log.Error().Err(err).Str("op", what).Uint64("errors_total", s.m().storeErrors.Get()).
			Msg("edge: store failing; serving from the origin (check disk space and the store directory)")
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
