package slicer

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalid reports a Range header that is syntactically invalid or not in
// the "bytes" unit; the caller ignores the header and answers 200 (RFC 9110
// §14.2: a server MAY ignore the Range header field).
var ErrInvalid = errors.New("invalid Range")

// ErrUnsatisfiable reports that no range-spec is satisfiable for the
// object's size; the caller answers 416 with UnsatisfiedContentRange(size).
var ErrUnsatisfiable = errors.New("range not satisfiable")

// DefaultMaxRanges is the number of ranges Resolve allows when
// Limits.MaxRanges is zero.
const DefaultMaxRanges = 64

// MergeGap is the gap, in bytes, below which Resolve merges two ranges into
// one: RFC 9110 §14.2 lets a server coalesce ranges "separated by a gap
// that is smaller than the overhead of sending multiple parts". It is the
// least framing one more part of a multipart/byteranges answer costs (RFC
// 9110 §14.6), as mime/multipart writes it: the delimiter "\r\n--" +
// 60-character boundary + "\r\n" (66 bytes), the shortest Content-Range
// field "Content-Range: bytes 0-0/1\r\n" (28) and the blank line (2).
// Merging ranges closer than that never makes an answer longer, and
// thousands of tiny ranges a few bytes apart become one part instead of
// an answer of the whole object.
const MergeGap = 96

// Range is a half-open byte interval [Start, End) of an object.
type Range struct{ Start, End int64 }

// Len returns the number of bytes in r.
func (r Range) Len() int64 { return r.End - r.Start }

// Header returns r as the value of a Range request header for the origin,
// "bytes=Start-(End-1)", or "bytes=Start-" when End is math.MaxInt64 (to
// the end, wherever it is). r must be non-empty.
func (r Range) Header() string {
	var buf [48]byte
	b := append(buf[:0], "bytes="...)
	b = strconv.AppendInt(b, r.Start, 10)
	b = append(b, '-')
	if r.End != math.MaxInt64 {
		b = strconv.AppendInt(b, r.End-1, 10)
	}
	return string(b)
}

// Spec is one byte-range-spec as the client wrote it, before the object's
// size is known.
type Spec struct {
	First  int64 // first-pos; -1 for a suffix range
	Last   int64 // last-pos; -1 when absent ("N-") or for a suffix range
	Suffix int64 // suffix-length for "-N"; only meaningful when First == -1
}

// isSuffix reports whether s is a suffix-range ("-N").
func (s Spec) isSuffix() bool { return s.First == -1 }

// valid reports whether s is a spec Parse could have returned.
func (s Spec) valid() bool {
	if s.isSuffix() {
		return s.Last == -1 && s.Suffix >= 0
	}
	return s.First >= 0 && (s.Last == -1 || s.Last >= s.First)
}

// Parse parses a Range header value as a ranges-specifier of the bytes
// unit (RFC 9110 §14.1.1, §14.1.2) and returns its specs in the order
// written.
//
// The unit must be "bytes", in any case, followed directly by "=". The
// range-set is a list (RFC 9110 §5.6.1): optional whitespace around each
// element is skipped (so "bytes= 1-2" and "bytes=1-2 ,3-4" parse, while
// "bytes =1-2" does not) and empty elements are tolerated, but at least one
// range-spec is required. Numbers are digits only and must fit an int64.
// An int-range whose last-pos is less than its first-pos makes the whole
// header invalid. Every failure wraps ErrInvalid and quotes the header.
func Parse(header string) ([]Spec, error) {
	h := trimOWS(header)
	unit, set, ok := strings.Cut(h, "=")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return nil, parseError(header, "unit is not bytes")
	}
	specs := make([]Spec, 0, strings.Count(set, ",")+1)
	for elem := range strings.SplitSeq(set, ",") {
		elem = trimOWS(elem)
		if elem == "" {
			continue // RFC 9110 §5.6.1: empty list elements are ignored
		}
		s, why := parseSpec(elem)
		if why != "" {
			return nil, parseError(header, why)
		}
		specs = append(specs, s)
	}
	if len(specs) == 0 {
		return nil, parseError(header, "no range-spec")
	}
	return specs, nil
}

// parseSpec parses one range-spec of the bytes unit (RFC 9110 §14.1.1):
// int-range = first-pos "-" [ last-pos ], suffix-range = "-" suffix-length.
// It returns a non-empty reason when elem is neither.
func parseSpec(elem string) (Spec, string) {
	first, last, ok := strings.Cut(elem, "-")
	if !ok {
		return Spec{}, "range-spec without '-'"
	}
	if first == "" {
		n, ok := parsePos(last)
		if !ok {
			return Spec{}, "bad suffix-length"
		}
		return Spec{First: -1, Last: -1, Suffix: n}, ""
	}
	f, ok := parsePos(first)
	if !ok {
		return Spec{}, "bad first-pos"
	}
	if last == "" {
		return Spec{First: f, Last: -1}, ""
	}
	l, ok := parsePos(last)
	if !ok {
		return Spec{}, "bad last-pos"
	}
	if l < f {
		// RFC 9110 §14.1.1: an int-range with last-pos < first-pos is
		// invalid, and so is the whole ranges-specifier.
		return Spec{}, "last-pos less than first-pos"
	}
	return Spec{First: f, Last: l}, ""
}

// parseDigits parses 1*DIGIT (RFC 9110 §14.1.1) into a non-negative int64;
// it rejects signs, spaces, an empty string and values beyond math.MaxInt64.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// trimOWS removes optional whitespace, SP and HTAB (RFC 9110 §5.6.3), from
// both ends of s.
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

// parseError wraps ErrInvalid with the header, quoted, and why it failed.
func parseError(header, why string) error {
	return fmt.Errorf("slicer: parse Range %q: %s: %w", header, why, ErrInvalid)
}

// FirstKnownStart returns the first byte the specs need when the object's
// size is not yet known, so the caller can choose the first slice to fetch.
// ok is false when that byte depends on the size: some suffix-range could
// start before every int-range, or there is no satisfiable-looking spec.
func FirstKnownStart(specs []Spec) (start int64, ok bool) {
	start = math.MaxInt64
	suffix := false
	for _, s := range specs {
		switch {
		case !s.valid():
		case s.isSuffix():
			if s.Suffix > 0 { // "-0" needs no bytes
				suffix = true
			}
		default:
			start = min(start, s.First)
		}
	}
	if start == math.MaxInt64 || (suffix && start > 0) {
		return 0, false
	}
	return start, true
}

// LongestSuffix returns the longest suffix-length among specs when every
// spec that needs bytes is a suffix-range ("-N"), so that the bytes the
// request needs first are the object's last n, whatever its size. ok is
// false when some int-range needs bytes too, or no spec needs any.
func LongestSuffix(specs []Spec) (n int64, ok bool) {
	for _, s := range specs {
		switch {
		case !s.valid():
		case !s.isSuffix():
			return 0, false
		default:
			n = max(n, s.Suffix)
		}
	}
	return n, n > 0
}

// Limits bounds the work a Range header may ask of the server.
type Limits struct {
	// MaxRanges is the most ranges, counted after coalescing, that are
	// answered as ranges; beyond it the whole object is sent (RFC 9110
	// §14.2 lets a server ignore Range). 0 or less means DefaultMaxRanges.
	MaxRanges int
}

// Resolve maps specs onto an object of size bytes (RFC 9110 §14.1.2): it
// drops unsatisfiable specs, clamps the rest into [0, size), sorts them and
// coalesces ranges that overlap or lie less than MergeGap bytes apart (RFC
// 9110 §14.2), so the result is sorted, disjoint, non-empty, at least
// MergeGap bytes apart, and its total length never exceeds size however
// many specs overlap. A merged range also holds the gap's bytes, which cost
// less than the part they save. It runs in O(n log n).
//
// It returns an error wrapping ErrUnsatisfiable when no spec is
// satisfiable, and (nil, nil) when the answer should be a 200 of the whole
// object: more than lim.MaxRanges ranges remain, or size is 0 and a
// satisfiable suffix-range asks for bytes of an empty representation. specs
// that Parse could not have returned (or none at all) wrap ErrInvalid.
func Resolve(specs []Spec, size int64, lim Limits) ([]Range, error) {
	if size < 0 {
		return nil, fmt.Errorf("slicer: resolve on negative size %d", size)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("slicer: resolve: no range-spec: %w", ErrInvalid)
	}
	maxRanges := lim.MaxRanges
	if maxRanges <= 0 {
		maxRanges = DefaultMaxRanges
	}
	var out []Range
	emptySuffix := false
	for _, s := range specs {
		if !s.valid() {
			return nil, fmt.Errorf("slicer: resolve: malformed spec %+v: %w", s, ErrInvalid)
		}
		r, ok := satisfy(s, size)
		if !ok {
			if size == 0 && s.isSuffix() && s.Suffix > 0 {
				emptySuffix = true
			}
			continue
		}
		if out == nil {
			out = make([]Range, 0, len(specs))
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		if emptySuffix {
			return nil, nil
		}
		return nil, fmt.Errorf("slicer: resolve %d range-specs on size %d: %w", len(specs), size, ErrUnsatisfiable)
	}
	out = coalesce(out)
	if len(out) > maxRanges {
		return nil, nil
	}
	if cap(out) > 2*len(out)+8 {
		// Many specs coalesced into few ranges: do not keep the big array.
		out = slices.Clone(out)
	}
	return out, nil
}

// satisfy maps one spec onto an object of size bytes (RFC 9110 §14.1.2):
// an int-range is satisfiable iff first-pos < size, its last-pos clamped to
// size-1; a suffix-range is satisfiable iff suffix-length > 0, a suffix
// longer than the object meaning the whole object. ok is false also for a
// satisfiable suffix on an empty object, which has no byte to give.
func satisfy(s Spec, size int64) (Range, bool) {
	if s.isSuffix() {
		if s.Suffix <= 0 || size == 0 {
			return Range{}, false
		}
		return Range{Start: size - min(s.Suffix, size), End: size}, true
	}
	if s.First >= size {
		return Range{}, false
	}
	end := size
	if s.Last >= 0 && s.Last < size-1 {
		end = s.Last + 1
	}
	return Range{Start: s.First, End: end}, true
}

// coalesce sorts rs by start and merges, in place, ranges that overlap or
// whose gap is less than MergeGap bytes (RFC 9110 §14.2 lets a server
// coalesce ranges regardless of the order in which they were written).
func coalesce(rs []Range) []Range {
	slices.SortFunc(rs, func(a, b Range) int { return cmp.Compare(a.Start, b.Start) })
	n := 0
	for _, r := range rs[1:] {
		if r.Start-rs[n].End < MergeGap {
			rs[n].End = max(rs[n].End, r.End)
			continue
		}
		n++
		rs[n] = r
	}
	return rs[:n+1]
}

// parsePos parses a position or length in a Range header. RFC 9110 §14.1.1
// asks recipients to expect numbers beyond any object and not fail on
// them: a value past math.MaxInt64 saturates to it, so "0-<huge>" is the
// whole object, "<huge>-" unsatisfiable and "-<huge>" the whole object.
func parsePos(s string) (int64, bool) {
	n, ok := parseDigits(s)
	if ok || s == "" {
		return n, ok
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	return math.MaxInt64, true
}
