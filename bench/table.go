package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"
)

// WriteTable writes the report as aligned columns with human units, then
// each workload's own figures, then a verdict on wrong bytes and mixed
// bodies.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "target   %s\norigin   %s\nmachine  %s\nstarted  %s; %v per workload, %d connections, seed %d\n\n",
		r.Target, r.Origin, r.Machine, r.Started.Format(time.RFC3339), r.Duration, r.Connections, r.Seed)

	rows := [][]string{{"workload", "requests", "req/s", "MB/s", "p50", "p99", "max", "ttfb p50", "ttfb p99",
		"origin req", "origin bytes", "delivered", "errors", "wrong bytes", "mixed"}}
	for _, res := range r.Results {
		rows = append(rows, []string{
			res.Workload,
			strconv.FormatInt(res.Requests, 10),
			fmt.Sprintf("%.1f", res.ReqPerSec),
			fmt.Sprintf("%.1f", res.MBPerSec),
			humanDuration(res.P50),
			humanDuration(res.P99),
			humanDuration(res.Max),
			humanDuration(res.TTFBP50),
			humanDuration(res.TTFBP99),
			strconv.FormatInt(res.OriginRequests, 10),
			humanBytes(res.OriginBytes),
			humanBytes(res.DeliveredBytes),
			strconv.FormatInt(res.Errors, 10),
			strconv.FormatInt(res.WrongBytes, 10),
			strconv.FormatInt(res.MixedBodies, 10),
		})
	}
	writeColumns(&b, rows)

	b.WriteByte('\n')
	for _, res := range r.Results {
		keys := slices.Sorted(maps.Keys(res.Extra))
		figs := make([]string, 0, len(keys))
		for _, k := range keys {
			figs = append(figs, k+" "+humanFigure(k, res.Extra[k]))
		}
		fmt.Fprintf(&b, "%-10s %s\n", res.Workload, strings.Join(figs, ", "))
		if res.FirstError != "" {
			fmt.Fprintf(&b, "%-10s first error: %s\n", "", res.FirstError)
		}
	}
	b.WriteByte('\n')
	if r.Failed() {
		b.WriteString("FAIL: wrong bytes or mixed-version bodies were served (see the columns above)\n")
	} else {
		b.WriteString("ok: every body verified byte for byte; no wrong bytes, no mixed-version bodies\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// PlainTable is a go-pretty table writer in the style of the bench's
// reports: no borders or rules, columns two spaces apart, headers as
// written; the columns from rightFrom on (1-based) are right-aligned, up
// to columns.
func PlainTable(rightFrom, columns int) table.Writer {
	tw := table.NewWriter()
	st := table.StyleDefault
	st.Options = table.OptionsNoBordersAndSeparators
	st.Options.SeparateColumns = true
	st.Format.Header = text.FormatDefault
	st.Box.PaddingLeft, st.Box.PaddingRight, st.Box.MiddleVertical, st.Box.MiddleSeparator = "", "", "  ", "  "
	tw.SetStyle(st)
	var cfgs []table.ColumnConfig
	for i := rightFrom; i <= columns; i++ {
		cfgs = append(cfgs, table.ColumnConfig{Number: i, Align: text.AlignRight, AlignHeader: text.AlignRight})
	}
	tw.SetColumnConfigs(cfgs)
	return tw
}

// Row is cells as a table row.
func Row(cells []string) table.Row {
	r := make(table.Row, len(cells))
	for i, c := range cells {
		r[i] = c
	}
	return r
}

// writeColumns writes rows (the first a header) with the first column
// left-aligned and the others right-aligned, two spaces apart.
func writeColumns(b *strings.Builder, rows [][]string) {
	tw := PlainTable(2, len(rows[0]))
	tw.AppendHeader(Row(rows[0]))
	for _, r := range rows[1:] {
		tw.AppendRow(Row(r))
	}
	b.WriteString(tw.Render())
	b.WriteByte('\n')
}

// humanDuration is d with three significant digits: 812µs, 12.3ms, 1.25s.
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// humanBytes is n in binary units: 0 B, 512 B, 64 KiB, 1.5 GiB.
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

// humanFigure formats an Extra value by the unit its name ends with.
func humanFigure(name string, v float64) string {
	switch {
	case strings.HasSuffix(name, "_seconds"):
		return humanDuration(time.Duration(v * float64(time.Second)))
	case strings.HasSuffix(name, "_bytes"):
		return humanBytes(int64(v))
	case strings.HasSuffix(name, "_ms"):
		return humanDuration(time.Duration(v * float64(time.Millisecond)))
	case strings.Contains(name, "_per_") || strings.Contains(name, "_over_"):
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
