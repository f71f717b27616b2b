package segstore_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// edgeConfig is an edge in front of a new test origin, with 1 MiB slices
// for every path.
// testAdminToken is the admin token of edgeConfig's configuration.
const testAdminToken = "segstore-tests-admin-token"

func edgeConfig(t *testing.T) (*origintest.Server, *config.Config) {
	t.Helper()
	o := origintest.NewTest(t)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(
		"listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:1, token: %s}\nstore: {dir: unused, max_bytes: 1GiB}\norigins: {default: {url: %q}}\n"+
			"rules:\n  - {match: /, origin: default, slice_size: 1MiB}\n", testAdminToken, o.URL())))
	if err != nil {
		t.Fatal(err)
	}
	return o, cfg
}

// getWhole GETs path (Host edge.test) from the edge srv served by ts,
// checks the whole body against the origin's bytes, waits for its fills
// to land, and returns its X-Cache.
func getWhole(t *testing.T, ts *httptest.Server, srv *edge.Server, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	req.Host = "edge.test"
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := origintest.Verify(body, path, 1, 0); !ok || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %d bytes: wrong answer", path, resp.StatusCode, len(body))
	}
	origintest.WaitFor(t, "fills", func() bool { return srv.InFlight() == 0 })
	return resp.Header.Get("X-Cache")
}

// adminPurge POSTs a purge with query q to the admin API at admin, with
// testAdminToken, and returns its status and answer.
func adminPurge(t *testing.T, admin *httptest.Server, q url.Values) (int, edge.PurgeResult) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, admin.URL+"/purge?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := admin.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res edge.PurgeResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, res
}

// A slice file damaged while the edge runs, after the slice was verified
// and sent, is caught by the scrubber within its pass: the store drops the
// slice and logs it, the edge refetches it from the origin, and the next
// read is a hit. (edge/corrupt_test.go flips a byte while the edge is
// down: the verification before the first send catches that one.)
func TestEdgeRefetchesSliceTheScrubberDropped(t *testing.T) {
	defer segstore.SetScrubPause(segstore.SetScrubPause(20 * time.Millisecond))
	o, cfg := edgeConfig(t)
	var storeLog origintest.LogBuffer
	st, err := segstore.Open(segstore.Options{Dir: t.TempDir(), MaxBytes: cfg.Store.MaxBytes, ScrubRate: 1 << 30,
		Logger: func(format string, args ...any) { fmt.Fprintf(&storeLog, format+"\n", args...) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(&edge.Server{Config: cfg, Store: st, Log: zerolog.Nop(), Now: time.Now})
	defer srv.Close()

	const path, slice = "/corrupt/4MiB.bin", 2
	get := func(rng string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Host = "edge.test"
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	if resp, body := get(""); resp.StatusCode != 200 || len(body) != 4<<20 {
		t.Fatalf("warm: %d, %d bytes", resp.StatusCode, len(body))
	}
	origintest.WaitFor(t, "the slices to be stored", func() bool { return st.Stats().Slices >= 4 })

	m, err := st.Meta("edge.test" + path)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(fmt.Sprintf("bytes=%d-%d", slice<<20, slice<<20+99)); resp.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("before the damage: X-Cache %q, want HIT", resp.Header.Get("X-Cache"))
	}
	flipByte(t, st.SlicePath(m.Key, m.Version, slice), 100_003)
	origintest.WaitFor(t, "the scrubber to drop the damaged slice", func() bool { return !st.Has(m, slice) })
	if n := st.Stats().Corrupt; n != 1 {
		t.Errorf("Stats.Corrupt = %d, want 1", n)
	}

	o.ResetCounters()
	rng := fmt.Sprintf("bytes=%d-%d", slice<<20, 3<<20-1)
	resp, body := get(rng)
	if resp.StatusCode != 206 || len(body) != 1<<20 {
		t.Fatalf("damaged slice: %d, %d bytes", resp.StatusCode, len(body))
	}
	if at, ok := origintest.Verify(body, path, 1, slice<<20); !ok {
		t.Fatalf("damaged slice: wrong byte at object offset %d", at)
	}
	if o.Requests() == 0 {
		t.Errorf("the origin was not asked for the damaged slice again")
	}
	logged := storeLog.String()
	if !strings.Contains(logged, "deleting slice 2 of") {
		t.Errorf("the corrupt slice was not logged; store log:\n%s", logged)
	}

	origintest.WaitFor(t, "the refetched slice to be stored", func() bool { return st.Has(m, slice) })
	o.ResetCounters()
	resp, body = get(rng)
	if resp.StatusCode != 206 || resp.Header.Get("X-Cache") != "HIT" || o.Requests() != 0 {
		t.Errorf("after the refetch: %d, X-Cache %q, %d origin requests; want 206 HIT from the store",
			resp.StatusCode, resp.Header.Get("X-Cache"), o.Requests())
	}
	if at, ok := origintest.Verify(body, path, 1, slice<<20); !ok {
		t.Fatalf("after the refetch: wrong byte at object offset %d", at)
	}
}

// flipByte flips one bit of the byte at off in file.
func flipByte(t *testing.T, file string, off int64) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
