package edge_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// Under abandoned_fills: drop, a client that disconnects mid-fill takes
// the origin fetch with it: the origin stops sending, only complete slices
// are stored, each byte-exact, and the next request fetches the rest.
func TestDropAbandonedFill(t *testing.T) {
	h := newHarness(t)
	const path = "/drop/64MiB-left.bin" // 1 MiB slices, one 64-slice run
	const size = 64 * MiB
	h.origin.SetPathMode(path, origintest.Mode{Bandwidth: 16 * MiB})

	h.openHead(t, path, 1536*KiB).Body.Close()

	h.settle(t) // the abandoned fetch ends
	if got := h.edge.Counters().FillsDropped; got != 1 {
		t.Errorf("FillsDropped = %d, want 1", got)
	}
	sent := h.origin.BodyBytes()
	if sent >= size/2 {
		t.Errorf("the origin sent %d MiB of %d after the only client left at 1.5 MiB; want the fetch stopped", sent>>20, size>>20)
	}
	stored := h.store.Stats().Slices
	if stored < 1 || stored*MiB > sent {
		t.Errorf("%d slices stored from %d bytes sent: want the complete ones only", stored, sent)
	}

	// Every byte right afterwards: the stored slices from the store, the
	// dropped ones fetched again.
	resp, body := h.get(t, path)
	if resp.StatusCode != 200 || int64(len(body)) != size {
		t.Fatalf("after the drop: status %d, %d bytes", resp.StatusCode, len(body))
	}
	wantBytes(t, "after the drop", body, path, 1, 0)
	if resp.Header.Get("X-Cache") != "PARTIAL" {
		t.Errorf("after the drop: X-Cache %q, want PARTIAL (stored slices plus fetched ones)", resp.Header.Get("X-Cache"))
	}
	if total := h.origin.BodyBytes(); total-sent != size-stored*MiB {
		t.Errorf("the second request fetched %d bytes, want the %d not stored", total-sent, size-stored*MiB)
	}
}

// Under abandoned_fills: drop, a fetch goes on while any client reads it:
// the second client gets every byte from the one fetch the first started.
func TestDropKeepsFillWithReaders(t *testing.T) {
	h := newHarness(t)
	const path = "/drop/8MiB-shared.bin"
	const size = 8 * MiB
	h.origin.SetPathMode(path, origintest.Mode{Bandwidth: 16 * MiB})

	a := h.openHead(t, path, 100*KiB)
	reading := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		b, err := h.try("GET", path)
		if err != nil {
			close(reading)
			done <- err
			return
		}
		defer b.Body.Close()
		buf := make([]byte, 64*KiB)
		if _, err := io.ReadFull(b.Body, buf); err != nil {
			close(reading)
			done <- err
			return
		}
		close(reading) // b now holds the fetch
		n, err := verifyStream(b.Body, path, 1, int64(len(buf)))
		if err == nil && int64(len(buf))+n != size {
			err = fmt.Errorf("second client got %d bytes", int64(len(buf))+n)
		}
		if err == nil {
			if at, ok := origintest.Verify(buf, path, 1, 0); !ok {
				err = fmt.Errorf("wrong byte at %d", at)
			}
		}
		done <- err
	}()
	<-reading
	a.Body.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the client still reading: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the client still reading never finished")
	}
	h.settle(t)
	if got := h.edge.Counters().FillsDropped; got != 0 {
		t.Errorf("FillsDropped = %d, want 0: a client was reading", got)
	}
	if got := h.origin.BodyBytes(); got != size {
		t.Errorf("origin sent %d bytes, want the object once (%d)", got, size)
	}
}
