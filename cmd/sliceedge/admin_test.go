package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// node is a real edge with its admin API over loopback.
type node struct {
	srv         *edge.Server
	edge, admin *httptest.Server
	cfgFile     string
}

func startNode(t *testing.T) *node {
	t.Helper()
	o := origintest.NewTest(t)
	yaml := fmt.Sprintf("listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:1, token: tok-0123456789abcdef}\nstore: {dir: %s, max_bytes: 1GiB}\n"+
		"origins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\n", t.TempDir(), o.URL())
	cfg, err := config.Parse("node.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	st, err := segstore.Open(segstore.Options{Dir: cfg.Store.Dir, MaxBytes: cfg.Store.MaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := &edge.Server{Config: cfg, Store: st, Log: zerolog.Nop(), Version: "test", Started: time.Now().Add(-time.Hour)}
	n := &node{srv: srv, edge: httptest.NewServer(srv), admin: httptest.NewServer(srv.AdminHandler())}
	t.Cleanup(n.edge.Close)
	t.Cleanup(n.admin.Close)
	// A config file naming this admin listener, for --config.
	n.cfgFile = filepath.Join(t.TempDir(), "edge.yaml")
	adminAddr := strings.TrimPrefix(n.admin.URL, "http://")
	if err := os.WriteFile(n.cfgFile, []byte(strings.Replace(yaml, "listen: 127.0.0.1:1, token", "listen: "+adminAddr+", token", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *node) get(t *testing.T, path, rng string) {
	t.Helper()
	req, _ := http.NewRequest("GET", n.edge.URL+path, nil)
	req.Header.Set("Range", rng)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// The fill goes on after the client has its bytes: let it land.
	origintest.WaitFor(t, "fills to settle", func() bool { return n.srv.InFlight() == 0 })
}

func TestAdminCommands(t *testing.T) {
	n := startNode(t)
	base := n.edge.URL
	n.get(t, "/v/4MiB.bin", "bytes=0-99")
	n.get(t, "/v/4MiB.bin", "bytes=3145728-3145799")

	out, err := run(t, "inspect", "--admin", n.admin.URL, "--token", "tok-0123456789abcdef", base+"/v/4MiB.bin")
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	for _, want := range []string{"size        4194304 bytes (4MiB)", "2 of 4 stored", "map         [#..#]", `validator   ETag "`} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(t, "stats", "--config", n.cfgFile)
	for _, want := range []string{"objects     1\n", "slices      2\n", "store       2.0 MiB of 1.0 GiB budget (0.2%)", "sliceedge   test, up ",
		"requests    2 (0 passed through uncached), ", "sent        172 B from the cache, "} {
		if !strings.Contains(out, want) {
			t.Errorf("stats via --config lacks %q: %v\n%s", want, err, out)
		}
	}
	n.get(t, "/w/a/64KiB.bin", "bytes=0-9")
	n.get(t, "/w/b/64KiB.bin", "bytes=0-9")
	out, err = run(t, "ls", "--config", n.cfgFile, "--prefix", base+"/")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 4 || !strings.HasPrefix(lines[0], "SIZE ") || !strings.Contains(lines[0], " KEY") ||
		!strings.HasPrefix(lines[1], "4.0 MiB  2/4     fresh") || !strings.HasSuffix(lines[1], "/v/4MiB.bin") || !strings.HasSuffix(lines[3], "/w/b/64KiB.bin") {
		t.Errorf("ls: %v\n%s", err, out)
	}
	out, err = run(t, "ls", "--config", n.cfgFile, "--limit", "1", "--json")
	if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"slices":4`) {
		t.Errorf("ls --limit 1 --json: %v\n%s", err, out)
	}
	out, err = run(t, "purge", "--config", n.cfgFile, "--glob", base+"/w/*/64KiB.bin")
	if err != nil || out != "purged 2 objects\n" {
		t.Errorf("glob purge: %q %v", out, err)
	}
	out, err = run(t, "purge", "--admin", n.admin.URL, "--token", "tok-0123456789abcdef", "--soft", base+"/v/4MiB.bin")
	if err != nil || out != "marked stale 1 object\n" {
		t.Errorf("soft purge: %q %v", out, err)
	}
	out, err = run(t, "purge", "--admin", n.admin.URL, "--token", "tok-0123456789abcdef", "--prefix", base+"/v/")
	if err != nil || out != "purged 1 object\n" {
		t.Errorf("prefix purge: %q %v", out, err)
	}
	_, err = run(t, "inspect", "--admin", n.admin.URL, "--token", "tok-0123456789abcdef", base+"/v/4MiB.bin")
	if err == nil || !strings.Contains(err.Error(), "is not stored") {
		t.Errorf("inspect after purge: %v", err)
	}
}

func TestAdminCommandErrors(t *testing.T) {
	n := startNode(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"purge", "--admin", n.admin.URL, "--token", "nope", "--all"}, "refused the token"},
		{[]string{"purge", "--admin", "http://127.0.0.1:1", "--token", "tok-0123456789abcdef", "--all"}, "cannot reach the admin API"},
		{[]string{"purge", "--token", "tok-0123456789abcdef", "--all"}, "no admin API address"},
		{[]string{"purge", "--admin", n.admin.URL, "--all"}, "no admin token"},
		{[]string{"purge", "--admin", n.admin.URL, "--token", "tok-0123456789abcdef"}, "give exactly one of"},
		{[]string{"purge", "--admin", n.admin.URL, "--token", "tok-0123456789abcdef", "--tag", "a", "--all"}, "give exactly one of"},
		{[]string{"purge", "--admin", n.admin.URL, "--token", "tok-0123456789abcdef", "--tag", "a b"}, "without spaces or commas"},
		{[]string{"purge", "--admin", n.admin.URL, "--token", "tok-0123456789abcdef", "/relative"}, "want an absolute URL"},
	}
	for _, c := range cases {
		_, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to say %q", c.args, err, c.want)
		}
	}
}

// A purge the store cannot write yet (here: a store that cannot open, so
// the edge serves through) is accepted, held in memory, and the command
// says so and succeeds.
func TestPurgePending(t *testing.T) {
	o := origintest.NewTest(t)
	yaml := fmt.Sprintf("listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:1, token: tok-0123456789abcdef}\nstore: {dir: /sys/sliceedge-test-store, max_bytes: 1GiB}\n"+
		"origins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\n", o.URL())
	cfg, err := config.Parse("node.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	st := &segstore.Reopening{Options: segstore.Options{Dir: cfg.Store.Dir, MaxBytes: cfg.Store.MaxBytes}, Retry: time.Hour}
	if err := st.Open(); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Err() == nil {
		t.Fatalf("a store under /sys opened; the test needs one that cannot")
	}
	srv := &edge.Server{Config: cfg, Store: st, Log: zerolog.Nop()}
	admin := httptest.NewServer(srv.AdminHandler())
	defer admin.Close()
	out, err := run(t, "purge", "--admin", admin.URL, "--token", "tok-0123456789abcdef", "http://edge.test/v/4MiB.bin")
	if err != nil || !strings.Contains(out, "purged") || !strings.Contains(out, "pending: ") {
		t.Errorf("purge while the store cannot write: %q, %v; want success saying it is pending", out, err)
	}
}
