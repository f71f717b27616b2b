package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate and its key as PEM files in
// dir, and returns their paths.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

const poolConfig = `listen: 127.0.0.1:8080
store: {dir: ./data, max_bytes: 1GiB}
origins:
  media:
    urls: [https://10.0.0.1:8443/base/, https://10.0.0.2:8443/base]
    max_connections: 32
    max_fails: 5
    fail_timeout: 30s
    health_check: {path: /healthz, interval: 2s}
    tls:
      ca: %s
      server_name: origin.internal
      cert: %s
      key: %s
rules:
  - {match: /, origin: media}
`

// TestOriginPoolConfig: a pool's members, limits, health check and TLS
// files load into the Origin, and a client key that is not the
// certificate's is refused at its line.
func TestOriginPoolConfig(t *testing.T) {
	dir := t.TempDir()
	ca, _ := writeCert(t, dir, "ca")
	cert, key := writeCert(t, dir, "client")
	c, err := Parse("pool.yaml", []byte(fmt.Sprintf(poolConfig, ca, cert, key)))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Origins["media"]
	if len(o.Members) != 2 || o.URL != o.Members[0] || o.Members[1].String() != "https://10.0.0.2:8443/base" || o.Members[0].Path != "/base" {
		t.Fatalf("members %v, url %v", o.Members, o.URL)
	}
	if o.MaxConnections != 32 || o.MaxFails != 5 || o.FailTimeout != 30*time.Second {
		t.Fatalf("limits %d %d %v", o.MaxConnections, o.MaxFails, o.FailTimeout)
	}
	if h := o.Health; h == nil || h.Path != "/healthz" || h.Interval != 2*time.Second || h.Timeout != DefaultHealthTimeout || h.Healthy != 2 || h.Unhealthy != 3 {
		t.Fatalf("health check %+v", o.Health)
	}
	if o.TLS == nil || o.TLS.Config.RootCAs == nil || o.TLS.Config.ServerName != "origin.internal" || len(o.TLS.Config.Certificates) != 1 || o.TLS.Digest == "" {
		t.Fatalf("tls %+v", o.TLS)
	}

	// Defaults: one url is a pool of one, passive checks only.
	d := Default().Origins
	for _, o := range d {
		if len(o.Members) != 1 || o.MaxFails != DefaultMaxFails || o.FailTimeout != DefaultFailTimeout || o.Health != nil || o.TLS != nil {
			t.Fatalf("default origin %+v", o)
		}
	}

	_, otherKey := writeCert(t, dir, "other")
	_, err = Parse("pool.yaml", []byte(fmt.Sprintf(poolConfig, ca, cert, otherKey)))
	if err == nil || !strings.Contains(err.Error(), "pool.yaml:13: origins.media.tls.cert: ") || !strings.Contains(err.Error(), "private key does not match public key") {
		t.Fatalf("mismatched key: %v", err)
	}
}

// TestAccessLogConfig: access_log takes off, or a path, and says what it
// wants otherwise.
func TestAccessLogConfig(t *testing.T) {
	base := "listen: 127.0.0.1:8080\nstore: {dir: ./d, max_bytes: 1GiB}\norigins: {o: {url: http://127.0.0.1:9000}}\nrules: [{match: /, origin: o}]\n"
	for _, tc := range []struct {
		yaml string
		want AccessLog
		err  string
	}{
		{"", AccessLog{}, ""},
		{"access_log: off\n", AccessLog{Off: true}, ""},
		{"access_log: {path: /var/log/sliceedge/access.log}\n", AccessLog{Path: "/var/log/sliceedge/access.log"}, ""},
		{"access_log: {off: true}\n", AccessLog{Off: true}, ""},
		{"access_log: loud\n", AccessLog{}, `a.yaml:5: access_log: "loud" is not a setting (want off, or {path: /var/log/sliceedge/access.log}; default: with the other log lines, on stderr)`},
		{"access_log: {path: /var/log/}\n", AccessLog{}, `a.yaml:5: access_log.path: "/var/log/" is not a file name`},
		{"access_log: {path: a.log, off: true}\n", AccessLog{}, `a.yaml:5: access_log: off and path are both set`},
	} {
		c, err := Parse("a.yaml", []byte(base+tc.yaml))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %s", tc.yaml, err, tc.err)
			}
			continue
		}
		if err != nil || c.AccessLog != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.yaml, c, err, tc.want)
		}
	}
}
