package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// Stored ranges go out of the slice files from any offset, across chunk
// and slice boundaries, after the store reopened (so every file is
// verified before its first send): byte for byte right, all hits.
func TestStoredRangesFromFiles(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/5MiB-files.bin" // 1 MiB slices
	const chunk = 64 * KiB             // the store's checksum chunk
	size := int64(5 * MiB)
	if resp, body := h.get(t, path); resp.StatusCode != 200 || int64(len(body)) != size {
		t.Fatalf("warm-up: %d, %d bytes", resp.StatusCode, len(body))
	}
	h.settle(t)
	h.restart(t, setup{})
	before := h.origin.BodyBytes()
	for _, rg := range [][2]int64{
		{0, size - 1},                      // whole, as a range
		{1, 1},                             // one byte
		{chunk - 1, chunk},                 // across a chunk boundary
		{3*MiB - 100, 3*MiB + 2*chunk + 7}, // across a slice boundary, unaligned
		{size - chunk - 3, size - 1},       // the tail
	} {
		resp, body := h.get(t, path, fmt.Sprintf("Range: bytes=%d-%d", rg[0], rg[1]))
		if resp.StatusCode != http.StatusPartialContent || int64(len(body)) != rg[1]-rg[0]+1 {
			t.Fatalf("bytes=%d-%d: status %d, %d bytes", rg[0], rg[1], resp.StatusCode, len(body))
		}
		wantBytes(t, fmt.Sprintf("bytes=%d-%d", rg[0], rg[1]), body, path, 1, rg[0])
		if xc := resp.Header.Get("X-Cache"); xc != "HIT" {
			t.Errorf("bytes=%d-%d: X-Cache %q, want HIT", rg[0], rg[1], xc)
		}
	}
	resp, body := h.get(t, path)
	if resp.StatusCode != 200 || int64(len(body)) != size {
		t.Fatalf("whole object: %d, %d bytes", resp.StatusCode, len(body))
	}
	wantBytes(t, "whole object", body, path, 1, 0)
	if got := h.origin.BodyBytes() - before; got != 0 {
		t.Errorf("answers from the files cost the origin %d bytes, want 0", got)
	}
}

// Many clients that stop reading a stored object cost no slice-sized
// buffer each: stored slices go out of their files (sendfile), so the
// server's live heap grows by a small amount per connection, not by
// connections x slice size.
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
	// Bound: per connection net/http's buffers (8 KiB), the 32 KiB copy
	// buffer its ReadFrom holds, and our client's own 64 KiB readers, with
	// slack.
	limit := int64(conns)*(32<<10+8<<10+64<<10) + 16*MiB
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

// Clients that leave in the middle of a stored object's stream leave no
// slice file open, and every byte sent is right.
func TestLeavingClientsCloseFiles(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/16MiB-leave.bin" // 1 MiB slices
	const size = 16 * MiB
	if resp, body := h.get(t, path); resp.StatusCode != 200 || int64(len(body)) != size {
		t.Fatalf("warm-up: %d, %d bytes", resp.StatusCode, len(body))
	}
	h.settle(t)
	before := openSliceFiles(t)
	for k := range int64(8) {
		resp := h.open(t, path, fmt.Sprintf("Range: bytes=%d-", k*100*KiB))
		buf := make([]byte, (k+1)*MiB/2)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		wantBytes(t, fmt.Sprintf("client %d before leaving", k), buf, path, 1, k*100*KiB)
		resp.Body.Close() // leaves mid-stream
	}
	origintest.WaitFor(t, "slice files closed", func() bool { return openSliceFiles(t) == before })
	resp, body := h.get(t, path, "Range: bytes=1000-")
	if resp.StatusCode != http.StatusPartialContent || int64(len(body)) != size-1000 {
		t.Fatalf("after: status %d, %d bytes", resp.StatusCode, len(body))
	}
	wantBytes(t, "after", body, path, 1, 1000)
	if n := openSliceFiles(t); n != before {
		t.Errorf("%d slice files open after a complete answer, %d before", n, before)
	}
}

// openSliceFiles counts this process's open files under a store's slices
// directory.
func openSliceFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list open files: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.Contains(target, "/slices/") {
			n++
		}
	}
	return n
}
