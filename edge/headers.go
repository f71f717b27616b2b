package edge

// The header policy: what a request to the origin carries on a client's
// behalf. One policy for both paths, cached fetches and pass-throughs.
//
//   - Hop-by-hop headers, and every header the client names in Connection,
//     are removed (RFC 9110 §7.6.1).
//   - Forwarded, X-Forwarded-*, X-Real-IP and the request-rewriting headers
//     (X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override, ...) are
//     removed: an origin that honours them would let a client choose the
//     path, host or method behind a rule's back. The edge sets
//     X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host itself, and
//     extends the client's own X-Forwarded-For and X-Forwarded-Proto only
//     when the client is a configured trusted proxy. It appends itself to
//     Via.
//   - A cached fetch (discovery, revalidation, fill) carries no other client
//     header: what it brings back is served to every client of the key, so
//     it must not depend on anything the key does not hold. The exceptions
//     are the rule's forward_headers, the operator's choice; for a URL
//     whose answers vary, the fields its Vary names (vary.go); and a
//     request's own Authorization on the fetches made for it (lookupAuth). A pass-through
//     carries the client's other end-to-end headers: its answer goes to
//     that client alone.

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
)

// spoofable are request headers a client could use to steer an origin that
// trusts them, or that claim to come from a proxy.
var spoofable = []string{
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Prefix", "X-Forwarded-Server", "X-Forwarded-Scheme", "X-Forwarded-Ssl", "X-Real-Ip",
	"X-Original-Url", "X-Rewrite-Url", "X-Original-Host", "X-Host",
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
}

// upstreamHeader returns the headers a request to the origin carries for
// q: for a cached fetch (cached), the forwarding headers alone; for a
// pass-through, the client's end-to-end headers as well.
func (s *Server) upstreamHeader(q *request, cached bool) http.Header {
	out := http.Header{"User-Agent": {"sliceedge"}}
	if !cached {
		out = q.r.Header.Clone()
		origin.RemoveHopByHop(out)
		for _, k := range spoofable {
			out.Del(k)
		}
	} else {
		// What the rule lists, and what the variant is keyed on; nothing
		// else of the client's.
		for _, k := range q.rule.ForwardHeaders {
			if vv := q.r.Header.Values(k); len(vv) > 0 {
				out[k] = vv
			}
		}
		forwardVary(q, out)
		if q.auth {
			out["Authorization"] = q.r.Header.Values("Authorization") // its own answer (lookupAuth)
		}
	}
	s.setForwarding(q, out)
	return out
}

// setForwarding sets X-Forwarded-For, -Proto and -Host and Via on h for
// q: the client's values extended when it is a trusted proxy, replaced
// otherwise.
func (s *Server) setForwarding(q *request, h http.Header) {
	peer := peerAddr(q.r.RemoteAddr)
	trusted := peer.IsValid() && s.trusted(peer)
	proto := "http"
	if q.r.TLS != nil {
		proto = "https"
	}
	xff := ""
	if peer.IsValid() {
		xff = peer.String()
	}
	if trusted {
		if prior := strings.Join(q.r.Header.Values("X-Forwarded-For"), ", "); prior != "" {
			xff = prior + ", " + xff
		}
		if p := q.r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			proto = p
		}
	}
	if xff != "" {
		h.Set("X-Forwarded-For", xff)
	}
	h.Set("X-Forwarded-Proto", proto)
	h.Set("X-Forwarded-Host", q.host)
	if q.id != "" {
		h.Set("X-Request-ID", q.id) // the origin's log can be joined with ours
	}
	via := strings.Join(q.r.Header.Values("Via"), ", ")
	if via != "" {
		via += ", "
	}
	h.Set("Via", via+viaProto(q.r)+" "+s.cacheName())
}

// viaProto is the received-protocol of Via: "1.1" for HTTP/1.1.
func viaProto(r *http.Request) string {
	if r.ProtoMajor >= 2 {
		return "2"
	}
	return "1." + string(rune('0'+r.ProtoMinor))
}

// trusted reports whether a client at addr is a configured trusted proxy.
func (s *Server) trusted(addr netip.Addr) bool {
	for _, p := range s.config().TrustedProxies {
		if p.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// peerAddr is the IP of a RemoteAddr ("ip:port"), or the zero Addr.
func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// replayHeader keeps the end-to-end response headers that describe the
// representation and are replayed on every answer from the store. A
// parent cache's Cache-Status is kept: ours is added after it.
func replayHeader(h http.Header) map[string][]string {
	h = h.Clone()
	origin.RemoveHopByHop(h)
	out := make(map[string][]string)
	for k, vv := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Content-Range", "Date", "Age", "Set-Cookie", "Accept-Ranges", "Server",
			"X-Cache", "Via", "Alt-Svc":
			continue
		}
		out[k] = vv
	}
	return out
}

// dropEdgeFields removes from h, the headers of an answer to a client, the
// fields that speak to this edge alone: the purge tags (tags.go), and the
// targeted cache-control fields on rule's target list (RFC 9213): they
// speak to this edge, and a CDN may remove CDN-Cache-Control that no
// cache downstream uses (§3). A rule that forwards them keeps them. They
// are stored with the object all the same: its freshness is read from
// them again at every revalidation. Targeted fields for other caches pass
// (§2.1).
func dropEdgeFields(h http.Header, rule *config.Rule) {
	// Stored with the object, never sent to clients, as Fastly and
	// Cloudflare do.
	for _, name := range tagHeaders {
		h.Del(name)
	}
	if rule == nil || rule.ForwardTargetedCacheControl {
		return
	}
	for _, name := range targetList(rule) {
		h.Del(name)
	}
}

// mergeHeader updates stored headers with those of a 304 (RFC 9111
// §4.3.4), except those that describe the stored bytes themselves: their
// encoding, length and range, and the validator, which a 304 never
// replaces (§3.2).
func mergeHeader(stored map[string][]string, fresh http.Header) http.Header {
	out := http.Header{}
	for k, vv := range stored {
		out[k] = vv
	}
	for k, vv := range replayHeader(fresh) {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Encoding", "Etag", "Last-Modified":
			continue
		}
		out[k] = vv
	}
	return out
}

// contradicts reports whether a 304's validator names another
// representation than the stored one m (RFC 9111 §4.3.4): an entity tag
// whose opaque tag is not the stored one's (a weak comparison: a 304 may
// carry W/), or, when there is no tag to compare, another Last-Modified.
// A 304 without a validator selects the one stored response.
func contradicts(m *segstore.Meta, h http.Header) bool {
	stored := m.ETag
	if stored == "" {
		stored = http.Header(m.Header).Get("ETag") // a weak one, kept for replay
	}
	if et := h.Get("ETag"); et != "" && stored != "" {
		return strings.TrimPrefix(et, "W/") != strings.TrimPrefix(stored, "W/")
	}
	lm := h.Get("Last-Modified")
	return lm != "" && m.LastModified != "" && lm != m.LastModified
}
