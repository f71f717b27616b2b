package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// serveInProcess runs serve with a configuration in front of o (store in
// dir, budget maxBytes) until the test ends. It returns the address the
// edge listens on (empty if serve returned before listening), serve's log,
// and a function that waits for serve to return and returns its result.
func serveInProcess(t *testing.T, o *origintest.Server, dir, maxBytes string) (string, *origintest.LogBuffer, func() error) {
	t.Helper()
	cfg, err := config.Parse("store.yaml", []byte(fmt.Sprintf(
		"listen: 127.0.0.1:0\nstore: {dir: %q, max_bytes: %s}\norigins: {default: {url: %q}}\nrules:\n  - {match: /, origin: default, slice_size: 1MiB}\n",
		dir, maxBytes, o.URL())))
	if err != nil {
		t.Fatal(err)
	}
	logs := &origintest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	var result error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		result = serve(ctx, cfg, zerolog.New(logs), serveOptions{shutdownTimeout: 5 * time.Second})
	}()
	wait := func() error {
		select {
		case <-finished:
		case <-time.After(20 * time.Second):
			t.Fatal("serve did not return in 20 s")
		}
		return result
	}
	t.Cleanup(func() {
		cancel()
		_ = wait()
	})
	var listen string
	origintest.WaitFor(t, "serve to listen or return", func() bool {
		for _, rec := range logs.Lines(t) {
			if rec["message"] == "sliceedge serving" {
				listen, _ = rec["listen"].(string)
				return true
			}
		}
		select {
		case <-finished:
			return true
		default:
			return false
		}
	})
	return listen, logs, wait
}

// `sliceedge serve` on a store directory it cannot create (as root, under
// /sys: EPERM, the disk's state, not the configuration) starts all the
// same, warns, and serves every request from the origin, uncached.
func TestServeStartsOnUnwritableStore(t *testing.T) {
	dir := fmt.Sprintf("/sys/sliceedge-test-%d/store", os.Getpid())
	if err := os.MkdirAll(dir, 0o755); !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.EACCES) {
		_ = os.RemoveAll(filepath.Dir(dir))
		t.Fatalf("this test needs a directory that cannot be created; %s: %v", dir, err)
	}
	o := origintest.NewTest(t)
	addr, logs, _ := serveInProcess(t, o, dir, "1GiB")
	if addr == "" {
		t.Fatalf("serve did not start on an unwritable store; log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "cannot be opened") {
		t.Errorf("no warning that the store cannot be opened; log:\n%s", logs.String())
	}
	const path = "/pass/1MiB.bin"
	for range 2 {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
		}
		if _, ok := origintest.Verify(body, path, 1, 0); !ok || len(body) != 1<<20 {
			t.Fatalf("GET %s: wrong bytes (%d)", path, len(body))
		}
		if x := resp.Header.Get("X-Cache"); x == "HIT" {
			t.Errorf("GET %s with no store: X-Cache %q", path, x)
		}
	}
}

// A store that cannot open for a reason of configuration still stops serve
// with the reason: a store directory under a file, a store locked by
// another process.
func TestServeExitsOnStoreConfigurationError(t *testing.T) {
	o := origintest.NewTest(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	locked := t.TempDir()
	st, err := segstore.Open(segstore.Options{Dir: locked})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct{ dir, want string }{
		{filepath.Join(file, "store"), "cannot create the store directory"},
		{locked, "locked by another sliceedge process"},
	} {
		addr, logs, wait := serveInProcess(t, o, c.dir, "1GiB")
		if addr != "" {
			t.Errorf("serve started on %s; log:\n%s", c.dir, logs.String())
			continue
		}
		if err := wait(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve on %s: %v, want an error saying %q", c.dir, err, c.want)
		}
	}
}

// serve warns at start when store.max_bytes is more than the store's
// filesystem holds, naming both figures and what to do, and not otherwise.
func TestServeWarnsOverCapacity(t *testing.T) {
	o := origintest.NewTest(t)
	for _, c := range []struct {
		maxBytes string
		warn     bool
	}{{"1048576TiB", true}, {"64MiB", false}} {
		addr, logs, _ := serveInProcess(t, o, t.TempDir(), c.maxBytes)
		if addr == "" {
			t.Fatalf("serve with max_bytes %s did not start; log:\n%s", c.maxBytes, logs.String())
		}
		warned := strings.Contains(logs.String(), "store.max_bytes is 1152921504606846976 bytes, but the filesystem holding")
		if warned != c.warn || c.warn && !strings.Contains(logs.String(), "bytes free and the store uses") {
			t.Errorf("max_bytes %s: warned %v, want %v; log:\n%s", c.maxBytes, warned, c.warn, logs.String())
		}
		if strings.Contains(logs.String(), "cannot tell whether store.max_bytes fits") {
			t.Errorf("max_bytes %s: could not measure the filesystem; log:\n%s", c.maxBytes, logs.String())
		}
	}
}
