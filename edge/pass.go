package edge

import (
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"

	"github.com/sliceedge/sliceedge/config"
)

// pass forwards a request the edge does not cache to the origin unchanged
// and streams the answer back.
func (s *Server) pass(q *request, why string) {
	q.cacheStatus, q.detail = "PASS", why
	o := q.rule.Origin
	rec := &recorder{ResponseWriter: q.w, q: q, s: s}
	target, err := url.Parse(originURL(q, o))
	if err != nil {
		s.plainError(q, http.StatusBadRequest, "fwd=bypass; detail=bad-url", "sliceedge: the request URL cannot be mapped onto the origin\n")
		return
	}
	s.m().originRequest("pass")
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
		Transport:     s.client(o).Transport(),
		FlushInterval: -1, // stream as bytes arrive
		ModifyResponse: func(resp *http.Response) error {
			if unsafeMethod(q.r.Method) && resp.StatusCode >= 200 && resp.StatusCode < 400 {
				s.invalidate(q, resp)
			}
			resp.Header.Set("X-Cache", "PASS")
			s.addCacheStatus(resp.Header, "fwd="+passForward(why)+"; fwd-status="+strconv.Itoa(resp.StatusCode)+`; detail="`+sanitize(why)+`"`)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(r.Context().Err(), errClientGone) || r.Context().Err() != nil {
				return
			}
			s.Log.Warn().Err(err).Str("url", target.String()).Msg("edge: pass-through to origin failed")
			s.plainError(q, http.StatusBadGateway, "fwd="+passForward(why)+"; detail=origin-error", "sliceedge: the origin could not be reached; retry later\n")
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
		s.passes.forget(key)
	}
}

// relay sends an origin answer the edge does not slice (404, 500, a
// redirect) to the client as it came.
func (s *Server) relay(q *request, resp *http.Response, why string) {
	defer resp.Body.Close()
	q.cacheStatus, q.detail = "PASS", why
	h := q.w.Header()
	for k, vv := range resp.Header { // origin.Fetch took out the hop-by-hop ones
		h[k] = vv
	}
	h.Set("X-Cache", "PASS")
	s.addCacheStatus(h, "fwd=miss; fwd-status="+strconv.Itoa(resp.StatusCode))
	q.status = resp.StatusCode
	q.w.WriteHeader(resp.StatusCode)
	q.wroteBody = true
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

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c > 0x7e {
			b[i] = '_'
		}
	}
	return string(b)
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
		r.q.wroteBody = true
		r.q.markFirstByte(r.s.now())
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.q.wroteBody {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(p)
	r.q.sent += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// logRequest writes the access log line.
func (s *Server) logRequest(q *request) {
	if q.logged {
		return
	}
	q.logged = true
	dur := s.now().Sub(q.start)
	s.m().request(q, dur)
	ev := s.Log.Info()
	ev.Str("method", q.r.Method).
		Str("host", q.r.Host).
		Str("path", q.r.URL.RequestURI()).
		Str("range", q.r.Header.Get("Range")).
		Int("status", q.status).
		Str("cache", q.cacheStatus)
	if q.detail != "" {
		ev.Str("detail", q.detail)
	}
	if q.cut != "" {
		ev.Str("cut", q.cut) // the status was sent, the body is short
	}
	ev.Int64("slice_hits", q.sliceHits).
		Int64("slice_misses", q.sliceMisses).
		Int64("origin_bytes", q.originBytes).
		Int64("bytes_sent", q.sent).
		Float64("ttfb_ms", float64(q.ttfb.Microseconds())/1000).
		Float64("duration_ms", float64(dur.Microseconds())/1000).
		Msg("request")
}
