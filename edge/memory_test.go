package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
)

// When the server's slice-sized read buffers are all taken, stored ranges
// go out in pieces, one store read each: byte for byte the same answers,
// still from the store.
func TestStoredRangesInPieces(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/5MiB-pieces.bin" // 1 MiB slices
	size := int64(5 * MiB)
	if resp, body := h.get(t, path); resp.StatusCode != 200 || int64(len(body)) != size {
		t.Fatalf("warm-up: %d, %d bytes", resp.StatusCode, len(body))
	}
	h.settle(t)
	release := h.edge.HoldReadMemory()
	defer release()
	before := h.origin.BodyBytes()
	for _, rg := range [][2]int64{
		{0, size - 1},                        // whole, as a range
		{1, 1},                               // one byte
		{edge.PieceSize - 1, edge.PieceSize}, // across a piece boundary
		{3*MiB - 100, 3*MiB + 2*edge.PieceSize + 7}, // across a slice boundary, unaligned
		{size - edge.PieceSize - 3, size - 1},       // the tail
	} {
		resp, body := h.get(t, path, fmt.Sprintf("Range: bytes=%d-%d", rg[0], rg[1]))
		if resp.StatusCode != http.StatusPartialContent || int64(len(body)) != rg[1]-rg[0]+1 {
			t.Fatalf("bytes=%d-%d: status %d, %d bytes", rg[0], rg[1], resp.StatusCode, len(body))
		}
		wantBytes(t, fmt.Sprintf("bytes=%d-%d in pieces", rg[0], rg[1]), body, path, 1, rg[0])
		if xc := resp.Header.Get("X-Cache"); xc != "HIT" {
			t.Errorf("bytes=%d-%d: X-Cache %q, want HIT", rg[0], rg[1], xc)
		}
	}
	resp, body := h.get(t, path)
	if resp.StatusCode != 200 || int64(len(body)) != size {
		t.Fatalf("whole object in pieces: %d, %d bytes", resp.StatusCode, len(body))
	}
	wantBytes(t, "whole object in pieces", body, path, 1, 0)
	if got := h.origin.BodyBytes() - before; got != 0 {
		t.Errorf("answers in pieces cost the origin %d bytes, want 0", got)
	}
}

// Many clients that stop reading a stored object hold a piece each, not a
// slice each: the server's live heap grows by the read budget and a small
// amount per connection, not by connections x slice size.
func TestStalledReadersHeapBounded(t *testing.T) {
	h := newHarness(t)
	const path = "/big/16MiB-stalled.bin" // 4 MiB slices
	const size = 16 * MiB
	conns := 200
	if testing.Short() {
		conns = 64
	}
	if resp, body := h.get(t, path); resp.StatusCode != 200 || int64(len(body)) != size {
		t.Fatalf("warm-up: %d, %d bytes", resp.StatusCode, len(body))
	}
	h.settle(t)
	heap := watchHeap(true) // live as of each sample, not of the last collection

	// Each client sends its request and reads only the header, so the
	// server fills the socket buffers and then blocks in a write.
	addr := h.srv.Listener.Addr().String()
	clients := make([]net.Conn, conns)
	readers := make([]*bufio.Reader, conns)
	for i := range clients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(64 << 10) // keep the kernel from taking the whole object
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: edge.test\r\n\r\n", path)
		clients[i], readers[i] = c, bufio.NewReaderSize(c, 64<<10)
		resp, err := http.ReadResponse(readers[i], nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("client %d: %v, %v", i, resp, err)
		}
		if got := resp.Header.Get("Content-Length"); got != strconv.FormatInt(size, 10) {
			t.Fatalf("client %d: Content-Length %q", i, got)
		}
	}
	// A window for the heap sampler while every handler waits in a write:
	// nothing observable says when they all do.
	time.Sleep(500 * time.Millisecond)
	grew, base := heap()
	t.Logf("%d stalled readers of a stored object with 4 MiB slices: live heap peaked %d MiB above the %d MiB before", conns, grew>>20, base>>20)
	// Bound: the read budget, plus a piece and net/http's buffers (8 KiB)
	// per connection and our client's own 64 KiB readers, with slack.
	limit := int64(edge.ReadBudget) + int64(conns)*(edge.PieceSize+8<<10+64<<10) + 16*MiB
	heapUnder(t, grew, limit, fmt.Sprintf("%d stalled readers (a slice each would take %d MiB)", conns, int64(conns)*4))

	// They all read on: every byte right.
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := verifyStream(io.LimitReader(readers[i], size), path, 1, 0)
			if err == nil && n != size {
				err = fmt.Errorf("%d bytes", n)
			}
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A stored object streams with the next slice read ahead; clients that
// leave mid-stream give back every read buffer, and every byte sent is
// right.
func TestReadAheadGivesBackBuffers(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/16MiB-ahead.bin" // 1 MiB slices
	const size = 16 * MiB
	if resp, body := h.get(t, path); resp.StatusCode != 200 || int64(len(body)) != size {
		t.Fatalf("warm-up: %d, %d bytes", resp.StatusCode, len(body))
	}
	h.settle(t)
	for k := range int64(8) {
		resp := h.open(t, path, fmt.Sprintf("Range: bytes=%d-", k*100*KiB))
		buf := make([]byte, (k+1)*MiB/2)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		wantBytes(t, fmt.Sprintf("client %d before leaving", k), buf, path, 1, k*100*KiB)
		resp.Body.Close() // leaves mid-stream
	}
	origintest.WaitFor(t, "read buffers given back", func() bool { return h.edge.ReadMemoryInUse() == 0 })
	resp, body := h.get(t, path, "Range: bytes=1000-")
	if resp.StatusCode != http.StatusPartialContent || int64(len(body)) != size-1000 {
		t.Fatalf("after: status %d, %d bytes", resp.StatusCode, len(body))
	}
	wantBytes(t, "after", body, path, 1, 1000)
	if h.edge.ReadMemoryInUse() != 0 {
		t.Errorf("read budget in use after a complete answer: %d", h.edge.ReadMemoryInUse())
	}
}
