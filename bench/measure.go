package bench

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/sliceedge/sliceedge/slicer"
)

// phase is one stretch of load: workers sending requests until the
// duration passes, maxRequests have been sent, or next says stop.
type phase struct {
	name        string        // shown on the progress bar
	conns       int           // concurrent workers
	duration    time.Duration // no request starts after it; 0: no time limit
	maxRequests int64         // no more requests than this
	// hard cancels the requests still in flight this long after the start,
	// so that a phase always ends by itself.
	hard time.Duration
	// bytes, when > 0, is the object bytes the phase will fetch, for the
	// progress bar of a phase without a duration.
	bytes int64
	// next returns request i for worker w; errStop ends the worker, any
	// other error the phase (it is returned by drive).
	next func(w int, i int64) (request, error)
}

// tally is what a phase measured.
type tally struct {
	requests, clean, cut, status5xx, failed int64
	wrong, mixed                            int64
	object                                  int64     // object bytes received
	latencies, ttfbs                        durations // of clean answers
	elapsed                                 time.Duration
	firstErr                                error
}

func (t *tally) add(a answer) {
	t.requests++
	t.object += a.object
	t.wrong += a.wrong
	if a.mixed {
		t.mixed++
	}
	switch a.outcome {
	case clean:
		t.clean++
		t.latencies.record(a.latency)
		t.ttfbs.record(a.ttfb)
	case cut:
		t.cut++
	case status5xx:
		t.status5xx++
	default:
		t.failed++
	}
	if a.err != nil && t.firstErr == nil {
		t.firstErr = a.err
	}
}

// merge adds u's counts to t; elapsed times add up.
func (t *tally) merge(u *tally) {
	t.requests += u.requests
	t.clean += u.clean
	t.cut += u.cut
	t.status5xx += u.status5xx
	t.failed += u.failed
	t.wrong += u.wrong
	t.mixed += u.mixed
	t.object += u.object
	t.latencies.merge(&u.latencies)
	t.ttfbs.merge(&u.ttfbs)
	t.elapsed += u.elapsed
	if t.firstErr == nil {
		t.firstErr = u.firstErr
	}
}

// errors is the count of answers that were not clean.
func (t *tally) errors() int64 { return t.cut + t.status5xx + t.failed }

// result turns t into a Result. Latency figures are over clean answers.
// honest says that cut and 5xx answers are expected (flap), so that only
// failed ones count as errors.
func (t *tally) result(workload string, honest bool) Result {
	res := Result{
		Workload:       workload,
		Requests:       t.requests,
		Errors:         t.errors(),
		WrongBytes:     t.wrong,
		MixedBodies:    t.mixed,
		DeliveredBytes: t.object,
		Seconds:        t.elapsed.Seconds(),
		Extra:          map[string]float64{},
	}
	if honest {
		res.Errors = t.failed
	}
	if s := t.elapsed.Seconds(); s > 0 {
		res.ReqPerSec = float64(t.requests) / s
		res.MBPerSec = float64(t.object) / 1e6 / s
	}
	res.P50, res.P99 = t.latencies.percentile(50), t.latencies.percentile(99)
	res.TTFBP50, res.TTFBP99 = t.ttfbs.percentile(50), t.ttfbs.percentile(99)
	res.Max = t.latencies.max()
	if t.firstErr != nil {
		res.FirstError = t.firstErr.Error()
	}
	return res
}

// durations is a distribution of durations in an HDR histogram
// (HdrHistogram/hdrhistogram-go): microseconds from 1µs to an hour, with
// 3 significant digits, so that its memory is fixed however many
// requests a run makes. The zero value is empty.
type durations struct{ h *hdrhistogram.Histogram }

// maxRecorded is the longest duration recorded as itself; longer ones
// count as it.
const maxRecorded = time.Hour

func (d *durations) init() {
	if d.h == nil {
		d.h = hdrhistogram.New(1, int64(maxRecorded/time.Microsecond), 3)
	}
}

func (d *durations) record(v time.Duration) {
	d.init()
	_ = d.h.RecordValue(min(max(int64(v/time.Microsecond), 1), int64(maxRecorded/time.Microsecond))) // in range: no error
}

func (d *durations) merge(o *durations) {
	if o.h == nil {
		return
	}
	d.init()
	d.h.Merge(o.h)
}

// percentile is the nearest-rank p-th percentile (to 3 significant
// digits); 0 when empty.
func (d *durations) percentile(p float64) time.Duration {
	if d.h == nil || d.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(d.h.ValueAtQuantile(p)) * time.Microsecond
}

// max is the longest duration recorded (to 3 significant digits); 0 when
// empty.
func (d *durations) max() time.Duration {
	if d.h == nil || d.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(d.h.Max()) * time.Microsecond
}

// drive runs ph and returns what it measured. Every worker waits for the
// others to start, so that requests meant to be simultaneous are.
func (r *runner) drive(ctx context.Context, ph phase) (*tally, error) {
	hctx, cancel := context.WithTimeout(ctx, ph.hard)
	defer cancel()
	var (
		issued atomic.Int64
		live   liveCounters
		start  = make(chan struct{})
		wg     sync.WaitGroup
		errMu  sync.Mutex // protects nextErr
		// nextErr is the first error of a next function other than errStop.
		nextErr error
	)
	conns := max(ph.conns, 1)
	tallies := make([]tally, conns)
	began := time.Now()
	deadline := began.Add(ph.duration)
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := newFetcher(r.env, r.versions)
			<-start
			for hctx.Err() == nil && (ph.duration <= 0 || time.Now().Before(deadline)) {
				i := issued.Add(1) - 1
				if i >= ph.maxRequests {
					return
				}
				q, err := ph.next(w, i)
				if err != nil {
					if !errors.Is(err, errStop) {
						errMu.Lock()
						nextErr = cmp.Or(nextErr, err)
						errMu.Unlock()
						cancel()
					}
					return
				}
				a := f.fetch(hctx, q)
				tallies[w].add(a)
				live.add(a)
			}
		}()
	}
	stopBar := r.progress.track(ph, &live, began)
	close(start)
	wg.Wait()
	stopBar()

	t := &tally{}
	for i := range tallies {
		t.merge(&tallies[i])
	}
	t.elapsed = time.Since(began)
	if nextErr != nil {
		return t, nextErr
	}
	return t, ctx.Err()
}

// liveCounters are what a running phase has done so far, for the bar.
type liveCounters struct {
	requests, errors, bytes atomic.Int64
}

func (l *liveCounters) add(a answer) {
	l.requests.Add(1)
	l.bytes.Add(a.object)
	if a.outcome != clean {
		l.errors.Add(1)
	}
}

// intervals is a set of byte ranges, kept as a sorted list of disjoint,
// non-adjacent ranges.
type intervals []slicer.Range

// add puts r into the set, merging what it overlaps or touches.
func (s *intervals) add(r slicer.Range) {
	if r.Len() <= 0 {
		return
	}
	v := *s
	// First range that ends at or after r.Start: it may touch r.
	i, _ := slices.BinarySearchFunc(v, r.Start, func(x slicer.Range, start int64) int { return cmp.Compare(x.End, start) })
	j := i
	for j < len(v) && v[j].Start <= r.End {
		r.Start, r.End = min(r.Start, v[j].Start), max(r.End, v[j].End)
		j++
	}
	*s = slices.Replace(v, i, j, r)
}

// bytes is the number of bytes in the set.
func (s intervals) bytes() int64 {
	var n int64
	for _, r := range s {
		n += r.Len()
	}
	return n
}
