package config

import (
	"fmt"
	"strings"
	"testing"
)

// TestListenersConfig: listeners takes addresses and TLS listeners, loads
// their certificates, and says what is wrong with a bad entry.
func TestListenersConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "edge")
	other, otherKey := writeCert(t, dir, "other")
	rest := "store: {dir: ./d, max_bytes: 1GiB}\norigins: {o: {url: http://127.0.0.1:9000}}\nrules: [{match: /, origin: o}]\n"

	c, err := Parse("a.yaml", []byte(fmt.Sprintf("listeners:\n  - 127.0.0.1:8080\n  - {address: 127.0.0.1:8443, tls: {cert: %s, key: %s}}\n  - {address: 127.0.0.1:8082, h2c: true}\n  - {address: 127.0.0.1:8444, tls: {cert: %s, key: %s}, http2: false}\n", cert, key, cert, key)+rest))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || len(c.Listeners) != 4 {
		t.Fatalf("listen %q, listeners %+v", c.Listen, c.Listeners)
	}
	l := c.Listeners
	if l[0].TLS != nil || l[0].HTTP2 || l[0].H2C {
		t.Errorf("plain listener %+v", l[0])
	}
	if l[1].TLS == nil || l[1].TLS.Certificate == nil || !l[1].HTTP2 || l[1].TLS.CertFile != cert {
		t.Errorf("TLS listener %+v: want its certificate loaded and HTTP/2 on by default", l[1])
	}
	if !l[2].H2C || l[2].TLS != nil {
		t.Errorf("h2c listener %+v", l[2])
	}
	if l[3].HTTP2 {
		t.Errorf("http2: false was not taken: %+v", l[3])
	}

	// listen alone is one plain listener.
	c, err = Parse("a.yaml", []byte("listen: 127.0.0.1:8080\n"+rest))
	if err != nil || len(c.Listeners) != 1 || c.Listeners[0].Address != "127.0.0.1:8080" || c.Listeners[0].TLS != nil {
		t.Fatalf("listen: %+v, %v", c, err)
	}

	for _, tc := range []struct{ yaml, err string }{
		{"listen: \":8080\"\nlisteners: [\":8081\"]\n", `a.yaml:2: listeners: listen is set too`},
		{"listeners: []\n", `a.yaml:1: listeners: empty (want a list`},
		{"listeners: [\":8080\", \"127.0.0.1:8080\"]\n", `listeners[1]: 127.0.0.1:8080 takes the same socket as the listener :8080`},
		{"listeners: [{address: \":8443\", tls: {cert: /nonexistent.pem, key: /nonexistent-key.pem}}]\n", `listeners[0].tls: /nonexistent.pem and key /nonexistent-key.pem: open /nonexistent.pem: no such file or directory (want a PEM certificate chain`},
		{fmt.Sprintf("listeners: [{address: \":8443\", tls: {cert: %s, key: %s}}]\n", cert, otherKey), `private key does not match public key`},
		{fmt.Sprintf("listeners: [{address: \":8443\", tls: {cert: %s}}]\n", other), `listeners[0].tls.key: required`},
		{"listeners: [{address: \":8080\", http2: true}]\n", `listeners[0].http2: HTTP/2 with ALPN needs tls`},
		{fmt.Sprintf("listeners: [{address: \":8443\", tls: {cert: %s, key: %s}, h2c: true}]\n", cert, key), `listeners[0].h2c: h2c is HTTP/2 without TLS`},
		{"listeners: [{tls: {}}]\n", `listeners[0].address: required`},
		{"listeners: [{address: \":8080\", port: 1}]\n", `listeners[0]: unknown field "port"`},
		{"listeners: [\":8080\"]\nadmin: {listen: \"127.0.0.1:8080\", token: a-long-enough-admin-token-1}\n", `admin.listen: 127.0.0.1:8080 takes the same socket as the edge's listen :8080`},
	} {
		_, err := Parse("a.yaml", []byte(tc.yaml+rest))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: err %v, want %s", tc.yaml, err, tc.err)
		}
	}
}
