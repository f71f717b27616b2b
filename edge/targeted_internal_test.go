package edge

import (
	"net/http"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/config"
)

// TestTargetedFreshness: which directives a targeted field (RFC 9213)
// gives freshness(), and when it is ignored for Cache-Control's.
func TestTargetedFreshness(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	none := config.Rule{}
	ttl := config.Rule{DefaultTTL: 10 * time.Minute}
	own := config.Rule{TargetedCacheControl: "X-Edge-Control"}
	const max31 = (1 << 31) * time.Second
	tests := []struct {
		name   string
		header []string
		rule   config.Rule
		want   policy
		ok     bool
		why    string // when !ok
	}{
		// §2.1: the targeted field replaces Cache-Control for this cache.
		{"RFC 9213 §3.1 CDN-Cache-Control max-age over Cache-Control no-store",
			[]string{"Cache-Control: no-store", "CDN-Cache-Control: max-age=600"}, none, policy{lifetime: 10 * time.Minute}, true, ""},
		{"RFC 9213 §3.1 CDN-Cache-Control no-store over Cache-Control max-age",
			[]string{"Cache-Control: max-age=600", "CDN-Cache-Control: no-store"}, none, policy{}, false, "Cdn-Cache-Control: no-store"},
		{"RFC 9213 §3.1 s-maxage of Cache-Control does not apply beside the targeted field",
			[]string{"Cache-Control: max-age=60, s-maxage=120", "CDN-Cache-Control: max-age=600"}, none, policy{lifetime: 10 * time.Minute}, true, ""},
		{"RFC 9213 §2.1 a directive the targeted field lacks is not taken from Cache-Control",
			[]string{"Cache-Control: max-age=60, must-revalidate", "CDN-Cache-Control: stale-if-error=30"}, ttl, policy{lifetime: 10 * time.Minute, sie: 30 * time.Second}, true, ""},
		{"RFC 9213 §2.1 Expires is ignored with the targeted field",
			[]string{"Date: " + at(0), "Expires: " + at(time.Hour), "CDN-Cache-Control: must-revalidate"}, none, policy{mustRevalidate: true}, false, "Cdn-Cache-Control: no freshness information"},
		{"RFC 9213 §2.1 an invalid Expires is ignored too",
			[]string{"Expires: 0", "CDN-Cache-Control: stale-if-error=30"}, ttl, policy{lifetime: 10 * time.Minute, sie: 30 * time.Second}, true, ""},
		{"RFC 9213 §2.1 private in the targeted field",
			[]string{"Cache-Control: public, max-age=60", "CDN-Cache-Control: private"}, none, policy{}, false, "Cdn-Cache-Control: private"},
		{"RFC 9213 §2.1 no-store in the targeted field wins over override_ttl",
			[]string{"CDN-Cache-Control: no-store"}, config.Rule{OverrideTTL: time.Hour}, policy{}, false, "Cdn-Cache-Control: no-store"},
		{"RFC 9213 §2.1 s-maxage in the targeted field",
			[]string{"CDN-Cache-Control: s-maxage=30, max-age=600"}, none, policy{lifetime: 30 * time.Second, mustRevalidate: true}, true, ""},
		{"RFC 9213 §2.1 no-cache in the targeted field",
			[]string{"Cache-Control: max-age=600", "CDN-Cache-Control: no-cache"}, none, policy{mustRevalidate: true}, true, ""},
		// The target list: the rule's field first, then CDN-Cache-Control.
		{"RFC 9213 §2.1 Sliceedge-Cache-Control over CDN-Cache-Control",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control: no-store", "Sliceedge-Cache-Control: max-age=300"}, none, policy{lifetime: 5 * time.Minute}, true, ""},
		{"RFC 9213 §2.1 an invalid first field yields to the next",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control: max-age=600", "Sliceedge-Cache-Control: max-age=300,"}, none, policy{lifetime: 10 * time.Minute}, true, ""},
		{"RFC 9213 §2.1 both invalid: Cache-Control",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control: Max-Age=600", "Sliceedge-Cache-Control: max-age 300"}, none, policy{lifetime: time.Minute}, true, ""},
		{"RFC 9213 §2.1 the rule's own field",
			[]string{"Cache-Control: max-age=60", "X-Edge-Control: max-age=5", "Sliceedge-Cache-Control: max-age=300"}, own, policy{lifetime: 5 * time.Second}, true, ""},
		{"RFC 9213 §2.1 a field on no target list changes nothing",
			[]string{"Cache-Control: max-age=60", "Sliceedge-Cache-Control: no-store"}, own, policy{lifetime: time.Minute}, true, ""},
		// §2.2: parsed as a Structured Field Dictionary; an empty field or
		// a parse error makes it ignored.
		{"RFC 9213 §2.2 an empty field is ignored",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control:"}, none, policy{lifetime: time.Minute}, true, ""},
		{"RFC 8941 §4.2.3.3 an upper case key is a parse error",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control: Max-Age=600"}, none, policy{lifetime: time.Minute}, true, ""},
		{"RFC 8941 §4.2.2 a trailing comma is a parse error",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control: max-age=600,"}, none, policy{lifetime: time.Minute}, true, ""},
		{"RFC 8941 §4.2.2 members need a comma between them",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control: max-age=600 no-store"}, none, policy{lifetime: time.Minute}, true, ""},
		{"RFC 8941 §4.2.4 an Integer of 16 digits is a parse error",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control: max-age=1000000000000000"}, none, policy{lifetime: time.Minute}, true, ""},
		{"RFC 8941 §4.2.5 an unterminated String is a parse error",
			[]string{"Cache-Control: max-age=60", `CDN-Cache-Control: no-cache="a, max-age=600`}, none, policy{lifetime: time.Minute}, true, ""},
		{"RFC 8941 §4.2.4 15 digits parse, and count as 2^31 s",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control: max-age=999999999999999"}, none, policy{lifetime: max31}, true, ""},
		{"RFC 9213 §2.2 a String is not an Integer: stale",
			[]string{"Cache-Control: max-age=60", `CDN-Cache-Control: max-age="600"`}, none, policy{}, true, ""},
		{"RFC 9213 §2.2 a Decimal is not an Integer: stale",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control: max-age=1.5"}, none, policy{}, true, ""},
		{"RFC 9213 §2.2 a negative Integer is not delta-seconds: stale",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control: max-age=-1"}, none, policy{}, true, ""},
		{"RFC 9213 §2.2 max-age without a value: stale",
			[]string{"Cache-Control: max-age=60", "CDN-Cache-Control: max-age"}, none, policy{}, true, ""},
		{"RFC 8941 §4.2.2 a key given twice keeps its last value",
			[]string{"CDN-Cache-Control: max-age=60, max-age=600"}, none, policy{lifetime: 10 * time.Minute}, true, ""},
		{"RFC 8941 §3.3.6 no-store=?0 is not no-store",
			[]string{"Cache-Control: no-store", "CDN-Cache-Control: no-store=?0, max-age=60"}, none, policy{lifetime: time.Minute}, true, ""},
		{"RFC 9213 §2.2 a qualified no-cache counts whole",
			[]string{`CDN-Cache-Control: no-cache="set-cookie", max-age=60`}, none, policy{mustRevalidate: true}, true, ""},
		{"RFC 8941 §3.1.2 parameters, tokens, inner lists and byte sequences parse",
			[]string{`CDN-Cache-Control: max-age=60;a=1;b="x", ext=(a "b" 1.5);p, t=tok/en:x, bytes=:aGk=:, flag=?1`}, none, policy{lifetime: time.Minute}, true, ""},
		{"RFC 8941 §4.2 field lines are joined with commas",
			[]string{"CDN-Cache-Control: max-age=60", "CDN-Cache-Control: no-store"}, none, policy{}, false, "Cdn-Cache-Control: no-store"},
		{"RFC 9213 §3.1 none: valid and non-empty, so Cache-Control's no-store is ignored",
			[]string{"Cache-Control: no-store", "CDN-Cache-Control: none"}, ttl, policy{lifetime: 10 * time.Minute}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := tt.rule
			p, ok, why := freshness(hdr(tt.header...), now, &rule)
			if ok != tt.ok || why != tt.why {
				t.Fatalf("headers=%q: ok=%v why=%q, want ok=%v why=%q", tt.header, ok, why, tt.ok, tt.why)
			}
			if ok && p != tt.want {
				t.Errorf("headers=%q: policy %+v, want %+v", tt.header, p, tt.want)
			}
		})
	}
}
