package edge

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/config"
)

// Malformed, repeated, negative and huge freshness values: what freshness()
// and storedAt() make of each, to the second. The rules applied, all from
// RFC 9111:
//   - §1.2.2: delta-seconds is digits only; a value above 2^31, or too large
//     to parse, counts as 2^31 seconds.
//   - §4.2.1: a directive or field given more than once counts the first
//     time (the RFC's other choice, "consider the response stale", is not
//     taken: see parseCacheControl); invalid freshness information (a
//     max-age that is not delta-seconds) makes the response stale.
//   - §5.2: a recipient accepts a quoted argument (max-age="60").
//   - §5.3: max-age and s-maxage make Expires ignored; an invalid Expires
//     (0, a word) means already expired.
//   - §5.1: an invalid Age is ignored; of several values the first counts.

// TestFreshnessMalformed is the table of §1.2.2, §4.2.1, §5.2 and §5.3
// inputs that the basic rows of TestFreshness do not cover.
func TestFreshnessMalformed(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	none := config.Rule{}
	ttl := config.Rule{DefaultTTL: 10 * time.Minute}
	heur := config.Rule{HeuristicFraction: 0.1, HeuristicMax: 24 * time.Hour}
	const max31 = (1 << 31) * time.Second
	tests := []struct {
		name   string
		header []string
		rule   config.Rule
		want   policy
		ok     bool
	}{
		// §1.2.2 and §4.2.1: max-age that is not delta-seconds is invalid
		// freshness information: stored, stale at once, whatever Expires,
		// default_ttl or a heuristic would say.
		{"§4.2.1 max-age=-1 is stale", []string{"Cache-Control: max-age=-1"}, none, policy{}, true},
		{"§4.2.1 max-age=abc is stale", []string{"Cache-Control: max-age=abc"}, none, policy{}, true},
		{"§4.2.1 max-age=1.5 is stale", []string{"Cache-Control: max-age=1.5"}, none, policy{}, true},
		{"§4.2.1 max-age=+60 is stale", []string{"Cache-Control: max-age=+60"}, none, policy{}, true},
		{"§4.2.1 max-age without argument is stale", []string{"Cache-Control: max-age"}, none, policy{}, true},
		{"§4.2.1 max-age= (empty) is stale", []string{"Cache-Control: max-age="}, none, policy{}, true},
		{"§4.2.1 invalid max-age: default_ttl does not apply", []string{"Cache-Control: max-age=abc"}, ttl, policy{}, true},
		{"§4.2.1 invalid max-age: no heuristic", []string{"Cache-Control: max-age=-1", "Date: " + at(0), "Last-Modified: " + at(-100*time.Hour)}, heur, policy{}, true},
		{"§5.3 invalid max-age still makes Expires ignored", []string{"Cache-Control: max-age=abc", "Date: " + at(0), "Expires: " + at(time.Hour)}, none, policy{}, true},
		{"§4.2.1 s-maxage=-5 is stale, over a valid max-age", []string{"Cache-Control: s-maxage=-5, max-age=600"}, none, policy{mustRevalidate: true}, true},
		// §5.2: a quoted argument is accepted; only a whole quoted-string.
		{`§5.2 max-age="60" is 60`, []string{`Cache-Control: max-age="60"`}, none, policy{lifetime: time.Minute}, true},
		{`§5.2 s-maxage="60" is 60`, []string{`Cache-Control: s-maxage="60", max-age=5`}, none, policy{lifetime: time.Minute, mustRevalidate: true}, true},
		{`§5.2 max-age=" 60" is not delta-seconds`, []string{`Cache-Control: max-age=" 60"`}, none, policy{}, true},
		{`§5.2 max-age="60 (unterminated) is stale`, []string{`Cache-Control: max-age="60`}, none, policy{}, true},
		{`§5.2 max-age="60"0 is stale`, []string{`Cache-Control: max-age="60"0`}, none, policy{}, true},
		{`§5.2 a comma in a quoted string does not end the directive`, []string{`Cache-Control: ext="a, max-age=3600"`}, ttl, policy{lifetime: 10 * time.Minute}, true},
		{"§5.2 spaces around the list are optional", []string{"Cache-Control: ,  max-age=60 ,,"}, none, policy{lifetime: time.Minute}, true},
		// §1.2.2: huge values saturate at 2^31 seconds.
		{"§1.2.2 max-age=2^31-1 is kept", []string{"Cache-Control: max-age=2147483647"}, none, policy{lifetime: max31 - time.Second}, true},
		{"§1.2.2 max-age=2^31+1 is 2^31", []string{"Cache-Control: max-age=2147483649"}, none, policy{lifetime: max31}, true},
		{"§1.2.2 max-age of 20 digits is 2^31", []string{"Cache-Control: max-age=99999999999999999999"}, none, policy{lifetime: max31}, true},
		{"§1.2.2 s-maxage of 40 digits is 2^31", []string{"Cache-Control: s-maxage=9999999999999999999999999999999999999999"}, none, policy{lifetime: max31, mustRevalidate: true}, true},
		{"§1.2.2 stale-while-revalidate of 20 digits is 2^31", []string{"Cache-Control: max-age=1, stale-while-revalidate=99999999999999999999"}, none, policy{lifetime: time.Second, swr: max31}, true},
		{"§1.2.2 leading zeros", []string{"Cache-Control: max-age=000000000000000000060"}, none, policy{lifetime: time.Minute}, true},
		// §4.2.1: the first occurrence counts, valid or not.
		{"§4.2.1 max-age=60, max-age=10: the first", []string{"Cache-Control: max-age=60, max-age=10"}, none, policy{lifetime: time.Minute}, true},
		{"§4.2.1 max-age=10, max-age=60: the first", []string{"Cache-Control: max-age=10, max-age=60"}, none, policy{lifetime: 10 * time.Second}, true},
		{"§4.2.1 max-age on two field lines: the first", []string{"Cache-Control: max-age=60", "Cache-Control: max-age=3600"}, none, policy{lifetime: time.Minute}, true},
		{"§4.2.1 an invalid first max-age decides: stale", []string{"Cache-Control: max-age=abc, max-age=60"}, none, policy{}, true},
		{"§4.2.1 a valid first max-age decides", []string{"Cache-Control: max-age=60, max-age=abc"}, none, policy{lifetime: time.Minute}, true},
		{"§4.2.1 stale-if-error twice: the first", []string{"Cache-Control: max-age=1, stale-if-error=5, stale-if-error=500"}, none, policy{lifetime: time.Second, sie: 5 * time.Second}, true},
		{"RFC 5861 an invalid stale-if-error gives no window", []string{"Cache-Control: max-age=1, stale-if-error=-5"}, none, policy{lifetime: time.Second}, true},
		// §5.3 and §4.2.1: Expires.
		{"§5.3 Expires: 0 is already expired", []string{"Date: " + at(0), "Expires: 0"}, none, policy{}, true},
		{"§5.3 Expires: -1 is already expired", []string{"Expires: -1"}, ttl, policy{}, true},
		{"§5.3 an invalid date is already expired", []string{"Date: " + at(0), "Expires: tomorrow"}, heur, policy{}, true},
		{"§5.3 an empty Expires is already expired", []string{"Date: " + at(0), "Expires:"}, ttl, policy{}, true},
		{"§5.3 Expires in the past", []string{"Date: " + at(0), "Expires: Thu, 01 Jan 1970 00:00:00 GMT"}, none, policy{}, true},
		{"§4.2.1 two Expires lines: the first", []string{"Date: " + at(0), "Expires: " + at(time.Minute), "Expires: " + at(time.Hour)}, none, policy{lifetime: time.Minute}, true},
		{"§4.2.1 two Expires lines, the first invalid: expired", []string{"Date: " + at(0), "Expires: 0", "Expires: " + at(time.Hour)}, none, policy{}, true},
		{"§4.2.1 two Date lines: the first", []string{"Date: " + at(-time.Hour), "Date: " + at(0), "Expires: " + at(0)}, none, policy{lifetime: time.Hour}, true},
		{"§4.2.1 an invalid Date: Expires counts from the time received", []string{"Date: yesterday", "Expires: " + at(time.Minute)}, none, policy{lifetime: time.Minute}, true},
		{"§1.2.2 an Expires centuries ahead is 2^31 seconds", []string{"Date: " + at(0), "Expires: Fri, 31 Dec 9999 23:59:59 GMT"}, none, policy{lifetime: max31}, true},
		{"§5.3 an invalid Expires is ignored under max-age", []string{"Cache-Control: max-age=60", "Expires: 0"}, none, policy{lifetime: time.Minute}, true},
		{"§5.3 an invalid Expires is ignored under s-maxage", []string{"Cache-Control: s-maxage=60", "Expires: never"}, none, policy{lifetime: time.Minute, mustRevalidate: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := tt.rule
			p, ok, why := freshness(hdr(tt.header...), now, &rule)
			if ok != tt.ok {
				t.Fatalf("headers=%q: ok=%v (%s), want %v", tt.header, ok, why, tt.ok)
			}
			if p != tt.want {
				t.Errorf("headers=%q: policy %+v, want %+v", tt.header, p, tt.want)
			}
		})
	}
}

// TestStoredAtMalformed: the Age a response arrives with (RFC 9111 §5.1),
// malformed, repeated or huge, and the response delay that always counts
// (§4.2.3).
func TestStoredAtMalformed(t *testing.T) {
	arrived := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	const max31 = (1 << 31) * time.Second
	tests := []struct {
		name  string
		age   []string      // Age field lines
		delay time.Duration // arrived minus the request's send time
		want  time.Duration // storedAt minus arrived
	}{
		{"§5.1 negative Age is ignored; the delay counts", []string{"-30"}, 2 * time.Second, -2 * time.Second},
		{"§5.1 a word is ignored", []string{"abc"}, time.Second, -time.Second},
		{"§5.1 a fraction is ignored", []string{"1.5"}, 0, 0},
		{"§5.1 a sign is not delta-seconds", []string{"+10"}, 0, 0},
		{"§5.1 a quoted Age is not delta-seconds", []string{`"10"`}, 0, 0},
		{"§5.1 an empty Age is ignored", []string{""}, time.Second, -time.Second},
		{"§5.1 spaces around the value", []string{"  10  "}, 0, -10 * time.Second},
		{"§5.1 two field lines: the first", []string{"10", "99"}, time.Second, -11 * time.Second},
		{"§5.1 a list: the first member", []string{"10, 99"}, 0, -10 * time.Second},
		{"§5.1 a list whose first member is invalid: ignored", []string{"abc, 10"}, 0, 0},
		{"§5.1 two lines, the first invalid: ignored", []string{"-1", "10"}, 0, 0},
		{"§1.2.2 2^31-1 is kept", []string{"2147483647"}, 0, -max31 + time.Second},
		{"§1.2.2 2^31 is kept", []string{"2147483648"}, 0, -max31},
		{"§1.2.2 20 digits count as 2^31", []string{"99999999999999999999"}, 0, -max31},
		{"§1.2.2 40 digits count as 2^31", []string{"9999999999999999999999999999999999999999"}, 3 * time.Second, -max31 - 3*time.Second},
		{"§4.2.3 a clock that went back is no delay", nil, -5 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.age {
				h.Add("Age", v)
			}
			got := storedAt(h, arrived.Add(-tt.delay), arrived).Sub(arrived)
			if got != tt.want {
				t.Errorf("%s: storedAt is arrival%+v, want arrival%+v", fmt.Sprintf("Age=%q delay=%v", tt.age, tt.delay), got, tt.want)
			}
		})
	}
}
