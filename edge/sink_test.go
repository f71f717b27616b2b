package edge_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// pausingWriter passes an origin's answer on, but stops after limit body
// bytes until release is closed.
type pausingWriter struct {
	http.ResponseWriter
	limit   int
	written int
	paused  chan struct{} // closed when the limit is reached
	release chan struct{}
	once    sync.Once
}

func (p *pausingWriter) Write(b []byte) (int, error) {
	if p.written < p.limit && p.written+len(b) > p.limit {
		k := p.limit - p.written
		n, err := p.ResponseWriter.Write(b[:k])
		p.written += n
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	if p.written >= p.limit {
		p.once.Do(func() {
			http.NewResponseController(p.ResponseWriter).Flush()
			close(p.paused)
			<-p.release
		})
	}
	n, err := p.ResponseWriter.Write(b)
	p.written += n
	return n, err
}

// A fill writes its bytes to the slice's file as they arrive, not when the
// slice is complete: while the origin pauses half way through a slice, the
// file being written holds the half that came, and the slice is not
// visible yet; once the rest comes, the file is in place, nothing is left
// in tmp, and the next request is a hit with every byte right.
func TestFillWritesAsBytesArrive(t *testing.T) {
	h := newHarness(t)
	const path = "/obj/1MiB-arrive.bin" // one 1 MiB slice
	const half = 512 * KiB
	pw := &pausingWriter{limit: int(half), paused: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(pw.release) }) }
	t.Cleanup(release) // before the harness stops: a failed test must not leave the origin paused
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != path || r.Method != http.MethodGet {
			return false
		}
		pw.ResponseWriter = w
		h.origin.Handler().ServeHTTP(pw, r)
		return true
	})
	done := make(chan []byte)
	go func() {
		resp := h.open(t, path)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- body
	}()
	<-pw.paused
	tmp := filepath.Join(h.dir, "tmp")
	origintest.WaitFor(t, "half the slice in its file", func() bool { return tmpBytes(t, tmp) == half })
	if n := h.store.Stats().Slices; n != 0 {
		t.Errorf("%d slices visible while the only one is half written", n)
	}
	release()
	body := <-done
	if int64(len(body)) != 1*MiB {
		t.Fatalf("answer of %d bytes, want 1 MiB", len(body))
	}
	wantBytes(t, "while filling", body, path, 1, 0)
	h.settle(t)
	if n := tmpBytes(t, tmp); n != 0 {
		t.Errorf("%d bytes left in tmp after the fill", n)
	}
	resp, body := h.get(t, path)
	if resp.Header.Get("X-Cache") != "HIT" || int64(len(body)) != 1*MiB {
		t.Fatalf("second request: X-Cache %q, %d bytes", resp.Header.Get("X-Cache"), len(body))
	}
	wantBytes(t, "stored", body, path, 1, 0)
}

// tmpBytes is the bytes of the files in dir (the store's tmp).
func tmpBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() && !strings.HasPrefix(e.Name(), "purged-") {
			n += info.Size()
		}
	}
	return n
}
