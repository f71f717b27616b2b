package edge

import (
	"net/http"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/sliceedge/sliceedge/config"
)

// cacheControl holds the directives of a Cache-Control header that the edge
// acts on (RFC 9111 §5.2.2, RFC 5861).
type cacheControl struct {
	noStore, private, noCache, mustRevalidate bool
	public                                    bool
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
		case "public":
			cc.public = true
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

// targetList is the targeted cache-control fields (RFC 9213 §2.1) the
// edge follows for rule's objects, in order: the rule's own, then
// CDN-Cache-Control.
func targetList(rule *config.Rule) [2]string {
	own := rule.TargetedCacheControl
	if own == "" {
		own = config.DefaultTargetedCacheControl
	}
	return [2]string{http.CanonicalHeaderKey(own), "Cdn-Cache-Control"}
}

// cacheDirectives returns the directives the edge follows for a response
// (RFC 9213 §2.1): those of the first field on the rule's target list
// that is present with a valid, non-empty value, which replace
// Cache-Control's entirely (a directive it lacks is absent, not taken
// from Cache-Control); else Cache-Control's. field names the targeted
// field used, or is "".
func cacheDirectives(h http.Header, rule *config.Rule) (cc cacheControl, field string) {
	for _, name := range targetList(rule) {
		if lines := h.Values(name); len(lines) > 0 {
			if cc, ok := parseTargeted(lines); ok {
				return cc, name
			}
		}
	}
	return parseCacheControl(h), ""
}

// parseTargeted reads a targeted field's lines: a Structured Field
// Dictionary (RFC 9213 §2.2) whose members are cache directives. ok is
// false when the field is empty or does not parse, and must then be
// ignored as if absent (§2.2); a Cache-Control parser would accept what
// a Dictionary does not (upper case, a trailing comma), so this is not
// parseCacheControl.
//
// Each directive's value is taken as the type RFC 9213 §2.2 maps it to:
// max-age and s-maxage must be a non-negative Integer, else the value is
// invalid freshness information and the response stale, as in
// Cache-Control (an Integer of more than 15 digits does not parse at
// all, so the field is ignored); a String "60" is not an Integer. The
// stale windows take an Integer or nothing. A flag (no-store, private,
// no-cache, must-revalidate, proxy-revalidate) counts unless it is the
// Boolean false (?0); no-cache="f" and private="f", qualified, count whole.
// A key given twice keeps its last value: that is how a Dictionary
// parses (RFC 8941 §4.2.2), unlike Cache-Control's first.
func parseTargeted(lines []string) (cc cacheControl, ok bool) {
	dict, err := httpsfv.UnmarshalDictionary(lines)
	if err != nil || len(dict.Names()) == 0 {
		return cc, false
	}
	for _, key := range dict.Names() {
		member, _ := dict.Get(key)
		var value any // an Inner List is neither a Boolean nor an Integer
		if item, ok := member.(httpsfv.Item); ok {
			value = item.Value
		}
		set := value != false
		switch key {
		case "no-store":
			cc.noStore = set
		case "private":
			cc.private = set
		case "public":
			cc.public = set
		case "no-cache":
			cc.noCache = set
		case "must-revalidate", "proxy-revalidate":
			cc.mustRevalidate = cc.mustRevalidate || set
		case "max-age":
			cc.maxAge, cc.hasMaxAge = sfDelta(value), true
		case "s-maxage":
			cc.sMaxAge, cc.hasSMaxAge = sfDelta(value), true
		case "stale-while-revalidate":
			cc.staleWhileRevalidate = sfDelta(value)
		case "stale-if-error":
			cc.staleIfError = sfDelta(value)
		}
	}
	return cc, true
}

// sfDelta is a Structured Field value as delta-seconds: a non-negative
// Integer, at most 2^31 seconds (RFC 9111 §1.2.2); 0 for any other value.
func sfDelta(v any) time.Duration {
	n, ok := v.(int64)
	if !ok || n < 0 {
		return 0
	}
	return time.Duration(min(n, int64(maxDelta/time.Second))) * time.Second
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
// last a heuristic fraction of the time since Last-Modified. The
// directives are a targeted field's when one on the rule's target list is
// valid, and then Expires is ignored too (RFC 9213 §2.1); else
// Cache-Control's. ok is false, with the reason, when the response must
// not be stored.
func freshness(h http.Header, now time.Time, rule *config.Rule) (p policy, ok bool, why string) {
	cc, field := cacheDirectives(h, rule)
	if field != "" {
		defer func() {
			if why != "" {
				why = field + ": " + why
			}
		}()
	}
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
	if exp := h.Values("Expires"); len(exp) > 0 && field == "" { // present, even if empty
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

// requestDirectives are the request Cache-Control directives the edge
// acts on (RFC 9111 §5.2.1).
type requestDirectives struct {
	maxAge, maxStale, minFresh          time.Duration
	hasMaxAge, hasMaxStale, hasMinFresh bool
	noCache, noStore, onlyIfCached      bool
}

// clientDirectives reads a request's Cache-Control: every directive of RFC
// 9111 §5.2.1 when its rule honours the client's (client_cache_control:
// honor), only-if-cached alone when it ignores them. only-if-cached never
// makes the edge do more work, only less, so it counts either way. A
// directive given twice counts the first time, as in a response; one whose
// argument is not delta-seconds is ignored, so that a malformed request
// costs the origin nothing. max-stale without an argument accepts any
// staleness.
func clientDirectives(h http.Header, honor bool) requestDirectives {
	lines := h.Values("Cache-Control")
	if len(lines) == 0 {
		return requestDirectives{} // most requests: no parser, no allocation
	}
	return parseRequestDirectives(lines, honor)
}

func parseRequestDirectives(lines []string, honor bool) requestDirectives {
	var rd requestDirectives
	var seenMaxAge, seenMaxStale, seenMinFresh bool
	eachDirective(lines, func(name, arg string) {
		if name == "only-if-cached" {
			rd.onlyIfCached = true
		}
		if !honor {
			return
		}
		switch name {
		case "no-cache":
			rd.noCache = true
		case "no-store":
			rd.noStore = true
		case "max-age":
			if !seenMaxAge {
				seenMaxAge = true
				rd.maxAge, rd.hasMaxAge = deltaSeconds(arg)
			}
		case "min-fresh":
			if !seenMinFresh {
				seenMinFresh = true
				rd.minFresh, rd.hasMinFresh = deltaSeconds(arg)
			}
		case "max-stale":
			if !seenMaxStale {
				seenMaxStale = true
				if arg == "" {
					rd.maxStale, rd.hasMaxStale = 1<<63-1, true
				} else {
					rd.maxStale, rd.hasMaxStale = deltaSeconds(arg)
				}
			}
		}
	})
	return rd
}

// accepts reports whether a stored answer of age, fresh for lifetime, may
// answer the request as it is, without the origin (RFC 9111 §5.2.1): not
// under no-cache (§5.2.1.4); no older than max-age (§5.2.1.1); fresh for
// min-fresh more (§5.2.1.3); and fresh, or stale by no more than max-stale
// where the answer may be served stale at all (mayStale, §4.2.4, §5.2.1.2).
func (rd requestDirectives) accepts(age, lifetime time.Duration, mayStale bool) bool {
	switch {
	case rd.noCache,
		rd.hasMaxAge && age > rd.maxAge,
		rd.hasMinFresh && lifetime-age < rd.minFresh:
		return false
	case age < lifetime:
		return true
	}
	return mayStale && rd.hasMaxStale && age-lifetime <= rd.maxStale
}

// wantsFresh reports whether the request declines a stale answer that
// its own directives do not accept: under no-cache, max-age or min-fresh
// (§5.2.1.1: "unless the max-stale request directive is also present,
// the client does not wish to receive a stale response"). Such a request
// is not served from a stale-while-revalidate window.
func (rd requestDirectives) wantsFresh() bool {
	return rd.noCache || rd.hasMaxAge || rd.hasMinFresh
}
