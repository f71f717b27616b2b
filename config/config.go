// Package config turns the operator's YAML file into a validated Config.
//
// Parse walks the yaml.Node tree rather than decoding into structs, so every
// error can name the file, the line and the field ("edge.yaml:9:
// rules[0].slice_size: ..."), unknown fields are rejected, and all problems
// are reported at once. Sizes are bytes or whole numbers with a binary unit
// (KiB, MiB, GiB, TiB; see ParseSize); durations use Go syntax ("30s", "1h").
// testdata/config/edge.yaml is the commented sample of every key.
package config

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Limits and defaults of a rule's slice_size.
const (
	DefaultSliceSize = 1 << 20  // 1MiB
	MinSliceSize     = 64 << 10 // 64KiB
	MaxSliceSize     = 64 << 20 // 64MiB
)

// Defaults of the optional rule and origin keys.
const (
	DefaultMaxRanges = 64
	DefaultMaxRun    = 16
	// DefaultMaxVariants bounds the Vary variants stored per URL.
	DefaultMaxVariants = 16
	// DefaultHeuristicFraction and DefaultHeuristicMax are the heuristic
	// freshness of RFC 9111 §4.2.2: 10% of the age of Last-Modified, at
	// most a day.
	DefaultHeuristicFraction = 0.1
	DefaultHeuristicMax      = 24 * time.Hour
	DefaultConnectTimeout    = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	// DefaultMaxFails and DefaultFailTimeout are an origin's passive
	// health check (nginx's max_fails and fail_timeout have the same
	// meaning and defaults of 1 and 10s; 3 lets one lost connection pass).
	DefaultMaxFails    = 3
	DefaultFailTimeout = 10 * time.Second
	// Defaults of an origin's health_check.
	DefaultHealthInterval  = 5 * time.Second
	DefaultHealthTimeout   = 2 * time.Second
	DefaultHealthHealthy   = 2
	DefaultHealthUnhealthy = 3
	// DefaultMaxHeaderBytes bounds an origin answer's header section: an
	// origin's headers are stored with the object and replayed on every
	// answer, so they must not grow with what an origin chooses to send.
	DefaultMaxHeaderBytes = 64 << 10
	MinMaxHeaderBytes     = 4 << 10
	MaxMaxHeaderBytes     = 16 << 20
	// DefaultMaxObjectSize is the largest object a rule slices and stores;
	// larger ones are passed through uncached.
	DefaultMaxObjectSize = 1 << 40 // 1TiB
	// DefaultFetchAllowance is what one request for several ranges may
	// make the edge fetch from the origin: at most the larger of this and
	// FetchFactor times the bytes it asks for. One max_run of the default
	// slice size.
	DefaultFetchAllowance = 16 << 20 // 16MiB
	FetchFactor           = 4
	// DefaultTargetedCacheControl is the targeted cache-control field
	// (RFC 9213) an origin uses to speak to sliceedge alone.
	DefaultTargetedCacheControl = "Sliceedge-Cache-Control"
)

// MinStoreBytes is the smallest store.max_bytes accepted: room for at least
// one slice of the largest size.
const MinStoreBytes = MaxSliceSize

// DefaultMemoryCache is store.memory_cache when the file does not set it,
// and MinMemoryCache the smallest accepted.
const (
	DefaultMemoryCache = 64 << 20
	DefaultScrubRate   = 8 << 20
	MinMemoryCache     = 16 << 20
)

// Config is a validated configuration; Parse, Load and Default make one.
type Config struct {
	// Name identifies this node in the Cache-Status header (RFC 9211);
	// "" means the machine's host name.
	Name string
	// Listen is the first edge listener's host:port (Listeners[0]).
	Listen string
	// Listeners are the edge's listeners, at least one: from listeners:,
	// or the one of listen:.
	Listeners []Listener
	Admin     Admin              // admin API; off when Admin.Listen is ""
	Store     Store              // the slice store
	Origins   map[string]*Origin // by name; every rule's Origin is one of these
	Rules     []*Rule            // in file order; the first match wins
	Source    string             // file name the config came from, or "embedded defaults"
	// Text is the YAML it was parsed from (secrets in it: see Redacted).
	Text []byte
	// TrustedProxies are the client addresses whose X-Forwarded-For and
	// X-Forwarded-Proto are believed and extended; from anyone else they
	// are replaced.
	TrustedProxies []netip.Prefix
	// MaxConnections bounds the client connections open at once on the
	// edge listener; 0 means no limit.
	MaxConnections int
	// AccessLog is where the access log goes; the zero value: with the
	// other log lines.
	AccessLog AccessLog
	// Cluster makes the node one of a POP (cluster package); nil when the
	// config has no cluster section: the node stands alone.
	Cluster *Cluster
	// Warnings are problems that do not stop the configuration from
	// loading but that an operator should see (config check prints them,
	// serve logs them).
	Warnings []*Error
}

// Cluster is a node's place in a POP: the nodes find each other by gossip
// (hashicorp/memberlist, encrypted with a key derived from Secret), and
// fetch the slices another node owns from it over the peer listener.
type Cluster struct {
	Node   string   // this node's unique name in the POP; the config's name, else the host name, when not set
	Gossip string   // ip:port memberlist binds (TCP and UDP) and other nodes reach
	Peer   string   // host:port of the peer listener, as other nodes reach it; clients never should
	Join   []string // gossip addresses of nodes to join at start; none starts a POP of one
	Secret string   // shared by every node: encrypts gossip and authenticates peer requests
	// GroupSlices is the slices in one ownership group: one node owns a
	// group, so one origin run (max_run) stays with one node.
	GroupSlices int64
}

// Listener is one address the edge serves clients on.
type Listener struct {
	Address string // host:port
	// TLS, when set, makes it an https listener.
	TLS *ListenerTLS
	// HTTP2 offers HTTP/2 over TLS with ALPN (default true with TLS).
	HTTP2 bool
	// H2C takes HTTP/2 without TLS, with prior knowledge (default false;
	// only without TLS).
	H2C bool
}

// ListenerTLS is a listener's certificate. The files are read when the
// configuration is loaded: at start, at every reload (SIGHUP: a renewed
// certificate is served to new connections, open ones go on) and by
// config check.
type ListenerTLS struct {
	CertFile, KeyFile string
	// Certificate is the key pair the files hold.
	Certificate *tls.Certificate
}

// AccessLog is where the access log lines go.
type AccessLog struct {
	// Path is a file they are appended to (JSON lines), reopened on
	// SIGUSR1 (for logrotate); "" means with the other log lines, on
	// stderr. Relative to the working directory.
	Path string
	Off  bool // no access log at all
}

// DefaultGroupSlices is cluster.group_slices when not set: a group is one
// run of DefaultMaxRun slices.
const DefaultGroupSlices = DefaultMaxRun

// Admin is the token-protected admin API (purge, stats).
type Admin struct {
	Listen string // host:port; "" turns the admin API off
	Token  string // secret clients must present; never "" when Listen is set
}

// Store is where slices are kept.
type Store struct {
	Dir      string // Pebble directory, relative to the working directory unless absolute
	MaxBytes int64  // byte budget for stored slices, at least MinStoreBytes
	// MemoryCache is the RAM of the store's index (Pebble's block cache,
	// in which its memtables are accounted), at least MinMemoryCache;
	// DefaultMemoryCache when not set. Slice bytes are cached by the
	// kernel's page cache, not in it.
	MemoryCache int64
	// ScrubRate is how many bytes per second of stored slices the
	// scrubber reads back and verifies; 0 turns it off.
	// DefaultScrubRate when not set.
	ScrubRate int64
}

// Origin is an upstream server that rules fetch from.
type Origin struct {
	Name string // key under origins:
	// URL has scheme http or https, a host, no user, query or fragment.
	// Its path, if any, has no trailing slash and is prepended to request
	// paths (origin /base + request /v/a.mp4 = /base/v/a.mp4).
	URL            *url.URL
	ConnectTimeout time.Duration // TCP and TLS connect, > 0
	ReadTimeout    time.Duration // longest wait for the next body byte, > 0
	Host           string        // Host header sent to the origin; "" means URL.Host
	// MaxHeaderBytes bounds the header section of the origin's answers;
	// a larger one is an origin error (502).
	MaxHeaderBytes int64

	// Members are the servers of the origin's pool, in file order: the
	// url key's one, or those of urls. URL is Members[0]. Every member
	// must serve the same objects (the cache key does not name it), and
	// a fill that fails on one is retried on another with the same
	// If-Match, so no answer mixes two versions.
	Members []*url.URL
	// MaxConnections bounds the connections open to each member; 0 means
	// no limit. Requests past it wait for a connection.
	MaxConnections int
	// MaxFails consecutive failures of a member (no connection, no
	// answer in time, a 502/503/504, a body cut short) take it out of
	// the pool for FailTimeout, after which it is tried again (passive
	// health checks).
	MaxFails    int
	FailTimeout time.Duration
	// Health is the active health check of every member; nil: none, and
	// only the passive checks apply.
	Health *HealthCheck
	// TLS is how https members are reached; nil: the system's CAs and
	// the URL's host as the server name.
	TLS *OriginTLS
}

// HealthCheck is an origin's active health check: a GET of Path on every
// member each Interval, answered 2xx or 3xx within Timeout.
type HealthCheck struct {
	Path      string        // absolute path (and query) asked; the member URL's path is not prepended
	Interval  time.Duration // between two checks of a member
	Timeout   time.Duration // for the whole check; the connect is also bounded by connect_timeout
	Healthy   int           // consecutive successes that put a member (back) in the pool
	Unhealthy int           // consecutive failures that take it out
}

// OriginTLS is the TLS client side of https origins: the CAs that verify
// them, the name verified and sent as SNI, and a client certificate.
type OriginTLS struct {
	CAFile     string // PEM bundle; "" means the system's roots
	ServerName string // "" means each member URL's host
	CertFile   string // client certificate (PEM), with KeyFile; "" means none
	KeyFile    string
	// Config is built from the files when the configuration loads, so a
	// file that does not load is a configuration error, and a reload
	// reads them again. Its ServerName is ServerName.
	Config *tls.Config
	// Digest identifies the files' contents: a reload that finds them
	// changed builds new connections with them.
	Digest string
}

// Rule is the cache policy for the request paths it matches.
type Rule struct {
	Index int    // position in Config.Rules, for logs and metrics
	Match string // path prefix, or a path.Match glob over the whole path (see Matches)
	// Hosts are the host names the rule serves, lower case without a
	// trailing dot: exact names, or "*.example.com" for every name under
	// example.com. Empty means every Host.
	Hosts  []string
	Origin *Origin
	// SliceSize is a power of two from MinSliceSize to MaxSliceSize. An
	// object keeps the slice size it was first stored with.
	SliceSize int64
	// DefaultTTL is the freshness lifetime of a response the origin gives
	// none for; 0 means such a response is not cached.
	DefaultTTL time.Duration
	Query      QueryMode // how the query string enters the cache key
	// MaxRanges is the most ranges, after coalescing (overlapping ranges
	// and those less than slicer.MergeGap apart), answered with a
	// multipart 206; a request with more is answered with 200.
	MaxRanges int
	// LastModifiedValidator (default true) proves the fills of an object
	// the origin gives no strong ETag by its Last-Modified and length
	// (If-Unmodified-Since); false treats such an object as having no
	// validator at all (segstore.Unproven), for origins whose
	// Last-Modified differs between their servers.
	LastModifiedValidator bool
	MaxRun                int64 // most slices fetched from the origin in one request
	// DropAbandonedFills (abandoned_fills: drop) stops an origin fetch
	// once no client reading its slices is connected, dropping the slices
	// not yet complete; by default (finish) a fetch completes for the
	// store after its clients leave, so no byte is fetched twice.
	DropAbandonedFills bool

	// OverrideTTL, when set, replaces the origin's freshness lifetime
	// (no-store and private are still obeyed).
	OverrideTTL time.Duration
	// NegativeTTL, when set, is how long a 404 or 410 that comes without
	// freshness information is stored (off by default: RFC 9111 lets a
	// cache store them only with explicit or heuristic freshness).
	NegativeTTL time.Duration
	// ForwardHeaders are request fields the cached fetches (discovery,
	// revalidation, fill) forward from the client, which they otherwise
	// do not: an answer fetched with them is served to every client of
	// the key, so list only fields the origin does not vary on, or names
	// in Vary (which keys the variants on them anyway).
	ForwardHeaders []string
	// MaxVariants bounds how many variants of one URL (one per set of
	// values of the request fields its Vary names) are stored; others
	// pass through uncached.
	MaxVariants int
	// StaleWhileRevalidate and StaleIfError extend what the origin's own
	// Cache-Control directives of those names allow (RFC 5861): the longer
	// of the two windows applies.
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	// HeuristicFraction of the time since Last-Modified is the freshness of
	// a response with no explicit freshness (RFC 9111 §4.2.2), at most
	// HeuristicMax; 0 turns heuristic freshness off.
	HeuristicFraction float64
	HeuristicMax      time.Duration

	// TargetedCacheControl is the name of this edge's own targeted
	// cache-control field (RFC 9213 §2): first on its target list, before
	// CDN-Cache-Control. The first of them present with a valid value
	// replaces Cache-Control and Expires for this edge.
	// DefaultTargetedCacheControl when empty (a Rule built in code).
	TargetedCacheControl string
	// ForwardTargetedCacheControl sends the targeted fields on the target
	// list on to clients; by default they are removed from every answer,
	// as meant for this edge alone (RFC 9213 §3 allows either).
	ForwardTargetedCacheControl bool
	// HonorClientCacheControl (client_cache_control: honor) lets a
	// request's Cache-Control max-age, max-stale, min-fresh, no-cache and
	// no-store directives (RFC 9111 §5.2.1) change how the stored object
	// is used; by default (ignore) they do not. only-if-cached is honoured
	// either way.
	HonorClientCacheControl bool

	// MaxObjectSize is the largest object the rule slices and stores;
	// an answer claiming more is passed through uncached.
	MaxObjectSize int64
	// FetchAllowance bounds what one request for several ranges may make
	// the edge fetch from the origin: max(FetchAllowance, FetchFactor × the
	// bytes it asks for). A single range always fetches the slices it
	// touches (at most its length and two slices).
	FetchAllowance int64
}

// IsGlob reports whether match is a glob rather than a prefix: whether it
// holds one of path.Match's metacharacters *, ? or [.
func IsGlob(match string) bool { return strings.ContainsAny(match, "*?[") }

// AcceptsHost reports whether the rule serves host, a name as HostName
// returns it.
func (r *Rule) AcceptsHost(host string) bool {
	if len(r.Hosts) == 0 {
		return true
	}
	for _, h := range r.Hosts {
		if hostMatches(h, host) {
			return true
		}
	}
	return false
}

// Matches reports whether the rule applies to the request path (URL.Path,
// without the query). A match without glob metacharacters is a prefix of
// the path ("/video/" matches "/video/a/b.mp4"; "/" matches every path). A
// glob must match the whole path with path.Match, where * and ? never match
// '/': "/dl/*.iso" matches "/dl/a.iso" but not "/dl/x/a.iso".
func (r *Rule) Matches(p string) bool {
	if !IsGlob(r.Match) {
		return strings.HasPrefix(p, r.Match)
	}
	ok, err := path.Match(r.Match, p)
	return ok && err == nil
}

// Rule returns the first rule that accepts host (a name as HostName
// returns it) and matches the request path (URL.Path), or nil when none
// does: the edge has no origin for the request.
func (c *Config) Rule(host, p string) *Rule {
	for _, r := range c.Rules {
		if r.AcceptsHost(host) && r.Matches(p) {
			return r
		}
	}
	return nil
}

// AcceptsHost reports whether any rule serves host. A request for a host
// no rule serves was sent to the wrong server (421), rather than for a
// path that is not configured (404).
func (c *Config) AcceptsHost(host string) bool {
	for _, r := range c.Rules {
		if r.AcceptsHost(host) {
			return true
		}
	}
	return false
}

// Load reads and parses the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultSource is the Source of the configuration Default returns.
const DefaultSource = "embedded defaults"

// DefaultYAML is the text of the embedded default configuration.
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

// Default returns the embedded default configuration (config/default.yaml):
// listen on 127.0.0.1:8080, store ./sliceedge-data up to 10GiB, one origin
// "default" at http://127.0.0.1:9000 (where `sliceedge origin` listens by
// default) and one rule "/" with 1MiB slices. Each call returns a new Config.
func Default() *Config {
	c, err := Parse(DefaultSource, defaultYAML)
	if err != nil {
		panic(fmt.Sprintf("config: embedded defaults are invalid: %v", err))
	}
	return c
}

// Error is one problem found in a configuration. Parse and Load return
// all of them joined with errors.Join, in line order, one per line.
type Error struct {
	File    string // as given to Parse
	Line    int    // 1-based; 0 when the problem is a missing top-level key
	Field   string // path such as "rules[0].slice_size"; "" for the document
	Message string // what is wrong and what is allowed
}

// Error formats e as "file:line: field: message", leaving out the parts
// that are zero.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// load builds the TLS client configuration from t's files, and a digest
// of their contents; an error comes with the key whose file failed.
func (t *OriginTLS) load() (cfg *tls.Config, digest, key string, err error) {
	cfg = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	h := sha256.New()
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, "", "ca", fmt.Errorf("%s: %w (want a PEM file of the CAs that sign the origin's certificates)", t.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", "ca", fmt.Errorf("%s: no PEM certificate in it (want a PEM file of the CAs that sign the origin's certificates)", t.CAFile)
		}
		cfg.RootCAs = pool
		h.Write(pem)
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, "", "cert", fmt.Errorf("%s and key %s: %w (want a PEM client certificate and its private key)", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		for _, c := range cert.Certificate {
			h.Write(c)
		}
	}
	return cfg, fmt.Sprintf("%x", h.Sum(nil)[:8]), "", nil
}
