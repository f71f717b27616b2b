package slicer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrBadContentRange reports a Content-Range value from the origin that is
// not a valid bytes range (RFC 9110 §14.4).
var ErrBadContentRange = errors.New("invalid Content-Range")

// ContentRange returns the Content-Range value for the non-empty range r of
// an object of size bytes, "bytes first-last/size" (RFC 9110 §14.4); size < 0
// means unknown and is written as "*".
func ContentRange(r Range, size int64) string {
	var buf [72]byte
	b := append(buf[:0], "bytes "...)
	b = strconv.AppendInt(b, r.Start, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, r.End-1, 10)
	b = append(b, '/')
	if size < 0 {
		b = append(b, '*')
	} else {
		b = strconv.AppendInt(b, size, 10)
	}
	return string(b)
}

// UnsatisfiedContentRange returns the Content-Range value of a 416 answer,
// "bytes */size" (RFC 9110 §14.4, unsatisfied-range).
func UnsatisfiedContentRange(size int64) string {
	return "bytes */" + strconv.FormatInt(size, 10)
}

// ParseContentRange parses a Content-Range value (RFC 9110 §14.4):
//
//	Content-Range     = range-unit SP ( range-resp / unsatisfied-range )
//	range-resp        = incl-range "/" ( complete-length / "*" )
//	incl-range        = first-pos "-" last-pos
//	unsatisfied-range = "*/" complete-length
//
// "bytes a-b/n" gives Range{a, b+1} and size n; "bytes a-b/*" gives size -1;
// "bytes */n" gives Range{}, size n and unsatisfied. The unit "bytes" is
// case-insensitive. Any other unit, b < a, b >= n, a number that is not
// plain digits or overflows int64, or other junk wraps ErrBadContentRange.
func ParseContentRange(v string) (r Range, size int64, unsatisfied bool, err error) {
	bad := func(why string) (Range, int64, bool, error) {
		return Range{}, 0, false, fmt.Errorf("slicer: parse Content-Range %q: %s: %w", v, why, ErrBadContentRange)
	}
	unit, rest, ok := strings.Cut(trimOWS(v), " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return bad("unit is not bytes")
	}
	incl, total, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("no '/'")
	}
	size = -1
	if total != "*" {
		if size, ok = parseDigits(total); !ok {
			return bad("bad complete-length")
		}
	}
	if incl == "*" {
		if size < 0 {
			return bad("unsatisfied-range without complete-length")
		}
		return Range{}, size, true, nil
	}
	first, last, ok := strings.Cut(incl, "-")
	if !ok {
		return bad("no '-'")
	}
	a, okA := parseDigits(first)
	b, okB := parseDigits(last)
	switch {
	case !okA:
		return bad("bad first-pos")
	case !okB:
		return bad("bad last-pos")
	case b < a:
		return bad("last-pos less than first-pos")
	case size >= 0 && b >= size:
		return bad("last-pos not less than complete-length")
	case b == math.MaxInt64:
		return bad("last-pos overflows")
	}
	return Range{Start: a, End: b + 1}, size, false, nil
}
