//go:build invariants

package edge_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/segstore"
)

// Under -tags invariants a store read that returns other than the bytes
// asked for panics in the handler, naming the slice, instead of shifting
// the rest of the answer.
func TestInvariantStoredReadLength(t *testing.T) {
	short := false
	h := newHarnessWith(t, setup{Store: func(st *segstore.Store) edge.Store {
		return storeSwitch{Store: st, short: &short}
	}})
	const path = "/obj/2MiB.bin"
	h.warm(t, path)
	short = true // no request is in flight: warm settled every fill
	for _, rng := range []string{"", "bytes=1000-1999", "bytes=0-99,1048576-1048675"} {
		req := httptest.NewRequest(http.MethodGet, "http://edge.test"+path, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		got := func() (v any) {
			defer func() { v = recover() }()
			h.edge.ServeHTTP(httptest.NewRecorder(), req)
			return nil
		}()
		if msg := fmt.Sprint(got); !strings.Contains(msg, "invariant violated: edge: read of bytes") {
			t.Errorf("Range %q over a store that reads short: panic %v, want the stored-read invariant", rng, got)
		}
	}
}

// storeSwitch is a store whose range reads return one byte less than
// asked once *short is set: the bug the edge's stored-read invariant
// exists to catch.
type storeSwitch struct {
	*segstore.Store
	short *bool
}

func (s storeSwitch) ReadSliceRange(m *segstore.Meta, i, off, n int64, dst []byte) ([]byte, error) {
	data, err := s.Store.ReadSliceRange(m, i, off, n, dst)
	if err != nil || len(data) == 0 || !*s.short {
		return data, err
	}
	return data[:len(data)-1], nil
}
