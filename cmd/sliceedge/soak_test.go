package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/slicer"
)

// soakCycles is set by `make soak`; 0 means the short version (5 cycles,
// skipped with -short).
var soakCycles = flag.Int("soak.cycles", 0, "kill/restart cycles of TestCrashSoak (0: 5, or skip with -short)")

// soakObjects are the objects the soak reads: 1 to 32 MiB with 1 MiB slices
// (the /soak/ rule), some with a short last slice; six of each size, about
// 520 MiB in all, twice the store's budget, so that eviction runs and fills
// keep happening in every cycle.
var soakObjects = func() []string {
	var out []string
	for _, set := range []string{"a", "b", "c", "d", "e", "f"} {
		for _, size := range []string{"1MiB", "3MiB", "5000000", "8MiB", "13MiB", "20000001", "32MiB"} {
			out = append(out, "/soak/"+set+"/"+size+".bin")
		}
	}
	return out
}()

// soakStats is what the soak counts; all fields are updated atomically.
type soakStats struct {
	requests   atomic.Int64 // requests sent
	complete   atomic.Int64 // 2xx answers read to their end
	cut        atomic.Int64 // 2xx answers cut short (by a kill)
	refused    atomic.Int64 // requests that got no answer (edge down or killed)
	verified   atomic.Int64 // body bytes checked against the origin's
	wrongBytes atomic.Int64 // answers with a byte that is not the origin's
	bad        atomic.Int64 // other wrong answers (status, headers, lengths)
	hits       atomic.Int64 // answers with X-Cache: HIT
}

// soakFailures keeps the first few failure descriptions.
type soakFailures struct {
	mu   sync.Mutex
	list []string
}

func (f *soakFailures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.list) < 20 {
		f.list = append(f.list, fmt.Sprintf(format, args...))
	}
}

func (f *soakFailures) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.list, "\n")
}

// soakChild is one run of `sliceedge serve`.
type soakChild struct {
	cmd    *exec.Cmd
	logs   *origintest.LogBuffer
	exited chan struct{} // closed when the process has been waited for
	err    error         // Wait's error, once exited is closed
}

func startSoakChild(t *testing.T, bin, cfgFile string) *soakChild {
	t.Helper()
	c := &soakChild{logs: &origintest.LogBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(bin, "serve", "--config", cfgFile, "--log-format", "json", "--log-level", "info")
	c.cmd.Stderr = c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.kill)
	origintest.WaitFor(t, "sliceedge serve to start", func() bool {
		if strings.Contains(c.logs.String(), "sliceedge serving") {
			return true
		}
		select {
		case <-c.exited:
			t.Fatalf("sliceedge serve exited before serving (%v): the store did not reopen cleanly?\nstderr:\n%s", c.err, c.logs.String())
		default:
		}
		return false
	})
	return c
}

// kill sends SIGKILL, unless the process is gone, and waits for it.
func (c *soakChild) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// soakRequest is one request the load sends.
type soakRequest struct {
	path   string
	size   int64
	ranges [][2]int64 // inclusive; nil for a full GET
}

func (r soakRequest) header() string {
	parts := make([]string, len(r.ranges))
	for i, rg := range r.ranges {
		parts[i] = fmt.Sprintf("%d-%d", rg[0], rg[1])
	}
	return "bytes=" + strings.Join(parts, ",")
}

// randomRequest picks an object and a full GET, one range or several
// disjoint ones, sorted and far enough apart not to be coalesced.
func randomRequest(rnd *rand.Rand) soakRequest {
	path := soakObjects[rnd.IntN(len(soakObjects))]
	size, _ := origintest.SyntheticSize(filepath.Base(path))
	r := soakRequest{path: path, size: size}
	switch k := rnd.IntN(10); {
	case k < 2: // full GET
	case k < 7: // one range, anywhere
		a := rnd.Int64N(size)
		b := a + rnd.Int64N(min(size-a, 6<<20))
		r.ranges = [][2]int64{{a, b}}
	default: // 2 to 4 ranges in separate quarters of the object
		n := 2 + rnd.IntN(3)
		q := size / int64(n)
		for i := range n {
			lo := int64(i) * q
			a := lo + rnd.Int64N(q/2)
			// b ends at least slicer.MergeGap bytes before the next part's
			// share starts, so no two ranges merge.
			b := a + rnd.Int64N(q/2-slicer.MergeGap)
			r.ranges = append(r.ranges, [2]int64{a, b})
		}
	}
	return r
}

// verifyBody reads body, checking each byte against the origin's bytes of
// path from object offset start. It returns the bytes read, whether a byte
// differed (where), and the read error (nil at a clean end).
func verifyBody(r io.Reader, path string, start int64, st *soakStats) (n int64, badAt int64, err error) {
	buf := make([]byte, 128<<10)
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			if at, ok := origintest.Verify(buf[:m], path, 1, start+n); !ok {
				return n, at, nil
			}
			n += int64(m)
			st.verified.Add(int64(m))
		}
		if rerr == io.EOF {
			return n, -1, nil
		}
		if rerr != nil {
			return n, -1, rerr
		}
	}
}

// parseContentRange parses "bytes a-b/size".
func parseContentRange(s string) (a, b, size int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rg, total, found := strings.Cut(rest, "/")
	as, bs, found2 := strings.Cut(rg, "-")
	if !found || !found2 {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	a, err1 = strconv.ParseInt(as, 10, 64)
	b, err2 = strconv.ParseInt(bs, 10, 64)
	size, err3 = strconv.ParseInt(total, 10, 64)
	return a, b, size, err1 == nil && err2 == nil && err3 == nil && a <= b && b < size
}

// doSoakRequest sends r and checks the answer. complete reports whether it
// required the answer to be whole (reread: no kill can cut it).
func doSoakRequest(client *http.Client, base string, r soakRequest, mustComplete bool, st *soakStats, fail *soakFailures) {
	st.requests.Add(1)
	req, err := http.NewRequest(http.MethodGet, base+r.path, nil)
	if err != nil {
		panic(err)
	}
	if r.ranges != nil {
		req.Header.Set("Range", r.header())
	}
	what := fmt.Sprintf("GET %s Range %q", r.path, req.Header.Get("Range"))
	resp, err := client.Do(req)
	if err != nil {
		st.refused.Add(1)
		if mustComplete {
			st.bad.Add(1)
			fail.add("%s: %v", what, err)
		}
		return
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Cache") == "HIT" {
		st.hits.Add(1)
	}
	wrong := func(n, at int64) {
		st.wrongBytes.Add(1)
		fail.add("%s: WRONG BYTE at object offset %d (status %d, %d bytes read, X-Cache %s)", what, at, resp.StatusCode, n, resp.Header.Get("X-Cache"))
	}
	cut := func(n int64, err error) {
		st.cut.Add(1)
		if mustComplete {
			st.bad.Add(1)
			fail.add("%s: cut after %d bytes: %v", what, n, err)
		}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if r.ranges != nil {
			// Allowed (a range may be answered whole), but not expected.
			fail.add("%s: 200 to a range request (not a failure)", what)
		}
		if resp.ContentLength != r.size {
			st.bad.Add(1)
			fail.add("%s: 200 with Content-Length %d, want %d", what, resp.ContentLength, r.size)
		}
		n, at, err := verifyBody(resp.Body, r.path, 0, st)
		switch {
		case at >= 0:
			wrong(n, at)
		case err != nil:
			cut(n, err)
		case n != r.size:
			st.bad.Add(1)
			fail.add("%s: complete 200 of %d bytes, want %d", what, n, r.size)
		default:
			st.complete.Add(1)
		}
	case resp.StatusCode == http.StatusPartialContent && len(r.ranges) == 1:
		a, b, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || a != r.ranges[0][0] || b != r.ranges[0][1] || size != r.size {
			st.bad.Add(1)
			fail.add("%s: Content-Range %q", what, resp.Header.Get("Content-Range"))
			return
		}
		n, at, err := verifyBody(resp.Body, r.path, a, st)
		switch {
		case at >= 0:
			wrong(n, at)
		case err != nil:
			cut(n, err)
		case n != b-a+1:
			st.bad.Add(1)
			fail.add("%s: complete 206 of %d bytes, want %d", what, n, b-a+1)
		default:
			st.complete.Add(1)
		}
	case resp.StatusCode == http.StatusPartialContent:
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			st.bad.Add(1)
			fail.add("%s: 206 with Content-Type %q", what, resp.Header.Get("Content-Type"))
			return
		}
		mr := multipart.NewReader(resp.Body, params["boundary"])
		var got [][2]int64
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				cut(0, err)
				return
			}
			a, b, size, ok := parseContentRange(part.Header.Get("Content-Range"))
			if !ok || size != r.size {
				st.bad.Add(1)
				fail.add("%s: part Content-Range %q", what, part.Header.Get("Content-Range"))
				return
			}
			n, at, err := verifyBody(part, r.path, a, st)
			if at >= 0 {
				wrong(n, at)
				return
			}
			if err != nil {
				cut(n, err)
				return
			}
			if n != b-a+1 {
				// A part that ends early without an error is a cut the
				// multipart reader did not notice: the next NextPart fails.
				cut(n, fmt.Errorf("part %d-%d of %d bytes", a, b, n))
				return
			}
			got = append(got, [2]int64{a, b})
		}
		// Complete: the parts must cover exactly the ranges asked for
		// (they are disjoint and far apart, so none is coalesced).
		if fmt.Sprint(got) != fmt.Sprint(r.ranges) {
			st.bad.Add(1)
			fail.add("%s: complete multipart with parts %v", what, got)
			return
		}
		st.complete.Add(1)
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		st.bad.Add(1)
		fail.add("%s: status %d X-Cache %q: %q", what, resp.StatusCode, resp.Header.Get("X-Cache"), body)
	}
}

// TestCrashSoak runs `sliceedge serve` as a child process, drives mixed
// load through it, kill -9s it at a random moment, restarts it on the same
// store and does it again; every byte any answer carried, whole or cut
// short by the kill, must be the origin's, and the store must reopen
// cleanly every time. `make soak` runs 100 cycles.
func TestCrashSoak(t *testing.T) {
	cycles := *soakCycles
	if cycles == 0 {
		if testing.Short() {
			t.Skip("builds and kills the binary; `make soak` runs the long version")
		}
		cycles = 5
	}
	bin := buildBinary(t)
	o := origintest.NewTest(t)
	// Slow enough that fills are in flight when the kill lands (a 32 MiB
	// object takes about half a second), fast enough to store plenty.
	o.SetMode(origintest.Mode{Bandwidth: 64 << 20})
	dir := t.TempDir()
	listen := freeAddr(t)
	cfgFile := filepath.Join(dir, "edge.yaml")
	yaml := fmt.Sprintf("listen: %s\nstore: {dir: %s, max_bytes: 256MiB}\norigins: {default: {url: %q}}\n"+
		"rules:\n  - {match: /soak/, origin: default, slice_size: 1MiB}\n  - {match: /, origin: default}\n",
		listen, filepath.Join(dir, "store"), o.URL())
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + listen
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var st soakStats
	var fail soakFailures
	var kills, rereads, storeLogLines int
	const workers = 6
	start := time.Now()

	for cycle := range cycles {
		c := startSoakChild(t, bin, cfgFile)
		for _, line := range strings.Split(c.logs.String(), "\n") {
			if strings.Contains(line, "segstore: open") {
				storeLogLines++ // what Open cleaned up after the kill
				t.Logf("cycle %d: %s", cycle, line)
			}
		}
		tr := &http.Transport{MaxIdleConnsPerHost: workers}
		client := &http.Client{Transport: tr}

		// After each restart, a few objects read whole must be whole and
		// exact: whatever the kill left in the store is either right or
		// dropped.
		for range 2 {
			r := soakRequest{path: soakObjects[rnd.IntN(len(soakObjects))]}
			r.size, _ = origintest.SyntheticSize(filepath.Base(r.path))
			doSoakRequest(client, base, r, true, &st, &fail)
			rereads++
		}

		// Mixed load, then a kill at a random moment.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wrnd := rand.New(rand.NewPCG(rnd.Uint64(), uint64(w)))
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					doSoakRequest(client, base, randomRequest(wrnd), false, &st, &fail)
				}
			})
		}
		time.Sleep(time.Duration(50+rnd.IntN(750)) * time.Millisecond)
		select {
		case <-c.exited:
			t.Fatalf("cycle %d: sliceedge serve died by itself (%v)\nstderr:\n%s", cycle, c.err, c.logs.String())
		default:
		}
		close(stop)
		c.kill()
		kills++
		wg.Wait()
		tr.CloseIdleConnections()
		if ws := c.err; ws == nil || !strings.Contains(ws.Error(), "killed") {
			t.Fatalf("cycle %d: exit %v, want killed\nstderr:\n%s", cycle, ws, c.logs.String())
		}
		if st.wrongBytes.Load() > 0 || st.bad.Load() > 0 {
			t.Fatalf("cycle %d: %d answers with wrong bytes, %d otherwise wrong:\n%s\nstderr of the run:\n%s",
				cycle, st.wrongBytes.Load(), st.bad.Load(), fail.String(), tail(c.logs.String(), 4000))
		}
	}

	// The store must also open cleanly after the last kill, and serve.
	c := startSoakChild(t, bin, cfgFile)
	client := &http.Client{Transport: &http.Transport{}}
	for range 7 {
		r := soakRequest{path: soakObjects[rnd.IntN(len(soakObjects))]}
		r.size, _ = origintest.SyntheticSize(filepath.Base(r.path))
		doSoakRequest(client, base, r, true, &st, &fail)
		rereads++
	}
	c.kill()

	if notes := fail.String(); notes != "" {
		t.Logf("notes:\n%s", notes)
	}
	wrong := "0 wrong bytes"
	if n := st.wrongBytes.Load(); n > 0 {
		wrong = fmt.Sprintf("%d ANSWERS WITH WRONG BYTES", n)
	}
	t.Logf("soak: %d kills survived, %d requests, %.2f GiB verified, %s, %d other failures "+
		"(%d answers complete, %d cut by a kill, %d unanswered, %d X-Cache HIT, %d full re-reads after restarts; "+
		"%d store cleanups logged at open; origin sent %.2f GiB; %v)",
		kills, st.requests.Load(), float64(st.verified.Load())/(1<<30), wrong, st.bad.Load(),
		st.complete.Load(), st.cut.Load(), st.refused.Load(), st.hits.Load(), rereads,
		storeLogLines, float64(o.BodyBytes())/(1<<30), time.Since(start).Round(time.Second))
	if st.wrongBytes.Load() > 0 || st.bad.Load() > 0 {
		t.Fatalf("soak failed: %d answers with wrong bytes, %d otherwise wrong", st.wrongBytes.Load(), st.bad.Load())
	}
	if st.complete.Load() == 0 || st.cut.Load() == 0 {
		t.Errorf("soak did not exercise both whole and cut answers: %d complete, %d cut", st.complete.Load(), st.cut.Load())
	}
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
