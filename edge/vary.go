package edge

// Vary (RFC 9111 §4.1). An answer that varies on request fields is stored
// as one variant per set of values of those fields: the URL's key holds a
// marker (a meta whose Vary lists the fields), and each variant is an
// object of its own, sliced like any other, under the URL's key plus a
// digest of the request's normalised values. Cached fetches of a variant
// carry the client's values of those fields, and nothing else of the
// client's: the origin sees what the variant is keyed on. The first
// answer that reveals a Vary is not stored (the fetch did not carry the
// fields); it is the client's answer only when the fetch carried what the
// client has of them (none, the edge's own User-Agent, or the rule's
// forward_headers), and otherwise the client's own request goes to the
// origin. Carrying every client field on a discovery would save that
// request but let any field the origin reads without naming it in Vary
// poison what every client gets (headers.go); a rule that knows what its
// origin varies on lists those fields in forward_headers instead. Vary: * is never stored. Accept-Encoding is not a variant: the
// edge fetches and serves identity bytes.

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
)

// variantSep separates a URL's key from the digest of a variant's values.
// Keys are built from request URLs, which never hold '#' unescaped.
const variantSep = "#vary:"

// varyFields returns the request fields h's Vary names, canonical, sorted
// and without duplicates or Accept-Encoding, and whether it says "*".
func varyFields(h http.Header) (fields []string, star bool) {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			f = http.CanonicalHeaderKey(strings.TrimSpace(f))
			switch {
			case f == "*":
				star = true
			case f == "" || f == "Accept-Encoding":
			case !slices.Contains(fields, f):
				fields = append(fields, f)
			}
		}
	}
	slices.Sort(fields)
	return fields, star
}

// varyValue is a request's value of field, normalised as RFC 9111 §4.1
// allows: its lines combined, and the whitespace around list commas
// removed. A field the request does not carry is "\x00", unlike an empty
// one.
func varyValue(h http.Header, field string) string {
	vv := h.Values(field)
	if len(vv) == 0 {
		return "\x00"
	}
	var parts []string
	for _, v := range vv {
		for _, p := range strings.Split(v, ",") {
			parts = append(parts, strings.TrimSpace(p))
		}
	}
	return strings.Join(parts, ",")
}

// variantKey is the key of the variant of base that a request with header
// h selects under fields.
func variantKey(base string, fields []string, h http.Header) string {
	d := sha256.New()
	for _, f := range fields {
		d.Write([]byte(f))
		d.Write([]byte{0})
		d.Write([]byte(varyValue(h, f)))
		d.Write([]byte{'\n'})
	}
	return base + variantSep + hex.EncodeToString(d.Sum(nil)[:8])
}

// selectVariant makes q address the variant its request selects when its
// URL's key holds a Vary marker.
func (s *Server) selectVariant(q *request) {
	m, err := s.Store.Meta(q.key)
	if err != nil || len(m.Vary) == 0 {
		return
	}
	q.base, q.vary = q.key, m.Vary
	q.key = variantKey(q.key, m.Vary, q.r.Header)
}

// isMarker reports whether m is a Vary marker, not an object.
func isMarker(m *segstore.Meta) bool { return len(m.Vary) > 0 }

// forwardVary adds to out, the header of a cached fetch for q, the
// client's values of the fields q's variant is keyed on.
func forwardVary(q *request, out http.Header) {
	for _, f := range q.vary {
		if slices.Contains(spoofable, f) {
			continue
		}
		if vv := q.r.Header.Values(f); len(vv) > 0 {
			out[f] = vv
		}
	}
	origin.RemoveHopByHop(out) // an origin that varies on Connection gets none
}

// sentAsClient reports whether sent, the header of the fetch made for q,
// carried the client's value of every field in fields (RFC 9111 §4.1
// normalisation): then its answer is the one the client's own request
// would get.
func sentAsClient(q *request, fields []string, sent http.Header) bool {
	for _, f := range fields {
		if varyValue(q.r.Header, f) != varyValue(sent, f) {
			return false
		}
	}
	return true
}

// varyRefusal handles a discovery answer whose Vary does not match what
// q's key is: it records the fields for later requests (a marker at the
// URL's key) and says why the answer is not stored, and whether it may
// still answer q, given sent, the header the fetch carried. It returns ""
// when the answer matches.
func (s *Server) varyRefusal(q *request, h, sent http.Header, epoch uint64) (why string, forClient bool) {
	fields, star := varyFields(h)
	if star {
		return "Vary: *", false
	}
	if slices.Equal(fields, q.vary) {
		return "", true
	}
	if len(fields) == 0 {
		// The origin no longer varies: this variant's answer is stored
		// as the variant; the marker goes when the URL is purged.
		return "", true
	}
	base := q.key
	if q.base != "" {
		base = q.base
	}
	marker := &segstore.Meta{
		Key: base, SliceSize: q.rule.SliceSize, Version: segstore.NewVersion(),
		StoredAt: s.now(), Lifetime: 0, Consistency: segstore.Unproven, Vary: fields,
	}
	s.storeMeta(marker, epoch, "put vary marker")
	s.variants.forget(base)
	return "Vary: " + strings.Join(fields, ", ") + ", first answer", sentAsClient(q, fields, sent)
}

// variantSet bounds the variants stored per URL (a rule's max_variants)
// within a process's lifetime: a variant beyond the bound is passed
// through, not stored.
type variantSet struct {
	mu sync.Mutex // protects m
	m  map[string]map[string]bool
}

// admit reports whether variant key of base may be stored: it is known, or
// fewer than max are.
func (v *variantSet) admit(base, key string, max int) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) > 100_000 {
		v.m = make(map[string]map[string]bool) // bound memory; forgetting admits more, never fewer
	}
	known := v.m[base]
	if known[key] {
		return true
	}
	if len(known) >= max {
		return false
	}
	if known == nil {
		known = make(map[string]bool)
		v.m[base] = known
	}
	known[key] = true
	return true
}

// forget drops what is known of base's variants (purged, or varying anew).
func (v *variantSet) forget(base string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.m, base)
}

// purgeVariants removes every variant of key from the store, and records
// the purge so that none on its way is stored; key itself is the caller's.
func (s *Server) purgeVariants(key string) {
	s.purged.add(key+variantSep, true)
	s.variants.forget(key)
	if st, ok := s.Store.(interface {
		PurgePrefix(prefix string) (int, error)
	}); ok {
		if _, err := st.PurgePrefix(key + variantSep); err != nil {
			s.storeError(err, "purge variants")
		}
	}
}
