// Package edge is sliceedge's HTTP handler. For every GET or HEAD of a
// cacheable object it looks up the object's meta (discovering it with the
// first ranged origin fetch when unknown, revalidating it once per object
// when stale), plans the slices the answer needs, reads stored ones from the
// store and fetches only the missing ones, collapsed per slice across
// concurrent requests, and streams the answer (200, 206, multipart/byteranges,
// 304, 416) while the store fills. Everything it does not cache passes
// through to the origin unchanged.
package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"

	"github.com/sliceedge/sliceedge/config"
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
	// ReadSliceRange reads bytes [off, off+n) of slice i, verifying only
	// the checksums of the chunks they overlap: the hit path.
	ReadSliceRange(m *segstore.Meta, i, off, n int64, dst []byte) ([]byte, error)
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
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Transport carries origin traffic; nil means one tuned transport per
	// origin, with that origin's timeouts.
	Transport http.RoundTripper
	// SendTimeout bounds how long one write of response bytes may wait
	// for a client that does not read (a slow or stalled reader); the
	// request then ends, and its origin fills go on for the store. 0
	// means no limit. Unlike http.Server.WriteTimeout it does not bound a
	// whole response, so a long download at a sane rate is not cut.
	SendTimeout time.Duration

	fills    origin.Fills
	writes   *semaphore.Weighted // bytes of completed slices queued for the store; see storeFill
	lookups  singleflight.Group  // collapses discovery and revalidation per cache key
	bufs     sync.Pool           // *[]byte, slice-sized read buffers, within readMem
	pieces   sync.Pool           // *[]byte, pieceSize buffers
	readMem  atomic.Int64        // bytes of slice-sized read buffers in use; see sendStored
	passes   passMemo
	watches  sync.Map   // *origin.Fill or *origin.WholeFeed -> *fillWatch of its drop-mode fetch; see abandon.go
	clientMu sync.Mutex // protects clients
	clients  map[clientKey]*origin.Client

	live         atomic.Pointer[config.Config] // set by SetConfig; nil means Config
	once         sync.Once                     // builds metricsSet and writes; see lazy()
	metricsSet   *metrics                      // see m()
	lastStoreLog atomic.Int64                  // unix seconds of the last store error logged
	purged       purgeLog                      // recent purges: an answer overtaken by one does not store its meta
	hostOnce     sync.Once                     // sets hostName
	hostName     string                        // the host name as a Cache-Status member; see cacheName
	active       atomic.Int64                  // requests being handled; see Active
	stopping     atomic.Bool                   // set by Stopping: cuts from now on are the shutdown's
}

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
	// Origins whose settings are gone lose their idle connections; those
	// kept keep their pool. Requests in flight finish on theirs.
	keep := make(map[clientKey]bool, len(c.Origins))
	for _, o := range c.Origins {
		keep[clientKeyOf(o)] = true
	}
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	for k, cl := range s.clients {
		if !keep[k] {
			cl.Close()
			delete(s.clients, k)
		}
	}
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

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// clientKey is what an origin client is built from: origins with the same
// settings, across reloads, share one client and its connection pool.
type clientKey struct {
	name, url, host string
	connect, read   time.Duration
	maxHeaderBytes  int64
}

func clientKeyOf(o *config.Origin) clientKey {
	return clientKey{o.Name, o.URL.String(), o.Host, o.ConnectTimeout, o.ReadTimeout, o.MaxHeaderBytes}
}

func (s *Server) client(o *config.Origin) *origin.Client {
	k := clientKeyOf(o)
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	if c, ok := s.clients[k]; ok {
		return c
	}
	if s.clients == nil {
		s.clients = make(map[clientKey]*origin.Client)
	}
	c := origin.NewClient(origin.Options{
		ConnectTimeout: o.ConnectTimeout,
		ReadTimeout:    o.ReadTimeout,
		MaxHeaderBytes: o.MaxHeaderBytes,
		Transport:      s.Transport,
	})
	s.clients[k] = c
	return c
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

	wroteBody   bool   // the status line has been written
	cut         string // why the answer ended before its last byte, after the status line; see cut
	logged      bool
	cacheStatus string // HIT, MISS, PARTIAL, PASS, ERROR
	detail      string // why, for Cache-Status and the log
	status      int
	sliceHits   int64
	sliceMisses int64
	originBytes int64 // bytes of the slices this request fetched from the origin
	sent        int64
	ttfb        time.Duration

	background bool         // a revalidation no client waits for
	holding    []*fillWatch // drop-mode fetches this request keeps going; see abandon.go
	rangeEnd   int64        // end of the range copyRange is sending
	ahead      *storedRead  // the next stored slice, being read; see startReadAhead
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

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// ServeHTTP answers one client request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.SendTimeout > 0 {
		w = &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: s.SendTimeout}
	}
	q := &request{w: w, r: r, start: s.now()}
	defer s.logRequest(q)
	defer q.letGo()
	defer func() {
		if q.ahead != nil {
			s.dropRead(q.ahead)
		}
	}()
	s.active.Add(1)
	defer s.active.Add(-1)
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				s.Log.Error().Interface("panic", v).Str("path", r.URL.Path).Msg("edge: handler panic")
			}
			if q.wroteBody && q.cut == "" {
				// A pass-through cut by ReverseProxy.
				reason := "origin"
				if clientGone(r.Context()) {
					reason = "client"
				}
				s.cut(q, reason, fmt.Errorf("edge: pass-through ended early: %v", v))
			}
			q.cacheStatus = "ABORT"
			s.logRequest(q)
			panic(http.ErrAbortHandler)
		}
	}()
	cfg := s.config()
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		s.refuseBody(q)
	}
	if len(r.RequestURI) > MaxURLBytes {
		q.cacheStatus, q.detail = "ERROR", "URI too long"
		s.plainError(q, http.StatusRequestURITooLong, "fwd=bypass; detail=uri-too-long", "sliceedge: the request URL is too long\n")
		return
	}
	q.host = config.HostName(r.Host)
	tgt, err := parseTarget(r.URL)
	switch {
	case q.host == "":
		err = errNoHost
	case err == nil:
		q.target = tgt
		q.rule = cfg.Rule(q.host, tgt.path)
	}
	switch {
	case err != nil:
		s.m().limitTrip("bad_request")
		q.cacheStatus, q.detail = "ERROR", err.Error()
		s.plainError(q, http.StatusBadRequest, "fwd=bypass; detail=bad-request", "sliceedge: bad request: "+err.Error()+"\n")
		return
	case q.rule == nil && !cfg.AcceptsHost(q.host):
		// Sent to the wrong server: no rule serves this host (RFC 9110 §15.5.20).
		s.m().limitTrip("unknown_host")
		q.cacheStatus, q.detail = "ERROR", "no rule for the host"
		s.plainError(q, http.StatusMisdirectedRequest, "fwd=bypass; detail=unknown-host", "sliceedge: this edge serves no site of that host name\n")
		return
	case q.rule == nil:
		// No origin is configured for this path: there is nowhere to go.
		q.cacheStatus, q.detail = "ERROR", "no rule"
		s.plainError(q, http.StatusNotFound, "fwd=bypass; detail=no-rule", "sliceedge: no rule in the configuration matches this path\n")
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		s.pass(q, "method")
		return
	case r.Header.Get("Authorization") != "":
		s.pass(q, "authorization")
		return
	case r.Header.Get("Cookie") != "":
		s.pass(q, "cookie")
		return
	}
	q.key = keyFor(keyHost(q.host, r.Host, r.TLS != nil), q.target.escaped, r.URL.RawQuery, q.rule)
	if s.passes.active(q.key, s.now()) {
		s.pass(q, "uncacheable")
		return
	}
	s.serveCached(q)
}

// refuseBody keeps a request's body from holding its connection: the
// edge forwards no body of a GET or HEAD (RFC 9110 §9.3.1: it has no
// meaning), so it answers at once and closes the connection rather than
// let net/http drain a body that may never arrive, with no deadline. A
// request with Transfer-Encoding also closes its connection after the
// answer: it may have carried a Content-Length too, which net/http drops
// before the handler sees it, and such a message must not leave the
// connection open (RFC 9112 §6.1).
func (s *Server) refuseBody(q *request) {
	q.w.Header().Set("Connection", "close")
	if q.r.Method == http.MethodGet || q.r.Method == http.MethodHead {
		s.m().limitTrip("request_body")
		// Reads from the client end now: what is left of the body is never
		// read, not even by net/http after the answer.
		_ = http.NewResponseController(q.w).SetReadDeadline(time.Now())
		q.r.Body = http.NoBody
		q.r.ContentLength = 0
	}
}

// keyFor is the cache key of path escaped (a target's) on host (keyHost)
// with query raw under rule: host + path + the query as the rule says.
func keyFor(host, escaped, raw string, rule *config.Rule) string {
	key := host + escaped
	if q := rule.Query.Normalize(raw); q != "" {
		key += "?" + q
	}
	return key
}

// originURL maps a client request onto the rule's origin: the origin's
// base path, then the request's normalised path (which cannot climb out
// of it), then the query as sent.
func originURL(q *request, o *config.Origin) string {
	u := *o.URL
	base := strings.TrimSuffix(o.URL.EscapedPath(), "/")
	p, err := url.PathUnescape(base + q.target.escaped)
	if err != nil {
		p = o.URL.Path + q.target.path
	}
	u.Path, u.RawPath = p, base+q.target.escaped
	u.RawQuery = q.r.URL.RawQuery
	return u.String()
}

// passMemo remembers objects found uncacheable, so that for a while their
// requests go straight to the origin instead of probing for slices
// (Varnish calls this hit-for-pass).
type passMemo struct {
	mu sync.Mutex // protects m
	m  map[string]time.Time
}

const passMemoTTL = time.Minute

func (p *passMemo) add(key string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) > 100_000 {
		p.m = make(map[string]time.Time) // bound memory; forgetting is safe
	}
	p.m[key] = now.Add(passMemoTTL)
}

func (p *passMemo) forget(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, key)
}

func (p *passMemo) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m = nil
}

func (p *passMemo) active(key string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	until, ok := p.m[key]
	if ok && now.After(until) {
		delete(p.m, key)
		return false
	}
	return ok
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
	s.m().cuts[reason].Inc()
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
	for k, c := range s.m().cuts {
		out[k] = c.Get()
	}
	return out
}

// InFlight returns the number of slices being filled from origins now.
func (s *Server) InFlight() int { return s.fills.InFlight() }

// Drain waits until no origin fill is in flight, or ctx ends. Call it after
// the listeners stopped and before closing the store.
func (s *Server) Drain(ctx context.Context) error {
	for s.fills.InFlight() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("edge: %d slice fills still in flight: %w", s.fills.InFlight(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
