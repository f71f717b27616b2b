package main

// sliceedge stats: a running edge's figures, once or every few seconds.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/sliceedge/sliceedge/edge"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "show a running edge's store and traffic figures, once or with --watch",
		Flags: append(adminFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print the raw JSON", EnvVars: envVar("STATS_JSON")},
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "print a line of rates every --interval until Ctrl-C", EnvVars: envVar("STATS_WATCH")},
			&cli.DurationFlag{Name: "interval", Value: 2 * time.Second, Usage: "how often --watch asks", EnvVars: envVar("STATS_INTERVAL")},
			&cli.IntFlag{Name: "count", Usage: "with --watch, stop after this many lines (0: never)", EnvVars: envVar("STATS_COUNT")},
		),
		Action: func(c *cli.Context) error {
			a, err := newAdminClient(c)
			if err != nil {
				return cli.Exit("stats: "+err.Error(), 1)
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			get := func() (*edge.StatsReport, error) {
				var st edge.StatsReport
				if err := a.call(ctx, http.MethodGet, "/stats", nil, &st); err != nil {
					return nil, err
				}
				return &st, nil
			}
			st, err := get()
			if err != nil {
				return cli.Exit("stats: "+err.Error(), 1)
			}
			w := c.App.Writer
			switch {
			case c.Bool("json"):
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			case c.Bool("watch"):
				if c.Duration("interval") < 100*time.Millisecond {
					return cli.Exit("stats: --interval below 100ms (want e.g. 2s)", 2)
				}
				if err := watchStats(ctx, w, st, get, c.Duration("interval"), c.Int("count")); err != nil && ctx.Err() == nil {
					return cli.Exit("stats: "+err.Error(), 1)
				}
				return nil
			}
			printStats(w, st)
			return nil
		},
	}
}

// ibytes is a byte count as people read it: 1.5 GiB.
func ibytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

// count is a number with thousands separators.
func count(n int64) string { return humanize.Comma(n) }

// perSecond is n over d, as a rate.
func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// printStats writes one report for people.
func printStats(w io.Writer, st *edge.StatsReport) {
	up := st.Now.Sub(st.StartedAt)
	if !st.StartedAt.IsZero() {
		fmt.Fprintf(w, "sliceedge   %s, up %s (since %s)\n", st.Version, up.Round(time.Second), st.StartedAt.UTC().Format("2006-01-02 15:04:05 MST"))
	} else {
		up = 0
	}
	pct := 0.0
	if st.Store.MaxBytes > 0 {
		pct = 100 * float64(st.Store.Bytes) / float64(st.Store.MaxBytes)
	}
	c := st.Counters
	fmt.Fprintf(w, "store       %s of %s budget (%.1f%%), %s on disk\n", ibytes(st.Store.Bytes), ibytes(st.Store.MaxBytes), pct, ibytes(st.Store.DiskBytes))
	fmt.Fprintf(w, "objects     %s\nslices      %s\n", count(st.Store.Objects), count(st.Store.Slices))
	fmt.Fprintf(w, "requests    %s (%s passed through uncached)", count(c.Requests), count(c.Passed))
	if up > 0 {
		fmt.Fprintf(w, ", %.1f/s on average", perSecond(c.Requests, up))
	}
	fmt.Fprintf(w, "\nsent        %s from the cache", ibytes(c.ResponseBytes))
	if up > 0 {
		fmt.Fprintf(w, ", %s/s on average", ibytes(int64(perSecond(c.ResponseBytes, up))))
	}
	fmt.Fprintf(w, "\nhit ratio   %.1f%% of slices, %.1f%% of bytes\n", 100*st.SliceHitRatio, 100*st.ByteHitRatio)
	fmt.Fprintf(w, "origin      %s requests, %s of fills, %s errors; %d fills in flight\n", count(c.OriginRequests), ibytes(c.OriginBytes), count(c.OriginErrors), st.FillsInFlight)
}

// watchStats prints a header, then every interval a line of what changed
// since the last report: requests and bytes per second, the slice hit
// ratio of that interval, fills in flight and the store's size.
func watchStats(ctx context.Context, w io.Writer, last *edge.StatsReport, get func() (*edge.StatsReport, error), interval time.Duration, lines int) error {
	fmt.Fprintf(w, "%-8s %9s %11s %11s %9s %6s %11s\n", "time", "req/s", "sent/s", "origin/s", "slice hit", "fills", "store")
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; lines == 0 || n < lines; n++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		st, err := get()
		if err != nil {
			return err
		}
		if st.StartedAt != last.StartedAt {
			fmt.Fprintf(w, "(the edge restarted at %s; rates start again)\n", st.StartedAt.UTC().Format(time.TimeOnly))
			last = st
			continue
		}
		d := st.Now.Sub(last.Now)
		c, l := st.Counters, last.Counters
		hit := "-"
		if n := (c.SliceHits - l.SliceHits) + (c.SliceMisses - l.SliceMisses); n > 0 {
			hit = fmt.Sprintf("%.1f%%", 100*float64(c.SliceHits-l.SliceHits)/float64(n))
		}
		fmt.Fprintf(w, "%-8s %9.1f %11s %11s %9s %6d %11s\n", st.Now.Local().Format(time.TimeOnly),
			perSecond(c.Requests-l.Requests, d), ibytes(int64(perSecond(c.ResponseBytes-l.ResponseBytes, d)))+"/s",
			ibytes(int64(perSecond(c.OriginBytes-l.OriginBytes, d)))+"/s", hit, st.FillsInFlight, ibytes(st.Store.Bytes))
		last = st
	}
	return nil
}
