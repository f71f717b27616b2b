package edge

import (
	"net/http"
	"strings"
	"time"

	"github.com/sliceedge/sliceedge/segstore"
)

type condResult int

const (
	condNone        condResult = iota // serve as asked
	condFailed                        // 412
	condNotModified                   // 304
	condIgnoreRange                   // If-Range did not match: send the whole object
)

// checkPreconditions evaluates the client's conditional headers against the
// stored version in the order of RFC 9110 §13.2.2.
func checkPreconditions(r *http.Request, m *segstore.Meta) condResult {
	etag := m.ETag
	if etag == "" {
		etag = firstValue(m.Header, "Etag")
	}
	lastMod, lmErr := http.ParseTime(m.LastModified)
	// Steps 1–2: If-Match, else If-Unmodified-Since.
	if im := r.Header.Get("If-Match"); im != "" {
		if !etagListMatch(im, m.ETag, true) {
			return condFailed
		}
	} else if ius := r.Header.Get("If-Unmodified-Since"); ius != "" && lmErr == nil {
		if t, err := http.ParseTime(ius); err == nil && lastMod.After(t) {
			return condFailed
		}
	}
	// Steps 3–4: If-None-Match, else If-Modified-Since.
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if etagListMatch(inm, etag, false) {
			return condNotModified
		}
	} else if ims := r.Header.Get("If-Modified-Since"); ims != "" && lmErr == nil {
		if t, err := http.ParseTime(ims); err == nil && !lastMod.After(t) {
			return condNotModified
		}
	}
	// Step 5: If-Range (RFC 9110 §13.1.5), only meaningful with Range.
	if ir := r.Header.Get("If-Range"); ir != "" && r.Header.Get("Range") != "" && !ifRangeMatches(ir, m) {
		return condIgnoreRange
	}
	return condNone
}

// ifRangeMatches: an entity-tag must match strongly; a date must equal the
// stored Last-Modified exactly, and only a strong validator counts
// (RFC 9110 §13.1.5).
func ifRangeMatches(v string, m *segstore.Meta) bool {
	if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/") {
		return m.ETag != "" && !strings.HasPrefix(v, "W/") && v == m.ETag
	}
	t, err := http.ParseTime(v)
	if err != nil || m.LastModified == "" {
		return false
	}
	lm, err := http.ParseTime(m.LastModified)
	return err == nil && t.Equal(lm) && m.ETag == ""
}

// etagListMatch reports whether a comma-separated entity-tag list (or "*")
// matches etag, with the strong or weak comparison of RFC 9110 §8.8.3.2.
func etagListMatch(list, etag string, strong bool) bool {
	if strings.TrimSpace(list) == "*" {
		return etag != ""
	}
	if etag == "" || (strong && strings.HasPrefix(etag, "W/")) {
		return false
	}
	bare := strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if strong {
			if t == etag {
				return true
			}
			continue
		}
		if strings.TrimPrefix(t, "W/") == bare {
			return true
		}
	}
	return false
}

func firstValue(h map[string][]string, k string) string {
	for key, vv := range h {
		if strings.EqualFold(key, k) && len(vv) > 0 {
			return vv[0]
		}
	}
	return ""
}

// age is a whole number of seconds, never negative.
func age(now, storedAt time.Time) int64 {
	return int64(max(now.Sub(storedAt), 0) / time.Second)
}
