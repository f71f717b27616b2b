package slicer

import (
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// formatSpecs writes specs back as a Range header, the inverse of Parse.
func formatSpecs(specs []Spec) string {
	parts := make([]string, len(specs))
	for i, s := range specs {
		switch {
		case s.First == -1:
			parts[i] = "-" + strconv.FormatInt(s.Suffix, 10)
		case s.Last == -1:
			parts[i] = strconv.FormatInt(s.First, 10) + "-"
		default:
			parts[i] = strconv.FormatInt(s.First, 10) + "-" + strconv.FormatInt(s.Last, 10)
		}
	}
	return "bytes=" + strings.Join(parts, ",")
}

// FuzzRange checks the whole client path: Parse, Resolve, FirstKnownStart,
// Cover, PlanRuns and the Content-Range round trip, for any header, any
// object size and a slice size of 64 KiB to 64 MiB.
func FuzzRange(f *testing.F) {
	seeds := []struct {
		header string
		size   int64
		b      byte
	}{
		{"bytes=0-499", 10000, 0},
		{"bytes=-500", 100, 1},
		{"bytes=9500-", 10000, 2},
		{"bytes=0-0,-1", 1 << 30, 3},
		{"bytes=-0", 100, 4},
		{"bytes=0-9,10-19", 100, 5},
		{"bytes=0-9,105-110", 1000, 5},
		{"bytes=0-9,106-110", 1000, 5},
		{"bytes=200-300,0-0,-1,150-150", 1000, 0x15},
		{"bytes= 1-2 ,3-4, ,", 100, 0x16},
		{"BYTES=0-1", 1, 0x27},
		{"bytes=5-1", 100, 8},
		{"bytes=--1", 100, 9},
		{"bytes=1-2-3", 100, 10},
		{"items=0-1", 100, 11},
		{"bytes=", 100, 12},
		{"bytes=-1", 0, 13},
		{"bytes=0-", 0, 14},
		{"bytes=0-9223372036854775807", 9223372036854775807, 0xff},
		{"bytes=9223372036854775806-", 9223372036854775807, 0xfa},
		{"bytes=0-0,2-2,4-4,6-6,8-8", 100, 0x20},
		{"bytes=65535-65536,131071-", 1 << 20, 0x30},
		{"bytes=67108863-67108864", 1<<26 + 1, 0x0a},
		{manySpecs(200, func(i int) string { return strconv.Itoa(i*65536) + "-" }), 200 << 16, 0},
	}
	for _, s := range seeds {
		f.Add(s.header, s.size, s.b)
	}
	f.Fuzz(func(t *testing.T, header string, size int64, b byte) {
		if size < 0 {
			size = -(size + 1)
		}
		sliceSize := int64(1) << (16 + b%11)
		lim := Limits{MaxRanges: int(b >> 4)}
		maxRanges := lim.MaxRanges
		if maxRanges == 0 {
			maxRanges = DefaultMaxRanges
		}

		specs, err := Parse(header)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), strconv.Quote(header)) {
				t.Fatalf("Parse(%q) error %v: want ErrInvalid quoting the header", header, err)
			}
			return
		}
		if len(specs) == 0 {
			t.Fatalf("Parse(%q) = no specs, nil", header)
		}
		for _, s := range specs {
			if !s.valid() {
				t.Fatalf("Parse(%q) returned malformed spec %+v", header, s)
			}
		}
		if again, err := Parse(formatSpecs(specs)); err != nil || !slices.Equal(again, specs) {
			t.Fatalf("Parse(%q) = %v, but reparsing %q = %v, %v", header, specs, formatSpecs(specs), again, err)
		}

		ranges, err := Resolve(specs, size, lim)
		checkResolve(t, header, specs, size, maxRanges, ranges, err)
		if len(ranges) == 0 {
			return
		}

		if start, ok := FirstKnownStart(specs); ok {
			if ranges[0].Start < start || (start < size && ranges[0].Start != start) {
				t.Fatalf("FirstKnownStart(%q) = %d, but Resolve(size %d) starts at %d", header, start, size, ranges[0].Start)
			}
		}

		for _, r := range ranges {
			for _, total := range []int64{size, -1} {
				got, gotSize, unsat, err := ParseContentRange(ContentRange(r, total))
				if err != nil || got != r || gotSize != total || unsat {
					t.Fatalf("ParseContentRange(%q) = %v, %d, %v, %v; want %v, %d", ContentRange(r, total), got, gotSize, unsat, err, r, total)
				}
			}
			h := r.Header()
			s, err := Parse(h)
			if err != nil {
				t.Fatalf("Parse(%v.Header() = %q) = %v", r, h, err)
			}
			if back, err := Resolve(s, size, Limits{}); err != nil || !slices.Equal(back, []Range{r}) {
				t.Fatalf("Resolve(%q, %d) = %v, %v; want [%v]", h, size, back, err, r)
			}
			first, last := SliceSpan(r, sliceSize)
			if fr, lr := SliceRange(first, sliceSize, size), SliceRange(last, sliceSize, size); r.Start < fr.Start || r.Start >= fr.End || r.End-1 < lr.Start || r.End-1 >= lr.End {
				t.Fatalf("SliceSpan(%v, %d) = %d, %d whose slices are %v and %v", r, sliceSize, first, last, fr, lr)
			}
		}
		if got, gotSize, unsat, err := ParseContentRange(UnsatisfiedContentRange(size)); err != nil || got != (Range{}) || gotSize != size || !unsat {
			t.Fatalf("ParseContentRange(%q) = %v, %d, %v, %v", UnsatisfiedContentRange(size), got, gotSize, unsat, err)
		}

		runs := Cover(ranges, sliceSize)
		checkCover(t, header, ranges, size, sliceSize, runs)

		h := fnv.New64a()
		h.Write([]byte(header))
		seed := h.Sum64()
		missing := func(i int64) bool { return (uint64(i)*0x9e3779b97f4a7c15+seed)>>61 != 0 } // ~7/8 missing
		maxSlices := int64(b % 5)
		for _, run := range runs {
			span := Run{First: run.First, Last: min(run.Last, run.First+1023)}
			checkPlan(t, span, missing, maxSlices, PlanRuns(span, missing, maxSlices))
		}
	})
}

// checkResolve verifies Resolve's answer for specs on size against its
// contract, using a byte map as the oracle when the object is small.
func checkResolve(t *testing.T, header string, specs []Spec, size int64, maxRanges int, ranges []Range, err error) {
	t.Helper()
	anySat, emptySuffix := false, false
	for _, s := range specs {
		if s.First == -1 {
			anySat = anySat || (s.Suffix > 0 && size > 0)
			emptySuffix = emptySuffix || (s.Suffix > 0 && size == 0)
		} else {
			anySat = anySat || s.First < size
		}
	}
	switch {
	case err != nil:
		if !errors.Is(err, ErrUnsatisfiable) || anySat || emptySuffix {
			t.Fatalf("Resolve(%q, %d) error %v; satisfiable %v, empty suffix %v", header, size, err, anySat, emptySuffix)
		}
		return
	case ranges == nil:
		if emptySuffix && !anySat {
			return
		}
		all, err := Resolve(specs, size, Limits{MaxRanges: int(^uint(0) >> 1)})
		if err != nil || len(all) <= maxRanges {
			t.Fatalf("Resolve(%q, %d) = nil, nil; without a limit %d ranges, %v (limit %d)", header, size, len(all), err, maxRanges)
		}
		return
	case !anySat:
		t.Fatalf("Resolve(%q, %d) = %v with no satisfiable spec", header, size, ranges)
	}
	if len(ranges) > maxRanges {
		t.Fatalf("Resolve(%q, %d) = %d ranges, more than %d", header, size, len(ranges), maxRanges)
	}
	var total int64
	for i, r := range ranges {
		if r.Start < 0 || r.End > size || r.Len() <= 0 {
			t.Fatalf("Resolve(%q, %d) range %v is empty or outside [0,%d)", header, size, r, size)
		}
		if i > 0 && r.Start-ranges[i-1].End < MergeGap {
			t.Fatalf("Resolve(%q, %d) ranges %v and %v are unsorted, overlapping or less than MergeGap (%d) apart", header, size, ranges[i-1], r, MergeGap)
		}
		total += r.Len()
	}
	if total > size {
		t.Fatalf("Resolve(%q, %d) = %d bytes, more than the object", header, size, total)
	}
	if size > 1<<22/int64(len(specs)) { // byte-map oracle only for small work
		return
	}
	want := make([]bool, size)
	for _, s := range specs {
		if r, ok := satisfyOracle(s, size); ok {
			for i := r.Start; i < r.End; i++ {
				want[i] = true
			}
		}
	}
	got := make([]bool, size)
	for _, r := range ranges {
		for i := r.Start; i < r.End; i++ {
			got[i] = true
		}
	}
	// Every requested byte is covered; a covered byte not requested lies
	// in a gap of fewer than MergeGap bytes between requested bytes.
	for i := int64(0); i < size; {
		switch {
		case want[i] && !got[i]:
			t.Fatalf("Resolve(%q, %d) = %v leaves out requested byte %d", header, size, ranges, i)
		case got[i] && !want[i]:
			j := i
			for j < size && got[j] && !want[j] {
				j++
			}
			if i == 0 || !want[i-1] || j == size || !want[j] || j-i >= MergeGap {
				t.Fatalf("Resolve(%q, %d) = %v covers unrequested bytes %d-%d, not a gap of less than %d between requested bytes", header, size, ranges, i, j-1, MergeGap)
			}
			i = j
		default:
			i++
		}
	}
}

// satisfyOracle is RFC 9110 §14.1.2 written out again, independently of satisfy.
func satisfyOracle(s Spec, size int64) (Range, bool) {
	switch {
	case s.First == -1 && s.Suffix == 0, size == 0:
		return Range{}, false
	case s.First == -1 && s.Suffix >= size:
		return Range{0, size}, true
	case s.First == -1:
		return Range{size - s.Suffix, size}, true
	case s.First >= size:
		return Range{}, false
	case s.Last == -1 || s.Last >= size:
		return Range{s.First, size}, true
	}
	return Range{s.First, s.Last + 1}, true
}

// checkCover verifies that runs are sorted, non-adjacent, inside the
// object's slices, hold every byte of ranges, and start and end on slices
// that some range needs.
func checkCover(t *testing.T, header string, ranges []Range, size, sliceSize int64, runs []Run) {
	t.Helper()
	n := SliceCount(size, sliceSize)
	firsts, lasts := map[int64]bool{}, map[int64]bool{}
	for _, r := range ranges {
		first, last := SliceSpan(r, sliceSize)
		firsts[first], lasts[last] = true, true
	}
	for i, run := range runs {
		if run.First < 0 || run.Last >= n || run.Len() <= 0 {
			t.Fatalf("Cover(%q → %v, %d) run %v outside [0,%d)", header, ranges, sliceSize, run, n)
		}
		if i > 0 && runs[i-1].Last+1 >= run.First {
			t.Fatalf("Cover(%q → %v, %d) runs %v and %v are unsorted, overlapping or adjacent", header, ranges, sliceSize, runs[i-1], run)
		}
		if !firsts[run.First] || !lasts[run.Last] {
			t.Fatalf("Cover(%q → %v, %d) run %v covers slices no range needs", header, ranges, sliceSize, run)
		}
	}
	for _, r := range ranges {
		i := slices.IndexFunc(runs, func(run Run) bool {
			b := run.Bytes(sliceSize, size)
			return b.Start <= r.Start && r.End <= b.End
		})
		if i < 0 {
			t.Fatalf("Cover(%q → %v, %d) = %v: no run holds %v", header, ranges, sliceSize, runs, r)
		}
	}
}

// checkPlan verifies PlanRuns against its contract slice by slice.
func checkPlan(t *testing.T, span Run, missing func(int64) bool, maxSlices int64, runs []Run) {
	t.Helper()
	in := map[int64]bool{}
	for i, run := range runs {
		if run.First < span.First || run.Last > span.Last || run.Len() <= 0 || (maxSlices > 0 && run.Len() > maxSlices) {
			t.Fatalf("PlanRuns(%v, max %d) run %v is empty, too long or outside the span", span, maxSlices, run)
		}
		if i > 0 {
			prev := runs[i-1]
			if prev.Last >= run.First {
				t.Fatalf("PlanRuns(%v, max %d) runs %v and %v are unsorted or overlap", span, maxSlices, prev, run)
			}
			if prev.Last+1 == run.First && (maxSlices <= 0 || prev.Len() < maxSlices) {
				t.Fatalf("PlanRuns(%v, max %d) split %v and %v needlessly", span, maxSlices, prev, run)
			}
		}
		for j := run.First; j <= run.Last; j++ {
			in[j] = true
		}
	}
	for i := span.First; i <= span.Last; i++ {
		if missing(i) != in[i] {
			t.Fatalf("PlanRuns(%v, max %d) = %v: slice %d missing %v but planned %v", span, maxSlices, runs, i, missing(i), in[i])
		}
	}
}

// FuzzContentRange checks that ParseContentRange never panics, accepts only
// values within its contract, and that what it accepts round-trips.
func FuzzContentRange(f *testing.F) {
	for _, v := range []string{
		"bytes 0-499/1234", "bytes 500-999/*", "bytes */1234", "bytes */0", "Bytes 0-0/1",
		"bytes 0-0/0", "bytes 5-4/10", "bytes 0-9223372036854775807/*", "bytes 0-1/99999999999999999999",
		"bytes 0-9223372036854775806/9223372036854775807", "bytes=0-1/2", "bytes */*", "", " bytes 0-0/1\t",
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, size, unsat, err := ParseContentRange(v)
		if err != nil {
			if !errors.Is(err, ErrBadContentRange) || !strings.Contains(err.Error(), strconv.Quote(v)) {
				t.Fatalf("ParseContentRange(%q) error %v: want ErrBadContentRange quoting the value", v, err)
			}
			if r != (Range{}) || size != 0 || unsat {
				t.Fatalf("ParseContentRange(%q) = %v, %d, %v with error %v", v, r, size, unsat, err)
			}
			return
		}
		var canon string
		if unsat {
			if r != (Range{}) || size < 0 {
				t.Fatalf("ParseContentRange(%q) = %v, %d, unsatisfied", v, r, size)
			}
			canon = UnsatisfiedContentRange(size)
		} else {
			if r.Start < 0 || r.Len() <= 0 || size < -1 || (size >= 0 && r.End > size) {
				t.Fatalf("ParseContentRange(%q) = %v, %d: range empty or outside the object", v, r, size)
			}
			canon = ContentRange(r, size)
		}
		r2, size2, unsat2, err := ParseContentRange(canon)
		if err != nil || r2 != r || size2 != size || unsat2 != unsat {
			t.Fatalf("ParseContentRange(%q) = %v, %d, %v; but its canonical form %q = %v, %d, %v, %v", v, r, size, unsat, canon, r2, size2, unsat2, err)
		}
	})
}
