package edge

import (
	"testing"

	"github.com/sliceedge/sliceedge/slicer"
)

// slicer.MergeGap stands for the framing one more part costs: every part
// after the first, as newMultipart frames it, costs at least that much, so
// merging two ranges closer than MergeGap never lengthens an answer.
func TestMultipartPartCostsAtLeastMergeGap(t *testing.T) {
	tests := []struct {
		contentType string
		ranges      []slicer.Range
		size        int64
	}{
		{"", []slicer.Range{{Start: 0, End: 1}, {Start: 2, End: 3}, {Start: 4, End: 5}}, 9},
		{"application/octet-stream", []slicer.Range{{Start: 0, End: 10}, {Start: 200, End: 300}}, 1000},
		{"", []slicer.Range{{Start: 0, End: 10}, {Start: 10 + slicer.MergeGap - 1, End: 200}, {Start: 900, End: 901}}, 1000},
		{"video/mp4", []slicer.Range{{Start: 0, End: 1}, {Start: 1 << 40, End: 1<<40 + 1}}, 1 << 41},
	}
	for _, tt := range tests {
		mp := newMultipart(tt.contentType, tt.ranges, tt.size)
		for k := 1; k < len(tt.ranges); k++ {
			if n := len(mp.partHeader(k)); n < slicer.MergeGap {
				t.Errorf("Content-Type %q ranges %v: part %d framing %q is %d bytes, less than slicer.MergeGap %d",
					tt.contentType, tt.ranges, k, mp.partHeader(k), n, slicer.MergeGap)
			}
		}
		// Merging the first two ranges (and their gap) must not lengthen
		// the body when the gap is below MergeGap.
		a, b := tt.ranges[0], tt.ranges[1]
		if gap := b.Start - a.End; gap < slicer.MergeGap {
			merged := append([]slicer.Range{{Start: a.Start, End: b.End}}, tt.ranges[2:]...)
			var got int64
			if len(merged) == 1 {
				got = merged[0].Len() // a single part: no framing at all
			} else {
				got = newMultipart(tt.contentType, merged, tt.size).length()
			}
			if sep := mp.length(); got >= sep {
				t.Errorf("Content-Type %q ranges %v: merged body %d bytes, separate parts %d", tt.contentType, tt.ranges, got, sep)
			}
		}
	}
}

// The smallest framing of a later part is exactly MergeGap: the constant is
// not looser than it needs to be.
func TestMultipartSmallestPartIsMergeGap(t *testing.T) {
	mp := newMultipart("", []slicer.Range{{Start: 0, End: 1}, {Start: 2, End: 3}}, 9)
	if n := len(mp.partHeader(1)); n != slicer.MergeGap {
		t.Fatalf("framing %q of the smallest later part is %d bytes; slicer.MergeGap is %d", mp.partHeader(1), n, slicer.MergeGap)
	}
}
