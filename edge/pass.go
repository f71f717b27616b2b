package edge

// Pass-through: requests the edge does not cache (other methods,
// credentials, objects found uncacheable) go to the origin as the header
// policy allows, and the answer streams back as it came. An unsafe method
// that succeeds invalidates what it may have changed (RFC 9111 §4.4).

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/sliceedge/sliceedge/config"
)

// pass forwards a request the edge does not cache to the origin unchanged
// and streams the answer back.
func (s *Server) pass(q *request, why string) {
	if clientDirectives(q.r.Header, false).onlyIfCached {
		s.notCached(q) // a pass-through always asks the origin
		return
	}
	q.outcome, q.detail = cachePass, why
	o := q.rule.Origin
	rec := &recorder{ResponseWriter: q.w, q: q, s: s}
	member := s.pool(o).Pick() // a pass-through is not retried: it may not be idempotent, and its body streams
	target, err := url.Parse(member.URL(originTarget(q)))
	if err != nil {
		s.plainError(q, http.StatusBadRequest, cacheStatus{fwd: "bypass", detail: "bad-url"}, "sliceedge: the request URL cannot be mapped onto the origin\n")
		return
	}
	s.metrics().originRequest("pass")
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = o.Host // "" sends the origin URL's host, as slice fetches do
			// ReverseProxy has removed the hop-by-hop headers (keeping an
			// Upgrade and Te: trailers it can carry) and Forwarded and
			// X-Forwarded-*; the policy (headers.go) does the rest.
			for _, k := range spoofable {
				pr.Out.Header.Del(k)
			}
			s.setForwarding(q, pr.Out.Header)
		},
		Transport:     member.Transport(),
		FlushInterval: -1, // stream as bytes arrive
		ModifyResponse: func(resp *http.Response) error {
			switch resp.StatusCode {
			case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
				member.Report(q.r.Context(), fmt.Errorf("status %d", resp.StatusCode))
			default:
				member.Report(q.r.Context(), nil)
			}
			if unsafeMethod(q.r.Method) && resp.StatusCode >= 200 && resp.StatusCode < 400 {
				s.invalidate(q, resp)
			}
			dropEdgeFields(resp.Header, q.rule)
			s.tag(q, resp.Header, cacheStatus{fwd: passForward(why), fwdStatus: resp.StatusCode, reason: why})
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(r.Context().Err(), errClientGone) || r.Context().Err() != nil {
				return
			}
			member.Report(r.Context(), err)
			s.Log.Warn().Err(err).Str("url", target.String()).Msg("edge: pass-through to origin failed")
			s.plainError(q, http.StatusBadGateway, cacheStatus{fwd: passForward(why), detail: "origin-error"}, "sliceedge: the origin could not be reached; retry later\n")
		},
	}
	rp.ServeHTTP(rec, q.r)
}

// passForward is the Cache-Status fwd value for a request passed through
// for reason why (RFC 9211 §2.2): the method, a request the edge does not
// cache by configuration (credentials), or an answer found uncacheable.
func passForward(why string) string {
	switch why {
	case "method":
		return "method"
	case "authorization", "cookie":
		return "bypass"
	}
	return "uri-miss"
}

// unsafeMethod: a method that may change the resource (RFC 9110 §9.2.1).
func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// invalidate drops the stored objects a successful unsafe request may have
// changed: its own URL, and the URLs in Location and Content-Location when
// they are on the same host (RFC 9111 §4.4).
func (s *Server) invalidate(q *request, resp *http.Response) {
	self := *q.r.URL
	urls := []*url.URL{&self}
	for _, h := range []string{"Location", "Content-Location"} {
		if v := resp.Header.Get(h); v != "" {
			if u, err := q.r.URL.Parse(v); err == nil && (u.Host == "" || config.HostName(u.Host) == q.host) {
				urls = append(urls, u)
			}
		}
	}
	for _, u := range urls {
		if u.Host == "" {
			u.Host = q.r.Host
		}
		key, err := s.urlKey(u)
		if err != nil {
			continue // no rule caches it
		}
		s.purged.add(key, false)
		if err := s.Store.Purge(key); err != nil {
			s.storeError(err, "invalidate after "+q.r.Method)
		}
		s.purgeVariants(key) // every Vary variant of it too
		s.passes.forget(key)
	}
}

// relay sends an origin answer the edge does not slice (404, 500, a
// redirect) to the client as it came.
func (s *Server) relay(q *request, resp *http.Response, why string) {
	defer resp.Body.Close()
	q.outcome, q.detail = cachePass, why
	h := q.w.Header()
	for k, vv := range resp.Header { // origin.Fetch took out the hop-by-hop ones
		h[k] = vv
	}
	dropEdgeFields(h, q.rule)
	s.tag(q, h, cacheStatus{fwd: "miss", fwdStatus: resp.StatusCode})
	q.status = resp.StatusCode
	q.w.WriteHeader(resp.StatusCode)
	q.statusSent = true
	q.markFirstByte(s.now())
	if q.r.Method == http.MethodHead {
		return
	}
	n, err := io.Copy(q.w, resp.Body)
	q.sent += n
	if err != nil {
		reason := "origin"
		if clientGone(q.r.Context()) {
			reason = "client"
		}
		s.cut(q, reason, err)
		panic(http.ErrAbortHandler) // a short body must not look whole
	}
}

// recorder notes what a pass-through sent, for the access log.
type recorder struct {
	http.ResponseWriter
	q *request
	s *Server
}

func (r *recorder) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		r.q.status = code
		r.q.statusSent = true
		r.q.markFirstByte(r.s.now())
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.q.statusSent {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(p)
	r.q.sent += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

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
