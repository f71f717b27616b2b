package segstore

// Writing slices: as their bytes arrive (SliceWriter), or whole
// (WriteSlice).

import (
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sliceedge/sliceedge/internal/invariants"
)

// SliceWriter writes one slice to the store as its bytes arrive: each
// Write goes to the slice's file at once, and its checksums are computed
// on the way from the bytes written, which are the bytes in memory (the
// origin's, not what the disk keeps). Commit makes the slice visible once
// it is whole; Close abandons it unless it was committed. A SliceWriter is
// used by one goroutine.
//
// The order makes every crash safe: the file is written in tmp (which Open
// empties) and renamed into place just before the entry is committed,
// under the key's lock; an entry whose file is torn or gone fails its
// verification before the slice's first send, and a file without an entry
// is an orphan the scrubber removes. The file is not synced: after a power
// cut, verification catches what the disk lost.
type SliceWriter struct {
	s    *Store
	m    *Meta
	i, n int64 // slice index and length
	k    sliceKey
	seed uint32

	tmp string
	f   vfs.File
	off int64  // bytes written
	crc uint32 // running checksum of the chunk being written
	ent [maxEntryLen]byte

	err       error // the first failure; sticky
	committed bool
	closed    bool
}

// CreateSlice starts writing slice i of m's version. It waits, as
// WriteSlice does, for the store to have room for the slice (up to
// admitWait) or for a write stall to end (up to stallWait), and returns an
// error wrapping ErrWriteFailed if it does not, or ErrStale if the object
// is purged (pending) or replaced.
func (s *Store) CreateSlice(m *Meta, i int64) (*SliceWriter, error) {
	n := m.SliceLen(i)
	if n == 0 {
		return nil, fmt.Errorf("segstore: write slice %d of %q: no such slice (object has %d)", i, m.Key, m.SliceCount())
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	if s.hidden(m.Key) { // purged, the purge pending: stale, whether or not the disk has room
		return nil, fmt.Errorf("segstore: write slice %d of %q version %016x: %w (purged)", i, m.Key, m.Version, ErrStale)
	}
	if err := s.admit(n); err != nil {
		if s.stale(m) { // say so rather than blame the disk: the slice is not wanted anyway
			return nil, fmt.Errorf("segstore: write slice %d of %q version %016x: %w", i, m.Key, m.Version, ErrStale)
		}
		return nil, fmt.Errorf("segstore: write slice %d of %q: %w", i, m.Key, err)
	}
	tmp, f, err := s.files.create()
	if err != nil {
		s.writeErrors.Add(1)
		return nil, fmt.Errorf("segstore: write slice %d of %q: %w: %w", i, m.Key, ErrWriteFailed, err)
	}
	w := &SliceWriter{s: s, m: m, i: i, n: n, k: makeSliceKey(keyHash(m.Key), m.Version, i), tmp: tmp, f: f}
	w.seed = keySeed(w.k[:])
	w.ent[0] = sliceFormat
	return w, nil
}

// Write appends p to the slice. It fails, for good, if the file cannot be
// written (wrapping ErrWriteFailed) or p runs past the slice's end.
func (w *SliceWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.committed || w.closed {
		return 0, fmt.Errorf("segstore: write slice %d of %q: written to after Commit or Close", w.i, w.m.Key)
	}
	if int64(len(p)) > w.n-w.off {
		w.err = fmt.Errorf("segstore: write slice %d of %q: %d bytes at %d, past its %d", w.i, w.m.Key, len(p), w.off, w.n)
		return 0, w.err
	}
	// The checksums first: vfs.File.Write may change p (Pebble's in-memory
	// filesystem does, in its invariants builds), and p is the fill's
	// memory, which readers are reading.
	crc, ent := w.crc, w.ent
	off := w.off
	for q := p; len(q) > 0; {
		j := w.off >> chunkShift
		if w.off&(chunkSize-1) == 0 {
			w.crc = chunkChecksum(w.seed, j, nil)
		}
		take := min(int64(len(q)), (j+1)<<chunkShift-w.off)
		w.crc = crc32.Update(w.crc, castagnoli, q[:take])
		w.off += take
		q = q[take:]
		if w.off&(chunkSize-1) == 0 || w.off == w.n {
			putUint32(w.ent[1+4*j:], w.crc)
		}
	}
	if err := w.write(p); err != nil {
		w.crc, w.ent, w.off = crc, ent, off
		w.s.writeErrors.Add(1)
		w.err = fmt.Errorf("segstore: write slice %d of %q: %w: %w", w.i, w.m.Key, ErrWriteFailed, err)
		return 0, w.err
	}
	return len(p), nil
}

// write writes p to the file: directly to an operating system's file,
// which leaves p alone, or else through a copy.
func (w *SliceWriter) write(p []byte) error {
	if w.s.files.osFS {
		_, err := w.f.Write(p)
		return err
	}
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	for len(p) > 0 {
		n := copy(*bp, p)
		if _, err := w.f.Write((*bp)[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// Commit makes the whole slice visible: it closes the file, renames it
// into place and commits its entry with the object's current meta. It
// returns ErrStale, storing nothing, if the object's meta is gone or names
// another version.
func (w *SliceWriter) Commit() error {
	if w.err != nil {
		return w.err
	}
	if w.committed || w.closed {
		return fmt.Errorf("segstore: write slice %d of %q: committed after Commit or Close", w.i, w.m.Key)
	}
	s, m, i := w.s, w.m, w.i
	if w.off != w.n {
		w.err = fmt.Errorf("segstore: write slice %d of %q: %d bytes, want %d", i, m.Key, w.off, w.n)
		return w.err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	err := w.f.Close()
	w.f = nil
	if err != nil {
		s.writeErrors.Add(1)
		w.err = fmt.Errorf("segstore: write slice %d of %q: %w: %w", i, m.Key, ErrWriteFailed, err)
		return w.err
	}
	v := w.ent[:entryLen(w.n)]
	if invariants.Enabled {
		checkEntry(s, w)
	}
	h := keyHash(m.Key)
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(w.k[:], v, nil)

	mu := s.keyLock(h)
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.loadMetaLocked(m.Key)
	if err != nil {
		return fmt.Errorf("segstore: write slice %d of %q: %w", i, m.Key, err)
	}
	if cur == nil || cur.meta.Version != m.Version || s.hidden(m.Key) {
		return fmt.Errorf("segstore: write slice %d of %q version %016x: %w", i, m.Key, m.Version, ErrStale)
	}
	if cur.meta.Size != m.Size || cur.meta.SliceSize != m.SliceSize {
		return fmt.Errorf("segstore: write slice %d of %q: meta says size %d, slice size %d; the stored meta of version %016x says %d, %d",
			i, m.Key, m.Size, m.SliceSize, m.Version, cur.meta.Size, cur.meta.SliceSize)
	}
	if s.idx.has(m.Key, m.Version, i) {
		// Written meanwhile by another fill: a file once in place is never
		// replaced (a reader may have verified it), and its bytes are
		// these. Close removes this one.
		return nil
	}
	_ = b.Set(metaKey(m.Key), cur.raw, nil)
	err = s.files.install(w.tmp, h, m.Version, i)
	w.tmp = "" // installed, or removed by install
	if err != nil {
		s.writeErrors.Add(1)
		return fmt.Errorf("segstore: write slice %d of %q: %w: %w", i, m.Key, ErrWriteFailed, err)
	}
	if err := s.commit(b); err != nil {
		s.removeFile(h, m.Version, i)
		return fmt.Errorf("segstore: write slice %d of %q: %w", i, m.Key, err)
	}
	w.committed = true
	s.apply(s.idx.add(cur.meta, i, true))
	if invariants.Enabled {
		ss := s.idx.load(m.Key)
		invariants.Check(ss != nil && ss.stored(i) && ss.sliceLen(i) == w.n,
			"segstore: slice %d of %q version %016x (%d bytes) written, not in the index as such", i, m.Key, m.Version, w.n)
		ss.checkMeta(cur.meta)
	}
	if s.ev != nil {
		s.ctl.unflushed.Add(int64(len(w.k) + len(v)))
		if s.used() > s.ev.high {
			signal(s.ev.kick)
		}
	}
	return nil
}

// Close abandons the slice unless it was committed: its file goes. It
// may be called more than once, and after Commit.
func (w *SliceWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
	if w.tmp != "" && !w.committed {
		if err := w.s.files.fs.Remove(w.tmp); err != nil && !errors.Is(err, errNotExist) {
			return fmt.Errorf("segstore: abandon slice %d of %q: %w", w.i, w.m.Key, err)
		}
	}
	return nil
}

// WriteSlice stores slice i of m's version, which must be complete and
// validated (len(data) == m.SliceLen(i)): CreateSlice, Write and Commit in
// one. It returns ErrStale, writing nothing, if the object's meta is gone
// or names another version.
func (s *Store) WriteSlice(m *Meta, i int64, data []byte) error {
	if n := m.SliceLen(i); int64(len(data)) != n || n == 0 {
		return fmt.Errorf("segstore: write slice %d of %q: %d bytes, want %d", i, m.Key, len(data), n)
	}
	w, err := s.CreateSlice(m, i)
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Commit()
}

// checkEntry panics (under -tags invariants) unless the entry w computed
// as its bytes went by is the one putEntry computes from the file it
// wrote.
func checkEntry(s *Store, w *SliceWriter) {
	f, err := s.files.fs.Open(w.tmp)
	invariants.Check(err == nil, "segstore: reopen %s, slice %d of %q just written: %v", w.tmp, w.i, w.m.Key, err)
	defer f.Close()
	data := make([]byte, w.n)
	_, err = f.ReadAt(data, 0)
	invariants.Check(err == nil, "segstore: read back %s, slice %d of %q just written: %v", w.tmp, w.i, w.m.Key, err)
	want := make([]byte, entryLen(w.n))
	putEntry(want, w.k[:], data)
	invariants.Check(string(want) == string(w.ent[:entryLen(w.n)]), "segstore: slice %d of %q: checksums computed as it was written differ from its file's", w.i, w.m.Key)
}
