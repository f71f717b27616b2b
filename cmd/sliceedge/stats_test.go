package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
)

// TestStatsWatch: stats --watch prints a header and then a line per
// interval with the rates of that interval; under load they are not 0.
func TestStatsWatch(t *testing.T) {
	n := startNode(t)
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			resp, err := http.Get(n.edge.URL + "/w/1MiB.bin")
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	out, err := run(t, "stats", "--config", n.cfgFile, "--watch", "--interval", "300ms", "--count", "3")
	stop.Store(true)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "time ") || !strings.Contains(lines[0], "req/s") {
		t.Fatalf("want a header and 3 lines:\n%s", out)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rate, err := strconv.ParseFloat(f[1], 64)
		if err != nil || rate <= 0 || !strings.HasSuffix(l, "MiB") || !strings.Contains(l, "/s") {
			t.Errorf("line %q: want a request rate above 0 under load, and the store's size", l)
		}
	}
	if _, err := run(t, "stats", "--config", n.cfgFile, "--watch", "--interval", "1ms"); err == nil || !strings.Contains(err.Error(), "--interval below 100ms") {
		t.Errorf("a 1ms interval: %v", err)
	}
}

// TestAdminConfig: GET /config shows the file in force without its
// secrets, and after a SIGHUP the new one, with the keys that wait for a
// restart.
func TestAdminConfig(t *testing.T) {
	o := origintest.NewTest(t)
	listen, admin := freeAddr(t), freeAddr(t)
	const token = "config-test-admin-token-5678"
	yaml := fmt.Sprintf("listen: %s\nadmin: {listen: %s, token: %s}\nstore: {dir: %s, max_bytes: 1GiB}\norigins: {default: {url: %q}}\nrules: [{match: /, origin: default, slice_size: 1MiB}]\n",
		listen, admin, token, t.TempDir(), o.URL())
	s := startServe(t, yaml)
	get := func() edge.ConfigReport {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+admin+"/config", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rep edge.ConfigReport
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /config: %d, %v", resp.StatusCode, err)
		}
		return rep
	}
	rep := get()
	if rep.Source != s.config || !strings.Contains(rep.YAML, "slice_size: 1MiB") || strings.Contains(rep.YAML, token) ||
		len(rep.Listeners) != 1 || rep.Listeners[0] != "http://"+listen || rep.Started.IsZero() || len(rep.RestartPending) != 0 {
		t.Fatalf("GET /config: %+v", rep)
	}
	if resp, err := http.Get("http://" + admin + "/config"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("GET /config without the token: %v %v", resp, err)
	}

	edited := strings.Replace(strings.Replace(yaml, "slice_size: 1MiB", "slice_size: 4MiB", 1), "listen: "+listen, "listen: "+freeAddr(t), 1)
	if err := os.WriteFile(s.config, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	origintest.WaitFor(t, "the reload", func() bool { return strings.Contains(s.logs.String(), "SIGHUP: configuration reloaded") })
	after := get()
	if !strings.Contains(after.YAML, "slice_size: 4MiB") || !after.LoadedAt.After(rep.LoadedAt) || fmt.Sprint(after.RestartPending) != "[listen]" {
		t.Errorf("after the reload: %+v", after)
	}
	if after.Listeners[0] != "http://"+listen {
		t.Errorf("listeners %v: want the one still in use, %s", after.Listeners, listen)
	}
}
