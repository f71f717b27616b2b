package slicer

import "math"

// ValidSliceSize reports whether n can be a slice size: a power of two.
func ValidSliceSize(n int64) bool { return n > 0 && n&(n-1) == 0 }

// SliceCount returns how many slices of sliceSize bytes an object of size
// bytes is cut into; the last one may be short, and an empty object has none.
func SliceCount(size, sliceSize int64) int64 {
	if size <= 0 {
		return 0
	}
	n := size / sliceSize
	if size%sliceSize != 0 {
		n++
	}
	return n
}

// SliceRange returns the bytes of slice i of an object of size bytes,
// clamped to size (the last slice may be short; a slice past the end is
// empty at size). size < 0 means unknown: no clamping.
func SliceRange(i, sliceSize, size int64) Range {
	return Run{First: i, Last: i}.Bytes(sliceSize, size)
}

// SliceSpan returns the inclusive indices of the first and last slices
// holding bytes of r, which must be non-empty.
func SliceSpan(r Range, sliceSize int64) (first, last int64) {
	return r.Start / sliceSize, (r.End - 1) / sliceSize
}

// Run is an inclusive span of slice indices fetched with one origin request.
type Run struct{ First, Last int64 }

// Len returns the number of slices in r.
func (r Run) Len() int64 { return r.Last - r.First + 1 }

// Bytes returns the byte range of r's slices, clamped to size; size < 0
// means unknown (no clamping), and the end saturates at math.MaxInt64.
func (r Run) Bytes(sliceSize, size int64) Range {
	b := Range{Start: mulSat(r.First, sliceSize), End: mulSat(r.Last+1, sliceSize)}
	if size >= 0 {
		b.Start = min(b.Start, size)
		b.End = min(b.End, size)
	}
	return b
}

// mulSat returns a*b for non-negative a and b, saturating at math.MaxInt64.
func mulSat(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// Cover returns the sorted, disjoint runs of slices that hold the bytes of
// ranges, which must be sorted and disjoint as Resolve returns them. Ranges
// that share a slice, or whose slices are consecutive, share a run, so runs
// are also non-adjacent.
func Cover(ranges []Range, sliceSize int64) []Run {
	var runs []Run
	for _, r := range ranges {
		if r.Len() <= 0 {
			continue
		}
		first, last := SliceSpan(r, sliceSize)
		if n := len(runs); n > 0 && first <= runs[n-1].Last+1 {
			runs[n-1].Last = max(runs[n-1].Last, last)
			continue
		}
		runs = append(runs, Run{First: first, Last: last})
	}
	return runs
}

// PlanRuns splits span into runs of consecutive slices for which missing(i)
// is true, each at most maxSlices long (maxSlices <= 0: unlimited), in
// ascending order; slices where missing is false are skipped. missing is
// called once per slice of span.
func PlanRuns(span Run, missing func(i int64) bool, maxSlices int64) []Run {
	var runs []Run
	open := false
	for i := span.First; i <= span.Last; i++ {
		if !missing(i) {
			open = false
			continue
		}
		if open && (maxSlices <= 0 || runs[len(runs)-1].Len() < maxSlices) {
			runs[len(runs)-1].Last = i
		} else {
			runs = append(runs, Run{First: i, Last: i})
			open = true
		}
		if i == math.MaxInt64 {
			break // i++ would wrap
		}
	}
	return runs
}
