package edge

import (
	"net/http"
	"strings"
	"time"

	"github.com/sliceedge/sliceedge/config"
)

// cacheControl holds the directives of a Cache-Control header that the edge
// acts on (RFC 9111 §5.2.2, RFC 5861).
type cacheControl struct {
	noStore, private, noCache, mustRevalidate bool
	maxAge, sMaxAge                           time.Duration
	hasMaxAge, hasSMaxAge                     bool
	staleWhileRevalidate, staleIfError        time.Duration
}

// parseCacheControl reads the Cache-Control field lines of h.
//
// A directive given more than once counts the first time: RFC 9111 §4.2.1
// lets a cache either use the first occurrence or consider the response
// stale, and the first keeps an origin that repeats itself (a framework's
// max-age and a server's added one) cacheable. The first occurrence
// decides even when it is invalid: max-age or s-maxage whose argument is
// not delta-seconds (-1, abc, 1.5, none) is invalid freshness information,
// which makes the response stale (§4.2.1 encourages that) rather than
// leaving Expires or a heuristic to decide. Invalid stale-while-revalidate
// and stale-if-error give no window.
func parseCacheControl(h http.Header) cacheControl {
	var cc cacheControl
	var seenSWR, seenSIE bool
	eachDirective(h.Values("Cache-Control"), func(name, arg string) {
		switch name {
		case "no-store":
			cc.noStore = true
		case "private":
			cc.private = true
		case "no-cache":
			cc.noCache = true
		case "must-revalidate", "proxy-revalidate":
			cc.mustRevalidate = true
		case "max-age":
			if !cc.hasMaxAge {
				cc.maxAge, _ = deltaSeconds(arg) // 0, stale, when invalid
				cc.hasMaxAge = true
			}
		case "s-maxage":
			if !cc.hasSMaxAge {
				cc.sMaxAge, _ = deltaSeconds(arg)
				cc.hasSMaxAge = true
			}
		case "stale-while-revalidate":
			if !seenSWR {
				cc.staleWhileRevalidate, _ = deltaSeconds(arg)
				seenSWR = true
			}
		case "stale-if-error":
			if !seenSIE {
				cc.staleIfError, _ = deltaSeconds(arg)
				seenSIE = true
			}
		}
	})
	return cc
}

// eachDirective calls f with each directive of Cache-Control field lines
// (RFC 9111 §5.2: token [ "=" ( token / quoted-string ) ]): its name in
// lower case and its argument, "" when it has none. A quoted-string is
// unquoted: a sender must not quote delta-seconds, but a recipient should
// accept both forms (§5.2), so max-age="60" is 60. A comma inside a quoted
// string does not end the directive, so that a qualified no-cache="a, b"
// or an extension's string cannot smuggle in a max-age. An argument that
// is malformed (an unterminated quote, text after the closing one) is
// passed on as it came, which no numeric directive accepts.
func eachDirective(lines []string, f func(name, arg string)) {
	for _, line := range lines {
		for line != "" {
			var d string
			d, line = cutDirective(line)
			name, arg, hasArg := strings.Cut(d, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue // empty list elements are allowed (RFC 9110 §5.6.1)
			}
			arg = strings.TrimSpace(arg)
			if hasArg && len(arg) >= 2 && arg[0] == '"' {
				if s, ok := unquote(arg); ok {
					arg = s
				}
			}
			f(name, arg)
		}
	}
}

// cutDirective splits the first list element off a Cache-Control field
// line, at the first comma outside a quoted string.
func cutDirective(line string) (d, rest string) {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && quoted:
			i++ // a quoted-pair: the next byte is literal
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return line[:i], line[i+1:]
		}
	}
	return line, ""
}

// unquote returns the content of a quoted-string (RFC 9110 §5.6.4) that
// is the whole of s, with its quoted-pairs resolved.
func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s)-1:
			i++
			c = s[i]
		case c == '\\' || c == '"':
			return "", false // the closing quote is escaped, or one ends early
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// maxDelta is the largest delta-seconds a cache uses (RFC 9111 §1.2.2): a
// larger value, or one too large to parse, counts as 2^31 seconds. It
// bounds every lifetime, window and Age, so that no sum of them
// overflows.
const maxDelta = (1 << 31) * time.Second

// deltaSeconds parses delta-seconds (RFC 9111 §1.2.2): one or more digits,
// nothing else (no sign, no fraction, no spaces). ok is false, and d 0,
// when s is not delta-seconds.
func deltaSeconds(s string) (d time.Duration, ok bool) {
	if s == "" {
		return 0, false
	}
	const most = int64(maxDelta / time.Second)
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = min(n*10+int64(c-'0'), most) // saturates before it can overflow
	}
	return time.Duration(n) * time.Second, true
}

// policy is how long a stored response is fresh, and how long past that it
// may still be served stale.
type policy struct {
	lifetime time.Duration
	// swr and sie are the stale-while-revalidate and stale-if-error
	// windows: the longer of the origin's directive and the rule's.
	swr, sie time.Duration
	// mustRevalidate forbids serving stale at all (must-revalidate,
	// proxy-revalidate, no-cache, or s-maxage, RFC 9111 §5.2.2.10).
	mustRevalidate bool
}

// freshness decides whether a response may be stored by a shared cache and
// on what terms (RFC 9111 §3, §4.2.1, §4.2.2): the rule's override_ttl,
// else s-maxage, max-age, Expires minus Date, the rule's default_ttl, and
// last a heuristic fraction of the time since Last-Modified. ok is false,
// with the reason, when the response must not be stored.
func freshness(h http.Header, now time.Time, rule *config.Rule) (p policy, ok bool, why string) {
	cc := parseCacheControl(h)
	p.swr = max(cc.staleWhileRevalidate, rule.StaleWhileRevalidate)
	p.sie = max(cc.staleIfError, rule.StaleIfError)
	p.mustRevalidate = cc.mustRevalidate || cc.hasSMaxAge
	date := now
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		date = d
	}
	switch {
	case cc.noStore:
		return p, false, "no-store"
	case cc.private:
		return p, false, "private"
	case rule.OverrideTTL > 0:
		p.lifetime = rule.OverrideTTL
		return p, true, ""
	case cc.noCache:
		// Stored, but every use is revalidated (RFC 9111 §5.2.2.4): never
		// served stale, whatever stale-while-revalidate says.
		p.mustRevalidate = true
		return p, true, ""
	case cc.hasSMaxAge:
		p.lifetime = cc.sMaxAge
		return p, true, ""
	case cc.hasMaxAge:
		p.lifetime = cc.maxAge
		return p, true, ""
	}
	if exp := h.Values("Expires"); len(exp) > 0 { // present, even if empty
		if t, err := http.ParseTime(exp[0]); err == nil {
			p.lifetime = min(max(t.Sub(date), 0), maxDelta)
		}
		// An invalid Expires means already expired (RFC 9111 §5.3).
		return p, true, ""
	}
	if rule.DefaultTTL > 0 {
		p.lifetime = rule.DefaultTTL
		return p, true, ""
	}
	if lm, err := http.ParseTime(h.Get("Last-Modified")); err == nil && rule.HeuristicFraction > 0 && date.After(lm) {
		p.lifetime = min(time.Duration(float64(date.Sub(lm))*rule.HeuristicFraction), rule.HeuristicMax)
		return p, true, ""
	}
	return p, false, "no freshness information"
}

// storedAt is the moment a stored answer's age counts from: when it
// arrived, less the age it already had on arrival (RFC 9111 §4.2.3: the
// Age header, plus the time the request took). The edge's Age header and
// freshness both count from it, so an answer that spent 50 minutes in a
// parent cache has 10 minutes of a one-hour max-age left. The apparent age
// from Date is not used: it measures the difference between the origin's
// clock and the edge's as much as the answer's age.
func storedAt(h http.Header, sent, arrived time.Time) time.Time {
	return arrived.Add(-ageValue(h) - max(arrived.Sub(sent), 0))
}

// ageValue is the Age a response arrived with (RFC 9111 §5.1), at most
// 2^31 seconds. Age is a single delta-seconds; of several (field lines,
// or a list in one line) the first counts, as for a repeated directive
// (§4.2.1). An Age that is not delta-seconds (negative, a fraction, a
// word) is ignored: 0.
func ageValue(h http.Header) time.Duration {
	v := h.Get("Age")
	v, _, _ = strings.Cut(v, ",")
	age, _ := deltaSeconds(strings.TrimSpace(v))
	return age
}
