package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// promtool is the path of Prometheus's promtool; the test fails, naming
// the package, when it is missing.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is missing: install Debian's prometheus package (apt-get install prometheus); .ci/run does")
	}
	return p
}

// TestMetricsPromtool: a real scrape of /metrics, after hits, misses, a
// pass-through, a 404 and an origin pool with a dead member, passes
// `promtool check metrics` with nothing to report: every family has HELP
// text and a TYPE, counters are counters. It carries the build, the
// connections per listener, the rule of each request and the pool's
// members. The shipped alert rules pass `promtool check rules`.
func TestMetricsPromtool(t *testing.T) {
	tool := promtool(t)
	o := origintest.NewTest(t)
	listen, admin := freeAddr(t), freeAddr(t)
	const token = "metrics-test-admin-token-1234"
	s := startServe(t, fmt.Sprintf(`listen: %s
admin: {listen: %s, token: %s}
store: {dir: %s, max_bytes: 1GiB}
origins:
  media:
    urls: [%s, http://%s]
    health_check: {path: /h/1KiB.bin, interval: 100ms}
rules:
  - {match: /video/, origin: media}
  - {match: /, origin: media}
`, listen, admin, token, t.TempDir(), o.URL(), freeAddr(t)))
	for i, p := range []string{"/video/a/1MiB.bin", "/video/a/1MiB.bin", "/b/64KiB.bin"} {
		resp, err := http.Get("http://" + listen + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if i == 0 {
			// The fill goes on after the client has its bytes: the second
			// request is a HIT once it has landed.
			origintest.WaitFor(t, "the fill to land", func() bool {
				req, _ := http.NewRequest(http.MethodGet, "http://"+admin+"/stats", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				var st struct {
					Store         struct{ Slices int64 }
					FillsInFlight int `json:"fills_in_flight"`
				}
				return json.NewDecoder(resp.Body).Decode(&st) == nil && st.Store.Slices == 1 && st.FillsInFlight == 0
			})
		}
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/b/64KiB.bin", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	// A refused admin request is counted, and logged.
	if resp, err := http.Get("http://" + admin + "/stats"); err == nil {
		resp.Body.Close()
	}
	origintest.WaitFor(t, "the dead member out of its pool", func() bool {
		return strings.Contains(s.logs.String(), "origin member out of its pool")
	})

	req, _ = http.NewRequest(http.MethodGet, "http://"+admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, want := range []string{
		`sliceedge_build_info{version="dev",commit="unknown",goversion="go`,
		`sliceedge_connections{listener="edge"}`,
		`sliceedge_connections_total{listener="admin"}`,
		`sliceedge_requests_total{status="200",cache="HIT",rule="/video/"} 1`,
		`sliceedge_origin_member_up{origin="media",member="` + strings.TrimPrefix(o.URL(), "http://") + `"} 1`,
		`sliceedge_origin_member_response_seconds_bucket{origin="media",member="`,
		`sliceedge_admin_auth_failures_total 1`,
		"# TYPE sliceedge_collapsed_total counter",
		"# TYPE sliceedge_store_evictions_total counter",
		"# HELP go_goroutines Go runtime metric",
		"# HELP process_cpu_seconds_total Process metric",
	} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	for _, line := range strings.Split(string(text), "\n") {
		if name, ok := strings.CutPrefix(line, "# HELP "); ok && !strings.Contains(name, " ") {
			t.Errorf("family %s has no HELP text (add it to edge/metadata.go)", name)
		}
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" && strings.HasSuffix(f[2], "_total") && f[3] != "counter" {
			t.Errorf("%s is a %s: names ending _total are counters", f[2], f[3])
		}
	}
	if !strings.Contains(s.logs.String(), "admin: request refused") {
		t.Error("the refused admin request was not logged")
	}

	out, err = exec.Command(tool, "check", "rules", "../../scripts/alerts.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}

	// Every series the dashboard and the alerts query is one /metrics
	// has (but a POP's, which a node alone does not expose).
	names := regexp.MustCompile(`\b(?:sliceedge|go|process)_[a-z_]+`)
	for _, file := range []string{"../../scripts/grafana-dashboard.json", "../../scripts/alerts.yml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names.FindAllString(string(data), -1) {
			if strings.HasPrefix(name, "sliceedge_cluster_") || strings.HasPrefix(name, "sliceedge_peer_") {
				continue
			}
			if !regexp.MustCompile(`(?m)^` + name + `[{ ]`).Match(text) {
				t.Errorf("%s queries %s, which /metrics does not have", file, name)
			}
		}
	}
}

// TestAlertRules: promtool's unit tests of the alert rules pass: one
// member of a pool down is a ticket, not a page (the pool still serves);
// every member down is the page. (A trial under systemd found the page
// firing for one member of two.)
func TestAlertRules(t *testing.T) {
	tool := promtool(t)
	cmd := exec.Command(tool, "test", "rules", "alerts_test.yml")
	cmd.Dir = "../../scripts"
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
