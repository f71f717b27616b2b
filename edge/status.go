package edge

// What an answer tells about itself: X-Cache (cacheOutcome) and this edge's
// member of Cache-Status (cacheStatus, RFC 9211), both built here for every
// answer.

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sliceedge/sliceedge/segstore"
)

// cacheOutcome is what an answer needed from the origin: X-Cache, the
// access log's cache field and the cache label of
// sliceedge_requests_total.
type cacheOutcome uint8

const (
	cacheUndecided cacheOutcome = iota // the request ended before it was known
	cacheHit                           // every byte from the store
	cacheMiss                          // every byte (or the meta of a bodiless answer) from the origin
	cachePartial                       // some slices stored, some fetched
	cachePass                          // passed through uncached
	cacheError                         // answered by the edge with an error
	cacheAbort                         // cut short after its status line
)

func (o cacheOutcome) String() string {
	switch o {
	case cacheHit:
		return "HIT"
	case cacheMiss:
		return "MISS"
	case cachePartial:
		return "PARTIAL"
	case cachePass:
		return "PASS"
	case cacheError:
		return "ERROR"
	case cacheAbort:
		return "ABORT"
	}
	return ""
}

// cacheStatus is this edge's member of a Cache-Status header (RFC 9211
// §2), parameter by parameter.
type cacheStatus struct {
	hit       bool          // §2.1: answered from the store without going forward
	fwd       string        // §2.2: why the request went forward (uri-miss, stale, partial, miss, method, bypass)
	fwdStatus int           // §2.3: the status the origin answered; 0 when not sent
	stored    bool          // §2.5: what came back is kept
	ttl       time.Duration // §2.7, when hasTTL
	hasTTL    bool
	detail    string // §2.8 as a token
	reason    string // §2.8 as a quoted string: free text, such as why a pass-through passes
	// class is the stored version's consistency class (an extension
	// parameter, §2): how its slices are proved to be of one version.
	class segstore.Class
}

// String is the member's parameters, after the cache name.
func (c cacheStatus) String() string {
	b := make([]byte, 0, 128) // on the stack: one allocation, the string
	if c.hit {
		b = append(b, "hit"...)
	} else {
		b = append(append(b, "fwd="...), c.fwd...)
	}
	if c.fwdStatus != 0 {
		b = strconv.AppendInt(append(b, "; fwd-status="...), int64(c.fwdStatus), 10)
	}
	if c.stored {
		b = append(b, "; stored"...)
	}
	if c.hasTTL {
		b = strconv.AppendInt(append(b, "; ttl="...), int64(c.ttl/time.Second), 10)
	}
	if c.class != "" {
		b = append(append(b, "; class="...), c.class...)
	}
	switch {
	case c.detail != "":
		b = append(append(b, "; detail="...), c.detail...)
	case c.reason != "":
		b = append(append(append(b, `; detail="`...), sanitize(c.reason)...), '"')
	}
	return string(b)
}

// addCacheStatus adds this edge's member, cs, to h's Cache-Status. Members
// already there, from caches nearer the origin, are kept before it: RFC
// 9211 §2 lists caches from the one closest to the origin to the one
// closest to the client.
func (s *Server) addCacheStatus(h http.Header, cs cacheStatus) {
	member := s.cacheName() + "; " + cs.String()
	if prior := strings.Join(h.Values("Cache-Status"), ", "); prior != "" {
		member = prior + ", " + member
	}
	h.Set("Cache-Status", member)
}

// tag writes X-Cache and Cache-Status on an answer q gives.
func (s *Server) tag(q *request, h http.Header, cs cacheStatus) {
	if q.fromPeer {
		return // the node that asked adds its own
	}
	h.Set("X-Cache", q.outcome.String())
	s.addCacheStatus(h, cs)
}

// sanitize makes s a valid RFC 8941 string's content.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c > 0x7e {
			b[i] = '_'
		}
	}
	return string(b)
}
