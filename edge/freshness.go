package edge

import (
	"net/http"
	"strconv"
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

func parseCacheControl(h http.Header) cacheControl {
	var cc cacheControl
	var seenSWR, seenSIE bool
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			arg = strings.Trim(strings.TrimSpace(arg), `"`)
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store":
				cc.noStore = true
			case "private":
				cc.private = true
			case "no-cache":
				cc.noCache = true
			case "must-revalidate", "proxy-revalidate":
				cc.mustRevalidate = true
			// A directive given twice counts the first time (RFC 9111
			// §4.2.1).
			case "max-age":
				if d, ok := deltaSeconds(arg); ok && !cc.hasMaxAge {
					cc.maxAge, cc.hasMaxAge = d, true
				}
			case "s-maxage":
				if d, ok := deltaSeconds(arg); ok && !cc.hasSMaxAge {
					cc.sMaxAge, cc.hasSMaxAge = d, true
				}
			case "stale-while-revalidate":
				if d, ok := deltaSeconds(arg); ok && !seenSWR {
					cc.staleWhileRevalidate, seenSWR = d, true
				}
			case "stale-if-error":
				if d, ok := deltaSeconds(arg); ok && !seenSIE {
					cc.staleIfError, seenSIE = d, true
				}
			}
		}
	}
	return cc
}

// deltaSeconds parses delta-seconds (RFC 9111 §1.2.2); values too large
// saturate.
func deltaSeconds(s string) (time.Duration, bool) {
	const maxDur = time.Duration(1<<63 - 1)
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return maxDur, true
		}
		return 0, false
	}
	if n > uint64(maxDur/time.Second) {
		return maxDur, true
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
	if exp := h.Get("Expires"); exp != "" {
		if t, err := http.ParseTime(exp); err == nil {
			p.lifetime = max(t.Sub(date), 0)
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

// maxAge is the largest Age a cache sends (RFC 9111 §5.1): larger values
// are taken as this.
const maxAge = (1 << 31) * time.Second

// storedAt is the moment a stored answer's age counts from: when it
// arrived, less the age it already had on arrival (RFC 9111 §4.2.3: the
// Age header, plus the time the request took). The edge's Age header and
// freshness both count from it, so an answer that spent 50 minutes in a
// parent cache has 10 minutes of a one-hour max-age left. The apparent age
// from Date is not used: it measures the difference between the origin's
// clock and the edge's as much as the answer's age.
func storedAt(h http.Header, sent, arrived time.Time) time.Time {
	v := strings.TrimSpace(h.Get("Age"))
	if v == "" {
		return arrived
	}
	age, ok := deltaSeconds(v)
	if !ok {
		return arrived // an invalid Age is ignored (RFC 9111 §5.1)
	}
	return arrived.Add(-min(age, maxAge) - max(arrived.Sub(sent), 0))
}
