package edge

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// Table tests of the edge's pure helpers. Every expectation comes from the
// RFC section named in the row (or, for the rule's knobs, from the
// config.Rule field's documentation), not from running the code. A row whose
// RFC answer the code does not give names the difference in deviates: it
// passes while the code deviates that way, and fails once the code agrees, so
// that the mark is removed with the fix.

// hdr builds a header from "Name: value" lines; a name may repeat.
func hdr(lines ...string) http.Header {
	h := http.Header{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ":")
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return h
}

// deviation reports a row whose code answer differs from the RFC's as the
// row says it does; it returns true when the row is done.
func deviation(t *testing.T, deviates, input string, agrees bool) bool {
	t.Helper()
	if deviates == "" {
		return false
	}
	if agrees {
		t.Errorf("%s: the code now gives the RFC's answer; remove the row's deviates mark (%s)", input, deviates)
	} else {
		t.Logf("%s: known deviation from the RFC: %s", input, deviates)
	}
	return true
}

func TestFreshness(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	none := config.Rule{}
	heur := config.Rule{HeuristicFraction: 0.1, HeuristicMax: 24 * time.Hour}
	tests := []struct {
		name   string
		header []string
		rule   config.Rule
		want   policy
		ok     bool
		why    string // the reason when !ok
	}{
		// §5.2.2.5, §5.2.2.7, §3: what a shared cache must not store.
		{"§5.2.2.5 no-store is not stored", []string{"Cache-Control: no-store, max-age=60"}, none, policy{}, false, "no-store"},
		{"§5.2.2.7 private is not stored by a shared cache", []string{"Cache-Control: private, max-age=60"}, none, policy{}, false, "private"},
		{"§5.2.2.7 qualified private: storing nothing honours it", []string{`Cache-Control: private="Set-Cookie", max-age=60`}, none, policy{}, false, "private"},
		{"override_ttl still obeys no-store", []string{"Cache-Control: no-store"}, config.Rule{OverrideTTL: time.Hour}, policy{}, false, "no-store"},
		{"override_ttl still obeys private", []string{"Cache-Control: private"}, config.Rule{OverrideTTL: time.Hour}, policy{}, false, "private"},
		// The rule's override replaces whatever lifetime the origin gave.
		{"override_ttl replaces max-age", []string{"Cache-Control: max-age=60"}, config.Rule{OverrideTTL: time.Hour}, policy{lifetime: time.Hour}, true, ""},
		{"override_ttl replaces Expires", []string{"Date: " + at(0), "Expires: " + at(time.Minute)}, config.Rule{OverrideTTL: time.Hour}, policy{lifetime: time.Hour}, true, ""},
		{"override_ttl gives freshness to an answer with none", nil, config.Rule{OverrideTTL: time.Hour}, policy{lifetime: time.Hour}, true, ""},
		// §4.2.1: s-maxage, then max-age, then Expires minus Date.
		{"§5.2.2.10 s-maxage over max-age, and forbids serving stale", []string{"Cache-Control: max-age=60, s-maxage=30"}, none, policy{lifetime: 30 * time.Second, mustRevalidate: true}, true, ""},
		{"§5.2.2.1 max-age", []string{"Cache-Control: max-age=60"}, none, policy{lifetime: time.Minute}, true, ""},
		{"§5.2.2.1 max-age=0 is stored, already stale", []string{"Cache-Control: max-age=0"}, none, policy{}, true, ""},
		{"§5.3 max-age over Expires", []string{"Cache-Control: max-age=60", "Date: " + at(0), "Expires: " + at(time.Hour)}, none, policy{lifetime: time.Minute}, true, ""},
		{"§4.2.1 Expires minus Date", []string{"Date: " + at(-time.Hour), "Expires: " + at(-time.Hour+100*time.Second)}, none, policy{lifetime: 100 * time.Second}, true, ""},
		{"§4.2.1 Expires minus the time received without Date", []string{"Expires: " + at(50*time.Second)}, none, policy{lifetime: 50 * time.Second}, true, ""},
		{"§4.2.1 Expires before Date: stored, already stale", []string{"Date: " + at(0), "Expires: " + at(-time.Minute)}, none, policy{}, true, ""},
		{"§5.3 invalid Expires means already expired", []string{"Date: " + at(0), "Expires: 0"}, none, policy{}, true, ""},
		{"§5.3 invalid Expires is explicit: no default_ttl", []string{"Expires: -1"}, config.Rule{DefaultTTL: 10 * time.Minute}, policy{}, true, ""},
		{"§4.2.2 Expires is explicit: no heuristic", []string{"Date: " + at(0), "Expires: " + at(time.Minute), "Last-Modified: " + at(-100*time.Hour)}, heur, policy{lifetime: time.Minute}, true, ""},
		// default_ttl: the lifetime of an answer the origin gives none for.
		{"default_ttl without explicit freshness", nil, config.Rule{DefaultTTL: 10 * time.Minute}, policy{lifetime: 10 * time.Minute}, true, ""},
		{"default_ttl does not replace max-age", []string{"Cache-Control: max-age=60"}, config.Rule{DefaultTTL: 10 * time.Minute}, policy{lifetime: time.Minute}, true, ""},
		// §4.2.2: a fraction of the time since Last-Modified, at most heuristic_max.
		{"§4.2.2 heuristic: a tenth of the time since Last-Modified", []string{"Date: " + at(0), "Last-Modified: " + at(-10*time.Hour)}, heur, policy{lifetime: time.Hour}, true, ""},
		{"§4.2.2 heuristic counts from Date", []string{"Date: " + at(-5*time.Hour), "Last-Modified: " + at(-15*time.Hour)}, heur, policy{lifetime: time.Hour}, true, ""},
		{"§4.2.2 heuristic capped at heuristic_max", []string{"Date: " + at(0), "Last-Modified: " + at(-1000*time.Hour)}, heur, policy{lifetime: 24 * time.Hour}, true, ""},
		{"§4.2.2 heuristic off (fraction 0)", []string{"Date: " + at(0), "Last-Modified: " + at(-10*time.Hour)}, none, policy{}, false, "no freshness information"},
		{"§4.2.2 Last-Modified after Date gives no heuristic", []string{"Date: " + at(0), "Last-Modified: " + at(time.Hour)}, heur, policy{}, false, "no freshness information"},
		{"§4.2.2 invalid Last-Modified gives no heuristic", []string{"Date: " + at(0), "Last-Modified: yesterday"}, heur, policy{}, false, "no freshness information"},
		{"§3 no freshness information is not stored", nil, none, policy{}, false, "no freshness information"},
		// §5.2.2.4: no-cache is stored but every use revalidated.
		{"§5.2.2.4 no-cache: stored, never served stale", []string{"Cache-Control: no-cache"}, none, policy{mustRevalidate: true}, true, ""},
		{"§5.2.2.4 no-cache outweighs max-age", []string{"Cache-Control: no-cache, max-age=60"}, none, policy{mustRevalidate: true}, true, ""},
		{"§5.2.2.4 no-cache outweighs stale-while-revalidate", []string{"Cache-Control: no-cache, stale-while-revalidate=60"}, none, policy{swr: time.Minute, mustRevalidate: true}, true, ""},
		{"override_ttl replaces no-cache's lifetime (only no-store and private are obeyed)", []string{"Cache-Control: no-cache"}, config.Rule{OverrideTTL: time.Hour}, policy{lifetime: time.Hour}, true, ""},
		// §5.2.2.2, §5.2.2.8: no stale use.
		{"§5.2.2.2 must-revalidate", []string{"Cache-Control: max-age=60, must-revalidate"}, none, policy{lifetime: time.Minute, mustRevalidate: true}, true, ""},
		{"§5.2.2.8 proxy-revalidate binds a shared cache", []string{"Cache-Control: max-age=60, proxy-revalidate"}, none, policy{lifetime: time.Minute, mustRevalidate: true}, true, ""},
		// RFC 5861 §3, §4: the stale windows, the longer of origin's and rule's.
		{"RFC 5861 stale-while-revalidate and stale-if-error", []string{"Cache-Control: max-age=60, stale-while-revalidate=30, stale-if-error=300"}, none, policy{lifetime: time.Minute, swr: 30 * time.Second, sie: 5 * time.Minute}, true, ""},
		{"RFC 5861 the rule's longer stale-while-revalidate", []string{"Cache-Control: max-age=60, stale-while-revalidate=30"}, config.Rule{StaleWhileRevalidate: 10 * time.Minute}, policy{lifetime: time.Minute, swr: 10 * time.Minute}, true, ""},
		{"RFC 5861 the origin's longer stale-if-error", []string{"Cache-Control: max-age=60, stale-if-error=600"}, config.Rule{StaleIfError: time.Minute}, policy{lifetime: time.Minute, sie: 10 * time.Minute}, true, ""},
		{"RFC 5861 windows with must-revalidate are kept but not usable", []string{"Cache-Control: max-age=60, must-revalidate, stale-if-error=60"}, none, policy{lifetime: time.Minute, sie: time.Minute, mustRevalidate: true}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := tt.rule
			p, ok, why := freshness(hdr(tt.header...), now, &rule)
			if ok != tt.ok || why != tt.why {
				t.Errorf("headers=%q rule=%+v: ok=%v why=%q, want ok=%v why=%q", tt.header, tt.rule, ok, why, tt.ok, tt.why)
			}
			if !ok {
				return // the terms of an answer not stored do not matter
			}
			if p != tt.want {
				t.Errorf("headers=%q rule=%+v: policy %+v, want %+v", tt.header, tt.rule, p, tt.want)
			}
		})
	}
}

func TestParseCacheControl(t *testing.T) {
	const sec = time.Second
	tests := []struct {
		name  string
		lines []string // Cache-Control field lines
		want  cacheControl
		// atLeast: maxAge only has to reach this (§1.2.2 allows 2^31 or
		// the greatest value representable).
		atLeast time.Duration
	}{
		{"empty", nil, cacheControl{}, 0},
		{"§5.2.2.1 max-age", []string{"max-age=60"}, cacheControl{maxAge: 60 * sec, hasMaxAge: true}, 0},
		{"§5.2.2.10 s-maxage", []string{"s-maxage=5"}, cacheControl{sMaxAge: 5 * sec, hasSMaxAge: true}, 0},
		{"§5.2.2.1 max-age=0 is present", []string{"max-age=0"}, cacheControl{hasMaxAge: true}, 0},
		{"§5.2 directive names are case-insensitive", []string{"MAX-AGE=60, No-Store, PRIVATE, No-Cache, Must-Revalidate"},
			cacheControl{maxAge: 60 * sec, hasMaxAge: true, noStore: true, private: true, noCache: true, mustRevalidate: true}, 0},
		{"§5.2.2.8 proxy-revalidate", []string{"proxy-revalidate"}, cacheControl{mustRevalidate: true}, 0},
		{"§5.2 quoted argument", []string{`max-age="60"`}, cacheControl{maxAge: 60 * sec, hasMaxAge: true}, 0},
		{"§5.2 quoted s-maxage", []string{`s-maxage="7"`}, cacheControl{sMaxAge: 7 * sec, hasSMaxAge: true}, 0},
		{"§4.2.1 duplicate max-age: the first counts", []string{"max-age=60, max-age=10"}, cacheControl{maxAge: 60 * sec, hasMaxAge: true}, 0},
		{"§4.2.1 duplicate across field lines: the first counts", []string{"max-age=60", "max-age=10"}, cacheControl{maxAge: 60 * sec, hasMaxAge: true}, 0},
		{"§4.2.1 duplicate s-maxage: the first counts", []string{"s-maxage=1, s-maxage=100"}, cacheControl{sMaxAge: sec, hasSMaxAge: true}, 0},
		{"RFC 5861 duplicate windows: the first counts", []string{"stale-while-revalidate=1, stale-if-error=2", "stale-while-revalidate=9, stale-if-error=9"},
			cacheControl{staleWhileRevalidate: sec, staleIfError: 2 * sec}, 0},
		// §4.2.1: invalid freshness information makes the response stale.
		{"§1.2.2 delta-seconds are digits only: -1 is invalid, stale", []string{"max-age=-1"}, cacheControl{hasMaxAge: true}, 0},
		{"§1.2.2 delta-seconds are digits only: 1.5 is invalid, stale", []string{"max-age=1.5"}, cacheControl{hasMaxAge: true}, 0},
		{"§1.2.2 a missing argument is invalid, stale", []string{"max-age"}, cacheControl{hasMaxAge: true}, 0},
		{"§5.2.3 unknown directives are ignored", []string{"foo, bar=1, max-age=5, community=\"UCI\""}, cacheControl{maxAge: 5 * sec, hasMaxAge: true}, 0},
		{"§1.2.2 overflow saturates", []string{"max-age=99999999999999999999999"}, cacheControl{hasMaxAge: true}, 1 << 31 * sec},
		{"§1.2.2 beyond Duration saturates", []string{"max-age=9223372036"}, cacheControl{hasMaxAge: true}, 1 << 31 * sec},
		{"§1.2.2 2^31 itself", []string{"max-age=2147483648"}, cacheControl{maxAge: 1 << 31 * sec, hasMaxAge: true}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, l := range tt.lines {
				h.Add("Cache-Control", l)
			}
			got := parseCacheControl(h)
			if tt.atLeast > 0 {
				if got.maxAge < tt.atLeast {
					t.Errorf("Cache-Control=%q: max-age %v, want at least %v", tt.lines, got.maxAge, tt.atLeast)
				}
				got.maxAge = 0
			}
			if got != tt.want {
				t.Errorf("Cache-Control=%q: %+v, want %+v", tt.lines, got, tt.want)
			}
		})
	}
}

func TestStoredAt(t *testing.T) {
	arrived := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		age      []string      // Age field lines
		delay    time.Duration // arrived minus the request's send time
		want     time.Duration // storedAt minus arrived
		deviates string
	}{
		// §4.2.3: corrected_initial_age = age_value + response_delay (the
		// apparent age from Date is left out on purpose: see storedAt).
		{"§4.2.3 Age plus the response delay", []string{"100"}, 2 * time.Second, -102 * time.Second, ""},
		{"§4.2.3 Age with no delay", []string{"3600"}, 0, -time.Hour, ""},
		{"§4.2.3 no Age, no delay", nil, 0, 0, ""},
		{"§4.2.3 no Age: the response delay still counts", nil, 2 * time.Second, -2 * time.Second, ""},
		{"§5.1 Age: 0", []string{"0"}, 0, 0, ""},
		{"§5.1 invalid Age is ignored", []string{"soon"}, 0, 0, ""},
		{"§5.1 negative Age is invalid, ignored", []string{"-30"}, 0, 0, ""},
		{"§5.1 Age field lines: the first", []string{"10", "99"}, 0, -10 * time.Second, ""},
		{"§5.1 list-based Age: the first member", []string{"10, 99"}, 0, -10 * time.Second, ""},
		{"§1.2.2 Age too large counts as 2^31", []string{"99999999999999999999"}, time.Second, -(1<<31 + 1) * time.Second, ""},
		{"§5.1 Age above 2^31 counts as 2^31", []string{"4294967296"}, 0, -(1 << 31) * time.Second, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.age {
				h.Add("Age", v)
			}
			got := storedAt(h, arrived.Add(-tt.delay), arrived).Sub(arrived)
			input := fmt.Sprintf("Age=%q delay=%v", tt.age, tt.delay)
			if deviation(t, tt.deviates, input, got == tt.want) {
				return
			}
			if got != tt.want {
				t.Errorf("%s: storedAt is arrival%+v, want arrival%+v", input, got, tt.want)
			}
		})
	}
}

func TestCheckPreconditions(t *testing.T) {
	lm := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return lm.Add(d).Format(http.TimeFormat) }
	strong := &segstore.Meta{ETag: `"v1"`, LastModified: date(0)}
	weak := &segstore.Meta{LastModified: date(0), Header: map[string][]string{"Etag": {`W/"v1"`}}}
	lmOnly := &segstore.Meta{LastModified: date(0)}
	tests := []struct {
		name     string
		meta     *segstore.Meta
		headers  []string
		want     condResult
		deviates string
	}{
		{"no conditionals", strong, nil, condNone, ""},
		// §13.1.1 If-Match, strong comparison (§8.8.3.2).
		{"§13.1.1 If-Match matches", strong, []string{`If-Match: "v1"`}, condNone, ""},
		{"§13.1.1 If-Match in a list", strong, []string{`If-Match: "a", "v1"`}, condNone, ""},
		{"§13.1.1 If-Match differs: 412", strong, []string{`If-Match: "v2"`}, condFailed, ""},
		{"§13.1.1 If-Match is strong: W/ never matches", strong, []string{`If-Match: W/"v1"`}, condFailed, ""},
		{"§13.1.1 If-Match is strong: a weak stored tag never matches", weak, []string{`If-Match: W/"v1"`}, condFailed, ""},
		{"§13.1.1 If-Match * with a current representation", strong, []string{"If-Match: *"}, condNone, ""},
		{"§13.1.1 If-Match * with a representation without ETag", lmOnly, []string{"If-Match: *"}, condNone,
			"If-Match: * fails (412) when the stored version has no strong ETag, though a current representation exists"},
		// §13.1.4 If-Unmodified-Since, only without If-Match (§13.2.2 step 2).
		{"§13.1.4 If-Unmodified-Since before Last-Modified: 412", strong, []string{"If-Unmodified-Since: " + date(-time.Hour)}, condFailed, ""},
		{"§13.1.4 If-Unmodified-Since at Last-Modified", strong, []string{"If-Unmodified-Since: " + date(0)}, condNone, ""},
		{"§13.1.4 If-Unmodified-Since after Last-Modified", strong, []string{"If-Unmodified-Since: " + date(time.Hour)}, condNone, ""},
		{"§13.1.4 invalid If-Unmodified-Since is ignored", strong, []string{"If-Unmodified-Since: yesterday"}, condNone, ""},
		{"§13.2.2 step 2 If-Unmodified-Since ignored with If-Match", strong, []string{`If-Match: "v1"`, "If-Unmodified-Since: " + date(-time.Hour)}, condNone, ""},
		// §13.1.2 If-None-Match, weak comparison.
		{"§13.1.2 If-None-Match matches: 304", strong, []string{`If-None-Match: "v1"`}, condNotModified, ""},
		{"§13.1.2 If-None-Match is weak: W/ matches a strong tag", strong, []string{`If-None-Match: W/"v1"`}, condNotModified, ""},
		{"§13.1.2 If-None-Match is weak: matches a weak stored tag", weak, []string{`If-None-Match: "v1"`}, condNotModified, ""},
		{"§13.1.2 If-None-Match in a list", strong, []string{`If-None-Match: "a", W/"v1"`}, condNotModified, ""},
		{"§13.1.2 If-None-Match differs", strong, []string{`If-None-Match: "v2"`}, condNone, ""},
		{"§13.1.2 If-None-Match *: 304", strong, []string{"If-None-Match: *"}, condNotModified, ""},
		{"§13.1.2 If-None-Match * with a representation without ETag", lmOnly, []string{"If-None-Match: *"}, condNotModified,
			"If-None-Match: * is ignored (200) when the stored version has no ETag, though a current representation exists"},
		// §13.1.3 If-Modified-Since, only without If-None-Match (step 4).
		{"§13.1.3 If-Modified-Since at Last-Modified: 304", strong, []string{"If-Modified-Since: " + date(0)}, condNotModified, ""},
		{"§13.1.3 If-Modified-Since after Last-Modified: 304", strong, []string{"If-Modified-Since: " + date(time.Hour)}, condNotModified, ""},
		{"§13.1.3 If-Modified-Since before Last-Modified", strong, []string{"If-Modified-Since: " + date(-time.Second)}, condNone, ""},
		{"§13.1.3 invalid If-Modified-Since is ignored", strong, []string{"If-Modified-Since: 0"}, condNone, ""},
		{"§13.2.2 step 4 If-Modified-Since ignored with If-None-Match", strong, []string{`If-None-Match: "v2"`, "If-Modified-Since: " + date(time.Hour)}, condNone, ""},
		// §13.2.2 order: step 1 (412) before step 3 (304).
		{"§13.2.2 If-Match fails before If-None-Match", strong, []string{`If-Match: "v2"`, `If-None-Match: "v1"`}, condFailed, ""},
		{"§13.2.2 If-Unmodified-Since fails before If-Modified-Since", strong, []string{"If-Unmodified-Since: " + date(-time.Hour), "If-Modified-Since: " + date(time.Hour)}, condFailed, ""},
		{"§13.2.2 If-Match passes, If-None-Match decides", strong, []string{`If-Match: "v1"`, `If-None-Match: "v1"`}, condNotModified, ""},
		// §13.1.5 If-Range (step 5), only with Range.
		{"§13.1.5 If-Range strong ETag matches", strong, []string{"Range: bytes=0-9", `If-Range: "v1"`}, condNone, ""},
		{"§13.1.5 If-Range other ETag: whole object", strong, []string{"Range: bytes=0-9", `If-Range: "v2"`}, condIgnoreRange, ""},
		{"§13.1.5 If-Range weak ETag never matches", strong, []string{"Range: bytes=0-9", `If-Range: W/"v1"`}, condIgnoreRange, ""},
		{"§13.1.5 If-Range against a weak stored tag never matches", weak, []string{"Range: bytes=0-9", `If-Range: W/"v1"`}, condIgnoreRange, ""},
		{"§13.1.5 If-Range date equal to a strong Last-Modified", lmOnly, []string{"Range: bytes=0-9", "If-Range: " + date(0)}, condNone, ""},
		{"§13.1.5 If-Range date differs: whole object", lmOnly, []string{"Range: bytes=0-9", "If-Range: " + date(time.Hour)}, condIgnoreRange, ""},
		{"§13.1.5 If-Range invalid date never matches", lmOnly, []string{"Range: bytes=0-9", "If-Range: yesterday"}, condIgnoreRange, ""},
		{"§13.1.5 If-Range without Range is ignored", strong, []string{`If-Range: "v2"`}, condNone, ""},
		{"§13.2.2 304 before If-Range", strong, []string{"Range: bytes=0-9", `If-Range: "v2"`, `If-None-Match: "v1"`}, condNotModified, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "http://edge.test/x", nil)
			r.Header = hdr(tt.headers...)
			got := checkPreconditions(r, tt.meta)
			input := fmt.Sprintf("headers=%q on %s", tt.headers, metaString(tt.meta))
			if deviation(t, tt.deviates, input, got == tt.want) {
				return
			}
			if got != tt.want {
				t.Errorf("%s: %v, want %v", input, got, tt.want)
			}
		})
	}
}

func metaString(m *segstore.Meta) string {
	return fmt.Sprintf("ETag=%q Last-Modified=%q header ETag=%q", m.ETag, m.LastModified, firstValue(m.Header, "Etag"))
}

func (c condResult) String() string {
	switch c {
	case condNone:
		return "condNone"
	case condFailed:
		return "condFailed (412)"
	case condNotModified:
		return "condNotModified (304)"
	case condIgnoreRange:
		return "condIgnoreRange (200)"
	}
	return "condResult(?)"
}

func TestFirstWanted(t *testing.T) {
	tests := []struct {
		name   string
		method string
		cond   bool
		rng    string // Range header; "" for none
		want   wantBytes
	}{
		// §9.3.2 a HEAD needs no body, only the size: one slice's first byte.
		{"§9.3.2 HEAD", http.MethodHead, false, "bytes=500-999", wantBytes{Start: 0, End: 1}},
		// §13.2.2 a conditional request needs the validator before any body.
		{"§13.2.2 conditional GET", http.MethodGet, true, "bytes=500-999", wantBytes{Start: 0, End: 1}},
		{"§13.2.2 conditional GET without ranges", http.MethodGet, true, "", wantBytes{Start: 0, End: 1}},
		{"§9.3.1 GET without ranges: the object from its head", http.MethodGet, false, "", wantBytes{Start: 0, End: -1}},
		// §14.1.2 int-range: first-pos to last-pos inclusive, or to the end.
		{"§14.1.2 one range", http.MethodGet, false, "bytes=100-199", wantBytes{Start: 100, End: 200}},
		{"§14.1.2 open range", http.MethodGet, false, "bytes=100-", wantBytes{Start: 100, End: -1}},
		{"§14.1.2 range from 0", http.MethodGet, false, "bytes=0-0", wantBytes{Start: 0, End: 1}},
		// §14.1.2 suffix-range: the last N bytes, wherever they start.
		{"§14.1.2 suffix range", http.MethodGet, false, "bytes=-500", wantBytes{Suffix: 500}},
		{"§14.1.2 several suffixes: the longest", http.MethodGet, false, "bytes=-10,-500,-20", wantBytes{Suffix: 500}},
		{"§14.1.2 suffix -0 needs no bytes", http.MethodGet, false, "bytes=-0", wantBytes{Start: 0, End: 1}},
		// Mixed: where the suffix starts depends on the size, so one slice
		// first unless an int-range starts at 0 (nothing starts earlier).
		{"§14.1.2 suffix and range: one slice first", http.MethodGet, false, "bytes=100-199,-500", wantBytes{Start: 0, End: 1}},
		{"§14.1.2 suffix and a range from 0", http.MethodGet, false, "bytes=-500,0-99", wantBytes{Start: 0, End: 100}},
		// §14.2 several int-ranges: the lowest first-pos, to the furthest
		// end of the ranges starting there.
		{"§14.2 several ranges: the lowest first", http.MethodGet, false, "bytes=500-599,100-199", wantBytes{Start: 100, End: 200}},
		{"§14.2 several ranges at the lowest start: the longest", http.MethodGet, false, "bytes=500-599,100-199,100-299", wantBytes{Start: 100, End: 300}},
		{"§14.2 an open range at the lowest start", http.MethodGet, false, "bytes=100-199,100-,900-999", wantBytes{Start: 100, End: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var specs []slicer.Spec
			if tt.rng != "" {
				var err error
				if specs, err = slicer.Parse(tt.rng); err != nil {
					t.Fatalf("range=%q: %v", tt.rng, err)
				}
			}
			if got := firstWanted(specs, tt.method, tt.cond); got != tt.want {
				t.Errorf("%s range=%q cond=%v: %+v, want %+v", tt.method, tt.rng, tt.cond, got, tt.want)
			}
		})
	}
}
