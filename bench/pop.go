package bench

// The pop workload (issue 13): Nodes sliceedge nodes as one POP, and one
// node standing alone, all in this process in front of the run's origin,
// each on its own store and loopback ports. They run in-process, as the
// run's own edge does (env.go), for three reasons: a test of package
// bench has no sliceedge binary to start; the figures come from the nodes'
// own metric sets and ownership (cluster.Node.Owner) rather than from
// scraping and re-hashing; and the POP and the lone node share one Go
// runtime with the load, as the run's edge does, so their figures compare.
// Each node is wired as `sliceedge serve` wires one (cmd/sliceedge/serve.go):
// the same server, store options and peer listener.

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/cluster"
	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// pop's parameters that are not flags.
const (
	// popHost is the Host of every pop request, whichever node is asked, as
	// behind a balancer: one of the default rule's hosts. Without a port
	// or a query, the edge's cache key of a path on it is the host, then
	// the path (edge's keyFor); pop checks that it is (coldTTFB).
	popHost                  = "localhost"
	popFull                  = 0.2               // share of full GETs in pop's mix
	popMinRange, popMaxRange = 64 << 10, 4 << 20 // its range lengths, log-uniform
	popColdSamples           = 16                // cold requests through owners, and as many through non-owners
	popJoinLimit             = 10 * time.Second  // for every node to see every other
	popSettleLimit           = 10 * time.Second  // for the nodes' fills to land
)

// nodeConfig is a pop node's configuration: sliceedge's defaults
// (config/default.yaml) with a store in a temporary directory, under a
// budget no run reaches (nothing is evicted while pop measures), in front
// of the run's origin. %q are the store directory and the origin URL.
const nodeConfig = `
listen: 127.0.0.1:0
store:
  dir: %q
  max_bytes: 1TiB
origins:
  default:
    url: %q
rules:
  - match: /
    hosts: [127.0.0.1, localhost]
    origin: default
    slice_size: 1MiB
`

// clusterSection makes a node one of the POP: its name, its peer listener,
// the POP's secret and the gossip address of a node to join (none for the
// first). Gossip takes a free loopback port.
const clusterSection = `
cluster:
  node: %s
  gossip: 127.0.0.1:0
  peer: %s
  secret: %s
  join: [%s]
`

// node is one sliceedge node pop runs in this process.
type node struct {
	name   string
	url    string // base URL of its client listener
	edge   *edge.Server
	store  *segstore.Store
	member *cluster.Node // nil for the node standing alone
	client *http.Server
	peer   *http.Server // nil for the node standing alone
	dir    string       // the store's
}

// startNode starts a node in front of originURL: one of a POP when secret
// is not "" (joining the node whose gossip address is join, if any), else
// a node standing alone. On error, what it started is stopped.
func startNode(name, originURL, secret, join string) (n *node, err error) {
	n = &node{name: name}
	defer func() {
		if err != nil {
			n.stopAll()
			n = nil
		}
	}()
	if n.dir, err = os.MkdirTemp("", "sliceedge-bench-"+name+"-"); err != nil {
		return nil, fmt.Errorf("%s: create its store directory: %w", name, err)
	}
	text := fmt.Sprintf(nodeConfig, n.dir, originURL)
	var peerLn net.Listener
	if secret != "" {
		if peerLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("%s: listen for peers: %w", name, err)
		}
		text += fmt.Sprintf(clusterSection, name, peerLn.Addr(), secret, join)
	}
	// Closed by the peer server once it serves, by hand before.
	defer func() {
		if err != nil && peerLn != nil && n.peer == nil {
			peerLn.Close()
		}
	}()
	cfg, err := config.Parse("bench ("+name+")", []byte(text))
	if err != nil {
		return nil, fmt.Errorf("%s: configuration: %w", name, err)
	}
	scrub := cfg.Store.ScrubRate
	if scrub == 0 {
		scrub = -1 // off, as serve reads store.scrub_rate: 0
	}
	if n.store, err = segstore.Open(segstore.Options{Dir: n.dir, MaxBytes: cfg.Store.MaxBytes, CacheBytes: cfg.Store.MemoryCache, ScrubRate: scrub}); err != nil {
		return nil, fmt.Errorf("%s: open its store: %w", name, err)
	}
	n.edge = &edge.Server{Config: cfg, Store: n.store, Log: zerolog.Nop(), SendTimeout: edge.DefaultSendTimeout}
	if secret != "" {
		// As serve does: the peer listener is up before the node joins,
		// so that it answers as soon as others see it.
		n.peer = &http.Server{Handler: n.edge.PeerHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() { _ = n.peer.Serve(peerLn) }() // ends with ErrServerClosed at stop
		h := n.edge
		if n.member, err = cluster.Start(cfg.Cluster, cluster.Options{Log: zerolog.Nop(), Metrics: h.Metrics(), Apply: func(o edge.PurgeOrder) { _, _ = h.Purge(o) }}); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		n.edge.Peers = n.member
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%s: listen for clients: %w", name, err)
	}
	n.client = edge.NewHTTPServer(n.edge)
	go func() { _ = n.client.Serve(ln) }() // ends with ErrServerClosed at stop
	n.url = "http://" + ln.Addr().String()
	return n, nil
}

// Stopping is in stages, each over every node of a run (stopNodes): a
// fill of one node may be reading from another's peer listener.

// stopClients closes the client listener and its connections.
func (n *node) stopClients() {
	if n.client != nil {
		_ = n.client.Close()
	}
}

// drain lets the fills in flight land in the store.
func (n *node) drain() {
	if n.edge != nil {
		ctx, cancel := context.WithTimeout(context.Background(), popSettleLimit)
		defer cancel()
		_ = n.edge.Drain(ctx)
	}
}

// stopRest stops gossip, without a word to the others (they are all
// stopping), the peer listener and the store, and removes the store.
func (n *node) stopRest() {
	if n.member != nil {
		_ = n.member.Shutdown()
	}
	if n.peer != nil {
		_ = n.peer.Close()
	}
	if n.store != nil {
		_ = n.store.Close()
	}
	if n.dir != "" {
		_ = os.RemoveAll(n.dir)
	}
}

func (n *node) stopAll() {
	n.stopClients()
	n.drain()
	n.stopRest()
}

// stopNodes stops nodes in stages: no node's fills wait on a peer gone.
func stopNodes(nodes []*node) {
	for _, n := range nodes {
		n.stopClients()
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(n.drain)
	}
	wg.Wait()
	for _, n := range nodes {
		n.stopRest()
	}
}

// popNodes are the nodes of one pop run.
type popNodes struct {
	pop       []*node // the POP, pop-1 first
	alone     *node   // the node standing alone
	sliceSize int64   // of the nodes' rule
	group     int64   // slices in an ownership group
}

// startPOP starts size nodes as one POP, each joining the first, and a
// node standing alone, and waits until every POP node sees every other.
func startPOP(ctx context.Context, originURL string, size int) (*popNodes, error) {
	secret := crand.Text() // the POP's: this run's alone
	p := &popNodes{}
	fail := func(err error) (*popNodes, error) {
		p.stop()
		return nil, err
	}
	for i := range size {
		join := ""
		if i > 0 {
			join = p.pop[0].member.GossipAddr()
		}
		n, err := startNode(fmt.Sprintf("pop-%d", i+1), originURL, secret, join)
		if err != nil {
			return fail(err)
		}
		p.pop = append(p.pop, n)
	}
	n, err := startNode("alone", originURL, "", "")
	if err != nil {
		return fail(err)
	}
	p.alone = n
	p.sliceSize = p.alone.edge.Config.Rules[0].SliceSize
	p.group = p.pop[0].member.GroupSlices()

	deadline := time.Now().Add(popJoinLimit)
	for _, n := range p.pop {
		for len(n.member.Members()) != size {
			if time.Now().After(deadline) {
				return fail(fmt.Errorf("%s sees %d members of the POP's %d after %v", n.name, len(n.member.Members()), size, popJoinLimit))
			}
			select {
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return p, nil
}

func (p *popNodes) stop() {
	nodes := p.pop
	if p.alone != nil {
		nodes = append(nodes, p.alone)
	}
	stopNodes(nodes)
}

// settle waits, for at most popSettleLimit, until no node of the POP has
// a fill in flight or an answer unfinished (a client may have its last
// byte before the node counts it), so that the counters read after hold
// every byte.
func (p *popNodes) settle(ctx context.Context) {
	deadline := time.Now().Add(popSettleLimit)
	for _, n := range p.pop {
		for (n.edge.InFlight() > 0 || n.edge.Active() > 0) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// popCounters are the POP's counters pop reads, summed over its nodes.
type popCounters struct {
	// responseBytes: sliceedge_response_bytes_total, body bytes sent from
	// the cache path, to clients and to peers alike.
	responseBytes int64
	// peerBytes: sliceedge_peer_bytes_total, body bytes read from peers:
	// each byte that crossed from one node to another, once.
	peerBytes int64
	// peerRequests, peerFailed: sliceedge_peer_requests_total, all
	// results, and result="failed" or "body_failed" (the fetch, or the
	// rest of its body, then went to the origin).
	peerRequests, peerFailed int64
	storeErrors              int64
}

// counters reads the POP's counters. The peer ones, created on first use
// and labelled by peer, are read from the nodes' /metrics text.
func (p *popNodes) counters() popCounters {
	var c popCounters
	for _, n := range p.pop {
		ec := n.edge.Counters()
		c.responseBytes += ec.ResponseBytes
		c.storeErrors += ec.StoreErrors
		var b strings.Builder
		n.edge.Metrics().WritePrometheus(&b)
		for line := range strings.Lines(b.String()) {
			series, value, ok := strings.Cut(strings.TrimSpace(line), " ")
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				continue
			}
			name, labels, _ := strings.Cut(series, "{")
			switch name {
			case "sliceedge_peer_bytes_total":
				c.peerBytes += int64(v)
			case "sliceedge_peer_requests_total":
				switch {
				case strings.Contains(labels, `result="body_failed"`):
					c.peerFailed += int64(v) // a request counted ok at its headers, whose body then failed
				case strings.Contains(labels, `result="failed"`):
					c.peerRequests += int64(v)
					c.peerFailed += int64(v)
				default:
					c.peerRequests += int64(v)
				}
			}
		}
	}
	return c
}

func (c popCounters) sub(d popCounters) popCounters {
	return popCounters{
		responseBytes: c.responseBytes - d.responseBytes,
		peerBytes:     c.peerBytes - d.peerBytes,
		peerRequests:  c.peerRequests - d.peerRequests,
		peerFailed:    c.peerFailed - d.peerFailed,
		storeErrors:   c.storeErrors - d.storeErrors,
	}
}

// popAsk is one request of pop's mix: an object, and a range of it or,
// with nil ranges, the whole of it.
type popAsk struct {
	object int
	ranges []slicer.Range
}

// popMix is pop's request stream over objects of size: request i is the
// same whichever node or worker sends it, so the stream sent to the POP
// can be sent again, the same, to the node standing alone.
type popMix struct {
	size int64
	mu   sync.Mutex // protects rng, zipf and asks
	rng  *rand.Rand
	zipf *rand.Zipf
	asks []popAsk // made so far, in order
}

func newPopMix(rng *rand.Rand, objects int, size int64) *popMix {
	return &popMix{size: size, rng: rng, zipf: rand.NewZipf(rng, mixedZipfS, 1, uint64(objects-1))}
}

// at is request i of the stream.
func (m *popMix) at(i int64) popAsk {
	m.mu.Lock()
	defer m.mu.Unlock()
	for int64(len(m.asks)) <= i {
		a := popAsk{object: int(m.zipf.Uint64())}
		if m.rng.Float64() >= popFull {
			a.ranges = []slicer.Range{randRange(m.rng, logLen(m.rng, popMinRange, popMaxRange), m.size)}
		}
		m.asks = append(m.asks, a)
	}
	return m.asks[i]
}

// uniqueBytes is the bytes of the slices the first n requests touch: what
// a cache that fetches each slice once for all its nodes asks the origin
// for.
func (m *popMix) uniqueBytes(n int64, sliceSize int64) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	touched := map[int]*intervals{}
	for _, a := range m.asks[:min(n, int64(len(m.asks)))] {
		spans := a.ranges
		if spans == nil {
			spans = []slicer.Range{{Start: 0, End: m.size}}
		}
		iv := touched[a.object]
		if iv == nil {
			iv = &intervals{}
			touched[a.object] = iv
		}
		for _, rg := range spans {
			first, last := slicer.SliceSpan(rg, sliceSize)
			iv.add(slicer.Run{First: first, Last: last}.Bytes(sliceSize, m.size))
		}
	}
	var total int64
	for _, iv := range touched {
		total += iv.bytes()
	}
	return total
}

// pop starts Nodes nodes as one POP, and one node alone, in front of the
// run's origin, then:
//   - sends a seeded stream over Objects cold objects (Zipf popularity,
//     ranges of 64 KiB-4 MiB, 20% full GETs) from Connections connections,
//     each request to the next node in turn, as a balancer would: the
//     measured phase. The origin should send each slice touched once for
//     the whole POP: origin bytes per unique byte 1.00. From the nodes'
//     metrics: the bytes they served their clients, and the bytes that
//     crossed from one node to another to serve them;
//   - sends the same requests (of other, cold objects) to the node alone:
//     the POP's MB/s against one node's, on this machine;
//   - sends cold ranges, one at a time, each of a fresh object, to the
//     node owning the range's group, then as many to a node that does not:
//     time to first byte through the owner and through another node.
func (r *runner) pop(ctx context.Context) (Result, error) {
	p, err := startPOP(ctx, r.env.origin.base, r.cfg.Nodes)
	if err != nil {
		return Result{}, err
	}
	defer p.stop()
	size, nodes := r.cfg.ObjectSize, len(p.pop)
	mix := newPopMix(r.rng("pop", 0), r.cfg.Objects, size)
	ask := func(paths []string, i int64, via string) request {
		a := mix.at(i)
		return request{path: paths[a.object], size: size, ranges: a.ranges, via: via, host: popHost}
	}

	popPaths := make([]string, r.cfg.Objects)
	alonePaths := make([]string, r.cfg.Objects)
	for i := range popPaths {
		popPaths[i] = r.path("pop", size, fmt.Sprint("pop-", i))
		alonePaths[i] = r.path("pop", size, fmt.Sprint("alone-", i))
	}
	before := p.counters()
	t, origin, err := r.originDelta(ctx, r.measured("pop", r.cfg.Connections, func(_ int, i int64) (request, error) {
		return ask(popPaths, i, p.pop[i%int64(nodes)].url), nil
	}))
	if err != nil {
		return Result{}, err
	}
	p.settle(ctx)
	c := p.counters().sub(before)
	res := t.result("pop", false)
	res.OriginRequests, res.OriginBytes = origin.Requests, origin.BodyBytes
	unique := mix.uniqueBytes(t.requests, p.sliceSize)
	res.Extra["nodes"] = float64(nodes)
	res.Extra["unique_bytes"] = float64(unique)
	if unique > 0 {
		res.Extra["origin_bytes_per_unique_byte"] = float64(origin.BodyBytes) / float64(unique)
	}
	// What the nodes sent their clients: all they sent, less what they
	// sent each other (which the receivers count).
	served := c.responseBytes - c.peerBytes
	res.Extra["served_bytes"] = float64(served)
	res.Extra["peer_bytes"] = float64(c.peerBytes)
	if served > 0 {
		res.Extra["peer_bytes_per_served_byte"] = float64(c.peerBytes) / float64(served)
	}
	res.Extra["peer_requests"] = float64(c.peerRequests)
	res.Extra["peer_requests_failed"] = float64(c.peerFailed)

	// The same requests, in the same order, to one node.
	at, aloneOrigin, err := r.originDelta(ctx, phase{
		name:        "pop: one node",
		conns:       r.cfg.Connections,
		maxRequests: t.requests,
		hard:        r.cfg.Duration + warmBound(t.object),
		bytes:       t.object,
		next: func(_ int, i int64) (request, error) {
			return ask(alonePaths, i, p.alone.url), nil
		},
	})
	if err != nil {
		return Result{}, err
	}
	alone := at.result("pop: one node", false)
	res.WrongBytes += at.wrong
	res.MixedBodies += at.mixed
	res.Extra["one_node_mb_per_second"] = alone.MBPerSec
	res.Extra["one_node_errors"] = float64(alone.Errors)
	if unique > 0 {
		res.Extra["one_node_origin_bytes_per_unique_byte"] = float64(aloneOrigin.BodyBytes) / float64(unique)
	}
	if alone.MBPerSec > 0 {
		res.Extra["mb_per_second_pop_over_one_node"] = res.MBPerSec / alone.MBPerSec
	}
	if res.FirstError == "" && alone.FirstError != "" {
		res.FirstError = "one node: " + alone.FirstError
	}

	if err := r.coldTTFB(ctx, p, &res); err != nil {
		return Result{}, err
	}
	if n := p.counters().storeErrors; n > 0 {
		res.Extra["node_store_errors"] = float64(n)
	}
	return res, nil
}

// coldTTFB sends popColdSamples cold ranges, one at a time, each of a
// fresh object and within one group, to the node owning the group, then
// as many to a node that does not own theirs, and puts the times to first
// byte of each into res. It checks that pop names owners as the nodes do:
// no request to an owner asks a peer, and every owner holds the object a
// request to another node asked for.
func (r *runner) coldTTFB(ctx context.Context, p *popNodes, res *Result) error {
	size, nodes := r.cfg.ObjectSize, len(p.pop)
	rng := r.rng("pop", 1)
	groupBytes := p.sliceSize * p.group
	index := map[string]int{}
	for i, n := range p.pop {
		index[n.name] = i
	}
	type sample struct {
		q     request
		owner *node
	}
	var ph [2][]sample // through the owner, through another node
	for kind := range ph {
		for j := range popColdSamples {
			q := request{path: r.path("pop", size, fmt.Sprintf("cold-%d-%d", kind, j)), size: size, host: popHost}
			start := rng.Int64N(size)
			end := min(start+randLen(rng, rangeMin, rangeMax), size, (start/groupBytes+1)*groupBytes)
			q.ranges = []slicer.Range{{Start: start, End: end}}
			name, _, _ := p.pop[0].member.Owner(popHost+q.path, start/groupBytes)
			owner := index[name]
			asked := owner
			if kind == 1 {
				asked = (owner + 1 + rng.IntN(nodes-1)) % nodes
			}
			q.via = p.pop[asked].url
			ph[kind] = append(ph[kind], sample{q: q, owner: p.pop[owner]})
		}
	}
	names := [2]string{"owner", "non_owner"}
	var p50 [2]time.Duration
	var errs int64
	for kind, samples := range ph {
		before := p.counters()
		t, err := r.drive(ctx, phase{
			name:        "pop: cold via " + strings.ReplaceAll(names[kind], "_", "-"),
			conns:       1,
			maxRequests: int64(len(samples)),
			hard:        warmBound(int64(len(samples)) * rangeMax),
			next:        func(_ int, i int64) (request, error) { return samples[i].q, nil },
		})
		if err != nil {
			return err
		}
		p.settle(ctx)
		res.WrongBytes += t.wrong
		res.MixedBodies += t.mixed
		errs += t.errors()
		if res.FirstError == "" && t.firstErr != nil {
			res.FirstError = "cold via " + names[kind] + ": " + t.firstErr.Error()
		}
		cr := t.result("", false)
		p50[kind] = cr.TTFBP50
		res.Extra["cold_ttfb_"+names[kind]+"_p50_ms"] = float64(cr.TTFBP50) / float64(time.Millisecond)
		switch crossed := p.counters().sub(before).peerRequests; {
		case kind == 0 && crossed > 0:
			return fmt.Errorf("%d requests to the owners of their groups asked %d peers: pop's owners are not the nodes' (cluster.Node.Owner of host and path)", len(samples), crossed)
		case kind == 1:
			for _, s := range samples {
				if _, err := s.owner.store.Meta(popHost + s.q.path); err != nil {
					return fmt.Errorf("after a request for %s through another node, its owner %s does not hold it (%w): pop's owners or cache keys are not the nodes'", s.q.path, s.owner.name, err)
				}
			}
		}
	}
	res.Extra["cold_errors"] = float64(errs)
	if p50[0] > 0 {
		res.Extra["cold_ttfb_non_owner_over_owner"] = float64(p50[1]) / float64(p50[0])
	}
	return nil
}
