package slicer_test

import (
	"errors"
	"fmt"

	"github.com/sliceedge/sliceedge/slicer"
)

// A client asks for two ranges of a 10 MiB object cached in 1 MiB slices,
// of which slices 2 and 3 are already stored.
func Example() {
	const size, sliceSize = 10 << 20, 1 << 20
	specs, err := slicer.Parse("bytes=-100, 1000000-3500000")
	if err != nil {
		fmt.Println("200:", err)
		return
	}
	ranges, err := slicer.Resolve(specs, size, slicer.Limits{})
	if errors.Is(err, slicer.ErrUnsatisfiable) {
		fmt.Println("416", slicer.UnsatisfiedContentRange(size))
		return
	}
	for _, r := range ranges {
		fmt.Println(slicer.ContentRange(r, size))
	}
	stored := func(i int64) bool { return i == 2 || i == 3 }
	for _, span := range slicer.Cover(ranges, sliceSize) {
		for _, run := range slicer.PlanRuns(span, func(i int64) bool { return !stored(i) }, 4) {
			fmt.Println("fetch", run, run.Bytes(sliceSize, size).Header())
		}
	}
	// Output:
	// bytes 1000000-3500000/10485760
	// bytes 10485660-10485759/10485760
	// fetch {0 1} bytes=0-2097151
	// fetch {9 9} bytes=9437184-10485759
}
