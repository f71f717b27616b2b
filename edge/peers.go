package edge

// A POP (shared/DESIGN.md, "Cluster"). Each slice group (an object key and
// a run of GroupSlices slices) has one owner among the live nodes
// (Peers.Owner, rendezvous hashing in package cluster). A node that needs
// slices of a group another node owns asks that node, on its peer
// listener, for them, exactly as it would ask the origin: the same request
// (Range, If-Match with the version's validator, If-None-Match to
// revalidate), checked the same way (status, Content-Range, validator,
// size). The owner answers it as it answers a client, from its store, from
// a fill in flight or from the origin, but never asks a third node: a
// request on the peer listener is served locally. So each slice is fetched
// from the origin once for the whole POP, by its group's owner, and two
// nodes whose member lists differ for a while still answer right: a
// version's identity across nodes is its validator and size, which every
// answer is checked against.
//
// Runs never span two groups, and a discovery never asks an open range:
// each group's bytes come through its owner. A revalidation, and a
// discovery of an object's last bytes before its size is known, go to the
// owner of group -1, the object's meta owner: the POP revalidates an
// object once, and that node's 304 refreshes the others. A peer that does not answer
// (down, refusing, answering something that fails the checks) costs that
// one fetch a trip to the origin instead.

import (
	"context"
	"crypto/subtle"
	"errors"
	"hash/fnv"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
)

// Peers is a node's view of its POP; nil on a node that stands alone.
type Peers interface {
	// Owner names the member owning slice group group of key (-1: the
	// object's last bytes, asked before its size is known) and its peer
	// listener; self when it is this node.
	Owner(key string, group int64) (name, peer string, self bool)
	// GroupSlices is the slices in one group.
	GroupSlices() int64
	// Token is the secret value peer requests carry.
	Token() string
	// Broadcast carries a purge made here to the other nodes.
	Broadcast(PurgeOrder)
}

// PurgeOrder is one purge, as the admin API takes it and the POP carries
// it to every node (Server.Purge).
type PurgeOrder struct {
	URL    string `json:"url,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Tag    string `json:"tag,omitempty"`  // Surrogate-Key or Cache-Tag value
	Glob   string `json:"glob,omitempty"` // URL with path.Match metacharacters in its path
	All    bool   `json:"all,omitempty"`
	Soft   bool   `json:"soft,omitempty"`
}

// PeerTokenHeader carries Peers.Token on requests between nodes.
const PeerTokenHeader = "Sliceedge-Peer-Token"

// peerCtxKey marks a request that came in on the peer listener.
type peerCtxKey struct{}

// PeerHandler serves the peer listener: requests from other nodes of the
// POP, which must carry the token. They are answered like clients'
// requests, but never from a third node, and without this node's
// X-Cache and Cache-Status (the asking node adds its own).
func (s *Server) PeerHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := s.Peers
		if p == nil || subtle.ConstantTimeCompare([]byte(r.Header.Get(PeerTokenHeader)), []byte(p.Token())) != 1 {
			s.metrics().peerRefused.Inc()
			http.Error(w, "sliceedge: this is the peer listener of a POP node; it answers other nodes of the POP, with the cluster secret\n", http.StatusForbidden)
			return
		}
		r.Header.Del(PeerTokenHeader)
		s.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerCtxKey{}, true)))
	})
}

// clustered reports whether q's fetches are routed to group owners: the
// node is in a POP, q did not come from a peer, and q's object is not one
// this node fetches alone (localOnly).
func (s *Server) clustered(q *request) bool {
	return s.Peers != nil && !q.fromPeer && !s.localOnly.has(q.key, s.now())
}

// inPOP reports whether the node is in a POP.
func (s *Server) inPOP() bool { return s.Peers != nil }

// grouped reports whether q's runs and discoveries follow group bounds:
// the node is in a POP (whether q came from a client or a peer), and q's
// object is not one it fetches alone.
func (s *Server) grouped(q *request) bool {
	return s.Peers != nil && !s.localOnly.has(q.key, s.now())
}

// groupEnd is the last slice of the group holding slice i, or the largest
// index when q's runs do not follow groups.
func (s *Server) groupEnd(q *request, i int64) int64 {
	if !s.grouped(q) {
		return 1<<62 - 1
	}
	g := max(s.Peers.GroupSlices(), 1)
	return (i/g+1)*g - 1
}

// upstream is where a cached fetch goes: the origin, or the peer that
// owns the fetch's group.
type upstream struct {
	s      *Server
	q      *request // whose access log names the member that answered
	origin *origin.Pool
	peer   *origin.Client // nil: the origin
	name   string         // the peer's
	url    string         // the request's URL at the peer
	host   string
	key    string
	group  int64
	kind   string // of the fetch, as sliceedge_origin_requests_total counts it when it goes to the origin
}

// route is the upstream of a cached fetch for q of the run from slice
// first (-1: the object's last bytes, its size unknown): the node that
// owns the run's group, or the origin when that is this node or q came
// from a peer. It is decided when the fetch is planned, while q is the
// caller's.
func (s *Server) route(q *request, first int64) upstream {
	if q.member == nil { // on q's own goroutine, before any fetch runs
		q.member = new(atomic.Pointer[string])
	}
	u := upstream{s: s, q: q, origin: s.pool(q.rule.Origin)}
	if !s.clustered(q) {
		return u
	}
	u.group = -1
	if first >= 0 {
		u.group = first / max(s.Peers.GroupSlices(), 1)
	}
	name, addr, ok := s.peerFor(q, u.group)
	if !ok {
		return u
	}
	u.peer, u.name, u.url, u.host, u.key = s.peerClient(q.rule.Origin), name, "http://"+addr+q.r.URL.RequestURI(), q.r.Host, q.key
	return u
}

// fetch sends req to u: to the peer, with the token, and to the origin
// when the peer fails (not when it relays the origin's answer).
func (u upstream) fetch(ctx context.Context, req *origin.Request) (*origin.Response, error) {
	if u.peer != nil {
		preq := *req
		preq.URL, preq.Host = u.url, u.host
		preq.Header = req.Header.Clone()
		preq.Header.Set(PeerTokenHeader, u.s.Peers.Token())
		resp, err := u.peer.Fetch(ctx, &preq)
		u.s.metrics().peerFetch(ctx, u.name, resp, err, func() { u.s.peerTrouble(u.name) })
		if err == nil || !peerFailed(ctx, err) {
			if err == nil {
				u.q.setMember("peer:" + u.name)
			}
			return resp, err
		}
		u.s.peerTrouble(u.name)
		u.s.Log.Warn().Err(err).Str("peer", u.name).Str("key", u.key).Int64("group", u.group).
			Msg("edge: the node owning this group did not answer; fetching from the origin instead (if it is down, the POP stops asking it once gossip finds it dead)")
	}
	u.s.metrics().originRequest(u.kind)
	resp, err := u.origin.Fetch(ctx, req)
	if err == nil {
		u.q.setMember(resp.Member)
	}
	return resp, err
}

// peerFailed reports whether err says the peer failed, rather than the
// origin behind it (a status it relays) or the version (it has another):
// those are the answer, from whichever node.
func peerFailed(ctx context.Context, err error) bool {
	var se *origin.StatusError
	switch {
	case ctx.Err() != nil, errors.Is(err, origin.ErrVersionChanged):
		return false
	case errors.As(err, &se):
		// A peer that does not share the secret, or whose rules do not
		// know the host: its configuration, not the origin's answer.
		if se.Resp.StatusCode == http.StatusForbidden || se.Resp.StatusCode == http.StatusMisdirectedRequest {
			se.Resp.Body.Close()
			return true
		}
		return false
	}
	return true
}

// peerClient is the client for requests to peers: the origin's timeouts
// (the owner may have to ask the origin first), one pool for all peers.
func (s *Server) peerClient(o *config.Origin) *origin.Client {
	k := clientKeyOf(o)
	k.name, k.url, k.host = "peer:"+k.name, "", ""
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	if c, ok := s.clients[k]; ok {
		return c
	}
	if s.clients == nil {
		s.clients = make(map[clientKey]*origin.Client)
	}
	c := origin.NewClient(origin.Options{
		ConnectTimeout: o.ConnectTimeout,
		ReadTimeout:    o.ReadTimeout,
		MaxHeaderBytes: o.MaxHeaderBytes,
		Transport:      s.Transport,
	})
	s.clients[k] = c
	return c
}

// versionLock is the lock under which a POP node decides whether an
// answer starts a new version of key or fills the one another lookup of
// the same key stored meanwhile (fetchMeta).
func (s *Server) versionLock(key string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(key))
	return &s.versionLocks[h.Sum32()%uint32(len(s.versionLocks))]
}

// localKeys are the objects a POP node fetches alone, as if it stood
// alone: those without a validator (class none), whose slices only the
// answer that created their version may fill, so that no peer's can.
// Bounded: past maxLocalKeys it starts over (a forgotten object costs its
// next client a routed discovery, which finds it again).
type localKeys struct {
	mu sync.Mutex
	m  map[string]time.Time // key -> when it was found to be of class none
}

// localKeyTTL is how long an object stays local-only: an origin that
// starts sending validators has it shared again after it.
const localKeyTTL = 10 * time.Minute

const maxLocalKeys = 100_000

func (l *localKeys) add(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil || len(l.m) >= maxLocalKeys {
		l.m = make(map[string]time.Time)
	}
	l.m[key] = now
}

func (l *localKeys) has(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.m[key]
	if ok && now.Sub(at) > localKeyTTL {
		delete(l.m, key)
		return false
	}
	return ok
}

// peerFills marks, in the fills registry, the fills of slices this node
// fetches from a peer (fillKey).
const peerFills = "\x00from-peer"

// fillKey is the key under which q's fill of slice i of m is registered:
// m's key, or for a slice this node fetches from a peer, m's key marked
// apart. A request from a peer never waits on a fill this node makes
// through another peer: when member lists disagree, two nodes could each
// be filling a group from the other and each wait on the other's fill
// until a timeout. Requests that agree on the route share fills as usual.
func (s *Server) fillKey(q *request, m *segstore.Meta, i int64) string {
	if !s.clustered(q) {
		return m.Key
	}
	if _, _, ok := s.peerFor(q, i/max(s.Peers.GroupSlices(), 1)); !ok {
		return m.Key
	}
	return m.Key + peerFills
}

// peerFor names the peer q's fetches of group go to: its owner, unless
// that is this node or a peer that failed a fetch in the last peerBackoff
// (then the origin: a peer that hangs or lies mid-answer would otherwise
// be asked again at once for the rest, and one that is down is asked by
// every fetch until gossip finds it dead).
func (s *Server) peerFor(q *request, group int64) (name, addr string, ok bool) {
	name, addr, self := s.Peers.Owner(q.key, group)
	if self {
		return "", "", false
	}
	if until, bad := s.peerBad.Load(name); bad && s.now().Before(until.(time.Time)) {
		return "", "", false
	}
	return name, addr, true
}

// peerBackoff is how long a peer that failed a fetch is not asked.
const peerBackoff = 5 * time.Second

// peerTrouble records that peer failed a fetch, before or during its
// body.
func (s *Server) peerTrouble(peer string) {
	s.peerBad.Store(peer, s.now().Add(peerBackoff))
}
