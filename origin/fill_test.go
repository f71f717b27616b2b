package origin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/slicer"
)

// errAbandoned fails fills whose fetch never started.
var errAbandoned = errors.New("origin test: fill abandoned")

func lenOf(n int64) func(int64) int64 { return func(int64) int64 { return n } }

// A second claim of slices in flight attaches to them instead of fetching.
func TestClaimCollapses(t *testing.T) {
	var fs origin.Fills
	stored := map[int64]bool{2: true}
	have := func(i int64) bool { return stored[i] }
	a := fs.Claim("k", 1, slicer.Run{First: 0, Last: 3}, lenOf(10), have)
	b := fs.Claim("k", 1, slicer.Run{First: 1, Last: 4}, lenOf(10), have)
	owned := func(cs []origin.Claim) (o []int64) {
		for _, c := range cs {
			if c.Owned {
				o = append(o, c.Index)
			}
		}
		return o
	}
	if got := owned(a); len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 3 {
		t.Errorf("first claim owns %v, want [0 1 3] (2 is stored)", got)
	}
	if got := owned(b); len(got) != 1 || got[0] != 4 {
		t.Errorf("second claim owns %v, want [4]", got)
	}
	if b[0].Fill != a[1].Fill || b[2].Fill != a[3].Fill {
		t.Errorf("second claim did not attach to the fills in flight")
	}
	if b[1].Fill != nil {
		t.Errorf("a stored slice got a fill")
	}
	if got := fs.Collapsed.Load(); got != 2 {
		t.Errorf("Collapsed = %d, want 2", got)
	}
	// Another version is another object.
	c := fs.Claim("k", 2, slicer.Run{First: 0, Last: 0}, lenOf(10), have)
	if !c[0].Owned {
		t.Errorf("a claim of another version attached to this one's fill")
	}
	isOwned := func(i int64) bool { return a[i].Owned }
	if runs := slicer.PlanRuns(slicer.Run{First: 0, Last: 3}, isOwned, 0); !slices.Equal(runs, []slicer.Run{{First: 0, Last: 1}, {First: 3, Last: 3}}) {
		t.Errorf("owned runs = %v, want [0-1 3-3]", runs)
	}
}

// Waiters read a fill's bytes as they arrive, not when it completes; the
// store sees each slice once, before the fill leaves the registry.
func TestFeedStreamsToWaiters(t *testing.T) {
	var fs origin.Fills
	claims := fs.Claim("k", 1, slicer.Run{First: 0, Last: 1}, lenOf(8), nil)
	fills := []*origin.Fill{claims[0].Fill, claims[1].Fill}
	pr, pw := io.Pipe()
	var storedMu sync.Mutex
	var stored []string
	done := make(chan error, 1)
	go func() {
		done <- fs.Feed(pr, 0, fills, lenOf(8), false, nil, func(f *origin.Fill) {
			if fs.Lookup("k", 1, f.Index) != f {
				t.Errorf("slice %d stored after it left the registry", f.Index)
			}
			storedMu.Lock()
			stored = append(stored, string(f.Bytes()))
			storedMu.Unlock()
			fs.Release(f)
		})
	}()
	go pw.Write([]byte("abc"))
	buf := make([]byte, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := claims[0].Fill.ReadAt(ctx, buf, 0)
	if err != nil || string(buf[:n]) != "abc" {
		t.Fatalf("first read %q %v, want the 3 bytes sent so far", buf[:n], err)
	}
	go func() {
		pw.Write([]byte("defghijklmnop"))
		pw.Close() // Feed reads the body to its end
	}()
	var got bytes.Buffer
	for _, c := range claims {
		for off := int64(0); ; {
			n, err := c.Fill.ReadAt(ctx, buf, off)
			got.Write(buf[:n])
			off += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if c.Index == 1 {
			break
		}
	}
	if got.String() != "abcdefghijklmnop" {
		t.Fatalf("waiters read %q", got.String())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 || stored[0] != "abcdefgh" || stored[1] != "ijklmnop" {
		t.Errorf("stored %q", stored)
	}
	if fs.InFlight() != 0 {
		t.Errorf("%d fills left in the registry", fs.InFlight())
	}
}

// A body cut short fails the unfinished fills (never storing them) and
// frees their slots for a retry; a nil entry's bytes are skipped.
func TestFeedTruncated(t *testing.T) {
	var fs origin.Fills
	claims := fs.Claim("k", 1, slicer.Run{First: 0, Last: 2}, lenOf(4), nil)
	fills := []*origin.Fill{nil, claims[1].Fill, claims[2].Fill}
	fs.Abandon([]*origin.Fill{claims[0].Fill}, errAbandoned)
	var stored []int64
	err := fs.Feed(bytes.NewReader([]byte("xxxxabcdef")), 0, fills, lenOf(4), false, nil, func(f *origin.Fill) {
		stored = append(stored, f.Index)
		fs.Release(f)
	})
	if !errors.Is(err, origin.ErrTruncated) {
		t.Fatalf("Feed = %v, want ErrTruncated", err)
	}
	if len(stored) != 1 || stored[0] != 1 {
		t.Errorf("stored %v, want only the complete slice 1", stored)
	}
	if string(claims[1].Fill.Bytes()) != "abcd" {
		t.Errorf("slice 1 = %q after skipping slice 0", claims[1].Fill.Bytes())
	}
	buf := make([]byte, 4)
	n, err := claims[2].Fill.ReadAt(context.Background(), buf, 0)
	if err != nil || n != 2 || string(buf[:2]) != "ef" {
		t.Errorf("the bytes that did arrive: %q (%v)", buf[:n], err)
	}
	if _, err = claims[2].Fill.ReadAt(context.Background(), buf, 2); !errors.Is(err, origin.ErrTruncated) {
		t.Errorf("reading past the cut: %v, want ErrTruncated", err)
	}
	if _, err := claims[0].Fill.ReadAt(context.Background(), buf, 0); !errors.Is(err, errAbandoned) {
		t.Errorf("abandoned fill: %v", err)
	}
	if fs.InFlight() != 0 {
		t.Errorf("%d failed fills still registered: a retry could not claim them", fs.InFlight())
	}
}

// endsWith is a body whose bytes are followed by err instead of io.EOF:
// what an origin body reports when it finds extra bytes at its end.
type endsWith struct {
	r   io.Reader
	err error
}

func (e *endsWith) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		err = e.err
	}
	return n, err
}

// An answer checked only at its end is held: its complete slices are
// readable at once but stored only after the body has ended as it
// should; when the end shows a lie, none is stored and every one fails,
// complete or not, for its readers.
func TestFeedHoldsUntilTheEnd(t *testing.T) {
	ctx := context.Background()
	t.Run("verified", func(t *testing.T) {
		var fs origin.Fills
		claims := fs.Claim("k", 1, slicer.Run{First: 0, Last: 1}, lenOf(4), nil)
		fills := []*origin.Fill{claims[0].Fill, claims[1].Fill}
		pr, pw := io.Pipe()
		var mu sync.Mutex
		var stored []string
		done := make(chan error, 1)
		go func() {
			done <- fs.Feed(pr, 0, fills, lenOf(4), true, nil, func(f *origin.Fill) {
				mu.Lock()
				stored = append(stored, string(f.Bytes()))
				mu.Unlock()
				fs.Release(f)
			})
		}()
		go pw.Write([]byte("abcdefgh"))
		buf := make([]byte, 4)
		for i, want := range []string{"abcd", "efgh"} {
			if n, err := io.ReadFull(&fillReader{ctx: ctx, f: claims[i].Fill}, buf); err != nil || string(buf[:n]) != want {
				t.Fatalf("slice %d before the end: %q, %v", i, buf[:n], err)
			}
		}
		// Both slices are complete, but the body has not ended: Feed
		// waits in its last read, so nothing can have been stored.
		mu.Lock()
		early := len(stored)
		mu.Unlock()
		if early != 0 || fs.InFlight() != 2 {
			t.Fatalf("%d slices stored, %d in flight before the end; want 0 and 2", early, fs.InFlight())
		}
		pw.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(stored) != 2 || stored[0] != "abcd" || stored[1] != "efgh" {
			t.Errorf("stored %q after the end", stored)
		}
	})
	t.Run("lie", func(t *testing.T) {
		var fs origin.Fills
		claims := fs.Claim("k", 1, slicer.Run{First: 0, Last: 2}, lenOf(4), nil)
		fills := []*origin.Fill{claims[0].Fill, claims[1].Fill, claims[2].Fill}
		lie := fmt.Errorf("origin: body goes on: %w", origin.ErrBadAnswer)
		var stored []int64
		err := fs.Feed(&endsWith{r: bytes.NewReader([]byte("abcdefghijkl")), err: lie}, 0, fills, lenOf(4), true, nil, func(f *origin.Fill) {
			stored = append(stored, f.Index)
			fs.Release(f)
		})
		if !errors.Is(err, origin.ErrBadAnswer) {
			t.Fatalf("Feed = %v, want ErrBadAnswer", err)
		}
		if len(stored) != 0 {
			t.Errorf("stored slices %v of a lying answer", stored)
		}
		for _, c := range claims {
			if _, err := c.Fill.ReadAt(ctx, make([]byte, 4), 0); !errors.Is(err, origin.ErrBadAnswer) {
				t.Errorf("slice %d of a lying answer reads with %v, want ErrBadAnswer", c.Index, err)
			}
			if c.Fill.Bytes() != nil {
				t.Errorf("slice %d of a lying answer offers its bytes", c.Index)
			}
		}
		if fs.InFlight() != 0 {
			t.Errorf("%d fills of a lying answer left in the registry", fs.InFlight())
		}
	})
	t.Run("truncated", func(t *testing.T) {
		// Not a lie, but not verified either: the complete slice is not
		// stored, and stays readable for whoever holds it.
		var fs origin.Fills
		claims := fs.Claim("k", 1, slicer.Run{First: 0, Last: 1}, lenOf(4), nil)
		fills := []*origin.Fill{claims[0].Fill, claims[1].Fill}
		var stored int
		err := fs.Feed(bytes.NewReader([]byte("abcdef")), 0, fills, lenOf(4), true, nil, func(f *origin.Fill) { stored++; fs.Release(f) })
		if !errors.Is(err, origin.ErrTruncated) || stored != 0 || fs.InFlight() != 0 {
			t.Fatalf("Feed = %v, %d stored, %d in flight; want ErrTruncated, 0, 0", err, stored, fs.InFlight())
		}
		if string(claims[0].Fill.Bytes()) != "abcd" {
			t.Errorf("complete slice of a cut answer: %q", claims[0].Fill.Bytes())
		}
	})
}

// fillReader reads a fill from the start.
type fillReader struct {
	ctx context.Context
	f   *origin.Fill
	off int64
}

func (r *fillReader) Read(p []byte) (int, error) {
	n, err := r.f.ReadAt(r.ctx, p, r.off)
	r.off += int64(n)
	return n, err
}

// A whole-body feed claims slices as it reaches them, not up front: a
// claim of a few slices of an object the origin says is enormous costs a
// few fills; a later claim further on reserves on the feed instead of
// starting another; the feed fills reservations, takes the missing
// slices it passes, and passes stored ones and ones in flight elsewhere.
func TestWholeFeedClaimsLazily(t *testing.T) {
	ctx := context.Background()
	var fs origin.Fills
	const huge = math.MaxInt64 // slices
	stored := map[int64]bool{2: true}
	have := func(i int64) bool { return stored[i] }
	a, wf := fs.ClaimWhole("k", 1, slicer.Run{First: 1, Last: 3}, lenOf(4), have)
	if wf == nil || len(a) != 3 || !a[0].Owned || a[1].Fill != nil || !a[2].Owned {
		t.Fatalf("first claim: %+v, feed %v; want slices 1 and 3 owned on a new feed, 2 stored", a, wf)
	}
	if fs.InFlight() != 2 || fs.Busy() != 3 {
		t.Fatalf("%d fills in flight, busy %d after claiming 3 slices of %d, want 2 and 3 (the feed)", fs.InFlight(), fs.Busy(), int64(huge))
	}
	b, wf2 := fs.ClaimWhole("k", 1, slicer.Run{First: 3, Last: 5}, lenOf(4), have)
	if wf2 != nil || b[0].Fill != a[2].Fill || b[1].Owned || b[1].Fill.Whole() != wf || b[2].Owned {
		t.Fatalf("second claim: %+v, new feed %v; want everything on the first feed", b, wf2)
	}
	if got := fs.Collapsed.Load(); got != 3 {
		t.Errorf("Collapsed = %d, want 3 (one attach, two reservations)", got)
	}
	// Slice 6 is in flight by another fetch: the feed passes it by.
	other := fs.Claim("k", 1, slicer.Run{First: 6, Last: 6}, lenOf(4), have)
	// The body: slices 0..7 of 4 bytes, then the origin stops sending.
	body := []byte("00001111222233334444555566667777")
	var got []string
	err := fs.FeedWhole(bytes.NewReader(body), wf, 0, huge, lenOf(4), have, nil, func(f *origin.Fill) {
		got = append(got, fmt.Sprintf("%d:%s", f.Index, f.Bytes()))
		fs.Release(f)
	})
	if !errors.Is(err, origin.ErrTruncated) {
		t.Fatalf("FeedWhole = %v, want ErrTruncated (the body ends at slice 8 of %d)", err, int64(huge))
	}
	want := "[0:0000 1:1111 3:3333 4:4444 5:5555 7:7777]"
	if fmt.Sprint(got) != want {
		t.Errorf("stored %v, want %s", got, want)
	}
	for _, c := range b[1:] {
		buf := make([]byte, 4)
		if _, err := io.ReadFull(&fillReader{ctx: ctx, f: c.Fill}, buf); err != nil || buf[0] != byte('0'+c.Index) {
			t.Errorf("reserved slice %d: %q, %v", c.Index, buf, err)
		}
	}
	if fs.InFlight() != 1 || fs.Lookup("k", 1, 6) != other[0].Fill {
		t.Errorf("%d fills in flight, want only the other fetch's slice 6", fs.InFlight())
	}
	if fs.Busy() != 1 {
		t.Errorf("busy %d after the feed ended, want 1 (slice 6's fill): an ended feed keeps nothing busy", fs.Busy())
	}
	// A reservation past where the feed failed fails with it.
	c, wf3 := fs.ClaimWhole("k", 1, slicer.Run{First: 100, Last: 100}, lenOf(4), have)
	if wf3 == nil {
		t.Fatal("a claim after the feed ended found no feed to start")
	}
	d, _ := fs.ClaimWhole("k", 1, slicer.Run{First: 1 << 30, Last: 1 << 30}, lenOf(4), have)
	if err := fs.FeedWhole(bytes.NewReader(body[:6]), wf3, 0, huge, lenOf(4), have, nil, nil); !errors.Is(err, origin.ErrTruncated) {
		t.Fatalf("FeedWhole = %v, want ErrTruncated", err)
	}
	for _, cl := range []origin.Claim{c[0], d[0]} {
		if _, err := cl.Fill.ReadAt(ctx, make([]byte, 4), 0); !errors.Is(err, origin.ErrTruncated) {
			t.Errorf("slice %d reserved on a failed feed: %v, want ErrTruncated", cl.Index, err)
		}
	}
	fs.Abandon([]*origin.Fill{other[0].Fill}, errAbandoned)
	if fs.InFlight() != 0 {
		t.Errorf("%d fills left in flight", fs.InFlight())
	}
	// Abandoning a feed's claims before its fetch starts fails the feed.
	e, wf4 := fs.ClaimWhole("k", 1, slicer.Run{First: 0, Last: 0}, lenOf(4), have)
	f, _ := fs.ClaimWhole("k", 1, slicer.Run{First: 9, Last: 9}, lenOf(4), have)
	if wf4 == nil || f[0].Fill.Whole() != wf4 {
		t.Fatalf("claims did not share a feed")
	}
	fs.Abandon([]*origin.Fill{e[0].Fill}, errAbandoned)
	if _, err := f[0].Fill.ReadAt(ctx, make([]byte, 4), 0); !errors.Is(err, errAbandoned) || fs.InFlight() != 0 {
		t.Errorf("reservation on an abandoned feed: %v, %d in flight", err, fs.InFlight())
	}
}

// sinkLog is a sink that keeps what it is written and whether it was
// closed; it fails writes once failAt bytes are in (-1: never).
type sinkLog struct {
	index  int64
	got    []byte
	closed bool
	failAt int
}

func (s *sinkLog) Write(p []byte) (int, error) {
	if s.failAt >= 0 && len(s.got)+len(p) > s.failAt {
		return 0, errors.New("disk full")
	}
	s.got = append(s.got, p...)
	return len(p), nil
}

func (s *sinkLog) Close() error { s.closed = true; return nil }

// Each fill's bytes reach its sink as they arrive, in order and whole;
// the sink is handed back with the complete fill, and closed when the fill
// is released. A sink whose write fails is closed and dropped, and the
// fill still completes for its readers. The sink of a fill cut short is
// closed, never handed to store.
func TestFeedSinks(t *testing.T) {
	var fs origin.Fills
	claims := fs.Claim("k", 1, slicer.Run{First: 0, Last: 2}, lenOf(4), nil)
	fills := []*origin.Fill{claims[0].Fill, claims[1].Fill, claims[2].Fill}
	sinks := map[int64]*sinkLog{}
	open := func(f *origin.Fill) io.WriteCloser {
		s := &sinkLog{index: f.Index, failAt: -1}
		if f.Index == 1 {
			s.failAt = 2
		}
		sinks[f.Index] = s
		return s
	}
	var handed []string
	err := fs.Feed(bytes.NewReader([]byte("abcdefghij")), 0, fills, lenOf(4), false, open, func(f *origin.Fill) {
		if s, ok := f.Sink().(*sinkLog); ok {
			handed = append(handed, fmt.Sprintf("%d:%s:closed=%v", f.Index, s.got, s.closed))
		} else {
			handed = append(handed, fmt.Sprintf("%d:no sink", f.Index))
		}
		fs.Release(f)
	})
	if !errors.Is(err, origin.ErrTruncated) {
		t.Fatalf("Feed = %v, want ErrTruncated", err)
	}
	if want := []string{"0:abcd:closed=false", "1:no sink"}; !slices.Equal(handed, want) {
		t.Errorf("store saw %q, want %q", handed, want)
	}
	if string(claims[1].Fill.Bytes()) != "efgh" {
		t.Errorf("slice 1, whose sink failed, holds %q, want \"efgh\"", claims[1].Fill.Bytes())
	}
	for i, want := range map[int64]string{0: "abcd", 1: "", 2: "ij"} {
		if s := sinks[i]; s == nil || string(s.got) != want || !s.closed {
			t.Errorf("sink of slice %d: %+v, want %q written and closed", i, s, want)
		}
	}
}

// The feed of an open range (OpenFeed) starts at its first slice. A ranged
// Claim within its window reserves on it instead of fetching again, one
// further on fetches for itself; the feed stops at the first slice past
// its first run that no request waits for, unless a request reads from it
// (Attach), and leaves the rest of the body unread.
func TestOpenFeed(t *testing.T) {
	var fs origin.Fills
	const count = 100                  // slices of 4 bytes
	wf := fs.OpenFeed("k", 1, 2, 3, 2) // from slice 2, window 3, stop after 2
	near := fs.Claim("k", 1, slicer.Run{First: 2, Last: 4}, lenOf(4), nil)
	for _, c := range near {
		if c.Owned || c.Fill.Whole() != wf {
			t.Fatalf("slice %d: owned %v, feed %v; want reserved on the open feed", c.Index, c.Owned, c.Fill.Whole())
		}
	}
	far := fs.Claim("k", 1, slicer.Run{First: 5, Last: 5}, lenOf(4), nil)
	if !far[0].Owned || far[0].Fill.Whole() != nil {
		t.Fatalf("slice 5, past the window: %+v; want a fill of its own", far[0])
	}
	body := bytes.NewReader([]byte("2222333344445555666677778888"))
	var got []string
	store := func(f *origin.Fill) {
		got = append(got, fmt.Sprintf("%d:%s", f.Index, f.Bytes()))
		fs.Release(f)
	}
	// Slices 2-4 are reserved; at 5, past the first run (2-3), no
	// request waits for the feed and none reads from it: it stops there.
	if err := fs.FeedWhole(body, wf, 2, count, lenOf(4), nil, nil, store); err != nil {
		t.Fatalf("FeedWhole = %v", err)
	}
	if want := "[2:2222 3:3333 4:4444]"; fmt.Sprint(got) != want {
		t.Errorf("stored %v, want %s", got, want)
	}
	if body.Len() != 16 {
		t.Errorf("%d bytes of the body left unread, want the 16 from where the feed stopped", body.Len())
	}
	if c := fs.Claim("k", 1, slicer.Run{First: 6, Last: 6}, lenOf(4), nil); !c[0].Owned {
		t.Errorf("slice 6 after the feed stopped: %+v; want a fill of its own", c[0])
	}

	// With a reader attached, the feed goes on to the end.
	wf2 := fs.OpenFeed("k", 2, 0, 3, 1)
	wf2.Attach()
	got = nil
	if err := fs.FeedWhole(bytes.NewReader([]byte("000011112222")), wf2, 0, 3, lenOf(4), nil, nil, store); err != nil {
		t.Fatalf("FeedWhole, attached = %v", err)
	}
	if want := "[0:0000 1:1111 2:2222]"; fmt.Sprint(got) != want {
		t.Errorf("attached: stored %v, want %s", got, want)
	}
	wf2.Detach()

	// Attached, but past its first run it meets a slice the store holds
	// (or another fetch has): it stops rather than fetch those bytes a
	// second time, and a slice reserved further on fails with
	// ErrFeedStopped, for its reader to claim again.
	wf3 := fs.OpenFeed("k", 3, 0, 10, 1)
	wf3.Attach()
	defer wf3.Detach()
	reserved := fs.Claim("k", 3, slicer.Run{First: 2, Last: 2}, lenOf(4), nil)
	beyond := fs.Claim("k", 3, slicer.Run{First: 6, Last: 6}, lenOf(4), nil)
	if reserved[0].Owned || beyond[0].Owned {
		t.Fatalf("slices 2 and 6: %+v %+v; want both reserved on the feed", reserved[0], beyond[0])
	}
	got = nil
	body3 := bytes.NewReader([]byte("0000111122223333444455556666"))
	stored4 := func(i int64) bool { return i == 4 }
	if err := fs.FeedWhole(body3, wf3, 0, count, lenOf(4), stored4, nil, store); err != nil {
		t.Fatalf("FeedWhole, meeting a stored slice = %v", err)
	}
	if want := "[0:0000 1:1111 2:2222 3:3333]"; fmt.Sprint(got) != want {
		t.Errorf("meeting a stored slice: stored %v, want %s", got, want)
	}
	if body3.Len() != 12 {
		t.Errorf("%d bytes left unread, want the 12 from the stored slice on", body3.Len())
	}
	if _, err := beyond[0].Fill.ReadAt(context.Background(), make([]byte, 4), 0); !errors.Is(err, origin.ErrFeedStopped) {
		t.Errorf("slice 6, reserved past where the feed stopped: %v, want ErrFeedStopped", err)
	}
}

// closeWatch is a sink that, when closed (as its fill is unregistered),
// notes any fill of the run that has already failed.
type closeWatch struct {
	run  []*origin.Fill
	seen *[]string
	idx  int64
}

func (c *closeWatch) Write(p []byte) (int, error) { return len(p), nil }

func (c *closeWatch) Close() error {
	for _, f := range c.run {
		if f.Err() != nil {
			*c.seen = append(*c.seen, fmt.Sprintf("slice %d had failed when slice %d was unregistered", f.Index, c.idx))
		}
	}
	return nil
}

// A failed answer unregisters all its fills before any of them fails: a
// reader woken by the failure that claims again finds none of them in
// flight, so its one new fetch covers them all, rather than one fetch for
// its own slice and another for the rest once those fail too. Each fill's
// sink closes as it is unregistered and checks that nothing has failed
// yet. Cases: a body cut inside the second slice of three (the first
// complete and held, the second with a sink), and a lie found at the end
// of a held answer (all three complete).
func TestFailureUnregistersFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		body io.Reader
		want error
	}{
		{"cut", bytes.NewReader([]byte("abcdef")), origin.ErrTruncated},
		{"lie", &endsWith{r: bytes.NewReader([]byte("abcdefghijkl")), err: fmt.Errorf("origin: body goes on: %w", origin.ErrBadAnswer)}, origin.ErrBadAnswer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fs origin.Fills
			claims := fs.Claim("k", 1, slicer.Run{First: 0, Last: 2}, lenOf(4), nil)
			fills := []*origin.Fill{claims[0].Fill, claims[1].Fill, claims[2].Fill}
			run := slices.Clone(fills)
			var seen []string
			open := func(f *origin.Fill) io.WriteCloser { return &closeWatch{run: run, seen: &seen, idx: f.Index} }
			err := fs.Feed(tc.body, 0, fills, lenOf(4), true, open, func(f *origin.Fill) { fs.Release(f) })
			if !errors.Is(err, tc.want) {
				t.Fatalf("Feed = %v, want %v", err, tc.want)
			}
			if len(seen) > 0 {
				t.Errorf("fills failed while still findable: %q", seen)
			}
			if fs.InFlight() != 0 {
				t.Errorf("%d fills left in the registry", fs.InFlight())
			}
			if _, err := run[1].ReadAt(context.Background(), make([]byte, 4), 2); !errors.Is(err, tc.want) {
				t.Errorf("slice 1 reads past what came with %v, want %v", err, tc.want)
			}
		})
	}
}
