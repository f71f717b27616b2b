package origin

// Per-slice request collapsing. A request that misses slice i of a version
// either finds a Fill for it in the registry and reads that, or claims one
// and fetches it. Waiters read a Fill's bytes as they arrive, so collapsing
// never costs a waiter its first-byte latency. A Fill leaves the registry
// only after its slice has been handed to the store, so a slice is at every
// moment either stored, in flight, or missing, and a slice is never fetched
// twice by requests that overlap in time.
//
// An answer whose length is only checked at its end (Response.CheckedAtEnd)
// is held: its complete slices stay in flight, readable, until the end is
// verified, and are stored only then. If the answer turns out to be a lie
// (ErrBadAnswer), every slice of it fails, complete or not, so that no
// reader goes on with its bytes.
//
// Origins that ignore Range send whole bodies; see WholeFeed for how their
// slices are claimed without claiming the whole object up front.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/sliceedge/sliceedge/internal/invariants"
	"github.com/sliceedge/sliceedge/slicer"
)

// Fill is one slice of one version on its way from the origin.
type Fill struct {
	Key     string
	Version uint64
	Index   int64
	Len     int64 // bytes the slice holds when complete

	whole *WholeFeed // the whole-body feed that fills it, nil for a ranged fetch; set at creation

	sinkMu sync.Mutex     // protects sink
	sink   io.WriteCloser // where the feeder writes the bytes as they arrive (the store), or nil

	mu      sync.Mutex // protects buf, n, err, bad, waiting and wake
	buf     []byte     // allocated at the first byte; buf[:n] never changes again
	n       int64
	err     error
	bad     bool          // its answer was a lie: no byte of it may be read, complete or not
	waiting bool          // a reader sleeps on wake
	wake    chan struct{} // closed when n or err changes and waiting is set
}

func newFill(key string, version uint64, index, n int64) *Fill {
	return &Fill{Key: key, Version: version, Index: index, Len: n, wake: make(chan struct{})}
}

// ReadAt copies bytes of the slice at off into p, waiting until at least one
// has arrived. It returns io.EOF at the end of the slice, the fill's error
// if it failed before off (or at all, when its answer was a lie), or ctx's
// error.
func (f *Fill) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	for {
		f.mu.Lock()
		n, err, buf := f.n, f.err, f.buf
		if f.bad {
			f.mu.Unlock()
			return 0, err
		}
		if off < n {
			f.mu.Unlock()
			return copy(p, buf[off:n]), nil
		}
		if err != nil {
			f.mu.Unlock()
			return 0, err
		}
		if off >= f.Len {
			f.mu.Unlock()
			return 0, io.EOF
		}
		f.waiting = true
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Bytes returns the complete slice, or nil when it is not complete (or
// its answer was a lie).
func (f *Fill) Bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n < f.Len || f.bad {
		return nil
	}
	return f.buf
}

// Whole returns the whole-body feed that fills f, or nil when a ranged
// fetch does.
func (f *Fill) Whole() *WholeFeed { return f.whole }

// Err returns the error the fill failed with, or nil.
func (f *Fill) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *Fill) notifyLocked() {
	if f.waiting {
		close(f.wake)
		f.wake = make(chan struct{})
		f.waiting = false
	}
}

// Sink returns where f's bytes were written as they arrived, if every
// write succeeded; nil otherwise. Call it once f is complete.
func (f *Fill) Sink() io.WriteCloser {
	f.sinkMu.Lock()
	defer f.sinkMu.Unlock()
	return f.sink
}

// toSink writes p, the bytes just filled, to the sink; a failed write
// closes the sink and drops it.
func (f *Fill) toSink(p []byte) {
	f.sinkMu.Lock()
	defer f.sinkMu.Unlock()
	if f.sink == nil {
		return
	}
	if _, err := f.sink.Write(p); err != nil {
		_ = f.sink.Close()
		f.sink = nil
	}
}

// closeSink closes the sink, if any: a sink whose bytes were not
// committed abandons them.
func (f *Fill) closeSink() {
	f.sinkMu.Lock()
	defer f.sinkMu.Unlock()
	if f.sink != nil {
		_ = f.sink.Close()
		f.sink = nil
	}
}

// A Sink opens where a fill's bytes are written as they arrive (the
// store's file for the slice), or returns nil for none. See Feed.
type Sink func(f *Fill) io.WriteCloser

// readFrom fills the rest of the slice from r, writing each piece to the
// sink that open gives (nil: none) once its readers have it. Only the
// feeder calls it.
func (f *Fill) readFrom(r io.Reader, open Sink) error {
	// A claimed run's slices take memory only while they are being filled.
	f.mu.Lock()
	if f.buf == nil {
		f.buf = make([]byte, f.Len)
	}
	buf := f.buf
	f.mu.Unlock()
	if open != nil && f.n == 0 {
		if w := open(f); w != nil {
			f.sinkMu.Lock()
			f.sink = w
			f.sinkMu.Unlock()
		}
	}
	for f.n < f.Len {
		// Bytes past n are the feeder's alone until n moves over them.
		end := min(f.n+64<<10, f.Len)
		m, err := r.Read(buf[f.n:end])
		if invariants.Enabled {
			invariants.Check(0 <= m && int64(m) <= end-f.n, "origin: slice %d of %q: a read of %d bytes returned %d", f.Index, f.Key, end-f.n, m)
		}
		if m > 0 {
			f.advance(int64(m))
			f.toSink(buf[f.n-int64(m) : f.n])
		}
		if err == io.EOF && f.n < f.Len {
			return fmt.Errorf("origin: body ended in slice %d at %d of %d bytes: %w", f.Index, f.n, f.Len, ErrTruncated)
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// advance marks m more bytes of the slice filled and wakes the readers.
// Only the feeder calls it.
func (f *Fill) advance(m int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if invariants.Enabled {
		// Readers copy buf[:n] unlocked: bytes below n must never be
		// written again, nor n pass the slice's end.
		invariants.Check(m > 0 && f.n+m <= f.Len && f.err == nil, "origin: slice %d of %q: %d bytes filled of %d (error %v), then %d more: the offset only grows, to the slice's length, until the fill fails",
			f.Index, f.Key, f.n, f.Len, f.err, m)
	}
	f.n += m
	f.notifyLocked()
}

func (f *Fill) fail(err error) {
	f.mu.Lock()
	if f.err == nil && f.n < f.Len {
		f.err = err
	}
	f.notifyLocked()
	f.mu.Unlock()
}

// poison fails f whether complete or not: its answer was a lie, so even
// its complete bytes must not be read on.
func (f *Fill) poison(err error) {
	f.mu.Lock()
	if !f.bad {
		f.err, f.bad = err, true
	}
	f.notifyLocked()
	f.mu.Unlock()
}

type fillKey struct {
	key     string
	version uint64
	index   int64
}

type versionKey struct {
	key     string
	version uint64
}

// Fills is the registry of slices in flight. The zero value is ready to use.
type Fills struct {
	mu     sync.Mutex // protects m, wholes, and the WholeFeeds' own state
	m      map[fillKey]*Fill
	wholes map[versionKey][]*WholeFeed // whole-body feeds in flight

	// Collapsed counts slices claimed while another request was already
	// fetching them: origin fetches saved.
	Collapsed atomic.Int64
}

// Claim is one slice of a claimed run: the Fill to read it from (nil when
// the store already has it) and whether the caller must fetch it.
type Claim struct {
	Index int64
	Fill  *Fill
	Owned bool
}

// Claim looks up every slice of run: a slice already in flight is attached
// to; a slice that have(i) reports stored is left alone; every other slice
// gets a new Fill owned by the caller, who must feed it (Feed) or abandon it
// (Abandon). have is called under the registry lock, which is what makes
// "stored, in flight or missing" exact.
func (fs *Fills) Claim(key string, version uint64, run slicer.Run, sliceLen func(i int64) int64, have func(i int64) bool) []Claim {
	claims := make([]Claim, 0, run.Len())
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m == nil {
		fs.m = make(map[fillKey]*Fill)
	}
	for i := run.First; i <= run.Last; i++ {
		if c, ok := fs.existingLocked(key, version, i, have); ok {
			claims = append(claims, c)
			continue
		}
		f := newFill(key, version, i, sliceLen(i))
		fs.m[fillKey{key, version, i}] = f
		if wf := fs.passingLocked(key, version, i); wf != nil && wf.window > 0 && i < wf.next+wf.window {
			// A whole answer in flight will reach it soon: wait for
			// that rather than fetch its bytes a second time.
			fs.Collapsed.Add(1)
			f.whole = wf
			wf.reserved[i] = f
			claims = append(claims, Claim{Index: i, Fill: f})
			continue
		}
		claims = append(claims, Claim{Index: i, Fill: f, Owned: true})
	}
	return claims
}

// existingLocked returns the claim of slice i when it needs no new fill:
// in flight (attached to, and counted as collapsed) or stored. The
// caller holds fs.mu.
func (fs *Fills) existingLocked(key string, version uint64, i int64, have func(i int64) bool) (Claim, bool) {
	if f, ok := fs.m[fillKey{key, version, i}]; ok {
		fs.Collapsed.Add(1)
		return Claim{Index: i, Fill: f}, true
	}
	if have != nil && have(i) {
		return Claim{Index: i}, true
	}
	return Claim{}, false
}

// Lookup returns the fill in flight for a slice, or nil.
func (fs *Fills) Lookup(key string, version uint64, index int64) *Fill {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.m[fillKey{key, version, index}]
}

// InFlight returns the number of fills in flight.
func (fs *Fills) InFlight() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.m)
}

// Busy returns the fills in flight plus the whole-body feeds in flight:
// between two of its slices a feed has no fill registered, yet more of
// its slices are on their way, so a drain that counted fills alone could
// end while a feed still stores.
func (fs *Fills) Busy() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := len(fs.m)
	for _, feeds := range fs.wholes {
		n += len(feeds)
	}
	return n
}

// Release unregisters a completed fill once its slice is stored (or could
// not be). See Feed.
func (fs *Fills) Release(f *Fill) {
	if invariants.Enabled {
		f.mu.Lock()
		n := f.n
		f.mu.Unlock()
		invariants.Check(n == f.Len, "origin: slice %d of %q released with %d bytes of %d: only complete fills go to the store", f.Index, f.Key, n, f.Len)
	}
	fs.remove(f)
}

func (fs *Fills) remove(f *Fill) {
	f.closeSink()
	fs.mu.Lock()
	if fs.m[fillKey{f.Key, f.Version, f.Index}] == f {
		delete(fs.m, fillKey{f.Key, f.Version, f.Index})
	}
	fs.mu.Unlock()
}

// Abandon fails owned fills that will not be fed, and unregisters them. A
// fill of a whole-body feed takes the feed down with it: one body fills
// them all, and it is not coming. Every fill is unregistered before any
// fails, so a reader woken by the failure that claims again finds none of
// them in flight, and its one new fetch covers them all.
func (fs *Fills) Abandon(fills []*Fill, err error) {
	var doomed []*Fill
	fs.mu.Lock()
	for _, f := range fills {
		if f == nil {
			continue
		}
		if f.whole != nil {
			doomed = append(doomed, f.whole.endLocked()...)
		}
		doomed = append(doomed, f)
	}
	fs.mu.Unlock()
	fs.failAll(doomed, err)
}

// failAll unregisters fills, then fails them with err.
func (fs *Fills) failAll(fills []*Fill, err error) {
	fs.unregister(fills)
	for _, f := range fills {
		f.fail(err)
	}
}

// unregister is remove for several fills at once (nil ones skipped): none
// of them is findable once any of them is.
func (fs *Fills) unregister(fills []*Fill) {
	for _, f := range fills {
		if f != nil {
			f.closeSink()
		}
	}
	fs.mu.Lock()
	for _, f := range fills {
		if f == nil {
			continue
		}
		if k := (fillKey{f.Key, f.Version, f.Index}); fs.m[k] == f {
			delete(fs.m, k)
		}
	}
	fs.mu.Unlock()
}

// Feed reads body, which starts at the first byte of slice first, slice by
// slice: slice first+k goes to fills[k], or is discarded when fills[k] is
// nil (a slice already stored or fetched by someone else). After the last
// slice Feed reads body to its end, so that an origin body checks there
// that nothing follows (the caller cuts a body it does not want read on).
// Each fill's bytes are written, as they arrive, to the writer sink
// opens for it (nil: none), which Sink returns once the fill is complete
// and every write succeeded; the writer is closed when the fill is
// unregistered (Release, or a failure), so the store takes what it wants
// of it before. Each completed fill is handed to store, which takes over its
// registration: store must call Release(f) once the slice is stored or
// could not be, and until then the fill stays findable, so nobody fetches
// the slice again while it is being written; a store error does not fail
// the fill for its readers. With a nil store a fill is released at once.
// sliceLen gives the length of a discarded slice.
//
// hold is for an answer whose length is only checked at its end
// (Response.CheckedAtEnd): completed fills are then handed to store only
// once body has ended as it should. Until then they stay in flight and
// readable, which costs memory for the run of slices asked for, at most
// max_run × slice size, and nothing more.
//
// On a read error every unfinished fill fails with it and Feed returns it;
// held complete fills are released unstored, and if the error is
// ErrBadAnswer they fail too, so that their readers stop. Feed clears each
// entry of fills once done with it.
func (fs *Fills) Feed(body io.Reader, first int64, fills []*Fill, sliceLen func(i int64) int64, hold bool, sink Sink, store func(f *Fill)) error {
	var held []*Fill
	failed := func(k int, err error) error {
		// The held fills and the unfinished ones go at once (see
		// Abandon); a lie fails even the complete ones.
		fs.unregister(held)
		if errors.Is(err, ErrBadAnswer) {
			for _, f := range held {
				f.poison(err)
			}
		}
		fs.Abandon(fills[k:], err)
		return err
	}
	done := func(f *Fill) {
		if store != nil {
			store(f)
		} else {
			fs.remove(f)
		}
	}
	for k, f := range fills {
		if f == nil {
			n := sliceLen(first + int64(k))
			if _, err := io.CopyN(io.Discard, body, n); err != nil {
				if err == io.EOF {
					err = fmt.Errorf("origin: body ended in slice %d: %w", first+int64(k), ErrTruncated)
				}
				return failed(k, err)
			}
			continue
		}
		if invariants.Enabled {
			i := first + int64(k)
			invariants.Check(f.Index == i && f.Len == sliceLen(i), "origin: feeding slice %d (%d bytes) to the fill of slice %d of %q (%d bytes)", i, sliceLen(i), f.Index, f.Key, f.Len)
		}
		if err := f.readFrom(body, sink); err != nil {
			return failed(k, err)
		}
		if hold {
			held = append(held, f)
		} else {
			done(f)
		}
		// Drop the feeder's reference: a stored slice's memory goes as soon
		// as its last reader is done, not when the whole run is.
		fills[k] = nil
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		return failed(len(fills), err)
	}
	for _, f := range held {
		done(f)
	}
	return nil
}

// ErrFeedStopped fails the slices reserved on the feed of an open range
// that stopped before reaching them (OpenFeed): not an origin failure;
// their readers claim them again.
var ErrFeedStopped = errors.New("origin: the open-range answer stopped before this slice; claim it again")

// WholeFeed is one whole-body answer of an origin that ignores Range,
// cut into slices as it passes. Its slices are claimed lazily, so that
// its memory follows the slices in flight, never the size the origin
// claims: the feed claims each slice when its body reaches it (a slice
// stored or in flight elsewhere passes by), and a request that needs a
// slice the feed has not reached yet reserves it on the feed (ClaimWhole)
// instead of starting another whole-body fetch, which would have to read
// from byte 0 too. A WholeFeed thus holds the slice it is filling plus the
// slices requests reserved ahead of it.
type WholeFeed struct {
	fs      *Fills
	key     string
	version uint64

	// Protected by fs.mu.
	next     int64           // the first slice the body has not reached
	reserved map[int64]*Fill // fills of slices >= next that requests wait for
	ended    bool            // failed or done: it takes no more reservations
	// For the answer of an origin that honours Range (see Ranged): a
	// ranged Claim reserves a slice on the feed only when the body is
	// less than window slices from it, and the feed stops, cutting the
	// body, at the first slice from stopAt on that no request waits for.
	// Both are 0 for an origin that ignores Range, whose feeds reach
	// every slice.
	window, stopAt int64
	readers        int64 // requests reading from the feed (Attach), which keep it going
}

// Attach counts a request that reads slices from wf: until it Detaches,
// the feed of an open range does not stop (see OpenFeed).
func (wf *WholeFeed) Attach() {
	wf.fs.mu.Lock()
	wf.readers++
	wf.fs.mu.Unlock()
}

// Detach undoes one Attach.
func (wf *WholeFeed) Detach() {
	wf.fs.mu.Lock()
	wf.readers--
	wf.fs.mu.Unlock()
}

// OpenFeed registers the feed of an answer to an open range
// ("bytes=N-", N the start of slice first) from an origin that honours
// Range. Like a whole-body feed it claims each slice as its body reaches
// it. Ranged Claims of the version reserve the slices it will reach
// within window slices instead of fetching them again. It stops, and its
// body is to be cut, at the first slice from first+stopAfter on that no
// request waits for, when no request reads from it (Attach), so that a
// client that went away costs the origin about what a ranged fetch would
// have, or when another fetch has that slice or it is stored, so that no
// byte is fetched twice. Feed it with FeedWhole from
// first, or End it.
func (fs *Fills) OpenFeed(key string, version uint64, first, window, stopAfter int64) *WholeFeed {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m == nil {
		fs.m = make(map[fillKey]*Fill)
	}
	wf := fs.newWholeLocked(key, version)
	wf.next = first
	wf.window, wf.stopAt = max(window, 1), first+max(stopAfter, 1)
	return wf
}

// End ends wf without feeding it: the slices requests reserved on it fail
// with err.
func (wf *WholeFeed) End(err error) { wf.end(err) }

// ClaimWhole is Claim for a version whose origin ignores Range. Every
// slice of run in flight is attached to, and every stored one left alone.
// Every other one is reserved on a whole-body feed in flight that has not
// reached it yet (the nearest), or else on a new feed, returned as wf,
// for which the caller must fetch the whole body and FeedWhole it, or
// Abandon its claims; those claims are the Owned ones.
func (fs *Fills) ClaimWhole(key string, version uint64, run slicer.Run, sliceLen func(i int64) int64, have func(i int64) bool) (claims []Claim, wf *WholeFeed) {
	claims = make([]Claim, 0, run.Len())
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m == nil {
		fs.m = make(map[fillKey]*Fill)
	}
	for i := run.First; i <= run.Last; i++ {
		if c, ok := fs.existingLocked(key, version, i, have); ok {
			claims = append(claims, c)
			continue
		}
		k := fillKey{key, version, i}
		feed := fs.passingLocked(key, version, i)
		switch {
		case feed == nil:
			if wf == nil {
				wf = fs.newWholeLocked(key, version)
			}
			feed = wf
		case feed != wf:
			fs.Collapsed.Add(1)
		}
		f := newFill(key, version, i, sliceLen(i))
		f.whole = feed
		fs.m[k] = f
		feed.reserved[i] = f
		claims = append(claims, Claim{Index: i, Fill: f, Owned: feed == wf})
	}
	return claims, wf
}

// passingLocked returns the whole-body feed of a version in flight that
// will reach slice i soonest, or nil.
func (fs *Fills) passingLocked(key string, version uint64, i int64) *WholeFeed {
	var best *WholeFeed
	for _, wf := range fs.wholes[versionKey{key, version}] {
		if !wf.ended && wf.next <= i && (best == nil || wf.next > best.next) {
			best = wf
		}
	}
	return best
}

func (fs *Fills) newWholeLocked(key string, version uint64) *WholeFeed {
	if fs.wholes == nil {
		fs.wholes = make(map[versionKey][]*WholeFeed)
	}
	wf := &WholeFeed{fs: fs, key: key, version: version, reserved: make(map[int64]*Fill)}
	vk := versionKey{key, version}
	fs.wholes[vk] = append(fs.wholes[vk], wf)
	return wf
}

// endLocked stops wf taking reservations, unregisters it and returns
// the fills still reserved on it, which it will not reach now: the caller
// fails them (failAll). Ending an ended feed returns nothing.
func (wf *WholeFeed) endLocked() []*Fill {
	if wf.ended {
		return nil
	}
	wf.ended = true
	vk := versionKey{wf.key, wf.version}
	feeds := wf.fs.wholes[vk]
	for k, other := range feeds {
		if other == wf {
			feeds = append(feeds[:k], feeds[k+1:]...)
			break
		}
	}
	if len(feeds) == 0 {
		delete(wf.fs.wholes, vk)
	} else {
		wf.fs.wholes[vk] = feeds
	}
	reserved := make([]*Fill, 0, len(wf.reserved))
	for _, f := range wf.reserved {
		reserved = append(reserved, f)
	}
	clear(wf.reserved)
	return reserved
}

// reach moves wf to slice i and returns the fill to fill with it: the one
// a request reserved, or a new one; nil when the slice is stored or
// another fetch has it in flight. stop says that the feed of a ranged
// answer ends here, no request waiting for the slices ahead (see Ranged):
// it has ended, and takes no more reservations.
func (wf *WholeFeed) reach(i int64, n int64, have func(i int64) bool) (f *Fill, stop bool) {
	fs := wf.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if invariants.Enabled {
		// Requests reserve slices at or past next on the strength of it.
		invariants.Check(i >= wf.next, "origin: whole body of %q moved back from slice %d to %d", wf.key, wf.next, i)
	}
	if wf.stopAt > 0 && i >= wf.stopAt {
		// Past its first run, the feed of an open range stops when no
		// request reads from it or waits for a slice ahead, and also
		// when another fetch has this slice or the store holds it:
		// going on would fetch bytes a second time. The slices still
		// reserved on it then fail with ErrFeedStopped (FeedWhole), and
		// their readers claim them again as ranged fetches.
		_, elsewhere := fs.m[fillKey{wf.key, wf.version, i}]
		if _, waited := wf.reserved[i]; !waited && (elsewhere || have != nil && have(i)) ||
			len(wf.reserved) == 0 && wf.readers == 0 {
			return nil, true
		}
	}
	wf.next = i + 1
	if f, ok := wf.reserved[i]; ok {
		delete(wf.reserved, i)
		if invariants.Enabled {
			invariants.Check(f.Len == n && f.Index == i, "origin: whole body of %q at slice %d (%d bytes) gives it to the fill of slice %d (%d bytes)", wf.key, i, n, f.Index, f.Len)
		}
		return f, false
	}
	k := fillKey{wf.key, wf.version, i}
	if _, ok := fs.m[k]; ok {
		return nil, false
	}
	if have != nil && have(i) {
		return nil, false
	}
	f = newFill(wf.key, wf.version, i, n)
	f.whole = wf
	fs.m[k] = f
	return f, false
}

// end ends wf: it takes no more reservations, and the slices still
// reserved on it, which it will not reach now, fail with err.
func (wf *WholeFeed) end(err error) {
	fs := wf.fs
	fs.mu.Lock()
	reserved := wf.endLocked()
	fs.mu.Unlock()
	fs.failAll(reserved, err)
}

// FeedWhole reads a whole body for wf: slices first to count-1 (first is
// 0 but for an OpenFeed), each to the
// fill a request reserved, to a fill claimed as the body reaches it, or
// discarded when stored (have) or in flight elsewhere; then it reads body
// to its end. The feed of a ranged answer may stop before (see Ranged),
// and then FeedWhole returns nil with the rest of body unread. store is as for Feed. On a read error the slice being read
// and every reserved one fail with it, and FeedWhole returns it. A whole
// body is never held: it has a Content-Length (without one the object has
// no size to slice), so its bytes are checked as they come.
func (fs *Fills) FeedWhole(body io.Reader, wf *WholeFeed, first, count int64, sliceLen func(i int64) int64, have func(i int64) bool, sink Sink, store func(f *Fill)) error {
	for i := first; i < count; i++ {
		n := sliceLen(i)
		f, stop := wf.reach(i, n, have)
		if stop {
			wf.end(ErrFeedStopped)
			return nil // the caller closes the body, cutting it
		}
		if f == nil {
			if _, err := io.CopyN(io.Discard, body, n); err != nil {
				if err == io.EOF {
					err = fmt.Errorf("origin: body ended in slice %d: %w", i, ErrTruncated)
				}
				wf.end(err)
				return err
			}
			continue
		}
		if err := f.readFrom(body, sink); err != nil {
			fs.Abandon([]*Fill{f}, err) // and the feed, at once
			return err
		}
		if store != nil {
			store(f)
		} else {
			fs.remove(f)
		}
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		wf.end(err)
		return err
	}
	// Every slice has been reached, so nothing is reserved any more,
	// unless a reservation lay past the end.
	wf.end(fmt.Errorf("origin: slice past the end of a whole body of %d slices: %w", count, ErrTruncated))
	return nil
}
