package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Defaults for the zero fields of a Config. They keep `sliceedge bench`
// with no flags at about a minute on a 2-core machine.
const (
	DefaultDuration      = 5 * time.Second
	DefaultConnections   = 16
	DefaultMaxRequests   = 100_000
	DefaultObjects       = 32
	DefaultObjectSize    = 16 << 20
	DefaultBigObjectSize = 1 << 30
	DefaultNodes         = 3
)

// Smallest sizes Run accepts: seek needs at least two 2 MiB slots in the
// deep half of a big object.
const (
	MinObjectSize    = 4 << 10
	MinBigObjectSize = 4 << 20
)

// Nodes of the pop workload: a POP needs a node that owns a group and one
// that does not; more than MaxNodes on one machine measures its scheduler.
const (
	MinNodes = 2
	MaxNodes = 16
)

// Config says what to benchmark and how hard. The zero value of every
// field but Target and Origin means its default.
type Config struct {
	// Target is the base URL of the edge under test (http://host:port). ""
	// starts an in-process origin and edge (a Pebble store in a temporary
	// directory) for the run and tears them down after.
	Target string
	// Origin is the base URL of the origintest origin (`sliceedge origin`)
	// behind Target; required with Target. Its /.origin/ control endpoints
	// give the origin counters and set the workloads' origin modes.
	Origin string
	// Workloads are the names to run, in order; nil means AllWorkloads(),
	// less pop with a Target (pop measures the POP it starts, not the
	// target).
	Workloads []string
	// Duration bounds the measured phase of each workload (warm-up phases
	// are bounded separately, by size).
	Duration time.Duration
	// Connections is the number of concurrent clients.
	Connections int
	// MaxRequests bounds the requests of each measured phase.
	MaxRequests int
	// Objects is the number of objects of hot, mixed and stream.
	Objects int
	// ObjectSize is the size of the objects of hot, mixed, collapse and
	// flap.
	ObjectSize int64
	// BigObjectSize is the size of the objects of seek, sequential and
	// coldfill.
	BigObjectSize int64
	// Nodes is the number of sliceedge nodes the pop workload starts as
	// one POP.
	Nodes int
	// Seed makes the request streams reproducible (object paths are fresh
	// on every run regardless).
	Seed uint64
	// Progress receives a progress bar and a line per finished workload;
	// nil means none.
	Progress io.Writer
}

// AllWorkloads returns the names of the workloads in the order Run runs
// them by default (without pop when there is a Config.Target).
func AllWorkloads() []string {
	return []string{"hot", "seek", "mixed", "collapse", "sequential", "flap", "stream", "coldfill", "pop"}
}

// Result is what one workload measured. Latency is from sending the
// request to the last body byte, TTFB to the first body byte; both are
// over the measured phase only, as are the counts and the origin figures.
type Result struct {
	Workload string `json:"workload"`
	// Requests answered or failed in the measured phase.
	Requests int64 `json:"requests"`
	// Errors are answers that were not what was asked for: transport
	// failures, unexpected statuses, a body cut short, a Content-Range
	// that does not cover the request. For flap, cut bodies and 5xx
	// answers are the honest outcomes and are counted in Extra instead.
	Errors int64 `json:"errors"`
	// WrongBytes are body bytes that differ from the bytes of the version
	// the answer's ETag names.
	WrongBytes int64 `json:"wrong_bytes"`
	// MixedBodies are answers whose bytes come from two or more versions.
	MixedBodies int64 `json:"mixed_bodies"`
	// ReqPerSec is Requests over the measured wall time.
	ReqPerSec float64 `json:"req_per_sec"`
	// MBPerSec is DeliveredBytes (in 10^6 bytes) over the measured wall
	// time.
	MBPerSec float64 `json:"mb_per_sec"`
	// P50, P99 and Max are latencies of clean answers (to the last body
	// byte); TTFBP50 and TTFBP99 their times to the first body byte.
	P50     time.Duration `json:"p50_ns"`
	P99     time.Duration `json:"p99_ns"`
	Max     time.Duration `json:"max_ns"`
	TTFBP50 time.Duration `json:"ttfb_p50_ns"`
	TTFBP99 time.Duration `json:"ttfb_p99_ns"`
	// OriginRequests and OriginBytes are what the origin counted (requests,
	// object body bytes) during the measured phase.
	OriginRequests int64 `json:"origin_requests"`
	OriginBytes    int64 `json:"origin_bytes"`
	// DeliveredBytes are object bytes received by the clients (multipart
	// framing not included).
	DeliveredBytes int64 `json:"delivered_bytes"`
	// Seconds is the measured wall time.
	Seconds float64 `json:"seconds"`
	// Extra holds the workload's own figures; see the package doc.
	Extra map[string]float64 `json:"extra,omitempty"`
	// FirstError describes the first error seen, for diagnosis.
	FirstError string `json:"first_error,omitempty"`
}

// Report is the outcome of a Run.
type Report struct {
	Target  string    `json:"target"`  // URL benchmarked, or "in-process edge URL"
	Origin  string    `json:"origin"`  // URL of the origin behind it
	Started time.Time `json:"started"` // UTC, to the second
	Machine string    `json:"machine"` // GOOS/GOARCH, cores, GOMAXPROCS of the machine running bench

	// The Config the run used, defaults filled in.
	Duration      time.Duration `json:"duration_ns"`
	Connections   int           `json:"connections"`
	MaxRequests   int           `json:"max_requests"`
	Objects       int           `json:"objects"`
	ObjectSize    int64         `json:"object_size"`
	BigObjectSize int64         `json:"big_object_size"`
	Nodes         int           `json:"nodes"`
	Seed          uint64        `json:"seed"`

	Results []Result `json:"results"` // in the order run
}

// Failed reports whether any workload saw wrong bytes or mixed bodies:
// the failures a cache must never have, whatever its speed.
func (r *Report) Failed() bool {
	for _, res := range r.Results {
		if res.WrongBytes > 0 || res.MixedBodies > 0 {
			return true
		}
	}
	return false
}

// withDefaults fills in the zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Connections == 0 {
		c.Connections = DefaultConnections
	}
	if c.MaxRequests == 0 {
		c.MaxRequests = DefaultMaxRequests
	}
	if c.Objects == 0 {
		c.Objects = DefaultObjects
	}
	if c.ObjectSize == 0 {
		c.ObjectSize = DefaultObjectSize
	}
	if c.BigObjectSize == 0 {
		c.BigObjectSize = DefaultBigObjectSize
	}
	if c.Nodes == 0 {
		c.Nodes = DefaultNodes
	}
	if c.Workloads == nil {
		c.Workloads = AllWorkloads()
		if c.Target != "" || c.Origin != "" {
			c.Workloads = slices.DeleteFunc(c.Workloads, func(w string) bool { return w == "pop" })
		}
	}
	var errs []error
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration %v is negative", c.Duration))
	}
	if c.Connections < 0 {
		errs = append(errs, fmt.Errorf("connections %d is negative", c.Connections))
	}
	if c.MaxRequests < 0 {
		errs = append(errs, fmt.Errorf("max requests %d is negative", c.MaxRequests))
	}
	if c.Objects < 0 {
		errs = append(errs, fmt.Errorf("objects %d is negative", c.Objects))
	}
	if c.ObjectSize < MinObjectSize {
		errs = append(errs, fmt.Errorf("object size %d is below the minimum %d", c.ObjectSize, MinObjectSize))
	}
	if c.BigObjectSize < MinBigObjectSize {
		errs = append(errs, fmt.Errorf("big object size %d is below the minimum %d", c.BigObjectSize, MinBigObjectSize))
	}
	if c.Nodes < MinNodes || c.Nodes > MaxNodes {
		errs = append(errs, fmt.Errorf("nodes %d: want %d to %d", c.Nodes, MinNodes, MaxNodes))
	}
	for _, w := range c.Workloads {
		if !slices.Contains(AllWorkloads(), w) {
			errs = append(errs, fmt.Errorf("unknown workload %q (want one of %s)", w, strings.Join(AllWorkloads(), ", ")))
		}
		if w == "pop" && (c.Target != "" || c.Origin != "") {
			errs = append(errs, errors.New("pop starts its own POP of sliceedge nodes in front of its own origin: run it without target and origin"))
		}
	}
	if c.Target != "" || c.Origin != "" {
		if c.Target == "" || c.Origin == "" {
			errs = append(errs, errors.New("target and origin go together: an external target needs the URL of the origintest origin behind it"))
		}
		for _, u := range []struct{ what, v string }{{"target", c.Target}, {"origin", c.Origin}} {
			if u.v == "" {
				continue
			}
			p, err := url.Parse(u.v)
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.RawQuery != "" {
				errs = append(errs, fmt.Errorf("%s %q is not a base URL (want http://host:port)", u.what, u.v))
			}
		}
		c.Target = strings.TrimSuffix(c.Target, "/")
		c.Origin = strings.TrimSuffix(c.Origin, "/")
	}
	return c, errors.Join(errs...)
}

// Run runs the configured workloads one after another and reports what
// each measured. It returns an error when the benchmark cannot run (bad
// configuration, the in-process servers do not start, the origin's control
// endpoints do not answer) or ctx ends; the report then holds the
// workloads that finished. Failed requests are counted, not returned.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var runID [4]byte
	_, _ = rand.Read(runID[:]) // never fails (crypto/rand)
	rep := &Report{
		Target:        cfg.Target,
		Origin:        cfg.Origin,
		Started:       time.Now().UTC().Truncate(time.Second),
		Machine:       fmt.Sprintf("%s/%s, %d cores, GOMAXPROCS %d", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0)),
		Duration:      cfg.Duration,
		Connections:   cfg.Connections,
		MaxRequests:   cfg.MaxRequests,
		Objects:       cfg.Objects,
		ObjectSize:    cfg.ObjectSize,
		BigObjectSize: cfg.BigObjectSize,
		Nodes:         cfg.Nodes,
		Seed:          cfg.Seed,
	}

	env, err := newEnv(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer env.close()
	if cfg.Target == "" {
		rep.Target = "in-process edge " + env.target
		rep.Origin = "in-process origin " + env.origin.base
	}
	r := &runner{
		cfg:      cfg,
		env:      env,
		prefix:   "/bench/" + hex.EncodeToString(runID[:]),
		progress: progress{w: cfg.Progress},
		versions: newVersions(env.origin),
	}
	for _, name := range cfg.Workloads {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("bench: stopped before %s: %w", name, err)
		}
		res, err := r.run(ctx, name)
		if err != nil {
			return rep, fmt.Errorf("bench: %s: %w", name, err)
		}
		rep.Results = append(rep.Results, res)
		r.progress.done(res)
	}
	return rep, nil
}
