package edge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/internal/invariants"
	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
)

// Store is what the edge needs of the slice store (segstore.Store).
type Store interface {
	Meta(key string) (*segstore.Meta, error)
	PutMeta(m *segstore.Meta) error
	Has(m *segstore.Meta, i int64) bool
	// CountStored is how many of slices first..last of m are stored, at
	// a cost that follows the slices stored, not the span.
	CountStored(m *segstore.Meta, first, last int64) int64
	// OpenSlice opens stored slice i, verified, for sending: the hit path.
	OpenSlice(m *segstore.Meta, i int64) (*os.File, error)
	WriteSlice(m *segstore.Meta, i int64, data []byte) error
	Purge(key string) error
}

// Server is the edge handler. Construct it with the fields a caller needs;
// nil fields take their defaults. A Server must not be copied after use.
type Server struct {
	// Config is the configuration the server starts with; SetConfig
	// replaces it while serving.
	Config *config.Config
	Store  Store
	// Log receives the access log and operational messages; the zero
	// Logger discards them.
	Log zerolog.Logger
	// AccessLog, when set, receives the access log instead of Log
	// (access_log in the configuration: a file, or off).
	AccessLog *zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Transport carries origin traffic; nil means one tuned transport per
	// origin, with that origin's timeouts.
	Transport http.RoundTripper
	// Peers is the node's POP, when it is in one: cached fetches go to the
	// owner of the slices' group (peers.go). nil: the node stands alone.
	Peers Peers
	// SendTimeout bounds how long one write of response bytes may wait
	// for a client that does not read (a slow or stalled reader); the
	// request then ends, and its origin fills go on for the store. 0
	// means no limit. Unlike http.Server.WriteTimeout it does not bound a
	// whole response, so a long download at a sane rate is not cut.
	SendTimeout time.Duration
	// Version and Commit are the build's, for sliceedge_build_info.
	Version, Commit string
	// Started is when the process began serving, for the uptime in
	// GET /stats and /config; zero: unknown.
	Started time.Time

	fills    origin.Fills
	fetches  atomic.Int64       // origin fetch goroutines running (startFill, fetchRun), which count their outcome after their fills go
	lookups  singleflight.Group // collapses discovery and revalidation per cache key
	pieces   sync.Pool          // *[]byte, pieceSize buffers
	passes   passMemo
	watches  sync.Map                     // *origin.Fill or *origin.WholeFeed -> *fillWatch of its drop-mode fetch; see abandon.go
	clientMu sync.Mutex                   // protects clients and pools
	clients  map[clientKey]*origin.Client // to peers, by the origin's timeouts
	pools    map[string]*origin.Pool      // by poolKey

	live           atomic.Pointer[config.Config] // set by SetConfig; nil means Config
	cfgInfo        atomic.Pointer[configState]   // GET /config's; nil: loaded at Started
	once           sync.Once                     // builds counters and writes; see lazy()
	counters       *metrics                      // see metrics()
	lastStoreLog   atomic.Int64                  // unix seconds of the last store error logged
	purged         purgeLog                      // recent purges: an answer overtaken by one does not store its meta
	variants       variantSet                    // Vary variants stored per URL, bounded by max_variants
	hostOnce       sync.Once                     // sets hostName
	hostName       string                        // the host name as a Cache-Status member; see cacheName
	active         atomic.Int64                  // requests being handled; see Active
	stopping       atomic.Bool                   // set by Stopping: cuts from now on are the shutdown's
	draining       atomic.Bool                   // set by StartDraining: /readyz says 503
	lastAuthLog    atomic.Int64                  // unix nanoseconds of the last refused admin request logged
	authSuppressed atomic.Int64                  // refused admin requests since, not logged
	versionLocks   [64]sync.Mutex                // by key hash; see versionLock
	localOnly      localKeys                     // in a POP, objects this node fetches alone (peers.go)
	peerBad        sync.Map                      // peer name -> time.Time until which it is not asked (peerFor)
}

// request is the state of one client request as it moves through the
// lifecycle; it becomes the access log line.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	host   string // config.HostName of the Host header
	target target // the path, normalised
	rule   *config.Rule
	key    string
	start  time.Time

	statusSent  bool         // the status line has been written
	cut         string       // why the answer ended before its last byte, after the status line; see cut
	logged      bool         // the access log line is written
	outcome     cacheOutcome // X-Cache and the access log's cache field
	detail      string       // why, for the log
	status      int
	sliceHits   int64
	sliceMisses int64
	originBytes int64 // bytes of the slices this request fetched from the origin
	peerBytes   int64 // those it fetched from another node of the POP
	sent        int64
	ttfb        time.Duration

	background bool                // a revalidation no client waits for
	feeds      []*origin.WholeFeed // whole-body feeds q reads from (attach)
	// base is the URL's key when key is one of its Vary variants
	// (vary.go), and vary the request fields the variant is keyed on,
	// which the cached fetches for q forward.
	base string
	vary []string
	auth bool // the request carries Authorization (lookupAuth)
	// fromPeer: the request came from another node of the POP (peers.go):
	// it is served locally, and its answer carries no X-Cache or
	// Cache-Status of this node.
	fromPeer bool
	holding  []*fillWatch // drop-mode fetches this request keeps going; see abandon.go
	// id is the request id (X-Request-ID: the client's, or a new one),
	// sent back, forwarded on the fetches the request makes and logged.
	id string
	// member is the origin pool member (or "peer:NAME") of the last fetch
	// this request made; set from fetch goroutines, read by the log.
	// A pointer, made when the first fetch is planned (route), so that a
	// hit allocates none; and since the request struct is copied
	// (revalidateInBackground).
	member *atomic.Pointer[string]
}

// ServeHTTP answers one client request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.SendTimeout > 0 {
		w = &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: s.SendTimeout}
	}
	q := &request{w: w, r: r, start: s.now(), fromPeer: r.Context().Value(peerCtxKey{}) != nil, id: requestID(r.Header.Get("X-Request-ID"))}
	w.Header()["X-Request-Id"] = []string{q.id} // canonical already: no key to build per request
	defer s.logRequest(q)
	defer q.letGo()
	s.active.Add(1)
	defer s.active.Add(-1)
	defer func() {
		if v := recover(); v != nil {
			s.recoverAbort(q, v)
		}
	}()
	s.intake(q)
}

// recoverAbort ends a request that panicked: http.ErrAbortHandler from a
// deliberate cut or a pass-through cut by ReverseProxy, or a bug. The
// connection is aborted so that a short answer cannot look whole.
func (s *Server) recoverAbort(q *request, v any) {
	if v != http.ErrAbortHandler {
		s.Log.Error().Interface("panic", v).Str("path", q.r.URL.Path).Msg("edge: handler panic")
		if invariants.Enabled {
			panic(v) // a violated invariant must not pass for a cut answer
		}
	}
	if q.statusSent && q.cut == "" {
		// A pass-through cut by ReverseProxy.
		reason := "origin"
		if clientGone(q.r.Context()) {
			reason = "client"
		}
		s.cut(q, reason, fmt.Errorf("edge: pass-through ended early: %v", v))
	}
	q.outcome = cacheAbort
	s.logRequest(q)
	panic(http.ErrAbortHandler)
}

// MaxURLBytes is the longest request target answered; a longer one gets
// 414. (Longer request lines and headers than http.Server.MaxHeaderBytes
// get 431 from net/http before they reach the handler.)
const MaxURLBytes = 8 << 10

// DefaultSendTimeout is the SendTimeout NewHTTPServer's callers use.
const DefaultSendTimeout = time.Minute

// NewHTTPServer returns the http.Server the edge listens with: bounded
// header reading and size, idle connections closed after a while. It sets
// no WriteTimeout, which would cut long downloads; Server.SendTimeout
// handles clients that stop reading.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// deadlineWriter gives every write to the client SendTimeout to complete.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	// An error here means the connection cannot take deadlines (a test
	// recorder): write without one.
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.ResponseWriter.Write(p)
}

// ReadFrom keeps the connection's ReadFrom, and so sendfile, within reach
// of a stored slice's send (read.go), with the same deadline.
func (d *deadlineWriter) ReadFrom(r io.Reader) (int64, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	if rf, ok := d.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(d.ResponseWriter, r)
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// config returns the configuration in force.
func (s *Server) config() *config.Config {
	if c := s.live.Load(); c != nil {
		return c
	}
	return s.Config
}

// SetConfig puts a new configuration in force for the requests that start
// from now on; requests in flight finish under the one they started with.
// Objects keep the slice size they were stored with. The listen addresses
// and the store are not changed by it: they need a restart.
func (s *Server) SetConfig(c *config.Config) {
	s.live.Store(c)
	s.noteLoaded()
	// Origins whose settings are gone lose their idle connections; those
	// kept keep their pool. Requests in flight finish on theirs.
	keep := make(map[clientKey]bool, len(c.Origins))
	keepPools := make(map[string]bool, len(c.Origins))
	for _, o := range c.Origins {
		k := clientKeyOf(o)
		k.name, k.url, k.host = "peer:"+k.name, "", ""
		keep[k] = true
		keepPools[poolKey(o)] = true
	}
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	for k, cl := range s.clients {
		if !keep[k] {
			cl.Close()
			delete(s.clients, k)
		}
	}
	for k, p := range s.pools {
		if !keepPools[k] {
			// Its health checks stop; fetches in flight finish on it.
			go p.Close()
			delete(s.pools, k)
		}
	}
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// lazy builds the server's internal state on first use, so that a Server
// literal with only the fields a test needs works.
func (s *Server) lazy() {
	s.once.Do(func() {
		s.counters = newMetrics(&s.fills, s.storeStats)
		s.counters.set.NewGauge(fmt.Sprintf(`sliceedge_build_info{version=%q,commit=%q,goversion=%q}`,
			cmp.Or(s.Version, "dev"), cmp.Or(s.Commit, "unknown"), runtime.Version()), func() float64 { return 1 })
	})
}

// metrics returns the server's counters.
func (s *Server) metrics() *metrics {
	s.lazy()
	return s.counters
}

// CacheName is this edge's member name in Cache-Status: the configured
// name, or the host name (quoted when it is not an RFC 8941 token).
func (s *Server) CacheName() string { return s.cacheName() }

func (s *Server) cacheName() string {
	if n := s.config().Name; n != "" {
		return n
	}
	s.hostOnce.Do(func() {
		h, _ := os.Hostname()
		s.hostName = cacheToken(h)
	})
	return s.hostName
}

// cacheToken writes name as an RFC 8941 token when it is one, else as a
// string; "sliceedge" when there is none.
func cacheToken(name string) string {
	if name == "" {
		return "sliceedge"
	}
	token := name[0] >= 'a' && name[0] <= 'z' || name[0] >= 'A' && name[0] <= 'Z'
	for i := 0; i < len(name) && token; i++ {
		c := name[i]
		token = c > ' ' && c < 0x7f && !strings.ContainsRune(`"(),;<=>?@[\]{}`, rune(c))
	}
	if token {
		return name
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= ' ' && c < 0x7f:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// clientKey is what a peer client is built from: origins with the same
// timeouts, across reloads, share one client and its connection pool.
type clientKey struct {
	name, url, host string
	connect, read   time.Duration
	maxHeaderBytes  int64
}

func clientKeyOf(o *config.Origin) clientKey {
	return clientKey{o.Name, o.URL.String(), o.Host, o.ConnectTimeout, o.ReadTimeout, o.MaxHeaderBytes}
}

// poolKey is what an origin's pool is built from: origins with the same
// settings, across reloads, share one pool, with its connections and its
// members' health.
func poolKey(o *config.Origin) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%v|%v|%d|%d|%d|%v", o.Name, o.Host, o.ConnectTimeout, o.ReadTimeout, o.MaxHeaderBytes, o.MaxConnections, o.MaxFails, o.FailTimeout)
	for _, u := range o.Members {
		b.WriteString("|" + u.String())
	}
	if h := o.Health; h != nil {
		fmt.Fprintf(&b, "|health %s %v %v %d %d", h.Path, h.Interval, h.Timeout, h.Healthy, h.Unhealthy)
	}
	if t := o.TLS; t != nil {
		fmt.Fprintf(&b, "|tls %q %q %q %q %s", t.CAFile, t.ServerName, t.CertFile, t.KeyFile, t.Digest)
	}
	return b.String()
}

// pool returns the pool of origin o, built on first use.
func (s *Server) pool(o *config.Origin) *origin.Pool {
	k := poolKey(o)
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	if p, ok := s.pools[k]; ok {
		return p
	}
	if s.pools == nil {
		s.pools = make(map[string]*origin.Pool)
	}
	opts := origin.PoolOptions{
		Name:    o.Name,
		Members: o.Members,
		Client: origin.Options{
			ConnectTimeout: o.ConnectTimeout,
			ReadTimeout:    o.ReadTimeout,
			MaxHeaderBytes: o.MaxHeaderBytes,
			MaxConns:       o.MaxConnections,
			Transport:      s.Transport,
		},
		Host:        o.Host,
		MaxFails:    o.MaxFails,
		FailTimeout: o.FailTimeout,
		Metrics:     s.metrics().set,
		OnChange:    s.memberChanged,
	}
	if len(opts.Members) == 0 && o.URL != nil {
		opts.Members = []*url.URL{o.URL} // an Origin built in code
	}
	if o.TLS != nil {
		opts.Client.TLS = o.TLS.Config
	}
	if h := o.Health; h != nil {
		opts.Health = &origin.HealthCheck{Path: h.Path, Interval: h.Interval, Timeout: h.Timeout, Healthy: h.Healthy, Unhealthy: h.Unhealthy}
	}
	p := origin.NewPool(opts)
	s.pools[k] = p
	return p
}

// memberChanged logs a pool member leaving or rejoining its pool.
func (s *Server) memberChanged(name, member string, up bool, why string) {
	if up {
		s.Log.Info().Str("origin", name).Str("member", member).Str("why", why).Msg("edge: origin member back in its pool")
		return
	}
	s.Log.Warn().Str("origin", name).Str("member", member).Str("why", why).
		Msg("edge: origin member out of its pool; the others take its requests (check that server; it comes back when it answers again)")
}

// OriginsReady reports whether every origin of the configuration in force
// has a member in its pool, and if not, which have none.
func (s *Server) OriginsReady() (bool, string) {
	var down []string
	for _, o := range s.config().Origins {
		if !s.pool(o).Ready() {
			down = append(down, o.Name)
		}
	}
	if len(down) > 0 {
		slices.Sort(down)
		return false, "no member of origin " + strings.Join(down, ", ") + " is healthy"
	}
	return true, ""
}

// OriginStatus lists the members of each origin of the configuration in
// force and whether each is in its pool.
func (s *Server) OriginStatus() map[string][]origin.MemberStatus {
	out := map[string][]origin.MemberStatus{}
	for _, o := range s.config().Origins {
		out[o.Name] = s.pool(o).Status()
	}
	return out
}

// storeError counts a store failure and logs it at most once a minute: a
// full disk must not flood the log, and never fails a client request.
func (s *Server) storeError(err error, what string) {
	s.metrics().storeErrors.Inc()
	now := s.now().Unix()
	last := s.lastStoreLog.Load()
	if now-last >= int64(time.Minute/time.Second) && s.lastStoreLog.CompareAndSwap(last, now) {
		s.Log.Error().Err(err).Str("op", what).Uint64("errors_total", s.metrics().storeErrors.Get()).
			Msg("edge: store failing; serving from the origin (check disk space and the store directory)")
	}
}

// errClientGone is how a request ends when its client disconnected.
var errClientGone = errors.New("edge: client went away")

func clientGone(ctx context.Context) bool { return ctx.Err() != nil }

// cut records that q's answer ends before its last byte although its
// status line went out: counted, logged with why, and in the access log.
// Once Stopping was called, every cut is the shutdown's.
func (s *Server) cut(q *request, reason string, err error) {
	if s.stopping.Load() {
		reason = "shutdown"
	}
	q.cut = reason
	s.metrics().cuts[reason].Inc()
	ev := s.Log.Warn()
	if reason == "client" {
		ev = s.Log.Debug() // the client's own doing, and common
	}
	ev.Err(err).Str("key", q.key).Str("reason", reason).Int("status", q.status).Int64("sent", q.sent).
		Msg("edge: answer cut short after its status line")
}

// Active returns the number of client requests being handled now.
func (s *Server) Active() int64 { return s.active.Load() }

// Stopping tells the server that the process is stopping: answers cut from
// now on (when the listeners' connections are closed) are counted and
// logged as the shutdown's.
func (s *Server) Stopping() { s.stopping.Store(true) }

// CutTotal returns how many answers were cut short, by reason.
func (s *Server) CutTotal() map[string]uint64 {
	out := map[string]uint64{}
	for k, c := range s.metrics().cuts {
		out[k] = c.Get()
	}
	return out
}

// InFlight returns the number of slices being filled from origins now,
// plus the origin fetches still running: a failed fetch counts its error
// after its fills are gone, so a test that reads the counters once this
// is 0 sees every outcome.
func (s *Server) InFlight() int { return s.fills.InFlight() + int(s.fetches.Load()) }

// Drain waits until no origin fill is in flight, or ctx ends. Call it after
// the listeners stopped and before closing the store.
func (s *Server) Drain(ctx context.Context) error {
	for s.fills.Busy()+int(s.fetches.Load()) > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("edge: %d slice fills still in flight: %w", s.fills.InFlight(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
