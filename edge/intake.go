package edge

// Intake: what a request becomes before any rule or cache sees it. The path
// loses its dot segments (RFC 3986 §5.2.4) and its percent-encoding takes
// one spelling, and the host one name, so that no spelling reaches a path
// or an origin that no rule allows, and every spelling of one URL is one
// cache key and one purge. Then a rule is matched by host and path, and
// the request goes on to the cache (serve.go) or passes through (pass.go).

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sliceedge/sliceedge/config"
)

// intake answers what needs no rule's origin (a body, a long URL, a bad
// path, an unknown host), matches q's rule and key, and hands q to the
// cache or the pass-through.
func (s *Server) intake(q *request) {
	r := q.r
	cfg := s.config()
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		s.refuseBody(q)
	}
	if len(r.RequestURI) > MaxURLBytes {
		q.outcome, q.detail = cacheError, "URI too long"
		s.plainError(q, http.StatusRequestURITooLong, cacheStatus{fwd: "bypass", detail: "uri-too-long"}, "sliceedge: the request URL is too long\n")
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
		s.metrics().limitTrip("bad_request")
		q.outcome, q.detail = cacheError, err.Error()
		s.plainError(q, http.StatusBadRequest, cacheStatus{fwd: "bypass", detail: "bad-request"}, "sliceedge: bad request: "+err.Error()+"\n")
		return
	case q.rule == nil && !cfg.AcceptsHost(q.host):
		// Sent to the wrong server: no rule serves this host (RFC 9110 §15.5.20).
		s.metrics().limitTrip("unknown_host")
		q.outcome, q.detail = cacheError, "no rule for the host"
		s.plainError(q, http.StatusMisdirectedRequest, cacheStatus{fwd: "bypass", detail: "unknown-host"}, "sliceedge: this edge serves no site of that host name\n")
		return
	case q.rule == nil:
		// No origin is configured for this path: there is nowhere to go.
		q.outcome, q.detail = cacheError, "no rule"
		s.plainError(q, http.StatusNotFound, cacheStatus{fwd: "bypass", detail: "no-rule"}, "sliceedge: no rule in the configuration matches this path\n")
		return
	}
	if why := uncachedRequest(r); why != "" {
		s.pass(q, why)
		return
	}
	q.key = keyFor(keyHost(q.host, r.Host, r.TLS != nil), q.target.escaped, r.URL.RawQuery, q.rule)
	q.auth = r.Header.Get("Authorization") != "" // see lookupAuth
	s.selectVariant(q)
	if s.passes.active(q.key, s.now()) {
		s.pass(q, "uncacheable")
		return
	}
	s.serveCached(q)
}

// uncachedRequest says why r is passed through whatever its rule says, or
// "": a method other than GET and HEAD, or a cookie. (A request with
// Authorization is not passed: lookupAuth.)
func uncachedRequest(r *http.Request) string {
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return "method"
	case r.Header.Get("Cookie") != "":
		return "cookie"
	}
	return ""
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
		s.metrics().limitTrip("request_body")
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

// originTarget is what a client request asks of the rule's origin: the
// request's normalised path (which cannot climb out of the origin's base
// path, which each pool member puts before it), then the query as sent.
func originTarget(q *request) string {
	if q.r.URL.RawQuery == "" {
		return q.target.escaped
	}
	return q.target.escaped + "?" + q.r.URL.RawQuery
}

// Intake errors, each answered 400 (see badPath).
var (
	errClimbs     = errors.New("the path climbs above the root")
	errCtlInPath  = errors.New("the path holds a control character")
	errAmbiguous  = errors.New("the path holds an encoded dot or slash inside an encoded one, or a backslash next to a dot segment")
	errNoHost     = errors.New("the request names no host")
	errBadEscapes = errors.New("the path is not valid percent-encoding")
	errNotOrigin  = errors.New("the request target is not a path")
)

// target is a request's path as rules match it and as it is forwarded.
type target struct {
	// path is decoded, without dot segments: rules match it.
	path string
	// escaped is the form sent to the origin and kept in cache keys: the
	// request's own escaping with RFC 3986 §6.2.2 normalisation (unreserved
	// characters decoded, hex digits upper case), or, when the path had dot
	// segments, the escaping of path itself. An origin that decodes it and
	// removes dot segments gets path.
	escaped string
}

// parseTarget normalises the path of u (a request URL as net/http parsed
// it: Path decoded, RawPath its escaping when not the default one).
func parseTarget(u *url.URL) (target, error) {
	p := u.Path
	if p == "" || p[0] != '/' {
		return target{}, errNotOrigin // "*", or an authority (CONNECT)
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return target{}, errCtlInPath
	}
	// A percent sign that survives decoding spells an encoded dot, slash or
	// backslash for an origin that decodes twice.
	if strings.Contains(p, "%") && containsAnyFold(p, "%2e", "%2f", "%5c") {
		return target{}, errAmbiguous
	}
	if !hasDotSegment(p, "/") {
		if hasDotSegment(p, "/\\") {
			// "..\" is a dot segment to an origin on Windows.
			return target{}, errAmbiguous
		}
		esc, err := normalizeEscapes(u.EscapedPath())
		if err != nil {
			return target{}, err
		}
		return target{path: p, escaped: esc}, nil
	}
	clean, err := removeDotSegments(p)
	if err != nil {
		return target{}, err
	}
	if hasDotSegment(clean, "/\\") {
		return target{}, errAmbiguous
	}
	return target{path: clean, escaped: (&url.URL{Path: clean}).EscapedPath()}, nil
}

// containsAnyFold reports whether s holds one of the ASCII needles in any
// case, without a lower-cased copy of s.
func containsAnyFold(s string, needles ...string) bool {
	for i := range s {
		for _, n := range needles {
			if len(s)-i >= len(n) && strings.EqualFold(s[i:i+len(n)], n) {
				return true
			}
		}
	}
	return false
}

// hasDotSegment reports whether p, split at any of seps, has a "." or ".."
// segment.
func hasDotSegment(p, seps string) bool {
	for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return strings.ContainsRune(seps, r) }) {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// removeDotSegments is RFC 3986 §5.2.4 for an absolute path, except that a
// ".." at the root is an error rather than ignored: such a request is
// either an attack or a bug, and is answered 400.
func removeDotSegments(p string) (string, error) {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		last := i == len(segs)-1
		switch seg {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) == 0 {
				return "", errClimbs
			}
			out = out[:len(out)-1]
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, seg)
		}
	}
	return "/" + strings.Join(out, "/"), nil
}

// normalizeEscapes rewrites an escaped path in one spelling (RFC 3986
// §6.2.2.1 and §6.2.2.2): percent-encoded unreserved characters decoded,
// the hex digits of the others in upper case.
func normalizeEscapes(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", errBadEscapes
		}
		c := unhex(s[i+1])<<4 | unhex(s[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(s[i+1 : i+3]))
		}
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// keyHost is the host as cache keys hold it: name (config.HostName of
// hostport), with the port only when it is not the scheme's default.
func keyHost(name, hostport string, tls bool) string {
	if _, port, err := net.SplitHostPort(hostport); err == nil && port != "" {
		if !(port == "80" && !tls || port == "443" && tls) {
			return name + ":" + port
		}
	}
	return name
}
