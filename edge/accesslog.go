package edge

// Access log fields that need work: the request id, and the client's
// address behind trusted proxies.

import (
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"strings"
)

// maxRequestID is the longest X-Request-ID taken from a client; a longer
// one, or one with other than visible ASCII, is replaced.
const maxRequestID = 128

// requestID is the request's id: the client's X-Request-ID when it is
// sane, else a new random one (16 hex digits).
func requestID(got string) string {
	if got != "" && len(got) <= maxRequestID && !strings.ContainsFunc(got, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return got
	}
	// An id need not be secret, only unlikely to repeat: math/rand/v2's
	// per-thread generator costs no system call on the hit path.
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// clientIP is the address of the client q serves: the connection's peer,
// or, when that is a trusted proxy, the right-most address of
// X-Forwarded-For that is not one (the proxies' own entries are appended
// at the right; what lies left of an untrusted one may be forged).
func (s *Server) clientIP(q *request) string {
	peer := peerAddr(q.r.RemoteAddr)
	if !peer.IsValid() {
		return q.r.RemoteAddr
	}
	if !s.trusted(peer) {
		return peer.String()
	}
	client := peer
	hops := strings.Split(strings.Join(q.r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed entry: the last trusted hop's view stands
		}
		client = a
		if !s.trusted(a) {
			break
		}
	}
	return client.Unmap().String()
}

// tlsVersion names the TLS version of a connection, "" without TLS.
func tlsVersion(cs *tls.ConnectionState) string {
	if cs == nil {
		return ""
	}
	return tls.VersionName(cs.Version)
}

// clip bounds a client-chosen field for the log.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// setMember records the pool member (or peer) that answered a fetch for q.
func (q *request) setMember(m string) {
	if q.member != nil && m != "" {
		q.member.Store(&m)
	}
}

// memberName is the member setMember recorded last, or "".
func (q *request) memberName() string {
	if q.member == nil {
		return ""
	}
	if m := q.member.Load(); m != nil {
		return *m
	}
	return ""
}
