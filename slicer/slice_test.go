package slicer

import (
	"math"
	"slices"
	"testing"
)

const ss = 64 // slice size used by the tables below

func TestValidSliceSize(t *testing.T) {
	for n, want := range map[int64]bool{0: false, -64: false, 1: true, 64: true, 96: false, 1 << 20: true, math.MinInt64: false} {
		if got := ValidSliceSize(n); got != want {
			t.Errorf("ValidSliceSize(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestSliceCount(t *testing.T) {
	tests := []struct {
		name            string
		size, sliceSize int64
		want            int64
	}{
		{"empty", 0, ss, 0},
		{"one byte", 1, ss, 1},
		{"exactly one", ss, ss, 1},
		{"one over", ss + 1, ss, 2},
		{"exact multiple", 10 * ss, ss, 10},
		{"last short", 10*ss - 1, ss, 10},
		{"max object", math.MaxInt64, 1 << 26, 1 << 37},
	}
	for _, tt := range tests {
		if got := SliceCount(tt.size, tt.sliceSize); got != tt.want {
			t.Errorf("%s: SliceCount(%d, %d) = %d, want %d", tt.name, tt.size, tt.sliceSize, got, tt.want)
		}
	}
}

func TestSliceRange(t *testing.T) {
	tests := []struct {
		name             string
		i, sliceSize, sz int64
		want             Range
	}{
		{"first", 0, ss, 1000, Range{0, ss}},
		{"middle", 3, ss, 1000, Range{3 * ss, 4 * ss}},
		{"last short", 1, ss, 100, Range{ss, 100}},
		{"last exact", 1, ss, 2 * ss, Range{ss, 2 * ss}},
		{"only, short", 0, ss, 10, Range{0, 10}},
		{"past the end", 2, ss, 2 * ss, Range{2 * ss, 2 * ss}},
		{"size unknown", 1, ss, -1, Range{ss, 2 * ss}},
		{"last of max object", 1<<37 - 1, 1 << 26, math.MaxInt64, Range{math.MaxInt64 - 1<<26 + 1, math.MaxInt64}},
	}
	for _, tt := range tests {
		if got := SliceRange(tt.i, tt.sliceSize, tt.sz); got != tt.want {
			t.Errorf("%s: SliceRange(%d, %d, %d) = %v, want %v", tt.name, tt.i, tt.sliceSize, tt.sz, got, tt.want)
		}
	}
}

func TestSliceSpan(t *testing.T) {
	tests := []struct {
		name        string
		r           Range
		first, last int64
	}{
		{"first byte", Range{0, 1}, 0, 0},
		{"whole first slice", Range{0, ss}, 0, 0},
		{"one byte over", Range{0, ss + 1}, 0, 1},
		{"straddles boundary", Range{ss - 1, ss + 1}, 0, 1},
		{"exact slice", Range{ss, 2 * ss}, 1, 1},
		{"last byte of slice", Range{2*ss - 1, 2 * ss}, 1, 1},
		{"many slices", Range{10, 1000}, 0, 15},
		{"max object tail", Range{math.MaxInt64 - 1, math.MaxInt64}, math.MaxInt64 / ss, math.MaxInt64 / ss},
	}
	for _, tt := range tests {
		first, last := SliceSpan(tt.r, ss)
		if first != tt.first || last != tt.last {
			t.Errorf("%s: SliceSpan(%v, %d) = %d, %d; want %d, %d", tt.name, tt.r, ss, first, last, tt.first, tt.last)
		}
	}
}

func TestRunBytes(t *testing.T) {
	tests := []struct {
		name string
		run  Run
		sz   int64
		want Range
		len  int64
	}{
		{"one slice", Run{0, 0}, 1000, Range{0, ss}, 1},
		{"clamped", Run{0, 1}, 100, Range{0, 100}, 2},
		{"exact", Run{1, 2}, 3 * ss, Range{ss, 3 * ss}, 2},
		{"unknown size", Run{1, 3}, -1, Range{ss, 4 * ss}, 3},
		{"saturates", Run{0, math.MaxInt64 / ss}, -1, Range{0, math.MaxInt64}, math.MaxInt64/ss + 1},
	}
	for _, tt := range tests {
		if got := tt.run.Bytes(ss, tt.sz); got != tt.want {
			t.Errorf("%s: %v.Bytes(%d, %d) = %v, want %v", tt.name, tt.run, ss, tt.sz, got, tt.want)
		}
		if got := tt.run.Len(); got != tt.len {
			t.Errorf("%s: %v.Len() = %d, want %d", tt.name, tt.run, got, tt.len)
		}
	}
}

func TestCover(t *testing.T) {
	tests := []struct {
		name   string
		ranges []Range
		want   []Run
	}{
		{"none", nil, nil},
		{"inside one slice", []Range{{0, 10}}, []Run{{0, 0}}},
		{"whole slice", []Range{{ss, 2 * ss}}, []Run{{1, 1}}},
		{"straddling", []Range{{ss - 1, ss + 1}}, []Run{{0, 1}}},
		{"sharing a slice", []Range{{0, 10}, {20, 30}}, []Run{{0, 0}}},
		{"sharing a boundary slice", []Range{{ss - 10, ss + 10}, {ss + 20, 3 * ss}}, []Run{{0, 2}}},
		{"consecutive slices", []Range{{10, 20}, {ss + 10, ss + 20}}, []Run{{0, 1}}},
		{"gap of a slice", []Range{{0, 10}, {2*ss + 10, 2*ss + 20}}, []Run{{0, 0}, {2, 2}}},
		{"exact multiples", []Range{{ss, 2 * ss}, {4 * ss, 5 * ss}}, []Run{{1, 1}, {4, 4}}},
		{"last short slice", []Range{{100, 130}}, []Run{{1, 2}}},
		{"empty range ignored", []Range{{0, 10}, {5 * ss, 5 * ss}}, []Run{{0, 0}}},
		{"three ranges", []Range{{0, 1}, {10 * ss, 10*ss + 1}, {20*ss - 1, 20 * ss}}, []Run{{0, 0}, {10, 10}, {19, 19}}},
	}
	for _, tt := range tests {
		if got := Cover(tt.ranges, ss); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Cover(%v, %d) = %v, want %v", tt.name, tt.ranges, ss, got, tt.want)
		}
	}
}

func TestPlanRuns(t *testing.T) {
	all := func(int64) bool { return true }
	none := func(int64) bool { return false }
	odd := func(i int64) bool { return i%2 == 1 }
	set := func(s ...int64) func(int64) bool {
		return func(i int64) bool { return slices.Contains(s, i) }
	}
	tests := []struct {
		name      string
		span      Run
		missing   func(int64) bool
		maxSlices int64
		want      []Run
	}{
		{"all missing unlimited", Run{0, 9}, all, 0, []Run{{0, 9}}},
		{"all missing negative max", Run{0, 9}, all, -1, []Run{{0, 9}}},
		{"split with remainder", Run{0, 9}, all, 4, []Run{{0, 3}, {4, 7}, {8, 9}}},
		{"split exact", Run{0, 9}, all, 5, []Run{{0, 4}, {5, 9}}},
		{"max one", Run{3, 5}, all, 1, []Run{{3, 3}, {4, 4}, {5, 5}}},
		{"max larger than span", Run{3, 5}, all, 100, []Run{{3, 5}}},
		{"nothing missing", Run{0, 9}, none, 0, nil},
		{"alternate", Run{0, 5}, odd, 0, []Run{{1, 1}, {3, 3}, {5, 5}}},
		{"holes and split", Run{0, 9}, set(1, 2, 3, 5, 6, 9), 2, []Run{{1, 2}, {3, 3}, {5, 6}, {9, 9}}},
		{"single slice", Run{7, 7}, all, 3, []Run{{7, 7}}},
		{"single slice present", Run{7, 7}, none, 3, nil},
		{"empty span", Run{5, 4}, all, 0, nil},
		{"end of int64", Run{math.MaxInt64 - 1, math.MaxInt64}, all, 0, []Run{{math.MaxInt64 - 1, math.MaxInt64}}},
	}
	for _, tt := range tests {
		if got := PlanRuns(tt.span, tt.missing, tt.maxSlices); !slices.Equal(got, tt.want) {
			t.Errorf("%s: PlanRuns(%v, max %d) = %v, want %v", tt.name, tt.span, tt.maxSlices, got, tt.want)
		}
	}
}
