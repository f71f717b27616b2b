package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// base is a valid configuration; tests replace one line of it.
const base = `listen: 127.0.0.1:8080
store:
  dir: ./data
  max_bytes: 1GiB
origins:
  default:
    url: http://127.0.0.1:9000
    connect_timeout: 5s
rules:
  - match: /
    origin: default
`

// with returns base with line old replaced by repl.
func with(t *testing.T, old, repl string) []byte {
	t.Helper()
	if !strings.Contains(base, old) {
		t.Fatalf("base has no %q", old)
	}
	return []byte(strings.Replace(base, old, repl, 1))
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"64KiB", 64 << 10, ""},
		{"1MiB", 1 << 20, ""},
		{"1048576", 1 << 20, ""},
		{"10GiB", 10 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"10 GiB", 10 << 30, ""},
		{"4mib", 4 << 20, ""},
		{"512B", 512, ""},
		{"0", 0, ""},
		{"1.5MiB", 0, `"1.5MiB" is not a whole number (want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB)`},
		{"-1", 0, `-1 is negative (want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB)`},
		{"4MB", 0, `"4MB" uses a decimal or ambiguous unit (want a binary unit KiB, MiB, GiB or TiB, e.g. 4MiB)`},
		{"4k", 0, `"4k" uses a decimal or ambiguous unit (want a binary unit KiB, MiB, GiB or TiB, e.g. 4MiB)`},
		{"4XiB", 0, `"4XiB" has an unknown unit "XiB" (want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB)`},
		{"MiB", 0, `"MiB" is not a size (want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB)`},
		{"", 0, `"" is not a size (want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB)`},
		{"9000000TiB", 0, `"9000000TiB" is too large (want at most 8388607TiB)`},
		{"99999999999999999999", 0, `"99999999999999999999" is too large (want at most 8388607TiB)`},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseSize(%q) = %d, %v; want error %s", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1000: "1000B", 64 << 10: "64KiB", 1536 << 10: "1536KiB", 4 << 20: "4MiB", 10 << 30: "10GiB", 3 << 40: "3TiB"} {
		got := FormatSize(n)
		if got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseSize(got); err != nil || back != n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	}
}

// TestSizeField checks sizes as they reach Parse: YAML integers and strings.
func TestSizeField(t *testing.T) {
	tests := []struct {
		yaml string
		want int64
		err  string
	}{
		{"10GiB", 10 << 30, ""},
		{"10737418240", 10 << 30, ""},
		{`"67108864"`, 64 << 20, ""},
		{"64MiB", 64 << 20, ""},
		{"-1", 0, `e.yaml:4: store.max_bytes: -1 is negative (want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB)`},
		{`"-1"`, 0, `e.yaml:4: store.max_bytes: -1 is negative (want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB)`},
		{"1.5GiB", 0, `e.yaml:4: store.max_bytes: "1.5GiB" is not a whole number (want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB)`},
		{"1.5", 0, `e.yaml:4: store.max_bytes: "1.5" is not a whole number (want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB)`},
		{"1048576", 0, `e.yaml:4: store.max_bytes: 1048576 is too small (want at least 64MiB, e.g. 10GiB)`},
		{"63MiB", 0, `e.yaml:4: store.max_bytes: 63MiB is too small (want at least 64MiB, e.g. 10GiB)`},
		{"99999999999999999999", 0, `e.yaml:4: store.max_bytes: "99999999999999999999" is too large (want at most 8388607TiB)`},
		{"[1]", 0, `e.yaml:4: store.max_bytes: want a size such as 4MiB, got a list`},
	}
	for _, tt := range tests {
		c, err := Parse("e.yaml", with(t, "max_bytes: 1GiB", "max_bytes: "+tt.yaml))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("max_bytes: %s: err = %v\nwant %s", tt.yaml, err, tt.err)
			}
			continue
		}
		if err != nil || c.Store.MaxBytes != tt.want {
			t.Errorf("max_bytes: %s: got %v, %v; want %d", tt.yaml, c, err, tt.want)
		}
	}
}

func TestSliceSize(t *testing.T) {
	const want = "(want a power of two from 64KiB to 64MiB, e.g. 1MiB)"
	tests := []struct {
		yaml string
		want int64
		err  string
	}{
		{"64KiB", 64 << 10, ""},
		{"1MiB", 1 << 20, ""},
		{"1048576", 1 << 20, ""},
		{"64MiB", 64 << 20, ""},
		{"3MiB", 0, "e.yaml:12: rules[0].slice_size: 3MiB is not a power of two " + want},
		{"32KiB", 0, "e.yaml:12: rules[0].slice_size: 32KiB is out of range " + want},
		{"128MiB", 0, "e.yaml:12: rules[0].slice_size: 128MiB is out of range " + want},
		{"0", 0, "e.yaml:12: rules[0].slice_size: 0 is out of range " + want},
		{"4MB", 0, `e.yaml:12: rules[0].slice_size: "4MB" uses a decimal or ambiguous unit (want a binary unit KiB, MiB, GiB or TiB, e.g. 4MiB)`},
	}
	for _, tt := range tests {
		c, err := Parse("e.yaml", with(t, "origin: default\n", "origin: default\n    slice_size: "+tt.yaml+"\n"))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("slice_size: %s: err = %v\nwant %s", tt.yaml, err, tt.err)
			}
			continue
		}
		if err != nil || c.Rules[0].SliceSize != tt.want {
			t.Errorf("slice_size: %s: got %v, %v; want %d", tt.yaml, c, err, tt.want)
		}
	}
}

func TestDurations(t *testing.T) {
	const units = "(want a Go duration such as 30s, 5m or 1h; units ns, us, ms, s, m, h)"
	tests := []struct {
		yaml string
		want time.Duration
		err  string
	}{
		{"5s", 5 * time.Second, ""},
		{"1500ms", 1500 * time.Millisecond, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"0s", 0, "e.yaml:8: origins.default.connect_timeout: 0s is not positive (want a duration greater than zero, e.g. 5s)"},
		{"-1s", 0, "e.yaml:8: origins.default.connect_timeout: -1s is not positive (want a duration greater than zero, e.g. 5s)"},
		{"5", 0, "e.yaml:8: origins.default.connect_timeout: 5 has no unit " + units},
		{"0.5", 0, "e.yaml:8: origins.default.connect_timeout: 0.5 has no unit " + units},
		{"1d", 0, `e.yaml:8: origins.default.connect_timeout: "1d" is not a duration ` + units},
		{"soon", 0, `e.yaml:8: origins.default.connect_timeout: "soon" is not a duration ` + units},
		{"{s: 5}", 0, `e.yaml:8: origins.default.connect_timeout: want a duration such as 5s, got a mapping`},
	}
	for _, tt := range tests {
		c, err := Parse("e.yaml", with(t, "connect_timeout: 5s", "connect_timeout: "+tt.yaml))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("connect_timeout: %s: err = %v\nwant %s", tt.yaml, err, tt.err)
			}
			continue
		}
		if err != nil || c.Origins["default"].ConnectTimeout != tt.want {
			t.Errorf("connect_timeout: %s: got %v, %v; want %v", tt.yaml, c, err, tt.want)
		}
	}
}

// TestBadFiles checks the full error text, file:line included, for every
// testdata/config/bad-*.yaml; each file's first lines say what it exercises.
func TestBadFiles(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"bad-unknown-field.yaml", []string{
			`bad-unknown-field.yaml:3: unknown field "listne" (known fields: name, listen, admin, store, origins, rules, trusted_proxies, max_connections, cluster, access_log, listeners)`,
			`bad-unknown-field.yaml:4: store.max_bytes: required (want a size of at least 64MiB, e.g. 10GiB)`,
			`bad-unknown-field.yaml:6: store: unknown field "max_byte" (known fields: dir, max_bytes, memory_cache, scrub_rate)`,
			`bad-unknown-field.yaml:10: origins.default: unknown field "timeout" (known fields: url, urls, connect_timeout, read_timeout, host, max_header_bytes, max_connections, max_fails, fail_timeout, health_check, tls)`,
			`bad-unknown-field.yaml:14: rules[0]: unknown field "slicesize" (known fields: match, hosts, origin, slice_size, default_ttl, query, max_ranges, last_modified_validator, max_run, abandoned_fills, override_ttl, stale_while_revalidate, stale_if_error, heuristic_fraction, heuristic_max, max_object_size, fetch_allowance, negative_ttl, max_variants, targeted_cache_control, forward_targeted_cache_control, client_cache_control, forward_headers)`,
		}},
		{"bad-cluster.yaml", []string{
			`bad-cluster.yaml:3: cluster.secret: required when cluster is present (want a secret shared by every node of the POP, e.g. the output of: openssl rand -hex 16)`,
			`bad-cluster.yaml:4: cluster.node: "1bad" is not a node name (want letters, digits and . - _ : /, starting with a letter, unique in the POP, e.g. edge-1)`,
			`bad-cluster.yaml:5: cluster.gossip: 0.0.0.0:7946 names no host other nodes can reach (want this node's own address, e.g. 10.0.0.5:7946)`,
			`bad-cluster.yaml:6: cluster.peer: 127.0.0.1:8080 takes the same socket as listen 127.0.0.1:8080 (want a port of its own)`,
			`bad-cluster.yaml:7: cluster.join: want a list of gossip addresses, got "127.0.0.1:7947" (e.g. [10.0.0.5:7946, 10.0.0.6:7946])`,
			`bad-cluster.yaml:8: cluster.group_slices: 0 is too small (want a whole number of at least 1; default 16)`,
		}},
		{"bad-empty.yaml", []string{
			`bad-empty.yaml: listen: required (want host:port, e.g. 127.0.0.1:8080)`,
			`bad-empty.yaml: store: required (want a mapping with dir and max_bytes)`,
			`bad-empty.yaml: origins: at least one origin is required (e.g. default: {url: http://127.0.0.1:9000})`,
			`bad-empty.yaml: rules: at least one rule is required (e.g. - {match: /, origin: default})`,
		}},
		{"bad-listen.yaml", []string{
			`bad-listen.yaml:2: listen: "8080" is not a host:port address (want host:port with a numeric port, e.g. 127.0.0.1:8080 or :8080)`,
			`bad-listen.yaml:3: admin.token: required when admin.listen is set (want a secret string)`,
			`bad-listen.yaml:4: admin.listen: "localhost:http" is not a host:port address (want host:port with a numeric port, e.g. 127.0.0.1:8080 or :8080)`,
		}},
		{"bad-admin.yaml", []string{
			`bad-admin.yaml:3: admin.listen: required when admin is present (want host:port, e.g. 127.0.0.1:8081; leave out admin to turn the admin API off)`,
			`bad-admin.yaml:4: admin.token: 6 characters is too short to be a secret (want at least 16, e.g. the output of: openssl rand -hex 16)`,
		}},
		{"bad-admin-token.yaml", []string{
			`bad-admin-token.yaml:4: admin.listen: localhost:8080 takes the same socket as the edge's listen :8080 (want a separate port)`,
			`bad-admin-token.yaml:5: admin.token: "change-me" is a placeholder anyone can guess (want a secret of your own, e.g. the output of: openssl rand -hex 16)`,
		}},
		{"bad-hosts.yaml", []string{
			`bad-hosts.yaml:2: name: "1 node" is not a cache name (want letters, digits and . - _ : /, starting with a letter, e.g. edge-1.example.com)`,
			`bad-hosts.yaml:4: trusted_proxies[1]: "10.0.0.0/33" is not an IP address or CIDR prefix (want a list of IP addresses or CIDR prefixes, e.g. [10.0.0.0/8, 192.0.2.7])`,
			`bad-hosts.yaml:5: max_connections: 0 is too small (want a whole number of at least 1; default: no limit)`,
			`bad-hosts.yaml:12: origins.default.max_header_bytes: 1KiB is out of range (want 4KiB to 16MiB; default 64KiB)`,
			`bad-hosts.yaml:15: rules[0].hosts[1]: "www.*.example.com" is a wildcard is only allowed as a whole first label (*.example.com) (want a list of host names, e.g. [www.example.com, "*.cdn.example.com"])`,
			`bad-hosts.yaml:15: rules[0].hosts[2]: "cdn.example.com:8080" is not a host name (no port, scheme or path) (want a list of host names, e.g. [www.example.com, "*.cdn.example.com"])`,
			`bad-hosts.yaml:17: rules[0].max_object_size: 0 is too small (want a size of at least 1 byte; default 1TiB)`,
			`bad-hosts.yaml:20: rules[1].hosts: empty (want a list of host names, e.g. [www.example.com, "*.cdn.example.com"]; leave hosts out to serve every host)`,
		}},
		{"bad-admin-same.yaml", []string{
			`bad-admin-same.yaml:4: admin.listen: 127.0.0.1:8080 takes the same socket as the edge's listen 127.0.0.1:8080 (want a separate port)`,
			`bad-admin-same.yaml:5: admin.token: contains spaces or control characters (want a secret of printable characters)`,
		}},
		{"bad-origins.yaml", []string{
			`bad-origins.yaml:8: origins.noscheme.url: "127.0.0.1:9000" has no scheme (want an http or https URL with a host, e.g. http://127.0.0.1:9000)`,
			`bad-origins.yaml:10: origins.ftp.url: "ftp://files.example.com/" has unsupported scheme "ftp" (want an http or https URL with a host, e.g. http://127.0.0.1:9000)`,
			`bad-origins.yaml:12: origins.nohost.url: "http:///path" has no host (want an http or https URL with a host, e.g. http://127.0.0.1:9000)`,
			`bad-origins.yaml:14: origins.query.url: "http://origin.example.com/?a=1" has a query (want an http or https URL with a host, e.g. http://127.0.0.1:9000)`,
			`bad-origins.yaml:16: origins.user.url: "https://bob:pw@origin.example.com" has a user name or password (want an http or https URL with a host, e.g. http://127.0.0.1:9000)`,
			`bad-origins.yaml:19: origins.zero.connect_timeout: 0s is not positive (want a duration greater than zero, e.g. 5s)`,
			`bad-origins.yaml:22: origins.negative.read_timeout: -5s is not positive (want a duration greater than zero, e.g. 30s)`,
			`bad-origins.yaml:25: origins.unitless.read_timeout: 30 has no unit (want a Go duration such as 30s, 5m or 1h; units ns, us, ms, s, m, h)`,
			`bad-origins.yaml:28: origins.days.connect_timeout: "1d" is not a duration (want a Go duration such as 30s, 5m or 1h; units ns, us, ms, s, m, h)`,
			`bad-origins.yaml:31: origins.badhost.host: "http://cdn.example.com/" is not a host (want a host name with an optional port, e.g. media.example.com)`,
			`bad-origins.yaml:32: origins.nourl.url: required (want an http or https URL, e.g. http://127.0.0.1:9000, or urls: a list of them)`,
			`bad-origins.yaml:34: origins: "bad name" is not a valid origin name (want letters, digits, '-', '_' or '.')`,
		}},
		{"bad-store.yaml", []string{
			`bad-store.yaml:4: store.dir: empty (want a directory, e.g. ./sliceedge-data)`,
			`bad-store.yaml:5: store.max_bytes: 32MiB is too small (want at least 64MiB, e.g. 10GiB)`,
			`bad-store.yaml:6: store.memory_cache: 1MiB is too small (want at least 16MiB, e.g. 1GiB)`,
		}},
		{"bad-store-units.yaml", []string{
			`bad-store-units.yaml:3: store.dir: required (want a directory, e.g. ./sliceedge-data)`,
			`bad-store-units.yaml:4: store.max_bytes: "10GB" uses a decimal or ambiguous unit (want a binary unit KiB, MiB, GiB or TiB, e.g. 4MiB)`,
			`bad-store-units.yaml:8: rules: at least one rule is required (e.g. - {match: /, origin: default})`,
		}},
		{"bad-rules.yaml", []string{
			`bad-rules.yaml:12: rules[0].slice_size: 3MiB is not a power of two (want a power of two from 64KiB to 64MiB, e.g. 1MiB)`,
			`bad-rules.yaml:14: rules[1].origin: unknown origin "cdn" (defined: default)`,
			`bad-rules.yaml:15: rules[1].slice_size: 128MiB is out of range (want a power of two from 64KiB to 64MiB, e.g. 1MiB)`,
			`bad-rules.yaml:16: rules[2].match: empty (want a path prefix such as /video/ or a glob such as /dl/*.iso)`,
			`bad-rules.yaml:18: rules[3].match: "video/" does not start with / (want a path prefix such as /video/ or a glob such as /dl/*.iso)`,
			`bad-rules.yaml:20: rules[3].query: unknown mode "drop" (want keep, sort or ignore)`,
			`bad-rules.yaml:21: rules[4].match: "/dl/[a-" is not a valid glob (want path.Match syntax: * and ? within one path segment, [a-z] classes, \ to escape)`,
			`bad-rules.yaml:23: rules[4].default_ttl: -1h is not positive (want a duration greater than zero, e.g. 1h)`,
			`bad-rules.yaml:26: rules[5].max_ranges: 0 is too small (want a whole number of at least 1; default 64)`,
			`bad-rules.yaml:27: rules[5].max_run: "many" is not a whole number (want a whole number of at least 1; default 16)`,
			`bad-rules.yaml:28: rules[5].last_modified_validator: "yes" is not a boolean (want true or false)`,
			`bad-rules.yaml:29: rules[6].match: required (want a path prefix such as /video/ or a glob such as /dl/*.iso)`,
			`bad-rules.yaml:30: rules[6].slice_size: "1.5MiB" is not a whole number (want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB)`,
			`bad-rules.yaml:31: rules[6].default_ttl: 0s is not positive (want a duration greater than zero, e.g. 1h)`,
			`bad-rules.yaml:32: rules[6].heuristic_fraction: 1.5 is out of range (want a number from 0 (off) to 1; default 0.1)`,
			`bad-rules.yaml:33: rules[6].stale_if_error: "soon" is not a duration (want a Go duration such as 30s, 5m or 1h; units ns, us, ms, s, m, h)`,
			`bad-rules.yaml:34: rules[6].abandoned_fills: unknown mode "later" (want finish or drop)`,
		}},
		{"bad-shadow.yaml", []string{
			`bad-shadow.yaml:12: rules[1]: never matches: every path it matches is matched first by rules[0] (match /video/)`,
			`bad-shadow.yaml:14: rules[2]: never matches: every path it matches is matched first by rules[0] (match /video/)`,
			`bad-shadow.yaml:18: rules[4]: never matches: every path it matches is matched first by rules[3] (match /dl/*.iso)`,
			`bad-shadow.yaml:22: rules[6]: never matches: rules[5] matches every path`,
		}},
		{"bad-shadow-glob.yaml", []string{
			`bad-shadow-glob.yaml:14: rules[1]: never matches: every path it matches is matched first by rules[0] (match /pkg/*)`,
			`bad-shadow-glob.yaml:23: rules[4]: never matches: every path it matches is matched first by rules[3] (match /)`,
		}},
		{"bad-syntax.yaml", []string{
			`bad-syntax.yaml:5: YAML: mapping values are not allowed in this context`,
		}},
		{"bad-two-documents.yaml", []string{
			`bad-two-documents.yaml:3: a second YAML document (want exactly one document)`,
		}},
		{"bad-duplicate.yaml", []string{
			`bad-duplicate.yaml:9: origins: duplicate field "default" (first at line 7)`,
			`bad-duplicate.yaml:14: duplicate field "listen" (first at line 2)`,
		}},
		{"bad-types.yaml", []string{
			`bad-types.yaml:2: listen: want an address, got a list`,
			`bad-types.yaml:3: admin: want a mapping with keys listen, token, got "on"`,
			`bad-types.yaml:5: store.dir: want a directory, got a mapping`,
			`bad-types.yaml:6: store.max_bytes: "lots" is not a size (want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB)`,
			`bad-types.yaml:7: origins: want a mapping of names to origins, got a list`,
			`bad-types.yaml:9: rules: want a list of rules, got a mapping`,
		}},
		{"bad-pools.yaml", []string{
			`bad-pools.yaml:9: origins.both.urls: url and urls are both set (want url for one server, or urls for a pool of them)`,
			`bad-pools.yaml:11: origins.empty.urls: the list is empty (want a list of http or https URLs, e.g. [http://10.0.0.1:8080, http://10.0.0.2:8080])`,
			`bad-pools.yaml:13: origins.twice.urls[1]: "ftp://10.0.0.2/" has unsupported scheme "ftp" (want an http or https URL with a host, e.g. http://127.0.0.1:9000)`,
			`bad-pools.yaml:13: origins.twice.urls[2]: http://10.0.0.1:8080 is listed twice (also origins.twice.urls[0]); list each member once`,
			`bad-pools.yaml:16: origins.nopath.health_check.path: required (the path every member is asked for, e.g. /healthz; 2xx or 3xx means healthy)`,
			`bad-pools.yaml:19: origins.slow.health_check.healthy: 0 is too small (want a whole number of at least 1; default 2)`,
			`bad-pools.yaml:19: origins.slow.health_check.timeout: 5s is longer than the interval 1s (a check must end before the next one starts)`,
			`bad-pools.yaml:22: origins.limits.max_connections: 0 is too small (want a whole number of at least 1; default: no limit)`,
			`bad-pools.yaml:23: origins.limits.max_fails: -1 is too small (want a whole number of at least 1; default 3)`,
			`bad-pools.yaml:24: origins.limits.fail_timeout: 0s is not positive (want a duration greater than zero, e.g. 10s)`,
			`bad-pools.yaml:27: origins.noca.tls.ca: ./testdata/no-such-ca.pem: open ./testdata/no-such-ca.pem: no such file or directory (want a PEM file of the CAs that sign the origin's certificates)`,
			`bad-pools.yaml:30: origins.halfcert.tls: cert and key go together (a client certificate and its private key, both PEM files)`,
		}},
		{"bad-no-origins.yaml", []string{
			`bad-no-origins.yaml:8: rules[0].origin: unknown origin "default" (no origins are defined)`,
			`bad-no-origins.yaml: origins: at least one origin is required (e.g. default: {url: http://127.0.0.1:9000})`,
		}},
	}
	files, err := filepath.Glob("../testdata/config/bad-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("%d bad-*.yaml files, %d test cases: every file needs a case", len(files), len(tests))
	}
	for _, tt := range tests {
		data, err := os.ReadFile(filepath.Join("../testdata/config", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(tt.file, data)
		if c != nil {
			t.Errorf("%s: Parse returned a Config with error %v", tt.file, err)
		}
		want := strings.Join(tt.want, "\n")
		if err == nil || err.Error() != want {
			t.Errorf("%s: error:\n%v\nwant:\n%s", tt.file, err, want)
		}
	}
}

// TestErrorValues checks that the joined error holds one *Error per problem.
func TestErrorValues(t *testing.T) {
	_, err := Parse("e.yaml", with(t, "max_bytes: 1GiB", "max_bytes: 1MiB\n  color: red"))
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Fatalf("err = %v, want two joined errors", err)
	}
	var e *Error
	if !errors.As(joined.Unwrap()[1], &e) {
		t.Fatalf("%T is not *Error", joined.Unwrap()[1])
	}
	want := Error{File: "e.yaml", Line: 5, Field: "store", Message: `unknown field "color" (known fields: dir, max_bytes, memory_cache, scrub_rate)`}
	if *e != want {
		t.Errorf("got %+v, want %+v", *e, want)
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if c.Source != DefaultSource || c.Listen != "127.0.0.1:8080" || c.Admin != (Admin{}) {
		t.Errorf("Default() = source %q listen %q admin %+v", c.Source, c.Listen, c.Admin)
	}
	if c.Store != (Store{Dir: "./sliceedge-data", MaxBytes: 10 << 30, MemoryCache: DefaultMemoryCache, ScrubRate: DefaultScrubRate}) {
		t.Errorf("Default().Store = %+v", c.Store)
	}
	o := c.Origins["default"]
	if len(c.Origins) != 1 || o == nil || o.URL.String() != "http://127.0.0.1:9000" ||
		o.ConnectTimeout != DefaultConnectTimeout || o.ReadTimeout != DefaultReadTimeout || o.Host != "" {
		t.Fatalf("Default().Origins = %+v", c.Origins)
	}
	want := Rule{Index: 0, Match: "/", Hosts: []string{"127.0.0.1", "localhost"}, Origin: o, SliceSize: DefaultSliceSize, Query: QueryKeep, MaxRanges: DefaultMaxRanges, MaxRun: DefaultMaxRun, HeuristicFraction: DefaultHeuristicFraction, HeuristicMax: DefaultHeuristicMax,
		MaxObjectSize: DefaultMaxObjectSize, FetchAllowance: DefaultFetchAllowance, LastModifiedValidator: true, MaxVariants: DefaultMaxVariants, TargetedCacheControl: DefaultTargetedCacheControl}
	if len(c.Rules) != 1 || !reflect.DeepEqual(*c.Rules[0], want) {
		t.Errorf("Default().Rules = %+v, want [%+v]", c.Rules, want)
	}
	if Default() == c || Default().Rules[0] == c.Rules[0] {
		t.Error("Default() shares state between calls")
	}
}

// TestSample parses the operators' sample and checks every value in it.
func TestSample(t *testing.T) {
	const file = "../testdata/config/edge.yaml"
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != file || c.Listen != "127.0.0.1:8080" || c.Admin != (Admin{}) || c.Name != "" || c.TrustedProxies != nil || c.MaxConnections != 0 {
		t.Errorf("source %q listen %q admin %+v name %q proxies %v max_connections %d", c.Source, c.Listen, c.Admin, c.Name, c.TrustedProxies, c.MaxConnections)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("the sample draws warnings: %v", c.Warnings)
	}
	if c.Store != (Store{Dir: "./sliceedge-data", MaxBytes: 10 << 30, MemoryCache: 128 << 20, ScrubRate: 16 << 20}) {
		t.Errorf("store %+v", c.Store)
	}
	o := c.Origins["default"]
	if o == nil || o.URL.String() != "http://127.0.0.1:9000" || o.ConnectTimeout != 5*time.Second || o.ReadTimeout != 30*time.Second || o.MaxHeaderBytes != 64<<10 {
		t.Fatalf("origins %+v", c.Origins)
	}
	hosts := []string{"127.0.0.1", "localhost"}
	want := []Rule{
		{Index: 0, Match: "/video/", Hosts: hosts, Origin: o, SliceSize: 4 << 20, DefaultTTL: time.Hour, Query: QueryIgnore, MaxRanges: 64, MaxRun: 16, StaleWhileRevalidate: 30 * time.Second, StaleIfError: time.Hour, HeuristicFraction: DefaultHeuristicFraction, HeuristicMax: DefaultHeuristicMax, MaxObjectSize: 1 << 40, FetchAllowance: 16 << 20, MaxVariants: 16, TargetedCacheControl: DefaultTargetedCacheControl},
		{Index: 1, Match: "/dl/*.iso", Hosts: hosts, Origin: o, SliceSize: 16 << 20, Query: QuerySort, MaxRanges: 64, MaxRun: 16, HeuristicFraction: DefaultHeuristicFraction, HeuristicMax: DefaultHeuristicMax, MaxObjectSize: 1 << 40, FetchAllowance: 16 << 20, LastModifiedValidator: true, MaxVariants: 16, TargetedCacheControl: DefaultTargetedCacheControl},
		{Index: 2, Match: "/", Hosts: hosts, Origin: o, SliceSize: 1 << 20, MaxRanges: 64, MaxRun: 16, HeuristicFraction: DefaultHeuristicFraction, HeuristicMax: DefaultHeuristicMax, MaxObjectSize: 1 << 40, FetchAllowance: 16 << 20, LastModifiedValidator: true, MaxVariants: 16, TargetedCacheControl: DefaultTargetedCacheControl},
	}
	if len(c.Rules) != len(want) {
		t.Fatalf("%d rules, want %d", len(c.Rules), len(want))
	}
	for i, r := range c.Rules {
		if !reflect.DeepEqual(*r, want[i]) {
			t.Errorf("rules[%d] = %+v\nwant %+v", i, *r, want[i])
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(file, with(t, "listen: 127.0.0.1:8080", "listen: nowhere"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(file)
	want := file + `:1: listen: "nowhere" is not a host:port address (want host:port with a numeric port, e.g. 127.0.0.1:8080 or :8080)`
	if err == nil || err.Error() != want {
		t.Errorf("Load: %v\nwant %s", err, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestOriginURL(t *testing.T) {
	tests := []struct{ in, url, path string }{
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000", ""},
		{"http://127.0.0.1:9000/", "http://127.0.0.1:9000", ""},
		{"https://origin.example.com/media/", "https://origin.example.com/media", "/media"},
		{"https://[::1]:8443/a/b", "https://[::1]:8443/a/b", "/a/b"},
	}
	for _, tt := range tests {
		c, err := Parse("e.yaml", with(t, "url: http://127.0.0.1:9000", "url: "+tt.in))
		if err != nil {
			t.Errorf("url %s: %v", tt.in, err)
			continue
		}
		u := c.Origins["default"].URL
		if u.String() != tt.url || u.Path != tt.path {
			t.Errorf("url %s = %s (path %q), want %s (path %q)", tt.in, u, u.Path, tt.url, tt.path)
		}
	}
}

func TestRuleMatch(t *testing.T) {
	c, err := Parse("e.yaml", []byte(`listen: :8080
store: {dir: d, max_bytes: 1GiB}
origins: {default: {url: "http://o"}}
rules:
  - {match: /video/, origin: default}
  - {match: /dl/*.iso, origin: default}
  - {match: "/img/??.png", origin: default}
  - {match: "/v[0-9]/*", origin: default}
  - {match: /dl/, origin: default}
  - {match: /video, origin: default}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want int // rule index, -1 for none
	}{
		{"/video/a.mp4", 0},
		{"/video/a/b/c.mp4", 0},
		{"/video/", 0},
		{"/video", 5},    // prefix "/video/" needs the slash
		{"/videos/x", 5}, // a prefix is a string prefix, not a segment prefix
		{"/dl/a.iso", 1},
		{"/dl/.iso", 1},
		{"/dl/x/a.iso", 4}, // * does not cross '/'
		{"/dl/a.iso.txt", 4},
		{"/img/ab.png", 2},
		{"/img/abc.png", -1},
		{"/v1/x", 3},
		{"/v1/x/y", -1},
		{"/other", -1},
		{"", -1},
	}
	for _, tt := range tests {
		got := c.Rule("", tt.path)
		switch {
		case tt.want < 0 && got != nil:
			t.Errorf("Rule(%q) = rules[%d] (%s), want nil", tt.path, got.Index, got.Match)
		case tt.want >= 0 && got != c.Rules[tt.want]:
			t.Errorf("Rule(%q) = %+v, want rules[%d] (%s)", tt.path, got, tt.want, c.Rules[tt.want].Match)
		}
	}
	if got := Default().Rule("localhost", "/anything/at/all"); got == nil || got.Match != "/" {
		t.Errorf("Default().Rule = %+v, want the / rule", got)
	}
}

// TestShadowAllowed checks rules that look alike but can each match something.
func TestShadowAllowed(t *testing.T) {
	_, err := Parse("e.yaml", []byte(`listen: :8080
store: {dir: d, max_bytes: 1GiB}
origins: {default: {url: "http://o"}}
rules:
  - {match: /dl/*.iso, origin: default}
  - {match: /dl/, origin: default}
  - {match: /dl*, origin: default}
  - {match: /video/hd/, origin: default}
  - {match: /video/, origin: default}
  - {match: /*, origin: default}
  - {match: /, origin: default}
`))
	if err != nil {
		t.Error(err)
	}
}

func TestQueryNormalize(t *testing.T) {
	tests := []struct {
		mode    QueryMode
		in, out string
	}{
		{QueryKeep, "b=2&a=1", "b=2&a=1"},
		{QueryKeep, "", ""},
		{QueryIgnore, "b=2&a=1", ""},
		{QuerySort, "b=2&a=1", "a=1&b=2"},
		{QuerySort, "b=2&a=3&a=1&&c", "a=3&a=1&b=2&c"},
		{QuerySort, "x=%20y&w", "w&x=%20y"},
		{QuerySort, "", ""},
	}
	for _, tt := range tests {
		if got := tt.mode.Normalize(tt.in); got != tt.out {
			t.Errorf("%v.Normalize(%q) = %q, want %q", tt.mode, tt.in, got, tt.out)
		}
	}
	for _, m := range []QueryMode{QueryKeep, QueryIgnore, QuerySort} {
		if back, ok := parseQueryMode(m.String()); !ok || back != m {
			t.Errorf("parseQueryMode(%q) = %v, %v", m.String(), back, ok)
		}
	}
}

// TestOptionalKeys checks the keys with defaults and that null means absent.
func TestOptionalKeys(t *testing.T) {
	c, err := Parse("e.yaml", []byte(`listen: :8080
admin:
store: {dir: d, max_bytes: 1GiB}
origins:
  a: {url: "http://o", host: cdn.example.com:8080, read_timeout: 2m}
rules:
  - match: /
    origin: a
    default_ttl: 10m
    query: sort
    max_ranges: 1
    last_modified_validator: true
    max_run: 256
    override_ttl: 5m
    negative_ttl: 30s
    max_variants: 4
    stale_while_revalidate: 30s
    stale_if_error: 2h
    heuristic_fraction: 0
    heuristic_max: 1h
    abandoned_fills: drop
    slice_size: ~
    max_object_size: 2TiB
    fetch_allowance: 32MiB
    targeted_cache_control: acme-cache-control
    forward_targeted_cache_control: true
    client_cache_control: honor
    hosts: [WWW.Example.COM., "*.cdn.example.com"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin != (Admin{}) {
		t.Errorf("admin = %+v, want off", c.Admin)
	}
	o := c.Origins["a"]
	if o.Name != "a" || o.Host != "cdn.example.com:8080" || o.ReadTimeout != 2*time.Minute || o.ConnectTimeout != DefaultConnectTimeout {
		t.Errorf("origin = %+v", o)
	}
	want := Rule{Match: "/", Origin: o, SliceSize: DefaultSliceSize, DefaultTTL: 10 * time.Minute, Query: QuerySort, MaxRanges: 1, LastModifiedValidator: true, MaxRun: 256, DropAbandonedFills: true,
		OverrideTTL: 5 * time.Minute, StaleWhileRevalidate: 30 * time.Second, StaleIfError: 2 * time.Hour, HeuristicFraction: 0, HeuristicMax: time.Hour,
		MaxObjectSize: 2 << 40, FetchAllowance: 32 << 20, Hosts: []string{"www.example.com", "*.cdn.example.com"},
		NegativeTTL: 30 * time.Second, MaxVariants: 4,
		TargetedCacheControl: "Acme-Cache-Control", ForwardTargetedCacheControl: true, HonorClientCacheControl: true}
	if !reflect.DeepEqual(*c.Rules[0], want) {
		t.Errorf("rule = %+v\nwant %+v", *c.Rules[0], want)
	}
}

// TestSyntaxErrorValue checks that a YAML syntax error is an *Error too.
func TestSyntaxErrorValue(t *testing.T) {
	_, err := Parse("e.yaml", []byte("listen: [127.0.0.1:8080\n"))
	var e *Error
	if !errors.As(err, &e) || e.File != "e.yaml" || e.Line != 1 {
		t.Errorf("err = %#v, want an *Error for e.yaml:1", err)
	}
}

func TestHostName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"www.site.test", "www.site.test"},
		{"WWW.Site.Test", "www.site.test"},
		{"www.site.test.", "www.site.test"},
		{"www.site.test:80", "www.site.test"},
		{"WWW.SITE.TEST.:8080", "www.site.test"},
		{"127.0.0.1:8080", "127.0.0.1"},
		{"[::1]:80", "[::1]"},
		{"[::1]", "[::1]"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := HostName(tt.in); got != tt.want {
			t.Errorf("HostName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRuleHosts checks that rules match by host and path, and which hosts
// any rule accepts.
func TestRuleHosts(t *testing.T) {
	c, err := Parse("e.yaml", []byte(`listen: :8080
store: {dir: d, max_bytes: 1GiB}
origins: {default: {url: "http://o"}}
rules:
  - {match: /v/, hosts: [www.site.test], origin: default}
  - {match: /, hosts: ["*.cdn.site.test"], origin: default}
  - {match: /, hosts: [WWW.Site.Test.], origin: default}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, path string
		want       int // rule index, -1 for none
		accepted   bool
	}{
		{"www.site.test", "/v/a", 0, true},
		{"www.site.test", "/x", 2, true},
		{"a.cdn.site.test", "/v/a", 1, true},
		{"a.b.cdn.site.test", "/x", 1, true},
		{"cdn.site.test", "/x", -1, false}, // *.x is not x itself
		{"evil.test", "/v/a", -1, false},
		{"xcdn.site.test", "/x", -1, false},
		{"", "/v/a", -1, false},
	}
	for _, tt := range tests {
		got := c.Rule(tt.host, tt.path)
		switch {
		case tt.want < 0 && got != nil:
			t.Errorf("Rule(%q, %q) = rules[%d], want nil", tt.host, tt.path, got.Index)
		case tt.want >= 0 && got != c.Rules[tt.want]:
			t.Errorf("Rule(%q, %q) = %+v, want rules[%d]", tt.host, tt.path, got, tt.want)
		}
		if a := c.AcceptsHost(tt.host); a != tt.accepted {
			t.Errorf("AcceptsHost(%q) = %v, want %v", tt.host, a, tt.accepted)
		}
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings for rules that all have hosts: %v", c.Warnings)
	}
}

// TestWarnings checks that a rule without hosts loads, with a warning that
// names it.
func TestWarnings(t *testing.T) {
	c, err := Parse("e.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.Error())
	}
	want := []string{`e.yaml:10: rules[0]: no hosts: every Host header value a client sends gets its own copy of the objects, and a purge must name the same host; list the names this rule serves (hosts: [www.example.com, "*.cdn.example.com"])`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestGlobCovers checks the glob-under-glob shadowing test, which must
// never say a glob is covered when some path escapes it.
func TestGlobCovers(t *testing.T) {
	tests := []struct {
		earlier, later string
		want           bool
	}{
		{"/dl/*", "/dl/*.iso", true},
		{"/dl/*.iso", "/dl/*.iso", true},
		{"/dl/*", "/dl/a/*.iso", false}, // * does not cross '/'
		{"/*/*.iso", "/dl/*.iso", true},
		{"/dl/?.iso", "/dl/*.iso", false}, // ? is one character, * any number
		{"/dl/*.iso", "/dl/?.iso", true},
		{"/dl/[a-z].iso", "/dl/a.iso", true},
		{"/dl/[a-z].iso", "/dl/[a-c].iso", false}, // sound, not complete
		{"/dl/[a-z].iso", "/dl/[a-z].iso", true},
		{"/dl/?.iso", "/dl/[a-z].iso", true},
		{"/dl/*.iso", "/dl/*", false},
		{"/dl*", "/dl/*.iso", false},
		{"/v[0-9]/*", "/v1/*", true},
		{"/v[0-9]/*", "/vx/*", false},
		{"/a/\\*", "/a/\\*", true},
		{"/a/*", "/a/\\*", true},
	}
	for _, tt := range tests {
		if got := globCovers(tt.earlier, tt.later); got != tt.want {
			t.Errorf("globCovers(%q, %q) = %v, want %v", tt.earlier, tt.later, got, tt.want)
		}
	}
}

// forward_headers lists request fields cached fetches forward; the ones
// the edge sets itself, hop-by-hop ones and credentials are refused.
func TestForwardHeaders(t *testing.T) {
	const base = `
listen: 127.0.0.1:8080
store: {dir: ./d, max_bytes: 1GiB}
origins: {default: {url: "http://127.0.0.1:9000"}}
rules:
  - match: /
    hosts: [example.com]
    origin: default
    forward_headers: %s
`
	c, err := Parse("fh.yaml", fmt.Appendf(nil, base, "[accept-language, X-Device]"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Rules[0].ForwardHeaders; !reflect.DeepEqual(got, []string{"Accept-Language", "X-Device"}) {
		t.Errorf("ForwardHeaders = %q", got)
	}
	for _, bad := range []string{"[Range]", "[Authorization]", "[Connection]", "[Cookie]", `["bad header"]`, "X-Device"} {
		if _, err := Parse("fh.yaml", fmt.Appendf(nil, base, bad)); err == nil || !strings.Contains(err.Error(), "forward_headers") {
			t.Errorf("forward_headers: %s: error %v, want one naming forward_headers", bad, err)
		}
	}
}

// TestClusterSection: a cluster section parses into Cluster, the node name
// defaulting to the config's name and group_slices to DefaultGroupSlices;
// without the section Cluster is nil, and the node stands alone.
func TestClusterSection(t *testing.T) {
	const base = "name: edge-a\nlisten: 127.0.0.1:8080\nstore: {dir: d, max_bytes: 1GiB}\norigins: {default: {url: http://127.0.0.1:9000}}\nrules: [{match: /, origin: default}]\n"
	c, err := Parse("alone.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != nil {
		t.Errorf("no cluster section: Cluster = %+v, want nil", c.Cluster)
	}
	c, err = Parse("pop.yaml", []byte(base+"cluster: {gossip: 10.0.0.5:7946, peer: 10.0.0.5:8090, join: [10.0.0.6:7946], secret: 0123456789abcdef0123}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Cluster{Node: "edge-a", Gossip: "10.0.0.5:7946", Peer: "10.0.0.5:8090", Join: []string{"10.0.0.6:7946"}, Secret: "0123456789abcdef0123", GroupSlices: DefaultGroupSlices}
	if c.Cluster == nil || !reflect.DeepEqual(*c.Cluster, want) {
		t.Errorf("Cluster = %+v, want %+v", c.Cluster, want)
	}
}
