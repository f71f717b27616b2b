package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/sliceedge/sliceedge/bench"
	"github.com/sliceedge/sliceedge/config"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:      "bench",
		Usage:     "load-test an edge with named workloads; every body is verified byte for byte",
		UsageText: "sliceedge bench [--target URL --origin URL] [--workload hot,seek,...] [--duration 5s] [--json FILE]",
		Description: "Without --target, starts its own demo origin and edge (a store in a temporary directory)\n" +
			"on 127.0.0.1 and tears them down after. With --target (the edge under test: sliceedge,\n" +
			"nginx, Varnish ...), --origin must be the `sliceedge origin` behind it: its /.origin/\n" +
			"endpoints give the origin's counters and set the origin modes the workloads need.\n" +
			"Every run uses fresh object paths, so every target starts cold. pop starts --nodes sliceedge\n" +
			"nodes as one POP, and one node alone, in front of its own origin; it runs only without --target.\n\n" +
			"Workloads: " + strings.Join(bench.AllWorkloads(), ", ") + " (see `go doc github.com/sliceedge/sliceedge/bench`).\n" +
			"Exits with status 1 when any answer held wrong bytes or bytes of two versions.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "base `URL` of the edge under test (default: an in-process edge)", EnvVars: envVar("BENCH_TARGET")},
			&cli.StringFlag{Name: "origin", Usage: "base `URL` of the `sliceedge origin` behind --target", EnvVars: envVar("BENCH_ORIGIN")},
			&cli.StringFlag{Name: "workload", Aliases: []string{"w"}, Value: "all", Usage: "comma-separated `NAMES`, or all: " + strings.Join(bench.AllWorkloads(), ","), EnvVars: envVar("BENCH_WORKLOAD")},
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Value: bench.DefaultDuration, Usage: "measured time per workload", EnvVars: envVar("BENCH_DURATION")},
			&cli.IntFlag{Name: "connections", Aliases: []string{"c"}, Value: bench.DefaultConnections, Usage: "concurrent clients", EnvVars: envVar("BENCH_CONNECTIONS")},
			&cli.IntFlag{Name: "max-requests", Value: bench.DefaultMaxRequests, Usage: "most requests per workload", EnvVars: envVar("BENCH_MAX_REQUESTS")},
			&cli.IntFlag{Name: "objects", Value: bench.DefaultObjects, Usage: "objects of hot, mixed, stream and pop", EnvVars: envVar("BENCH_OBJECTS")},
			&cli.StringFlag{Name: "object-size", Value: config.FormatSize(bench.DefaultObjectSize), Usage: "`SIZE` of the objects of hot, mixed, collapse, flap, stream and pop", EnvVars: envVar("BENCH_OBJECT_SIZE")},
			&cli.StringFlag{Name: "big-object-size", Value: config.FormatSize(bench.DefaultBigObjectSize), Usage: "`SIZE` of the objects of seek, sequential and coldfill", EnvVars: envVar("BENCH_BIG_OBJECT_SIZE")},
			&cli.IntFlag{Name: "nodes", Value: bench.DefaultNodes, Usage: "sliceedge nodes pop starts as one POP", EnvVars: envVar("BENCH_NODES")},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the request streams", EnvVars: envVar("BENCH_SEED")},
			&cli.StringFlag{Name: "json", Usage: "also write the report as JSON to `FILE` (- for stdout, instead of the table)", EnvVars: envVar("BENCH_JSON")},
			&cli.BoolFlag{Name: "progress", Usage: "show the progress bar even when stderr is not a terminal", EnvVars: envVar("BENCH_PROGRESS")},
			&cli.BoolFlag{Name: "no-progress", Usage: "never show the progress bar", EnvVars: envVar("BENCH_NO_PROGRESS")},
		},
		Action: runBench,
	}
}

func runBench(c *cli.Context) error {
	cfg := bench.Config{
		Target:      c.String("target"),
		Origin:      c.String("origin"),
		Duration:    c.Duration("duration"),
		Connections: c.Int("connections"),
		MaxRequests: c.Int("max-requests"),
		Objects:     c.Int("objects"),
		Nodes:       c.Int("nodes"),
		Seed:        c.Uint64("seed"),
	}
	if w := c.String("workload"); w != "all" {
		for name := range strings.SplitSeq(w, ",") {
			if name = strings.TrimSpace(name); name != "" {
				cfg.Workloads = append(cfg.Workloads, name)
			}
		}
	}
	for _, f := range []struct {
		flag string
		dst  *int64
	}{{"object-size", &cfg.ObjectSize}, {"big-object-size", &cfg.BigObjectSize}} {
		n, err := config.ParseSize(c.String(f.flag))
		if err != nil {
			return cli.Exit(fmt.Sprintf("bench --%s: %v", f.flag, err), 2)
		}
		*f.dst = n
	}
	if c.Bool("progress") || !c.Bool("no-progress") && isTerminal(c.App.ErrWriter) {
		cfg.Progress = c.App.ErrWriter
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	if rep == nil {
		return cli.Exit(err.Error(), 2)
	}
	jsonFile := c.String("json")
	if jsonFile != "-" {
		if werr := rep.WriteTable(c.App.Writer); werr != nil {
			return fmt.Errorf("bench: write the table: %w", werr)
		}
	}
	if jsonFile != "" {
		if werr := writeReportJSON(jsonFile, c.App.Writer, rep); werr != nil {
			return cli.Exit(werr.Error(), 2)
		}
	}
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if rep.Failed() {
		return cli.Exit("bench: FAIL: the target served wrong bytes or bodies mixing two versions of an object", 1)
	}
	return nil
}

// writeReportJSON writes rep, indented, to file, or to stdout for "-".
func writeReportJSON(file string, stdout io.Writer, rep *bench.Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("bench --json: %w", err)
	}
	b = append(b, '\n')
	if file == "-" {
		_, err = stdout.Write(b)
	} else {
		err = os.WriteFile(file, b, 0o644)
	}
	if err != nil {
		return fmt.Errorf("bench --json %s: %w", file, err)
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
