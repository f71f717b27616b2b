package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
	// mixed over 5 s: 6,170 requests against 3,485 is 810.4ms against 1.43s
	// per 1,000 requests.
	mixed := func(requests int64, perRequested float64) bench.Result {
		return bench.Result{Workload: "mixed", Requests: requests, Seconds: 5, ReqPerSec: float64(requests) / 5,
			Extra: map[string]float64{"origin_bytes_per_requested_byte": perRequested}}
	}
	coldfill := func(fill float64) bench.Result {
		return bench.Result{Workload: "coldfill", Requests: 1, Seconds: fill, ReqPerSec: 1 / fill, MBPerSec: 1073.741824 / fill,
			P50: time.Duration(fill * float64(time.Second)), DeliveredBytes: 1 << 30, OriginBytes: 1 << 30,
			Extra: map[string]float64{"fill_seconds": fill, "origin_bytes_per_object_byte": 1}}
	}
	lines := []string{
		"round\tworkload\ttarget\texit\tseconds\tjson\tnote",
		"1\thot\tnginx\t0\t6\t" + report("r1-hot-nginx", hot(2000, 4*time.Millisecond)) + "\t\t37",
		"1\thot\tsliceedge\t0\t6\t" + report("r1-hot-sliceedge", hot(1000, 8*time.Millisecond)) + "\t",
		"2\thot\tsliceedge\t0\t6\t" + report("r2-hot-sliceedge", hot(3000, 2*time.Millisecond)) + "\t",
		"2\thot\tnginx\t2\t6\t\tbench: origin control GET stats: refused",
		"1\tflap\tnginx\t1\t6\t" + report("r1-flap-nginx", flap) + "\twrong bytes or mixed bodies",
		"1\tflap\tsliceedge\t0\t6\t" + report("r1-flap-sliceedge", bench.Result{Workload: "flap", Requests: 100, ReqPerSec: 10,
			Extra: map[string]float64{"clean": 100}}) + "\t",
		"1\tmixed\tsliceedge\t0\t6\t" + report("r1-mixed-sliceedge", mixed(6170, 1)) + "\t",
		"1\tmixed\tnginx\t0\t6\t" + report("r1-mixed-nginx", mixed(3485, 1.25)) + "\t",
		"1\tcoldfill\tnginx\t0\t3\t" + report("r1-coldfill-nginx", coldfill(2.22)) + "\t",
		"1\tcoldfill\tsliceedge\t0\t3\t" + report("r1-coldfill-sliceedge", coldfill(2.69)) + "\t",
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
		// The figures issue 11 sets targets on, each with its ratio.
		for _, row := range []struct{ label, want string }{
			{"wall time per 1,000 requests ↓", "810.4ms.*1.43s.*0.56 better"},
			{"origin bytes ÷ requested ↓", "1.00.*1.25.*0.80 better"},
			{"fill time, whole object ↓", "2.69s.*2.22s.*1.21 worse"},
			{"origin bytes ÷ object byte ↓", "1.00.*1.00.*1.00 ≈"},
		} {
			if line := rowOf(out, row.label); !regexp.MustCompile(row.want).MatchString(line) {
				t.Errorf("markdown %v: row %q is %q, want %q", markdown, row.label, line, row.want)
			}
		}
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

// rowOf is the line of out that holds label, or "".
func rowOf(out, label string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, label) {
			return l
		}
	}
	return ""
}

// TestIssueFigures: the table has a row, with a ratio, for every figure
// issue 11 sets a target on.
func TestIssueFigures(t *testing.T) {
	for _, c := range []struct{ workload, figure string }{
		{"hot", "req/s"},
		{"hot", "p99"},
		{"seek", "ttfb p50"},
		{"mixed", "wall time per 1,000 requests"},
		{"mixed", "origin bytes ÷ requested"},
		{"sequential", "MB/s"},
		{"stream", "MB/s"},
		{"coldfill", "fill time, whole object"},
	} {
		i := slices.IndexFunc(figures(c.workload), func(f figure) bool { return f.name == c.figure })
		if i < 0 {
			t.Errorf("%s: no row %q", c.workload, c.figure)
			continue
		}
		if f := figures(c.workload)[i]; f.better == count {
			t.Errorf("%s: row %q is a count, without a ratio", c.workload, c.figure)
		}
	}
}
