package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"golang.org/x/net/netutil"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/sliceedge/sliceedge/cluster"
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
			opts := serveOptions{
				listen:          c.String("listen"),
				storeDir:        c.String("store-dir"),
				shutdownTimeout: c.Duration("shutdown-timeout"),
			}
			opts.override(cfg)
			log, err := newLogger(os.Stderr, c.String("log-format"), c.String("log-level"))
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			return serve(c.Context, cfg, log, opts)
		},
	}
}

// serveOptions are what serve takes from flags rather than from the file.
type serveOptions struct {
	// listen and storeDir replace the file's listen and store.dir, at
	// start and at every reload; "" keeps the file's.
	listen, storeDir string
	// shutdownTimeout is how long the responses in flight at SIGTERM may
	// run before their connections are closed.
	shutdownTimeout time.Duration
	// adminReadTimeout and adminIdleTimeout are the admin listener's
	// deadlines; 0 means defaultAdminReadTimeout and
	// defaultAdminIdleTimeout (tests shorten them).
	adminReadTimeout, adminIdleTimeout time.Duration
}

// override applies --listen and --store-dir to cfg.
func (o serveOptions) override(cfg *config.Config) {
	if o.listen != "" {
		cfg.Listen = o.listen
		cfg.Listeners[0].Address = o.listen
	}
	if o.storeDir != "" {
		cfg.Store.Dir = o.storeDir
	}
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// logTimeFormat is the timestamp of every JSON log line: RFC 3339 with
// milliseconds, so that access log lines order and subtract.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

func init() { zerolog.TimeFieldFormat = logTimeFormat }

// newLogger logs JSON, or a human console format when asked or when w is a
// terminal.
func newLogger(w io.Writer, format, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	tty := false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
	}
	console := false
	switch format {
	case "console":
		console = true
	case "json":
	case "auto", "":
		console = tty
	default:
		return zerolog.Logger{}, fmt.Errorf("--log-format %q: want json, console or auto", format)
	}
	if console {
		// Colours only on a terminal: a console log piped to a file or
		// journald stays free of escape codes.
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !tty}
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

// upgradeTimeout bounds how long a new process of a SIGUSR2 upgrade may
// take to serve; past it, it is killed and this one goes on.
const upgradeTimeout = time.Minute

// handoverWait bounds how long an upgraded process waits, once its
// listeners are closed, for connections it accepted to send a request.
const handoverWait = 2 * time.Second

func serve(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts serveOptions) error {
	// SIGINT and SIGTERM stay caught until serve has returned: once they
	// are not, one more (a Ctrl-C, then a supervisor's SIGTERM) kills the
	// process before the store closes and "stopped" is logged.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGUSR1 reopens the access log file, after logrotate has moved it;
	// caught from the start, since its default action is to exit.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	// The "stopped" line is the last of a run that served, after the
	// store has closed (deferred below); shutdown sets it.
	var stopped func()
	defer func() {
		if stopped != nil {
			stopped()
		}
	}()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	// A store that cannot open because of its disk (full, read-only, not
	// writable, failing) opens in the background, with a loud warning at
	// every attempt, while the edge serves everything from the origin
	// uncached: exiting would be a restart loop under systemd. Any other
	// reason (no directory, a lock held by another process, a format of
	// another version, damage) needs the operator: exit with it.
	// Zero-downtime upgrades (SIGUSR2): the listening sockets pass to a
	// new process (cloudflare/tableflip), which serves at once; this one
	// stops accepting once it is ready, finishes its responses and exits.
	upg, err := newUpgrader()
	if err != nil {
		return cli.Exit(fmt.Sprintf("zero-downtime upgrades: %v", err), 1)
	}
	defer upg.Stop()
	st := &segstore.Reopening{
		// The process this one replaces holds the store until it has
		// finished its responses: wait for it, serving from the origin.
		WaitLocked: upg.HasParent(),
		Options: segstore.Options{
			Dir:        cfg.Store.Dir,
			MaxBytes:   cfg.Store.MaxBytes,
			CacheBytes: cfg.Store.MemoryCache,
			ScrubRate:  scrubRate(cfg.Store.ScrubRate),
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

	access, accessFile, err := accessLogger(cfg.AccessLog)
	if err != nil {
		return cli.Exit(fmt.Sprintf("%v (create the directory, let the sliceedge user write there, or set access_log: off)", err), 1)
	}
	if accessFile != nil {
		defer accessFile.Close()
	}
	h := &edge.Server{Config: cfg, Store: st, Log: log, AccessLog: access, SendTimeout: edge.DefaultSendTimeout, Version: version, Commit: commit, Started: time.Now()}
	// The edge's listeners come first in servers and lns, then the admin
	// listener, then the peer listener.
	var servers []*http.Server
	var addrs []string
	certs := make([]*certHolder, len(cfg.Listeners))
	for i, l := range cfg.Listeners {
		hs, c := edgeServer(h, l, listenerLabel(cfg.Listeners, i))
		servers, addrs, certs[i] = append(servers, hs), append(addrs, l.Address), c
	}
	edges := len(servers)
	if cfg.Admin.Listen != "" {
		as := newAdminServer(h, opts)
		as.ConnState = h.TrackConns("admin")
		servers = append(servers, as)
		addrs = append(addrs, cfg.Admin.Listen)
	}
	if cfg.Cluster != nil {
		// The peer listener: other nodes of the POP ask it for the slices
		// this node owns. Clients must not reach it.
		servers = append(servers, &http.Server{Handler: h.PeerHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: defaultAdminIdleTimeout,
			ConnState: h.TrackConns("peer")})
		addrs = append(addrs, cfg.Cluster.Peer)
	}
	fresh := &freshConns{}
	for _, hs := range servers {
		hs.ConnState = fresh.hook(hs.ConnState)
	}
	var lns []net.Listener
	for i, addr := range addrs {
		ln, err := upg.Listen("tcp", addr) // inherited from the process this one replaces, if any
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return cli.Exit(fmt.Sprintf("listen on %s: %v (choose another address in the config, or --listen)", addr, err), 1)
		}
		if i < edges && cfg.MaxConnections > 0 {
			// Past the limit, new connections wait in the kernel's accept
			// queue until one closes (idle keep-alive ones count). The
			// admin listener has no limit: an operator gets in when
			// clients fill the edge.
			ln = netutil.LimitListener(ln, cfg.MaxConnections)
		}
		lns = append(lns, ln)
	}
	logWarnings(log, cfg)
	var pop *cluster.Node
	if cfg.Cluster != nil {
		// Joined once the peer listener is bound, before anything is
		// served: purges made while this node was away are applied
		// first (cluster.Start).
		cc := *cfg.Cluster
		if cc.Node == "" {
			cc.Node = h.CacheName()
		}
		var err error
		pop, err = cluster.Start(&cc, cluster.Options{Log: log, Metrics: h.Metrics(), Apply: func(o edge.PurgeOrder) { h.Purge(o) }})
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return cli.Exit(err.Error(), 1)
		}
		h.Peers = pop
		log.Info().Str("node", cc.Node).Str("gossip", pop.GossipAddr()).Str("peer", cc.Peer).Int("members", len(pop.Members())).Msg("cluster: in the POP")
	}
	shown := make([]string, edges)
	for i := range edges {
		shown[i] = describeListener(cfg.Listeners[i], lns[i].Addr().String())
	}
	ev := log.Info().Str("listen", lns[0].Addr().String()).Strs("listeners", shown).Str("config", cfg.Source).Str("store", cfg.Store.Dir).
		Int("rules", len(cfg.Rules)).Str("name", h.CacheName()).Str("version", version)
	if cfg.Admin.Listen != "" {
		ev = ev.Str("admin", lns[edges].Addr().String())
	}
	if cfg.MaxConnections > 0 {
		ev = ev.Int("max_connections", cfg.MaxConnections)
	}
	ev = ev.Int("pid", os.Getpid())
	if upg.HasParent() {
		ev = ev.Bool("upgrade", true)
	}
	ev.Msg("sliceedge serving")

	errc := make(chan error, len(servers))
	for i, hs := range servers {
		if i < edges && cfg.Listeners[i].TLS != nil {
			// The certificate comes from TLSConfig.GetCertificate.
			go func() { errc <- hs.ServeTLS(lns[i], "", "") }()
			continue
		}
		go func() { errc <- hs.Serve(lns[i]) }()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// Under systemd (Type=notify), READY=1 once the listeners serve, and
	// WATCHDOG=1 from this loop: a loop stuck in a reload or starved
	// stops the pings, and systemd restarts the process.
	if upg.HasParent() {
		// systemd follows the new process (NotifyAccess=all).
		notify(log, fmt.Sprintf("MAINPID=%d", os.Getpid()), daemon.SdNotifyReady, "STATUS=serving on "+lns[0].Addr().String()+" (upgraded)")
	} else {
		notify(log, daemon.SdNotifyReady, "STATUS=serving on "+lns[0].Addr().String())
	}
	// The process this one replaces stops accepting now.
	if err := upg.Ready(); err != nil {
		log.Error().Err(err).Msg("upgrade: cannot tell the old process this one is ready; it goes on serving too until stopped")
	}
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	upgraded := make(chan error, 1)
	upgrading, handedOver := false, false
	var watchdog <-chan time.Time
	if upg.HasParent() && os.Getenv("WATCHDOG_PID") == strconv.Itoa(os.Getppid()) {
		// systemd set the watchdog for the process this one replaces;
		// since MAINPID above, it is this one's to ping.
		os.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	}
	if every, err := daemon.SdWatchdogEnabled(false); err != nil {
		log.Warn().Err(err).Msg("systemd: WATCHDOG_USEC is not a duration; no watchdog pings are sent (fix WatchdogSec in the unit)")
	} else if every > 0 {
		t := time.NewTicker(every / 2)
		defer t.Stop()
		watchdog = t.C
	}
	var serveErr error
	for running, cur := true, cfg; running; {
		select {
		case err := <-errc:
			serveErr = fmt.Errorf("serve: %w", err)
			log.Error().Err(err).Msg("a listener failed; shutting down (see the error, then start sliceedge again)")
			running = false
		case <-hup:
			notify(log, daemon.SdNotifyReloading+"\nMONOTONIC_USEC="+monotonicUsec())
			cur = reload(h, cfg, cur, opts, log)
			swapCerts(certs, cfg, cur, log)
			notify(log, daemon.SdNotifyReady)
		case <-usr1:
			if accessFile == nil {
				log.Info().Msg("SIGUSR1: the access log has no file of its own (access_log.path); nothing to reopen")
			} else if err := accessFile.Reopen(); err != nil {
				log.Error().Err(err).Msg("SIGUSR1: the access log goes on into the file it had (fix the directory's permissions and send SIGUSR1 again)")
			} else {
				log.Info().Str("path", accessFile.path).Msg("SIGUSR1: access log reopened")
			}
		case <-watchdog:
			notify(log, daemon.SdNotifyWatchdog)
		case <-usr2:
			switch {
			case upgrading:
				log.Warn().Msg("SIGUSR2: an upgrade is already under way")
			case cfg.Cluster != nil:
				log.Warn().Msg("SIGUSR2: no zero-downtime upgrade in a POP (the new process could not take the gossip address); restart the nodes one at a time instead, the others carry their share")
			default:
				upgrading = true
				log.Info().Msg("SIGUSR2: upgrade: starting a new process on the same listening sockets (the executable now at this path, the same flags and config file)")
				go func() { upgraded <- upg.Upgrade() }()
			}
		case err := <-upgraded:
			upgrading = false
			if err != nil {
				log.Error().Err(err).Msg("upgrade failed: this process goes on serving (see the new process's messages above, fix them, and send SIGUSR2 again)")
				continue
			}
			log.Info().Msg("upgrade: the new process serves; this one accepts no more connections, finishes its responses and exits")
			handedOver, running = true, false
		case <-ctx.Done():
			running = false
		}
	}
	if handedOver {
		// The new process accepts on the same sockets: stop accepting
		// here, and let the connections just accepted send their first
		// request before the servers shut down.
		for _, ln := range lns {
			ln.Close()
		}
		if n := fresh.wait(handoverWait); n > 0 {
			log.Warn().Int64("connections", n).Msg("upgrade: connections accepted here sent no request yet; they are closed (their clients retry)")
		}
	}
	if !handedOver {
		// /readyz fails from now on, so balancers stop sending new
		// clients. After an upgrade the node goes on serving (the new
		// process answers on the same sockets): nothing to say.
		h.StartDraining()
		notify(log, daemon.SdNotifyStopping, "STATUS=draining: finishing in-flight responses")
	}
	began := time.Now()
	if pop != nil {
		// The others stop asking this node before its listeners close.
		if err := pop.Leave(2 * time.Second); err != nil {
			log.Warn().Err(err).Msg("cluster: leaving the POP; the others find this node gone by probing")
		}
	}
	fills, err := shutdown(h, servers, opts.shutdownTimeout, log)
	stopped = func() {
		cuts := h.CutTotal()
		d := zerolog.Dict()
		for _, reason := range slices.Sorted(maps.Keys(cuts)) {
			d.Uint64(reason, cuts[reason])
		}
		log.Info().Dur("took", time.Since(began)).Dict("answers_cut", d).Int("fills_in_flight", fills).
			Int64("requests_unfinished", h.Active()).Bool("upgraded", handedOver).Msg("stopped")
	}
	return errors.Join(serveErr, err)
}

// cutWait bounds how long shutdown waits, once it has closed the
// connections of the responses still running at --shutdown-timeout, for
// their handlers to end and log their cuts. A handler waiting on an origin
// that sends nothing writes nothing, so it does not see its connection
// close until the origin's timeouts end it: it must not hold the exit.
const cutWait = 3 * time.Second

// shutdown stops the listeners and lets the responses in flight run for
// timeout. The connections of those still running are then closed, which
// cuts them (logged and counted as the shutdown's), and their handlers get
// cutWait to end. Fills in flight get what is left of timeout to land in
// the store. It returns how many fills are still in flight.
func shutdown(h *edge.Server, servers []*http.Server, timeout time.Duration, log zerolog.Logger) (fills int, err error) {
	log.Info().Dur("deadline", timeout).Msg("shutting down: finishing in-flight responses")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	late := false
	for _, hs := range servers {
		switch err := hs.Shutdown(ctx); {
		case errors.Is(err, net.ErrClosed):
			// Its listener was closed first (an upgrade's handover).
		case errors.Is(err, context.DeadlineExceeded):
			late = true
		case err != nil:
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	if late {
		log.Warn().Int64("requests", h.Active()).Dur("deadline", timeout).
			Msg("shutting down: responses still running at --shutdown-timeout are cut now (raise --shutdown-timeout to let long downloads finish)")
		// Shutdown returns at its deadline but leaves those connections
		// open until the process exits, their cuts unlogged: close them
		// while the handlers can still say so.
		h.Stopping()
		for _, hs := range servers {
			hs.Close()
		}
		for end := time.Now().Add(cutWait); h.Active() > 0 && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Fills outlive their clients; let them land (only whole slices are
	// ever written) before the store closes.
	if err := h.Drain(ctx); err != nil {
		log.Warn().Err(err).Msg("shutting down with origin fills still in flight; their slices are dropped")
	}
	return h.InFlight(), errors.Join(errs...)
}

// Admin listener deadlines; see newAdminServer.
const (
	defaultAdminReadTimeout = 30 * time.Second
	defaultAdminIdleTimeout = 2 * time.Minute
)

// newAdminServer returns the admin listener's server. ReadTimeout bounds
// reading a whole request (the API takes no bodies). IdleTimeout closes
// the keep-alive connections of scrapers and scripts that went away
// without closing them, each of which would hold a descriptor and a
// goroutine until the process exits; two minutes outlasts any sane scrape
// interval, so a scraper keeps its connection. There is no WriteTimeout:
// it runs from the end of the request to the end of the answer, the work
// before the first byte included. A CPU profile or trace works for
// ?seconds= (30 by default) before its first byte; net/http/pprof pushes
// its own deadline back by that much, but a purge of a large prefix takes
// as long as the store takes, and its answer would fail after the purge
// was done, leaving the operator to guess.
func newAdminServer(h *edge.Server, opts serveOptions) *http.Server {
	return &http.Server{
		Handler:           h.AdminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cmp.Or(opts.adminReadTimeout, defaultAdminReadTimeout),
		IdleTimeout:       cmp.Or(opts.adminIdleTimeout, defaultAdminIdleTimeout),
	}
}

// logWarnings logs the problems that did not stop cfg from loading, each
// with its file:line and what to do about it.
func logWarnings(log zerolog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		log.Warn().Str("file", w.File).Int("line", w.Line).Str("field", w.Field).Msg("config: " + w.Error())
	}
}

// reload re-reads the configuration file on SIGHUP and returns the one in
// force afterwards. A file that does not load is logged and cur, the one in
// force before, stays. started is the configuration the process started
// with: its listeners and its store stay until a restart.
func reload(h *edge.Server, started, cur *config.Config, opts serveOptions, log zerolog.Logger) *config.Config {
	if started.Source == config.DefaultSource {
		log.Warn().Msg("SIGHUP: running on embedded defaults, there is no file to reload (start with --config FILE to reload one)")
		return cur
	}
	cfg, err := config.Load(started.Source)
	if err != nil {
		log.Error().Err(err).Msg("SIGHUP: configuration not reloaded; the previous one stays in force (fix the file and send SIGHUP again)")
		return cur
	}
	opts.override(cfg)
	if keys := restartKeys(started, cfg); len(keys) > 0 {
		log.Warn().Strs("keys", keys).Msgf("SIGHUP: changes to %s take effect only at the next restart; until then the values the edge started with stay (restart sliceedge to apply them)",
			strings.Join(keys, ", "))
	}
	h.SetConfig(cfg)
	h.SetRestartPending(restartKeys(started, cfg))
	switch {
	case started.Admin.Listen == "" || cfg.Admin.Token == cur.Admin.Token:
	case cfg.Admin.Token == "":
		// The file has no admin section any more (a token is required with one).
		log.Warn().Msg("SIGHUP: the file has no admin.token any more: the admin API listens until the restart but refuses every request (restart to close it, or set admin again and reload)")
	default:
		log.Info().Msg("SIGHUP: admin.token rotated: the admin API accepts only the new token from now on (update the scripts and scrapers that use it)")
	}
	logWarnings(log, cfg)
	log.Info().Str("config", cfg.Source).Int("rules", len(cfg.Rules)).Str("name", h.CacheName()).Int("warnings", len(cfg.Warnings)).
		Msg("SIGHUP: configuration reloaded")
	return cfg
}

// restartKeys names the keys that differ between started and cfg and that
// only a restart applies: the listeners are bound and the store is open.
// Everything else, admin.token included, SetConfig puts in force at once.
func restartKeys(started, cfg *config.Config) []string {
	var keys []string
	for _, k := range []struct {
		name    string
		changed bool
	}{
		{listenKey(started), listenersChanged(started.Listeners, cfg.Listeners)},
		{"admin.listen", cfg.Admin.Listen != started.Admin.Listen},
		{"store.dir", cfg.Store.Dir != started.Store.Dir},
		{"store.max_bytes", cfg.Store.MaxBytes != started.Store.MaxBytes},
		{"store.memory_cache", cfg.Store.MemoryCache != started.Store.MemoryCache},
		{"store.scrub_rate", cfg.Store.ScrubRate != started.Store.ScrubRate},
		{"max_connections", cfg.MaxConnections != started.MaxConnections},
		{"access_log", cfg.AccessLog != started.AccessLog},
	} {
		if k.changed {
			keys = append(keys, k.name)
		}
	}
	return keys
}

// scrubRate is segstore.Options.ScrubRate for store.scrub_rate, where 0
// means off.
func scrubRate(rate int64) int64 {
	if rate == 0 {
		return -1
	}
	return rate
}

// notify sends systemd's notify socket the states given (one per line),
// when NOTIFY_SOCKET is set; without it, it does nothing.
func notify(log zerolog.Logger, states ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(states, "\n")); err != nil {
		log.Warn().Err(err).Msg("systemd: cannot write to NOTIFY_SOCKET; a Type=notify unit will time out waiting (check the unit's NotifyAccess)")
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "0"
	}
	return strconv.FormatInt(ts.Nano()/1000, 10)
}
