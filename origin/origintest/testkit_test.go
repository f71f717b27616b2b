package origintest

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestLogBufferLines(t *testing.T) {
	var l LogBuffer
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(&l, "{\"message\":\"request\",\"n\":%d}\n", i)
		}()
	}
	wg.Wait()
	l.Write([]byte("\n"))
	recs := l.Lines(t)
	if len(recs) != 50 {
		t.Fatalf("%d records, want 50:\n%s", len(recs), l.String())
	}
	seen := map[float64]bool{}
	for _, r := range recs {
		if r["message"] != "request" {
			t.Errorf("record %v", r)
		}
		seen[r["n"].(float64)] = true
	}
	if len(seen) != 50 {
		t.Errorf("%d distinct records, want 50", len(seen))
	}
}

// fatalRecorder is a testing.TB that records Fatalf instead of stopping.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

// failed runs fn with a recorder and returns what it failed with, if it did.
func failed(t *testing.T, fn func(tb testing.TB)) (msg string) {
	r := &fatalRecorder{TB: t}
	defer func() {
		if p := recover(); p != nil {
			if p != r {
				panic(p)
			}
			msg = r.msg
		}
	}()
	fn(r)
	return ""
}

func TestLogBufferLinesRejectsText(t *testing.T) {
	var l LogBuffer
	l.Write([]byte("{\"message\":\"ok\"}\npanic: boom\n"))
	if msg := failed(t, func(tb testing.TB) { l.Lines(tb) }); msg == "" {
		t.Error("a line that is not JSON passed")
	}
}

func TestWaitFor(t *testing.T) {
	var mu sync.Mutex
	done := false
	time.AfterFunc(20*time.Millisecond, func() { mu.Lock(); done = true; mu.Unlock() })
	start := time.Now()
	WaitFor(t, "the timer", func() bool { mu.Lock(); defer mu.Unlock(); return done })
	if d := time.Since(start); d < 20*time.Millisecond || d > 5*time.Second {
		t.Errorf("WaitFor returned after %v for a 20ms event", d)
	}
}
