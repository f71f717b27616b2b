package edge_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// bodyTracker is an origin transport that knows which answers' bodies are
// still open.
type bodyTracker struct {
	mu   sync.Mutex // protects open and seen
	open map[*trackedBody]string
	seen []string // every answer, in order
}

type trackedBody struct {
	io.ReadCloser
	t    *bodyTracker
	once sync.Once
}

func (b *trackedBody) Close() error {
	b.once.Do(func() {
		b.t.mu.Lock()
		delete(b.t.open, b)
		b.t.mu.Unlock()
	})
	return b.ReadCloser.Close()
}

func (t *bodyTracker) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b := &trackedBody{ReadCloser: resp.Body, t: t}
	t.mu.Lock()
	what := resp.Status + " to " + r.Method + " " + r.URL.Path + " " + r.Header.Get("If-None-Match")
	t.open[b] = what
	t.seen = append(t.seen, what)
	t.mu.Unlock()
	resp.Body = b
	return resp, nil
}

// answered reports whether the origin gave an answer whose status line
// starts with status.
func (t *bodyTracker) answered(status string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, what := range t.seen {
		if strings.HasPrefix(what, status) {
			return true
		}
	}
	return false
}

func (t *bodyTracker) stillOpen() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, what := range t.open {
		out = append(out, what)
	}
	return out
}

// A background revalidation (stale-while-revalidate) answered with a 500
// has no client to relay that answer to: its body is closed, not left
// holding an origin connection.
func TestBackgroundRevalidationClosesItsAnswer(t *testing.T) {
	h := newHarness(t)
	tracker := &bodyTracker{open: map[*trackedBody]string{}}
	h.edge.Transport = tracker // before the first request builds the origin client
	h.origin.SetMode(ccMode("max-age=60, stale-while-revalidate=600"))
	const path = "/obj/1MiB.bin"
	h.warm(t, path)

	h.advance(61e9)
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("If-None-Match") == "" {
			return false
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, strings.Repeat("origin down\n", 100))
		return true
	})
	resp, body := h.get(t, path, "Range: bytes=0-99")
	if resp.StatusCode != http.StatusPartialContent || !strings.Contains(resp.Header.Get("Cache-Status"), "stale-while-revalidate") {
		t.Fatalf("stale GET: status %d, Cache-Status %q; want 206 served stale while revalidating", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	wantBytes(t, "stale range", body, path, 1, 0)
	origintest.WaitFor(t, "the background revalidation's 500", func() bool { return tracker.answered("500") })
	origintest.WaitFor(t, "every origin answer's body to be closed", func() bool { return len(tracker.stillOpen()) == 0 })
}
