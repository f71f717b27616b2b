package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"
)

// Parse reads a configuration from YAML data and validates it. name is the
// file name used in error messages ("edge.yaml:7: rules[0].slice_size: ...")
// and stored as Config.Source. The error, if any, joins one *Error per
// problem found.
func Parse(name string, data []byte) (*Config, error) {
	d := &decoder{file: name}
	root, err := d.document(data)
	if err != nil {
		return nil, errors.Join(err)
	}
	c := d.config(root)
	if len(d.errs) > 0 {
		// Line order reads top to bottom; missing top-level keys (line 0) last.
		sort.SliceStable(d.errs, func(i, j int) bool {
			li, lj := d.errs[i].Line, d.errs[j].Line
			return li != 0 && (lj == 0 || li < lj)
		})
		errs := make([]error, len(d.errs))
		for i, e := range d.errs {
			errs[i] = e
		}
		return nil, errors.Join(errs...)
	}
	c.Source = name
	c.Warnings = d.warns
	c.Text = data
	return c, nil
}

// decoder collects errors while walking one document.
type decoder struct {
	file  string
	errs  []*Error
	warns []*Error
}

func (d *decoder) errorf(line int, field, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) warnf(line int, field, format string, args ...any) {
	d.warns = append(d.warns, &Error{File: d.file, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

// document returns the root node of the only document in data, or nil for
// an empty file. A YAML syntax error is returned at once, as file:line when
// yaml says the line.
func (d *decoder) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err == io.EOF {
		return nil, nil
	} else if err != nil {
		return nil, d.syntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: d.file, Line: extra.Line, Message: "a second YAML document (want exactly one document)"}
	} else if err != io.EOF {
		return nil, d.syntaxError(err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

func (d *decoder) syntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil {
				return &Error{File: d.file, Line: line, Message: "YAML: " + text}
			}
		}
	}
	return &Error{File: d.file, Message: "YAML: " + msg}
}

// entry is one key: value pair of a mapping.
type entry struct {
	key, val *yaml.Node
}

// line is where errors about the entry point: its key.
func (e entry) line() int { return e.key.Line }

type entries []entry

func (es entries) get(key string) (entry, bool) {
	for _, e := range es {
		if e.key.Value == key {
			return e, true
		}
	}
	return entry{}, false
}

// deref follows an alias to its anchor.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of a node for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	}
	return strconv.Quote(n.Value)
}

// mapping returns the entries of the mapping n, reporting a node that is
// not a mapping, duplicate keys and (when known is not empty) unknown keys.
// Entries with null values ("admin:" with nothing after it) are left out
// of a mapping with known keys: they mean the same as an absent key.
func (d *decoder) mapping(n *yaml.Node, line int, field string, known ...string) (entries, bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		want := "a mapping"
		if len(known) > 0 {
			want = "a mapping with keys " + strings.Join(known, ", ")
		}
		d.errorf(line, field, "want %s, got %s", want, describe(n))
		return nil, false
	}
	var es entries
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k.Line, field, "want a name as key, got %s", describe(k))
			continue
		}
		if len(known) > 0 && !slices.Contains(known, k.Value) {
			d.errorf(k.Line, field, "unknown field %q (known fields: %s)", k.Value, strings.Join(known, ", "))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k.Line, field, "duplicate field %q (first at line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		if len(known) == 0 || !isNull(v) {
			es = append(es, entry{key: k, val: v})
		}
	}
	return es, true
}

// scalar returns the text of e's value, reporting a value that is a
// mapping or a list.
func (d *decoder) scalar(e entry, field, want string) (string, bool) {
	if e.val.Kind != yaml.ScalarNode {
		d.errorf(e.val.Line, field, "want %s, got %s", want, describe(e.val))
		return "", false
	}
	return e.val.Value, true
}

// address checks a listen address: host:port with a numeric port; the host
// may be empty to listen on every interface.
func (d *decoder) address(e entry, field string) string {
	const want = "want host:port with a numeric port, e.g. 127.0.0.1:8080 or :8080"
	s, ok := d.scalar(e, field, "an address")
	if !ok {
		return ""
	}
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		d.errorf(e.val.Line, field, "%s is not a host:port address (%s)", describe(e.val), want)
		return ""
	}
	return s
}

// size reads a byte count written as an integer or a string ParseSize accepts.
func (d *decoder) size(e entry, field string) (int64, bool) {
	s, ok := d.scalar(e, field, "a size such as 4MiB")
	if !ok {
		return 0, false
	}
	if e.val.ShortTag() == "!!int" {
		var n int64
		if err := e.val.Decode(&n); err != nil {
			d.errorf(e.val.Line, field, "%s is too large (want at most 8388607TiB)", s)
			return 0, false
		}
		if n < 0 {
			d.errorf(e.val.Line, field, "%s is negative (%s)", s, sizeWant)
			return 0, false
		}
		return n, true
	}
	n, err := ParseSize(s)
	if err != nil {
		d.errorf(e.val.Line, field, "%v", err)
		return 0, false
	}
	return n, true
}

// duration reads a Go duration ("30s", "1h30m") greater than zero.
func (d *decoder) duration(e entry, field, example string) (time.Duration, bool) {
	want := "want a Go duration such as 30s, 5m or 1h; units ns, us, ms, s, m, h"
	s, ok := d.scalar(e, field, "a duration such as "+example)
	if !ok {
		return 0, false
	}
	if e.val.ShortTag() == "!!int" || e.val.ShortTag() == "!!float" {
		d.errorf(e.val.Line, field, "%s has no unit (%s)", s, want)
		return 0, false
	}
	t, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(e.val.Line, field, "%q is not a duration (%s)", s, want)
		return 0, false
	}
	if t <= 0 {
		d.errorf(e.val.Line, field, "%s is not positive (want a duration greater than zero, e.g. %s)", s, example)
		return 0, false
	}
	return t, true
}

// count reads a whole number of at least 1.
func (d *decoder) count(e entry, field string, def int64) (int64, bool) {
	want := fmt.Sprintf("want a whole number of at least 1; default %d", def)
	if def == 0 {
		want = "want a whole number of at least 1; default: no limit"
	}
	s, ok := d.scalar(e, field, "a number")
	if !ok {
		return 0, false
	}
	var n int64
	if e.val.ShortTag() != "!!int" || e.val.Decode(&n) != nil {
		d.errorf(e.val.Line, field, "%s is not a whole number (%s)", describe(e.val), want)
		return 0, false
	}
	if n < 1 {
		d.errorf(e.val.Line, field, "%s is too small (%s)", s, want)
		return 0, false
	}
	return n, true
}

func (d *decoder) boolean(e entry, field string) bool {
	var b bool
	if e.val.Kind != yaml.ScalarNode || e.val.ShortTag() != "!!bool" || e.val.Decode(&b) != nil {
		d.errorf(e.val.Line, field, "%s is not a boolean (want true or false)", describe(e.val))
	}
	return b
}

func (d *decoder) config(root *yaml.Node) *Config {
	c := &Config{Origins: map[string]*Origin{}}
	var top entries
	if root != nil && !isNull(root) {
		top, _ = d.mapping(root, root.Line, "", "name", "listen", "admin", "store", "origins", "rules", "trusted_proxies", "max_connections", "cluster", "access_log", "listeners")
	}
	if e, ok := top.get("name"); ok {
		if s, ok := d.scalar(e, "name", "a name"); ok {
			if !validCacheName(s) {
				d.errorf(e.val.Line, "name", "%q is not a cache name (want letters, digits and . - _ : /, starting with a letter, e.g. edge-1.example.com)", s)
			} else {
				c.Name = s
			}
		}
	}
	if e, ok := top.get("trusted_proxies"); ok {
		c.TrustedProxies = d.prefixes(e, "trusted_proxies")
	}
	if e, ok := top.get("max_connections"); ok {
		if n, ok := d.count(e, "max_connections", 0); ok {
			c.MaxConnections = int(min(n, 1<<31-1))
		}
	}
	if e, ok := top.get("access_log"); ok {
		c.AccessLog = d.accessLog(e)
	}
	le, hasListen := top.get("listen")
	lse, hasListeners := top.get("listeners")
	switch {
	case hasListen && hasListeners:
		d.errorf(lse.line(), "listeners", "listen is set too (want one of them: listen for one plain HTTP address, listeners for a list)")
	case hasListen:
		c.Listen = d.address(le, "listen")
		c.Listeners = []Listener{{Address: c.Listen}}
	case hasListeners:
		c.Listeners = d.listeners(lse)
		if len(c.Listeners) > 0 {
			c.Listen = c.Listeners[0].Address
		}
	default:
		d.errorf(0, "listen", "required (want host:port, e.g. 127.0.0.1:8080)")
	}
	if e, ok := top.get("admin"); ok {
		c.Admin = d.admin(e, c.Listeners)
	}
	if e, ok := top.get("cluster"); ok {
		c.Cluster = d.cluster(e, c)
	}
	if e, ok := top.get("store"); ok {
		c.Store = d.store(e)
	} else {
		d.errorf(0, "store", "required (want a mapping with dir and max_bytes)")
	}
	var names []string // defined origins, sorted, for messages
	if e, ok := top.get("origins"); ok {
		if e.val.Kind != yaml.MappingNode {
			d.errorf(e.val.Line, "origins", "want a mapping of names to origins, got %s", describe(e.val))
		} else {
			oes, _ := d.mapping(e.val, e.line(), "origins")
			for _, oe := range oes {
				o := d.origin(oe)
				c.Origins[o.Name] = o
				names = append(names, o.Name)
			}
			if len(oes) == 0 {
				d.errorf(e.line(), "origins", "at least one origin is required (e.g. default: {url: http://127.0.0.1:9000})")
			}
		}
	} else {
		d.errorf(0, "origins", "at least one origin is required (e.g. default: {url: http://127.0.0.1:9000})")
	}
	sort.Strings(names)
	if e, ok := top.get("rules"); ok {
		c.Rules = d.rules(e, c.Origins, names)
	} else {
		d.errorf(0, "rules", "at least one rule is required (e.g. - {match: /, origin: default})")
	}
	return c
}

func (d *decoder) admin(e entry, listeners []Listener) Admin {
	var a Admin
	fs, ok := d.mapping(e.val, e.line(), "admin", "listen", "token")
	if !ok {
		return a
	}
	if le, ok := fs.get("listen"); ok {
		a.Listen = d.address(le, "admin.listen")
		for _, l := range listeners {
			if a.Listen != "" && listenConflict(a.Listen, l.Address) {
				d.errorf(le.val.Line, "admin.listen", "%s takes the same socket as the edge's listen %s (want a separate port)", a.Listen, l.Address)
			}
		}
	} else {
		d.errorf(e.line(), "admin.listen", "required when admin is present (want host:port, e.g. 127.0.0.1:8081; leave out admin to turn the admin API off)")
	}
	if te, ok := fs.get("token"); ok {
		if s, ok := d.scalar(te, "admin.token", "a string"); ok {
			switch {
			case s == "":
				d.errorf(te.val.Line, "admin.token", "empty (want a secret string)")
			case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
				d.errorf(te.val.Line, "admin.token", "contains spaces or control characters (want a secret of printable characters)")
			case placeholderToken(s):
				d.errorf(te.val.Line, "admin.token", "%q is a placeholder anyone can guess (want a secret of your own, e.g. the output of: openssl rand -hex 16)", s)
			case len(s) < MinTokenLength:
				d.errorf(te.val.Line, "admin.token", "%d characters is too short to be a secret (want at least %d, e.g. the output of: openssl rand -hex 16)", len(s), MinTokenLength)
			default:
				a.Token = s
			}
		}
	} else if _, ok := fs.get("listen"); ok {
		d.errorf(e.line(), "admin.token", "required when admin.listen is set (want a secret string)")
	}
	return a
}

func (d *decoder) cluster(e entry, c *Config) *Cluster {
	cl := &Cluster{Node: c.Name, GroupSlices: DefaultGroupSlices}
	fs, ok := d.mapping(e.val, e.line(), "cluster", "node", "gossip", "peer", "join", "secret", "group_slices")
	if !ok {
		return cl
	}
	if ne, ok := fs.get("node"); ok {
		if s, ok := d.scalar(ne, "cluster.node", "a name"); ok {
			if !validCacheName(s) {
				d.errorf(ne.val.Line, "cluster.node", "%q is not a node name (want letters, digits and . - _ : /, starting with a letter, unique in the POP, e.g. edge-1)", s)
			} else {
				cl.Node = s
			}
		}
	}
	taken := []struct{ addr, field string }{{c.Admin.Listen, "admin.listen"}}
	for _, l := range c.Listeners {
		taken = append(taken, struct{ addr, field string }{l.Address, "listen"})
	}
	reachable := func(field string, ipOnly bool) string {
		fe, ok := fs.get(field)
		if !ok {
			d.errorf(e.line(), "cluster."+field, "required when cluster is present (want the host:port other nodes reach this one at, e.g. 10.0.0.5:%s)", map[string]string{"gossip": "7946", "peer": "8090"}[field])
			return ""
		}
		a := d.address(fe, "cluster."+field)
		if a == "" {
			return ""
		}
		host, _, _ := net.SplitHostPort(a)
		ip, err := netip.ParseAddr(host)
		switch {
		case host == "" || err == nil && ip.IsUnspecified():
			d.errorf(fe.val.Line, "cluster."+field, "%s names no host other nodes can reach (want this node's own address, e.g. 10.0.0.5:7946)", a)
			return ""
		case ipOnly && err != nil:
			d.errorf(fe.val.Line, "cluster."+field, "%s: want an IP address, not a name (gossip advertises it as it is)", a)
			return ""
		}
		for _, t := range taken {
			if t.addr != "" && listenConflict(a, t.addr) {
				d.errorf(fe.val.Line, "cluster."+field, "%s takes the same socket as %s %s (want a port of its own)", a, t.field, t.addr)
				return ""
			}
		}
		taken = append(taken, struct{ addr, field string }{a, "cluster." + field})
		return a
	}
	cl.Gossip = reachable("gossip", true)
	cl.Peer = reachable("peer", false)
	if je, ok := fs.get("join"); ok {
		if je.val.Kind != yaml.SequenceNode {
			d.errorf(je.val.Line, "cluster.join", "want a list of gossip addresses, got %s (e.g. [10.0.0.5:7946, 10.0.0.6:7946])", describe(je.val))
		} else {
			for i, n := range je.val.Content {
				if a := d.address(entry{key: je.key, val: n}, fmt.Sprintf("cluster.join[%d]", i)); a != "" {
					cl.Join = append(cl.Join, a)
				}
			}
		}
	}
	if se, ok := fs.get("secret"); ok {
		if s, ok := d.scalar(se, "cluster.secret", "a string"); ok {
			switch {
			case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
				d.errorf(se.val.Line, "cluster.secret", "contains spaces or control characters (want a secret of printable characters)")
			case placeholderToken(s):
				d.errorf(se.val.Line, "cluster.secret", "%q is a placeholder anyone can guess (want a secret of your own, the same on every node, e.g. the output of: openssl rand -hex 16)", s)
			case len(s) < MinTokenLength:
				d.errorf(se.val.Line, "cluster.secret", "%d characters is too short to be a secret (want at least %d, the same on every node, e.g. the output of: openssl rand -hex 16)", len(s), MinTokenLength)
			default:
				cl.Secret = s
			}
		}
	} else {
		d.errorf(e.line(), "cluster.secret", "required when cluster is present (want a secret shared by every node of the POP, e.g. the output of: openssl rand -hex 16)")
	}
	if ge, ok := fs.get("group_slices"); ok {
		if n, ok := d.count(ge, "cluster.group_slices", DefaultGroupSlices); ok {
			cl.GroupSlices = min(n, 1<<20)
		}
	}
	return cl
}

func (d *decoder) store(e entry) Store {
	s := Store{MemoryCache: DefaultMemoryCache, ScrubRate: DefaultScrubRate}
	fs, ok := d.mapping(e.val, e.line(), "store", "dir", "max_bytes", "memory_cache", "scrub_rate")
	if !ok {
		return s
	}
	if de, ok := fs.get("dir"); ok {
		if dir, ok := d.scalar(de, "store.dir", "a directory"); ok {
			if dir == "" {
				d.errorf(de.val.Line, "store.dir", "empty (want a directory, e.g. ./sliceedge-data)")
			}
			s.Dir = dir
		}
	} else {
		d.errorf(e.line(), "store.dir", "required (want a directory, e.g. ./sliceedge-data)")
	}
	const want = "want at least 64MiB, e.g. 10GiB"
	if me, ok := fs.get("max_bytes"); ok {
		if n, ok := d.size(me, "store.max_bytes"); ok {
			if n < MinStoreBytes {
				d.errorf(me.val.Line, "store.max_bytes", "%s is too small (%s)", me.val.Value, want)
			}
			s.MaxBytes = n
		}
	} else {
		d.errorf(e.line(), "store.max_bytes", "required (want a size of at least 64MiB, e.g. 10GiB)")
	}
	if me, ok := fs.get("memory_cache"); ok {
		if n, ok := d.size(me, "store.memory_cache"); ok {
			if n < MinMemoryCache {
				d.errorf(me.val.Line, "store.memory_cache", "%s is too small (want at least 16MiB, e.g. 1GiB)", me.val.Value)
			}
			s.MemoryCache = n
		}
	}
	if se, ok := fs.get("scrub_rate"); ok {
		if n, ok := d.size(se, "store.scrub_rate"); ok {
			s.ScrubRate = n
		}
	}
	return s
}

// validName is the alphabet of origin names.
func validName(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	})
}

func (d *decoder) origin(e entry) *Origin {
	o := &Origin{Name: e.key.Value, ConnectTimeout: DefaultConnectTimeout, ReadTimeout: DefaultReadTimeout, MaxHeaderBytes: DefaultMaxHeaderBytes}
	field := "origins." + o.Name
	if !validName(o.Name) {
		d.errorf(e.line(), "origins", "%q is not a valid origin name (want letters, digits, '-', '_' or '.')", o.Name)
	}
	var fs entries
	if !isNull(e.val) { // "default:" alone is an origin without a url
		var ok bool
		if fs, ok = d.mapping(e.val, e.line(), field, "url", "urls", "connect_timeout", "read_timeout", "host", "max_header_bytes",
			"max_connections", "max_fails", "fail_timeout", "health_check", "tls"); !ok {
			return o
		}
	}
	ue, one := fs.get("url")
	ues, many := fs.get("urls")
	switch {
	case one && many:
		d.errorf(ues.line(), field+".urls", "url and urls are both set (want url for one server, or urls for a pool of them)")
	case one:
		if o.URL = d.originURL(ue, field+".url"); o.URL != nil {
			o.Members = []*url.URL{o.URL}
		}
	case many:
		o.Members = d.originURLs(ues, field+".urls")
		if len(o.Members) > 0 {
			o.URL = o.Members[0]
		}
	default:
		d.errorf(e.line(), field+".url", "required (want an http or https URL, e.g. http://127.0.0.1:9000, or urls: a list of them)")
	}
	o.MaxFails, o.FailTimeout = DefaultMaxFails, DefaultFailTimeout
	if ce, ok := fs.get("max_connections"); ok {
		if n, ok := d.count(ce, field+".max_connections", 0); ok {
			o.MaxConnections = int(min(n, 1<<20))
		}
	}
	if fe, ok := fs.get("max_fails"); ok {
		if n, ok := d.count(fe, field+".max_fails", DefaultMaxFails); ok {
			o.MaxFails = int(min(n, 1<<20))
		}
	}
	if te, ok := fs.get("fail_timeout"); ok {
		if t, ok := d.duration(te, field+".fail_timeout", "10s"); ok {
			o.FailTimeout = t
		}
	}
	if he, ok := fs.get("health_check"); ok {
		o.Health = d.healthCheck(he, field+".health_check")
	}
	if te, ok := fs.get("tls"); ok {
		o.TLS = d.originTLS(te, field+".tls")
	}
	if te, ok := fs.get("connect_timeout"); ok {
		if t, ok := d.duration(te, field+".connect_timeout", "5s"); ok {
			o.ConnectTimeout = t
		}
	}
	if te, ok := fs.get("read_timeout"); ok {
		if t, ok := d.duration(te, field+".read_timeout", "30s"); ok {
			o.ReadTimeout = t
		}
	}
	if me, ok := fs.get("max_header_bytes"); ok {
		if n, ok := d.size(me, field+".max_header_bytes"); ok {
			if n < MinMaxHeaderBytes || n > MaxMaxHeaderBytes {
				d.errorf(me.val.Line, field+".max_header_bytes", "%s is out of range (want 4KiB to 16MiB; default 64KiB)", me.val.Value)
			} else {
				o.MaxHeaderBytes = n
			}
		}
	}
	if he, ok := fs.get("host"); ok {
		if h, ok := d.scalar(he, field+".host", "a host name"); ok {
			if strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune("/?#@\\", r) }) {
				d.errorf(he.val.Line, field+".host", "%q is not a host (want a host name with an optional port, e.g. media.example.com)", h)
			} else {
				o.Host = h
			}
		}
	}
	return o
}

// originURLs reads an origin's pool: a list of distinct URLs.
func (d *decoder) originURLs(e entry, field string) []*url.URL {
	const want = "want a list of http or https URLs, e.g. [http://10.0.0.1:8080, http://10.0.0.2:8080]"
	if e.val.Kind != yaml.SequenceNode {
		d.errorf(e.val.Line, field, "%s, got %s", want, describe(e.val))
		return nil
	}
	if len(e.val.Content) == 0 {
		d.errorf(e.val.Line, field, "the list is empty (%s)", want)
		return nil
	}
	var us []*url.URL
	seen := map[string]int{}
	for i, n := range e.val.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		u := d.originURL(entry{key: e.key, val: deref(n)}, f)
		if u == nil {
			continue
		}
		if first, dup := seen[u.String()]; dup {
			d.errorf(n.Line, f, "%s is listed twice (also %s[%d]); list each member once", u, field, first)
			continue
		}
		seen[u.String()] = i
		us = append(us, u)
	}
	return us
}

// healthCheck reads an origin's health_check.
func (d *decoder) healthCheck(e entry, field string) *HealthCheck {
	h := &HealthCheck{Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Healthy: DefaultHealthHealthy, Unhealthy: DefaultHealthUnhealthy}
	fs, ok := d.mapping(e.val, e.line(), field, "path", "interval", "timeout", "healthy", "unhealthy")
	if !ok {
		return nil
	}
	if pe, ok := fs.get("path"); ok {
		if p, ok := d.scalar(pe, field+".path", "a path"); ok {
			if u, err := url.Parse(p); err != nil || !strings.HasPrefix(p, "/") || u.Host != "" || u.Fragment != "" ||
				strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				d.errorf(pe.val.Line, field+".path", "%q is not an absolute path (want e.g. /healthz)", p)
			} else {
				h.Path = p
			}
		}
	} else {
		d.errorf(e.line(), field+".path", "required (the path every member is asked for, e.g. /healthz; 2xx or 3xx means healthy)")
	}
	if ie, ok := fs.get("interval"); ok {
		if t, ok := d.duration(ie, field+".interval", "5s"); ok {
			h.Interval = t
		}
	}
	te, setTimeout := fs.get("timeout")
	if setTimeout {
		if t, ok := d.duration(te, field+".timeout", "2s"); ok {
			h.Timeout = t
		}
	} else {
		h.Timeout = min(h.Timeout, h.Interval)
	}
	if ce, ok := fs.get("healthy"); ok {
		if n, ok := d.count(ce, field+".healthy", DefaultHealthHealthy); ok {
			h.Healthy = int(min(n, 1000))
		}
	}
	if ce, ok := fs.get("unhealthy"); ok {
		if n, ok := d.count(ce, field+".unhealthy", DefaultHealthUnhealthy); ok {
			h.Unhealthy = int(min(n, 1000))
		}
	}
	if h.Timeout > h.Interval {
		d.errorf(te.val.Line, field+".timeout", "%v is longer than the interval %v (a check must end before the next one starts)", h.Timeout, h.Interval)
	}
	return h
}

// originTLS reads an origin's tls section and loads its files, so that
// config check finds a missing or mismatched one.
func (d *decoder) originTLS(e entry, field string) *OriginTLS {
	fs, ok := d.mapping(e.val, e.line(), field, "ca", "server_name", "cert", "key")
	if !ok {
		return nil
	}
	t := &OriginTLS{}
	str := func(key, want string) (string, int) {
		if fe, ok := fs.get(key); ok {
			if v, ok := d.scalar(fe, field+"."+key, want); ok && v != "" {
				return v, fe.val.Line
			}
		}
		return "", e.line()
	}
	var caLine, certLine int
	t.CAFile, caLine = str("ca", "a PEM file")
	t.ServerName, _ = str("server_name", "a host name")
	t.CertFile, certLine = str("cert", "a PEM file")
	t.KeyFile, _ = str("key", "a PEM file")
	if (t.CertFile == "") != (t.KeyFile == "") {
		d.errorf(certLine, field, "cert and key go together (a client certificate and its private key, both PEM files)")
		return nil
	}
	cfg, digest, key, err := t.load()
	if err != nil {
		line := certLine
		if key == "ca" {
			line = caLine
		}
		d.errorf(line, field+"."+key, "%v", err)
		return nil
	}
	t.Config, t.Digest = cfg, digest
	return t
}

func (d *decoder) originURL(e entry, field string) *url.URL {
	const want = "want an http or https URL with a host, e.g. http://127.0.0.1:9000"
	s, ok := d.scalar(e, field, "a URL")
	if !ok {
		return nil
	}
	line := e.val.Line
	if !strings.Contains(s, "://") {
		d.errorf(line, field, "%q has no scheme (%s)", s, want)
		return nil
	}
	u, err := url.Parse(s)
	var problem string
	switch {
	case err != nil:
		problem = "is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		problem = fmt.Sprintf("has unsupported scheme %q", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		problem = "has no host"
	case u.User != nil:
		problem = "has a user name or password"
	case u.RawQuery != "" || u.ForceQuery:
		problem = "has a query"
	case u.Fragment != "" || strings.Contains(s, "#"):
		problem = "has a fragment"
	}
	if problem != "" {
		d.errorf(line, field, "%q %s (%s)", s, problem, want)
		return nil
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u
}

func (d *decoder) rules(e entry, origins map[string]*Origin, names []string) []*Rule {
	if e.val.Kind != yaml.SequenceNode {
		d.errorf(e.val.Line, "rules", "want a list of rules, got %s", describe(e.val))
		return nil
	}
	if len(e.val.Content) == 0 {
		d.errorf(e.line(), "rules", "at least one rule is required (e.g. - {match: /, origin: default})")
		return nil
	}
	var rules []*Rule
	for i, n := range e.val.Content {
		r := d.rule(deref(n), i, origins, names)
		rules = append(rules, r)
	}
	d.shadowed(e.val.Content, rules)
	return rules
}

func (d *decoder) rule(n *yaml.Node, i int, origins map[string]*Origin, names []string) *Rule {
	r := &Rule{Index: i, SliceSize: DefaultSliceSize, MaxRanges: DefaultMaxRanges, MaxRun: DefaultMaxRun,
		HeuristicFraction: DefaultHeuristicFraction, HeuristicMax: DefaultHeuristicMax,
		MaxObjectSize: DefaultMaxObjectSize, FetchAllowance: DefaultFetchAllowance, LastModifiedValidator: true,
		MaxVariants: DefaultMaxVariants, TargetedCacheControl: DefaultTargetedCacheControl}
	field := fmt.Sprintf("rules[%d]", i)
	defined := "no origins are defined"
	if len(names) > 0 {
		defined = "defined: " + strings.Join(names, ", ")
	}
	fs, ok := d.mapping(n, n.Line, field, "match", "hosts", "origin", "slice_size", "default_ttl", "query", "max_ranges", "last_modified_validator", "max_run",
		"abandoned_fills", "override_ttl", "stale_while_revalidate", "stale_if_error", "heuristic_fraction", "heuristic_max",
		"max_object_size", "fetch_allowance", "negative_ttl", "max_variants", "targeted_cache_control", "forward_targeted_cache_control",
		"client_cache_control", "forward_headers")
	if !ok {
		return r
	}
	if fe, ok := fs.get("forward_headers"); ok {
		r.ForwardHeaders = d.headerNames(fe, field+".forward_headers")
	}
	if he, ok := fs.get("hosts"); ok {
		r.Hosts = d.hosts(he, field+".hosts")
	} else {
		d.warnf(n.Line, field, "no hosts: every Host header value a client sends gets its own copy of the objects, and a purge must name the same host; list the names this rule serves (hosts: [www.example.com, \"*.cdn.example.com\"])")
	}
	for _, k := range []struct {
		key  string
		dst  *int64
		min  int64
		want string
	}{
		{"max_object_size", &r.MaxObjectSize, 0, "want a size of at least 1 byte; default 1TiB"},
		{"fetch_allowance", &r.FetchAllowance, 0, "want a size of at least 1 byte; default 16MiB"},
	} {
		if e, ok := fs.get(k.key); ok {
			if v, ok := d.size(e, field+"."+k.key); ok {
				if v <= k.min {
					d.errorf(e.val.Line, field+"."+k.key, "%s is too small (%s)", e.val.Value, k.want)
				} else {
					*k.dst = v
				}
			}
		}
	}
	if me, ok := fs.get("match"); ok {
		r.Match = d.match(me, field+".match")
	} else {
		d.errorf(n.Line, field+".match", "required (want a path prefix such as /video/ or a glob such as /dl/*.iso)")
	}
	if oe, ok := fs.get("origin"); ok {
		if name, ok := d.scalar(oe, field+".origin", "an origin name"); ok {
			if o := origins[name]; o != nil {
				r.Origin = o
			} else {
				d.errorf(oe.val.Line, field+".origin", "unknown origin %q (%s)", name, defined)
			}
		}
	} else {
		d.errorf(n.Line, field+".origin", "required (%s)", defined)
	}
	if se, ok := fs.get("slice_size"); ok {
		const want = "want a power of two from 64KiB to 64MiB, e.g. 1MiB"
		if size, ok := d.size(se, field+".slice_size"); ok {
			switch {
			case size < MinSliceSize || size > MaxSliceSize:
				d.errorf(se.val.Line, field+".slice_size", "%s is out of range (%s)", se.val.Value, want)
			case size&(size-1) != 0:
				d.errorf(se.val.Line, field+".slice_size", "%s is not a power of two (%s)", se.val.Value, want)
			default:
				r.SliceSize = size
			}
		}
	}
	if te, ok := fs.get("default_ttl"); ok {
		r.DefaultTTL, _ = d.duration(te, field+".default_ttl", "1h")
	}
	if qe, ok := fs.get("query"); ok {
		if s, ok := d.scalar(qe, field+".query", "keep, sort or ignore"); ok {
			if m, ok := parseQueryMode(s); ok {
				r.Query = m
			} else {
				d.errorf(qe.val.Line, field+".query", "unknown mode %q (want keep, sort or ignore)", s)
			}
		}
	}
	if me, ok := fs.get("max_ranges"); ok {
		if v, ok := d.count(me, field+".max_ranges", DefaultMaxRanges); ok {
			if v > 1<<31-1 {
				v = 1<<31 - 1
			}
			r.MaxRanges = int(v)
		}
	}
	if le, ok := fs.get("last_modified_validator"); ok {
		r.LastModifiedValidator = d.boolean(le, field+".last_modified_validator")
	}
	if me, ok := fs.get("max_run"); ok {
		if v, ok := d.count(me, field+".max_run", DefaultMaxRun); ok {
			r.MaxRun = v
		}
	}
	if ve, ok := fs.get("max_variants"); ok {
		if v, ok := d.count(ve, field+".max_variants", DefaultMaxVariants); ok {
			r.MaxVariants = int(v)
		}
	}
	if ae, ok := fs.get("abandoned_fills"); ok {
		if s, ok := d.scalar(ae, field+".abandoned_fills", "finish or drop"); ok {
			switch s {
			case "finish":
			case "drop":
				r.DropAbandonedFills = true
			default:
				d.errorf(ae.val.Line, field+".abandoned_fills", "unknown mode %q (want finish or drop)", s)
			}
		}
	}
	for _, k := range []struct {
		key string
		dst *time.Duration
		eg  string
	}{
		{"override_ttl", &r.OverrideTTL, "10m"},
		{"negative_ttl", &r.NegativeTTL, "30s"},
		{"stale_while_revalidate", &r.StaleWhileRevalidate, "30s"},
		{"stale_if_error", &r.StaleIfError, "1h"},
		{"heuristic_max", &r.HeuristicMax, "24h"},
	} {
		if e, ok := fs.get(k.key); ok {
			if v, ok := d.duration(e, field+"."+k.key, k.eg); ok {
				*k.dst = v
			}
		}
	}
	if he, ok := fs.get("heuristic_fraction"); ok {
		r.HeuristicFraction = d.fraction(he, field+".heuristic_fraction", DefaultHeuristicFraction)
	}
	if te, ok := fs.get("targeted_cache_control"); ok {
		if name, ok := d.fieldName(te, field+".targeted_cache_control"); ok {
			r.TargetedCacheControl = name
		}
	}
	if fe, ok := fs.get("forward_targeted_cache_control"); ok {
		r.ForwardTargetedCacheControl = d.boolean(fe, field+".forward_targeted_cache_control")
	}
	if ce, ok := fs.get("client_cache_control"); ok {
		if s, ok := d.scalar(ce, field+".client_cache_control", "honor or ignore"); ok {
			switch s {
			case "ignore":
			case "honor":
				r.HonorClientCacheControl = true
			default:
				d.errorf(ce.val.Line, field+".client_cache_control", "unknown mode %q (want honor or ignore)", s)
			}
		}
	}
	return r
}

// fieldName reads the name of a targeted cache-control field: an HTTP
// field name (a token, RFC 9110 §5.1) other than Cache-Control itself,
// in canonical form.
func (d *decoder) fieldName(e entry, field string) (string, bool) {
	const want = "want a response header field name such as Sliceedge-Cache-Control"
	s, ok := d.scalar(e, field, "a header field name")
	if !ok {
		return "", false
	}
	switch {
	case s == "":
		d.errorf(e.val.Line, field, "empty (%s)", want)
	case !validToken(s):
		d.errorf(e.val.Line, field, "%q is not a header field name (%s: letters, digits and !#$%%&'*+-.^_`|~)", s, want)
	case strings.EqualFold(s, "Cache-Control"):
		d.errorf(e.val.Line, field, "Cache-Control is the field every cache reads, not a targeted one (%s; CDN-Cache-Control is followed in any case)", want)
	default:
		return http.CanonicalHeaderKey(s), true
	}
	return "", false
}

// validToken reports whether s is a token (RFC 9110 §5.6.2).
func validToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
	})
}

// fraction reads a number from 0 to 1.
func (d *decoder) fraction(e entry, field string, def float64) float64 {
	want := fmt.Sprintf("want a number from 0 (off) to 1; default %g", def)
	s, ok := d.scalar(e, field, "a number")
	if !ok {
		return def
	}
	var f float64
	if (e.val.ShortTag() != "!!float" && e.val.ShortTag() != "!!int") || e.val.Decode(&f) != nil {
		d.errorf(e.val.Line, field, "%s is not a number (%s)", describe(e.val), want)
		return def
	}
	if f < 0 || f > 1 {
		d.errorf(e.val.Line, field, "%s is out of range (%s)", s, want)
		return def
	}
	return f
}

// match checks a rule's match: a path starting with "/", and a valid
// path.Match pattern when it holds glob metacharacters.
func (d *decoder) match(e entry, field string) string {
	const want = "want a path prefix such as /video/ or a glob such as /dl/*.iso"
	s, ok := d.scalar(e, field, "a path")
	if !ok {
		return ""
	}
	switch {
	case s == "":
		d.errorf(e.val.Line, field, "empty (%s)", want)
	case !strings.HasPrefix(s, "/"):
		d.errorf(e.val.Line, field, "%q does not start with / (%s)", s, want)
	case IsGlob(s) && !validGlob(s):
		d.errorf(e.val.Line, field, "%q is not a valid glob (want path.Match syntax: * and ? within one path segment, [a-z] classes, \\ to escape)", s)
	default:
		return s
	}
	return ""
}

// validGlob reports whether path.Match accepts the pattern; Match checks
// the whole pattern on any input.
func validGlob(pattern string) bool {
	_, err := path.Match(pattern, "")
	return err == nil
}

// literalPrefix is the part of a glob before its first metacharacter or
// escape: every path the glob matches starts with it.
func literalPrefix(glob string) string {
	if i := strings.IndexAny(glob, "*?[\\"); i >= 0 {
		return glob[:i]
	}
	return glob
}

// shadowed reports rules that can never match because an earlier rule
// serves all their hosts and matches every path they do: a prefix under an
// earlier prefix, a glob whose literal start is under an earlier prefix, or
// a glob that an earlier glob covers (globCovers).
func (d *decoder) shadowed(nodes []*yaml.Node, rules []*Rule) {
	for j, later := range rules {
		if later.Match == "" {
			continue
		}
		for i, earlier := range rules[:j] {
			if earlier.Match == "" {
				continue
			}
			if !hostsCover(earlier.Hosts, later.Hosts) {
				continue
			}
			var covers bool
			switch {
			case IsGlob(earlier.Match) && IsGlob(later.Match):
				covers = globCovers(earlier.Match, later.Match)
			case IsGlob(earlier.Match):
				covers = false // a prefix matches paths of any depth; a glob does not
			case IsGlob(later.Match):
				covers = strings.HasPrefix(literalPrefix(later.Match), earlier.Match)
			default:
				covers = strings.HasPrefix(later.Match, earlier.Match)
			}
			if !covers {
				continue
			}
			field := fmt.Sprintf("rules[%d]", j)
			if earlier.Match == "/" && len(earlier.Hosts) == 0 {
				d.errorf(deref(nodes[j]).Line, field, "never matches: rules[%d] matches every path", i)
			} else {
				d.errorf(deref(nodes[j]).Line, field, "never matches: every path it matches is matched first by rules[%d] (match %s)", i, earlier.Match)
			}
			break
		}
	}
}

// hosts reads a rule's list of host names.
func (d *decoder) hosts(e entry, field string) []string {
	const want = `want a list of host names, e.g. [www.example.com, "*.cdn.example.com"]`
	if e.val.Kind != yaml.SequenceNode {
		d.errorf(e.val.Line, field, "%s is not a list (%s)", describe(e.val), want)
		return nil
	}
	if len(e.val.Content) == 0 {
		d.errorf(e.line(), field, "empty (%s; leave hosts out to serve every host)", want)
		return nil
	}
	var out []string
	for i, n := range e.val.Content {
		n = deref(n)
		f := fmt.Sprintf("%s[%d]", field, i)
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, f, "want a host name, got %s", describe(n))
			continue
		}
		h := strings.TrimSuffix(strings.ToLower(n.Value), ".")
		if why := validHostPattern(h); why != "" {
			d.errorf(n.Line, f, "%q is %s (%s)", n.Value, why, want)
			continue
		}
		out = append(out, h)
	}
	return out
}

// notForwardable are request fields forward_headers may not name: the
// edge sets them itself on every fetch (the range, the conditions, the
// coding, the host), they describe the connection, or they carry
// credentials, which a shared answer must not depend on.
var notForwardable = []string{
	"Host", "Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
	"Accept-Encoding", "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Authorization", "Cookie", "Forwarded", "X-Forwarded-For",
	"X-Forwarded-Host", "X-Forwarded-Proto", "Via", "Content-Length",
}

// headerNames reads a list of request field names that cached fetches
// forward.
func (d *decoder) headerNames(e entry, field string) []string {
	const want = "want a list of request header names, e.g. [Accept-Language, X-Device]"
	if e.val.Kind != yaml.SequenceNode {
		d.errorf(e.val.Line, field, "%s is not a list (%s)", describe(e.val), want)
		return nil
	}
	var out []string
	for i, n := range e.val.Content {
		n = deref(n)
		f := fmt.Sprintf("%s[%d]", field, i)
		name := http.CanonicalHeaderKey(strings.TrimSpace(n.Value))
		switch {
		case n.Kind != yaml.ScalarNode || !httpguts.ValidHeaderFieldName(name):
			d.errorf(n.Line, f, "%q is not a header name (%s)", n.Value, want)
		case slices.Contains(notForwardable, name):
			d.errorf(n.Line, f, "%s cannot be forwarded on cached fetches: the edge sets it itself, or it is hop-by-hop or a credential", name)
		default:
			out = append(out, name)
		}
	}
	return out
}

// prefixes reads a list of IP addresses and CIDR prefixes.
func (d *decoder) prefixes(e entry, field string) []netip.Prefix {
	const want = "want a list of IP addresses or CIDR prefixes, e.g. [10.0.0.0/8, 192.0.2.7]"
	if e.val.Kind != yaml.SequenceNode {
		d.errorf(e.val.Line, field, "%s is not a list (%s)", describe(e.val), want)
		return nil
	}
	var out []netip.Prefix
	for i, n := range e.val.Content {
		n = deref(n)
		f := fmt.Sprintf("%s[%d]", field, i)
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, f, "want an address or prefix, got %s", describe(n))
			continue
		}
		p, err := netip.ParsePrefix(n.Value)
		if err != nil {
			a, aerr := netip.ParseAddr(n.Value)
			if aerr != nil {
				d.errorf(n.Line, f, "%q is not an IP address or CIDR prefix (%s)", n.Value, want)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}

// MinTokenLength is the shortest admin.token accepted.
const MinTokenLength = 16

// placeholderToken reports whether s is a token from a sample or a guess
// anyone would try first.
func placeholderToken(s string) bool {
	switch strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(s)) {
	case "changeme", "changemenow", "secret", "token", "password", "admin", "example", "test", "replaceme", "yourtoken":
		return true
	}
	return false
}

// validCacheName reports whether s can be written as a Cache-Status member
// without quoting: an RFC 8941 token starting with a letter.
func validCacheName(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~:/", r))
	})
}

// accessLog reads access_log: "off", or a mapping with path (a file) or
// off: true.
func (d *decoder) accessLog(e entry) AccessLog {
	const want = `want off, or {path: /var/log/sliceedge/access.log}`
	if e.val.Kind == yaml.ScalarNode {
		if e.val.Value == "off" || e.val.ShortTag() == "!!bool" && e.val.Value == "false" {
			return AccessLog{Off: true}
		}
		d.errorf(e.val.Line, "access_log", "%s is not a setting (%s; default: with the other log lines, on stderr)", describe(e.val), want)
		return AccessLog{}
	}
	fs, ok := d.mapping(e.val, e.line(), "access_log", "path", "off")
	if !ok {
		return AccessLog{}
	}
	var a AccessLog
	if oe, ok := fs.get("off"); ok {
		a.Off = d.boolean(oe, "access_log.off")
	}
	if pe, ok := fs.get("path"); ok {
		if p, ok := d.scalar(pe, "access_log.path", "a file name"); ok {
			if p == "" || strings.HasSuffix(p, "/") {
				d.errorf(pe.val.Line, "access_log.path", "%q is not a file name (%s)", p, want)
			} else {
				a.Path = p
			}
		}
	}
	if a.Off && a.Path != "" {
		d.errorf(e.line(), "access_log", "off and path are both set (%s)", want)
	}
	return a
}

// listeners reads listeners: a list whose entries are an address, or a
// mapping of address, tls {cert, key}, http2 and h2c.
func (d *decoder) listeners(e entry) []Listener {
	const want = "want a list of addresses or of {address: :443, tls: {cert: FILE, key: FILE}}"
	if e.val.Kind != yaml.SequenceNode {
		d.errorf(e.val.Line, "listeners", "%s is not a list of listeners (%s)", describe(e.val), want)
		return nil
	}
	if len(e.val.Content) == 0 {
		d.errorf(e.val.Line, "listeners", "empty (%s)", want)
		return nil
	}
	var out []Listener
	for i, n := range e.val.Content {
		field := fmt.Sprintf("listeners[%d]", i)
		ne := entry{key: &yaml.Node{Value: field, Line: n.Line}, val: n}
		var l Listener
		if n.Kind == yaml.ScalarNode {
			l.Address = d.address(ne, field)
		} else {
			fs, ok := d.mapping(n, n.Line, field, "address", "tls", "http2", "h2c")
			if !ok {
				continue
			}
			if ae, ok := fs.get("address"); ok {
				l.Address = d.address(ae, field+".address")
			} else {
				d.errorf(n.Line, field+".address", "required (want host:port, e.g. :443)")
			}
			if te, ok := fs.get("tls"); ok {
				l.TLS = d.listenerTLS(te, field+".tls")
			}
			l.HTTP2 = l.TLS != nil
			if he, ok := fs.get("http2"); ok {
				l.HTTP2 = d.boolean(he, field+".http2")
				if l.HTTP2 && l.TLS == nil {
					d.errorf(he.val.Line, field+".http2", "HTTP/2 with ALPN needs tls (want tls: {cert, key}; h2c: true takes HTTP/2 without TLS)")
				}
			}
			if he, ok := fs.get("h2c"); ok {
				l.H2C = d.boolean(he, field+".h2c")
				if l.H2C && l.TLS != nil {
					d.errorf(he.val.Line, field+".h2c", "h2c is HTTP/2 without TLS, and this listener has tls (want http2: true)")
				}
			}
		}
		if l.Address == "" {
			continue
		}
		for _, o := range out {
			if listenConflict(o.Address, l.Address) {
				d.errorf(n.Line, field, "%s takes the same socket as the listener %s (want another port)", l.Address, o.Address)
			}
		}
		out = append(out, l)
	}
	return out
}

// listenerTLS reads a listener's tls: {cert, key} and loads the pair.
func (d *decoder) listenerTLS(e entry, field string) *ListenerTLS {
	fs, ok := d.mapping(e.val, e.line(), field, "cert", "key")
	if !ok {
		return nil
	}
	t := &ListenerTLS{}
	line := e.line()
	for _, k := range []struct {
		name string
		dst  *string
	}{{"cert", &t.CertFile}, {"key", &t.KeyFile}} {
		if fe, ok := fs.get(k.name); ok {
			if v, ok := d.scalar(fe, field+"."+k.name, "a PEM file"); ok {
				*k.dst = v
				line = fe.val.Line
			}
		} else {
			d.errorf(e.line(), field+"."+k.name, "required (want a PEM file)")
		}
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		d.errorf(line, field, "%s and key %s: %v (want a PEM certificate chain, leaf first, and its private key)", t.CertFile, t.KeyFile, err)
		return nil
	}
	t.Certificate = &cert
	return t
}
