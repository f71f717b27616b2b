package edge_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sliceedge/sliceedge/edge"
)

// Purge by tag and by glob, and the listing: an origin's Surrogate-Key
// and Cache-Tag values are kept with each object (and never shown to
// clients); a purge by tag or glob removes exactly the objects it names,
// each fetched again whole and right afterwards; /ls lists what is left.
func TestPurgeByTagAndGlob(t *testing.T) {
	h := newHarness(t)
	tags := map[string][2]string{ // path: Surrogate-Key, Cache-Tag
		"/obj/a/1MiB.bin":      {"red blue", ""},
		"/obj/b/1MiB.bin":      {"", "blue,green"},
		"/obj/c/64KiB.bin":     {"", ""},
		"/obj/g/1MiB.mp4":      {"", ""},
		"/obj/g/2MiB.mp4":      {"", "green"},
		"/obj/g/sub/1MiB.mp4":  {"", ""},
		"/obj/g/64KiB.bin":     {"", ""},
		"/obj/g/1MiB.mp4?x=1":  {"", ""},
		"/obj/h/128KiB.bin":    {"blueish", ""},
		"/obj/h/256KiB.bin":    {"", "Blue"},
		"/obj/a/x/128KiB.bin":  {"", ""},
		"/obj/b/y/256KiB.bin":  {"", ""},
		"/obj/b/y/512KiB.bin":  {"", ""},
		"/obj/b/y/1536KiB.bin": {"", ""},
		// Many tags: all purge it, /ls shows the first 16 and counts the rest.
		"/obj/m/64KiB.bin": {strings.TrimSpace(strings.Repeat("t ", 40)) + " many", ""},
	}
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if tg, ok := tags[r.URL.RequestURI()]; ok {
			if tg[0] != "" {
				w.Header().Set("Surrogate-Key", tg[0])
			}
			if tg[1] != "" {
				w.Header().Set("Cache-Tag", tg[1])
			}
		}
		return false
	})
	paths := make([]string, 0, len(tags))
	for p := range tags {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	fetch := func(p, want string) {
		t.Helper()
		resp, body := h.get(t, p)
		wantBytes(t, p, body, strings.SplitN(p, "?", 2)[0], 1, 0)
		if got := resp.Header.Get("X-Cache"); got != want {
			t.Errorf("%s: X-Cache %s, want %s", p, got, want)
		}
		for _, k := range []string{"Surrogate-Key", "Cache-Tag"} {
			if v := resp.Header.Get(k); v != "" {
				t.Errorf("%s: the client got %s: %s", p, k, v)
			}
		}
	}
	for _, p := range paths {
		fetch(p, "MISS")
	}
	h.settle(t)
	for _, p := range paths {
		fetch(p, "HIT")
	}

	purge := func(q url.Values, want int) {
		t.Helper()
		var res edge.PurgeResult
		if code := h.admin(t, "POST", "/purge", q, &res); code != 200 || res.Purged != want {
			t.Fatalf("purge %v: %d, %d objects; want 200, %d", q, code, res.Purged, want)
		}
	}
	// Tags match whole and case-sensitively: not blueish, not Blue.
	purge(url.Values{"tag": {"blue"}}, 2)
	purge(url.Values{"tag": {"blue"}}, 0)
	// * stays within one segment, and the query does not stop a match.
	purge(url.Values{"glob": {"http://edge.test/obj/g/*.mp4"}}, 3)
	purge(url.Values{"glob": {"edge.test/obj/b/y/[25]*KiB.bin"}}, 2)
	gone := []string{"/obj/a/1MiB.bin", "/obj/b/1MiB.bin", "/obj/g/1MiB.mp4", "/obj/g/2MiB.mp4", "/obj/g/1MiB.mp4?x=1", "/obj/b/y/256KiB.bin", "/obj/b/y/512KiB.bin"}

	var l edge.Listing
	if code := h.admin(t, "GET", "/ls", url.Values{"prefix": {"http://edge.test/obj/"}}, &l); code != 200 {
		t.Fatalf("ls: %d", code)
	}
	var listed []string
	for _, o := range l.Objects {
		listed = append(listed, o.Key)
		if o.Key == "edge.test/obj/m/64KiB.bin" && (len(o.Tags) != 16 || o.MoreTags != 25) {
			t.Errorf("an object with 41 tags listed with %d and %d more, want 16 and 25 more", len(o.Tags), o.MoreTags)
		}
		if o.Key == "edge.test/obj/h/256KiB.bin" && (!slices.Equal(o.Tags, []string{"Blue"}) || o.Size != 256<<10 || o.Stored != o.Slices || !o.Fresh) {
			t.Errorf("listed %+v", o)
		}
	}
	var want []string
	for _, p := range paths {
		if !slices.Contains(gone, p) {
			want = append(want, "edge.test"+p)
		}
	}
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("ls lists\n%q\nwant\n%q", listed, want)
	}
	// Pages.
	var page edge.Listing
	h.admin(t, "GET", "/ls", url.Values{"prefix": {"edge.test/obj/"}, "limit": {"2"}}, &page)
	if len(page.Objects) != 2 || page.Next != want[1] {
		t.Errorf("first page of 2: %+v", page)
	}
	h.admin(t, "GET", "/ls", url.Values{"prefix": {"edge.test/obj/"}, "limit": {"2"}, "after": {page.Next}}, &page)
	if len(page.Objects) != 2 || page.Objects[0].Key != want[2] {
		t.Errorf("second page: %+v", page)
	}

	// The 41st tag, past what /ls shows, still purges.
	purge(url.Values{"tag": {"many"}}, 1)
	gone = append(gone, "/obj/m/64KiB.bin")
	for _, p := range paths {
		if slices.Contains(gone, p) {
			fetch(p, "MISS")
		} else {
			fetch(p, "HIT")
		}
	}

	for _, q := range []url.Values{
		{"tag": {"two words"}},
		{"tag": {"a,b"}},
		{"glob": {"http://edge.test/obj/a/1MiB.bin"}},
		{"glob": {"http://*.test/obj/"}},
		{"glob": {"http://edge.test/obj/[a-"}},
		{"tag": {"blue"}, "url": {"http://edge.test/obj/c/64KiB.bin"}},
	} {
		if code := h.admin(t, "POST", "/purge", q, nil); code != 400 {
			t.Errorf("purge %v: %d, want 400", q, code)
		}
	}
	if code := h.admin(t, "GET", "/ls", url.Values{"limit": {"0"}}, nil); code != 400 {
		t.Errorf("ls limit 0: %d, want 400", code)
	}
}
