package edge_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// TestOriginPoolMemberStopsMidLoad: an origin of two members, one of which
// stops (its listener and connections closed) while clients download
// ranges through the edge. Every byte served is right; fills cut by the
// stop are fetched again from the other member, with If-Match, so the
// clients see no cut answers; the stopped member is taken out of the pool;
// the edge stays ready until both are gone.
func TestOriginPoolMemberStopsMidLoad(t *testing.T) {
	a, err := origintest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := origintest.NewTest(t)
	// Paced bodies, so that fills are under way when a stops.
	a.SetMode(origintest.Mode{Bandwidth: 32 << 20})
	b.SetMode(origintest.Mode{Bandwidth: 32 << 20})
	yaml := fmt.Sprintf(`
listen: 127.0.0.1:0
store: {dir: unused, max_bytes: 64GiB}
origins:
  media:
    urls: [%s, %s]
    max_fails: 2
    fail_timeout: 1h
    read_timeout: 5s
rules:
  - {match: /, origin: media, slice_size: 256KiB, max_run: 4}
`, a.URL(), b.URL())
	h := newHarnessWith(t, setup{Config: func(string) string { return yaml }})

	const objects, size = 4, 16 << 20
	var served, cut, wrong atomic.Int64
	var failures sync.Map
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("/pool/%d/16MiB.bin", rng.IntN(objects))
				start := rng.Int64N(size - 1)
				end := min(start+rng.Int64N(3<<20)+1, size) - 1
				resp, err := h.try(http.MethodGet, path, fmt.Sprintf("Range: bytes=%d-%d", start, end))
				if err != nil {
					failures.Store(err.Error(), true)
					continue
				}
				n, err := verifyStream(resp.Body, path, 1, start)
				resp.Body.Close()
				switch {
				case err != nil && strings.Contains(err.Error(), "wrong byte"):
					wrong.Add(1)
					failures.Store(err.Error(), true)
				case err != nil || n != end-start+1:
					cut.Add(1)
					failures.Store(fmt.Sprintf("status %d, %d of %d bytes: %v", resp.StatusCode, n, end-start+1, err), true)
				default:
					served.Add(1)
				}
			}
		})
	}
	// Let the load reach both members, then stop a.
	for end := time.Now().Add(20 * time.Second); a.Requests() < 8 && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
	}
	stoppedAt := served.Load()
	a.Close()
	for end := time.Now().Add(20 * time.Second); served.Load() < stoppedAt+80 && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
	}
	close(stop)
	wg.Wait()
	failures.Range(func(k, _ any) bool { t.Log(k); return true })
	t.Logf("answers: %d whole, %d cut, %d wrong; member a answered %d requests, b %d", served.Load(), cut.Load(), wrong.Load(), a.Requests(), b.Requests())
	if wrong.Load() != 0 {
		t.Fatalf("%d answers had wrong bytes", wrong.Load())
	}
	if cut.Load() != 0 {
		t.Fatalf("%d answers were cut when a member stopped; their fills should have gone to the other member", cut.Load())
	}
	if served.Load() < stoppedAt+80 {
		t.Fatalf("only %d answers after the stop (%d before)", served.Load()-stoppedAt, stoppedAt)
	}
	// Fills carry their version's If-Match, retries included: per object,
	// only its discovery (and a retry of it, when a failed it before its
	// answer) may go without.
	unconditional := map[string]int{}
	for _, r := range append(a.LastRequests(), b.LastRequests()...) {
		if r.IfMatch == "" {
			unconditional[r.Path]++
		}
	}
	for path, n := range unconditional {
		if n > 2 {
			t.Fatalf("%d requests for %s went without If-Match: a fill or its retry lost it", n, path)
		}
	}
	st := h.edge.OriginStatus()["media"]
	if len(st) != 2 || st[0].Up || !st[1].Up {
		t.Fatalf("members %+v: want a out, b in", st)
	}
	if ok, why := h.edge.OriginsReady(); !ok {
		t.Fatalf("not ready with b up: %s", why)
	}
	if !strings.Contains(h.logs.String(), "origin member out of its pool") {
		t.Fatal("no log line says the member left the pool")
	}

	// With b gone too, the edge says so.
	b.Close()
	for range 4 {
		resp, err := h.try(http.MethodGet, "/pool/new/1MiB.bin")
		if err == nil {
			resp.Body.Close()
		}
	}
	if ok, why := h.edge.OriginsReady(); ok || !strings.Contains(why, "media") {
		t.Fatalf("OriginsReady = %v, %q with every member stopped", ok, why)
	}
}
