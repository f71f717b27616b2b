package bench

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/slicer"
)

// Workload parameters that are not flags.
const (
	rangeMin, rangeMax = 64 << 10, 1 << 20 // range lengths of hot and seek

	seekLatency   = 20 * time.Millisecond // seek's origin latency...
	seekBandwidth = 50 << 20              // ...and bandwidth, bytes/s per response
	seekSlot      = 2 << 20               // seek gives each request its own 2 MiB: always cold

	mixedZipfS                      = 1.1              // mixed's Zipf exponent (> 1)
	mixedMinRange, mixedMaxRangeLen = 1 << 10, 4 << 20 // its range lengths, log-uniform
	mixedFull, mixedMulti           = 0.05, 0.10       // its shares of full GETs and multi-range requests

	collapseMaxRounds = 20
	collapseRange     = 1 << 20 // collapse's range: one aligned MiB in the middle of the object

	sequentialWarmChunk = 8 << 20 // sequential warms with parallel ranges of this size
	warmPasses          = 3       // most passes of a warm-up

	flapEvery   = 3 // flap's origin changes the object every this many requests
	flapObjects = 4 // on this many objects
	flapMaxLen  = 2 << 20
	flapFull    = 0.1 // share of full GETs in flap
	// flapCacheControl makes the edge revalidate on every request, so it
	// keeps finding new versions and filling them while the origin keeps
	// changing them (with a long max-age it would serve one version).
	flapCacheControl = "max-age=0"
)

// runner runs the workloads of one Run.
type runner struct {
	cfg      Config
	env      *env
	prefix   string // "/bench/<run id>": every run's objects are new, so cold
	progress progress
	versions *versions
}

// run runs one workload. For the in-process edge it adds the store
// writes the edge saw refused meanwhile (it then serves without storing,
// which shows as origin traffic where none was expected).
func (r *runner) run(ctx context.Context, name string) (Result, error) {
	if r.env.edge == nil {
		return r.workload(ctx, name)
	}
	before := r.env.edge.Counters().StoreErrors
	res, err := r.workload(ctx, name)
	if n := r.env.edge.Counters().StoreErrors - before; err == nil && n > 0 {
		res.Extra["edge_store_errors"] = float64(n)
	}
	return res, err
}

func (r *runner) workload(ctx context.Context, name string) (Result, error) {
	switch name {
	case "hot":
		return r.hot(ctx)
	case "seek":
		return r.seek(ctx)
	case "mixed":
		return r.mixed(ctx)
	case "collapse":
		return r.collapse(ctx)
	case "sequential":
		return r.sequential(ctx)
	case "flap":
		return r.flap(ctx)
	case "stream":
		return r.stream(ctx)
	case "coldfill":
		return r.coldfill(ctx)
	case "pop":
		return r.pop(ctx)
	}
	return Result{}, fmt.Errorf("unknown workload %q", name)
}

// path is the path of object id of a workload, named with its size so the
// origin serves it: /bench/<run>/<workload>/<size>-<id>.bin.
func (r *runner) path(workload string, size int64, id string) string {
	return fmt.Sprintf("%s/%s/%s-%s.bin", r.prefix, workload, sizeName(size), id)
}

// paths are the paths of n objects of size of a workload, numbered from 0.
func (r *runner) paths(workload string, n int, size int64) []string {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = r.path(workload, size, fmt.Sprint(i))
	}
	return paths
}

// sizeName writes size the way origintest.SyntheticSize reads it.
func sizeName(size int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if size >= 1<<u.shift && size%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", size>>u.shift, u.suffix)
		}
	}
	return fmt.Sprint(size)
}

// rng is a generator for one stream of a workload, fixed by the seed.
func (r *runner) rng(workload string, stream int) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(workload))
	return rand.New(rand.NewPCG(r.cfg.Seed, h.Sum64()+uint64(stream)*0x9E3779B97F4A7C15))
}

// measured is a timed phase of the configured length and count, with a
// hard stop well after it.
func (r *runner) measured(name string, conns int, next func(w int, i int64) (request, error)) phase {
	return phase{
		name:        name,
		conns:       conns,
		duration:    r.cfg.Duration,
		maxRequests: int64(r.cfg.MaxRequests),
		hard:        r.cfg.Duration + max(r.cfg.Duration, time.Minute),
		next:        next,
	}
}

// warmBound is the hard limit of a phase that moves n bytes: enough at
// 10 MB/s, plus a minute.
func warmBound(n int64) time.Duration {
	return time.Minute + time.Duration(float64(n)/10e6*float64(time.Second))
}

// originDelta runs ph between two settled readings of the origin's
// counters and puts the difference into res.
func (r *runner) originDelta(ctx context.Context, ph phase) (*tally, origintest.Stats, error) {
	before, err := r.env.origin.settledStats(ctx)
	if err != nil {
		return nil, origintest.Stats{}, err
	}
	t, err := r.drive(ctx, ph)
	if err != nil {
		return t, origintest.Stats{}, err
	}
	after, err := r.env.origin.settledStats(ctx)
	if err != nil {
		return t, origintest.Stats{}, err
	}
	return t, origintest.Stats{Requests: after.Requests - before.Requests, BodyBytes: after.BodyBytes - before.BodyBytes}, nil
}

// warmup is what warming a workload's objects took, over all passes.
type warmup struct {
	t      *tally
	passes int
	origin origintest.Stats
}

// warm sends reqs, Connections at a time, in passes until one costs the
// origin nothing (its bytes are stored), at most warmPasses: a store may
// refuse writes under a burst of fills (segstore does while Pebble stalls),
// and then the first pass leaves holes.
func (r *runner) warm(ctx context.Context, name string, reqs []request) (*warmup, error) {
	var total int64
	for _, q := range reqs {
		for _, rg := range q.spans() {
			total += rg.Len()
		}
	}
	wu := &warmup{t: &tally{}}
	for wu.passes < warmPasses {
		wu.passes++
		label := name
		if wu.passes > 1 {
			label = fmt.Sprintf("%s (pass %d)", name, wu.passes)
		}
		t, origin, err := r.originDelta(ctx, phase{
			name:        label,
			conns:       min(r.cfg.Connections, len(reqs)),
			maxRequests: int64(len(reqs)),
			hard:        warmBound(total),
			bytes:       total,
			next:        func(_ int, i int64) (request, error) { return reqs[i], nil },
		})
		if err != nil {
			return nil, err
		}
		wu.t.merge(t)
		wu.origin.Requests += origin.Requests
		wu.origin.BodyBytes += origin.BodyBytes
		if origin.BodyBytes == 0 && origin.Requests == 0 {
			break
		}
	}
	return wu, nil
}

// addWarm folds a warm-up into res: its wrong bytes and mixed bodies
// count like any others; its errors, time and origin traffic are figures
// of their own.
func addWarm(res *Result, wu *warmup) {
	res.WrongBytes += wu.t.wrong
	res.MixedBodies += wu.t.mixed
	res.Extra["warm_seconds"] = wu.t.elapsed.Seconds()
	res.Extra["warm_errors"] = float64(wu.t.errors())
	res.Extra["warm_passes"] = float64(wu.passes)
	res.Extra["warm_origin_bytes"] = float64(wu.origin.BodyBytes)
	if res.FirstError == "" && wu.t.firstErr != nil {
		res.FirstError = "warm: " + wu.t.firstErr.Error()
	}
}

// randLen is a length in [lo, hi], uniform.
func randLen(rng *rand.Rand, lo, hi int64) int64 { return lo + rng.Int64N(hi-lo+1) }

// logLen is a length in [lo, hi], log-uniform: as many short ranges as
// long ones per octave.
func logLen(rng *rand.Rand, lo, hi int64) int64 {
	l := math.Exp(math.Log(float64(lo)) + rng.Float64()*(math.Log(float64(hi))-math.Log(float64(lo))))
	return min(max(int64(l), lo), hi)
}

// randRange is a range of length n (at most size) at a uniform offset.
func randRange(rng *rand.Rand, n, size int64) slicer.Range {
	n = min(n, size)
	off := rng.Int64N(size - n + 1)
	return slicer.Range{Start: off, End: off + n}
}

// hot warms Objects objects, then sends random ranges of 64 KiB-1 MiB at
// random offsets of them from Connections connections: a cache serving
// from its store, which should ask the origin for nothing.
func (r *runner) hot(ctx context.Context) (Result, error) {
	n, size := r.cfg.Objects, r.cfg.ObjectSize
	paths := r.paths("hot", n, size)
	reqs := make([]request, n)
	for i, p := range paths {
		reqs[i] = request{path: p, size: size}
	}
	warm, err := r.warm(ctx, "hot: warm", reqs)
	if err != nil {
		return Result{}, err
	}
	rngs := make([]*rand.Rand, r.cfg.Connections)
	for w := range rngs {
		rngs[w] = r.rng("hot", w)
	}
	t, origin, err := r.originDelta(ctx, r.measured("hot", r.cfg.Connections, func(w int, _ int64) (request, error) {
		rng := rngs[w]
		rg := randRange(rng, randLen(rng, rangeMin, rangeMax), size)
		return request{path: paths[rng.IntN(n)], size: size, ranges: []slicer.Range{rg}}, nil
	}))
	if err != nil {
		return Result{}, err
	}
	res := t.result("hot", false)
	res.OriginRequests, res.OriginBytes = origin.Requests, origin.BodyBytes
	addWarm(&res, warm)
	return res, nil
}

// seek sends cold ranges (64 KiB-1 MiB, each in 2 MiB no other request
// touches) in the second half of BigObjectSize objects, behind an origin
// with 20 ms of latency and 50 MiB/s per response: a viewer seeking deep
// into a video. A slice cache answers in about the origin's latency; a
// cache that fetches from the start of the object, or whole slices before
// the first byte, takes longer.
func (r *runner) seek(ctx context.Context) (Result, error) {
	size := r.cfg.BigObjectSize
	half := size / 2
	slots := int((size - half) / seekSlot)
	mode := origintest.Mode{Latency: seekLatency, Bandwidth: seekBandwidth}

	type worker struct {
		rng  *rand.Rand
		path string
		perm []int // slots of path not used yet
		objs int   // objects used so far
	}
	workers := make([]*worker, r.cfg.Connections)
	for w := range workers {
		workers[w] = &worker{rng: r.rng("seek", w)}
	}
	var (
		mu    sync.Mutex // protects moded
		moded []string   // paths given the mode, cleared after
	)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, p := range moded {
			_ = r.env.origin.clearMode(cctx, p) // the paths are never used again
		}
	}()
	t, origin, err := r.originDelta(ctx, r.measured("seek", r.cfg.Connections, func(w int, _ int64) (request, error) {
		wk := workers[w]
		if len(wk.perm) == 0 {
			wk.path = r.path("seek", size, fmt.Sprintf("%d-%d", w, wk.objs))
			wk.objs++
			if err := r.env.origin.setMode(ctx, wk.path, mode); err != nil {
				return request{}, err
			}
			mu.Lock()
			moded = append(moded, wk.path)
			mu.Unlock()
			wk.perm = wk.rng.Perm(slots)
		}
		slot := wk.perm[len(wk.perm)-1]
		wk.perm = wk.perm[:len(wk.perm)-1]
		start := half + int64(slot)*seekSlot + wk.rng.Int64N(seekSlot/2)
		n := randLen(wk.rng, rangeMin, rangeMax)
		return request{path: wk.path, size: size, ranges: []slicer.Range{{Start: start, End: start + n}}}, nil
	}))
	if err != nil {
		return Result{}, err
	}
	res := t.result("seek", false)
	res.OriginRequests, res.OriginBytes = origin.Requests, origin.BodyBytes
	res.Extra["origin_latency_ms"] = float64(seekLatency) / float64(time.Millisecond)
	res.Extra["origin_mib_per_second_per_response"] = seekBandwidth >> 20
	if res.TTFBP50 > 0 {
		res.Extra["ttfb_p50_over_origin_latency"] = float64(res.TTFBP50) / float64(seekLatency)
	}
	return res, nil
}

// mixed replays a seeded stream over Objects cold objects, their
// popularity Zipf-distributed: ranges of 1 KiB-4 MiB (log-uniform), 5%
// full GETs, 10% multi-range requests. It reports how many bytes the
// origin sent per byte the clients asked for (the union of the ranges
// requested per object: 1.00 is ideal; a slice cache rounds to slices) and
// per byte delivered.
func (r *runner) mixed(ctx context.Context) (Result, error) {
	n, size := r.cfg.Objects, r.cfg.ObjectSize
	paths := r.paths("mixed", n, size)
	var (
		mu        sync.Mutex // protects rng, zipf and requested
		rng       = r.rng("mixed", 0)
		zipf      = rand.NewZipf(rng, mixedZipfS, 1, uint64(n-1))
		requested = make([]intervals, n)
	)
	t, origin, err := r.originDelta(ctx, r.measured("mixed", r.cfg.Connections, func(int, int64) (request, error) {
		mu.Lock()
		defer mu.Unlock()
		o := int(zipf.Uint64())
		q := request{path: paths[o], size: size}
		switch u := rng.Float64(); {
		case u < mixedFull:
		case u < mixedFull+mixedMulti:
			q.ranges = multiRange(rng, size)
		default:
			q.ranges = []slicer.Range{randRange(rng, logLen(rng, mixedMinRange, mixedMaxRangeLen), size)}
		}
		for _, rg := range q.spans() {
			requested[o].add(rg)
		}
		return q, nil
	}))
	if err != nil {
		return Result{}, err
	}
	res := t.result("mixed", false)
	res.OriginRequests, res.OriginBytes = origin.Requests, origin.BodyBytes
	var asked int64
	for _, iv := range requested {
		asked += iv.bytes()
	}
	res.Extra["requested_bytes"] = float64(asked)
	if asked > 0 {
		res.Extra["origin_bytes_per_requested_byte"] = float64(origin.BodyBytes) / float64(asked)
	}
	if res.DeliveredBytes > 0 {
		res.Extra["origin_bytes_per_delivered_byte"] = float64(origin.BodyBytes) / float64(res.DeliveredBytes)
	}
	return res, nil
}

// multiRange is 2-4 ranges of 1 KiB-1 MiB, ascending, disjoint and not
// adjacent (so no cache may merge them into one); of two that collide only
// the first stays.
func multiRange(rng *rand.Rand, size int64) []slicer.Range {
	c := make([]slicer.Range, 2+rng.IntN(3))
	for i := range c {
		c[i] = randRange(rng, logLen(rng, mixedMinRange, 1<<20), size)
	}
	slices.SortFunc(c, func(a, b slicer.Range) int { return cmp.Compare(a.Start, b.Start) })
	out := c[:1]
	for _, rg := range c[1:] {
		if rg.Start > out[len(out)-1].End {
			out = append(out, rg)
		}
	}
	return out
}

// collapse sends Connections clients at once for the same cold object,
// whole, then for the same cold 1 MiB range (aligned, in the middle) of
// another, in rounds until the duration passes. A collapsing cache fetches
// each byte once whatever the number of clients: origin bytes per object
// byte and per range byte are then 1.00.
func (r *runner) collapse(ctx context.Context) (Result, error) {
	size, conns := r.cfg.ObjectSize, r.cfg.Connections
	rgStart := (size / 2) &^ (collapseRange - 1)
	rg := slicer.Range{Start: rgStart, End: min(rgStart+collapseRange, size)}
	all := &tally{}
	var objOrigin, rgOrigin origintest.Stats
	var objWall, rgWall time.Duration
	// At least one round, whatever MaxRequests; then until the duration.
	maxRounds := min(collapseMaxRounds, max(r.cfg.MaxRequests/(2*conns), 1))
	rounds := 0
	began := time.Now()
	for rounds < maxRounds && (rounds == 0 || time.Since(began) < r.cfg.Duration) {
		for _, kind := range []string{"object", "range"} {
			q := request{path: r.path("collapse", size, fmt.Sprintf("%d-%s", rounds, kind)), size: size}
			if kind == "range" {
				q.ranges = []slicer.Range{rg}
			}
			t, origin, err := r.originDelta(ctx, phase{
				name:        fmt.Sprintf("collapse: %s %d", kind, rounds+1),
				conns:       conns,
				maxRequests: int64(conns),
				hard:        warmBound(size),
				next:        func(int, int64) (request, error) { return q, nil },
			})
			if err != nil {
				return Result{}, err
			}
			all.merge(t)
			if kind == "object" {
				objOrigin.Requests += origin.Requests
				objOrigin.BodyBytes += origin.BodyBytes
				objWall += t.elapsed
			} else {
				rgOrigin.Requests += origin.Requests
				rgOrigin.BodyBytes += origin.BodyBytes
				rgWall += t.elapsed
			}
		}
		rounds++
	}
	res := all.result("collapse", false)
	res.OriginRequests = objOrigin.Requests + rgOrigin.Requests
	res.OriginBytes = objOrigin.BodyBytes + rgOrigin.BodyBytes
	n := float64(rounds)
	res.Extra["rounds"] = n
	res.Extra["clients"] = float64(conns)
	res.Extra["origin_bytes_per_object_byte"] = float64(objOrigin.BodyBytes) / (n * float64(size))
	res.Extra["origin_bytes_per_range_byte"] = float64(rgOrigin.BodyBytes) / (n * float64(rg.Len()))
	res.Extra["origin_requests_per_object"] = float64(objOrigin.Requests) / n
	res.Extra["object_wall_seconds"] = objWall.Seconds() / n
	res.Extra["range_wall_seconds"] = rgWall.Seconds() / n
	return res, nil
}

// sequential stores one BigObjectSize object (warmed with parallel 8 MiB
// ranges, see warm), then downloads it whole over one connection, again and again
// until the duration passes: the store's streaming speed.
func (r *runner) sequential(ctx context.Context) (Result, error) {
	size := r.cfg.BigObjectSize
	path := r.path("sequential", size, "0")
	var reqs []request
	for start := int64(0); start < size; start += sequentialWarmChunk {
		reqs = append(reqs, request{path: path, size: size, ranges: []slicer.Range{{Start: start, End: min(start+sequentialWarmChunk, size)}}})
	}
	warm, err := r.warm(ctx, "sequential: warm", reqs)
	if err != nil {
		return Result{}, err
	}
	ph := r.measured("sequential", 1, func(int, int64) (request, error) {
		return request{path: path, size: size}, nil
	})
	ph.hard = r.cfg.Duration + warmBound(size) // at least one whole download
	t, origin, err := r.originDelta(ctx, ph)
	if err != nil {
		return Result{}, err
	}
	res := t.result("sequential", false)
	res.OriginRequests, res.OriginBytes = origin.Requests, origin.BodyBytes
	addWarm(&res, warm)
	if s := warm.t.elapsed.Seconds(); s > 0 {
		res.Extra["warm_mb_per_second"] = float64(warm.t.object) / 1e6 / s
	}
	return res, nil
}

// coldfill downloads one fresh BigObjectSize object whole, once, over one
// connection: the cold fill of a large object through the cache, timed
// from the request to the last byte, and what the origin sent for it.
func (r *runner) coldfill(ctx context.Context) (Result, error) {
	size := r.cfg.BigObjectSize
	path := r.path("coldfill", size, "0")
	ph := phase{name: "coldfill", conns: 1, maxRequests: 1, hard: warmBound(size), bytes: size,
		next: func(int, int64) (request, error) { return request{path: path, size: size}, nil }}
	t, origin, err := r.originDelta(ctx, ph)
	if err != nil {
		return Result{}, err
	}
	res := t.result("coldfill", false)
	res.OriginRequests, res.OriginBytes = origin.Requests, origin.BodyBytes
	if t.clean == 1 {
		res.Extra["fill_seconds"] = t.latencies.max().Seconds()
	}
	res.Extra["origin_bytes_per_object_byte"] = float64(origin.BodyBytes) / float64(size)
	return res, nil
}

// flap sends random ranges (64 KiB-2 MiB) and some full GETs of a few
// objects whose origin changes them every 3 requests and allows no
// caching without revalidation (max-age=0). A cache may answer
// the whole body of one version (clean), cut a body it has started when
// the version changes under it (cut), or answer 5xx; it must never send a
// body of two versions: mixed bodies must be 0.
func (r *runner) flap(ctx context.Context) (Result, error) {
	size := r.cfg.ObjectSize
	paths := r.paths("flap", min(flapObjects, r.cfg.Objects), size)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, p := range paths {
			_ = r.env.origin.clearMode(cctx, p) // the paths are never used again
		}
	}()
	cc := flapCacheControl
	for _, p := range paths {
		if err := r.env.origin.setMode(ctx, p, origintest.Mode{FlapEvery: flapEvery, CacheControl: &cc}); err != nil {
			return Result{}, err
		}
	}
	rngs := make([]*rand.Rand, r.cfg.Connections)
	for w := range rngs {
		rngs[w] = r.rng("flap", w)
	}
	t, origin, err := r.originDelta(ctx, r.measured("flap", r.cfg.Connections, func(w int, _ int64) (request, error) {
		rng := rngs[w]
		q := request{path: paths[rng.IntN(len(paths))], size: size}
		if rng.Float64() >= flapFull {
			q.ranges = []slicer.Range{randRange(rng, randLen(rng, rangeMin, flapMaxLen), size)}
		}
		return q, nil
	}))
	if err != nil {
		return Result{}, err
	}
	res := t.result("flap", true)
	res.OriginRequests, res.OriginBytes = origin.Requests, origin.BodyBytes
	res.Extra["clean"] = float64(t.clean)
	res.Extra["cut"] = float64(t.cut)
	res.Extra["status_5xx"] = float64(t.status5xx)
	var flaps int
	for _, p := range paths {
		v, err := r.versions.current(ctx, p)
		if err != nil {
			return Result{}, err
		}
		flaps += v - 1
	}
	res.Extra["origin_flaps"] = float64(flaps) // versions the origin went through
	return res, nil
}

// stream downloads Objects objects of ObjectSize whole, cold at first, from
// Connections connections at once, each going through the objects in its
// own order: many viewers streaming the same catalogue. With many
// connections (a thousand) it shows what the target holds in memory per
// connection; origin bytes should be each object once.
func (r *runner) stream(ctx context.Context) (Result, error) {
	n, size := r.cfg.Objects, r.cfg.ObjectSize
	paths := r.paths("stream", n, size)
	next := make([]int, r.cfg.Connections) // each connection's next object
	for w := range next {
		next[w] = r.rng("stream", w).IntN(n)
	}
	ph := r.measured("stream", r.cfg.Connections, func(w int, _ int64) (request, error) {
		p := paths[next[w]]
		next[w] = (next[w] + 1) % n
		return request{path: p, size: size}, nil
	})
	// Every connection finishes the download it has started.
	ph.hard = r.cfg.Duration + warmBound(size*int64(r.cfg.Connections))
	t, origin, err := r.originDelta(ctx, ph)
	if err != nil {
		return Result{}, err
	}
	res := t.result("stream", false)
	res.OriginRequests, res.OriginBytes = origin.Requests, origin.BodyBytes
	res.Extra["origin_bytes_per_object_byte"] = float64(origin.BodyBytes) / float64(int64(n)*size)
	return res, nil
}
