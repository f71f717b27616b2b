package edge

// The admin API, served on its own listener: purge (by URL, by prefix, all;
// hard or soft), inspect one object, stats, Prometheus metrics, and Go's
// profiles under /debug/pprof/. Every endpoint but /healthz and /readyz
// (health.go) requires "Authorization: Bearer <token>".

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"time"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// adminStore is what the admin API needs of the store beyond Store.
type adminStore interface {
	PurgePrefix(prefix string) (int, error)
	PurgeAll() (int, error)
	ScanMeta(prefix string, fn func(m *segstore.Meta) bool) error
	StoredRuns(m *segstore.Meta) (int64, []slicer.Run)
	Stats() segstore.Stats
}

// AdminHandler returns the admin API. Requests must bear the admin.token
// of the configuration in force, so a reload (SetConfig) that rotates the
// token revokes the old one at once; without a token every request is
// refused.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.metrics().write(w)
	})
	mux.HandleFunc("GET /stats", s.adminStats)
	mux.HandleFunc("GET /config", s.adminConfig)
	mux.HandleFunc("GET /ls", s.adminList)
	mux.HandleFunc("GET /inspect", s.adminInspect)
	mux.HandleFunc("POST /purge", s.adminPurge)
	mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
		st, ok := s.Peers.(interface{ Status() any })
		if !ok {
			adminError(w, http.StatusNotFound, "this node is not in a POP (its config has no cluster section)")
			return
		}
		adminJSON(w, http.StatusOK, st.Status())
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // heap, goroutine, allocs, block, mutex
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Balancers and supervisors probe these without the token; they
		// tell nothing an attacker could use.
		switch r.URL.Path {
		case "/healthz":
			s.healthz(w, r)
			return
		case "/readyz":
			s.readyz(w, r)
			return
		}
		token := s.config().Admin.Token
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			s.authFailed(r, ok)
			w.Header().Set("WWW-Authenticate", `Bearer realm="sliceedge admin"`)
			adminError(w, http.StatusUnauthorized, "missing or wrong bearer token (send Authorization: Bearer <admin.token from the config>)")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func adminError(w http.ResponseWriter, status int, msg string) {
	adminJSON(w, status, map[string]string{"error": msg})
}

func (s *Server) admin(w http.ResponseWriter) (adminStore, bool) {
	st, ok := s.Store.(adminStore)
	if !ok {
		adminError(w, http.StatusNotImplemented, "this store does not support the admin API")
	}
	return st, ok
}

// keyOfURL maps an absolute URL as clients request it from this edge to
// its cache key, whatever its spelling (host case, trailing dot, default
// port, dot segments, percent-encoding).
func (s *Server) keyOfURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !strings.HasPrefix(u.Path, "/") {
		return "", fmt.Errorf("url %q: want an absolute URL such as http://edge.example.com/video/a.mp4 (the host is part of the cache key)", raw)
	}
	key, err := s.urlKey(u)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", raw, err)
	}
	return key, nil
}

// urlKey is the cache key of the absolute URL u, normalised as a request
// for it would be.
func (s *Server) urlKey(u *url.URL) (string, error) {
	host := config.HostName(u.Host)
	tgt, err := parseTarget(u)
	if err != nil {
		return "", err
	}
	rule := s.config().Rule(host, tgt.path)
	if rule == nil {
		return "", errors.New("no rule in the configuration serves its host and path, so nothing of it is cached")
	}
	return keyFor(keyHost(host, u.Host, u.Scheme == "https"), tgt.escaped, u.RawQuery, rule), nil
}

// keyPrefixOf maps a URL prefix (scheme optional) to a cache key prefix,
// normalised as keys are.
func keyPrefixOf(raw string) (string, error) {
	p := raw
	if !strings.Contains(p, "://") {
		p = "http://" + p
	}
	u, err := url.Parse(p)
	bad := fmt.Errorf("prefix %q: want a URL prefix with its host, such as http://edge.example.com/video/ (the host is part of the cache key)", raw)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", bad
	}
	if u.Path == "" {
		u.Path = "/"
	}
	tgt, err := parseTarget(u)
	if err != nil {
		return "", fmt.Errorf("prefix %q: %w", raw, err)
	}
	return keyHost(config.HostName(u.Host), u.Host, u.Scheme == "https") + tgt.escaped, nil
}

// PurgeResult is the answer of POST /purge.
type PurgeResult struct {
	Purged int  `json:"purged"` // objects purged (or marked stale)
	Soft   bool `json:"soft"`
	// Pending is set, with status 202 Accepted, when the store could not
	// write the purge to disk: the objects are no longer served, and the
	// deletion is retried in the background; a restart before it lands
	// would bring them back. Note says so in words.
	Pending bool   `json:"pending,omitempty"`
	Note    string `json:"note,omitempty"`
}

// adminPurge: ?url=U, ?prefix=P or ?all=1; &soft=1 marks stale instead of
// deleting. A purge is safe during a fill of the same object: the fill's
// slice writes fail as stale, and a discovery in flight does not store its
// meta.
func (s *Server) adminPurge(w http.ResponseWriter, r *http.Request) {
	st, ok := s.admin(w)
	if !ok {
		return
	}
	q := r.URL.Query()
	given := 0
	for _, k := range []string{"url", "prefix", "tag", "glob", "all"} {
		if q.Has(k) {
			given++
		}
	}
	if given > 1 {
		adminError(w, http.StatusBadRequest, "give one of ?url=, ?prefix=, ?glob=, ?tag= or ?all=1, not several")
		return
	}
	o := PurgeOrder{URL: q.Get("url"), Prefix: q.Get("prefix"), Tag: q.Get("tag"), Glob: q.Get("glob"),
		All: q.Get("all") == "1" || q.Get("all") == "true", Soft: q.Get("soft") == "1" || q.Get("soft") == "true"}
	soft := o.Soft
	n, err := s.purgeOrder(st, o)
	var bad *badPurge
	if errors.As(err, &bad) {
		adminError(w, http.StatusBadRequest, bad.msg)
		return
	}
	if s.Peers != nil && (err == nil || errors.Is(err, segstore.ErrPurgePending)) {
		s.Peers.Broadcast(o) // every node of the POP, and those down now when they rejoin
	}
	if errors.Is(err, segstore.ErrPurgePending) {
		s.Log.Warn().Err(err).Str("url", o.URL).Str("prefix", o.Prefix).Str("tag", o.Tag).Str("glob", o.Glob).Bool("all", o.All).
			Int("objects", n).Msg("admin: purged in memory only, the store cannot write now; the deletion on disk is retried in the background, and a restart before it lands would bring the objects back: free space on the store's disk")
		adminJSON(w, http.StatusAccepted, PurgeResult{Purged: n, Soft: soft, Pending: true, Note: err.Error()})
		return
	}
	if err != nil {
		s.Log.Error().Err(err).Msg("admin: purge failed")
		adminError(w, http.StatusInternalServerError, "purge failed: "+err.Error())
		return
	}
	s.Log.Info().Str("url", o.URL).Str("prefix", o.Prefix).Str("tag", o.Tag).Str("glob", o.Glob).Bool("all", o.All).
		Bool("soft", soft).Int("objects", n).Msg("admin: purged")
	adminJSON(w, http.StatusOK, PurgeResult{Purged: n, Soft: soft})
}

// badPurge is a purge order that names nothing to purge, or a URL or
// prefix the rules cannot map.
type badPurge struct{ msg string }

func (e *badPurge) Error() string { return e.msg }

// Purge applies o to this node's store alone: a purge made on another
// node of the POP (package cluster calls it).
func (s *Server) Purge(o PurgeOrder) (int, error) {
	st, ok := s.Store.(adminStore)
	if !ok {
		return 0, fmt.Errorf("edge: purge: the store cannot purge")
	}
	n, err := s.purgeOrder(st, o)
	if err != nil {
		s.Log.Warn().Err(err).Str("url", o.URL).Str("prefix", o.Prefix).Str("tag", o.Tag).Str("glob", o.Glob).Bool("all", o.All).Msg("edge: a purge from another node of the POP failed here")
	} else {
		s.Log.Info().Str("url", o.URL).Str("prefix", o.Prefix).Str("tag", o.Tag).Str("glob", o.Glob).Bool("all", o.All).Bool("soft", o.Soft).Int("objects", n).Msg("edge: purged, as another node of the POP asked")
	}
	return n, err
}

// purgeOrder purges what o names from st.
func (s *Server) purgeOrder(st adminStore, o PurgeOrder) (n int, err error) {
	soft := o.Soft
	switch {
	case o.URL != "":
		var key string
		if key, err = s.keyOfURL(o.URL); err != nil {
			return 0, &badPurge{err.Error()}
		}
		return s.purgeKey(st, key, soft)
	case o.Tag != "":
		if !validTag(o.Tag) {
			return 0, &badPurge{fmt.Sprintf("tag %q: want one Surrogate-Key or Cache-Tag value, without spaces or commas", o.Tag)}
		}
		keys, err := keysTagged(st, o.Tag)
		if err != nil {
			return 0, err
		}
		return s.purgeEach(st, keys, soft)
	case o.Glob != "":
		prefix, pattern, err := globKeys(o.Glob)
		if err != nil {
			return 0, &badPurge{err.Error()}
		}
		keys, err := keysGlobbed(st, prefix, pattern)
		if err != nil {
			return 0, err
		}
		return s.purgeEach(st, keys, soft)
	case o.Prefix != "":
		var prefix string
		if prefix, err = keyPrefixOf(o.Prefix); err != nil {
			return 0, &badPurge{err.Error()}
		}
		s.purged.add(prefix, true)
		n, err = s.purgeKeys(st, prefix, false, soft)
		s.passes.clear()
	case o.All:
		s.purged.add("", true)
		n, err = s.purgeKeys(st, "", false, soft)
		s.passes.clear()
	default:
		return 0, &badPurge{"say what to purge: ?url=URL, ?prefix=URL-PREFIX, ?glob=URL-GLOB, ?tag=TAG or ?all=1 (add &soft=1 to mark stale instead)"}
	}
	return n, err
}

// purgeKey purges one URL's key and every Vary variant of it.
func (s *Server) purgeKey(st adminStore, key string, soft bool) (int, error) {
	s.purged.add(key, false)
	s.purged.add(key+variantSep, true) // and every Vary variant of it
	n, err := s.purgeKeys(st, key, true, soft)
	if err == nil {
		var v int
		v, err = s.purgeKeys(st, key+variantSep, false, soft)
		n += v
	}
	s.variants.forget(key)
	s.passes.forget(key)
	return n, err
}

// purgeEach purges the keys one by one; a purge held in memory
// (segstore.ErrPurgePending) goes on to the next key and is reported at
// the end.
func (s *Server) purgeEach(st adminStore, keys []string, soft bool) (int, error) {
	n := 0
	var pending error
	for _, k := range keys {
		m, err := s.purgeKey(st, k, soft)
		n += m
		switch {
		case errors.Is(err, segstore.ErrPurgePending):
			pending = err
		case err != nil:
			return n, err
		}
	}
	return n, pending
}

// purgeKeys purges one key (exact) or every key with a prefix.
func (s *Server) purgeKeys(st adminStore, key string, exact, soft bool) (int, error) {
	if soft {
		var metas []*segstore.Meta
		err := st.ScanMeta(key, func(m *segstore.Meta) bool {
			if !exact || m.Key == key {
				metas = append(metas, m)
			}
			return true
		})
		if err != nil {
			return 0, err
		}
		for _, m := range metas {
			stale := *m
			stale.Lifetime = 0
			stale.StoredAt = s.now().Add(-time.Nanosecond)
			if err := s.Store.PutMeta(&stale); err != nil {
				return 0, fmt.Errorf("soft purge %q: %w", m.Key, err)
			}
		}
		return len(metas), nil
	}
	switch {
	case exact:
		// Purge even what Meta does not find: a store that is not open
		// yet (segstore.Reopening) finds nothing, and must still record
		// the purge. Purging a key the store does not hold costs a lookup.
		n := 1
		if _, err := s.Store.Meta(key); errors.Is(err, segstore.ErrNotFound) {
			n = 0
		}
		return n, s.Store.Purge(key)
	case key == "":
		return st.PurgeAll()
	default:
		return st.PurgePrefix(key)
	}
}

// Inspection is the answer of GET /inspect: what the store holds of one
// object.
type Inspection struct {
	URL          string    `json:"url"`
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	SliceSize    int64     `json:"slice_size"`
	Slices       int64     `json:"slices"`
	Stored       int64     `json:"stored"`
	Map          string    `json:"map"` // at most 64 cells: # all stored, + some, . none
	Version      string    `json:"version"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	StoredAt     time.Time `json:"stored_at"`
	Lifetime     string    `json:"lifetime"`
	Fresh        bool      `json:"fresh"`
	ExpiresIn    string    `json:"expires_in"`
	NoRange      bool      `json:"origin_without_range_support,omitempty"`
	// Class is how fills are proved to be of this version: strong-etag,
	// last-modified or none (segstore.Class).
	Class  string            `json:"class"`
	Header map[string]string `json:"header,omitempty"`
	// Owners says, in a POP, which node owns which slices: consecutive
	// groups with one owner are one entry. At most maxOwnerGroups groups
	// are listed (OwnersCut when there are more).
	Owners    []SliceOwner `json:"owners,omitempty"`
	OwnersCut bool         `json:"owners_cut,omitempty"`
}

// SliceOwner is a run of slices one node of the POP owns.
type SliceOwner struct {
	First int64  `json:"first"`
	Last  int64  `json:"last"`
	Node  string `json:"node"`
	Self  bool   `json:"self,omitempty"`
}

// maxOwnerGroups bounds the groups inspect hashes: its work follows the
// stored object's size only up to it.
const maxOwnerGroups = 4096

// owners lists which node owns which of m's slices, by this node's view.
func (s *Server) owners(m *segstore.Meta) (out []SliceOwner, cut bool) {
	if s.Peers == nil || m.SliceCount() == 0 {
		return nil, false
	}
	g := max(s.Peers.GroupSlices(), 1)
	groups := (m.SliceCount() + g - 1) / g
	if groups > maxOwnerGroups {
		groups, cut = maxOwnerGroups, true
	}
	for i := range groups {
		name, _, self := s.Peers.Owner(m.Key, i)
		last := min((i+1)*g, m.SliceCount()) - 1
		if n := len(out); n > 0 && out[n-1].Node == name {
			out[n-1].Last = last
			continue
		}
		out = append(out, SliceOwner{First: i * g, Last: last, Node: name, Self: self})
	}
	return out, cut
}

func (s *Server) adminInspect(w http.ResponseWriter, r *http.Request) {
	st, ok := s.admin(w)
	if !ok {
		return
	}
	raw := r.URL.Query().Get("url")
	key, err := s.keyOfURL(raw)
	if err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	m, err := s.Store.Meta(key)
	if errors.Is(err, segstore.ErrNotFound) {
		adminError(w, http.StatusNotFound, fmt.Sprintf("%s is not stored (key %q)", raw, key))
		return
	}
	if err != nil {
		adminError(w, http.StatusInternalServerError, err.Error())
		return
	}
	n, runs := st.StoredRuns(m)
	in := Inspection{
		URL: raw, Key: key, Size: m.Size, SliceSize: m.SliceSize, Slices: m.SliceCount(), Stored: n,
		Map: sliceMap(m.SliceCount(), runs, 64), Version: fmt.Sprintf("%016x", m.Version), ETag: m.ETag, LastModified: m.LastModified,
		StoredAt: m.StoredAt, Lifetime: m.Lifetime.String(), Fresh: s.fresh(m),
		ExpiresIn: m.StoredAt.Add(m.Lifetime).Sub(s.now()).Round(time.Second).String(), NoRange: m.NoRange,
		Class: string(m.Class()), Header: map[string]string{},
	}
	for k, vv := range m.Header {
		in.Header[k] = strings.Join(vv, ", ")
	}
	in.Owners, in.OwnersCut = s.owners(m)
	adminJSON(w, http.StatusOK, in)
}

// sliceMap draws which of count slices are stored, given as ascending runs,
// in at most width cells: '#' when every slice of a cell is stored, '.' when
// none is, '+' otherwise. Cell c holds slices [c*count/cells,
// (c+1)*count/cells). It costs O(runs + cells), however many slices the
// object claims.
func sliceMap(count int64, runs []slicer.Run, width int) string {
	if count <= 0 {
		return "[]"
	}
	cells := min(count, int64(width))
	// start is the first slice of cell c, computed in 128 bits: c*count
	// overflows for an object of 2^63-1 bytes.
	start := func(c int64) int64 {
		hi, lo := bits.Mul64(uint64(c), uint64(count))
		q, _ := bits.Div64(hi, lo, uint64(cells))
		return int64(q)
	}
	have := make([]int64, cells)
	for _, r := range runs {
		first, last := max(r.First, 0), min(r.Last, count-1)
		if first > last {
			continue
		}
		hi, lo := bits.Mul64(uint64(first), uint64(cells))
		q, _ := bits.Div64(hi, lo, uint64(count))
		c := int64(q) // first's cell, give or take one
		for c > 0 && start(c) > first {
			c--
		}
		for c+1 < cells && start(c+1) <= first {
			c++
		}
		for i := first; i <= last; c++ {
			n := min(last+1, start(c+1)) - i
			have[c] += n
			i += n
		}
	}
	var b strings.Builder
	b.WriteByte('[')
	for c := range cells {
		switch have[c] {
		case start(c+1) - start(c):
			b.WriteByte('#')
		case 0:
			b.WriteByte('.')
		default:
			b.WriteByte('+')
		}
	}
	b.WriteByte(']')
	return b.String()
}

// StatsReport is the answer of GET /stats.
type StatsReport struct {
	Store         segstore.Stats `json:"store"`
	Counters      Counters       `json:"counters"`
	SliceHitRatio float64        `json:"slice_hit_ratio"` // slices from the store / slices sent
	ByteHitRatio  float64        `json:"byte_hit_ratio"`  // 1 - origin fill bytes / response bytes
	FillsInFlight int            `json:"fills_in_flight"`
	Version       string         `json:"version"`
	StartedAt     time.Time      `json:"started_at,omitzero"`
	// Now is when the figures were taken: a client computes rates from
	// two reports' counters over their Now.
	Now time.Time `json:"now"`
}

func (s *Server) adminStats(w http.ResponseWriter, r *http.Request) {
	st, ok := s.admin(w)
	if !ok {
		return
	}
	c := s.Counters()
	rep := StatsReport{Store: st.Stats(), Counters: c, FillsInFlight: s.fills.InFlight(), Version: s.Version, StartedAt: s.Started, Now: s.now()}
	if n := c.SliceHits + c.SliceMisses; n > 0 {
		rep.SliceHitRatio = float64(c.SliceHits) / float64(n)
	}
	if c.ResponseBytes > 0 {
		rep.ByteHitRatio = max(0, 1-float64(c.OriginBytes)/float64(c.ResponseBytes))
	}
	adminJSON(w, http.StatusOK, rep)
}

// authFailed counts an admin request refused for its token and logs it:
// the first of every authLogEvery with its client, the ones between only
// counted in the next line, so that a flood does not fill the disk.
func (s *Server) authFailed(r *http.Request, hadToken bool) {
	s.metrics().authFailures.Inc()
	now := s.now().UnixNano()
	last := s.lastAuthLog.Load()
	if now-last < int64(authLogEvery) || !s.lastAuthLog.CompareAndSwap(last, now) {
		s.authSuppressed.Add(1)
		return
	}
	why := "no bearer token"
	if hadToken {
		why = "wrong bearer token"
	}
	s.Log.Warn().Str("client", r.RemoteAddr).Str("method", r.Method).Str("path", r.URL.Path).Str("why", why).
		Int64("refused_since_last_line", s.authSuppressed.Swap(0)).
		Msg("admin: request refused (a script or scraper with an old admin.token, or someone probing the admin port: it should not be reachable from outside)")
}

// authLogEvery is the least time between two log lines about refused
// admin requests.
const authLogEvery = 10 * time.Second
