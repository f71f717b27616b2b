package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// An origin that ignores Range and claims an enormous length costs the
// edge memory for the slices in flight, not for the size it claims: its
// whole-body answer is cut into slices as it passes, a request for a
// slice further on waits for the same answer instead of starting
// another, and when the body stops short the requests it cannot serve get
// a 5xx or a cut, never a wrong byte.
func TestWholeBodyClaimsBounded(t *testing.T) {
	for _, claimed := range []int64{1 << 40, 1 << 42, 1 << 62} {
		t.Run(strconv.FormatInt(claimed, 10), func(t *testing.T) {
			// A max_object_size that lets the claims be sliced.
			h := newHarnessWith(t, setup{Config: edited("    slice_size: 1MiB\n", "    slice_size: 1MiB\n    max_object_size: 8388607TiB\n")})
			const path = "/obj/huge-norange.bin" // 1 MiB slices
			const sent = 6 * MiB                 // what the origin really sends
			gate := make(chan struct{})          // holds the body at 3 MiB
			var answers atomic.Int64
			h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != path {
					return false
				}
				answers.Add(1)
				hd := w.Header()
				hd.Set("ETag", origintest.ETag(path, 1))
				hd.Set("Cache-Control", "max-age=3600")
				hd.Set("Accept-Ranges", "none")
				hd.Set("Content-Length", strconv.FormatInt(claimed, 10))
				w.WriteHeader(http.StatusOK) // whatever the Range
				w.Write(origintest.Expected(path, 1, 0, 3*MiB))
				w.(http.Flusher).Flush()
				select {
				case <-gate:
				case <-r.Context().Done():
					return true
				}
				w.Write(origintest.Expected(path, 1, 3*MiB, sent))
				return true // short of its Content-Length: the server cuts the connection
			})
			heap := watchHeap(true)

			// A learns the object; its slice comes before the body stalls.
			a := h.fetch(t, path, "Range: bytes=1048576-2097151")
			if a.status != http.StatusPartialContent || a.err != nil || int64(len(a.body)) != MiB {
				t.Fatalf("A: status %d, %d bytes, %v; want slice 1 whole", a.status, len(a.body), a.err)
			}
			wantBytes(t, "A", a.body, path, 1, MiB)
			if cr := a.header.Get("Content-Range"); cr != fmt.Sprintf("bytes 1048576-2097151/%d", claimed) {
				t.Errorf("A: Content-Range %q", cr)
			}

			// B needs slice 4, which the stalled body has not reached: it
			// waits on that body rather than asking for another.
			collapsed := h.edge.Counters().Collapsed
			bDone := make(chan fetched, 1)
			go func() {
				req, _ := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
				req.Host = "edge.test"
				req.Header.Set("Range", "bytes=4194304-5242879")
				resp, err := h.srv.Client().Do(req)
				if err != nil {
					bDone <- fetched{err: err}
					return
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				bDone <- fetched{status: resp.StatusCode, body: body, err: err}
			}()
			origintest.WaitFor(t, "B to wait on the body in flight", func() bool { return h.edge.Counters().Collapsed > collapsed })
			close(gate)
			b := <-bDone
			if b.status != http.StatusPartialContent || b.err != nil || int64(len(b.body)) != MiB {
				t.Fatalf("B: status %d, %d bytes, %v; want slice 4 whole", b.status, len(b.body), b.err)
			}
			wantBytes(t, "B", b.body, path, 1, 4*MiB)
			h.settle(t)
			if n := answers.Load(); n != 1 {
				t.Errorf("%d whole-body answers for A and B, want 1", n)
			}

			// C needs bytes the origin never sends: a 5xx or a cut, with
			// nothing wrong in what it got.
			c := h.fetch(t, path, "Range: bytes=7340032-7340131")
			switch {
			case c.status >= 500:
			case c.status == http.StatusPartialContent && c.err != nil:
				wantBytes(t, "C", c.body, path, 1, 7*MiB)
			default:
				t.Errorf("C, past what the origin sends: status %d, %d bytes, %v", c.status, len(c.body), c.err)
			}
			h.settle(t)
			grew, base := heap()
			t.Logf("origin claims %d bytes, sends %d MiB: live heap peaked %d MiB above %d MiB", claimed, sent/MiB, grew>>20, base>>20)
			heapUnder(t, grew, 48*MiB, "a whole-body answer claiming "+strconv.FormatInt(claimed, 10)+" bytes")
			if st := h.store.Stats(); st.Slices != sent/MiB {
				t.Errorf("store holds %d slices, want the %d the origin sent", st.Slices, sent/MiB)
			}
		})
	}
}

// A fill of a version learnt with ranges that the origin answers with the
// whole body (it stopped honouring Range) takes the slices asked for out
// of it, skipping the bytes before them.
func TestRangeFillAnsweredWhole(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/12MiB-whole-fill.bin" // 1 MiB slices
	prime(t, h, path)                        // ranged: slice 0 and the meta
	h.origin.SetPathMode(path, origintest.Mode{NoRange: true})
	got := h.fetch(t, path, "Range: bytes=6291456-8388607") // slices 6 and 7
	if got.status != http.StatusPartialContent || got.err != nil || int64(len(got.body)) != 2*MiB {
		t.Fatalf("status %d, %d bytes, %v; want slices 6 and 7", got.status, len(got.body), got.err)
	}
	wantBytes(t, "slices 6 and 7 from a whole body", got.body, path, 1, 6*MiB)
	h.settle(t)
	if st := h.store.Stats(); st.Slices != 3 {
		t.Errorf("store holds %d slices, want 3 (0, 6 and 7)", st.Slices)
	}
}
