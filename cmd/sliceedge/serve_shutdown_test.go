package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// served is a `sliceedge serve` process.
type served struct {
	cmd    *exec.Cmd
	logs   *origintest.LogBuffer
	exited chan struct{} // closed when the process has exited; then err is set
	err    error         // from Wait
	config string        // the config file it was started with
}

// startServe runs `sliceedge serve` on the config yaml, with JSON logs and
// the extra flags, and waits until it serves.
func startServe(t *testing.T, yaml string, flags ...string) *served {
	t.Helper()
	return startServeEnv(t, yaml, nil, flags...)
}

// startServeEnv is startServe with env added to the process's environment.
func startServeEnv(t *testing.T, yaml string, env []string, flags ...string) *served {
	t.Helper()
	bin := buildBinary(t)
	cfgFile := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &served{logs: &origintest.LogBuffer{}, exited: make(chan struct{}), config: cfgFile}
	s.cmd = exec.Command(bin, append([]string{"serve", "--config", cfgFile, "--log-format", "json"}, flags...)...)
	s.cmd.Stderr = s.logs
	if env != nil {
		s.cmd.Env = append(os.Environ(), env...)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
	})
	origintest.WaitFor(t, "the edge to listen", func() bool { return strings.Contains(s.logs.String(), "sliceedge serving") })
	return s
}

// stop sends SIGTERM and waits for the process to exit, at most limit
// (then the test fails, and the process is killed). It returns how long
// the exit took.
func (s *served) stop(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(limit):
		t.Fatalf("still running %v after SIGTERM\nlogs:\n%s", limit, s.logs.String())
	}
	took := time.Since(start)
	if s.err != nil {
		t.Errorf("exit after SIGTERM: %v\nlogs:\n%s", s.err, s.logs.String())
	}
	return took
}

// A download still running at --shutdown-timeout is cut: the edge closes
// its connection, logs the cut as the shutdown's, and the last log line
// says how many answers the shutdown cut. The client has a short body of
// right bytes, and the process does not wait for the download to end.
func TestServeShutdownCutsLateAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; covered by the full run")
	}
	o := origintest.NewTest(t)
	// 16MiB at 1MiB/s: about 15 s of download left at SIGTERM.
	o.SetMode(origintest.Mode{Bandwidth: 1 << 20})
	listen := freeAddr(t)
	s := startServe(t, fmt.Sprintf("listen: %s\nstore: {dir: %s, max_bytes: 1GiB}\norigins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\n",
		listen, t.TempDir(), o.URL()), "--shutdown-timeout", "1s")

	const path = "/slow/16MiB.bin"
	type result struct {
		length int64 // Content-Length
		body   []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + listen + path)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- result{resp.ContentLength, body, err}
	}()
	origintest.WaitFor(t, "the download to start", func() bool { return o.PathBodyBytes(path) > 256<<10 })
	took := s.stop(t, 20*time.Second)
	r := <-done

	if r.length != 16<<20 || len(r.body) == 0 || len(r.body) >= 16<<20 || r.err == nil {
		t.Errorf("client: Content-Length %d, %d bytes, %v; want a body cut short of 16MiB, with an error", r.length, len(r.body), r.err)
	}
	if at, ok := origintest.Verify(r.body, path, 1, 0); !ok {
		t.Errorf("client: wrong byte at %d of the %d received", at, len(r.body))
	}
	if took > 1*time.Second+cutWait+3*time.Second {
		t.Errorf("exit took %v after SIGTERM with --shutdown-timeout 1s", took)
	}
	recs := s.logs.Lines(t)
	cuts := withMessage(recs, "answer cut short")
	if len(cuts) != 1 || cuts[0]["reason"] != "shutdown" || cuts[0]["status"] != 200.0 {
		t.Errorf("cut lines %v: want one, with reason shutdown and status 200\nlogs:\n%s", cuts, s.logs.String())
	}
	if w := withMessage(recs, "are cut now"); len(w) != 1 || w[0]["requests"] != 1.0 {
		t.Errorf("warnings that responses are cut at the deadline: %v, want one naming 1 request", w)
	}
	if last := checkStopped(t, s.logs, 1); last["requests_unfinished"] != 0.0 {
		t.Errorf("stopped line %v: want no request unfinished", last)
	}
}

// An https origin that accepts connections and never speaks (a stalled TLS
// handshake) gets the client a 5xx after the origin's connect_timeout,
// rather than holding the request, and then SIGTERM ends the process at
// once: nothing is left in flight to wait for.
func TestServeOriginTLSStall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; covered by the full run")
	}
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex // protects conns
		conns []net.Conn
	)
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never written to
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mute.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	accepted := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}

	listen := freeAddr(t)
	// The default --shutdown-timeout (30s): a quick exit shows nothing was
	// left waiting on the origin.
	s := startServe(t, fmt.Sprintf("listen: %s\nstore: {dir: %s, max_bytes: 1GiB}\n"+
		"origins: {default: {url: \"https://%s\", connect_timeout: 500ms}}\nrules: [{match: /, origin: default}]\n",
		listen, t.TempDir(), mute.Addr()))

	client := &http.Client{Timeout: 20 * time.Second}
	start := time.Now()
	resp, err := client.Get("http://" + listen + "/a/1MiB.bin")
	if err != nil {
		t.Fatalf("GET through an origin that stalls its TLS handshake: %v (after %v)\nlogs:\n%s", err, time.Since(start), s.logs.String())
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if took := time.Since(start); (resp.StatusCode != 502 && resp.StatusCode != 504) || took > 5*time.Second {
		t.Errorf("GET: %d after %v; want 502 or 504 within a few seconds (connect_timeout 500ms)", resp.StatusCode, took)
	}
	if accepted() == 0 {
		t.Errorf("the origin listener accepted no connection: the edge never reached the handshake")
	}
	if took := s.stop(t, 40*time.Second); took > 5*time.Second {
		t.Errorf("exit took %v after SIGTERM with nothing in flight", took)
	}
	if last := checkStopped(t, s.logs, 0); last["requests_unfinished"] != 0.0 || last["fills_in_flight"] != 0.0 {
		t.Errorf("stopped line %v: want nothing unfinished or in flight", last)
	}
}
