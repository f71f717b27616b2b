package origin

// Pools: an origin of one or more servers (members) that serve the same
// objects. A fetch goes to a member in the pool, in turn; one that fails
// before its answer (no connection, no TLS handshake, no answer in time, a
// 502, 503 or 504, an answer that is not the range asked for) is retried
// on the next member with the same request, If-Match included, so the
// answer is of the same version or is none. Members are taken out by
// passive checks (MaxFails consecutive failures, for FailTimeout) and,
// when configured, by active ones (a GET of a health path every
// Interval).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// HealthCheck is a pool's active health check: a GET of Path on every
// member each Interval, answered 2xx or 3xx within Timeout.
type HealthCheck struct {
	Path      string
	Interval  time.Duration
	Timeout   time.Duration
	Healthy   int // consecutive successes that put a member (back) in the pool
	Unhealthy int // consecutive failures that take it out
}

// PoolOptions describe a pool.
type PoolOptions struct {
	Name    string     // the origin's name, in metrics and messages
	Members []*url.URL // scheme, host and base path of each member
	Client  Options    // each member's client
	// Host is the Host header of health checks; "" is each member's.
	Host string
	// MaxFails consecutive failures take a member out for FailTimeout;
	// 0 means 3 and 10s.
	MaxFails    int
	FailTimeout time.Duration
	Health      *HealthCheck // nil: no active checks
	// Metrics receives the members' metrics; nil: none are kept.
	Metrics *vm.Set
	// OnChange is told when a member leaves or rejoins the pool, and why.
	OnChange func(origin, member string, up bool, why string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Pool fetches from the members of one origin. Build it with NewPool and
// Close it when it is replaced. It is safe for concurrent use.
type Pool struct {
	opts    PoolOptions
	members []*Member
	next    atomic.Uint64 // round-robin cursor
	// failovers counts fetches retried on another member.
	failovers *vm.Counter
	stop      chan struct{}
	done      sync.WaitGroup
	closeOnce sync.Once
}

// Member is one server of a pool.
type Member struct {
	// Name is the member in metrics and logs: its host and base path.
	Name   string
	base   string // scheme://host/path, no trailing slash
	root   string // scheme://host: health paths are absolute
	client *Client
	pool   *Pool

	mu        sync.Mutex
	fails     int       // consecutive failures (passive)
	downUntil time.Time // passive: out of the pool until then
	passive   bool      // taken out by the passive check, not yet back
	checkUp   bool      // the active check's verdict; true without one
	okRun     int       // consecutive successful checks
	failRun   int       // consecutive failed checks
	why       string    // why it is out, for Status

	up       *vm.Gauge
	latency  *vm.PrometheusHistogram
	requests map[string]*vm.Counter // by result: ok, failed, status
	checks   map[string]*vm.Counter // by result: ok, failed
}

// NewPool builds the pool and starts its health checks.
func NewPool(opts PoolOptions) *Pool {
	if opts.MaxFails <= 0 {
		opts.MaxFails = 3
	}
	if opts.FailTimeout <= 0 {
		opts.FailTimeout = 10 * time.Second
	}
	p := &Pool{opts: opts, stop: make(chan struct{})}
	set := opts.Metrics
	if set == nil {
		set = vm.NewSet()
	}
	p.failovers = set.GetOrCreateCounter(fmt.Sprintf(`sliceedge_origin_failovers_total{origin=%q}`, opts.Name))
	for _, u := range opts.Members {
		name := u.Host + strings.TrimSuffix(u.EscapedPath(), "/")
		m := &Member{
			Name:    name,
			base:    u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/"),
			root:    u.Scheme + "://" + u.Host,
			client:  NewClient(opts.Client),
			pool:    p,
			checkUp: true,
		}
		l := fmt.Sprintf(`origin=%q,member=%q`, opts.Name, name)
		m.up = set.GetOrCreateGauge(`sliceedge_origin_member_up{`+l+`}`, nil)
		m.up.Set(1)
		m.latency = set.GetOrCreatePrometheusHistogram(`sliceedge_origin_member_response_seconds{` + l + `}`)
		m.requests = map[string]*vm.Counter{}
		for _, r := range []string{"ok", "failed", "status"} {
			m.requests[r] = set.GetOrCreateCounter(fmt.Sprintf(`sliceedge_origin_member_requests_total{%s,result=%q}`, l, r))
		}
		m.checks = map[string]*vm.Counter{}
		for _, r := range []string{"ok", "failed"} {
			m.checks[r] = set.GetOrCreateCounter(fmt.Sprintf(`sliceedge_origin_health_checks_total{%s,result=%q}`, l, r))
		}
		p.members = append(p.members, m)
	}
	if h := opts.Health; h != nil && h.Path != "" && h.Interval > 0 {
		for _, m := range p.members {
			p.done.Add(1)
			go p.check(m, h)
		}
	}
	return p
}

// Close stops the health checks and closes the members' idle connections;
// fetches in flight finish.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.done.Wait()
		for _, m := range p.members {
			m.client.Close()
		}
	})
}

// Name is the origin's name.
func (p *Pool) Name() string { return p.opts.Name }

func (p *Pool) now() time.Time {
	if p.opts.Now != nil {
		return p.opts.Now()
	}
	return time.Now()
}

// MemberStatus is a member's state, for operators.
type MemberStatus struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	Why  string `json:"why,omitempty"` // why it is out
}

// Status lists the members and whether each is in the pool.
func (p *Pool) Status() []MemberStatus {
	now := p.now()
	out := make([]MemberStatus, len(p.members))
	for i, m := range p.members {
		m.mu.Lock()
		up := m.availableLocked(now)
		out[i] = MemberStatus{Name: m.Name, Up: up}
		if !up {
			out[i].Why = m.why
		}
		m.mu.Unlock()
	}
	return out
}

// Ready reports whether a member is in the pool.
func (p *Pool) Ready() bool {
	now := p.now()
	for _, m := range p.members {
		m.mu.Lock()
		up := m.availableLocked(now)
		m.mu.Unlock()
		if up {
			return true
		}
	}
	return false
}

// availableLocked reports whether m takes requests: its active check (if
// any) says it is healthy and no passive check has it out.
func (m *Member) availableLocked(now time.Time) bool {
	up := m.checkUp && !now.Before(m.downUntil)
	if up {
		m.up.Set(1)
	} else {
		m.up.Set(0)
	}
	return up
}

// order is the members a fetch tries, in turn: those in the pool, from the
// round-robin cursor on, then those out of it, as a last resort rather
// than no answer at all (a passive check may have taken out a member that
// has recovered, and with every member out nothing else can answer).
func (p *Pool) order() []*Member {
	n := len(p.members)
	if n == 1 {
		return p.members
	}
	start := int(p.next.Add(1) % uint64(n))
	now := p.now()
	in := make([]*Member, 0, n)
	var out []*Member
	for k := range n {
		m := p.members[(start+k)%n]
		m.mu.Lock()
		up := m.availableLocked(now)
		m.mu.Unlock()
		if up {
			in = append(in, m)
		} else {
			out = append(out, m)
		}
	}
	return append(in, out...)
}

// Pick returns the member a request that cannot be retried (a
// pass-through) goes to: the next one in the pool.
func (p *Pool) Pick() *Member { return p.order()[0] }

// URL is the absolute URL of target (an escaped path, with its query) on m.
func (m *Member) URL(target string) string { return m.base + target }

// Transport is m's transport, for a reverse proxy.
func (m *Member) Transport() http.RoundTripper { return m.client.Transport() }

// Report tells m's passive check how a request it answered ended: nil for
// an answer, or the error (a pass-through that could not reach it).
func (m *Member) Report(ctx context.Context, err error) {
	switch {
	case err == nil:
		m.requests["ok"].Inc()
		m.succeeded()
	case ctx.Err() != nil:
	default:
		m.requests["failed"].Inc()
		m.failed(err)
	}
}

// Fetch sends req, whose URL is a target (an escaped path and query, as
// the client asked it, under each member's base path), to a member, and
// to the next when that one fails before its answer. The answer names its
// Member.
func (p *Pool) Fetch(ctx context.Context, req *Request) (*Response, error) {
	if !strings.HasPrefix(req.URL, "/") {
		return nil, fmt.Errorf("origin %s: target %q is not a path", p.opts.Name, req.URL)
	}
	order := p.order()
	var err error
	for k, m := range order {
		if k > 0 {
			p.failovers.Inc()
		}
		r := *req
		r.URL = m.URL(req.URL)
		start := time.Now()
		var resp *Response
		resp, err = m.client.Fetch(ctx, &r)
		if ctx.Err() != nil {
			return resp, err
		}
		m.latency.UpdateDuration(start)
		if err == nil {
			resp.Member = m.Name
			if resp.Body == http.NoBody {
				m.requests["ok"].Inc()
				m.succeeded()
			} else {
				// Its body decides: whole, or cut short.
				resp.Body = &memberBody{ReadCloser: resp.Body, m: m, ctx: ctx}
			}
			return resp, nil
		}
		if !memberFault(err) {
			var se *StatusError
			if errors.As(err, &se) {
				m.requests["status"].Inc()
				m.succeeded() // it answered
			}
			return nil, fmt.Errorf("%w (member %s)", err, m.Name)
		}
		m.requests["failed"].Inc()
		m.failed(err)
		var se *StatusError
		if errors.As(err, &se) {
			if k == len(order)-1 {
				return nil, fmt.Errorf("%w (member %s, the last of %d tried)", err, m.Name, len(order))
			}
			se.Resp.Body.Close()
		}
		err = fmt.Errorf("%w (member %s)", err, m.Name)
	}
	if len(order) > 1 {
		return nil, fmt.Errorf("origin %s: every member failed; the last: %w", p.opts.Name, err)
	}
	return nil, err
}

// memberFault reports whether err says the member failed rather than
// answered: it could not be reached, answered nothing in time, answered
// a gateway error (502, 503, 504: it is overloaded, restarting or cut from
// its backend), or answered something that is not the range asked for.
// Such a fetch is retried on another member. An answer (another status, a
// new version, a 416, headers too large) is the origin's, from any member.
func memberFault(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return !errors.Is(err, ErrVersionChanged) && !errors.Is(err, ErrUnsatisfiable) && !errors.Is(err, ErrHeadersTooLarge)
}

func (m *Member) succeeded() {
	m.mu.Lock()
	m.fails = 0
	back := m.passive && m.checkUp
	m.passive = false
	m.mu.Unlock()
	if back {
		m.pool.changed(m, true, "answered again after its fail_timeout")
	}
}

func (m *Member) failed(err error) {
	p := m.pool
	m.mu.Lock()
	m.fails++
	out := m.fails >= p.opts.MaxFails && !m.passive
	if m.fails >= p.opts.MaxFails {
		// Out again for FailTimeout, each time it fails once back.
		m.downUntil = p.now().Add(p.opts.FailTimeout)
		m.passive = true
		m.fails = 0
		m.why = fmt.Sprintf("%d consecutive failures, the last: %v", p.opts.MaxFails, err)
		m.up.Set(0)
	}
	m.mu.Unlock()
	if out {
		p.changed(m, false, fmt.Sprintf("%d consecutive failures (max_fails); out for %v (fail_timeout), the last: %v", p.opts.MaxFails, p.opts.FailTimeout, err))
	}
}

func (p *Pool) changed(m *Member, up bool, why string) {
	if p.opts.OnChange != nil {
		p.opts.OnChange(p.opts.Name, m.Name, up, why)
	}
}

// memberBody reports a body that fails to its member's passive check.
type memberBody struct {
	io.ReadCloser
	m        *Member
	ctx      context.Context
	reported atomic.Bool // the passive check has been told
}

func (b *memberBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == nil || b.reported.Load() {
		return n, err
	}
	switch {
	case err == io.EOF:
		if b.reported.CompareAndSwap(false, true) {
			b.m.requests["ok"].Inc()
			b.m.succeeded()
		}
	case b.ctx.Err() == nil && !errors.Is(err, context.Canceled) && b.reported.CompareAndSwap(false, true):
		b.m.requests["failed"].Inc()
		b.m.failed(err)
	}
	return n, err
}

// Close counts a body closed before its end without an error as an
// answer: the reader stopped (its client went, or it had what it asked).
func (b *memberBody) Close() error {
	if b.reported.CompareAndSwap(false, true) {
		b.m.requests["ok"].Inc()
		b.m.succeeded()
	}
	return b.ReadCloser.Close()
}

// check runs m's active health check until the pool closes.
func (p *Pool) check(m *Member, h *HealthCheck) {
	defer p.done.Done()
	t := time.NewTicker(h.Interval)
	defer t.Stop()
	for {
		err := p.probe(m, h)
		m.mu.Lock()
		var change string
		up := false
		if err == nil {
			m.checks["ok"].Inc()
			m.okRun, m.failRun = m.okRun+1, 0
			if !m.checkUp && m.okRun >= h.Healthy {
				m.checkUp, up = true, true
				// The active check vouches for it: the passive one's
				// time out ends too.
				m.downUntil, m.passive, m.fails = time.Time{}, false, 0
				change = fmt.Sprintf("%d consecutive health checks passed", h.Healthy)
			}
		} else {
			m.checks["failed"].Inc()
			m.failRun, m.okRun = m.failRun+1, 0
			if m.checkUp && m.failRun >= h.Unhealthy {
				m.checkUp = false
				m.why = fmt.Sprintf("%d consecutive health checks failed, the last: %v", h.Unhealthy, err)
				change = m.why
			}
		}
		m.availableLocked(p.now())
		m.mu.Unlock()
		if change != "" {
			p.changed(m, up, change)
		}
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

// probe asks m for the health path once.
func (p *Pool) probe(m *Member, h *HealthCheck) error {
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.root+h.Path, nil)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if p.opts.Host != "" {
		req.Host = p.opts.Host
	}
	req.Header.Set("User-Agent", "sliceedge-health-check")
	resp, err := m.client.Transport().RoundTrip(req)
	if err != nil {
		return fmt.Errorf("health check GET %s: %w", h.Path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("health check GET %s: status %d", h.Path, resp.StatusCode)
	}
	return nil
}
