package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/bench"
)

func TestRatio(t *testing.T) {
	reqs := speed[0] // req/s: higher is better
	p50 := speed[2]  // lower is better
	for _, c := range []struct {
		f    figure
		s, p float64
		want string
	}{
		{reqs, 200, 100, "2.00 better"},
		{reqs, 50, 100, "0.50 worse"},
		{reqs, 103, 100, "1.03 ≈"},
		{p50, 200, 100, "2.00 worse"},
		{p50, 50, 100, "0.50 better"},
		{p50, 0, 100, "0.00 better"},
		{p50, 100, 0, "∞ worse"},
		{p50, 0, 0, "both 0"},
		{p50, 1, 1600, "0.00063 better"},
		{correctness[0], 1, 2, "—"}, // a count has no ratio
	} {
		got := ratio(c.f, cell{v: c.s, ok: true}, cell{v: c.p, ok: true})
		if got != c.want {
			t.Errorf("%s: ratio(%v, %v) = %q, want %q", c.f.name, c.s, c.p, got, c.want)
		}
	}
	if got := ratio(reqs, cell{v: 1, ok: true}, cell{}); got != "—" {
		t.Errorf("ratio with a missing peer value = %q, want —", got)
	}
}

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3 = %v, want 2", got)
	}
	if got := median([]float64{4, 1}); got != 2.5 {
		t.Errorf("median of 2 = %v, want 2.5", got)
	}
}

// TestTable runs the program over a results directory as compare-peers.sh
// writes it: two rounds, a peer with wrong bytes, a run with no report.
func TestTable(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "runs"), 0o755); err != nil {
		t.Fatal(err)
	}
	report := func(name string, res bench.Result) string {
		rep := bench.Report{BigObjectSize: 1 << 30, Results: []bench.Result{res}}
		b, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		file := "runs/" + name + ".json"
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return file
	}
	hot := func(rps float64, p50 time.Duration) bench.Result {
		return bench.Result{Workload: "hot", Requests: 1000, ReqPerSec: rps, MBPerSec: rps / 2, P50: p50, P99: 2 * p50, TTFBP50: p50 / 2}
	}
	flap := bench.Result{Workload: "flap", Requests: 100, ReqPerSec: 20, MixedBodies: 3, WrongBytes: 42,
		Extra: map[string]float64{"clean": 50, "cut": 47}}
	lines := []string{
		"round\tworkload\ttarget\texit\tseconds\tjson\tnote",
		"1\thot\tnginx\t0\t6\t" + report("r1-hot-nginx", hot(2000, 4*time.Millisecond)) + "\t\t37",
		"1\thot\tsliceedge\t0\t6\t" + report("r1-hot-sliceedge", hot(1000, 8*time.Millisecond)) + "\t",
		"2\thot\tsliceedge\t0\t6\t" + report("r2-hot-sliceedge", hot(3000, 2*time.Millisecond)) + "\t",
		"2\thot\tnginx\t2\t6\t\tbench: origin control GET stats: refused",
		"1\tflap\tnginx\t1\t6\t" + report("r1-flap-nginx", flap) + "\twrong bytes or mixed bodies",
		"1\tflap\tsliceedge\t0\t6\t" + report("r1-flap-sliceedge", bench.Result{Workload: "flap", Requests: 100, ReqPerSec: 10,
			Extra: map[string]float64{"clean": 100}}) + "\t",
	}
	if err := os.WriteFile(filepath.Join(dir, "runs.tsv"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "about.txt"), []byte("date  today\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, markdown := range []bool{false, true} {
		var b strings.Builder
		if err := run(&b, dir, markdown); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, want := range []string{
			"date  today",
			"sliceedge ÷ nginx",
			"2000",       // nginx's one hot round
			"1.00 ≈",     // sliceedge's median req/s over two rounds: 2000
			"1.25 worse", // p50: sliceedge's median(8ms, 2ms) = 5ms against nginx's 4ms
			"42",         // wrong bytes of nginx under flap
			"3 (3.0%)",   // mixed bodies as a share
			"37%",        // CPU other processes took while nginx ran hot
			"hot, nginx: round 2: no result (exit 2): bench: origin control GET stats: refused",
			"flap, nginx: round 1: bench exit 1 (wrong bytes or mixed bodies)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("markdown %v: output lacks %q:\n%s", markdown, want, out)
			}
		}
	}
}
