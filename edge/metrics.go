package edge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
)

// metrics are a Server's counters, exported in Prometheus text format on
// the admin listener's /metrics. Each says what it counts and when it is
// incremented. They live in a Set of the server's own: no global state.
type metrics struct {
	set *vm.Set

	// requests: sliceedge_requests_total{status,cache}, one per access log
	// line. Keyed by requestKey; created on first use.
	requests sync.Map
	// responseBytes: body bytes written to clients from the cache path
	// (every answer but pass-throughs); passBytes: those of pass-throughs.
	responseBytes, passBytes *vm.Counter
	// sliceHits and sliceMisses: slices (or parts of them) sent from the
	// store, and sent from an origin fill.
	sliceHits, sliceMisses *vm.Counter
	// originRequests: requests sent to origins, by kind: discover (first
	// fetch of an unknown object), revalidate, fill (a run of slices of a
	// known version), pass (a request passed through uncached). In a POP,
	// those sent to a peer instead are sliceedge_peer_requests_total.
	originRequests map[string]*vm.Counter
	// originBytes: body bytes read from origins by slice fills (not
	// those read from peers of a POP: sliceedge_peer_bytes_total).
	originBytes *vm.Counter
	// originErrors: origin fetches that failed, by kind: timeout, connect,
	// status_5xx, validator_mismatch, bad_content_range (a Content-Range or
	// Content-Length that is not what was asked), bad_answer (not one part
	// of identity bytes of the range asked: multipart/byteranges, a
	// Content-Encoding, a body longer than announced), headers_too_large
	// (past the origin's max_header_bytes), range_refused (a 416 for a
	// range inside the object), truncated, other. See originError.
	originErrors map[string]*vm.Counter
	// originNoRange: origin answers of 200, the whole object, to a request
	// with Range; counted where the edge learns the origin ignored Range
	// (it then cuts the whole body into slices; not an error).
	originNoRange *vm.Counter
	// fillsDropped: drop-mode origin fetches cancelled because every
	// client reading them had gone (abandoned_fills: drop).
	fillsDropped *vm.Counter
	// revalidations: conditional requests for stale objects, by outcome:
	// not_modified (still current), changed (new version), error,
	// contradicted (a 304 naming another validator: updates nothing, and
	// the object is fetched again), uncacheable (a 304 saying no-store or
	// private: the object is dropped).
	revalidations map[string]*vm.Counter
	// limits: requests a limit turned away or passed through, by limit:
	// object_size (max_object_size), fetch_allowance, bad_request (a path
	// or Host refused with 400), unknown_host (421), request_body (a GET or
	// HEAD with a body, answered and its connection closed).
	limits map[string]*vm.Counter
	// cuts: answers that ended before their last byte after their status
	// line was sent, by reason: origin (it failed mid-answer), origin_changed
	// (a new version mid-answer), client (it went away or stopped reading),
	// shutdown (the edge stopped before the answer ended).
	cuts map[string]*vm.Counter
	// stale: stale objects served, by reason: while_revalidate, if_error.
	stale map[string]*vm.Counter
	// lookupsCollapsed: requests that waited for another request's
	// discovery or revalidation of the same object instead of asking the
	// origin themselves.
	lookupsCollapsed *vm.Counter
	// flapRestarts: requests restarted on a new version because the origin
	// changed before their first byte. flapAborts: answers cut short (or
	// 502) because it changed after.
	flapRestarts, flapAborts *vm.Counter
	// unprovenRefetches: objects without validator fetched again as a
	// new version because a slice the request needed was missing.
	unprovenRefetches *vm.Counter
	// storeErrors: store reads and writes the edge saw fail (it served from
	// the origin instead).
	storeErrors *vm.Counter
	// peerRefused: requests on the peer listener without the POP's
	// token. Peer fetches, by peer (peers.go), are created on first use:
	// sliceedge_peer_requests_total{peer,result} (ok, status (the peer
	// relayed a status), version_changed, failed (the fetch then went to
	// the origin), body_failed (its body ended in an error: the rest came
	// from the origin)) and sliceedge_peer_bytes_total{peer}, body bytes
	// read. A peer that failed is not asked for peerBackoff.
	peerRefused *vm.Counter
	// ttfb and duration: seconds from request to first body byte, and to
	// the end of the answer.
	ttfb, duration *vm.PrometheusHistogram
	// scraped: counters set from where their figures are kept at each
	// scrape (metadata.go).
	scraped []scrapeCounter
	// authFailures: admin requests refused for their token.
	authFailures *vm.Counter
}

// newMetrics builds the metric set; fills and stats feed the gauges.
func newMetrics(fills *origin.Fills, stats func() (segstore.Stats, bool)) *metrics {
	exposeOnce.Do(func() { vm.ExposeMetadata(true) }) // TYPE lines; HELP texts: metadata.go
	set := vm.NewSet()
	m := &metrics{
		authFailures:      set.NewCounter("sliceedge_admin_auth_failures_total"),
		set:               set,
		responseBytes:     set.NewCounter("sliceedge_response_bytes_total"),
		sliceHits:         set.NewCounter(`sliceedge_slices_total{result="hit"}`),
		sliceMisses:       set.NewCounter(`sliceedge_slices_total{result="miss"}`),
		originBytes:       set.NewCounter("sliceedge_origin_bytes_total"),
		originNoRange:     set.NewCounter("sliceedge_origin_no_range_total"),
		fillsDropped:      set.NewCounter("sliceedge_fills_dropped_total"),
		flapRestarts:      set.NewCounter("sliceedge_flap_restarts_total"),
		unprovenRefetches: set.NewCounter("sliceedge_unproven_refetches_total"),
		flapAborts:        set.NewCounter("sliceedge_flap_aborts_total"),
		storeErrors:       set.NewCounter("sliceedge_store_errors_total"),
		passBytes:         set.NewCounter("sliceedge_pass_bytes_total"),
		peerRefused:       set.NewCounter("sliceedge_peer_refused_total"),
		// le buckets work with any Prometheus-compatible backend; the
		// bounds span a hit's first byte (0.1 ms) to a long download.
		ttfb:     set.NewPrometheusHistogramExt("sliceedge_ttfb_seconds", latencyBuckets()),
		duration: set.NewPrometheusHistogramExt("sliceedge_request_duration_seconds", latencyBuckets()),
	}
	labelled := func(name, label string, values []string) map[string]*vm.Counter {
		out := make(map[string]*vm.Counter, len(values))
		for _, v := range values {
			out[v] = set.NewCounter(name + "{" + label + `="` + v + `"}`)
		}
		return out
	}
	m.originRequests = labelled("sliceedge_origin_requests_total", "kind", []string{"discover", "revalidate", "fill", "pass"})
	m.originErrors = labelled("sliceedge_origin_errors_total", "kind",
		[]string{"timeout", "connect", "status_5xx", "validator_mismatch", "bad_content_range", "bad_answer", "headers_too_large", "range_refused", "truncated", "other"})
	m.revalidations = labelled("sliceedge_revalidations_total", "outcome", []string{"not_modified", "changed", "error", "contradicted", "uncacheable"})
	m.limits = labelled("sliceedge_limit_trips_total", "limit", []string{"object_size", "fetch_allowance", "variants", "bad_request", "unknown_host", "request_body"})
	m.cuts = labelled("sliceedge_responses_cut_total", "reason", []string{"origin", "origin_changed", "unproven", "client", "shutdown"})
	m.stale = labelled("sliceedge_stale_served_total", "reason", []string{"while_revalidate", "if_error"})
	scrape := func(name string, get func() uint64) {
		m.scraped = append(m.scraped, scrapeCounter{c: set.NewCounter(name), get: get})
	}
	scrape("sliceedge_collapsed_total", func() uint64 { return uint64(max(fills.Collapsed.Load(), 0)) })
	m.lookupsCollapsed = set.NewCounter("sliceedge_lookups_collapsed_total")
	set.NewGauge("sliceedge_fills_in_flight", func() float64 { return float64(fills.InFlight()) })
	gauge := func(name string, f func(st segstore.Stats) int64) {
		set.NewGauge(name, func() float64 {
			st, ok := stats()
			if !ok {
				return 0
			}
			return float64(f(st))
		})
	}
	counter := func(name string, f func(st segstore.Stats) int64) {
		scrape(name, func() uint64 {
			st, ok := stats()
			if !ok {
				return 0
			}
			return uint64(max(f(st), 0))
		})
	}
	gauge("sliceedge_store_bytes", func(st segstore.Stats) int64 { return st.Bytes })
	gauge("sliceedge_store_budget_bytes", func(st segstore.Stats) int64 { return st.MaxBytes })
	gauge("sliceedge_store_disk_bytes", func(st segstore.Stats) int64 { return st.DiskBytes })
	gauge("sliceedge_store_objects", func(st segstore.Stats) int64 { return st.Objects })
	gauge("sliceedge_store_slices", func(st segstore.Stats) int64 { return st.Slices })
	counter("sliceedge_store_evictions_total", func(st segstore.Stats) int64 { return st.Evictions })
	counter("sliceedge_store_evicted_bytes_total", func(st segstore.Stats) int64 { return st.EvictedBytes })
	counter("sliceedge_store_write_errors_total", func(st segstore.Stats) int64 { return st.WriteErrors })
	counter("sliceedge_store_verified_total", func(st segstore.Stats) int64 { return st.Verified })
	counter("sliceedge_store_scrubbed_bytes_total", func(st segstore.Stats) int64 { return st.ScrubbedBytes })
	counter("sliceedge_store_corrupt_total", func(st segstore.Stats) int64 { return st.Corrupt })
	return m
}

// latencyBuckets are histogram upper bounds in seconds: 0.1 ms to 5 min,
// three per decade.
func latencyBuckets() []float64 {
	return []float64{0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
		0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 300}
}

type requestKey struct {
	status int
	cache  string
	rule   string // the rule's match; "" when none matched
}

func (m *metrics) request(q *request, dur time.Duration) {
	k := requestKey{q.status, q.outcome.String(), ""}
	if q.rule != nil {
		// Rules are few (the configuration's), so the label's values are.
		k.rule = q.rule.Match
	}
	c, ok := m.requests.Load(k)
	if !ok {
		name := `sliceedge_requests_total{status="` + strconv.Itoa(k.status) + `",cache="` + k.cache + `",rule=` + strconv.Quote(k.rule) + `}`
		c, _ = m.requests.LoadOrStore(k, m.set.GetOrCreateCounter(name))
	}
	c.(*vm.Counter).Inc()
	if q.outcome == cachePass {
		m.passBytes.AddInt64(q.sent)
	} else {
		m.responseBytes.AddInt64(q.sent)
	}
	if q.ttfb > 0 {
		m.ttfb.Update(q.ttfb.Seconds())
	}
	m.duration.Update(dur.Seconds())
}

func (m *metrics) originRequest(kind string) { m.originRequests[kind].Inc() }
func (m *metrics) revalidation(outcome string) {
	m.revalidations[outcome].Inc()
}
func (m *metrics) staleServed(reason string) { m.stale[reason].Inc() }
func (m *metrics) limitTrip(limit string)    { m.limits[limit].Inc() }

// originAnswer counts what a validated origin answer to req shows about
// the origin: a 200 to a request with Range means it ignores Range (RFC
// 9110 §14.2 allows that), so the edge takes the whole body instead.
func (m *metrics) originAnswer(req *origin.Request, resp *origin.Response) {
	if req.HasRange() && resp.Status == http.StatusOK {
		m.originNoRange.Inc()
	}
}

// originError counts a failed origin fetch under the kind its error says.
func (m *metrics) originError(err error) {
	var se *origin.StatusError
	kind := "other"
	switch {
	case errors.Is(err, origin.ErrBadAnswer):
		kind = "bad_answer"
	case errors.Is(err, origin.ErrHeadersTooLarge):
		kind = "headers_too_large"
	case errors.Is(err, origin.ErrTimeout):
		kind = "timeout"
	case errors.Is(err, origin.ErrVersionChanged):
		kind = "validator_mismatch"
	case errors.Is(err, origin.ErrBadContentRange):
		kind = "bad_content_range"
	case errors.Is(err, origin.ErrUnsatisfiable):
		// Only 416s to ranges inside the object get here: fills ask for
		// bytes of the version's size, and metaFailed counts a 416 only
		// when its own complete length says the range starts inside.
		kind = "range_refused"
	case errors.Is(err, origin.ErrTruncated):
		kind = "truncated"
	case errors.As(err, &se) && se.Resp.StatusCode >= 500:
		kind = "status_5xx"
	case origin.IsConnectError(err):
		kind = "connect"
	}
	m.originErrors[kind].Inc()
}

// peerFetch counts a fetch from peer and wraps resp's body to count its
// bytes.
func (m *metrics) peerFetch(ctx context.Context, peer string, resp *origin.Response, err error, failed func()) {
	var se *origin.StatusError
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, origin.ErrVersionChanged):
		result = "version_changed"
	case errors.As(err, &se) && ctx.Err() == nil:
		result = "status"
	default:
		result = "failed"
	}
	name := strconv.Quote(peer)
	m.set.GetOrCreateCounter(`sliceedge_peer_requests_total{peer=` + name + `,result="` + result + `"}`).Inc()
	if resp != nil && resp.Body != nil {
		resp.Body = countingBody{ReadCloser: resp.Body, c: m.set.GetOrCreateCounter(`sliceedge_peer_bytes_total{peer=` + name + `}`),
			failed: func() {
				m.set.GetOrCreateCounter(`sliceedge_peer_requests_total{peer=` + name + `,result="body_failed"}`).Inc()
				failed()
			}}
	}
}

// fillBytes is the counter of resp's body bytes as a fill reads them:
// originBytes for an origin's answer; none for a peer's, which its body
// counts itself (peerFetch).
func (m *metrics) fillBytes(resp *origin.Response) *vm.Counter {
	if _, peer := resp.Body.(countingBody); peer {
		return new(vm.Counter)
	}
	return m.originBytes
}

// countingBody adds the bytes read through it to c, and calls failed
// when the body ends in an error (the peer died or lied mid-answer).
type countingBody struct {
	io.ReadCloser
	c      *vm.Counter
	failed func()
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.Add(n)
	if err != nil && err != io.EOF && !errors.Is(err, context.Canceled) {
		b.failed()
	}
	return n, err
}

// Metrics is the server's metric set, which /metrics writes: a POP's
// membership adds its own there.
func (s *Server) Metrics() *vm.Set { return s.metrics().set }

// write writes the metrics, and the Go runtime's and process's, in
// Prometheus text format.
func (m *metrics) write(w io.Writer) {
	for _, sc := range m.scraped {
		sc.c.Set(sc.get())
	}
	writeWithHelp(w, func(w io.Writer) {
		m.set.WritePrometheus(w)
		vm.WriteProcessMetrics(w)
	})
}

// Counters is a snapshot of a Server's counters, for tests and stats.
type Counters struct {
	Requests       int64 // answers given
	ResponseBytes  int64 // body bytes sent from the cache path (not pass-throughs)
	SliceHits      int64 // slices sent from the store
	SliceMisses    int64 // slices sent from origin fills
	OriginRequests int64 // requests to origins, all kinds
	Passed         int64 // of which answered uncached (X-Cache: PASS)
	PassRequests   int64 // origin requests that passed a client's request through
	OriginBytes    int64 // body bytes read by slice fills
	OriginErrors   int64 // failed origin fetches, all kinds
	RangeRefused   int64 // of which 416s to a range inside the object
	OriginNoRange  int64 // origin answers of 200 to a request with Range
	FillsDropped   int64 // origin fetches cancelled when their clients left (abandoned_fills: drop)
	Revalidations  int64 // revalidations, all outcomes
	NotModified    int64 // of which found the stored version current
	StaleServed    int64 // stale answers, both reasons
	Collapsed      int64 // slice claims that joined a fetch in flight
	// LookupsCollapsed: requests that shared another's discovery or
	// revalidation.
	LookupsCollapsed int64
	FlapRestarts     int64
	UnprovenRefetch  int64 // objects without validator fetched again as a new version
	FlapAborts       int64
	StoreErrors      int64
}

// Counters returns the server's counters now.
func (s *Server) Counters() Counters {
	m := s.metrics()
	sum := func(cs map[string]*vm.Counter) int64 {
		var n int64
		for _, c := range cs {
			n += int64(c.Get())
		}
		return n
	}
	var reqs, passed int64
	m.requests.Range(func(k, c any) bool {
		n := int64(c.(*vm.Counter).Get())
		reqs += n
		if k.(requestKey).cache == cachePass.String() {
			passed += n
		}
		return true
	})
	return Counters{
		Requests:         reqs,
		Passed:           passed,
		ResponseBytes:    int64(m.responseBytes.Get()),
		SliceHits:        int64(m.sliceHits.Get()),
		SliceMisses:      int64(m.sliceMisses.Get()),
		OriginRequests:   sum(m.originRequests),
		PassRequests:     int64(m.originRequests["pass"].Get()),
		OriginBytes:      int64(m.originBytes.Get()),
		OriginErrors:     sum(m.originErrors),
		RangeRefused:     int64(m.originErrors["range_refused"].Get()),
		OriginNoRange:    int64(m.originNoRange.Get()),
		FillsDropped:     int64(m.fillsDropped.Get()),
		Revalidations:    sum(m.revalidations),
		NotModified:      int64(m.revalidations["not_modified"].Get()),
		StaleServed:      sum(m.stale),
		Collapsed:        s.fills.Collapsed.Load(),
		LookupsCollapsed: int64(m.lookupsCollapsed.Get()),
		FlapRestarts:     int64(m.flapRestarts.Get()),
		UnprovenRefetch:  int64(m.unprovenRefetches.Get()),
		FlapAborts:       int64(m.flapAborts.Get()),
		StoreErrors:      int64(m.storeErrors.Get()),
	}
}

// logRequest writes the access log line.
func (s *Server) logRequest(q *request) {
	if q.logged {
		return
	}
	q.logged = true
	dur := s.now().Sub(q.start)
	s.metrics().request(q, dur)
	log := &s.Log
	if s.AccessLog != nil {
		log = s.AccessLog
	}
	ev := log.Info()
	if ev == nil {
		return // off
	}
	ev.Str("request_id", q.id).
		Str("client", s.clientIP(q)).
		Str("method", q.r.Method).
		Str("host", q.r.Host).
		Str("path", q.r.URL.RequestURI()).
		Str("proto", q.r.Proto)
	if v := tlsVersion(q.r.TLS); v != "" {
		ev.Str("tls", v)
	}
	ev.Str("range", q.r.Header.Get("Range")).
		Int("status", q.status).
		Str("cache", q.outcome.String())
	if q.rule != nil {
		ev.Str("rule", q.rule.Match).Str("origin", q.rule.Origin.Name)
	}
	if m := q.memberName(); m != "" {
		ev.Str("origin_member", m)
	}
	ev.Str("user_agent", clip(q.r.UserAgent(), 256)).
		Str("referer", clip(q.r.Referer(), 512))
	if q.detail != "" {
		ev.Str("detail", q.detail)
	}
	if q.cut != "" {
		ev.Str("cut", q.cut) // the status was sent, the body is short
	}
	ev.Int64("slice_hits", q.sliceHits).
		Int64("slice_misses", q.sliceMisses).
		Int64("origin_bytes", q.originBytes)
	if q.peerBytes > 0 {
		ev.Int64("peer_bytes", q.peerBytes) // fetched from another node of the POP
	}
	ev.Int64("bytes_sent", q.sent).
		Float64("ttfb_ms", float64(q.ttfb.Microseconds())/1000).
		Float64("duration_ms", float64(dur.Microseconds())/1000).
		Msg("request")
}

// storeStats reads the store's own figures when it has them.
func (s *Server) storeStats() (segstore.Stats, bool) {
	if st, ok := s.Store.(interface{ Stats() segstore.Stats }); ok {
		return st.Stats(), true
	}
	return segstore.Stats{}, false
}
