package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/segstore"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the edge (with no --config: embedded defaults, in front of the demo origin on 127.0.0.1:9000)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML configuration `FILE` (default: embedded defaults)", EnvVars: envVar("CONFIG")},
			&cli.StringFlag{Name: "listen", Usage: "override listen: `HOST:PORT`", EnvVars: envVar("LISTEN")},
			&cli.StringFlag{Name: "store-dir", Usage: "override store.dir: `DIR`", EnvVars: envVar("STORE_DIR")},
			&cli.StringFlag{Name: "log-format", Value: "auto", Usage: "json, console, or auto (console when stderr is a terminal)", EnvVars: envVar("LOG_FORMAT")},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: envVar("LOG_LEVEL")},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 30 * time.Second, Usage: "how long in-flight responses may run after SIGTERM", EnvVars: envVar("SHUTDOWN_TIMEOUT")},
		},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c.String("config"))
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			if v := c.String("listen"); v != "" {
				cfg.Listen = v
			}
			if v := c.String("store-dir"); v != "" {
				cfg.Store.Dir = v
			}
			log, err := newLogger(os.Stderr, c.String("log-format"), c.String("log-level"))
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			return serve(c.Context, cfg, log, c.Duration("shutdown-timeout"))
		},
	}
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// newLogger logs JSON, or a human console format when asked or when w is a
// terminal.
func newLogger(w io.Writer, format, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	console := false
	switch format {
	case "console":
		console = true
	case "json":
	case "auto", "":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			console = true
		}
	default:
		return zerolog.Logger{}, fmt.Errorf("--log-format %q: want json, console or auto", format)
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// defaultGCPercent is the Go collector's GOGC when the environment sets
// none. Go's 100 lets the heap grow to twice what is live before a
// collection; sliceedge's heap is mostly byte buffers (read pieces, slices
// being filled, Pebble's flush buffers), which the collector need not
// scan, so collecting four times as often costs little CPU, and with a
// thousand streaming clients the edge's peak resident memory was about
// 600 MiB instead of 750-830 MiB (scripts/memory.sh).
const defaultGCPercent = 25

func serve(ctx context.Context, cfg *config.Config, log zerolog.Logger, shutdownTimeout time.Duration) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	// A store that cannot open because of its disk (full, read-only, not
	// writable, failing) opens in the background, with a loud warning at
	// every attempt, while the edge serves everything from the origin
	// uncached: exiting would be a restart loop under systemd. Any other
	// reason (no directory, a lock held by another process, a format of
	// another version, damage) needs the operator: exit with it.
	st := &segstore.Reopening{
		Options: segstore.Options{
			Dir:        cfg.Store.Dir,
			MaxBytes:   cfg.Store.MaxBytes,
			CacheBytes: cfg.Store.MemoryCache,
			Logger:     func(format string, args ...any) { log.Info().Msgf(format, args...) },
		},
		Warn: func(format string, args ...any) { log.Warn().Msgf(format, args...) },
	}
	if err := st.Open(); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer st.Close()
	if _, err := segstore.CheckCapacity(cfg.Store.Dir, cfg.Store.MaxBytes); errors.Is(err, segstore.ErrOverCapacity) {
		log.Warn().Msg(err.Error())
	} else if err != nil {
		log.Warn().Err(err).Msg("cannot tell whether store.max_bytes fits the store's filesystem")
	}
	warnUncachedSlices(log, cfg)

	h := &edge.Server{Config: cfg, Store: st, Log: log, SendTimeout: edge.DefaultSendTimeout}
	servers := []*http.Server{edge.NewHTTPServer(h)}
	addrs := []string{cfg.Listen}
	if cfg.Admin.Listen != "" {
		servers = append(servers, &http.Server{Handler: h.AdminHandler(), ReadHeaderTimeout: 10 * time.Second})
		addrs = append(addrs, cfg.Admin.Listen)
	}
	var lns []net.Listener
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return cli.Exit(fmt.Sprintf("listen on %s: %v (choose another address in the config, or --listen)", addr, err), 1)
		}
		lns = append(lns, ln)
	}
	ev := log.Info().Str("listen", lns[0].Addr().String()).Str("config", cfg.Source).Str("store", cfg.Store.Dir).
		Int("rules", len(cfg.Rules)).Str("version", version)
	if len(lns) > 1 {
		ev = ev.Str("admin", lns[1].Addr().String())
	}
	ev.Msg("sliceedge serving")

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, len(servers))
	for i, hs := range servers {
		go func() { errc <- hs.Serve(lns[i]) }()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for running := true; running; {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			reload(h, cfg, log)
		case <-ctx.Done():
			running = false
		}
	}
	log.Info().Dur("deadline", shutdownTimeout).Msg("shutting down: finishing in-flight responses")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("shutdown: %w", err)
		}
	}
	// Fills outlive their clients; let them land (only whole slices are
	// ever written) before the store closes.
	if err := h.Drain(sctx); err != nil {
		log.Warn().Err(err).Msg("shutting down with origin fills still in flight; their slices are dropped")
	}
	return nil
}

// reload re-reads the configuration file on SIGHUP. A file that does not
// load is logged and the configuration in force stays.
func reload(h *edge.Server, started *config.Config, log zerolog.Logger) {
	if started.Source == config.DefaultSource {
		log.Warn().Msg("SIGHUP: running on embedded defaults, there is no file to reload")
		return
	}
	cfg, err := config.Load(started.Source)
	if err != nil {
		log.Error().Err(err).Msg("SIGHUP: configuration not reloaded; the previous one stays in force")
		return
	}
	if cfg.Listen != started.Listen || cfg.Admin != started.Admin || cfg.Store != started.Store {
		log.Warn().Msg("SIGHUP: listen, admin and store changes take effect at the next restart")
	}
	h.SetConfig(cfg)
	log.Info().Str("config", cfg.Source).Int("rules", len(cfg.Rules)).Msg("SIGHUP: configuration reloaded")
}

// warnUncachedSlices warns about rules whose slices are too large for the
// memory cache to keep at all: every hit on them reads the store.
func warnUncachedSlices(log zerolog.Logger, cfg *config.Config) {
	limit := segstore.LargestCachedSlice(cfg.Store.MemoryCache, cfg.Store.MaxBytes)
	for _, r := range cfg.Rules {
		if r.SliceSize <= limit {
			continue
		}
		need := cfg.Store.MemoryCache
		for segstore.LargestCachedSlice(need, cfg.Store.MaxBytes) < r.SliceSize {
			need *= 2
		}
		log.Warn().Str("rule", r.Match).Str("slice_size", config.FormatSize(r.SliceSize)).
			Str("memory_cache", config.FormatSize(cfg.Store.MemoryCache)).
			Msgf("rules[%d]: its slices are larger than the memory cache is sure to keep (%.1fMiB with this memory_cache on %d CPUs), so hits on them read the store: raise store.memory_cache to %s, or use a smaller slice_size",
				r.Index, float64(limit)/(1<<20), runtime.GOMAXPROCS(0), config.FormatSize(need))
	}
}
