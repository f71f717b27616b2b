package edge_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/slicer"
)

// dirRange GETs bytes [start, start+n) of path, wants a 206 of exactly
// those bytes of version, and returns the response.
func (h *harness) dirRange(t *testing.T, path string, version int, start, n int64, headers ...string) *http.Response {
	t.Helper()
	hdr := append([]string{"Range: bytes=" + itoa(start) + "-" + itoa(start+n-1)}, headers...)
	resp, body := h.get(t, path, hdr...)
	if resp.StatusCode != http.StatusPartialContent || int64(len(body)) != n {
		t.Fatalf("GET %s %v: status %d, %d bytes; want a 206 of %d (Cache-Status %q)",
			path, hdr, resp.StatusCode, len(body), n, resp.Header.Get("Cache-Status"))
	}
	wantBytes(t, "GET "+path, body, path, version, start)
	return resp
}

// dirExpectHit wants a range of path answered from the store without any
// origin request.
func (h *harness) dirExpectHit(t *testing.T, what, path string) {
	t.Helper()
	before := h.origin.Requests()
	resp := h.dirRange(t, path, 1, 1000, 100)
	if x := resp.Header.Get("X-Cache"); x != "HIT" || h.origin.Requests() != before {
		t.Fatalf("%s: X-Cache %q, %d origin requests; want a fresh hit with none (Cache-Status %q)",
			what, x, h.origin.Requests()-before, resp.Header.Get("Cache-Status"))
	}
}

// dirExpectRevalidation wants a range of path to cost exactly one origin
// request, a conditional one on the stored ETag, answered 304.
func (h *harness) dirExpectRevalidation(t *testing.T, what, path string) {
	t.Helper()
	before, bytesBefore, nm := h.origin.Requests(), h.origin.BodyBytes(), h.edge.Counters().NotModified
	resp := h.dirRange(t, path, 1, 1000, 100)
	if got := h.origin.Requests() - before; got != 1 {
		t.Fatalf("%s: %d origin requests, want 1 revalidation (Cache-Status %q)", what, got, resp.Header.Get("Cache-Status"))
	}
	recs := h.origin.LastRequests()
	if last := recs[len(recs)-1]; last.IfNoneMatch != origintest.ETag(path, 1) {
		t.Errorf("%s: the origin request was not a revalidation: If-None-Match %q, Range %q", what, last.IfNoneMatch, last.Range)
	}
	if got := h.origin.BodyBytes() - bytesBefore; got != 0 {
		t.Errorf("%s: revalidation cost %d body bytes, want 0", what, got)
	}
	if got := h.edge.Counters().NotModified - nm; got != 1 {
		t.Errorf("%s: %d not_modified revalidations counted, want 1", what, got)
	}
	if cs := resp.Header.Get("Cache-Status"); strings.Contains(cs, "detail=stale") {
		t.Errorf("%s: Cache-Status %q says a stale answer was served after a successful revalidation", what, cs)
	}
}

// expiresHook makes the origin send Expires: now+d (or the literal value
// when raw is set) with every answer.
func expiresHook(h *harness, d time.Duration, raw string) {
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		v := raw
		if v == "" {
			v = time.Now().Add(d).UTC().Format(http.TimeFormat)
		}
		w.Header().Set("Expires", v)
		return false
	})
}

func strp(s string) *string { return &s }

// How long an object is fresh at a shared cache, from the origin's
// Cache-Control and Expires and the rule's default_ttl and override_ttl:
// a hit with no origin request before that, one revalidation after, and
// what the revalidation's answer leaves.
func TestSharedCacheLifetime(t *testing.T) {
	const (
		again0     = "revalidate" // lifetime 0: the next request revalidates again
		againFresh = "hit"        // the 304 made it fresh again
	)
	for _, tc := range []struct {
		name, path string
		cc         *string       // nil: the origin's default max-age=3600
		expires    time.Duration // Expires: now+expires (when expiresRaw is "")
		expiresRaw string
		hasExpires bool
		hitAt      time.Duration // 0: stale at once
		staleAt    time.Duration
		again      string // after the revalidation: again0, againFresh, "" (not checked)
	}{
		// s-maxage is the shared cache's max-age, whichever is longer.
		{name: "s-maxage shorter than max-age", path: "/obj/1MiB.bin", cc: strp("max-age=3600, s-maxage=60"),
			hitAt: 50 * time.Second, staleAt: 61 * time.Second, again: againFresh},
		{name: "s-maxage longer than max-age", path: "/obj/1MiB.bin", cc: strp("max-age=60, s-maxage=600"),
			hitAt: 300 * time.Second, staleAt: 601 * time.Second, again: againFresh},
		{name: "s-maxage=0 with max-age", path: "/obj/1MiB.bin", cc: strp("s-maxage=0, max-age=3600"),
			staleAt: 0, again: again0},
		// Expires counts from the origin's Date (RFC 9111 §4.2.1). What a
		// 304 leaves is not checked for the future Expires rows: the edge
		// drops the 304's Date and counts its Expires from its own clock,
		// here ahead of the origin's by the time advanced.
		{name: "Expires in the future", path: "/obj/1MiB.bin", cc: strp(""), hasExpires: true, expires: 10 * time.Minute,
			hitAt: 9 * time.Minute, staleAt: 11 * time.Minute},
		{name: "Expires in the past", path: "/obj/1MiB.bin", cc: strp(""), hasExpires: true, expires: -time.Hour,
			staleAt: 0, again: again0},
		{name: "invalid Expires is already stale", path: "/obj/1MiB.bin", cc: strp(""), hasExpires: true, expiresRaw: "0",
			staleAt: 0, again: again0},
		{name: "max-age beats Expires", path: "/obj/1MiB.bin", cc: strp("max-age=60"), hasExpires: true, expires: time.Hour,
			hitAt: 50 * time.Second, staleAt: 61 * time.Second, again: againFresh},
		{name: "max-age=0", path: "/obj/1MiB.bin", cc: strp("max-age=0"), staleAt: 0, again: again0},
		// default_ttl: only when the origin gives no freshness.
		{name: "default_ttl without origin freshness", path: "/ttl/1MiB.bin", cc: strp(""),
			hitAt: 9 * time.Minute, staleAt: 11 * time.Minute, again: againFresh},
		{name: "origin max-age beats default_ttl", path: "/ttl/1MiB.bin", cc: strp("max-age=60"),
			hitAt: 50 * time.Second, staleAt: 61 * time.Second, again: againFresh},
		{name: "origin Expires beats default_ttl", path: "/ttl/1MiB.bin", cc: strp(""), hasExpires: true, expires: 2 * time.Minute,
			hitAt: 90 * time.Second, staleAt: 3 * time.Minute},
		// override_ttl: whatever the origin says about freshness.
		{name: "override_ttl beats max-age", path: "/override/1MiB.bin", cc: strp("max-age=60"),
			hitAt: 30 * time.Minute, staleAt: 61 * time.Minute, again: againFresh},
		{name: "override_ttl beats no-cache", path: "/override/1MiB.bin", cc: strp("no-cache"),
			hitAt: 30 * time.Minute, staleAt: 61 * time.Minute, again: againFresh},
		{name: "override_ttl beats s-maxage", path: "/override/1MiB.bin", cc: strp("s-maxage=60, max-age=60"),
			hitAt: 30 * time.Minute, staleAt: 61 * time.Minute, again: againFresh},
		{name: "override_ttl beats max-age=0", path: "/override/1MiB.bin", cc: strp("max-age=0"),
			hitAt: 30 * time.Minute, staleAt: 61 * time.Minute, again: againFresh},
		{name: "override_ttl without origin freshness", path: "/override/1MiB.bin", cc: strp(""),
			hitAt: 30 * time.Minute, staleAt: 61 * time.Minute, again: againFresh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.origin.SetMode(origintest.Mode{CacheControl: tc.cc})
			if tc.hasExpires {
				expiresHook(h, tc.expires, tc.expiresRaw)
			}
			h.warm(t, tc.path)
			if st := h.store.Stats(); st.Objects != 1 || st.Slices != 1 {
				t.Fatalf("after warming: store holds %d objects, %d slices; want 1 and 1", st.Objects, st.Slices)
			}
			if tc.hitAt > 0 {
				h.advance(tc.hitAt)
				h.dirExpectHit(t, "before the lifetime ends", tc.path)
			}
			h.advance(tc.staleAt - tc.hitAt)
			h.dirExpectRevalidation(t, "after the lifetime ends", tc.path)
			switch tc.again {
			case againFresh:
				h.dirExpectHit(t, "right after the revalidation", tc.path)
			case again0:
				h.dirExpectRevalidation(t, "the next request", tc.path)
				h.dirExpectRevalidation(t, "the one after", tc.path)
			}
		})
	}
}

// Directives that forbid serving stale (s-maxage, proxy-revalidate,
// must-revalidate, no-cache; RFC 9111 §4.2.4) win over the origin's and
// the rule's stale-if-error and stale-while-revalidate; the control rows
// show the same windows serving stale without them.
func TestNoStaleWhenForbidden(t *testing.T) {
	for _, tc := range []struct {
		name, path, cc string
		detail         string // "": the stale object must not be served
	}{
		{"control: stale-if-error", "/obj/1MiB.bin", "max-age=60, stale-if-error=600", "stale-if-error"},
		{"control: stale-while-revalidate", "/obj/1MiB.bin", "max-age=60, stale-while-revalidate=600", "stale-while-revalidate"},
		{"control: the rule's stale-if-error", "/sie/1MiB.bin", "max-age=60", "stale-if-error"},
		{"control: the rule's stale-while-revalidate", "/swr/1MiB.bin", "max-age=60", "stale-while-revalidate"},
		{"s-maxage forbids stale-if-error", "/obj/1MiB.bin", "s-maxage=60, stale-if-error=600", ""},
		{"s-maxage forbids stale-while-revalidate", "/obj/1MiB.bin", "s-maxage=60, stale-while-revalidate=600", ""},
		{"s-maxage forbids the rule's stale-if-error", "/sie/1MiB.bin", "max-age=3600, s-maxage=60", ""},
		{"s-maxage forbids the rule's stale-while-revalidate", "/swr/1MiB.bin", "s-maxage=60", ""},
		{"proxy-revalidate forbids stale-if-error", "/obj/1MiB.bin", "max-age=60, proxy-revalidate, stale-if-error=600", ""},
		{"proxy-revalidate forbids stale-while-revalidate", "/obj/1MiB.bin", "max-age=60, proxy-revalidate, stale-while-revalidate=600", ""},
		{"proxy-revalidate forbids the rule's stale-if-error", "/sie/1MiB.bin", "max-age=60, proxy-revalidate", ""},
		{"must-revalidate forbids the rule's stale-while-revalidate", "/swr/1MiB.bin", "max-age=60, must-revalidate", ""},
		{"no-cache forbids the rule's stale-while-revalidate", "/swr/1MiB.bin", "no-cache", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.origin.SetMode(ccMode(tc.cc))
			h.warm(t, tc.path)
			h.advance(61 * time.Second)
			h.stopOrigin()
			resp, body := h.get(t, tc.path, "Range: bytes=10-109")
			cs := resp.Header.Get("Cache-Status")
			if tc.detail == "" {
				if resp.StatusCode != http.StatusBadGateway || strings.Contains(cs, "stale") {
					t.Fatalf("origin stopped: status %d, Cache-Status %q; want 502, no stale answer", resp.StatusCode, cs)
				}
				if got := h.edge.Counters().StaleServed; got != 0 {
					t.Errorf("stale served %d times, want 0", got)
				}
				return
			}
			if resp.StatusCode != http.StatusPartialContent || !strings.Contains(cs, "detail="+tc.detail) {
				t.Fatalf("origin stopped: status %d, Cache-Status %q; want a stale 206 (%s)", resp.StatusCode, cs, tc.detail)
			}
			wantBytes(t, "stale", body, tc.path, 1, 10)
			if got := h.edge.Counters().StaleServed; got != 1 {
				t.Errorf("stale served %d times, want 1", got)
			}
		})
	}
}

// private and no-store answers are passed through and never stored: not
// with max-age or s-maxage, not under default_ttl, override_ttl or a stale
// window of the rule.
func TestPrivateAndNoStoreNotStored(t *testing.T) {
	for _, tc := range []struct{ path, cc string }{
		{"/obj/1MiB.bin", "private"},
		{"/obj/1MiB.bin", "max-age=3600, private"},
		{"/obj/1MiB.bin", "s-maxage=600, private"},
		{"/obj/1MiB.bin", "PRIVATE"},
		{"/ttl/1MiB.bin", "private"},
		{"/swr/1MiB.bin", "max-age=60, private"},
		{"/override/1MiB.bin", "private"},
		{"/override/1MiB.bin", "max-age=3600, private"},
		{"/override/1MiB.bin", "no-store"},
		{"/override/1MiB.bin", "max-age=3600, no-store"},
		{"/ttl/1MiB.bin", "no-store"},
	} {
		t.Run(tc.path+" "+tc.cc, func(t *testing.T) {
			h := newHarness(t)
			h.origin.SetMode(ccMode(tc.cc))
			for i, rng := range []string{"", "bytes=100-199", ""} {
				var hdr []string
				start := int64(0)
				if rng != "" {
					hdr, start = []string{"Range: " + rng}, 100
				}
				resp, body := h.get(t, tc.path, hdr...)
				if resp.StatusCode/100 != 2 || resp.Header.Get("X-Cache") != "PASS" {
					t.Fatalf("request %d: status %d, X-Cache %q; want a pass-through", i, resp.StatusCode, resp.Header.Get("X-Cache"))
				}
				if want := map[bool]int64{true: 100, false: MiB}[rng != ""]; int64(len(body)) != want {
					t.Fatalf("request %d: %d bytes, want %d", i, len(body), want)
				}
				wantBytes(t, "pass-through", body, tc.path, 1, start)
				if got := resp.Header.Get("Cache-Control"); got != tc.cc {
					t.Errorf("request %d: Cache-Control %q reached the client, want the origin's %q", i, got, tc.cc)
				}
			}
			h.settle(t)
			if st := h.store.Stats(); st.Objects != 0 || st.Slices != 0 {
				t.Errorf("store holds %d objects, %d slices of a %q answer", st.Objects, st.Slices, tc.cc)
			}
			// One origin request per client request: the first streams
			// through from its discovery, the others pass (hit-for-pass).
			if c := h.edge.Counters(); c.OriginRequests != 3 || c.PassRequests != 2 || c.SliceMisses != 0 || c.SliceHits != 0 {
				t.Errorf("counters %+v: want 3 origin requests (2 of them pass-throughs), no slices", c)
			}
		})
	}
}

// The rule's stale_while_revalidate extends an origin that says only
// max-age: the stale object is served at once while the revalidation is
// still at the origin, then refreshed; with the origin stopped it is served
// stale for the rule's window and not past it.
func TestRuleStaleWhileRevalidate(t *testing.T) {
	h := newHarness(t)
	const path = "/swr/2MiB.bin"
	h.origin.SetMode(ccMode("max-age=60"))
	h.warm(t, path)

	gate := make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the origin closes, which waits for held requests
	var held atomic.Int32
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("If-None-Match") != "" {
			held.Add(1)
			<-gate
		}
		return false
	})

	h.advance(61 * time.Second)
	resp := h.dirRange(t, path, 1, 0, 100)
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=stale-while-revalidate") {
		t.Fatalf("61 s after max-age=60 under the rule's window: Cache-Status %q, want stale-while-revalidate", cs)
	}
	// The answer is here and the revalidation is still held at the origin.
	origintest.WaitFor(t, "the background revalidation to reach the origin", func() bool { return held.Load() == 1 })
	if got := h.edge.Counters().NotModified; got != 0 {
		t.Fatalf("%d revalidations done while the origin holds the only one", got)
	}
	open()
	origintest.WaitFor(t, "the background revalidation", func() bool { return h.edge.Counters().NotModified == 1 })
	h.dirExpectHit(t, "after the background revalidation", path)

	h.stopOrigin()
	h.advance(61 * time.Second)
	resp = h.dirRange(t, path, 1, MiB+5, 100)
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=stale-while-revalidate") {
		t.Fatalf("origin stopped, inside the window: Cache-Status %q, want stale-while-revalidate", cs)
	}
	if age, _ := strconv.Atoi(resp.Header.Get("Age")); age < 61 || age > 63 {
		t.Errorf("stale answer: Age %q, want about 61", resp.Header.Get("Age"))
	}
	h.advance(9 * time.Minute) // 9 min 1 s stale: still inside
	h.dirRange(t, path, 1, 0, 100)
	if got := h.edge.Counters().StaleServed; got != 3 {
		t.Errorf("stale served %d times, want 3", got)
	}
	h.advance(time.Minute) // past the 10 min window
	resp, _ = h.get(t, path, "Range: bytes=0-99")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("origin stopped, past the rule's window: status %d (Cache-Status %q), want 502",
			resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
}

// Every answer from the store carries its Age: 200, 206, multipart 206,
// HEAD, 304 (If-None-Match and If-Modified-Since), 412 and 416; and a
// revalidation starts it again from 0.
func TestAgeOnEveryStoredAnswer(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/3MiB.bin"
	size := 3 * MiB
	resp, body := h.get(t, path)
	if age := resp.Header.Get("Age"); age != "0" {
		t.Errorf("the miss that stored the object: Age %q, want 0", age)
	}
	wantBytes(t, "miss", body, path, 1, 0)
	h.settle(t)
	h.advance(30 * time.Second)
	before := h.origin.Requests()

	lm := origintest.LastModified(1).Format(http.TimeFormat)
	for _, c := range []struct {
		name, method string
		headers      []string
		status       int
		check        func(t *testing.T, resp *http.Response, body []byte)
	}{
		{"200", "GET", nil, 200, func(t *testing.T, resp *http.Response, body []byte) {
			if int64(len(body)) != size {
				t.Fatalf("%d bytes, want %d", len(body), size)
			}
			wantBytes(t, "200", body, path, 1, 0)
		}},
		{"206", "GET", []string{"Range: bytes=1048570-1048679"}, 206, func(t *testing.T, resp *http.Response, body []byte) {
			if len(body) != 110 {
				t.Fatalf("%d bytes, want 110", len(body))
			}
			wantBytes(t, "206", body, path, 1, 1048570)
		}},
		{"multipart 206", "GET", []string{"Range: bytes=10-19,2000000-2000099"}, 206, func(t *testing.T, resp *http.Response, body []byte) {
			checkMultipart(t, "bytes=10-19,2000000-2000099", resp, body, path, size, []slicer.Range{{Start: 10, End: 20}, {Start: 2000000, End: 2000100}})
		}},
		{"HEAD", "HEAD", nil, 200, func(t *testing.T, resp *http.Response, body []byte) {
			if len(body) != 0 || resp.ContentLength != size {
				t.Fatalf("HEAD: %d body bytes, Content-Length %d", len(body), resp.ContentLength)
			}
		}},
		{"304 to If-None-Match", "GET", []string{"If-None-Match: " + origintest.ETag(path, 1)}, 304, nil},
		{"304 to If-Modified-Since", "GET", []string{"If-Modified-Since: " + lm}, 304, nil},
		{"412 to If-Match", "GET", []string{`If-Match: "other"`}, 412, nil},
		{"416", "GET", []string{"Range: bytes=5000000-"}, 416, func(t *testing.T, resp *http.Response, body []byte) {
			if cr := resp.Header.Get("Content-Range"); cr != "bytes */"+itoa(size) {
				t.Errorf("416: Content-Range %q", cr)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.do(t, c.method, path, c.headers...)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if resp.Header.Get("X-Cache") != "HIT" {
				t.Errorf("X-Cache %q, want HIT", resp.Header.Get("X-Cache"))
			}
			age, err := strconv.Atoi(resp.Header.Get("Age"))
			if err != nil || age < 30 || age > 32 {
				t.Errorf("Age %q 30 s after storing, want 30", resp.Header.Get("Age"))
			}
			if c.check != nil {
				c.check(t, resp, body)
			}
		})
	}
	if got := h.origin.Requests() - before; got != 0 {
		t.Errorf("answers from the store cost %d origin requests", got)
	}

	// Stale: the revalidation's 304 starts the age again.
	h.advance(time.Hour)
	resp = h.dirRange(t, path, 1, 0, 100)
	if h.origin.Requests()-before != 1 || h.edge.Counters().NotModified != 1 {
		t.Fatalf("an hour later: %d origin requests, counters %+v; want one revalidation", h.origin.Requests()-before, h.edge.Counters())
	}
	if age, err := strconv.Atoi(resp.Header.Get("Age")); err != nil || age > 2 {
		t.Errorf("right after a revalidation: Age %q, want 0", resp.Header.Get("Age"))
	}
}

// stripETag is an origin answering without any ETag header.
type stripETag struct{ http.ResponseWriter }

func (w stripETag) WriteHeader(code int) {
	w.Header().Del("ETag")
	w.ResponseWriter.WriteHeader(code)
}

func (w stripETag) Write(p []byte) (int, error) {
	w.Header().Del("ETag")
	return w.ResponseWriter.Write(p)
}

func (w stripETag) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// With last_modified_validator and no strong ETag (none at all, or a weak
// one), Last-Modified is the validator: a later slice's fill is conditioned
// with If-Unmodified-Since, a revalidation with If-Modified-Since, whose 304
// keeps every slice, and a newer Last-Modified replaces the version.
func TestLastModifiedValidator(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *harness)
	}{
		{"no ETag", func(h *harness) {
			h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				h.origin.Handler().ServeHTTP(stripETag{w}, r)
				return true
			})
		}},
		{"weak ETag", func(h *harness) { h.origin.SetMode(origintest.Mode{WeakETag: true}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.setup(h)
			const path = "/lm/1MiB.bin" // 16 slices of 64 KiB
			lm1 := origintest.LastModified(1).Format(http.TimeFormat)

			resp := h.dirRange(t, path, 1, 0, 100)
			if et := resp.Header.Get("ETag"); strings.HasPrefix(et, `"`) {
				t.Fatalf("the origin sent a strong ETag %q", et)
			}
			if got := resp.Header.Get("Last-Modified"); got != lm1 {
				t.Fatalf("Last-Modified %q, want %q", got, lm1)
			}
			h.settle(t)
			if st := h.store.Stats(); st.Objects != 1 || st.Slices != 1 {
				t.Fatalf("store holds %d objects, %d slices; want the first slice stored", st.Objects, st.Slices)
			}

			// A later slice: a fill conditioned on the stored Last-Modified.
			h.origin.ResetCounters()
			const at = 7*64*KiB + 5
			h.dirRange(t, path, 1, at, 100)
			recs := h.origin.LastRequests()
			fill := recs[len(recs)-1]
			if h.origin.Requests() != 1 || fill.IfUnmodifiedSince != lm1 || fill.IfMatch != "" ||
				fill.IfNoneMatch != "" || fill.IfModifiedSince != "" || !strings.HasPrefix(fill.Range, "bytes="+itoa(7*64*KiB)+"-") {
				t.Fatalf("%d origin requests; the fill sent Range %q If-Unmodified-Since %q If-Match %q If-None-Match %q If-Modified-Since %q; want one, on If-Unmodified-Since %q",
					h.origin.Requests(), fill.Range, fill.IfUnmodifiedSince, fill.IfMatch, fill.IfNoneMatch, fill.IfModifiedSince, lm1)
			}
			h.settle(t)
			slices := h.store.Stats().Slices
			if slices != 2 {
				t.Fatalf("store holds %d slices after the fill, want 2", slices)
			}

			// Stale: one If-Modified-Since, a 304, every slice kept.
			h.origin.ResetCounters()
			h.advance(3601 * time.Second)
			h.dirRange(t, path, 1, 0, 100)
			recs = h.origin.LastRequests()
			reval := recs[len(recs)-1]
			if h.origin.Requests() != 1 || reval.IfModifiedSince != lm1 || reval.IfNoneMatch != "" {
				t.Fatalf("%d origin requests; the revalidation sent If-Modified-Since %q If-None-Match %q; want one, on If-Modified-Since %q",
					h.origin.Requests(), reval.IfModifiedSince, reval.IfNoneMatch, lm1)
			}
			if got := h.origin.BodyBytes(); got != 0 {
				t.Errorf("the revalidation cost %d body bytes, want 0", got)
			}
			if c := h.edge.Counters(); c.NotModified != 1 {
				t.Errorf("counters %+v: want one not_modified revalidation", c)
			}
			if st := h.store.Stats(); st.Slices != slices || st.Objects != 1 {
				t.Errorf("after a 304 the store holds %d objects, %d slices; want 1, %d", st.Objects, st.Slices, slices)
			}
			resp = h.dirRange(t, path, 1, at, 100)
			if resp.Header.Get("X-Cache") != "HIT" || h.origin.Requests() != 1 {
				t.Errorf("the slice kept by the 304: X-Cache %q, %d origin requests", resp.Header.Get("X-Cache"), h.origin.Requests())
			}

			// A newer Last-Modified is a new version: its bytes, and the old
			// slices go.
			h.origin.Bump(path)
			h.advance(3601 * time.Second)
			resp = h.dirRange(t, path, 2, 0, 100)
			if got, want := resp.Header.Get("Last-Modified"), origintest.LastModified(2).Format(http.TimeFormat); got != want {
				t.Errorf("after a change: Last-Modified %q, want %q", got, want)
			}
			h.settle(t)
			if st := h.store.Stats(); st.Slices != 1 || st.Objects != 1 {
				t.Errorf("after a change the store holds %d objects, %d slices; want the new version's one slice", st.Objects, st.Slices)
			}
			h.dirRange(t, path, 2, at, 100)
		})
	}
}

// /metrics counts stale answers by reason, revalidations by outcome and
// flap aborts after the events that cause them, and has the store's
// eviction and write-error families and the latency histograms.
func TestDirectiveMetrics(t *testing.T) {
	h := newHarness(t)
	const (
		swr     = "/obj/1MiB-swr.bin"
		sie     = "/obj/1MiB-sie.bin"
		changed = "/obj/1MiB-changed.bin"
		flap    = "/obj/2MiB-flap.bin"
	)
	h.origin.SetPathMode(swr, ccMode("max-age=60, stale-while-revalidate=600"))
	h.origin.SetPathMode(sie, ccMode("max-age=60, stale-if-error=600"))
	h.origin.SetPathMode(changed, ccMode("max-age=60"))
	requests := int64(0)
	for _, p := range []string{swr, sie, changed} {
		h.warm(t, p)
		requests++
	}

	// A flap after the first byte: slice 0 comes from the store, then the
	// fill of slice 1 meets a new version and the answer is cut.
	h.dirRange(t, flap, 1, 0, 10)
	h.settle(t)
	h.origin.Bump(flap)
	if resp, err := h.try("GET", flap, "Range: bytes=0-1048585"); err == nil {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("an answer that met a new version mid-body ended cleanly: status %d, %d bytes", resp.StatusCode, len(b))
		}
		oneVersion(t, "cut answer", b, flap, 0, 2)
	}
	requests += 2

	h.advance(61 * time.Second)
	resp := h.dirRange(t, swr, 1, 0, 100) // stale-while-revalidate; a 304 in the background
	if !strings.Contains(resp.Header.Get("Cache-Status"), "stale-while-revalidate") {
		t.Fatalf("Cache-Status %q, want stale-while-revalidate", resp.Header.Get("Cache-Status"))
	}
	origintest.WaitFor(t, "the background revalidation", func() bool { return h.edge.Counters().NotModified == 1 })
	h.origin.Bump(changed)
	h.dirRange(t, changed, 2, 0, 100) // revalidation: changed
	h.origin.SetPathMode(sie, origintest.Mode{Status: 503})
	resp = h.dirRange(t, sie, 1, 0, 100) // revalidation: error; stale-if-error
	if !strings.Contains(resp.Header.Get("Cache-Status"), "stale-if-error") {
		t.Fatalf("Cache-Status %q, want stale-if-error", resp.Header.Get("Cache-Status"))
	}
	requests += 3
	origintest.WaitFor(t, "every request logged", func() bool { return h.edge.Counters().Requests == requests })
	h.settle(t)

	text := h.metrics(t)
	for name, want := range map[string]float64{
		`sliceedge_stale_served_total{reason="while_revalidate"}`: 1,
		`sliceedge_stale_served_total{reason="if_error"}`:         1,
		`sliceedge_revalidations_total{outcome="not_modified"}`:   1,
		`sliceedge_revalidations_total{outcome="changed"}`:        1,
		`sliceedge_revalidations_total{outcome="error"}`:          1,
		`sliceedge_origin_requests_total{kind="revalidate"}`:      3,
		`sliceedge_origin_errors_total{kind="status_5xx"}`:        1,
		`sliceedge_flap_aborts_total`:                             1,
		`sliceedge_flap_restarts_total`:                           0,
		`sliceedge_store_errors_total`:                            0,
		`sliceedge_store_evictions_total`:                         float64(h.store.Stats().Evictions),
		`sliceedge_store_evicted_bytes_total`:                     float64(h.store.Stats().EvictedBytes),
		`sliceedge_store_write_errors_total`:                      float64(h.store.Stats().WriteErrors),
		`sliceedge_request_duration_seconds_count`:                float64(requests),
		`sliceedge_ttfb_seconds_count`:                            float64(requests),
	} {
		if !hasMetric(text, name) {
			t.Errorf("/metrics lacks %s", name)
		} else if got := metricValue(text, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, family := range []string{
		"sliceedge_ttfb_seconds_bucket{", "sliceedge_ttfb_seconds_sum ",
		"sliceedge_request_duration_seconds_bucket{", "sliceedge_request_duration_seconds_sum ",
	} {
		if !strings.Contains(text, "\n"+family) {
			t.Errorf("/metrics lacks %s", family)
		}
	}
	for _, fam := range []string{"sliceedge_ttfb_seconds", "sliceedge_request_duration_seconds"} {
		if got := metricValue(text, fam+`_bucket{le="+Inf"}`); got != float64(requests) {
			t.Errorf(`%s_bucket{le="+Inf"} = %v, want %d`, fam, got, requests)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", grep(text, "sliceedge_"))
	}
}

// hasMetric reports whether the /metrics text has a sample named name.
func hasMetric(text, name string) bool {
	return strings.HasPrefix(text, name+" ") || strings.Contains(text, "\n"+name+" ")
}
