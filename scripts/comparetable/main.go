// Command comparetable prints the table of scripts/compare-peers.sh: for
// each workload and figure, the value each target measured (the median
// over the rounds, or the sum for counts) and the ratio sliceedge ÷ peer.
//
// Usage:
//
//	go run ./scripts/comparetable [-format text|markdown] RESULTS-DIR
//
// RESULTS-DIR is what compare-peers.sh wrote: runs.tsv (one line per
// bench run: round, workload, target, exit status, seconds, JSON report,
// note), the JSON reports of `sliceedge bench --json`, and about.txt
// (machine, date, versions), printed above the table.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	prettytable "github.com/jedib0t/go-pretty/v6/table"

	"github.com/sliceedge/sliceedge/bench"
)

func main() {
	format := flag.String("format", "text", "text or markdown")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: comparetable [-format text|markdown] RESULTS-DIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || (*format != "text" && *format != "markdown") {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(os.Stdout, flag.Arg(0), *format == "markdown"); err != nil {
		fmt.Fprintln(os.Stderr, "comparetable:", err)
		os.Exit(1)
	}
}

// subject is the target the others are compared with.
const subject = "sliceedge"

// benchRun is a single bench run, as listed in runs.tsv.
type benchRun struct {
	round    int
	workload string
	target   string
	exit     string // bench's exit status, or a word saying why it did not run
	seconds  float64
	note     string        // why it failed, when it did
	others   float64       // CPU other processes took during the run, % of all cores; NaN: unknown
	result   *bench.Result // nil when no report was written
	report   *bench.Report
}

// load reads runs.tsv and the reports it names.
func load(dir string) ([]benchRun, error) {
	f, err := os.Open(filepath.Join(dir, "runs.tsv"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var runs []benchRun
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 || strings.TrimSpace(sc.Text()) == "" {
			continue // header
		}
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) < 6 {
			return nil, fmt.Errorf("runs.tsv:%d: %d fields, want 7", line, len(fs))
		}
		r := benchRun{workload: fs[1], target: fs[2], exit: fs[3], others: math.NaN()}
		if r.round, err = strconv.Atoi(fs[0]); err != nil {
			return nil, fmt.Errorf("runs.tsv:%d: round %q", line, fs[0])
		}
		r.seconds, _ = strconv.ParseFloat(fs[4], 64)
		if len(fs) > 6 {
			r.note = fs[6]
		}
		if len(fs) > 7 && fs[7] != "" {
			if v, err := strconv.ParseFloat(fs[7], 64); err == nil {
				r.others = v
			}
		}
		if fs[5] != "" {
			if rep, err := readReport(filepath.Join(dir, fs[5])); err == nil {
				for i := range rep.Results {
					if rep.Results[i].Workload == r.workload {
						r.result, r.report = &rep.Results[i], rep
					}
				}
			} else if r.note == "" {
				r.note = err.Error()
			}
		}
		runs = append(runs, r)
	}
	return runs, sc.Err()
}

func readReport(file string) (*bench.Report, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errors.New("no report written")
		}
		return nil, err
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	return &rep, nil
}

// Which way a figure is better.
const (
	higher = 1  // ratio > 1: sliceedge better
	lower  = -1 // ratio < 1: sliceedge better
	count  = 0  // a count: summed over rounds, no ratio
)

// figure is one row of the table.
type figure struct {
	name   string
	better int
	// value is the figure of one run's result; false when it has none.
	value  func(r *bench.Result, rep *bench.Report) (float64, bool)
	format func(float64) string
	// share, for a count, shows it as a share of the measured requests too.
	share bool
}

// fig is a figure shown as it is (not as a share of the requests).
func fig(name string, better int, value func(*bench.Result, *bench.Report) (float64, bool), format func(float64) string) figure {
	return figure{name: name, better: better, value: value, format: format}
}

func (f figure) label() string {
	switch f.better {
	case higher:
		return f.name + " ↑"
	case lower:
		return f.name + " ↓"
	}
	return f.name + " (Σ)"
}

func extra(name string) func(*bench.Result, *bench.Report) (float64, bool) {
	return func(r *bench.Result, _ *bench.Report) (float64, bool) {
		v, ok := r.Extra[name]
		return v, ok
	}
}

func durationFig(get func(*bench.Result) time.Duration) func(*bench.Result, *bench.Report) (float64, bool) {
	return func(r *bench.Result, _ *bench.Report) (float64, bool) {
		d := get(r)
		return float64(d), d > 0
	}
}

func perByte(num func(*bench.Result) int64, den func(*bench.Result, *bench.Report) int64) func(*bench.Result, *bench.Report) (float64, bool) {
	return func(r *bench.Result, rep *bench.Report) (float64, bool) {
		d := den(r, rep)
		return float64(num(r)) / float64(d), d > 0
	}
}

// Figures every workload has, before and after the workload's own.
var (
	speed = []figure{
		fig("req/s", higher, func(r *bench.Result, _ *bench.Report) (float64, bool) { return r.ReqPerSec, true }, fmtRate),
		fig("MB/s", higher, func(r *bench.Result, _ *bench.Report) (float64, bool) { return r.MBPerSec, true }, fmtRate),
		fig("p50", lower, durationFig(func(r *bench.Result) time.Duration { return r.P50 }), fmtDuration),
		fig("p99", lower, durationFig(func(r *bench.Result) time.Duration { return r.P99 }), fmtDuration),
		fig("ttfb p50", lower, durationFig(func(r *bench.Result) time.Duration { return r.TTFBP50 }), fmtDuration),
	}
	correctness = []figure{
		{name: "errors", better: count, value: func(r *bench.Result, _ *bench.Report) (float64, bool) {
			return float64(r.Errors) + r.Extra["warm_errors"], true
		}, format: fmtCount, share: true},
		{name: "wrong bytes", better: count, value: func(r *bench.Result, _ *bench.Report) (float64, bool) { return float64(r.WrongBytes), true }, format: fmtCount},
		{name: "mixed bodies", better: count, value: func(r *bench.Result, _ *bench.Report) (float64, bool) { return float64(r.MixedBodies), true }, format: fmtCount, share: true},
	}
)

func originBytes(r *bench.Result) int64                { return r.OriginBytes }
func delivered(r *bench.Result, _ *bench.Report) int64 { return r.DeliveredBytes }

// own are each workload's key figures (see bench's package doc).
var own = map[string][]figure{
	"hot": {
		fig("origin bytes", lower, func(r *bench.Result, _ *bench.Report) (float64, bool) { return float64(r.OriginBytes), true }, fmtBytes),
	},
	"seek": {
		fig("ttfb p50 ÷ origin latency", lower, extra("ttfb_p50_over_origin_latency"), fmtRatio),
		fig("origin bytes ÷ delivered", lower, perByte(originBytes, delivered), fmtRatio),
	},
	"mixed": {
		// The phase is time-bound, so its wall time is the duration for
		// every target; the wall time of the same number of requests of
		// the stream is what compares (the reciprocal of req/s).
		fig("wall time per 1,000 requests", lower, func(r *bench.Result, _ *bench.Report) (float64, bool) {
			return 1000 * r.Seconds * float64(time.Second) / float64(r.Requests), r.Requests > 0 && r.Seconds > 0
		}, fmtDuration),
		fig("origin bytes ÷ requested", lower, extra("origin_bytes_per_requested_byte"), fmtRatio),
		fig("origin bytes ÷ delivered", lower, extra("origin_bytes_per_delivered_byte"), fmtRatio),
	},
	"collapse": {
		fig("origin bytes ÷ object byte", lower, extra("origin_bytes_per_object_byte"), fmtRatio),
		fig("origin bytes ÷ range byte", lower, extra("origin_bytes_per_range_byte"), fmtRatio),
		fig("round wall time, whole object", lower, func(r *bench.Result, _ *bench.Report) (float64, bool) {
			v, ok := r.Extra["object_wall_seconds"]
			return v * float64(time.Second), ok
		}, fmtDuration),
		fig("round wall time, 1 MiB range", lower, func(r *bench.Result, _ *bench.Report) (float64, bool) {
			v, ok := r.Extra["range_wall_seconds"]
			return v * float64(time.Second), ok
		}, fmtDuration),
	},
	"sequential": {
		fig("warm-up MB/s (cold, 8 MiB ranges)", higher, extra("warm_mb_per_second"), fmtRate),
		fig("warm-up origin bytes ÷ object", lower, perByte(
			func(r *bench.Result) int64 { return int64(r.Extra["warm_origin_bytes"]) },
			func(_ *bench.Result, rep *bench.Report) int64 { return rep.BigObjectSize }), fmtRatio),
	},
	"coldfill": {
		fig("fill time, whole object", lower, func(r *bench.Result, _ *bench.Report) (float64, bool) {
			v, ok := r.Extra["fill_seconds"]
			return v * float64(time.Second), ok
		}, fmtDuration),
		fig("origin bytes ÷ object byte", lower, extra("origin_bytes_per_object_byte"), fmtRatio),
	},
	"flap": {
		fig("clean answers", higher, func(r *bench.Result, _ *bench.Report) (float64, bool) {
			return 100 * r.Extra["clean"] / float64(r.Requests), r.Requests > 0
		}, fmtPercent),
		{name: "cut bodies", better: count, value: extra("cut"), format: fmtCount, share: true},
		{name: "5xx answers", better: count, value: extra("status_5xx"), format: fmtCount, share: true},
		fig("origin bytes ÷ delivered", lower, perByte(originBytes, delivered), fmtRatio),
	},
}

// figures are the rows of workload w.
func figures(w string) []figure {
	fs := slices.Clone(speed)
	fs = append(fs, own[w]...)
	return append(fs, correctness...)
}

// cell is one target's aggregate of one figure.
type cell struct {
	v        float64
	n        int   // runs that had the figure
	requests int64 // requests of those runs
	ok       bool
}

// text is c as shown in the table.
func (c cell) text(f figure) string {
	s := f.format(c.v)
	if f.share && c.v > 0 && c.requests > 0 {
		if pct := 100 * c.v / float64(c.requests); pct < 0.1 {
			s += " (<0.1%)"
		} else {
			s += " (" + fmtPercent(pct) + ")"
		}
	}
	return s
}

// aggregate is the median (or, for counts, the sum) of f over runs.
func aggregate(f figure, runs []benchRun) cell {
	var vs []float64
	var requests int64
	for _, r := range runs {
		if r.result == nil {
			continue
		}
		if v, ok := f.value(r.result, r.report); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			vs = append(vs, v)
			requests += r.result.Requests
		}
	}
	if len(vs) == 0 {
		return cell{}
	}
	if f.better == count {
		var s float64
		for _, v := range vs {
			s += v
		}
		return cell{v: s, n: len(vs), requests: requests, ok: true}
	}
	return cell{v: median(vs), n: len(vs), requests: requests, ok: true}
}

func median(vs []float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio is subject ÷ peer, with a word saying which is better; "—" when
// the figure is a count or either side has no value.
func ratio(f figure, s, p cell) string {
	if f.better == count || !s.ok || !p.ok {
		return "—"
	}
	switch {
	case s.v == 0 && p.v == 0:
		return "both 0"
	case s.v == p.v:
		return "1.00 ≈"
	case p.v == 0:
		return "∞ " + verdict(f.better*1)
	case s.v == 0:
		return "0.00 " + verdict(f.better*-1)
	}
	r := s.v / p.v
	word := "≈"
	if math.Abs(math.Log(r)) > math.Log(1.05) {
		word = verdict(f.better * int(math.Copysign(1, math.Log(r))))
	}
	return fmt.Sprintf("%s %s", fmtRatio(r), word)
}

// verdict says whether a ratio above (sign 1) or below (-1) one, of a
// figure better higher (1) or lower (-1), favours the subject.
func verdict(sign int) string {
	if sign > 0 {
		return "better"
	}
	return "worse"
}

func fmtRate(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func fmtRatio(v float64) string {
	switch {
	case v > 0 && v < 0.1:
		return strconv.FormatFloat(v, 'g', 2, 64)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func fmtPercent(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + "%" }
func fmtCount(v float64) string   { return strconv.FormatInt(int64(v), 10) }

// fmtDuration is d (in nanoseconds) with three significant digits.
func fmtDuration(v float64) string {
	d := time.Duration(v)
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// fmtBytes is v in binary units.
func fmtBytes(v float64) string {
	if v < 1024 {
		return fmt.Sprintf("%.0f B", v)
	}
	i := -1
	for v >= 1024 && i < 4 {
		v /= 1024
		i++
	}
	prec := 1
	if v < 10 {
		prec = 2
	}
	return fmt.Sprintf("%.*f %ciB", prec, v, "KMGTP"[i])
}

// table is the whole comparison, ready to print.
type table struct {
	targets []string
	rows    [][]string // workload, figure, one value per target, one ratio per peer
	notes   []string
}

func build(runs []benchRun) table {
	var t table
	var workloads []string
	for _, r := range runs {
		if !slices.Contains(workloads, r.workload) {
			workloads = append(workloads, r.workload)
		}
		if !slices.Contains(t.targets, r.target) {
			t.targets = append(t.targets, r.target)
		}
	}
	// The subject first, the peers in the order they first ran.
	if i := slices.Index(t.targets, subject); i > 0 {
		t.targets = append([]string{subject}, slices.Delete(t.targets, i, i+1)...)
	}
	peers := t.targets[1:]
	if len(t.targets) == 0 || t.targets[0] != subject {
		peers = t.targets
	}

	for _, w := range workloads {
		byTarget := map[string][]benchRun{}
		for _, r := range runs {
			if r.workload == w {
				byTarget[r.target] = append(byTarget[r.target], r)
			}
		}
		for i, f := range figures(w) {
			row := []string{"", f.label()}
			if i == 0 {
				row[0] = w
			}
			cells := map[string]cell{}
			for _, tg := range t.targets {
				c := aggregate(f, byTarget[tg])
				cells[tg] = c
				switch {
				case c.ok:
					row = append(row, c.text(f))
				case len(byTarget[tg]) == 0:
					row = append(row, "not run")
				case !anyResult(byTarget[tg]):
					row = append(row, "failed")
				default:
					row = append(row, "—")
				}
			}
			for _, p := range peers {
				row = append(row, ratio(f, cells[subject], cells[p]))
			}
			t.rows = append(t.rows, row)
		}
		if row, ok := othersRow(t.targets, peers, byTarget); ok {
			t.rows = append(t.rows, row)
		}
		t.notes = append(t.notes, notes(w, t.targets, byTarget)...)
	}
	return t
}

// othersRow is the median CPU other processes on the machine took while
// each target was measured: not a figure of the target, but a warning
// that its figures may be low.
func othersRow(targets, peers []string, byTarget map[string][]benchRun) ([]string, bool) {
	row := []string{"", "CPU taken by other processes"}
	seen := false
	for _, tg := range targets {
		var vs []float64
		for _, r := range byTarget[tg] {
			if !math.IsNaN(r.others) {
				vs = append(vs, r.others)
			}
		}
		if len(vs) == 0 {
			row = append(row, "—")
			continue
		}
		seen = true
		row = append(row, fmt.Sprintf("%.0f%%", median(vs)))
	}
	for range peers {
		row = append(row, "")
	}
	return row, seen
}

func anyResult(runs []benchRun) bool {
	return slices.ContainsFunc(runs, func(r benchRun) bool { return r.result != nil })
}

// retryNote starts the note of a run that compare-peers.sh measured again
// (--retries) because other processes took too much of the CPU.
const retryNote = "kept try "

// retried is the note on the runs measured again, or "" when none was.
func retried(runs []benchRun) string {
	n := 0
	for _, r := range runs {
		if strings.HasPrefix(r.note, retryNote) || strings.Contains(r.note, "; "+retryNote) {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d runs were measured again because other processes took much of the CPU (--retries); the least disturbed try was kept", n, len(runs))
}

// notes are what failed, and the first error each target saw, per
// workload.
func notes(w string, targets []string, byTarget map[string][]benchRun) []string {
	var out []string
	for _, tg := range targets {
		var failed []string
		firstErr := ""
		for _, r := range byTarget[tg] {
			switch {
			case r.exit == "1":
				failed = append(failed, fmt.Sprintf("round %d: bench exit 1 (wrong bytes or mixed bodies)", r.round))
			case r.exit != "0":
				failed = append(failed, fmt.Sprintf("round %d: no result (exit %s): %s", r.round, r.exit, clip(r.note)))
			case r.note != "" && !strings.HasPrefix(r.note, retryNote):
				failed = append(failed, fmt.Sprintf("round %d: %s", r.round, clip(r.note)))
			}
			if firstErr == "" && r.result != nil && r.result.FirstError != "" {
				firstErr = fmt.Sprintf("round %d, first error: %s", r.round, clip(r.result.FirstError))
			}
		}
		for _, s := range failed {
			out = append(out, fmt.Sprintf("%s, %s: %s", w, tg, s))
		}
		if firstErr != "" {
			out = append(out, fmt.Sprintf("%s, %s: %s", w, tg, firstErr))
		}
	}
	return out
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 200 {
		return string(r[:200]) + "…"
	}
	return s
}

func (t table) header() []string {
	h := []string{"workload", "figure"}
	h = append(h, t.targets...)
	for _, p := range t.targets[1:] {
		h = append(h, subject+" ÷ "+p)
	}
	return h
}

const legend = `Values: the median over the rounds; figures marked (Σ) are summed over the rounds
(in brackets: their share of the requests measured). "CPU taken by other processes" is
the share of all cores that processes other than the benchmark's took during the runs.
Ratios are sliceedge ÷ peer. ↑ higher is better: a ratio above 1 favours sliceedge.
↓ lower is better: a ratio below 1 favours sliceedge. The word after each ratio says
which way it goes ("≈": within 5%).`

// writer is t as a go-pretty table: the workload and figure columns
// left-aligned, the values and ratios right-aligned; bold makes each
// workload's name bold (markdown).
func (t table) writer(bold bool) prettytable.Writer {
	tw := bench.PlainTable(3, len(t.header()))
	if !bold {
		st := tw.Style()
		st.Box.MiddleHorizontal = " " // the separator between workloads: a blank line
	}
	tw.AppendHeader(bench.Row(t.header()))
	for k, r := range t.rows {
		if k > 0 && r[0] != "" && !bold {
			tw.AppendSeparator()
		}
		if bold && r[0] != "" {
			r = append([]string{"**" + r[0] + "**"}, r[1:]...)
		}
		tw.AppendRow(bench.Row(r))
	}
	return tw
}

func (t table) writeText(w io.Writer) error {
	var b strings.Builder
	b.WriteString(legend + "\n\n")
	for _, l := range strings.Split(t.writer(false).Render(), "\n") {
		b.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	if len(t.notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range t.notes {
			b.WriteString("  " + n + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (t table) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString(strings.ReplaceAll(legend, "\n", " ") + "\n\n")
	b.WriteString(t.writer(true).RenderMarkdown() + "\n")
	if len(t.notes) > 0 {
		b.WriteString("\nNotes from the runs:\n\n")
		for _, n := range t.notes {
			b.WriteString("- " + strings.ReplaceAll(n, "|", `\|`) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// readAbout is about.txt, or "" when there is none.
func readAbout(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "about.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

func run(w io.Writer, dir string, markdown bool) error {
	runs, err := load(dir)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return fmt.Errorf("%s: no runs listed in runs.tsv", dir)
	}
	about, err := readAbout(dir)
	if err != nil {
		return err
	}
	t := build(runs)
	if n := retried(runs); n != "" {
		t.notes = append(t.notes, n)
	}
	if markdown {
		if about != "" {
			fmt.Fprintf(w, "```\n%s```\n\n", about)
		}
		return t.writeMarkdown(w)
	}
	if about != "" {
		fmt.Fprintf(w, "%s\n", about)
	}
	return t.writeText(w)
}
