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

func serve(ctx context.Context, cfg *config.Config, log zerolog.Logger, shutdownTimeout time.Duration) error {
	st, err := segstore.Open(segstore.Options{
		Dir:      cfg.Store.Dir,
		MaxBytes: cfg.Store.MaxBytes,
		Logger:   func(format string, args ...any) { log.Info().Msgf(format, args...) },
	})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer st.Close()

	h := &edge.Server{Config: cfg, Store: st, Log: log}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return cli.Exit(fmt.Sprintf("listen on %s: %v (choose another address with --listen or listen: in the config)", cfg.Listen, err), 1)
	}
	log.Info().Str("listen", ln.Addr().String()).Str("config", cfg.Source).Str("store", cfg.Store.Dir).
		Int("rules", len(cfg.Rules)).Str("version", version).Msg("sliceedge serving")

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info().Dur("deadline", shutdownTimeout).Msg("shutting down: finishing in-flight responses")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
