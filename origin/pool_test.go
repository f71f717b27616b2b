package origin_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/slicer"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// deadAddr is an address on which nothing listens: connections to it are
// refused.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// poolFetch fetches req from p and reads the whole body.
func poolFetch(t *testing.T, p *origin.Pool, req *origin.Request) (*origin.Response, []byte, error) {
	t.Helper()
	resp, err := p.Fetch(context.Background(), req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// metricsText is the exposition of set.
func metricsText(set *vm.Set) string {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	return b.String()
}

// TestPoolFailover: a fill whose first member refuses connections, or
// answers 503, is retried on the next member with the same If-Match, and
// the bytes are the version's; a member answering with another version is
// not retried around (the object changed), and every member failing is
// one error naming them.
func TestPoolFailover(t *testing.T) {
	const path = "/v/2MiB.bin"
	good := origintest.NewTest(t)
	busy := origintest.NewTest(t)
	busy.SetMode(origintest.Mode{Status: http.StatusServiceUnavailable})
	dead := deadAddr(t)
	etag := origintest.ETag(path, 1)
	req := &origin.Request{URL: path, Range: &slicer.Range{Start: 1 << 20, End: 2 << 20}, IfMatch: origin.Validator{ETag: etag}}

	for _, tc := range []struct {
		name  string
		first string
	}{
		{"refused", "http://" + dead},
		{"503", busy.URL()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := vm.NewSet()
			p := origin.NewPool(origin.PoolOptions{Name: "media", Members: []*url.URL{mustURL(t, tc.first), mustURL(t, good.URL())}, Metrics: set, MaxFails: 100})
			defer p.Close()
			good.ResetCounters()
			busy.ResetCounters()
			// Round robin starts at either member: ask enough times that
			// the failing one is asked first at least once.
			for range 4 {
				resp, body, err := poolFetch(t, p, req)
				if err != nil {
					t.Fatalf("fetch: %v", err)
				}
				if want := mustURL(t, good.URL()).Host; resp.Member != want {
					t.Fatalf("answered by %q, want %q", resp.Member, want)
				}
				if bad, ok := origintest.Verify(body, path, 1, 1<<20); !ok || len(body) != 1<<20 {
					t.Fatalf("%d bytes, wrong at %d", len(body), bad)
				}
			}
			for _, r := range good.LastRequests() {
				if r.IfMatch != etag {
					t.Fatalf("the retry went without If-Match %s: %+v", etag, r)
				}
			}
			if tc.name == "503" && busy.Requests() == 0 {
				t.Fatal("the busy member was never asked")
			}
			if !strings.Contains(metricsText(set), `sliceedge_origin_failovers_total{origin="media"} 2`) {
				t.Fatalf("want 2 failovers in 4 fetches:\n%s", metricsText(set))
			}
		})
	}

	t.Run("another version is not retried", func(t *testing.T) {
		other := origintest.NewTest(t)
		other.SetVersion(path, 2)
		p := origin.NewPool(origin.PoolOptions{Name: "media", Members: []*url.URL{mustURL(t, other.URL()), mustURL(t, good.URL())}})
		defer p.Close()
		good.ResetCounters()
		var changed int
		for range 4 {
			_, _, err := poolFetch(t, p, req)
			if errors.Is(err, origin.ErrVersionChanged) {
				changed++
			} else if err != nil {
				t.Fatalf("fetch: %v", err)
			}
		}
		if changed != 2 || good.Requests() != 2 {
			t.Fatalf("%d version changes and %d requests to the good member in 4 fetches, want 2 and 2 (no retry of a 412)", changed, good.Requests())
		}
	})

	t.Run("all fail", func(t *testing.T) {
		p := origin.NewPool(origin.PoolOptions{Name: "media", Members: []*url.URL{mustURL(t, "http://"+dead), mustURL(t, busy.URL())}})
		defer p.Close()
		_, err := p.Fetch(context.Background(), req)
		var se *origin.StatusError
		if !errors.As(err, &se) || se.Resp.StatusCode != http.StatusServiceUnavailable {
			// The round robin may end on the dead one.
			if err == nil || !strings.Contains(err.Error(), "every member failed") {
				t.Fatalf("err = %v, want every member failed", err)
			}
		} else {
			se.Resp.Body.Close()
		}
	})
}

// TestPoolPassiveCheck: max_fails consecutive failures take a member out
// for fail_timeout (it is asked no more), after which it is tried again
// and, answering, is back.
func TestPoolPassiveCheck(t *testing.T) {
	const path = "/p/64KiB.bin"
	a, b := origintest.NewTest(t), origintest.NewTest(t)
	a.SetMode(origintest.Mode{Status: http.StatusBadGateway})
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	var changes []string
	var mu sync.Mutex
	set := vm.NewSet()
	p := origin.NewPool(origin.PoolOptions{
		Name: "o", Members: []*url.URL{mustURL(t, a.URL()), mustURL(t, b.URL())},
		MaxFails: 2, FailTimeout: time.Minute, Metrics: set,
		Now: func() time.Time { return time.Unix(0, now.Load()) },
		OnChange: func(o, m string, up bool, why string) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, m+" up="+map[bool]string{true: "true", false: "false"}[up])
		},
	})
	defer p.Close()
	req := &origin.Request{URL: path}
	for range 10 {
		if _, _, err := poolFetch(t, p, req); err != nil {
			t.Fatalf("fetch: %v", err)
		}
	}
	if a.Requests() != 2 {
		t.Fatalf("the failing member was asked %d times in 10 fetches, want 2 (max_fails) before it is out", a.Requests())
	}
	aName := mustURL(t, a.URL()).Host
	if st := p.Status(); st[0].Up || !strings.Contains(st[0].Why, "502") {
		t.Fatalf("status %+v: want %s out for its 502s", st, aName)
	}
	if !strings.Contains(metricsText(set), `sliceedge_origin_member_up{origin="o",member="`+aName+`"} 0`) {
		t.Fatalf("member_up is not 0:\n%s", metricsText(set))
	}
	a.SetMode(origintest.Mode{})
	now.Add(int64(time.Minute)) // fail_timeout passes
	for range 4 {
		if _, _, err := poolFetch(t, p, req); err != nil {
			t.Fatalf("fetch: %v", err)
		}
	}
	if a.Requests() != 4 {
		t.Fatalf("after fail_timeout the member was asked %d times in all, want 4 (2 of 4 fetches)", a.Requests())
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(changes, ",") != aName+" up=false,"+aName+" up=true" {
		t.Fatalf("changes %v", changes)
	}
}

// TestPoolHealthCheck: a member whose health path fails `unhealthy` times
// is out of the pool and asked nothing; once it passes `healthy` times it
// is back. The checks carry the origin's Host.
func TestPoolHealthCheck(t *testing.T) {
	var hosts sync.Map
	member := func(healthy *atomic.Bool) (*origintest.Server, *httptest.Server) {
		objects := origintest.New()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				hosts.Store(r.Host, true)
				if !healthy.Load() {
					http.Error(w, "down", http.StatusInternalServerError)
					return
				}
				io.WriteString(w, "ok")
				return
			}
			objects.Handler().ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return objects, srv
	}
	var healthy, bHealthy atomic.Bool
	bHealthy.Store(true)
	objects, a := member(&healthy)
	bObjects, b := member(&bHealthy)
	p := origin.NewPool(origin.PoolOptions{
		Name: "o", Members: []*url.URL{mustURL(t, a.URL), mustURL(t, b.URL)}, Host: "media.example",
		Health: &origin.HealthCheck{Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond, Healthy: 2, Unhealthy: 2},
	})
	defer p.Close()
	waitFor := func(up bool) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if p.Status()[0].Up == up {
				return
			}
		}
		t.Fatalf("member a never became up=%v: %+v", up, p.Status())
	}
	waitFor(false)
	if !p.Ready() {
		t.Fatal("the pool is not ready with one member up")
	}
	for range 6 {
		resp, _, err := poolFetch(t, p, &origin.Request{URL: "/h/64KiB.bin"})
		if err != nil || resp.Member != mustURL(t, b.URL).Host {
			t.Fatalf("fetch while a is out: %v, member %v", err, resp)
		}
	}
	if objects.Requests() != 0 {
		t.Fatalf("a was asked %d times while out of the pool", objects.Requests())
	}
	healthy.Store(true)
	waitFor(true)
	for range 6 {
		if _, _, err := poolFetch(t, p, &origin.Request{URL: "/h/64KiB.bin"}); err != nil {
			t.Fatal(err)
		}
	}
	if objects.Requests() != 3 {
		t.Fatalf("a answered %d of 6 fetches once back, want 3", objects.Requests())
	}
	if _, ok := hosts.Load("media.example"); !ok {
		t.Fatal("the health checks did not carry the origin's Host")
	}
	if bObjects.Requests() != 9 {
		t.Fatalf("b answered %d fetches, want 9", bObjects.Requests())
	}
	// Both down: the pool is not ready.
	healthy.Store(false)
	bHealthy.Store(false)
	for end := time.Now().Add(10 * time.Second); p.Ready() && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
	}
	if p.Ready() {
		t.Fatalf("ready with every member failing its checks: %+v", p.Status())
	}
}

// TestPoolMaxConns: a member is never sent more than max_connections
// connections at once; the requests past them wait and all complete.
func TestPoolMaxConns(t *testing.T) {
	objects := origintest.New()
	var open, most atomic.Int64
	srv := httptest.NewUnstartedServer(objects.Handler())
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			n := open.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	defer srv.Close()
	objects.SetMode(origintest.Mode{Latency: 50 * time.Millisecond})
	p := origin.NewPool(origin.PoolOptions{Name: "o", Members: []*url.URL{mustURL(t, srv.URL)}, Client: origin.Options{MaxConns: 2}})
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			path := "/c/" + string(rune('a'+i)) + "/64KiB.bin"
			_, body, err := poolFetch(t, p, &origin.Request{URL: path})
			if err == nil {
				if bad, ok := origintest.Verify(body, path, 1, 0); !ok {
					err = errors.New("wrong byte at " + string(rune(bad)))
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if most.Load() > 2 || most.Load() == 0 {
		t.Fatalf("at most %d connections open at once, want 1 or 2 (max_connections 2)", most.Load())
	}
}

// TestPoolBodyFailureCounts: a member that cuts its bodies short is taken
// out by the passive check, like one that does not answer.
func TestPoolBodyFailureCounts(t *testing.T) {
	const path = "/t/1MiB.bin"
	a, b := origintest.NewTest(t), origintest.NewTest(t)
	a.SetMode(origintest.Mode{TruncateAfter: 1000})
	p := origin.NewPool(origin.PoolOptions{Name: "o", Members: []*url.URL{mustURL(t, a.URL()), mustURL(t, b.URL())}, MaxFails: 2, FailTimeout: time.Hour})
	defer p.Close()
	var truncated int
	for range 8 {
		_, _, err := poolFetch(t, p, &origin.Request{URL: path})
		if errors.Is(err, origin.ErrTruncated) {
			truncated++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if truncated != 2 || p.Status()[0].Up {
		t.Fatalf("%d truncated bodies in 8 fetches (want 2, then the member is out); status %+v", truncated, p.Status())
	}
}

// testCA is a CA and a certificate it signed for 127.0.0.1 and name.
type testCA struct {
	pool    *x509.CertPool
	pem     []byte
	signer  *x509.Certificate
	signKey *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sliceedge test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	ca := &testCA{pool: x509.NewCertPool(), signer: c, signKey: key}
	ca.pool.AddCert(c)
	ca.pem = pemBlock("CERTIFICATE", der)
	return ca
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// issue signs a leaf certificate for name (and 127.0.0.1).
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{name}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.signer, &key.PublicKey, ca.signKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestPoolTLS: an https member is verified against the configured CA under
// the configured server name, and asks for the client certificate it is
// given; a wrong name is refused, and a member that never completes its
// handshake fails within connect_timeout and is failed over.
func TestPoolTLS(t *testing.T) {
	ca := newTestCA(t)
	objects := origintest.New()
	var clientCN atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			clientCN.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		objects.Handler().ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "origin.internal", x509.ExtKeyUsageServerAuth)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.pool,
	}
	srv.StartTLS()
	defer srv.Close()
	client := ca.issue(t, "edge-1", x509.ExtKeyUsageClientAuth)
	const path = "/s/256KiB.bin"

	p := origin.NewPool(origin.PoolOptions{Name: "o", Members: []*url.URL{mustURL(t, srv.URL)}, Client: origin.Options{
		TLS: &tls.Config{RootCAs: ca.pool, ServerName: "origin.internal", Certificates: []tls.Certificate{client}},
	}})
	defer p.Close()
	_, body, err := poolFetch(t, p, &origin.Request{URL: path, Range: &slicer.Range{Start: 1000, End: 200000}})
	if err != nil {
		t.Fatalf("fetch over TLS: %v", err)
	}
	if bad, ok := origintest.Verify(body, path, 1, 1000); !ok || len(body) != 199000 {
		t.Fatalf("%d bytes, wrong at %d", len(body), bad)
	}
	if clientCN.Load() != "edge-1" {
		t.Fatalf("the origin saw client certificate %v, want edge-1", clientCN.Load())
	}

	wrong := origin.NewPool(origin.PoolOptions{Name: "o", Members: []*url.URL{mustURL(t, srv.URL)}, Client: origin.Options{
		TLS: &tls.Config{RootCAs: ca.pool, ServerName: "other.internal", Certificates: []tls.Certificate{client}},
	}})
	defer wrong.Close()
	if _, _, err := poolFetch(t, wrong, &origin.Request{URL: path}); err == nil || !strings.Contains(err.Error(), "other.internal") {
		t.Fatalf("a certificate for another name: err = %v, want a verification error naming other.internal", err)
	}

	// A member that accepts and never speaks TLS.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()
	defer func() {
		heldMu.Lock()
		defer heldMu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	set := vm.NewSet()
	both := origin.NewPool(origin.PoolOptions{Name: "o", Metrics: set, Members: []*url.URL{mustURL(t, "https://"+mute.Addr().String()), mustURL(t, srv.URL)}, Client: origin.Options{
		ConnectTimeout: 200 * time.Millisecond,
		TLS:            &tls.Config{RootCAs: ca.pool, ServerName: "origin.internal", Certificates: []tls.Certificate{client}},
	}})
	defer both.Close()
	for range 2 {
		resp, body, err := poolFetch(t, both, &origin.Request{URL: path})
		if err != nil {
			t.Fatalf("fetch with a mute member: %v", err)
		}
		if resp.Member != mustURL(t, srv.URL).Host || len(body) != 256<<10 {
			t.Fatalf("answered by %s, %d bytes", resp.Member, len(body))
		}
	}
	if want := `sliceedge_origin_member_requests_total{origin="o",member="` + mute.Addr().String() + `",result="failed"} 1`; !strings.Contains(metricsText(set), want) {
		t.Fatalf("want %s:\n%s", want, metricsText(set))
	}
}
