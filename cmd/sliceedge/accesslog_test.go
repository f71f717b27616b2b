package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// accessLines returns the access log lines ("request") of a JSON log.
func accessLines(t *testing.T, text string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(text, "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if m["message"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// fetch GETs path from the edge and checks its bytes.
func fetch(t *testing.T, listen, path string) {
	t.Helper()
	resp, err := http.Get("http://" + listen + path)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
	}
	if at, ok := origintest.Verify(body, path, 1, 0); !ok {
		t.Fatalf("GET %s: wrong byte at %d", path, at)
	}
}

// TestAccessLogFile: access_log.path sends the access log, as JSON lines
// with millisecond timestamps, to a file of its own, which SIGUSR1
// reopens after logrotate has renamed it; the other lines stay on stderr.
// access_log: off logs no request at all.
func TestAccessLogFile(t *testing.T) {
	o := origintest.NewTest(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "access.log")
	listen := freeAddr(t)
	s := startServe(t, fmt.Sprintf("listen: %s\nstore: {dir: %s, max_bytes: 1GiB}\norigins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\naccess_log: {path: %s}\n",
		listen, t.TempDir(), o.URL(), file))
	fetch(t, listen, "/a/64KiB.bin")
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	origintest.WaitFor(t, "the first access line in the file", func() bool { return len(accessLines(t, read(file))) == 1 })
	l := accessLines(t, read(file))[0]
	if l["path"] != "/a/64KiB.bin" || l["status"] != 200.0 {
		t.Errorf("access line %v", l)
	}
	if ts, err := time.Parse(logTimeFormat, fmt.Sprint(l["time"])); err != nil || ts.Nanosecond()%int(time.Millisecond) != 0 || !strings.Contains(fmt.Sprint(l["time"]), ".") {
		t.Errorf("time %v: want RFC 3339 with milliseconds (%v)", l["time"], err)
	}

	// logrotate: rename, then SIGUSR1.
	if err := os.Rename(file, file+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	origintest.WaitFor(t, "the reopen", func() bool { return strings.Contains(s.logs.String(), "access log reopened") })
	fetch(t, listen, "/b/32KiB.bin")
	origintest.WaitFor(t, "the second access line in the new file", func() bool { return len(accessLines(t, read(file))) == 1 })
	if l := accessLines(t, read(file))[0]; l["path"] != "/b/32KiB.bin" {
		t.Errorf("the new file got %v", l)
	}
	if n := len(accessLines(t, read(file+".1"))); n != 1 {
		t.Errorf("the rotated file has %d access lines, want the 1 from before the reopen", n)
	}
	if n := len(accessLines(t, s.logs.String())); n != 0 {
		t.Errorf("%d access lines on stderr as well as in the file", n)
	}
	s.stop(t, 20*time.Second)

	// Off.
	listen = freeAddr(t)
	s = startServe(t, fmt.Sprintf("listen: %s\nstore: {dir: %s, max_bytes: 1GiB}\norigins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\naccess_log: off\n",
		listen, t.TempDir(), o.URL()))
	fetch(t, listen, "/c/16KiB.bin")
	s.stop(t, 20*time.Second)
	if strings.Contains(s.logs.String(), `"message":"request"`) || !strings.Contains(s.logs.String(), `"message":"stopped"`) {
		t.Errorf("access_log: off still logged requests, or the log is not whole:\n%s", s.logs.String())
	}
}

// TestConsoleLogNoColourInPipe: --log-format console into a pipe (a file,
// journald) writes no ANSI escape codes.
func TestConsoleLogNoColourInPipe(t *testing.T) {
	o := origintest.NewTest(t)
	listen := freeAddr(t)
	s := startServe(t, fmt.Sprintf("listen: %s\nstore: {dir: %s, max_bytes: 1GiB}\norigins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\n",
		listen, t.TempDir(), o.URL()), "--log-format", "console")
	fetch(t, listen, "/a/64KiB.bin")
	origintest.WaitFor(t, "the request line", func() bool {
		return strings.Contains(s.logs.String(), "request") && strings.Contains(s.logs.String(), "/a/64KiB.bin")
	})
	s.stop(t, 20*time.Second)
	if out := s.logs.String(); strings.Contains(out, "\x1b[") || strings.HasPrefix(out, "{") {
		t.Errorf("console log into a pipe:\n%q", out)
	}
}
