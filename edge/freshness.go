package edge

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cacheControl holds the directives of a Cache-Control header that the edge
// acts on (RFC 9111 §5.2.2).
type cacheControl struct {
	noStore, private, noCache bool
	maxAge, sMaxAge           time.Duration
	hasMaxAge, hasSMaxAge     bool
}

func parseCacheControl(h http.Header) cacheControl {
	var cc cacheControl
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
			case "max-age":
				if d, ok := deltaSeconds(arg); ok {
					cc.maxAge, cc.hasMaxAge = d, true
				}
			case "s-maxage":
				if d, ok := deltaSeconds(arg); ok {
					cc.sMaxAge, cc.hasSMaxAge = d, true
				}
			}
		}
	}
	return cc
}

// deltaSeconds parses delta-seconds (RFC 9111 §1.2.2); values too large
// saturate.
func deltaSeconds(s string) (time.Duration, bool) {
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 1<<63 - 1, true
		}
		return 0, false
	}
	if n > uint64((1<<63-1)/time.Second) {
		return 1<<63 - 1, true
	}
	return time.Duration(n) * time.Second, true
}

// freshness decides whether a response may be stored by a shared cache and
// for how long (RFC 9111 §3 and §4.2.1): s-maxage, else max-age, else
// Expires minus Date, else the rule's default TTL. ok is false when the
// response must not be stored, with the reason.
func freshness(h http.Header, now time.Time, defaultTTL time.Duration) (lifetime time.Duration, ok bool, why string) {
	cc := parseCacheControl(h)
	switch {
	case cc.noStore:
		return 0, false, "no-store"
	case cc.private:
		return 0, false, "private"
	case cc.noCache:
		// Stored, but every use is revalidated (RFC 9111 §5.2.2.4).
		return 0, true, ""
	case cc.hasSMaxAge:
		return cc.sMaxAge, true, ""
	case cc.hasMaxAge:
		return cc.maxAge, true, ""
	}
	if exp := h.Get("Expires"); exp != "" {
		t, err := http.ParseTime(exp)
		if err != nil {
			// An invalid Expires means already expired (RFC 9111 §5.3).
			return 0, true, ""
		}
		date := now
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			date = d
		}
		return max(t.Sub(date), 0), true, ""
	}
	if defaultTTL > 0 {
		return defaultTTL, true, ""
	}
	return 0, false, "no freshness information and no default_ttl"
}
