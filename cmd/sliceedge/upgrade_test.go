package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// processGone reports whether pid has exited (or is a zombie waiting for
// its reaper).
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// TestZeroDowntimeUpgrade: SIGUSR2 starts a new process on the same
// listening sockets; once it serves, the old one stops accepting,
// finishes its responses (slow downloads among them) and exits, and the
// new one opens the store when the old one has closed it. Clients on new
// and kept-alive connections throughout see no refused connection, no
// error and no wrong byte.
func TestZeroDowntimeUpgrade(t *testing.T) {
	o := origintest.NewTest(t)
	listen, admin := freeAddr(t), freeAddr(t)
	const token = "upgrade-test-admin-token-1234"
	s := startServe(t, fmt.Sprintf("listen: %s\nadmin: {listen: %s, token: %s}\nstore: {dir: %s, max_bytes: 1GiB}\norigins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\n",
		listen, admin, token, t.TempDir(), o.URL()), "--shutdown-timeout", "20s")

	paths := []string{"/u/a/2MiB.bin", "/u/b/3MiB.bin", "/u/c/512KiB.bin", "/u/d/5MiB.bin", "/u/e/1MiB.bin"}
	var requests, refused, failed, wrong atomic.Int64
	var firstErr atomic.Value
	get := func(c *http.Client, path string, r *rand.Rand) {
		req, _ := http.NewRequest("GET", "http://"+listen+path, nil)
		start := int64(0)
		if r.IntN(2) == 0 {
			size, _, _ := o.Object(path)
			if size == 0 {
				size = 512 << 10
			}
			start = r.Int64N(size / 2)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, start+r.Int64N(size/2)))
		}
		resp, err := c.Do(req)
		requests.Add(1)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				refused.Add(1)
			} else {
				failed.Add(1)
			}
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode/100 != 2 {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %d, %v", path, resp.StatusCode, err))
			return
		}
		if _, ok := origintest.Verify(body, path, 1, start); !ok {
			wrong.Add(1)
		}
	}
	// Slow downloads in flight across the upgrade: the old process
	// finishes them.
	const slow = "/slow/4MiB.bin"
	o.SetPathMode(slow, origintest.Mode{Bandwidth: 1 << 20})
	slowDone := make(chan error, 2)
	for range 2 {
		go func() {
			resp, err := http.Get("http://" + listen + slow)
			if err != nil {
				slowDone <- err
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if _, ok := origintest.Verify(body, slow, 1, 0); err != nil || !ok || len(body) != 4<<20 {
				err = fmt.Errorf("%d bytes, %v, right: %v", len(body), err, ok)
			}
			slowDone <- err
		}()
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half on a new connection per request, half kept alive.
			tr := &http.Transport{DisableKeepAlives: w%2 == 0}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				get(c, paths[r.IntN(len(paths))], r)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	origintest.WaitFor(t, "the slow downloads and some load", func() bool { return o.PathBodyBytes(slow) > 0 && requests.Load() > 50 })
	if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	origintest.WaitFor(t, "the new process", func() bool { return strings.Contains(s.logs.String(), "upgrade: the new process serves") })
	child := 0
	for _, l := range s.logs.Lines(t) {
		if l["message"] == "sliceedge serving" && l["upgrade"] == true {
			child = int(l["pid"].(float64))
		}
	}
	if child == 0 || child == s.cmd.Process.Pid {
		t.Fatalf("no serving line of a new process:\n%s", s.logs.String())
	}
	t.Cleanup(func() {
		syscall.Kill(child, syscall.SIGKILL)
	})
	// The old process's Wait does not return while the new one holds its
	// stderr: watch the process itself, and its last line.
	parent := s.cmd.Process.Pid
	deadline := time.Now().Add(30 * time.Second)
	for !processGone(parent) || !strings.Contains(s.logs.String(), `"upgraded":true`) {
		if time.Now().After(deadline) {
			t.Fatalf("the old process still runs 30 s after the upgrade:\n%s", s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 2 {
		if err := <-slowDone; err != nil {
			t.Errorf("a download in flight across the upgrade: %v", err)
		}
	}
	// The new process opens the store the old one closed, and caches.
	origintest.WaitFor(t, "the store to open in the new process", func() bool { return strings.Contains(s.logs.String(), "is open: caching again") })
	n := requests.Load()
	origintest.WaitFor(t, "more load on the new process", func() bool { return requests.Load() > n+50 })
	stop()
	wg.Wait()
	if refused.Load() != 0 || failed.Load() != 0 || wrong.Load() != 0 {
		t.Errorf("%d requests: %d refused, %d failed, %d wrong (first error: %v)\n%s", requests.Load(), refused.Load(), failed.Load(), wrong.Load(), firstErr.Load(), s.logs.String())
	}
	t.Logf("%d requests across the upgrade: %d refused, %d failed, %d wrong", requests.Load(), refused.Load(), failed.Load(), wrong.Load())
	for _, want := range []string{`"upgraded":true`, `"message":"stopped"`} {
		if !strings.Contains(s.logs.String(), want) {
			t.Errorf("the old process's log lacks %s", want)
		}
	}
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("/readyz of the new process: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// A stored object is a hit in the new process: the store carried over.
	resp, err = http.Get("http://" + listen + paths[0])
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("after the upgrade: X-Cache %q, want HIT", resp.Header.Get("X-Cache"))
	}
	if err := syscall.Kill(child, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	origintest.WaitFor(t, "the new process to stop", func() bool { return processGone(child) })
}
