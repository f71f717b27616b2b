package edge_test

import (
	"fmt"
	"io"
	"math/rand/v2"
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

// A flapping origin never produces a body that mixes two versions: every
// answer is whole and of one version, a 502, or cut short — and what was
// sent before the cut is of one version too.
func TestFlappingNeverMixes(t *testing.T) {
	// max-age=0: every request revalidates, so every request can meet a
	// new version.
	maxAge0 := "max-age=0"
	for _, mode := range []struct {
		name string
		m    origintest.Mode
	}{
		{"if-match honoured", origintest.Mode{FlapEvery: 3, CacheControl: &maxAge0}},
		{"if-match ignored", origintest.Mode{FlapEvery: 3, IgnoreIfMatch: true, CacheControl: &maxAge0}},
		{"slow flap", origintest.Mode{FlapEvery: 10, CacheControl: &maxAge0}},
		{"no range support", origintest.Mode{FlapEvery: 2, NoRange: true, CacheControl: &maxAge0}},
		// The other consistency classes (segstore.Class): fills proved by
		// Last-Modified and length, and no validator at all.
		{"last-modified class", origintest.Mode{FlapEvery: 3, WeakETag: true, CacheControl: &maxAge0}},
		{"last-modified class, no range support", origintest.Mode{FlapEvery: 2, WeakETag: true, NoRange: true, CacheControl: &maxAge0}},
		{"no validator", origintest.Mode{FlapEvery: 3, NoValidator: true, CacheControl: &maxAge0}},
		{"no validator, no range support", origintest.Mode{FlapEvery: 2, NoValidator: true, NoRange: true, CacheControl: &maxAge0}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			h := newHarness(t)
			path, size := "/flap/24MiB.bin", 24*MiB
			workers, perWorker := 6, 25
			if testing.Short() { // the race detector makes every byte costly
				path, size, perWorker = "/flap/8MiB.bin", 8*MiB, 8
			}
			h.origin.SetMode(mode.m)
			var whole, cut, refused, mixed atomic.Int64
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rnd := rand.New(rand.NewPCG(uint64(w), 7))
					for range perWorker {
						start := rnd.Int64N(size)
						end := min(start+rnd.Int64N(size/4)+1, size)
						rng := fmt.Sprintf("bytes=%d-%d", start, end-1)
						if rnd.IntN(5) == 0 {
							rng, start, end = "", 0, size
						}
						var hdr []string
						if rng != "" {
							hdr = append(hdr, "Range: "+rng)
						}
						resp, err := h.try("GET", path, hdr...)
						if err != nil {
							cut.Add(1)
							continue
						}
						body, rerr := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusBadGateway {
							// The only 502 a flapping origin may cause, and it
							// tells the client what happened.
							if !strings.Contains(string(body), "the origin changed the object while it was being filled") {
								t.Errorf("range=%q: 502 with body %q", rng, body)
							}
							refused.Add(1)
							continue
						}
						if resp.StatusCode != 200 && resp.StatusCode != 206 {
							t.Errorf("range=%q: status %d", rng, resp.StatusCode)
							continue
						}
						if resp.StatusCode == 200 {
							// The whole object: a pass-through's answer
							// from an origin that ignores Range.
							start, end = 0, size
						}
						if resp.StatusCode == 206 {
							r, _, _, err := slicer.ParseContentRange(resp.Header.Get("Content-Range"))
							if err != nil || r.Start != start {
								t.Errorf("range=%q: Content-Range %q", rng, resp.Header.Get("Content-Range"))
								continue
							}
						}
						_, version, _ := h.origin.Object(path)
						vs := origintest.WhichVersion(body, path, start, version+1)
						if len(vs) > 1 || (len(vs) == 1 && vs[0] < 0) {
							mixed.Add(1)
							t.Errorf("range=%q: body of %d bytes holds versions %v", rng, len(body), vs)
							continue
						}
						if rerr != nil || int64(len(body)) != end-start {
							cut.Add(1)
							continue
						}
						if got := resp.Header.Get("ETag"); len(vs) == 1 && !mode.m.NoValidator && got != etagOf(mode.m, path, vs[0]) {
							t.Errorf("range=%q: body of version %d under ETag %s", rng, vs[0], got)
						}
						if got := resp.Header.Get("Last-Modified"); len(vs) == 1 && !mode.m.NoValidator && got != origintest.LastModified(vs[0]).UTC().Format(http.TimeFormat) {
							t.Errorf("range=%q: body of version %d under Last-Modified %s", rng, vs[0], got)
						}
						whole.Add(1)
					}
				}()
			}
			wg.Wait()
			t.Logf("%d whole, %d cut short, %d refused (502), %d mixed; %d origin requests",
				whole.Load(), cut.Load(), refused.Load(), mixed.Load(), h.origin.Requests())
			if mixed.Load() != 0 {
				t.Fatalf("%d bodies mixed versions", mixed.Load())
			}
			if whole.Load() == 0 {
				t.Fatalf("no answer was whole: the edge gives up too easily")
			}
		})
	}
}

// etagOf is the ETag the test origin sends for version v of path in mode m.
func etagOf(m origintest.Mode, path string, v int) string {
	if m.WeakETag {
		return "W/" + origintest.ETag(path, v)
	}
	return origintest.ETag(path, v)
}

// Streaming a large object to a slow client holds a few slices in memory,
// not the object. The figure is logged (go test -v -run SlowClient).
func TestSlowClientHeapBounded(t *testing.T) {
	h := newHarness(t)
	size := 4 * GiB // 4 MiB slices under /big/
	if testing.Short() {
		size = 128 * MiB
	}
	path := "/big/" + strconv.FormatInt(size, 10) + ".bin"
	// The live heap as of the last GC: what the process holds, not
	// garbage waiting for collection.
	heap := watchHeap(false)

	resp := h.open(t, path)
	defer resp.Body.Close()
	// A slow reader: 256 KiB at a time, pausing every 16 MiB, and
	// checking the bytes as they come.
	buf := make([]byte, 256*KiB)
	var off int64
	for {
		n, err := io.ReadFull(resp.Body, buf)
		if n > 0 {
			if at, ok := origintest.Verify(buf[:n], path, 1, off); !ok {
				t.Fatalf("wrong byte at %d", at)
			}
			off += int64(n)
			if off%(16*MiB) == 0 {
				time.Sleep(2 * time.Millisecond) // the reader pausing: the behaviour under test
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	grew, base := heap()
	if off != size {
		t.Fatalf("read %d bytes, want %d", off, size)
	}
	t.Logf("streamed %d MiB with 4 MiB slices: live heap peaked %d MiB above the %d MiB before", size>>20, grew>>20, base>>20)
	// Bound: a few slices (the fill in flight, the one being read, the
	// store's batch and buffers) plus the server-wide queue of slices
	// waiting for the store (16 MiB, and a batch copy of each) — far below the object.
	heapUnder(t, grew, 96*MiB, fmt.Sprintf("streaming a %d MiB object", size>>20))
}
