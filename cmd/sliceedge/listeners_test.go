package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// writeServerCert writes a self-signed server certificate for 127.0.0.1
// and edge.test with the given serial number, as PEM files cert.pem and
// key.pem in dir (replacing what is there), and returns their paths and
// the certificate.
func writeServerCert(t *testing.T, dir string, serial int64) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "edge.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"edge.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Written beside and renamed into place, as a renewal tool does.
	for f, b := range map[string][]byte{
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(f+".new", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f+".new", f); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile, cert
}

// curlGet runs curl with args and the URL, writing the body to a file,
// and returns what -w printed and the body.
func curlGet(t *testing.T, url string, args ...string) (string, []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "body")
	cmd := exec.Command("curl", append(append([]string{"-sS", "-o", out, "-w", "%{http_version} %{http_code}"}, args...), url)...)
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v %s: %v\n%s", args, url, err, got)
	}
	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(got), body
}

// TestServeTLSListeners: listeners serves plain HTTP, HTTPS with HTTP/2 by
// ALPN, and h2c side by side, to curl and h2load, with every byte right;
// a SIGHUP puts a renewed certificate in force for new connections while
// a download on an open HTTP/2 connection goes on to its last byte.
func TestServeTLSListeners(t *testing.T) {
	for _, tool := range []string{"curl", "h2load"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: install Debian's curl and nghttp2-client (.ci/run does)", tool)
		}
	}
	o := origintest.NewTest(t)
	dir := t.TempDir()
	certFile, keyFile, cert1 := writeServerCert(t, dir, 1)
	plain, secure, h2c := freeAddr(t), freeAddr(t), freeAddr(t)
	s := startServe(t, fmt.Sprintf("listeners:\n  - %s\n  - {address: %s, tls: {cert: %s, key: %s}}\n  - {address: %s, h2c: true}\nstore: {dir: %s, max_bytes: 1GiB}\norigins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\n",
		plain, secure, certFile, keyFile, h2c, t.TempDir(), o.URL()))
	if !strings.Contains(s.logs.String(), "https://"+secure+" (HTTP/2, HTTP/1.1)") {
		t.Errorf("the start line does not show the TLS listener:\n%s", s.logs.String())
	}

	const path = "/v/3MiB.bin"
	for _, tc := range []struct {
		url  string
		args []string
		want string
	}{
		{"http://" + plain + path, nil, "1.1 200"},
		{"https://" + secure + path, []string{"--http2", "--cacert", certFile}, "2 200"},
		{"https://" + secure + path, []string{"--http1.1", "--cacert", certFile}, "1.1 200"},
		{"http://" + h2c + path, []string{"--http2-prior-knowledge"}, "2 200"},
		{"https://" + secure + path, []string{"--http2", "--cacert", certFile, "-r", "1000000-2500000"}, "2 206"},
	} {
		got, body := curlGet(t, tc.url, tc.args...)
		if got != tc.want {
			t.Errorf("curl %v %s: %q, want %q", tc.args, tc.url, got, tc.want)
			continue
		}
		start := int64(0)
		if strings.HasSuffix(tc.want, "206") {
			start = 1000000
			if len(body) != 1500001 {
				t.Errorf("range: %d bytes", len(body))
			}
		} else if len(body) != 3<<20 {
			t.Errorf("curl %v: %d bytes", tc.args, len(body))
		}
		if at, ok := origintest.Verify(body, path, 1, start); !ok {
			t.Errorf("curl %v %s: wrong byte at %d", tc.args, tc.url, at)
		}
	}

	// h2load: many streams over a few connections.
	out, err := exec.Command("h2load", "-n", "400", "-c", "4", "-m", "8", "https://"+secure+"/h/256KiB.bin").CombinedOutput()
	if err != nil {
		t.Fatalf("h2load: %v\n%s", err, out)
	}
	for _, want := range []string{"Application protocol: h2", "requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed, 0 errored", "status codes: 400 2xx"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("h2load did not report %q:\n%s", want, out)
		}
	}
	if m := regexp.MustCompile(`traffic: .*\((\d+)\) total`).FindStringSubmatch(string(out)); m == nil || len(m[1]) < 9 {
		t.Errorf("h2load moved too few bytes for 400 x 256KiB:\n%s", out)
	}

	// A renewed certificate, while a download runs on an open HTTP/2
	// connection.
	pool := x509.NewCertPool()
	pool.AddCert(cert1)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	const slow = "/slow/6MiB.bin"
	o.SetPathMode(slow, origintest.Mode{Bandwidth: 3 << 20})
	resp, err := client.Get("https://" + secure + slow)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Proto != "HTTP/2.0" || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatalf("%s, serial %v", resp.Proto, resp.TLS.PeerCertificates[0].SerialNumber)
	}
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	_, _, cert2 := writeServerCert(t, dir, 2)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	origintest.WaitFor(t, "the new certificate", func() bool { return strings.Contains(s.logs.String(), "new TLS certificate in use") })
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("the download open across the reload: %v", err)
	}
	if at, ok := origintest.Verify(append(head, rest...), slow, 1, 0); !ok || len(head)+len(rest) != 6<<20 {
		t.Fatalf("the download open across the reload: %d bytes, wrong at %d", len(head)+len(rest), at)
	}
	// The open connection goes on with its certificate...
	reused := false
	req, _ := http.NewRequest("GET", "https://"+secure+"/v/64KiB.bin", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !reused || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Errorf("after the reload: reused %v, serial %v; want the open connection, with its certificate", reused, resp.TLS.PeerCertificates[0].SerialNumber)
	}
	// ...and new ones get the renewed one.
	pool2 := x509.NewCertPool()
	pool2.AddCert(cert2)
	conn, err := tls.Dial("tcp", secure, &tls.Config{RootCAs: pool2, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("a new connection after the reload: %v", err)
	}
	st := conn.ConnectionState()
	conn.Close()
	if st.PeerCertificates[0].SerialNumber.Int64() != 2 || st.NegotiatedProtocol != "h2" {
		t.Errorf("a new connection: serial %v, ALPN %q; want 2, h2", st.PeerCertificates[0].SerialNumber, st.NegotiatedProtocol)
	}
	// The access log says how each came.
	seen := map[string]bool{}
	for _, l := range accessLines(t, s.logs.String()) {
		if l["path"] == path {
			seen[fmt.Sprint(l["proto"], " ", l["tls"])] = true
		}
	}
	for _, want := range []string{"HTTP/1.1 <nil>", "HTTP/2.0 TLS 1.3", "HTTP/1.1 TLS 1.3", "HTTP/2.0 <nil>"} {
		if !seen[want] {
			t.Errorf("no access line with proto and tls %q: %v", want, seen)
		}
	}
}
