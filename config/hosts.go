package config

import (
	"net"
	"path"
	"strings"
)

// HostName is the name a Host header value (or a URL's host) names, as
// rules match it and cache keys hold it: lower case, without a port and
// without the trailing dot of a fully qualified name ("WWW.Site.Test.:80"
// is "www.site.test"). An IPv6 literal keeps its brackets.
func HostName(hostport string) string {
	h := strings.ToLower(hostport)
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
	}
	return strings.TrimSuffix(h, ".")
}

// hostMatches reports whether pattern (a rule's hosts entry) accepts name:
// an exact name, or "*.example.com" for every name ending in ".example.com"
// (not example.com itself), as nginx's server_name does.
func hostMatches(pattern, name string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return len(name) > len(suffix) && strings.HasSuffix(name, suffix)
	}
	return pattern == name
}

// validHostPattern reports why p is not a hosts entry, or "".
func validHostPattern(p string) string {
	name := strings.TrimPrefix(p, "*.")
	switch {
	case p == "":
		return "empty"
	case strings.Contains(name, "*"):
		return "a wildcard is only allowed as a whole first label (*.example.com)"
	case strings.ContainsAny(p, ":/ @?#\\[]"):
		return "not a host name (no port, scheme or path)"
	case strings.HasPrefix(name, ".") || strings.Contains(name, ".."):
		return "has an empty label"
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f {
			return "has characters a host name cannot hold"
		}
	}
	return ""
}

// hostsCover reports whether every host that later accepts, earlier
// accepts too (nil hosts: every host).
func hostsCover(earlier, later []string) bool {
	if len(earlier) == 0 {
		return true
	}
	if len(later) == 0 {
		return false
	}
	for _, l := range later {
		covered := false
		for _, e := range earlier {
			// "*.x" covers "a.x" and "*.a.x"; an exact name only itself.
			if e == l || (strings.HasPrefix(e, "*.") && hostMatches(e, strings.TrimPrefix(l, "*."))) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// globCovers reports whether every path the glob later matches is matched
// by the glob earlier too (both valid path.Match patterns). It is sound but
// not complete: true is always right, and it answers false for some pairs
// where earlier does cover later. Each of later's elements must be matched
// by one of earlier's: a literal character by itself, ? or a class holding
// it; ? and a class by ? or an identical class; * only by *. And earlier's
// * may take any run of later's elements but '/'.
func globCovers(earlier, later string) bool {
	e, l := globTokens(earlier), globTokens(later)
	// memo[i][j]: does e[i:] cover l[j:]? 0 unknown, 1 yes, 2 no.
	memo := make([][]byte, len(e)+1)
	for i := range memo {
		memo[i] = make([]byte, len(l)+1)
	}
	var cover func(i, j int) bool
	cover = func(i, j int) bool {
		if memo[i][j] != 0 {
			return memo[i][j] == 1
		}
		var ok bool
		switch {
		case i == len(e):
			ok = j == len(l)
		case e[i] == "*":
			// Take nothing, or one more of later's elements if it is not '/'.
			ok = cover(i+1, j) || (j < len(l) && l[j] != "/" && cover(i, j+1))
		case j == len(l):
			ok = false
		default:
			ok = tokenCovers(e[i], l[j]) && cover(i+1, j+1)
		}
		memo[i][j] = 2
		if ok {
			memo[i][j] = 1
		}
		return ok
	}
	return cover(0, 0)
}

// tokenCovers reports whether the single-character element e matches every
// character the element l matches (neither is *).
func tokenCovers(e, l string) bool {
	switch {
	case e == l:
		return true
	case l == "*":
		return false
	case len(l) == 1 || (len(l) == 2 && l[0] == '\\'):
		// A literal (escaped or not): matched by ?, or by a class holding it.
		c := l[len(l)-1]
		if c == '/' {
			return false // neither ? nor a class matches '/'
		}
		if e == "?" {
			return true
		}
		if strings.HasPrefix(e, "[") {
			return classHolds(e, c)
		}
		return len(e) == 2 && e[0] == '\\' && e[1] == c
	case l == "?" || strings.HasPrefix(l, "["):
		return e == "?"
	}
	return false
}

// classHolds reports whether the class token cls ("[a-z]", "[^x]") matches
// character c, using path.Match itself.
func classHolds(cls string, c byte) bool {
	ok, err := path.Match(cls, string(c))
	return ok && err == nil
}

// globTokens splits a path.Match pattern into elements: "*", "?", a whole
// class "[...]", an escaped character "\x", or one literal character.
// Consecutive stars are one.
func globTokens(p string) []string {
	var out []string
	for i := 0; i < len(p); {
		switch p[i] {
		case '*':
			if len(out) == 0 || out[len(out)-1] != "*" {
				out = append(out, "*")
			}
			i++
		case '\\':
			end := min(i+2, len(p))
			out = append(out, p[i:end])
			i = end
		case '[':
			end := i + 1
			if end < len(p) && p[end] == '^' {
				end++
			}
			for end < len(p) && p[end] != ']' {
				if p[end] == '\\' {
					end++
				}
				end++
			}
			end = min(end+1, len(p))
			out = append(out, p[i:end])
			i = end
		default:
			out = append(out, p[i:i+1])
			i++
		}
	}
	return out
}

// listenConflict reports whether two listen addresses (host:port, already
// checked) would take the same socket: the same port, and hosts that are
// equal, or one of them every interface.
func listenConflict(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	norm := func(h string) string {
		switch strings.ToLower(h) {
		case "", "0.0.0.0", "::", "[::]":
			return "*"
		case "localhost", "127.0.0.1", "::1", "[::1]":
			return "loopback"
		}
		return strings.ToLower(h)
	}
	na, nb := norm(ha), norm(hb)
	return na == nb || na == "*" || nb == "*"
}
