package cluster_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/sliceedge/sliceedge/cluster"
	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

const (
	sliceSize   = 64 << 10
	groupSlices = 4
	secret      = "pop-test-secret-0123456789"
)

// popConfig is a node's config: small slices and groups, so that a few MiB
// spread over every node.
const popConfig = `
name: %[1]s
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: %[4]s}
store: {dir: unused, max_bytes: 1GiB}
origins:
  default: {url: %[2]s}
rules:
  - match: /ttl/
    origin: default
    slice_size: 64KiB
    max_run: 4
    override_ttl: 1s
  - match: /
    origin: default
    slice_size: 64KiB
    max_run: 4
cluster:
  node: %[1]s
  gossip: %[5]s
  peer: %[3]s
  secret: %[4]s
  group_slices: 4
`

// popNode is one node of a POP in this process: a store, an edge, its
// client listener, its peer listener and its membership.
type popNode struct {
	name   string
	edge   *edge.Server
	store  *segstore.Store
	client *http.Server
	peer   *http.Server
	url    string // the client listener
	dir    string // the store's
	node   *cluster.Node
	logs   *origintest.LogBuffer
}

// fastGossip shortens memberlist's timers so that a test sees joins and
// deaths in a second or two, but not so far that a node slowed by the race
// detector on two cores is taken for dead (views that differ make two
// owners fetch one group, which the 1.00x checks would catch).
func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 250 * time.Millisecond
	c.ProbeTimeout = 200 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = time.Second
	c.SuspicionMult = 4
	c.TCPTimeout = time.Second
}

// startNode starts a node of the POP in front of originURL, joining join.
func startNode(t *testing.T, name, originURL string, join ...string) *popNode {
	t.Helper()
	return startNodeAt(t, name, originURL, "127.0.0.1:0", t.TempDir(), join...)
}

// startNodeAt starts a node with its gossip on gossip and its store in dir.
func startNodeAt(t *testing.T, name, originURL, gossip, dir string, join ...string) *popNode {
	t.Helper()
	peerLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clientLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(name+".yaml", []byte(fmt.Sprintf(popConfig, name, originURL, peerLn.Addr(), secret, gossip)))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.Cluster.Join = join
	st, err := segstore.Open(segstore.Options{Dir: dir, MaxBytes: cfg.Store.MaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	n := &popNode{name: name, store: st, dir: dir, logs: &origintest.LogBuffer{}}
	n.edge = &edge.Server{Config: cfg, Store: st, Log: zerolog.New(n.logs)}
	n.node, err = cluster.Start(cfg.Cluster, cluster.Options{Log: zerolog.New(n.logs), Metrics: n.edge.Metrics(),
		Apply: func(o edge.PurgeOrder) { n.edge.Purge(o) }, Tune: fastGossip})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	n.edge.Peers = n.node
	n.client = &http.Server{Handler: n.edge}
	n.peer = &http.Server{Handler: n.edge.PeerHandler()}
	go n.client.Serve(clientLn)
	go n.peer.Serve(peerLn)
	n.url = "http://" + clientLn.Addr().String()
	t.Cleanup(func() { n.stop(t, true) })
	return n
}

// stop ends the node: gracefully (it leaves the POP), or as a crash would
// (its listeners close and its gossip stops without a word).
func (n *popNode) stop(t *testing.T, leave bool) {
	if n.store == nil {
		return
	}
	if leave {
		n.node.Leave(time.Second)
	} else {
		n.node.Shutdown()
	}
	n.client.Close()
	n.peer.Close()
	n.store.Close()
	n.store = nil
}

// startPOP starts size nodes that join the first, and waits until each
// sees all.
func startPOP(t *testing.T, size int, originURL string) []*popNode {
	t.Helper()
	nodes := []*popNode{startNode(t, "node-0", originURL)}
	for i := 1; i < size; i++ {
		nodes = append(nodes, startNode(t, fmt.Sprintf("node-%d", i), originURL, nodes[0].node.GossipAddr()))
	}
	for _, n := range nodes {
		origintest.WaitFor(t, n.name+" to see every member", func() bool { return len(n.node.Members()) == size })
	}
	return nodes
}

// get sends a GET to url with header lines hdr, and returns the answer and
// its body.
func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "pop.test" // as behind a balancer: one name, whichever node answers
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// ask is one client request of a workload: an object and a range of it
// (end -1: a full GET).
type ask struct {
	node       int
	path       string
	start, end int64
	size       int64 // the object's
}

// workload is a seeded mix of ranges and full GETs of objects, sent to
// random nodes, and the slices it touches.
func workload(seed uint64, n, nodes int, objects map[string]int64) ([]ask, map[string]bool) {
	rng := rand.New(rand.NewPCG(seed, 1))
	paths := make([]string, 0, len(objects))
	for p := range objects {
		paths = append(paths, p)
	}
	slicesTouched := map[string]bool{}
	var asks []ask
	for range n {
		p := paths[rng.IntN(len(paths))]
		size := objects[p]
		a := ask{node: rng.IntN(nodes), path: p, start: 0, end: -1, size: size}
		if rng.IntN(5) != 0 {
			a.start = rng.Int64N(size)
			a.end = min(a.start+rng.Int64N(3*sliceSize), size-1)
		}
		last := a.end
		if last < 0 {
			last = size - 1
		}
		for i := a.start / sliceSize; i <= last/sliceSize; i++ {
			slicesTouched[fmt.Sprintf("%s#%d", p, i)] = true
		}
		asks = append(asks, a)
	}
	return asks, slicesTouched
}

// uniqueBytes is the bytes of the slices touched.
func uniqueBytes(touched map[string]bool, objects map[string]int64) int64 {
	var total int64
	for k := range touched {
		p, idx, _ := strings.Cut(k, "#")
		var i int64
		fmt.Sscan(idx, &i)
		total += min(sliceSize, objects[p]-i*sliceSize)
	}
	return total
}

// run sends asks with workers at once, verifying every body byte.
func run(t *testing.T, nodes []*popNode, asks []ask, workers int) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(workers)
	for _, a := range asks {
		g.Go(func() error {
			var hdr []string
			if a.end >= 0 {
				hdr = []string{fmt.Sprintf("Range: bytes=%d-%d", a.start, a.end)}
			}
			resp, body, err := get(t, nodes[a.node].url+a.path, hdr...)
			if err != nil {
				return fmt.Errorf("%s %v via %s: %w", a.path, hdr, nodes[a.node].name, err)
			}
			want := 200
			if a.end >= 0 {
				want = 206
			}
			if resp.StatusCode != want {
				return fmt.Errorf("%s %v via %s: status %d, want %d", a.path, hdr, nodes[a.node].name, resp.StatusCode, want)
			}
			if bad, ok := origintest.Verify(body, a.path, 1, a.start); !ok {
				return fmt.Errorf("%s %v via %s: wrong byte at offset %d", a.path, hdr, nodes[a.node].name, a.start+bad)
			}
			if a.end >= 0 && int64(len(body)) != a.end-a.start+1 {
				return fmt.Errorf("%s %v via %s: %d bytes, want %d", a.path, hdr, nodes[a.node].name, len(body), a.end-a.start+1)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// settle waits until no node has a fill in flight.
func settle(t *testing.T, nodes []*popNode) {
	t.Helper()
	for _, n := range nodes {
		if n.store != nil {
			origintest.WaitFor(t, n.name+"'s fills to finish", func() bool { return n.edge.InFlight() == 0 })
		}
	}
}

// TestPOPCollapsing: a seeded mix of ranges and full GETs sent to random
// nodes of 3- and 5-node POPs. Every byte is right, and the origin sends
// each slice touched once for the whole POP: its body bytes are 1.00x the
// unique slices' bytes.
func TestPOPCollapsing(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			org := origintest.NewTest(t)
			objects := map[string]int64{"/pop/a.bin": 3<<20 + 1234, "/pop/b.bin": 2 << 20, "/pop/c.bin": 700 << 10}
			for p, n := range objects {
				org.Add(p, n)
			}
			nodes := startPOP(t, size, org.URL())
			asks, touched := workload(uint64(size), 120, size, objects)
			run(t, nodes, asks, 8)
			settle(t, nodes)
			want := uniqueBytes(touched, objects)
			if got := org.BodyBytes(); got != want {
				// Two fetches of one slice are right only when the POP
				// changed under the load (a node slowed past its probe
				// timeout and was suspected: its groups moved), or a store
				// refused a slice (it is fetched again when next asked).
				why := unsettled(nodes)
				logTwice(t, org)
				if why == "" {
					t.Errorf("origin sent %d bytes for %d bytes of unique slices touched (%.3fx); want 1.00x", got, want, float64(got)/float64(want))
				} else {
					t.Logf("origin sent %.3fx the unique slices' bytes, because %s", float64(got)/float64(want), why)
				}
			}
			noPeerFailures(t, nodes)
			// The nodes' origin request counters count what reached the
			// origin, not what went to a peer.
			var counted int64
			for _, n := range nodes {
				counted += n.edge.Counters().OriginRequests
			}
			if counted != org.Requests() {
				t.Errorf("the nodes count %d origin requests; the origin saw %d", counted, org.Requests())
			}
			var crossed int
			for _, n := range nodes {
				crossed += strings.Count(metricsText(n.edge), "sliceedge_peer_requests_total")
			}
			if crossed == 0 {
				t.Error("no node asked a peer: the POP did not share its slices")
			}
		})
	}
}

// metricsText is the node's /metrics text.
func metricsText(s *edge.Server) string {
	var b strings.Builder
	s.Metrics().WritePrometheus(&b)
	return b.String()
}

// purge purges url through n's admin API, as an operator would.
func (n *popNode) purge(t *testing.T, url string) {
	t.Helper()
	n.purgeQuery(t, "url="+url)
}

// purgeQuery posts a purge of the query (url=, prefix=, glob=, tag=) to
// the node's admin API.
func (n *popNode) purgeQuery(t *testing.T, query string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/purge?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	rec := httptest.NewRecorder()
	n.edge.AdminHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("purge via %s: status %d: %s", n.name, rec.Code, rec.Body)
	}
}

// TestPOPPurge: a purge made on one node purges every node, including one
// that was down when it was made: that one learns it when it rejoins,
// before it serves anything, so nothing purged comes back.
func TestPOPPurge(t *testing.T) {
	org := origintest.NewTest(t)
	const path = "/pop/purged.bin"
	org.Add(path, 1<<20)
	nodes := startPOP(t, 3, org.URL())
	for _, n := range nodes {
		_, body, err := get(t, n.url+path)
		if err != nil {
			t.Fatal(err)
		}
		if bad, ok := origintest.Verify(body, path, 1, 0); !ok || len(body) != 1<<20 {
			t.Fatalf("via %s: %d bytes, wrong at %d", n.name, len(body), bad)
		}
	}
	settle(t, nodes)
	for _, n := range nodes {
		if st := n.store.Stats(); st.Objects != 1 {
			t.Fatalf("%s holds %d objects before the purge, want 1 (every node keeps what it served)", n.name, st.Objects)
		}
	}
	// node-2 goes down as a crash would; the purge is made on node-0.
	down := nodes[2]
	gossip, dir := down.node.GossipAddr(), down.dir
	down.stop(t, false)
	origintest.WaitFor(t, "node-0 to see node-2 gone", func() bool { return len(nodes[0].node.Members()) == 2 })
	nodes[0].purge(t, "http://pop.test"+path)
	for _, n := range nodes[:2] {
		origintest.WaitFor(t, n.name+" to apply the purge", func() bool { return n.store.Stats().Objects == 0 })
	}
	// node-2 comes back on its old store and address: before it serves,
	// the purge it missed is applied.
	back := startNodeAt(t, "node-2", org.URL(), gossip, dir, nodes[0].node.GossipAddr())
	if st := back.store.Stats(); st.Objects != 0 {
		t.Errorf("node-2 rejoined holding %d objects; the purge made while it was down did not reach it", st.Objects)
	}
	before := org.Requests()
	resp, _, err := get(t, back.url+path)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Cache") == "HIT" || org.Requests() == before {
		t.Errorf("after the purge node-2 answered X-Cache %q with %d origin requests; want a miss", resp.Header.Get("X-Cache"), org.Requests()-before)
	}
}

// TestPOPPurgeByGlob: a purge by glob made on one node reaches every
// node, and each removes what matches and nothing else.
func TestPOPPurgeByGlob(t *testing.T) {
	org := origintest.NewTest(t)
	paths := []string{"/pop/g/a.bin", "/pop/g/b.bin", "/pop/h/c.bin"}
	for _, p := range paths {
		org.Add(p, 256<<10)
	}
	nodes := startPOP(t, 3, org.URL())
	for _, n := range nodes {
		for _, p := range paths {
			if _, body, err := get(t, n.url+p); err != nil || len(body) != 256<<10 {
				t.Fatalf("via %s: %s: %d bytes, %v", n.name, p, len(body), err)
			}
		}
	}
	settle(t, nodes)
	for _, n := range nodes {
		if st := n.store.Stats(); st.Objects != 3 {
			t.Fatalf("%s holds %d objects before the purge, want 3", n.name, st.Objects)
		}
	}
	nodes[0].purgeQuery(t, "glob="+url.QueryEscape("http://pop.test/pop/g/*.bin"))
	for _, n := range nodes {
		origintest.WaitFor(t, n.name+" to apply the purge", func() bool { return n.store.Stats().Objects == 1 })
	}
	for _, n := range nodes {
		resp, _, err := get(t, n.url+"/pop/h/c.bin")
		if err != nil || resp.Header.Get("X-Cache") != "HIT" {
			t.Errorf("via %s: the object the glob does not match: X-Cache %q, %v", n.name, resp.Header.Get("X-Cache"), err)
		}
	}
}

// TestPOPNodeCrash: a node dies, as kill -9 would leave it (its gossip
// stops without a word, its connections close mid-answer), while the other
// nodes are serving ranges whose groups it owns. No answer has a wrong
// byte; an answer is whole or cut, and once gossip has found the node dead
// the load succeeds whole again, from the new owners.
func TestPOPNodeCrash(t *testing.T) {
	org := origintest.NewTest(t)
	objects := map[string]int64{"/pop/k1.bin": 4 << 20, "/pop/k2.bin": 4 << 20}
	for p, n := range objects {
		org.Add(p, n)
	}
	nodes := startPOP(t, 3, org.URL())
	// Slow origin bytes, so that transfers are in flight at the crash.
	org.SetMode(origintest.Mode{Bandwidth: 8 << 20})
	asks, _ := workload(7, 60, 2, objects) // clients ask node-0 and node-1; the balancer has node-2 too, but its clients just lose their connections
	var cuts, whole atomic.Int64
	var g errgroup.Group
	g.SetLimit(8)
	for k, a := range asks {
		if k == 20 {
			nodes[2].stop(t, false)
		}
		g.Go(func() error {
			err := verifyAsk(t, nodes, a)
			switch {
			case errors.Is(err, errCut):
				cuts.Add(1)
				return nil
			case err == nil:
				whole.Add(1)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	failed := peerFailures(nodes[:2])
	t.Logf("around the crash: %d answers whole, %d cut (their bytes before the cut were right); %d peer fetches failed and went to the origin", whole.Load(), cuts.Load(), failed)
	origintest.WaitFor(t, "the others to find node-2 dead", func() bool {
		return len(nodes[0].node.Members()) == 2 && len(nodes[1].node.Members()) == 2
	})
	org.SetMode(origintest.Mode{})
	asks, _ = workload(8, 40, 2, objects)
	for _, a := range asks {
		if err := verifyAsk(t, nodes, a); err != nil {
			t.Fatalf("after node-2 was found dead: %v", err)
		}
	}
}

var errCut = errors.New("answer cut")

// verifyAsk sends a and checks its answer: status, length and every byte.
// An answer that ends early returns errCut once the bytes it had were
// found right.
func verifyAsk(t *testing.T, nodes []*popNode, a ask) error {
	var hdr []string
	want, wantLen := 200, a.size
	if a.end >= 0 {
		hdr = []string{fmt.Sprintf("Range: bytes=%d-%d", a.start, a.end)}
		want, wantLen = 206, a.end-a.start+1
	}
	what := fmt.Sprintf("%s %v via %s", a.path, hdr, nodes[a.node].name)
	resp, body, err := get(t, nodes[a.node].url+a.path, hdr...)
	if resp == nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s: status %d, want %d", what, resp.StatusCode, want)
	}
	if bad, ok := origintest.Verify(body, a.path, 1, a.start); !ok {
		return fmt.Errorf("%s: wrong byte at offset %d", what, a.start+bad)
	}
	if err != nil || int64(len(body)) != wantLen {
		return fmt.Errorf("%s: %d of %d bytes (%v): %w", what, len(body), wantLen, err, errCut)
	}
	return nil
}

// TestPOPRejoin: a node that leaves and comes back on its store takes its
// groups back, and what it holds is not fetched again: after it rejoins,
// a download through another node costs the origin nothing.
func TestPOPRejoin(t *testing.T) {
	org := origintest.NewTest(t)
	objects := map[string]int64{"/pop/r1.bin": 3 << 20, "/pop/r2.bin": 3 << 20}
	for p, n := range objects {
		org.Add(p, n)
	}
	nodes := startPOP(t, 3, org.URL())
	for p := range objects {
		if err := verifyAsk(t, nodes, ask{node: 0, path: p, end: -1, size: objects[p]}); err != nil {
			t.Fatal(err)
		}
	}
	settle(t, nodes)
	warm := org.BodyBytes()
	if warm != 6<<20 {
		t.Fatalf("warming sent %d bytes from the origin, want %d", warm, 6<<20)
	}
	gone := nodes[2]
	gossip, dir := gone.node.GossipAddr(), gone.dir
	gone.stop(t, true)
	origintest.WaitFor(t, "node-1 to see node-2 leave", func() bool { return len(nodes[1].node.Members()) == 2 })
	// While it is away its groups have other owners; node-0 holds every
	// slice (it served them), so the origin is not asked.
	if err := verifyAsk(t, nodes, ask{node: 1, path: "/pop/r1.bin", end: -1, size: 3 << 20}); err != nil {
		t.Fatal(err)
	}
	settle(t, nodes[:2])
	// The groups node-2 owned have new owners, which fetch what they lack
	// from the origin (a copy node-0 keeps is not looked for).
	t.Logf("with node-2 away, a download through node-1 cost the origin %d bytes of %d", org.BodyBytes()-warm, 3<<20)
	warm = org.BodyBytes()
	back := startNodeAt(t, "node-2", org.URL(), gossip, dir, nodes[0].node.GossipAddr())
	nodes[2] = back
	for _, n := range nodes {
		origintest.WaitFor(t, n.name+" to see node-2 back", func() bool { return len(n.node.Members()) == 3 })
	}
	if err := verifyAsk(t, nodes, ask{node: 1, path: "/pop/r2.bin", end: -1, size: 3 << 20}); err != nil {
		t.Fatal(err)
	}
	settle(t, nodes)
	if got := org.BodyBytes() - warm; got != 0 {
		t.Errorf("after node-2 rejoined, a download through node-1 cost the origin %d bytes; want 0 (node-2 still holds its groups)", got)

	}
	if !strings.Contains(metricsText(nodes[1].edge), `sliceedge_peer_bytes_total{peer="node-2"}`) {
		t.Error("node-1 asked node-2 for nothing after it rejoined: it did not take its groups back")
	}
}

// shieldConfig is a plain node (no cluster) used as the POP's origin: a
// shield tier.
const shieldConfig = `
name: shield
listen: 127.0.0.1:0
store: {dir: unused, max_bytes: 1GiB}
origins:
  default: {url: %s}
rules:
  - match: /
    origin: default
    slice_size: 64KiB
    max_run: 4
`

// TestPOPShield: three edges of a POP in front of one shield sliceedge in
// front of the origin. Range, If-Match and Content-Range pass through both
// tiers, every byte is right, the origin sends each slice once (1.00x the
// unique slices touched), a cold deep seek costs it one slice, and the
// Cache-Status entries chain, the shield's before the edge's (RFC 9211).
func TestPOPShield(t *testing.T) {
	org := origintest.NewTest(t)
	objects := map[string]int64{"/pop/s1.bin": 3<<20 + 77, "/pop/s2.bin": 1 << 20, "/pop/deep.bin": 64 << 20}
	for p, n := range objects {
		org.Add(p, n)
	}
	cfg, err := config.Parse("shield.yaml", []byte(fmt.Sprintf(shieldConfig, org.URL())))
	if err != nil {
		t.Fatal(err)
	}
	st, err := segstore.Open(segstore.Options{Dir: t.TempDir(), MaxBytes: cfg.Store.MaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	shield := &edge.Server{Config: cfg, Store: st, Log: zerolog.Nop()}
	front := httptest.NewServer(shield)
	t.Cleanup(front.Close)
	nodes := startPOP(t, 3, front.URL)

	// A cold deep seek through both tiers: one slice from the origin.
	resp, body, err := get(t, nodes[1].url+"/pop/deep.bin", "Range: bytes=50000000-50000099")
	if err != nil || resp.StatusCode != 206 {
		t.Fatalf("deep seek: %v %v", resp, err)
	}
	if bad, ok := origintest.Verify(body, "/pop/deep.bin", 1, 50000000); !ok || len(body) != 100 {
		t.Fatalf("deep seek: %d bytes, wrong at %d", len(body), bad)
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 50000000-50000099/%d", 64<<20) {
		t.Errorf("deep seek: Content-Range %q", cr)
	}
	cs := resp.Header.Get("Cache-Status")
	if !strings.HasPrefix(cs, "shield; ") || !strings.Contains(cs, ", node-") {
		t.Errorf("deep seek: Cache-Status %q, want the shield's entry, then the POP node's", cs)
	}
	settle(t, nodes)
	if got := org.BodyBytes(); got != sliceSize {
		t.Errorf("a cold deep seek through both tiers cost the origin %d bytes, want one slice (%d)", got, sliceSize)
	}
	// If-Match with the object's validator through both tiers: 206; with
	// another: 412.
	etag := resp.Header.Get("ETag")
	if r, _, _ := get(t, nodes[2].url+"/pop/deep.bin", "Range: bytes=0-9", "If-Match: "+etag); r == nil || r.StatusCode != 206 {
		t.Errorf("If-Match with the ETag through both tiers: %v", r)
	}
	if r, _, _ := get(t, nodes[2].url+"/pop/deep.bin", "Range: bytes=0-9", `If-Match: "other"`); r == nil || r.StatusCode != 412 {
		t.Errorf("If-Match with another ETag through both tiers: %v, want 412", r)
	}
	settle(t, nodes)
	org.ResetCounters()

	small := map[string]int64{"/pop/s1.bin": objects["/pop/s1.bin"], "/pop/s2.bin": objects["/pop/s2.bin"]}
	asks, touched := workload(11, 80, 3, small)
	run(t, nodes, asks, 8)
	settle(t, nodes)
	noPeerFailures(t, nodes)
	origintest.WaitFor(t, "the shield's fills to finish", func() bool { return shield.InFlight() == 0 })
	if got, want := org.BodyBytes(), uniqueBytes(touched, small); got != want {
		t.Errorf("through the shield the origin sent %d bytes for %d bytes of unique slices (%.3fx); want 1.00x", got, want, float64(got)/float64(want))
	}
}

// peerFailures counts the peer fetches of nodes that failed (and went to
// the origin instead).
func peerFailures(nodes []*popNode) int {
	failed := 0
	for _, n := range nodes {
		for _, l := range strings.Split(metricsText(n.edge), "\n") {
			if strings.HasPrefix(l, "sliceedge_peer_requests_total") && strings.Contains(l, `result="failed"`) {
				var v int
				fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v)
				failed += v
			}
		}
	}
	return failed
}

// noPeerFailures fails t when a peer fetch failed while every node was up:
// a node that did not answer another in time (two nodes waiting on each
// other's lookups did, until the read timeout).
func noPeerFailures(t *testing.T, nodes []*popNode) {
	t.Helper()
	if n := peerFailures(nodes); n > 0 {
		for _, nd := range nodes {
			for _, l := range strings.Split(nd.logs.String(), "\n") {
				if strings.Contains(l, "did not answer") {
					t.Logf("%s: %s", nd.name, l)
				}
			}
		}
		t.Errorf("%d peer fetches failed with every node up", n)
	}
}

// TestPOPInspectOwners: inspect on a node names the owner of every slice
// group, and after a cold download through that node each group's slices
// are in the store of the node named.
func TestPOPInspectOwners(t *testing.T) {
	org := origintest.NewTest(t)
	const path = "/pop/owned.bin"
	const size = 2<<20 + 5
	org.Add(path, size)
	nodes := startPOP(t, 3, org.URL())
	if err := verifyAsk(t, nodes, ask{node: 0, path: path, end: -1, size: size}); err != nil {
		t.Fatal(err)
	}
	settle(t, nodes)
	req := httptest.NewRequest(http.MethodGet, "/inspect?url=http://pop.test"+path, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	rec := httptest.NewRecorder()
	nodes[0].edge.AdminHandler().ServeHTTP(rec, req)
	var in edge.Inspection
	if err := json.Unmarshal(rec.Body.Bytes(), &in); err != nil || rec.Code != 200 {
		t.Fatalf("inspect: %d %s", rec.Code, rec.Body)
	}
	byName := map[string]*popNode{}
	for _, n := range nodes {
		byName[n.name] = n
	}
	next := int64(0)
	for _, o := range in.Owners {
		if o.First != next || o.Last < o.First {
			t.Fatalf("owners %+v: not consecutive runs from slice 0", in.Owners)
		}
		next = o.Last + 1
		n := byName[o.Node]
		if n == nil {
			t.Fatalf("owner %q is not a member", o.Node)
		}
		if o.Self != (n == nodes[0]) {
			t.Errorf("owner %+v: self is wrong", o)
		}
		m, err := n.store.Meta(in.Key)
		if err != nil {
			t.Fatalf("%s holds no meta of %s: %v", n.name, in.Key, err)
		}
		for i := o.First; i <= o.Last; i++ {
			if !n.store.Has(m, i) {
				t.Errorf("inspect names %s the owner of slice %d, which its store lacks", n.name, i)
			}
		}
	}
	if next != in.Slices {
		t.Errorf("owners cover slices 0-%d of %d", next-1, in.Slices)
	}
	// The access log line of the download says what came from the origin
	// (the groups node-0 owns) and what from its peers.
	var own int64
	for _, o := range in.Owners {
		if o.Self {
			own += min((o.Last+1)*sliceSize, size) - o.First*sliceSize
		}
	}
	var line map[string]any
	origintest.WaitFor(t, "the download's access log line", func() bool { // written once the answer has ended
		for _, rec := range nodes[0].logs.Lines(t) {
			if rec["message"] == "request" && rec["path"] == path {
				line = rec
			}
		}
		return line != nil
	})
	originBytes, _ := line["origin_bytes"].(float64)
	peerBytes, _ := line["peer_bytes"].(float64)
	if int64(originBytes) != own || int64(originBytes+peerBytes) != size {
		t.Errorf("access log: origin_bytes %v, peer_bytes %v; want %d from the origin (node-0's groups) and %d in all", originBytes, peerBytes, own, size)
	}
}

// TestPOPRevalidatesOnce: when an object every node holds goes stale, the
// POP revalidates it with the origin once: each node asks the owner of
// the object's meta (its group -1), which answers 304 from its own
// revalidation.
func TestPOPRevalidatesOnce(t *testing.T) {
	org := origintest.NewTest(t)
	const path = "/ttl/fresh.bin" // override_ttl: 1s
	const size = 1 << 20
	org.Add(path, size)
	nodes := startPOP(t, 3, org.URL())
	for i := range nodes {
		if err := verifyAsk(t, nodes, ask{node: i, path: path, end: -1, size: size}); err != nil {
			t.Fatal(err)
		}
	}
	settle(t, nodes)
	time.Sleep(1100 * time.Millisecond)
	org.ResetCounters()
	// One range in a group of each owner, each through another node:
	// asked through their groups' owners, the revalidations would reach
	// the origin once per owner.
	const key = "pop.test" + path
	if _, err := nodes[0].store.Meta(key); err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	group := map[string]int64{}
	for g := int64(0); g < size/(groupSlices*sliceSize); g++ {
		name, _, _ := nodes[0].node.Owner(key, g)
		if _, ok := group[name]; !ok {
			group[name] = g
		}
	}
	if len(group) < 2 {
		t.Fatalf("the object's groups have %d owners; want several", len(group))
	}
	i := 0
	for _, g := range group {
		start := g * groupSlices * sliceSize
		a := ask{node: i % len(nodes), path: path, start: start, end: start + 999, size: size}
		i++
		if err := verifyAsk(t, nodes, a); err != nil {
			t.Fatal(err)
		}
	}
	settle(t, nodes)
	conditional := 0
	for _, r := range org.LastRequests() {
		if r.IfNoneMatch != "" {
			conditional++
		}
	}
	if conditional != 1 || org.BodyBytes() != 0 {
		t.Errorf("the stale object cost the origin %d conditional requests and %d body bytes; want one revalidation for the POP and no bytes", conditional, org.BodyBytes())
	}
}

// logTwice logs the origin requests (of the last 256) that asked for a
// slice an earlier one had asked for: what a failed 1.00x check fetched
// twice.
func logTwice(t *testing.T, org *origintest.Server) {
	t.Helper()
	seen := map[string]string{}
	for _, r := range org.LastRequests() {
		var a, b int64
		if _, err := fmt.Sscanf(r.Range, "bytes=%d-%d", &a, &b); err != nil {
			t.Logf("%s %q (If-Match %s) via %s", r.Path, r.Range, r.IfMatch, r.Header.Get("Via"))
			continue
		}
		for i := a / sliceSize; i <= b/sliceSize; i++ {
			k := fmt.Sprintf("%s#%d", r.Path, i)
			if prev, ok := seen[k]; ok {
				t.Logf("slice %s asked twice: %s, then %s %s (If-Match %s) via %s", k, prev, r.Path, r.Range, r.IfMatch, r.Header.Get("Via"))
			}
			seen[k] = fmt.Sprintf("%s (If-Match %s) via %s", r.Range, r.IfMatch, r.Header.Get("Via"))
		}
	}
}

// TestPOPClasses: objects of each consistency class (segstore.Class) come
// through the POP whole and right: a strong ETag, Last-Modified alone,
// and no validator, for which no fill but the first answer can be proved
// to be the version (a POP node then fetches it alone, from the origin,
// as it does an object from an origin that ignores Range).
func TestPOPClasses(t *testing.T) {
	for _, mode := range []struct {
		name string
		m    origintest.Mode
	}{
		{"strong-etag", origintest.Mode{}},
		{"last-modified", origintest.Mode{WeakETag: true}},
		{"none", origintest.Mode{NoValidator: true}},
		{"origin without range support", origintest.Mode{NoRange: true}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			org := origintest.NewTest(t)
			objects := map[string]int64{"/pop/c1.bin": 2<<20 + 3, "/pop/c2.bin": 1 << 20}
			for p, n := range objects {
				org.Add(p, n)
			}
			org.SetMode(mode.m)
			nodes := startPOP(t, 3, org.URL())
			asks, _ := workload(21, 40, 3, objects)
			for _, a := range asks {
				if err := verifyAsk(t, nodes, a); err != nil {
					t.Fatal(err)
				}
			}
			settle(t, nodes)
			noPeerFailures(t, nodes)
		})
	}
}

// TestPOPFlapping: an origin that replaces its object every few requests,
// with max-age=0 so that every request can meet a new version, behind a
// POP, for each consistency class. Nodes hold different versions at once;
// still no answer mixes two versions (a version's identity across nodes
// is its validator and size): each is whole and of one version, a 502
// that says the origin changed, or cut after bytes of one version.
func TestPOPFlapping(t *testing.T) {
	maxAge0 := "max-age=0"
	for _, mode := range []struct {
		name string
		m    origintest.Mode
	}{
		{"strong-etag", origintest.Mode{FlapEvery: 3, CacheControl: &maxAge0}},
		{"last-modified", origintest.Mode{FlapEvery: 3, WeakETag: true, CacheControl: &maxAge0}},
		{"none", origintest.Mode{FlapEvery: 3, NoValidator: true, CacheControl: &maxAge0}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			org := origintest.NewTest(t)
			const path, size = "/pop/flap.bin", 3 << 20
			org.Add(path, size)
			org.SetMode(mode.m)
			nodes := startPOP(t, 3, org.URL())
			asks, _ := workload(31, 60, 3, map[string]int64{path: size})
			var whole, cut, changed atomic.Int64
			var g errgroup.Group
			g.SetLimit(6)
			for _, a := range asks {
				g.Go(func() error {
					var hdr []string
					if a.end >= 0 {
						hdr = []string{fmt.Sprintf("Range: bytes=%d-%d", a.start, a.end)}
					}
					resp, body, err := get(t, nodes[a.node].url+a.path, hdr...)
					if resp == nil {
						return fmt.Errorf("%v via %s: %w", hdr, nodes[a.node].name, err)
					}
					if resp.StatusCode == http.StatusBadGateway && strings.Contains(string(body), "the origin changed the object") {
						changed.Add(1)
						return nil
					}
					if resp.StatusCode != 200 && resp.StatusCode != 206 {
						return fmt.Errorf("%v via %s: status %d: %s", hdr, nodes[a.node].name, resp.StatusCode, body)
					}
					_, version, _ := org.Object(path)
					if vs := origintest.WhichVersion(body, path, a.start, version+1); len(vs) > 1 || len(vs) == 1 && vs[0] < 0 {
						return fmt.Errorf("%v via %s: a body of %d bytes holds versions %v", hdr, nodes[a.node].name, len(body), vs)
					}
					want := int64(size)
					if a.end >= 0 {
						want = a.end - a.start + 1
					}
					if err != nil || int64(len(body)) != want {
						cut.Add(1)
						return nil
					}
					whole.Add(1)
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d answers whole, %d cut, %d 502 (the origin changed): 0 mixed", whole.Load(), cut.Load(), changed.Load())
			if whole.Load() == 0 {
				t.Error("no answer was whole")
			}
		})
	}
}

// skewed is a node's view of the POP that disagrees with the others':
// it ranks the members for a group by another hash. Memberlist's views
// differ like this for a while when a node joins or dies.
type skewed struct {
	*cluster.Node
	salt string
}

func (s skewed) Owner(key string, group int64) (string, string, bool) {
	return s.Node.Owner(key+s.salt, group)
}

// TestPOPViewsDiffer: every node believes a different node owns each
// group. Answers stay right, and no node waits on another in a loop
// (each asked node serves a peer from its store or the origin, never from
// a third node): every peer fetch succeeds.
func TestPOPViewsDiffer(t *testing.T) {
	org := origintest.NewTest(t)
	objects := map[string]int64{"/pop/v1.bin": 3<<20 + 5, "/pop/v2.bin": 2 << 20}
	for p, n := range objects {
		org.Add(p, n)
	}
	nodes := startPOP(t, 3, org.URL())
	for i, n := range nodes {
		n.edge.Peers = skewed{Node: n.node, salt: fmt.Sprint(i)}
	}
	asks, touched := workload(41, 100, 3, objects)
	run(t, nodes, asks, 8)
	settle(t, nodes)
	noPeerFailures(t, nodes)
	unique := uniqueBytes(touched, objects)
	t.Logf("with views that disagree the origin sent %.2fx the unique slices", float64(org.BodyBytes())/float64(unique))
	if org.BodyBytes() > 3*unique {
		t.Errorf("origin sent %d bytes for %d unique: more than once per node", org.BodyBytes(), unique)
	}
}

// TestPOPSecret: a node with another secret cannot join (the gossip is
// encrypted with a key derived from the secret), and the peer listener
// refuses a request without the token: 403, counted, nothing served.
func TestPOPSecret(t *testing.T) {
	org := origintest.NewTest(t)
	org.Add("/pop/secret.bin", 1<<20)
	nodes := startPOP(t, 2, org.URL())

	cfg := &config.Cluster{Node: "intruder", Gossip: "127.0.0.1:0", Peer: "127.0.0.1:1", Secret: "another-secret-0123456789",
		GroupSlices: groupSlices, Join: []string{nodes[0].node.GossipAddr()}}
	intruder, err := cluster.Start(cfg, cluster.Options{Log: zerolog.Nop(), Tune: fastGossip})
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Shutdown()
	time.Sleep(time.Second)
	if n := len(nodes[0].node.Members()); n != 2 {
		t.Errorf("with a node of another secret trying to join, node-0 sees %d members, want 2", n)
	}
	if n := len(intruder.Members()); n != 1 {
		t.Errorf("the node with another secret sees %d members, want itself alone", n)
	}

	for _, token := range []string{"", "wrong", intruder.Token()} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+nodes[0].edge.Config.Cluster.Peer+"/pop/secret.bin", nil)
		req.Host = "pop.test"
		if token != "" {
			req.Header.Set(edge.PeerTokenHeader, token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("peer listener with token %q: status %d, want 403", token, resp.StatusCode)
		}
	}
	if org.Requests() != 0 {
		t.Errorf("refused peer requests cost the origin %d requests", org.Requests())
	}
	if !strings.Contains(metricsText(nodes[0].edge), "sliceedge_peer_refused_total 3") {
		t.Error("the refused peer requests are not counted in sliceedge_peer_refused_total")
	}
}

// liarView sends every fetch of a node to one peer, the liar.
type liarView struct {
	*cluster.Node
	addr string
}

func (l liarView) Owner(string, int64) (string, string, bool) { return "liar", l.addr, false }

// TestPOPLyingPeer: a peer is checked as strictly as an origin. One that
// answers with a wrong Content-Range, or cuts its body short, costs the
// node a fetch from the origin, not a wrong byte nor a cut answer; and it
// is not asked again at once.
func TestPOPLyingPeer(t *testing.T) {
	for _, lie := range []struct {
		name string
		m    origintest.Mode
	}{
		{"wrong Content-Range", origintest.Mode{LieContentRange: "start"}},
		{"body cut short", origintest.Mode{TruncateAfter: 100_000}},
	} {
		t.Run(lie.name, func(t *testing.T) {
			org := origintest.NewTest(t)
			liar := origintest.NewTest(t) // the same deterministic bytes and ETag, served wrong
			const path, size = "/pop/lied.bin", 2 << 20
			org.Add(path, size)
			liar.Add(path, size)
			liar.SetMode(lie.m)
			nodes := startPOP(t, 1, org.URL())
			nodes[0].edge.Peers = liarView{Node: nodes[0].node, addr: strings.TrimPrefix(liar.URL(), "http://")}
			for _, a := range []ask{{path: path, end: -1, size: size}, {path: path, start: 1 << 20, end: 1<<20 + 99, size: size}} {
				if err := verifyAsk(t, nodes, a); err != nil {
					t.Fatal(err)
				}
			}
			if liar.Requests() == 0 {
				t.Fatal("the liar was never asked")
			}
			if n := peerFailures(nodes); n == 0 && !strings.Contains(metricsText(nodes[0].edge), `result="body_failed"`) {
				t.Error("the liar's failures are not counted")
			}
			if liar.Requests() > 2 {
				t.Errorf("the liar was asked %d times; after its first failure it should rest", liar.Requests())
			}
		})
	}
}

// unsettled says what happened in the POP that makes a slice be fetched
// twice without a fault of the POP's: a membership change after every
// node had joined, or a slice a store refused; "" when nothing did.
func unsettled(nodes []*popNode) string {
	var why []string
	for _, n := range nodes {
		for _, l := range strings.Split(metricsText(n.edge), "\n") {
			var v float64
			switch {
			case strings.HasPrefix(l, "sliceedge_cluster_ownership_changes_total "):
				fmt.Sscan(strings.Fields(l)[1], &v)
				if int(v) > len(nodes) {
					why = append(why, fmt.Sprintf("%s saw %d membership changes, %d of them after the POP formed", n.name, int(v), int(v)-len(nodes)))
				}
			case strings.HasPrefix(l, "sliceedge_store_errors_total "), strings.HasPrefix(l, "sliceedge_store_write_errors_total "):
				fmt.Sscan(strings.Fields(l)[1], &v)
				if v > 0 {
					why = append(why, fmt.Sprintf("%s: %s", n.name, l))
				}
			}
		}
	}
	return strings.Join(why, "; ")
}
