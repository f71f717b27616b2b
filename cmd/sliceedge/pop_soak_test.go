package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/cluster"
	"github.com/sliceedge/sliceedge/origin/origintest"
)

// popSoakNodes and popSoakKills are set by `make pop-soak`; 0 means the
// short version (3 nodes, 3 kills; skipped with -short).
var (
	popSoakNodes = flag.Int("popsoak.nodes", 0, "nodes of TestPOPSoak's POP (0: 3)")
	popSoakKills = flag.Int("popsoak.kills", 0, "kill -9s of TestPOPSoak (0: 3, or skip with -short)")
)

// popSoakSecret is the soak POP's cluster secret and admin token.
const popSoakSecret = "pop-soak-secret-0123456789abcdef"

// popSoakNode is one node of the soak's POP: its config and the run of
// `sliceedge serve` now serving it, if any.
type popSoakNode struct {
	name, cfgFile, listen, admin string
	child                        *soakChild
	runs                         []*soakChild // every run, for their logs
}

// popBalancer is the balancer in front of the POP: each request goes to a
// random live node with one Host; a node that refuses the connection (it
// was just killed) is marked down and the request goes to another.
type popBalancer struct {
	mu    sync.Mutex
	nodes []*popSoakNode
	up    []bool
	rnd   *rand.Rand
	tr    *http.Transport
}

func (b *popBalancer) pick(skip map[int]bool) (int, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var live []int
	for i, up := range b.up {
		if up && !skip[i] {
			live = append(live, i)
		}
	}
	if len(live) == 0 {
		return -1, ""
	}
	i := live[b.rnd.IntN(len(live))]
	return i, b.nodes[i].listen
}

func (b *popBalancer) setUp(i int, up bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.up[i] = up
}

func (b *popBalancer) RoundTrip(req *http.Request) (*http.Response, error) {
	skip := map[int]bool{}
	for {
		i, addr := b.pick(skip)
		if i < 0 {
			return nil, errors.New("pop-soak balancer: no live node")
		}
		r := req.Clone(req.Context())
		r.URL.Host, r.Host = addr, "pop.test"
		resp, err := b.tr.RoundTrip(r)
		if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			skip[i] = true // killed: another node takes the request, as a balancer's retry would
			continue
		}
		return resp, err
	}
}

// TestPOPSoak runs a POP of `sliceedge serve` child processes in front of
// the test origin, drives mixed load (full GETs, ranges, multi-ranges)
// through a balancer to any live node, and kill -9s a random node at a
// random moment, then restarts it on its store and gossip address. Every
// byte of every answer, whole or cut, must be the origin's; the load must
// keep succeeding on the other nodes; after the last restart every node
// must see every other, and whole reads through each node must be exact.
// `make pop-soak` runs 5 nodes and 100 kills.
func TestPOPSoak(t *testing.T) {
	nodes, kills := *popSoakNodes, *popSoakKills
	if kills == 0 {
		if testing.Short() {
			t.Skip("builds and kills the binary; `make pop-soak` runs the long version")
		}
		kills = 3
	}
	if nodes == 0 {
		nodes = 3
	}
	bin := buildBinary(t)
	o := origintest.NewTest(t)
	o.SetMode(origintest.Mode{Bandwidth: 64 << 20}) // fills in flight when a kill lands
	dir := t.TempDir()

	pop := make([]*popSoakNode, nodes)
	gossip := make([]string, nodes)
	for i := range pop {
		gossip[i] = freeAddr(t)
	}
	for i := range pop {
		n := &popSoakNode{name: fmt.Sprintf("soak-%d", i), listen: freeAddr(t), admin: freeAddr(t)}
		var join []string
		for j, g := range gossip {
			if j != i {
				join = append(join, g)
			}
		}
		yaml := fmt.Sprintf(`name: %s
listen: %s
admin: {listen: %s, token: %s}
store: {dir: %s, max_bytes: 256MiB}
origins: {default: {url: %q}}
rules:
  - {match: /soak/, origin: default, slice_size: 1MiB}
  - {match: /, origin: default}
cluster:
  gossip: %s
  peer: %s
  join: [%s]
  secret: %s
`, n.name, n.listen, n.admin, popSoakSecret, filepath.Join(dir, n.name), o.URL(), gossip[i], freeAddr(t), strings.Join(join, ", "), popSoakSecret)
		n.cfgFile = filepath.Join(dir, n.name+".yaml")
		if err := os.WriteFile(n.cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		pop[i] = n
	}
	start := func(n *popSoakNode) {
		n.child = startSoakChild(t, bin, n.cfgFile)
		n.runs = append(n.runs, n.child)
	}
	for _, n := range pop {
		start(n)
	}
	waitMembers(t, pop, nodes)

	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	bal := &popBalancer{nodes: pop, up: make([]bool, nodes), rnd: rand.New(rand.NewPCG(rnd.Uint64(), 3)), tr: &http.Transport{MaxIdleConnsPerHost: 8}}
	for i := range bal.up {
		bal.up[i] = true
	}
	client := &http.Client{Transport: bal}
	const base = "http://pop.test"
	var st soakStats
	var fail soakFailures
	began := time.Now()
	const workers = 6

	for k := range kills {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wrnd := rand.New(rand.NewPCG(rnd.Uint64(), uint64(w)))
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					doSoakRequest(client, base, randomRequest(wrnd), false, &st, &fail)
				}
			})
		}
		time.Sleep(time.Duration(200+rnd.IntN(800)) * time.Millisecond)
		victim := rnd.IntN(nodes)
		bal.setUp(victim, false)
		pop[victim].child.kill()
		// The load goes on without it for a while, as it would until the
		// node is replaced.
		time.Sleep(time.Duration(200+rnd.IntN(800)) * time.Millisecond)
		close(stop)
		wg.Wait()
		if st.wrongBytes.Load() > 0 || st.bad.Load() > 0 {
			t.Fatalf("kill %d (%s): %d answers with wrong bytes, %d otherwise wrong:\n%s", k, pop[victim].name, st.wrongBytes.Load(), st.bad.Load(), fail.String())
		}
		start(pop[victim])
		bal.setUp(victim, true)
	}
	waitMembers(t, pop, nodes)

	// Whole reads through each node, after the last restart: exact.
	rereads := 0
	for _, n := range pop {
		direct := &http.Client{Transport: &popOne{addr: n.listen}}
		for range 3 {
			r := soakRequest{path: soakObjects[rnd.IntN(len(soakObjects))]}
			r.size, _ = origintest.SyntheticSize(filepath.Base(r.path))
			doSoakRequest(direct, base, r, true, &st, &fail)
			rereads++
		}
	}

	// Why answers were cut: a killed node's own clients lose their
	// connection (no log line); a surviving node logs "cut" with a reason
	// ("client": its client went away, which a killed node asking it as a
	// peer does).
	reasons := map[string]int{}
	for _, n := range pop {
		for _, run := range n.runs {
			for _, line := range strings.Split(run.logs.String(), "\n") {
				var rec map[string]any
				if json.Unmarshal([]byte(line), &rec) != nil || rec["message"] != "request" {
					continue
				}
				if c, _ := rec["cut"].(string); c != "" {
					reasons[c]++
				}
			}
		}
	}
	for _, n := range pop {
		n.child.kill()
	}
	if notes := fail.String(); notes != "" {
		t.Logf("notes:\n%s", notes)
	}
	t.Logf("pop soak: %d nodes, %d kills, %d requests, %.2f GiB verified, %d wrong bytes (the origin's object never changes, so a mixed body would be a wrong byte), %d otherwise wrong; "+
		"%d complete, %d cut, %d unanswered; cuts logged by surviving nodes: %v (the rest were the killed nodes' own clients); %d exact re-reads; origin sent %.2f GiB; %v",
		nodes, kills, st.requests.Load(), float64(st.verified.Load())/(1<<30), st.wrongBytes.Load(), st.bad.Load(),
		st.complete.Load(), st.cut.Load(), st.refused.Load(), reasons, rereads, float64(o.BodyBytes())/(1<<30), time.Since(began).Round(time.Second))
	if st.wrongBytes.Load() > 0 || st.bad.Load() > 0 {
		t.Fatalf("pop soak failed: %d answers with wrong bytes, %d otherwise wrong", st.wrongBytes.Load(), st.bad.Load())
	}
	if st.complete.Load() == 0 {
		t.Error("no answer was complete: the load did not keep succeeding")
	}
}

// popOne sends every request to one node, with the POP's Host.
type popOne struct{ addr string }

func (p *popOne) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.URL.Host, r.Host = p.addr, "pop.test"
	return http.DefaultTransport.RoundTrip(r)
}

// waitMembers waits until every node's admin API lists want members.
func waitMembers(t *testing.T, pop []*popSoakNode, want int) {
	t.Helper()
	for _, n := range pop {
		origintest.WaitFor(t, n.name+" to see every member", func() bool {
			req, _ := http.NewRequest(http.MethodGet, "http://"+n.admin+"/cluster", nil)
			req.Header.Set("Authorization", "Bearer "+popSoakSecret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var st cluster.Status
			return json.NewDecoder(resp.Body).Decode(&st) == nil && len(st.Members) == want
		})
	}
}
