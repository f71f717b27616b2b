package config

import (
	"strings"
	"testing"
)

// TestRedacted: the admin token and the cluster secret never show, even
// through an alias; the rest of the file, comments included, does.
func TestRedacted(t *testing.T) {
	text := `# the edge
listen: 127.0.0.1:8080
x-secrets:
  tok: &tok s3cret-admin-token-value-1234
admin: {listen: 127.0.0.1:8081, token: *tok}
cluster: {gossip: 127.0.0.1:7946, peer: 127.0.0.1:8090, secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtMTIzNDU2Nzg="}
store: {dir: ./d, max_bytes: 1GiB}
origins: {o: {url: http://127.0.0.1:9000}}
rules: [{match: /, origin: o}]
`
	c := &Config{Text: []byte(text), Source: "a.yaml"}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, secret := range []string{"s3cret-admin-token", "c2VjcmV0"} {
		if strings.Contains(got, secret) {
			t.Errorf("%s shows:\n%s", secret, got)
		}
	}
	for _, want := range []string{"# the edge", "listen: 127.0.0.1:8080", "secret: <redacted>", "http://127.0.0.1:9000", "tok: &tok <redacted>"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q missing:\n%s", want, got)
		}
	}
}
