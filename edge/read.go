package edge

// Reading a slice's bytes for the client: from the store, or from a fill
// in flight as its bytes arrive.
//
// A stored slice is a file, which the store verified against its
// checksums the first time this process sent it (segstore.OpenSlice). Its
// bytes go to the client with sendfile(2): http.ResponseWriter's ReadFrom
// hands an *io.LimitedReader over an *os.File to the TCP connection, which
// sends from the page cache with no copy through this process (an
// io.SectionReader, or a writer wrapped by something without ReadFrom,
// would lose that: golang/go#61727). Memory does not grow with the clients
// reading stored slices; the page cache is the memory tier. Over TLS, or
// to a writer without ReadFrom, the same call copies through a 32 KiB
// buffer.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/sliceedge/sliceedge/origin"
)

const pieceSize = 64 << 10 // buffer of a send from a fill in flight

// sendStored sends bytes [a, b) of stored slice i; n is how many it sent.
// A failed write wraps errClientGone; a failed open is the store's error
// (and n tells where to go on from).
func (c *rangeCopy) sendStored(i, a, b int64) (n int64, err error) {
	f, err := c.s.Store.OpenSlice(c.m, i)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return c.q.sendFile(c.s, f, a, b-a)
}

// sendFile sends n bytes of f from offset off. A failed write wraps
// errClientGone; a file that ends before them (changed under the store's
// feet after its verification) is ErrShortFile.
func (q *request) sendFile(s *Server, f *os.File, off, n int64) (int64, error) {
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return 0, fmt.Errorf("edge: seek slice file %s to %d: %w", f.Name(), off, err)
		}
	}
	if !q.statusSent {
		q.w.WriteHeader(q.status)
		q.statusSent = true
		q.markFirstByte(s.now())
	}
	src := &io.LimitedReader{R: f, N: n}
	var sent int64
	var err error
	if rf, ok := q.w.(io.ReaderFrom); ok {
		sent, err = rf.ReadFrom(src)
	} else {
		sent, err = io.Copy(q.w, src)
	}
	q.sent += sent
	if err != nil {
		return sent, fmt.Errorf("%w: %w", errClientGone, err)
	}
	if sent < n {
		return sent, fmt.Errorf("edge: slice file %s: %d bytes sent from %d, want %d: %w", f.Name(), sent, off, n, errShortFile)
	}
	return sent, nil
}

// errShortFile: a stored slice's file held fewer bytes than the store
// verified it had.
var errShortFile = errors.New("slice file shorter than verified")

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
