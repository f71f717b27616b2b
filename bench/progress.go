package bench

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress draws a bar per phase and a line per finished workload on w;
// with a nil w it does nothing.
type progress struct{ w io.Writer }

// track shows ph's progress, from the live counters, until the returned
// function is called. The bar measures time for a timed phase, bytes for
// a phase that knows them, else requests.
func (p progress) track(ph phase, live *liveCounters, began time.Time) (stop func()) {
	if p.w == nil {
		return func() {}
	}
	total, value := ph.maxRequests, live.requests.Load
	switch {
	case ph.duration > 0:
		total = ph.duration.Milliseconds()
		value = func() int64 { return min(time.Since(began).Milliseconds(), total) }
	case ph.bytes > 0:
		total, value = ph.bytes, live.bytes.Load
	}
	bar := progressbar.NewOptions64(max(total, 1),
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetWidth(24),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetDescription(describe(ph.name, live)),
	)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				bar.Describe(describe(ph.name, live))
				_ = bar.Set64(min(value(), total))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		_ = bar.Finish()
		_ = bar.Clear()
	}
}

func describe(name string, live *liveCounters) string {
	return fmt.Sprintf("%-16s %7d req %5d err %9s", name, live.requests.Load(), live.errors.Load(), humanBytes(live.bytes.Load()))
}

// done prints one line for a finished workload.
func (p progress) done(res Result) {
	if p.w == nil {
		return
	}
	fmt.Fprintf(p.w, "%-10s %7d req  %8.1f req/s  %8.1f MB/s  p99 %-8s  errors %d  wrong bytes %d  mixed %d\n",
		res.Workload, res.Requests, res.ReqPerSec, res.MBPerSec, humanDuration(res.P99), res.Errors, res.WrongBytes, res.MixedBodies)
}
