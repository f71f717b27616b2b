package edge

// Reading a slice's bytes for the client: from the store, or from a fill
// in flight as its bytes arrive.
//
// Read buffers. Sending a stored range takes one store read into a buffer
// as large as the slice, then one write, while the server's slice-sized
// buffers total at most readBudget; beyond that (a thousand clients
// streaming at once, each blocked in a write most of the time) it goes in
// pieces of pieceSize, one store read each, so that memory grows by
// pieceSize per connection, not by a slice.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/sliceedge/sliceedge/internal/invariants"
	"github.com/sliceedge/sliceedge/origin"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

const (
	readBudget = 32 << 20
	pieceSize  = 64 << 10 // a multiple of the store's 64 KiB checksum chunk
)

// storedRead is a read of bytes [a, b) of stored slice i into a
// slice-sized buffer that holds need bytes of the read budget.
type storedRead struct {
	m       *segstore.Meta
	i, a, b int64
	need    int64
	bp      *[]byte
	data    []byte
	err     error
	done    chan struct{} // closed when a read ahead has finished
}

// sendStored sends bytes [a, b) of stored slice i; n is how many it sent.
// A failed write wraps errClientGone; a failed read is the store's error
// (and n tells where to go on from).
func (c *rangeCopy) sendStored(i, a, b int64) (n int64, err error) {
	s, m := c.s, c.m
	if r := c.ahead; r != nil {
		c.ahead = nil
		if r.m == m && r.i == i && r.a == a && r.b == b {
			<-r.done
			if r.err == nil {
				c.readAhead(i + 1)
				return s.sendRead(c.q, r)
			}
		}
		s.dropRead(r)
	}
	if r := s.newRead(m, i, a, b); r != nil {
		r.data, r.err = s.Store.ReadSliceRange(m, i, a, b-a, *r.bp)
		if r.err != nil {
			err := r.err
			s.dropRead(r)
			return 0, err
		}
		c.readAhead(i + 1)
		return s.sendRead(c.q, r)
	}
	bp := getBuf(&s.pieces, pieceSize)
	defer s.pieces.Put(bp)
	for a+n < b {
		// Pieces end on chunk boundaries, so each read checks one chunk.
		off := a + n
		end := min(b, (off/pieceSize+1)*pieceSize)
		data, err := s.Store.ReadSliceRange(m, i, off, end-off, *bp)
		if err != nil {
			return n, err
		}
		if invariants.Enabled {
			checkStoredRead(m, i, off, end, data)
		}
		if err := c.q.write(s, data); err != nil {
			return n, err
		}
		n += end - off
	}
	return n, nil
}

// readAhead reads the part of slice j that the range wants, if it is
// stored and the read budget allows, on a goroutine of its own, so that
// the store read overlaps the write of the slice before: a client
// streaming stored slices then waits for the socket only. sendStored picks
// the read up.
func (c *rangeCopy) readAhead(j int64) {
	s, m := c.s, c.m
	if j > c.last || !s.Store.Has(m, j) {
		return
	}
	sr := slicer.SliceRange(j, m.SliceSize, m.Size)
	a, b := int64(0), min(c.rg.End, sr.End)-sr.Start
	r := s.newRead(m, j, a, b)
	if r == nil {
		return
	}
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.data, r.err = s.Store.ReadSliceRange(m, j, a, b-a, *r.bp)
	}()
	c.ahead = r
}

// dropAhead gives back a read ahead the copy did not use.
func (c *rangeCopy) dropAhead() {
	if c.ahead != nil {
		c.s.dropRead(c.ahead)
		c.ahead = nil
	}
}

// newRead returns a read of bytes [a, b) of stored slice i of m into a
// slice-sized buffer, or nil if the read budget has no room for one. The
// budget is an atomic count, not a semaphore: no lock on the hit path.
func (s *Server) newRead(m *segstore.Meta, i, a, b int64) *storedRead {
	need := m.SliceSize
	if s.readMem.Add(need) > readBudget {
		s.readMem.Add(-need)
		return nil
	}
	return &storedRead{m: m, i: i, a: a, b: b, need: need, bp: getBuf(&s.bufs, need)}
}

// sendRead writes r's bytes to the client and lets go of r.
func (s *Server) sendRead(q *request, r *storedRead) (int64, error) {
	if invariants.Enabled {
		checkStoredRead(r.m, r.i, r.a, r.b, r.data)
	}
	err := q.write(s, r.data)
	s.dropRead(r)
	if err != nil {
		return 0, err
	}
	return r.b - r.a, nil
}

// dropRead gives r's buffer and budget back.
func (s *Server) dropRead(r *storedRead) {
	if r.done != nil {
		<-r.done
	}
	if r.data != nil {
		*r.bp = r.data[:0]
	}
	s.bufs.Put(r.bp)
	s.readMem.Add(-r.need)
}

// sendFill sends bytes [a, b) of a slice in flight as they arrive; n is how
// many it sent.
func (s *Server) sendFill(q *request, f *origin.Fill, a, b int64) (int64, error) {
	s.watchFill(q, f)
	bp := getBuf(&s.pieces, pieceSize)
	defer s.pieces.Put(bp)
	buf := (*bp)[:pieceSize]
	var sent int64
	ctx := q.r.Context()
	for a+sent < b {
		want := min(int64(len(buf)), b-a-sent)
		n, err := f.ReadAt(ctx, buf[:want], a+sent)
		// Until the status line is out, a whole piece (or the whole range)
		// is gathered first: an origin that stalls inside its first bytes
		// then gets the client a 504, not a status line and a cut.
		for err == nil && !q.statusSent && int64(n) < want {
			var more int
			more, err = f.ReadAt(ctx, buf[n:want], a+sent+int64(n))
			n += more
		}
		if err != nil && !q.statusSent && !errors.Is(err, io.EOF) {
			return sent, err // nothing sent: the request can still fail cleanly
		}
		if n > 0 {
			if werr := q.write(s, buf[:n]); werr != nil {
				return sent, werr
			}
			sent += int64(n)
			// What the origin sent goes on to the client now, not when a
			// buffer fills: the next bytes may be slow to come.
			_ = http.NewResponseController(q.w).Flush()
		}
		if err != nil {
			if clientGone(ctx) {
				return sent, fmt.Errorf("%w: %w", errClientGone, err)
			}
			if err == io.EOF && a+sent < b {
				err = fmt.Errorf("edge: fill of slice %d ended early: %w", f.Index, origin.ErrTruncated)
			} else if err == io.EOF {
				break
			}
			return sent, err
		}
	}
	return sent, nil
}

// checkStoredRead panics unless a store read of bytes [a, b) of slice i
// of m returned exactly that many bytes, inside the slice: the count sent
// is taken from the range, not from the data, so a short read would shift
// every later byte of the answer.
func checkStoredRead(m *segstore.Meta, i, a, b int64, data []byte) {
	invariants.Check(int64(len(data)) == b-a && 0 <= a && a <= b && b <= m.SliceLen(i),
		"edge: read of bytes [%d, %d) of slice %d (%d bytes) of %q returned %d bytes", a, b, i, m.SliceLen(i), m.Key, len(data))
}

// getBuf returns a buffer from pool with at least n bytes of capacity.
func getBuf(pool *sync.Pool, n int64) *[]byte {
	if bp, ok := pool.Get().(*[]byte); ok {
		if int64(cap(*bp)) >= n {
			*bp = (*bp)[:n]
			return bp
		}
	}
	b := make([]byte, n)
	return &b
}
