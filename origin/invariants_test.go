//go:build invariants

package origin

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/sliceedge/sliceedge/slicer"
)

// mustPanic runs fn and fails unless it panics with a message holding want.
func mustPanic(t *testing.T, want string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic; want one saying %q", want)
		}
		if msg := fmt.Sprint(r); !strings.Contains(msg, want) {
			t.Fatalf("panic %q; want one saying %q", msg, want)
		}
	}()
	fn()
}

// halfFill returns a fill of slice 0 of a 10-byte slice, 4 bytes filled.
func halfFill(t *testing.T) *Fill {
	t.Helper()
	var fs Fills
	claims := fs.Claim("example.com/inv", 1, slicer.Run{First: 0, Last: 0}, func(int64) int64 { return 10 }, nil)
	f := claims[0].Fill
	f.buf = make([]byte, f.Len)
	f.advance(4)
	return f
}

// overReader claims one byte more than it was asked for: a broken Reader.
type overReader struct{}

func (overReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

func TestInvariantFillOffsetOnlyGrows(t *testing.T) {
	t.Run("backwards", func(t *testing.T) {
		f := halfFill(t)
		mustPanic(t, "the offset only grows", func() { f.advance(-1) })
	})
	t.Run("past the end", func(t *testing.T) {
		f := halfFill(t)
		mustPanic(t, "the offset only grows", func() { f.advance(7) })
	})
	t.Run("after failing", func(t *testing.T) {
		f := halfFill(t)
		f.fail(io.ErrUnexpectedEOF)
		mustPanic(t, "until the fill fails", func() { f.advance(1) })
	})
	t.Run("reader returns too much", func(t *testing.T) {
		f := halfFill(t)
		mustPanic(t, "a read of 6 bytes returned 7", func() { _ = f.readFrom(overReader{}, nil) })
	})
	t.Run("released incomplete", func(t *testing.T) {
		f := halfFill(t)
		var fs Fills
		mustPanic(t, "released with 4 bytes of 10", func() { fs.Release(f) })
	})
	t.Run("a good fill", func(t *testing.T) { // the checks pass what is right
		f := halfFill(t)
		if err := f.readFrom(bytes.NewReader(make([]byte, 6)), nil); err != nil {
			t.Fatal(err)
		}
		var fs Fills
		fs.Release(f)
	})
}

func TestInvariantFeedMatchesFills(t *testing.T) {
	var fs Fills
	sliceLen := func(int64) int64 { return 10 }
	claims := fs.Claim("example.com/inv", 1, slicer.Run{First: 2, Last: 3}, sliceLen, nil)
	fills := []*Fill{claims[1].Fill, claims[0].Fill} // slice 3 where 2 belongs
	mustPanic(t, "feeding slice 2 (10 bytes) to the fill of slice 3", func() {
		_ = fs.Feed(bytes.NewReader(make([]byte, 20)), 2, fills, sliceLen, false, nil, nil)
	})
}

func TestInvariantWholeFeedOnlyMovesOn(t *testing.T) {
	var fs Fills
	sliceLen := func(int64) int64 { return 10 }
	_, wf := fs.ClaimWhole("example.com/inv", 1, slicer.Run{First: 0, Last: 3}, sliceLen, nil)
	wf.reach(0, 10, nil)
	wf.reach(1, 10, nil)
	mustPanic(t, "moved back from slice 2 to 0", func() { wf.reach(0, 10, nil) })
	mustPanic(t, "gives it to the fill of slice 3 (10 bytes)", func() { wf.reach(3, 7, nil) })
}
