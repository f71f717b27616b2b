package edge_test

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/segstore"
)

// A slice file that holds fewer bytes than the store verified (changed
// under its feet) never shifts the answer: the edge sends what the file
// has, then fetches the rest of the slice from the origin, and every byte
// is right. Before the send counted what sendfile sent, a short file would
// have ended the slice early and shifted every later byte.
func TestShortSliceFileFallsBackToOrigin(t *testing.T) {
	var short atomic.Bool
	h := newHarnessWith(t, setup{Store: func(st *segstore.Store) edge.Store {
		return shortFiles{Store: st, short: &short, dir: t.TempDir()}
	}})
	const path = "/obj/3MiB-short.bin" // 1 MiB slices
	h.warm(t, path)
	short.Store(true)
	for _, tc := range []struct {
		rng         string
		start, size int64
		fetches     bool // the range wants a slice's last byte, which no file has
	}{
		{"", 0, 3 * MiB, true},
		{"bytes=1000-1999", 1000, 1000, false},
		{"bytes=1048000-1048575", 1048000, 576, true},
		{"bytes=1048000-2097151", 1048000, 2097152 - 1048000, true},
	} {
		var headers []string
		if tc.rng != "" {
			headers = append(headers, "Range: "+tc.rng)
		}
		before := h.origin.BodyBytes()
		resp, body := h.get(t, path, headers...)
		if int64(len(body)) != tc.size {
			t.Fatalf("Range %q: status %d, %d bytes, want %d", tc.rng, resp.StatusCode, len(body), tc.size)
		}
		wantBytes(t, fmt.Sprintf("Range %q over short files", tc.rng), body, path, 1, tc.start)
		if fetched := h.origin.BodyBytes() > before; fetched != tc.fetches {
			t.Errorf("Range %q: fetched from the origin: %v, want %v", tc.rng, fetched, tc.fetches)
		}
		h.settle(t)
	}
}

// shortFiles is a store whose OpenSlice, once *short is set, returns a
// copy of the slice's file without its last byte.
type shortFiles struct {
	*segstore.Store
	short *atomic.Bool
	dir   string
}

func (s shortFiles) OpenSlice(m *segstore.Meta, i int64) (*os.File, error) {
	f, err := s.Store.OpenSlice(m, i)
	if err != nil || !s.short.Load() {
		return f, err
	}
	defer f.Close()
	c, err := os.CreateTemp(s.dir, "short-*")
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyN(c, f, m.SliceLen(i)-1); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.Seek(0, io.SeekStart); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
