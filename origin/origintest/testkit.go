package origintest

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogBuffer collects log output written from several goroutines: an edge's
// zerolog logger, a store's Logger, a child process's stderr. Its zero value
// is empty and ready to use.
type LogBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

// Write appends p; a zerolog logger writes one whole JSON line per call.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Lines parses what was written so far as JSON lines, one record a line,
// skipping blank lines. A line that is not a JSON object fails tb: the
// loggers under test write nothing else.
func (l *LogBuffer) Lines(tb testing.TB) []map[string]any {
	tb.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			tb.Fatalf("log line %q is not JSON: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// waitLimit bounds WaitFor: generous, since a loaded machine is slow, and
// a wait that times out is a failure, not a measurement.
const waitLimit = 20 * time.Second

// WaitFor waits until cond holds, polling it every few milliseconds,
// and fails tb, naming what it waited for, if it does not within 20 s.
// cond runs on the calling goroutine, which must be the test's.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 5*time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(pause)
	}
}
