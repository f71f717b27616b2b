// Package cluster makes sliceedge nodes one POP: they find each other by
// gossip (hashicorp/memberlist, its traffic encrypted with a key derived
// from the shared secret), own slice groups by rendezvous hashing over the
// live members, and carry purges to every node, including one that was
// down when a purge was made.
//
// The edge asks Node who owns a group (edge.Peers); the bytes move over
// HTTP between peer listeners (edge/peers.go), checked like an origin's.
package cluster

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
)

// Member is a node of the POP as this node sees it.
type Member struct {
	Name  string `json:"name"`
	Peer  string `json:"peer"`  // its peer listener, host:port
	State string `json:"state"` // alive, suspect
	Self  bool   `json:"self,omitempty"`
}

// nodeMeta is what a node gossips about itself.
type nodeMeta struct {
	Peer string `json:"peer"`
}

// Node is this process's membership of a POP. It implements edge.Peers.
type Node struct {
	cfg   *config.Cluster
	log   zerolog.Logger
	ml    *memberlist.Memberlist
	token string
	queue *memberlist.TransmitLimitedQueue

	mu      sync.Mutex // protects members and builds view
	members map[string]Member
	view    atomic.Pointer[[]Member] // live members sorted by name; what Owner hashes over

	journal journal
	apply   func(edge.PurgeOrder) // purges made elsewhere are applied here

	memberCount   *vm.Gauge
	changes       *vm.Counter
	purgesIn      *vm.Counter
	purgesApplied *vm.Counter
}

// Options are what Start needs besides the config section.
type Options struct {
	Log zerolog.Logger
	// Metrics is where the cluster's metrics go (the edge's set, so that
	// /metrics shows them); nil keeps them in a set of their own.
	Metrics *vm.Set
	// Apply purges this node's store for a purge made on another node.
	Apply func(edge.PurgeOrder)
	// Tune, when set, adjusts memberlist's configuration before it
	// starts (tests shorten its timers).
	Tune func(*memberlist.Config)
}

// Start joins (or starts) the POP the config describes. Purges the other
// nodes made while this one was away are applied before Start returns:
// the node should serve only after it.
func Start(cfg *config.Cluster, opts Options) (*Node, error) {
	if cfg == nil || cfg.Node == "" || cfg.Gossip == "" || cfg.Peer == "" || cfg.Secret == "" {
		return nil, fmt.Errorf("cluster: node, gossip, peer and secret are required")
	}
	n := &Node{cfg: cfg, log: opts.Log, token: peerToken(cfg.Secret), members: map[string]Member{}, apply: opts.Apply}
	set := opts.Metrics
	if set == nil {
		set = vm.NewSet()
	}
	n.memberCount = set.NewGauge("sliceedge_cluster_members", nil)
	n.changes = set.NewCounter("sliceedge_cluster_ownership_changes_total")
	n.purgesIn = set.NewCounter("sliceedge_cluster_purges_received_total")
	n.purgesApplied = set.NewCounter("sliceedge_cluster_purges_applied_total")

	host, port, err := net.SplitHostPort(cfg.Gossip)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip address %q: %w", cfg.Gossip, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip port %q: %w", port, err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Node
	mc.BindAddr, mc.BindPort = host, p
	mc.AdvertiseAddr, mc.AdvertisePort = host, p
	key := sha256.Sum256([]byte("sliceedge gossip\x00" + cfg.Secret))
	mc.SecretKey = key[:]
	mc.Delegate = (*delegate)(n)
	mc.Events = (*events)(n)
	mc.Logger = log.New(memberlistLog{n.log}, "", 0)
	if opts.Tune != nil {
		opts.Tune(mc)
	}
	n.queue = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return max(len(*n.view.Load()), 1) }, RetransmitMult: mc.RetransmitMult}
	n.view.Store(&[]Member{})
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start gossip on %s: %w (is the port free, and the address this machine's?)", cfg.Gossip, err)
	}
	n.ml = ml
	if len(cfg.Join) > 0 {
		joined, err := ml.Join(cfg.Join)
		if joined == 0 {
			// A POP whose seeds are all down starts on its own: the
			// others join it when they come back (their join lists).
			n.log.Warn().Err(err).Strs("join", cfg.Join).Msg("cluster: no seed answered; serving as a POP of one until another node joins this one")
		} else {
			n.log.Info().Int("contacted", joined).Int("members", len(*n.view.Load())).Msg("cluster: joined")
		}
	}
	return n, nil
}

// Leave tells the POP this node is going, waiting at most timeout, and
// stops gossip.
func (n *Node) Leave(timeout time.Duration) error {
	err := n.ml.Leave(timeout)
	if serr := n.ml.Shutdown(); err == nil {
		err = serr
	}
	return err
}

// Shutdown stops gossip without a word to the others, as a crash would:
// they find the node dead by probing.
func (n *Node) Shutdown() error { return n.ml.Shutdown() }

// GossipAddr is the address other nodes join this one at (the port
// memberlist chose when the config said 0).
func (n *Node) GossipAddr() string { return n.ml.LocalNode().Address() }

// Name is this node's name.
func (n *Node) Name() string { return n.cfg.Node }

// GroupSlices is the slices in one ownership group.
func (n *Node) GroupSlices() int64 { return n.cfg.GroupSlices }

// Token is the value peer requests carry, derived from the shared secret.
func (n *Node) Token() string { return n.token }

// Members lists the live members, this node among them.
func (n *Node) Members() []Member { return slices.Clone(*n.view.Load()) }

// Owner returns the member that owns slice group group of key: the live
// member with the highest rendezvous score. self is true when it is this
// node (or when no member is known yet).
func (n *Node) Owner(key string, group int64) (name, peer string, self bool) {
	view := *n.view.Load()
	best, bestScore := -1, uint64(0)
	for i, m := range view {
		if s := score(m.Name, key, group); best < 0 || s > bestScore || s == bestScore && m.Name < view[best].Name {
			best, bestScore = i, s
		}
	}
	if best < 0 || view[best].Name == n.cfg.Node {
		return n.cfg.Node, n.cfg.Peer, true
	}
	return view[best].Name, view[best].Peer, false
}

// score is the rendezvous (highest random weight) score of a member for a
// group: FNV-1a of the three, finished with splitmix64's mixer so that
// near names spread.
func score(member, key string, group int64) uint64 {
	h := fnv.New64a()
	io.WriteString(h, member)
	h.Write([]byte{0})
	io.WriteString(h, key)
	var g [9]byte
	binary.LittleEndian.PutUint64(g[1:], uint64(group))
	h.Write(g[:])
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// peerToken is what peer requests carry: a digest of the secret, so the
// secret itself never crosses the wire (nor the gossip key, which is
// another digest of it).
func peerToken(secret string) string {
	d := sha256.Sum256([]byte("sliceedge peer\x00" + secret))
	return hex.EncodeToString(d[:])
}

// Broadcast carries a purge made on this node to every other: by gossip
// now, and in the state nodes exchange when one joins, for a node that is
// down now.
func (n *Node) Broadcast(o edge.PurgeOrder) {
	rec := n.journal.add(n.cfg.Node, o, time.Now())
	b, err := json.Marshal([]purgeRec{rec})
	if err != nil {
		return
	}
	n.queue.QueueBroadcast(broadcast(b))
}

// receive applies the purges of recs that this node has not seen.
func (n *Node) receive(recs []purgeRec) {
	for _, r := range recs {
		n.purgesIn.Inc()
		if !n.journal.learn(r) {
			continue
		}
		n.purgesApplied.Inc()
		n.log.Info().Str("from", r.Node).Str("url", r.Order.URL).Str("prefix", r.Order.Prefix).Bool("all", r.Order.All).
			Time("made", r.At).Msg("cluster: applying a purge made on another node")
		if n.apply != nil {
			n.apply(r.Order)
		}
	}
}

// setMember records a member's state and rebuilds the view.
func (n *Node) setMember(node *memberlist.Node, alive bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if alive {
		var meta nodeMeta
		if err := json.Unmarshal(node.Meta, &meta); err != nil || meta.Peer == "" {
			n.log.Warn().Str("node", node.Name).Msg("cluster: a member gossips no peer address; it owns nothing until it does (is it sliceedge of this version?)")
			delete(n.members, node.Name)
		} else {
			n.members[node.Name] = Member{Name: node.Name, Peer: meta.Peer, State: "alive", Self: node.Name == n.cfg.Node}
		}
	} else {
		delete(n.members, node.Name)
	}
	view := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		view = append(view, m)
	}
	slices.SortFunc(view, func(a, b Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	n.view.Store(&view)
	n.memberCount.Set(float64(len(view)))
	n.changes.Inc()
}

// delegate is memberlist's Delegate: this node's meta, purge broadcasts,
// and the purge journal exchanged in push-pull.
type delegate Node

func (d *delegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(nodeMeta{Peer: d.cfg.Peer})
	if len(b) > limit {
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg(b []byte) {
	var recs []purgeRec
	if json.Unmarshal(b, &recs) == nil {
		(*Node)(d).receive(recs)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte { return d.journal.state() }

func (d *delegate) MergeRemoteState(b []byte, join bool) {
	var recs []purgeRec
	if json.Unmarshal(b, &recs) == nil {
		(*Node)(d).receive(recs)
	}
}

// events is memberlist's EventDelegate: the member list.
type events Node

func (e *events) NotifyJoin(node *memberlist.Node)   { (*Node)(e).setMember(node, true) }
func (e *events) NotifyLeave(node *memberlist.Node)  { (*Node)(e).setMember(node, false) }
func (e *events) NotifyUpdate(node *memberlist.Node) { (*Node)(e).setMember(node, true) }

// broadcast is one gossip message.
type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

// memberlistLog turns memberlist's log lines into debug lines of ours
// (its warnings about probes of a dead node are expected while one is).
type memberlistLog struct{ log zerolog.Logger }

func (w memberlistLog) Write(p []byte) (int, error) {
	w.log.Debug().Str("component", "memberlist").Msg(string(p))
	return len(p), nil
}

// Status is what `sliceedge cluster status` shows.
type Status struct {
	Node        string   `json:"node"`
	GroupSlices int64    `json:"group_slices"`
	Members     []Member `json:"members"`
	// Share is, by member, the fraction of groups it owns, estimated
	// over a fixed sample of keys.
	Share map[string]float64 `json:"share"`
}

// shareSample is how many (key, group) pairs Status hashes to estimate
// each member's share.
const shareSample = 4096

// Status reports the members as this node sees them, and each one's share
// of the groups.
func (n *Node) Status() any {
	st := Status{Node: n.cfg.Node, GroupSlices: n.cfg.GroupSlices, Members: n.Members(), Share: map[string]float64{}}
	for i := range shareSample {
		name, _, _ := n.Owner("sample/"+strconv.Itoa(i), int64(i%64))
		st.Share[name] += 1.0 / shareSample
	}
	return st
}
