package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// binary is the sliceedge binary built once for the process tests.
var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

func buildBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sliceedge-bin")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "sliceedge")
		out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer collects a child's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// serve reloads its configuration on SIGHUP, keeps the old one when the
// new file is broken, and on SIGTERM finishes the responses in flight.
func TestServeReloadAndShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; covered by the full run")
	}
	bin := buildBinary(t)
	o := origintest.NewTest(t)
	listen, admin := freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "edge.yaml")
	writeCfg := func(extraRule string) {
		yaml := fmt.Sprintf("listen: %s\nadmin: {listen: %s, token: tok-0123456789abcdef}\nstore: {dir: %s, max_bytes: 1GiB}\n"+
			"origins: {default: {url: %q}}\nrules:\n%s  - {match: /, origin: default}\n", listen, admin, filepath.Join(filepath.Dir(cfgFile), "data"), o.URL(), extraRule)
		if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("")
	var logs syncBuffer
	cmd := exec.Command(bin, "serve", "--config", cfgFile, "--log-format", "json", "--shutdown-timeout", "20s")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitUntil(t, "the edge to listen", func() bool { return strings.Contains(logs.String(), "sliceedge serving") })

	get := func(path string) (int, []byte) {
		resp, err := http.Get("http://" + listen + path)
		if err != nil {
			t.Fatalf("GET %s: %v\nlogs:\n%s", path, err, logs.String())
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	if code, body := get("/a/1MiB.bin"); code != 200 || len(body) != 1<<20 {
		t.Fatalf("before reload: %d, %d bytes", code, len(body))
	}

	// A broken file is refused; the old configuration keeps serving.
	if err := os.WriteFile(cfgFile, []byte("listen: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the refusal", func() bool { return strings.Contains(logs.String(), "configuration not reloaded") })
	if code, _ := get("/a/2MiB.bin"); code != 200 {
		t.Fatalf("after a refused reload: status %d", code)
	}

	// A good file takes effect: a rule that makes /only-new/ unmatched
	// paths answer 404 would be odd; instead a new rule with 4MiB slices.
	writeCfg("  - {match: /big/, origin: default, slice_size: 4MiB}\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the reload", func() bool { return strings.Contains(logs.String(), "configuration reloaded") })
	get("/big/8MiB.bin")
	out, err := run(t, "inspect", "--config", cfgFile, "http://"+listen+"/big/8MiB.bin")
	if err != nil || !strings.Contains(out, "4MiB each") {
		t.Fatalf("after reload, /big/ objects should have 4MiB slices: %v\n%s", err, out)
	}

	// SIGTERM while a slow response is in flight: it completes.
	o.SetMode(origintest.Mode{Bandwidth: 8 << 20})
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + listen + "/slow/6MiB.bin")
		if err != nil {
			done <- result{0, err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if _, ok := origintest.Verify(body, "/slow/6MiB.bin", 1, 0); !ok {
			err = fmt.Errorf("wrong bytes")
		}
		done <- result{len(body), err}
	}()
	waitUntil(t, "the slow response to start", func() bool { return o.PathBodyBytes("/slow/6MiB.bin") > 1<<20 })
	cmd.Process.Signal(syscall.SIGTERM)
	r := <-done
	if r.err != nil || r.n != 6<<20 {
		t.Errorf("response in flight at SIGTERM: %d bytes, %v", r.n, r.err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\nlogs:\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("no shutdown message in the log")
	}
}

// A rule whose slices the memory cache cannot keep is named at start, with
// a memory_cache that would keep them.
func TestWarnUncachedSlices(t *testing.T) {
	cfg, err := config.Parse("e.yaml", []byte(`listen: 127.0.0.1:8080
store:
  dir: ./data
  max_bytes: 1GiB
  memory_cache: 16MiB
origins:
  default:
    url: http://127.0.0.1:9000
rules:
  - match: /big/
    origin: default
    slice_size: 64MiB
  - match: /
    origin: default
    slice_size: 1MiB
`))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	warnUncachedSlices(zerolog.New(&buf), cfg)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "rules[0]") || !strings.Contains(lines[0], `"rule":"/big/"`) {
		t.Fatalf("warnings %q: want one, about rules[0] (/big/)", buf.String())
	}
	m := regexp.MustCompile(`raise store.memory_cache to (\S+),`).FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("warning %q names no memory_cache to set", lines[0])
	}
	need, err := config.ParseSize(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if segstore.LargestCachedSlice(need, cfg.Store.MaxBytes) < 64<<20 || segstore.LargestCachedSlice(need/2, cfg.Store.MaxBytes) >= 64<<20 {
		t.Errorf("advised memory_cache %s: keeps slices up to %d, half of it %d; want the smallest power-of-two multiple keeping 64MiB",
			m[1], segstore.LargestCachedSlice(need, cfg.Store.MaxBytes), segstore.LargestCachedSlice(need/2, cfg.Store.MaxBytes))
	}
}
