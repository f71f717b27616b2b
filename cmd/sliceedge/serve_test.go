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
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
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

// withMessage returns the records whose message contains msg.
func withMessage(recs []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if m, _ := r["message"].(string); strings.Contains(m, msg) {
			out = append(out, r)
		}
	}
	return out
}

// checkStopped checks that the last record of a log is "stopped", with the
// answers cut at shutdown as want, and returns it.
func checkStopped(t *testing.T, logs *origintest.LogBuffer, wantCut float64) map[string]any {
	t.Helper()
	log := logs.String()
	recs := logs.Lines(t)
	if len(recs) == 0 {
		t.Fatalf("empty log, want a last line \"stopped\"")
	}
	last := recs[len(recs)-1]
	cuts, _ := last["answers_cut"].(map[string]any)
	if last["message"] != "stopped" || cuts == nil || cuts["shutdown"] != wantCut || last["took"] == nil {
		t.Errorf("last log line %v: want \"stopped\" with took and answers_cut.shutdown %v\nlogs:\n%s", last, wantCut, log)
	}
	return last
}

// serve reloads its configuration on SIGHUP, keeps the old one when the
// new file is broken, says which changes wait for a restart and when the
// admin token was rotated (which takes effect at once), logs the file's
// warnings at start and at every reload, and on SIGTERM finishes the
// responses in flight.
func TestServeReloadAndShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; covered by the full run")
	}
	bin := buildBinary(t)
	o := origintest.NewTest(t)
	listen, admin := freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "edge.yaml")
	const tokenA, tokenB = "tok-A-0123456789abcdef", "tok-B-0123456789abcdef"
	// The rules start at line 6; none has hosts, so each draws a warning.
	writeCfg := func(token, maxBytes, extraRule string) {
		yaml := fmt.Sprintf("listen: %s\nadmin: {listen: %s, token: %s}\nstore: {dir: %s, max_bytes: %s}\n"+
			"origins: {default: {url: %q}}\nrules:\n%s  - {match: /, origin: default}\n",
			listen, admin, token, filepath.Join(filepath.Dir(cfgFile), "data"), maxBytes, o.URL(), extraRule)
		if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(tokenA, "1GiB", "")
	var logs origintest.LogBuffer
	cmd := exec.Command(bin, "serve", "--config", cfgFile, "--log-format", "json", "--shutdown-timeout", "20s")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	origintest.WaitFor(t, "the edge to listen", func() bool { return strings.Contains(logs.String(), "sliceedge serving") })

	recs := logs.Lines(t)
	if w := withMessage(recs, "config: "+cfgFile+":6: rules[0]: no hosts"); len(w) != 1 || w[0]["level"] != "warn" {
		t.Errorf("at start: %d warnings naming %s:6 rules[0], want 1\nlogs:\n%s", len(w), cfgFile, logs.String())
	}
	host, _ := os.Hostname()
	if s := withMessage(recs, "sliceedge serving"); len(s) != 1 || s[0]["name"] != host {
		t.Errorf("serving line %v: want name %q (no name: in the file: the host name)", s, host)
	}

	get := func(path string) (int, []byte) {
		resp, err := http.Get("http://" + listen + path)
		if err != nil {
			t.Fatalf("GET %s: %v\nlogs:\n%s", path, err, logs.String())
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	adminGet := func(token string) int {
		req, _ := http.NewRequest("GET", "http://"+admin+"/stats", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("admin GET /stats: %v\nlogs:\n%s", err, logs.String())
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code, body := get("/a/1MiB.bin"); code != 200 || len(body) != 1<<20 {
		t.Fatalf("before reload: %d, %d bytes", code, len(body))
	}
	if code := adminGet(tokenA); code != 200 {
		t.Fatalf("admin API with the token of the file: %d, want 200", code)
	}

	// A broken file is refused; the old configuration keeps serving.
	if err := os.WriteFile(cfgFile, []byte("listen: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	origintest.WaitFor(t, "the refusal", func() bool { return strings.Contains(logs.String(), "configuration not reloaded") })
	if code, _ := get("/a/2MiB.bin"); code != 200 {
		t.Fatalf("after a refused reload: status %d", code)
	}

	// A good file takes effect: a new rule with 4MiB slices, and a new
	// admin token, which revokes the old one at once and needs no restart.
	writeCfg(tokenB, "1GiB", "  - {match: /big/, origin: default, slice_size: 4MiB}\n")
	cmd.Process.Signal(syscall.SIGHUP)
	origintest.WaitFor(t, "the reload", func() bool { return strings.Count(logs.String(), "configuration reloaded") == 1 })
	if code := adminGet(tokenA); code != 401 {
		t.Errorf("admin API with the token rotated away: %d, want 401", code)
	}
	if code := adminGet(tokenB); code != 200 {
		t.Errorf("admin API with the new token: %d, want 200", code)
	}
	recs = logs.Lines(t)
	if r := withMessage(recs, "admin.token rotated"); len(r) != 1 {
		t.Errorf("%d lines say the admin token was rotated, want 1\nlogs:\n%s", len(r), logs.String())
	}
	if r := withMessage(recs, "next restart"); len(r) != 0 {
		t.Errorf("a reload changing only rules and admin.token says something waits for a restart: %v", r)
	}
	if strings.Contains(logs.String(), tokenA) || strings.Contains(logs.String(), tokenB) {
		t.Errorf("the log shows an admin token:\n%s", logs.String())
	}
	if w := withMessage(recs, "config: "+cfgFile+":7: rules[1]: no hosts"); len(w) != 1 {
		t.Errorf("after the reload: %d warnings naming %s:7 rules[1], want 1\nlogs:\n%s", len(w), cfgFile, logs.String())
	}
	get("/big/8MiB.bin")
	out, err := run(t, "inspect", "--config", cfgFile, "http://"+listen+"/big/8MiB.bin")
	if err != nil || !strings.Contains(out, "4MiB each") {
		t.Fatalf("after reload, /big/ objects should have 4MiB slices: %v\n%s", err, out)
	}

	// A new store budget needs a restart, and the warning names it alone.
	writeCfg(tokenB, "2GiB", "  - {match: /big/, origin: default, slice_size: 4MiB}\n")
	cmd.Process.Signal(syscall.SIGHUP)
	origintest.WaitFor(t, "the second reload", func() bool { return strings.Count(logs.String(), "configuration reloaded") == 2 })
	recs = logs.Lines(t)
	r := withMessage(recs, "next restart")
	if len(r) != 1 || fmt.Sprint(r[0]["keys"]) != "[store.max_bytes]" || !strings.Contains(r[0]["message"].(string), "changes to store.max_bytes take effect") {
		t.Errorf("after changing store.max_bytes: %v, want one warning naming store.max_bytes alone", r)
	}
	if r := withMessage(recs, "admin.token rotated"); len(r) != 1 {
		t.Errorf("a reload with the same token says it was rotated (%d lines)", len(r))
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
	origintest.WaitFor(t, "the slow response to start", func() bool { return o.PathBodyBytes("/slow/6MiB.bin") > 1<<20 })
	cmd.Process.Signal(syscall.SIGTERM)
	r2 := <-done
	if r2.err != nil || r2.n != 6<<20 {
		t.Errorf("response in flight at SIGTERM: %d bytes, %v", r2.n, r2.err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\nlogs:\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("no shutdown message in the log")
	}
	checkStopped(t, &logs, 0)
}

// A reload applies --listen and --store-dir again, so an unchanged file
// draws no restart warning, and a changed key is named alone.
func TestReloadKeepsFlagOverrides(t *testing.T) {
	file := filepath.Join(t.TempDir(), "edge.yaml")
	write := func(memoryCache string) {
		yaml := "listen: 127.0.0.1:8080\nadmin: {listen: 127.0.0.1:8081, token: tok-0123456789abcdef}\n" +
			"store: {dir: ./data, max_bytes: 1GiB, memory_cache: " + memoryCache + "}\n" +
			"origins: {default: {url: http://127.0.0.1:9000}}\nrules: [{match: /, origin: default, hosts: [a.example]}]\n"
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("64MiB")
	started, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	opts := serveOptions{listen: "127.0.0.1:9999", storeDir: "/var/cache/edge"}
	opts.override(started)
	h := &edge.Server{Config: started}
	var buf bytes.Buffer
	log := zerolog.New(&buf)

	cur := reload(h, started, started, opts, log)
	if strings.Contains(buf.String(), "next restart") || !strings.Contains(buf.String(), "configuration reloaded") {
		t.Errorf("reload of the same file under --listen and --store-dir:\n%s\nwant no restart warning", buf.String())
	}
	if cur.Listen != opts.listen || cur.Store.Dir != opts.storeDir {
		t.Errorf("in force after reload: listen %q, store.dir %q; want the flags' %q, %q", cur.Listen, cur.Store.Dir, opts.listen, opts.storeDir)
	}
	buf.Reset()
	write("128MiB")
	reload(h, started, cur, opts, log)
	if !strings.Contains(buf.String(), `"keys":["store.memory_cache"]`) {
		t.Errorf("reload with a new store.memory_cache:\n%s\nwant a restart warning naming it alone", buf.String())
	}
}
