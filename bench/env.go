package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// env is what a run talks to: the target, the origin's control endpoints,
// and the in-process servers to tear down when the run started them.
type env struct {
	target string        // base URL of the edge, no trailing slash
	client *http.Client  // to the target
	origin *originClient // the origin's control endpoints
	close  func()        // tears down what newEnv started

	// The in-process edge and its store; nil for an external target.
	edge  *edge.Server
	store *segstore.Store
}

// inProcessConfig is the in-process edge's configuration: one rule with
// 1 MiB slices in front of the in-process origin, and a budget no run
// reaches, so nothing is evicted while a workload measures. %q are the
// store directory and the origin URL.
const inProcessConfig = `
listen: 127.0.0.1:0
store:
  dir: %q
  max_bytes: 1TiB
origins:
  default:
    url: %q
    read_timeout: 30s
rules:
  - match: /
    origin: default
    slice_size: 1MiB
`

// newEnv connects to cfg's target and origin, or starts an in-process
// origin and edge on loopback when cfg.Target is "".
func newEnv(ctx context.Context, cfg Config) (*env, error) {
	e := &env{client: newClient(cfg.Connections)}
	var teardown []func() // run in reverse order
	e.close = func() {
		for i := len(teardown) - 1; i >= 0; i-- {
			teardown[i]()
		}
	}
	teardown = append(teardown, e.client.CloseIdleConnections)
	fail := func(err error) (*env, error) {
		e.close()
		return nil, err
	}

	if cfg.Target != "" {
		e.target = cfg.Target
		e.origin = newOriginClient(cfg.Origin)
		teardown = append(teardown, e.origin.c.CloseIdleConnections)
		if _, err := e.origin.stats(ctx); err != nil {
			return fail(fmt.Errorf("origin %s: %w (is it `sliceedge origin`, which serves /.origin/?)", cfg.Origin, err))
		}
		return e, nil
	}

	o, err := origintest.Start("127.0.0.1:0")
	if err != nil {
		return fail(fmt.Errorf("start the in-process origin: %w", err))
	}
	teardown = append(teardown, o.Close)
	e.origin = newOriginClient(o.URL())
	teardown = append(teardown, e.origin.c.CloseIdleConnections)

	dir, err := os.MkdirTemp("", "sliceedge-bench-")
	if err != nil {
		return fail(fmt.Errorf("create the in-process store directory: %w", err))
	}
	teardown = append(teardown, func() { _ = os.RemoveAll(dir) })
	ecfg, err := config.Parse("bench (in-process edge)", fmt.Appendf(nil, inProcessConfig, dir, o.URL()))
	if err != nil {
		return fail(fmt.Errorf("in-process edge configuration: %w", err))
	}
	st, err := segstore.Open(segstore.Options{Dir: dir, MaxBytes: ecfg.Store.MaxBytes, CacheBytes: ecfg.Store.MemoryCache})
	if err != nil {
		return fail(fmt.Errorf("open the in-process store: %w", err))
	}
	teardown = append(teardown, func() { _ = st.Close() })
	h := &edge.Server{Config: ecfg, Store: st, Log: zerolog.Nop()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(fmt.Errorf("listen for the in-process edge: %w", err))
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() { _ = hs.Serve(ln) }() // ends with ErrServerClosed at teardown
	teardown = append(teardown, func() {
		_ = hs.Close()
		// Fills outlive their clients; let them land before the store closes.
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Drain(dctx)
	})
	e.target = "http://" + ln.Addr().String()
	e.edge, e.store = h, st
	return e, nil
}

// newClient is an HTTP client for load: no proxy, no compression (bodies
// are compared byte for byte), a connection per client kept alive, and no
// redirects followed (a redirect is an error in a benchmark).
func newClient(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		DisableCompression:    true,
		ReadBufferSize:        64 << 10,
		WriteBufferSize:       4 << 10,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// originClient talks to an origintest server's control endpoints
// (origintest.Server.ControlHandler).
type originClient struct {
	base string // origin base URL, no trailing slash
	c    *http.Client
}

func newOriginClient(base string) *originClient {
	return &originClient{base: strings.TrimSuffix(base, "/"), c: newClient(4)}
}

// do sends one control request; out, when not nil, receives the JSON answer.
func (o *originClient) do(ctx context.Context, method, endpoint, path string, in, out any) error {
	target := o.base + origintest.ControlPrefix + endpoint
	if path != "" {
		target += "?path=" + url.QueryEscape(path)
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("origin control %s %s: %w", method, endpoint, err)
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("origin control %s %s: %w", method, endpoint, err)
	}
	resp, err := o.c.Do(req)
	if err != nil {
		return fmt.Errorf("origin control %s %s: %w", method, endpoint, err)
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("origin control %s %s: reading the answer: %w", method, endpoint, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("origin control %s %s: status %d: %s", method, endpoint, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if out != nil {
		if err := json.Unmarshal(msg, out); err != nil {
			return fmt.Errorf("origin control %s %s: %w", method, endpoint, err)
		}
	}
	return nil
}

func (o *originClient) stats(ctx context.Context) (origintest.Stats, error) {
	var st origintest.Stats
	err := o.do(ctx, http.MethodGet, "stats", "", nil, &st)
	return st, err
}

// settledStats waits until the origin's counters stop moving (fills of the
// edge may outlive the client requests that started them), for at most a
// few seconds, and returns them.
func (o *originClient) settledStats(ctx context.Context) (origintest.Stats, error) {
	prev, err := o.stats(ctx)
	for range 60 {
		if err != nil {
			return prev, err
		}
		select {
		case <-ctx.Done():
			return prev, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		var cur origintest.Stats
		if cur, err = o.stats(ctx); err == nil && cur == prev {
			return cur, nil
		}
		prev = cur
	}
	return prev, err
}

func (o *originClient) setMode(ctx context.Context, path string, m origintest.Mode) error {
	return o.do(ctx, http.MethodPut, "mode", path, m, nil)
}

func (o *originClient) clearMode(ctx context.Context, path string) error {
	return o.do(ctx, http.MethodDelete, "mode", path, nil, nil)
}

func (o *originClient) object(ctx context.Context, path string) (origintest.ObjectInfo, error) {
	var info origintest.ObjectInfo
	err := o.do(ctx, http.MethodGet, "object", path, nil, &info)
	return info, err
}

// versions maps ETags to versions of the origin's objects. Versions only
// grow, so the highest one known per path bounds every body seen before.
type versions struct {
	origin *originClient
	mu     sync.Mutex     // protects latest
	latest map[string]int // highest version seen per path; absent means 1
}

func newVersions(o *originClient) *versions {
	return &versions{origin: o, latest: make(map[string]int)}
}

func (vs *versions) known(path string) int {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if v, ok := vs.latest[path]; ok {
		return v
	}
	return 1
}

// current asks the origin for the version of path now.
func (vs *versions) current(ctx context.Context, path string) (int, error) {
	info, err := vs.origin.object(ctx, path)
	if err != nil {
		return 0, err
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.latest[path] = max(vs.latest[path], info.Version)
	return info.Version, nil
}

// named returns the version of path whose ETag is etag, or 0 when none is
// (no ETag, or one the origin never sent). A weak ETag a proxy made from
// a strong one still names the version.
func (vs *versions) named(ctx context.Context, path, etag string) int {
	etag = strings.TrimPrefix(etag, "W/")
	if etag == "" {
		return 0
	}
	hi := vs.known(path)
	for v := hi; v >= 1; v-- {
		if origintest.ETag(path, v) == etag {
			return v
		}
	}
	cur, err := vs.current(ctx, path)
	if err != nil {
		return 0
	}
	for v := cur; v > hi; v-- {
		if origintest.ETag(path, v) == etag {
			return v
		}
	}
	return 0
}

// errStop ends a worker: its request stream is exhausted.
var errStop = errors.New("bench: no more requests")
