package main

// The edge's client listeners: plain HTTP, or TLS with HTTP/2 by ALPN,
// each its own http.Server over the same handler.

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/rs/zerolog"
	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
)

// certHolder hands a TLS listener's certificate to each new handshake;
// a reload swaps it, and connections already open keep theirs.
type certHolder struct {
	cert atomic.Pointer[tls.Certificate]
}

func (c *certHolder) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cert.Load(), nil }

// edgeServer is the http.Server of listener l; certs is nil for a plain
// one.
func edgeServer(h *edge.Server, l config.Listener, label string) (hs *http.Server, certs *certHolder) {
	hs = edge.NewHTTPServer(h)
	hs.ConnState = h.TrackConns(label)
	var p http.Protocols
	p.SetHTTP1(true)
	if l.TLS != nil {
		certs = &certHolder{}
		certs.cert.Store(l.TLS.Certificate)
		// ServeTLS offers h2 by ALPN when Protocols has HTTP/2.
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
		p.SetHTTP2(l.HTTP2)
	}
	p.SetUnencryptedHTTP2(l.H2C)
	hs.Protocols = &p
	return hs, certs
}

// listenerLabel names listener i of ls in sliceedge_connections: "edge"
// when it is the only one, else "edge " and its address.
func listenerLabel(ls []config.Listener, i int) string {
	if len(ls) == 1 {
		return "edge"
	}
	return "edge " + ls[i].Address
}

// describeListener is how the start line shows a listener.
func describeListener(l config.Listener, addr string) string {
	switch {
	case l.TLS != nil && l.HTTP2:
		return "https://" + addr + " (HTTP/2, HTTP/1.1)"
	case l.TLS != nil:
		return "https://" + addr + " (HTTP/1.1)"
	case l.H2C:
		return "http://" + addr + " (HTTP/1.1, h2c)"
	}
	return "http://" + addr
}

// swapCerts puts the certificates of cfg's listeners in force for new
// handshakes, where a listener of the same address had TLS at start
// (certs[i] belongs to started's listener i).
func swapCerts(certs []*certHolder, started, cfg *config.Config, log zerolog.Logger) {
	for i, c := range certs {
		if c == nil || i >= len(cfg.Listeners) {
			continue
		}
		l := cfg.Listeners[i]
		if l.Address != started.Listeners[i].Address || l.TLS == nil {
			continue
		}
		if old := c.cert.Swap(l.TLS.Certificate); !sameCert(old, l.TLS.Certificate) {
			log.Info().Str("listener", l.Address).Str("cert", l.TLS.CertFile).Str("expires", expiry(l.TLS.Certificate)).
				Msg("SIGHUP: new TLS certificate in use for new connections; open ones keep theirs")
		}
	}
}

func sameCert(a, b *tls.Certificate) bool {
	if a == nil || b == nil || len(a.Certificate) == 0 || len(b.Certificate) == 0 {
		return a == b
	}
	return string(a.Certificate[0]) == string(b.Certificate[0])
}

func expiry(c *tls.Certificate) string {
	if c.Leaf == nil {
		return "unknown"
	}
	return c.Leaf.NotAfter.UTC().Format("2006-01-02")
}

// listenersChanged reports whether the listeners differ in what only a
// restart applies: their addresses, TLS on or off, and protocols.
func listenersChanged(a, b []config.Listener) bool {
	if len(a) != len(b) {
		return true
	}
	for i := range a {
		if a[i].Address != b[i].Address || (a[i].TLS == nil) != (b[i].TLS == nil) || a[i].HTTP2 != b[i].HTTP2 || a[i].H2C != b[i].H2C {
			return true
		}
	}
	return false
}

// listenKey is what a reload's warning calls the listeners of cfg: listen
// for one plain listener, else listeners.
func listenKey(cfg *config.Config) string {
	if len(cfg.Listeners) == 1 && cfg.Listeners[0].TLS == nil && !cfg.Listeners[0].H2C {
		return "listen"
	}
	return "listeners"
}

// freshConns counts the connections accepted whose first request has not
// been read yet. At an upgrade's handover the listeners close first, and
// the servers shut down once these have sent their requests: net/http
// drops, unanswered, a request read after Shutdown began.
type freshConns struct {
	conns sync.Map // net.Conn → struct{}, while StateNew
	n     atomic.Int64
}

// hook wraps a ConnState hook (nil: none) with the count.
func (f *freshConns) hook(next func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	return func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			f.conns.Store(c, struct{}{})
			f.n.Add(1)
		} else if _, ok := f.conns.LoadAndDelete(c); ok {
			f.n.Add(-1)
		}
		if next != nil {
			next(c, st)
		}
	}
}

// wait returns once no connection waits for its first request, or after
// limit.
func (f *freshConns) wait(limit time.Duration) int64 {
	for end := time.Now().Add(limit); f.n.Load() > 0 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	return f.n.Load()
}

// upgrader is what serve needs of cloudflare/tableflip's Upgrader.
type upgrader interface {
	Listen(network, addr string) (net.Listener, error)
	Ready() error
	HasParent() bool
	Upgrade() error
	Stop()
}

// upgraderTaken is set once a serve of this process has tableflip's one
// Upgrader.
var upgraderTaken atomic.Bool

// newUpgrader returns tableflip's Upgrader for the first serve of the
// process; a later one in the same process (tests run several) listens
// without it and cannot be upgraded.
func newUpgrader() (upgrader, error) {
	if !upgraderTaken.CompareAndSwap(false, true) {
		return plainListener{}, nil
	}
	return tableflip.New(tableflip.Options{UpgradeTimeout: upgradeTimeout})
}

// plainListener listens without passing sockets on.
type plainListener struct{}

func (plainListener) Listen(network, addr string) (net.Listener, error) {
	return net.Listen(network, addr)
}
func (plainListener) Ready() error    { return nil }
func (plainListener) HasParent() bool { return false }
func (plainListener) Upgrade() error {
	return errors.New("this process cannot be upgraded: tableflip allows one upgradable serve per process")
}
func (plainListener) Stop() {}
