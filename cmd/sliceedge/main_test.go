package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	app.ExitErrHandler = func(*cli.Context, error) {} // report, don't os.Exit
	err := app.Run(append([]string{"sliceedge"}, args...))
	return out.String(), err
}

func TestConfigCheck(t *testing.T) {
	out, err := run(t, "config", "check", "../../testdata/config/edge.yaml")
	if err != nil || !strings.Contains(out, "edge.yaml: ok") {
		t.Fatalf("sample config: %q, %v", out, err)
	}
	_, err = run(t, "config", "check", "../../testdata/config/bad-unknown-field.yaml")
	if err == nil || !strings.Contains(err.Error(), "bad-unknown-field.yaml:") || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("bad config: %v, want file:line and the field", err)
	}
	// A rule without hosts loads, with a warning naming its line.
	out, err = run(t, "config", "check", "../../testdata/config/bad-shadow-glob.yaml")
	if err == nil || !strings.Contains(err.Error(), "bad-shadow-glob.yaml:14: rules[1]: never matches") {
		t.Fatalf("glob behind a glob: %q, %v", out, err)
	}
	dir := t.TempDir()
	file := dir + "/hostless.yaml"
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:8080\nstore: {dir: d, max_bytes: 1GiB}\norigins: {o: {url: http://127.0.0.1:9000}}\nrules:\n  - {match: /, origin: o}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "config", "check", file)
	if err != nil || !strings.Contains(out, "warning: "+file+":5: rules[0]: no hosts") || !strings.Contains(out, "ok (") || !strings.Contains(out, "1 warnings") {
		t.Fatalf("rule without hosts: %q, %v; want ok and a warning with its line", out, err)
	}
	_, err = run(t, "config", "check")
	if err == nil || !strings.Contains(err.Error(), "give exactly one FILE") {
		t.Fatalf("no file: %v", err)
	}
}

func TestVersion(t *testing.T) {
	out, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "sliceedge "+version+" (commit "+commit+")") {
		t.Fatalf("version: %q %v", out, err)
	}
}

func TestLoggerFormats(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Str("k", "v").Msg("hello")
	if !strings.HasPrefix(buf.String(), "{") || !strings.Contains(buf.String(), `"k":"v"`) {
		t.Errorf("json log line %q", buf.String())
	}
	if _, err := newLogger(&buf, "xml", "info"); err == nil || !strings.Contains(err.Error(), "want json, console or auto") {
		t.Errorf("bad format: %v", err)
	}
	if _, err := newLogger(&buf, "json", "loud"); err == nil {
		t.Errorf("bad level accepted")
	}
}
