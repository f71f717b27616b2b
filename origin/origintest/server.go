package origintest

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// logSize is how many requests LastRequests remembers.
const logSize = 256

// chunkSize is the size of the pooled buffers bodies are generated into.
const chunkSize = 64 << 10

// Server is the test origin. Create one with [New] (to serve its
// [Server.Handler] yourself), [Start] or [NewTest]. All methods are safe for
// concurrent use, also while requests are being served.
type Server struct {
	mode atomic.Pointer[Mode] // global mode; never nil

	mu      sync.Mutex        // protects objects
	objects map[string]*entry // by path; see entry

	requests  atomic.Int64 // every request the handler saw, known path or not
	bodyBytes atomic.Int64 // object bytes written in 200 and 206 bodies

	logMu   sync.Mutex      // protects log and logNext
	log     []RequestRecord // ring of the last logSize requests
	logNext int             // total requests recorded; log[logNext%logSize] is next

	bufs sync.Pool // of *[]byte, chunkSize long

	closeMu  sync.Mutex     // protects closed and the Add side of inflight
	closed   bool           // set by Close; later requests get 503
	inflight sync.WaitGroup // running handlers, waited for by Close
	done     chan struct{}  // closed by Close to cut short sleeps

	httpServer *http.Server // nil unless started by Start
	url        string       // "" unless started by Start
}

// entry is what the server knows about one path: the object, its mode and
// its counters. Entries exist for registered and synthetic objects once
// touched, and for paths given a mode; requests to other paths are counted
// only in the server totals.
type entry struct {
	requests  atomic.Int64 // requests to this path
	bodyBytes atomic.Int64 // object bytes written in bodies for this path

	mu       sync.Mutex // protects the fields below
	isObject bool       // registered by Add or named with a size
	size     int64
	version  int
	flapSeen int   // requests since the last flap, while FlapEvery > 0
	mode     *Mode // nil: the server's mode
}

// RequestRecord is one request as the origin received it.
// The named headers are copied as sent ("" when absent; the first line
// when repeated); Header has them all.
type RequestRecord struct {
	Method            string      // GET, HEAD, ...
	Path              string      // URL path, without the query
	Range             string      // Range
	IfMatch           string      // If-Match
	IfNoneMatch       string      // If-None-Match
	IfRange           string      // If-Range
	IfModifiedSince   string      // If-Modified-Since
	IfUnmodifiedSince string      // If-Unmodified-Since
	Header            http.Header // all request headers, a copy
}

// New returns a server that is not listening; serve [Server.Handler] to use
// it. [Server.URL] is "" and [Server.Close] only stops the handler.
func New() *Server {
	s := &Server{
		objects: make(map[string]*entry),
		done:    make(chan struct{}),
	}
	s.mode.Store(&Mode{})
	s.bufs.New = func() any {
		b := make([]byte, chunkSize)
		return &b
	}
	return s
}

// Start returns a server listening on addr ("127.0.0.1:0" picks a port).
func Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("origintest: listen: %w", err)
	}
	s := New()
	s.url = "http://" + ln.Addr().String()
	s.httpServer = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() {
		// ErrServerClosed after Close; any other error also ends serving,
		// and the test sees it as a failed request.
		_ = s.httpServer.Serve(ln)
	}()
	return s, nil
}

// NewTest starts a server on 127.0.0.1:0 and closes it when tb's test ends.
func NewTest(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		tb.Fatalf("origintest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// URL is the server's base URL, "http://127.0.0.1:port", without a trailing
// slash; "" for a server made by [New].
func (s *Server) URL() string { return s.url }

// Handler serves the objects, and the control endpoints under
// [ControlPrefix] (see [Server.ControlHandler]); use it to serve a [New]
// server yourself.
func (s *Server) Handler() http.Handler {
	control := s.ControlHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isControl(r) {
			control.ServeHTTP(w, r)
			return
		}
		s.serveHTTP(w, r)
	})
}

// Close stops the listener (if any), cuts short latency, stalls and pacing,
// and waits for running handlers to return. Later requests get 503.
// Close may be called more than once.
func (s *Server) Close() {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.closeMu.Unlock()
	if s.httpServer != nil {
		_ = s.httpServer.Close()
	}
	s.inflight.Wait()
}

// enter registers a running handler; false once the server is closed.
func (s *Server) enter() bool {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

// cleanPath gives every path a leading slash, as in a request URL.
func cleanPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "/" + p
	}
	return p
}

// lookup returns the entry of path, creating it for a synthetic object or
// when create is set; nil otherwise.
func (s *Server) lookup(p string, create bool) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.objects[p]; e != nil {
		return e
	}
	size, synthetic := SyntheticSize(path.Base(p))
	if !synthetic && !create {
		return nil
	}
	e := &entry{isObject: synthetic, size: size, version: 1}
	s.objects[p] = e
	return e
}

// Add registers an object of size bytes at path; its name for [Fill] is
// path (with a leading slash). Registering a path again changes its size,
// keeps its counters and mode, and bumps its version if the size changed.
func (s *Server) Add(path string, size int64) {
	if size < 0 {
		panic("origintest: Add with negative size")
	}
	e := s.lookup(cleanPath(path), true)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.isObject && e.size != size {
		e.version++
	}
	e.isObject, e.size = true, size
}

// object returns the entry of an existing object, panicking otherwise:
// changing an object that does not exist is a mistake in the test.
func (s *Server) object(path string) *entry {
	e := s.lookup(cleanPath(path), false)
	if e == nil {
		panic(fmt.Sprintf("origintest: no object %q", path))
	}
	e.mu.Lock()
	ok := e.isObject
	e.mu.Unlock()
	if !ok {
		panic(fmt.Sprintf("origintest: no object %q", path))
	}
	return e
}

// SetVersion sets the version of the object at path, which changes its
// bytes, ETag and Last-Modified. It panics if there is no such object.
func (s *Server) SetVersion(path string, version int) {
	e := s.object(path)
	e.mu.Lock()
	e.version = version
	e.mu.Unlock()
}

// Bump increments the version of the object at path and returns the new
// version. It panics if there is no such object.
func (s *Server) Bump(path string) int {
	e := s.object(path)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.version++
	return e.version
}

// Object reports the size and current version of the object at path.
func (s *Server) Object(path string) (size int64, version int, ok bool) {
	e := s.lookup(cleanPath(path), false)
	if e == nil {
		return 0, 0, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.isObject {
		return 0, 0, false
	}
	return e.size, e.version, true
}

// SetMode sets the mode of every path that has no mode of its own. It panics
// on an unknown LieContentRange.
func (s *Server) SetMode(m Mode) { s.mode.Store(m.clone()) }

// SetPathMode sets the mode of one path; it replaces the server's mode for
// that path entirely (fields are not merged).
func (s *Server) SetPathMode(path string, m Mode) {
	e := s.lookup(cleanPath(path), true)
	e.mu.Lock()
	e.mode = m.clone()
	e.mu.Unlock()
}

// ClearPathMode makes path use the server's mode again.
func (s *Server) ClearPathMode(path string) {
	if e := s.lookup(cleanPath(path), false); e != nil {
		e.mu.Lock()
		e.mode = nil
		e.mu.Unlock()
	}
}

// Requests is the number of requests the handler received, for any path
// and method, including ones answered 404; control requests (under
// [ControlPrefix]) are not counted.
func (s *Server) Requests() int64 { return s.requests.Load() }

// BodyBytes is the number of object bytes written in response bodies (200
// and 206), as accepted by the connection; error bodies are not counted.
func (s *Server) BodyBytes() int64 { return s.bodyBytes.Load() }

// PathRequests is the number of requests received for path (0 for a path
// that is not an object and has no mode).
func (s *Server) PathRequests(path string) int64 {
	if e := s.lookup(cleanPath(path), false); e != nil {
		return e.requests.Load()
	}
	return 0
}

// PathBodyBytes is the number of object bytes written in bodies for path.
func (s *Server) PathBodyBytes(path string) int64 {
	if e := s.lookup(cleanPath(path), false); e != nil {
		return e.bodyBytes.Load()
	}
	return 0
}

// ResetCounters zeroes every counter and forgets the recorded requests.
// Versions, modes and flap progress are kept.
func (s *Server) ResetCounters() {
	s.requests.Store(0)
	s.bodyBytes.Store(0)
	s.mu.Lock()
	for _, e := range s.objects {
		e.requests.Store(0)
		e.bodyBytes.Store(0)
	}
	s.mu.Unlock()
	s.logMu.Lock()
	s.log, s.logNext = nil, 0
	s.logMu.Unlock()
}

// LastRequests returns the last requests received (at most 256), oldest
// first.
func (s *Server) LastRequests() []RequestRecord {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	i := 0
	if s.logNext > logSize {
		i = s.logNext % logSize
	}
	out := make([]RequestRecord, 0, len(s.log))
	out = append(out, s.log[i:]...)
	out = append(out, s.log[:i]...)
	for j := range out {
		out[j].Header = out[j].Header.Clone() // the caller may change it
	}
	return out
}

func (s *Server) record(r *http.Request) {
	rec := RequestRecord{
		Method:            r.Method,
		Path:              r.URL.Path,
		Range:             r.Header.Get("Range"),
		IfMatch:           r.Header.Get("If-Match"),
		IfNoneMatch:       r.Header.Get("If-None-Match"),
		IfRange:           r.Header.Get("If-Range"),
		IfModifiedSince:   r.Header.Get("If-Modified-Since"),
		IfUnmodifiedSince: r.Header.Get("If-Unmodified-Since"),
		Header:            r.Header.Clone(),
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if len(s.log) < logSize {
		s.log = append(s.log, rec)
	} else {
		s.log[s.logNext%logSize] = rec
	}
	s.logNext++
}

// SyntheticSize reports the size named at the start of name (a path's last
// element): digits, optionally followed by KiB, MiB, GiB or TiB, followed by
// the end of name or by '.', '-' or '_'. "1GiB.mp4" is 1<<30 bytes,
// "64MiB-patch.bin" 64<<20, "12345.bin" 12345, "0" 0.
func SyntheticSize(name string) (size int64, ok bool) {
	i := 0
	for i < len(name) && name[i] >= '0' && name[i] <= '9' {
		i++
	}
	if i == 0 || i > 18 { // 18 digits cannot overflow an int64
		return 0, false
	}
	for _, c := range name[:i] {
		size = size*10 + int64(c-'0')
	}
	rest := name[i:]
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}} {
		if strings.HasPrefix(rest, u.suffix) {
			if size > math.MaxInt64>>u.shift {
				return 0, false
			}
			size <<= u.shift
			rest = rest[len(u.suffix):]
			break
		}
	}
	if rest != "" && !strings.ContainsRune(".-_", rune(rest[0])) {
		return 0, false
	}
	return size, true
}
