package edge_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// flipOnDisk finds needle in exactly one file under dir and flips one bit
// of its middle byte in place. It returns the file and offset it changed.
func flipOnDisk(t *testing.T, dir string, needle []byte) (string, int64) {
	t.Helper()
	type hit struct {
		file string
		at   int64
	}
	var hits []hit
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for off := 0; ; {
			i := bytes.Index(data[off:], needle)
			if i < 0 {
				break
			}
			hits = append(hits, hit{p, int64(off + i)})
			off += i + 1
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 {
		t.Fatalf("the slice's bytes are in %d places on disk, want exactly 1: %v", len(hits), hits)
	}
	f, err := os.OpenFile(hits[0].file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	at := hits[0].at + int64(len(needle)/2)
	b := []byte{needle[len(needle)/2] ^ 0x10}
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	return hits[0].file, at
}

// A slice whose bytes were damaged on disk while the edge was down is never
// served: the store verifies a slice's file before its first send after a
// start, the damage is caught there, the slice is fetched from the origin
// again and stored, and the next request for it is a hit.
func TestCorruptSliceRefetched(t *testing.T) {
	h := newHarness(t)
	const path = "/corrupt/4MiB.bin" // 1 MiB slices (rule "/")
	const slice = 2
	resp, body := h.get(t, path)
	if resp.StatusCode != 200 || len(body) != 4<<20 {
		t.Fatalf("warm: status %d, %d bytes", resp.StatusCode, len(body))
	}
	wantBytes(t, "warm", body, path, 1, 0)
	// Fills land in the store after the answer: wait for all four slices.
	origintest.WaitFor(t, "the slices to be stored", func() bool { return h.store.Stats().Slices == 4 })

	// Close flushes: every slice is now in the files under h.dir.
	h.stop(t)
	// 32 bytes inside slice 2, in its second 64 KiB chunk.
	at := int64(slice<<20 + 100_003)
	file, off := flipOnDisk(t, h.dir, origintest.Expected(path, 1, at, at+32))
	t.Logf("flipped a bit at offset %d of %s", off, filepath.Base(file))

	// Reopen, keeping the store's log too.
	var storeLog origintest.LogBuffer
	h.start(t, setup{StoreLog: &storeLog})
	edgeLog := h.logs

	h.origin.ResetCounters()
	rng := fmt.Sprintf("bytes=%d-%d", slice<<20, 3<<20-1)
	t0 := time.Now()
	resp, body = h.get(t, path, "Range: "+rng)
	if resp.StatusCode != 206 || len(body) != 1<<20 {
		t.Fatalf("after the flip: status %d, %d bytes (%q) after %v\nstore log:\n%s\nedge log:\n%s\norigin saw: %+v",
			resp.StatusCode, len(body), body[:min(len(body), 200)], time.Since(t0), storeLog.String(), edgeLog.String(), h.origin.LastRequests())
	}
	wantBytes(t, "after the flip", body, path, 1, slice<<20)
	refetched := false
	for _, r := range h.origin.LastRequests() {
		if r.Path == path && strings.HasPrefix(r.Range, fmt.Sprintf("bytes=%d-", slice<<20)) {
			refetched = true
		}
	}
	if !refetched {
		t.Errorf("the origin was not asked for slice %d again; it saw %+v", slice, h.origin.LastRequests())
	}
	if !strings.Contains(storeLog.String()+edgeLog.String(), "corrupt") &&
		!strings.Contains(storeLog.String()+edgeLog.String(), "checksum") {
		t.Errorf("the corrupt read left no trace in the logs\nstore log:\n%s\nedge log:\n%s", storeLog.String(), edgeLog.String())
	}
	t.Logf("store log:\n%s\nedge log:\n%s", storeLog.String(), edgeLog.String())

	// The refetched slice was stored (once its fill has landed, after the
	// answer): the same range again is a hit, and the origin is not asked.
	h.settle(t)
	h.origin.ResetCounters()
	resp, body = h.get(t, path, "Range: "+rng)
	if resp.StatusCode != 206 || resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("second read: status %d, X-Cache %q, want 206 HIT", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	wantBytes(t, "second read", body, path, 1, slice<<20)
	if n := h.origin.Requests(); n != 0 {
		t.Errorf("second read: the origin saw %d requests, want 0: %+v", n, h.origin.LastRequests())
	}

	// And across a restart too: the repaired slice is on disk.
	h.restart(t, setup{})
	h.origin.ResetCounters()
	resp, body = h.get(t, path)
	if resp.StatusCode != 200 || len(body) != 4<<20 {
		t.Fatalf("after restart: status %d, %d bytes", resp.StatusCode, len(body))
	}
	wantBytes(t, "after restart", body, path, 1, 0)
	if n := h.origin.Requests(); n != 0 {
		t.Errorf("after restart: the origin saw %d requests, want 0: %+v", n, h.origin.LastRequests())
	}
}
