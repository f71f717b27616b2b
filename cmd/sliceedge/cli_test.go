package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// commandLineOnly are the flags no environment variable sets: purge's
// choice of what to purge.
var commandLineOnly = map[string]bool{"purge --prefix": true, "purge --all": true, "purge --soft": true, "purge --glob": true, "purge --tag": true}

// Every command and subcommand answers --help with its usage, and every
// flag it shows names the SLICEEDGE_ variable that also sets it.
func TestHelpEverywhere(t *testing.T) {
	var walk func(prefix []string, cmds []*cli.Command)
	n := 0
	walk = func(prefix []string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Name == "help" {
				continue
			}
			args := append(append([]string(nil), prefix...), c.Name)
			walk(args, c.Subcommands)
			out, err := run(t, append(args, "--help")...)
			if err != nil || !strings.Contains(out, "USAGE") || !strings.Contains(out, c.Name) {
				t.Errorf("%s --help: %v\n%s", strings.Join(args, " "), err, out)
			}
			for _, f := range c.Flags {
				name := strings.Join(args, " ") + " --" + f.Names()[0]
				if ev, ok := f.(interface{ GetEnvVars() []string }); ok && f.Names()[0] != "help" && !commandLineOnly[name] {
					if vars := ev.GetEnvVars(); len(vars) == 0 || !strings.HasPrefix(vars[0], "SLICEEDGE_") || !strings.Contains(out, vars[0]) {
						t.Errorf("%s: environment variables %v, not shown in --help or not SLICEEDGE_*", name, vars)
					}
				}
			}
			n++
		}
	}
	walk(nil, newApp().Commands)
	if n < 8 {
		t.Errorf("walked %d commands; the app has more", n)
	}
}

// A flag's SLICEEDGE_ variable sets it: here the admin address, which the
// error then names.
func TestFlagFromEnvironment(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	addr := ts.URL
	ts.Close() // nothing listens there now
	t.Setenv("SLICEEDGE_ADMIN", addr)
	t.Setenv("SLICEEDGE_TOKEN", "x")
	_, err := run(t, "stats")
	if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(addr, "http://")) {
		t.Fatalf("stats with SLICEEDGE_ADMIN=%s: %v; want an error naming that address", addr, err)
	}
}

// origin --dir serves files with ranges and a strong ETag the edge can
// slice-cache, and nothing outside the directory.
func TestOriginDir(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 100_000)
	if err := os.WriteFile(filepath.Join(dir, "a.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(t.TempDir(), "secret"), []byte("no"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(dirHandler(dir, "max-age=60"))
	defer ts.Close()
	get := func(path, rng string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	resp, body := get("/a.bin", "bytes=1000000-1000099")
	if resp.StatusCode != 206 || !bytes.Equal(body, data[1000000:1000100]) ||
		resp.Header.Get("Content-Range") != "bytes 1000000-1000099/1600000" {
		t.Fatalf("range: status %d, Content-Range %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
	}
	if et := resp.Header.Get("ETag"); !strings.HasPrefix(et, `"`) || resp.Header.Get("Cache-Control") != "max-age=60" {
		t.Errorf("ETag %q (want strong), Cache-Control %q", et, resp.Header.Get("Cache-Control"))
	}
	for _, p := range []string{"/../secret", "/%2e%2e/secret", "/", "/missing"} {
		if resp, _ := get(p, ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, resp.StatusCode)
		}
	}
}
