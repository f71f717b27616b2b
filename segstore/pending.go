package segstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Purges that hold while the store cannot write.
//
// A purge is an operator's promise that an object is never served again,
// and it must hold even when the disk is full: then the deletion cannot be
// committed (or flushed), and the object would stay served. So a purge that
// the store cannot write takes effect in memory at once, and is kept as
// pending until a background goroutine has written and flushed the
// deletion. Meanwhile every key it covers is hidden: Meta says ErrNotFound,
// reads find nothing, WriteSlice is stale, ScanMeta skips it, and the
// counters in Stats dropped it when the purge was made.
//
// A key written by PutMeta after the purge is visible again: PutMeta marks
// it as rewritten in every pending purge covering it, and deletes what the
// purge left on disk for that key (its old meta is overwritten, its slices
// of any version are deleted in the same batch). The retry leaves
// rewritten keys alone, so it never deletes what was written after the
// purge. The marks are kept per purge, not as a sequence number in each
// cached meta, because the meta cache is bounded and drops entries: a mark
// must survive its meta being dropped and read back from Pebble.
//
// A purge is pending until the retry's flush returns: a restart before
// that brings the objects back, which ErrPurgePending says.

// ErrPurgePending: a purge (Purge, PurgePrefix, PurgeAll) could not be
// written to disk because the store cannot write now (the error also wraps
// ErrWriteFailed, which says why). It holds in memory: the objects are no
// longer served, and the count returned is the number of objects purged.
var ErrPurgePending = errors.New("purged in memory; the store cannot write now, so the deletion on disk is retried in the background (a restart before it lands would bring the objects back)")

// pendingRetry is how often pending purges are retried while the store
// reports it can write (they are also retried whenever write health
// changes, e.g. when a failed flush succeeds).
const pendingRetry = 5 * time.Second

// pendingPurge is one purge that holds in memory but is not on disk yet.
type pendingPurge struct {
	key    string // the key, or the prefix
	prefix bool   // key is a prefix ("" is everything)
	// rewritten holds the keys it covers that PutMeta wrote since
	// (string → struct{}): visible again, and left alone by the retry.
	rewritten sync.Map
	ndirty    atomic.Int64 // entries in rewritten
}

func (p *pendingPurge) String() string {
	if p.prefix {
		if p.key == "" {
			return "of everything"
		}
		return fmt.Sprintf("of prefix %q", p.key)
	}
	return fmt.Sprintf("of %q", p.key)
}

func (p *pendingPurge) covers(key string) bool {
	if p.prefix {
		return strings.HasPrefix(key, p.key)
	}
	return key == p.key
}

// hides reports whether p hides key.
func (p *pendingPurge) hides(key string) bool {
	if !p.covers(key) {
		return false
	}
	_, rewritten := p.rewritten.Load(key)
	return !rewritten
}

// pendingPurges are a store's pending purges. Exact ones are in a map, so
// that a thousand purges made while the disk is full cost a lookup, not a
// thousand comparisons, on every read; prefix ones in a short list.
type pendingPurges struct {
	// mu serialises changes to keys and prefixes (and n); lookups take no
	// lock. Hiding a key and publishing its purge happen under the key's
	// stripe lock as well (all of them for a prefix), so writers of the
	// key see either both or neither.
	mu       sync.Mutex
	n        atomic.Int64                    // pending purges; 0 is the fast path of every read
	keys     sync.Map                        // exact key → *pendingPurge
	prefixes atomic.Pointer[[]*pendingPurge] // never modified once stored

	// unflushed counts purges that were committed (they hold in Pebble's
	// memtable) but whose flush failed: they too are retried.
	unflushed atomic.Int64

	kick chan struct{} // buffered; a purge became pending
	done sync.WaitGroup
	held atomic.Bool // tests: the retry goroutine does not land purges
}

// hidden reports whether a pending purge hides key. One atomic load when
// none is pending.
func (s *Store) hidden(key string) bool {
	pp := &s.pend
	if pp.n.Load() == 0 {
		return false
	}
	if v, ok := pp.keys.Load(key); ok && v.(*pendingPurge).hides(key) {
		return true
	}
	if l := pp.prefixes.Load(); l != nil {
		for _, p := range *l {
			if p.hides(key) {
				return true
			}
		}
	}
	return false
}

// markRewritten records that PutMeta wrote key while pending purges hid it.
// The caller holds key's stripe lock.
func (s *Store) markRewritten(key string) {
	pp := &s.pend
	mark := func(p *pendingPurge) {
		if p.covers(key) {
			if _, had := p.rewritten.LoadOrStore(key, struct{}{}); !had {
				p.ndirty.Add(1)
			}
		}
	}
	if v, ok := pp.keys.Load(key); ok {
		mark(v.(*pendingPurge))
	}
	if l := pp.prefixes.Load(); l != nil {
		for _, p := range *l {
			mark(p)
		}
	}
}

// publish adds p to the pending purges; a purge of everything replaces
// them all (it hides every key they hide). The caller holds the stripe
// locks of every key p covers.
func (s *Store) publish(p *pendingPurge) {
	pp := &s.pend
	pp.mu.Lock()
	switch {
	case p.prefix && p.key == "":
		pp.keys.Clear()
		pp.prefixes.Store(&[]*pendingPurge{p})
	case p.prefix:
		var l []*pendingPurge
		if old := pp.prefixes.Load(); old != nil {
			l = append(l, *old...)
		}
		l = append(l, p)
		pp.prefixes.Store(&l)
	default:
		pp.keys.Store(p.key, p) // replaces one whose key was rewritten since
	}
	pp.n.Store(pp.count())
	pp.mu.Unlock()
	signal(pp.kick)
}

// forget drops the purges in landed, if still pending. Hides nothing new:
// their keys are deleted on disk.
func (s *Store) forget(landed []*pendingPurge) {
	pp := &s.pend
	pp.mu.Lock()
	defer pp.mu.Unlock()
	var keep []*pendingPurge
	if old := pp.prefixes.Load(); old != nil {
	next:
		for _, p := range *old {
			for _, q := range landed {
				if p == q {
					continue next
				}
			}
			keep = append(keep, p)
		}
	}
	if keep == nil {
		pp.prefixes.Store(nil)
	} else {
		pp.prefixes.Store(&keep)
	}
	for _, p := range landed {
		if !p.prefix {
			pp.keys.CompareAndDelete(p.key, p)
		}
	}
	pp.n.Store(pp.count())
}

// count returns the number of pending purges. The caller holds mu.
func (pp *pendingPurges) count() int64 {
	var n int64
	pp.keys.Range(func(any, any) bool { n++; return true })
	if l := pp.prefixes.Load(); l != nil {
		n += int64(len(*l))
	}
	return n
}

// snapshot returns the pending purges now.
func (pp *pendingPurges) snapshot() []*pendingPurge {
	var out []*pendingPurge
	if l := pp.prefixes.Load(); l != nil {
		out = append(out, *l...)
	}
	pp.keys.Range(func(_, v any) bool {
		out = append(out, v.(*pendingPurge))
		return true
	})
	return out
}

// hideKey purges key in memory only, because cause (wrapping
// ErrWriteFailed) kept the store from writing its deletion. It returns
// whether key was stored, and an error wrapping ErrPurgePending and cause
// unless nothing was hidden. The caller holds key's stripe lock.
func (s *Store) hideKey(key string, cause error) (bool, error) {
	if s.hidden(key) { // purged before, still pending
		return false, fmt.Errorf("%w: %w", ErrPurgePending, cause)
	}
	exists, err := s.metaOnDisk(key)
	if err != nil || !exists {
		return false, err
	}
	s.dropLocked(key)
	s.publish(&pendingPurge{key: key})
	s.logf("segstore: purge of %q holds in memory only, the store cannot write now: %v; the deletion on disk is retried in the background (a restart before it lands would bring the object back)", key, cause)
	return true, fmt.Errorf("%w: %w", ErrPurgePending, cause)
}

// hidePrefix purges every key with prefix in memory only (see hideKey) and
// returns how many were stored and not hidden yet. All is hidePrefix("")
// done at once: the counters and index are reset rather than walked.
func (s *Store) hidePrefix(prefix string, cause error) (int, error) {
	s.lockAll()
	defer s.unlockAll()
	var n int
	if prefix == "" {
		s.metaMu.Lock()
		clear(s.metas)
		s.metaMu.Unlock()
		s.idx.clear()
		s.slices.Store(0)
		s.bytes.Store(0)
		n = int(s.objects.Swap(0))
	} else {
		lower, upper := metaKey(prefix), successor(metaKey(prefix))
		for {
			keys, more, err := s.metaKeys(lower, upper, 1024)
			if err != nil {
				return n, fmt.Errorf("list the keys to hide: %w (and %w)", err, cause)
			}
			for _, key := range keys {
				if !s.hidden(key) {
					s.dropLocked(key)
					n++
				}
			}
			if !more {
				break
			}
			lower = append(metaKey(keys[len(keys)-1]), 0)
		}
	}
	p := &pendingPurge{key: prefix, prefix: true}
	s.publish(p)
	s.logf("segstore: purge %s (%d objects) holds in memory only, the store cannot write now: %v; the deletion on disk is retried in the background (a restart before it lands would bring the objects back)", p, n, cause)
	return n, fmt.Errorf("%w: %w", ErrPurgePending, cause)
}

// dropLocked forgets a stored key in memory: its cached meta, its slices in
// the index and the counters. The caller holds key's stripe lock.
func (s *Store) dropLocked(key string) {
	s.uncacheMeta(key)
	s.apply(s.idx.drop(key))
	s.objects.Add(-1)
}

// metaOnDisk reports whether Pebble holds a meta for key.
func (s *Store) metaOnDisk(key string) (bool, error) {
	_, closer, err := s.db.Get(metaKey(key))
	switch {
	case err == nil:
		return true, closer.Close()
	case errors.Is(err, pebble.ErrNotFound):
		return false, nil
	}
	return false, err
}

func (s *Store) lockAll() {
	for i := range s.keyMu {
		s.keyMu[i].Lock()
	}
}

func (s *Store) unlockAll() {
	for i := range s.keyMu {
		s.keyMu[i].Unlock()
	}
}

// startRetry starts the goroutine that lands pending purges; Close stops
// it (by cancelling ctx).
func (s *Store) startRetry(ctx context.Context) {
	pp := &s.pend
	pp.done.Add(1)
	go func() {
		defer pp.done.Done()
		for {
			if pp.n.Load() == 0 && pp.unflushed.Load() == 0 {
				select {
				case <-ctx.Done():
					return
				case <-pp.kick:
				}
				continue
			}
			changed := s.ctl.changes()
			if s.ctl.writeErr() == nil && !pp.held.Load() {
				err := s.landPending(ctx)
				if err == nil {
					continue
				}
				if ctx.Err() == nil {
					s.logf("segstore: pending purges not on disk yet, retrying in %v: %v", pendingRetry, err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-pp.kick:
			case <-time.After(pendingRetry):
			}
		}
	}()
}

// landPending writes the deletions of the pending purges, flushes, and
// forgets those purges. It returns why not, if it could not.
func (s *Store) landPending(ctx context.Context) error {
	pp := &s.pend
	todo := pp.snapshot()
	unflushed := pp.unflushed.Load()
	for _, p := range todo {
		if err := s.land(p); err != nil {
			return fmt.Errorf("purge %s: %w", p, err)
		}
	}
	if err := s.flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	pp.unflushed.Add(-unflushed)
	s.forget(todo)
	for _, p := range todo {
		s.logf("segstore: pending purge %s is on disk now", p)
	}
	if unflushed > 0 {
		s.logf("segstore: %d purges whose flush had failed are on disk now", unflushed)
	}
	return nil
}

// land writes the deletion of what p hides: every key it covers, except
// those rewritten since, with all their slices.
func (s *Store) land(p *pendingPurge) error {
	if !p.prefix {
		mu := s.keyLock(keyHash(p.key))
		mu.Lock()
		defer mu.Unlock()
		if !p.hides(p.key) {
			return nil // rewritten: PutMeta deleted what the purge left
		}
		return s.deleteKeyLocked(p.key)
	}
	if p.key == "" && s.landAllFast(p) {
		return nil
	}
	lower, upper := metaKey(p.key), successor(metaKey(p.key))
	for {
		keys, more, err := s.metaKeys(lower, upper, 1024)
		if err != nil {
			return err
		}
		for _, key := range keys {
			mu := s.keyLock(keyHash(key))
			mu.Lock()
			if p.hides(key) {
				err = s.deleteKeyLocked(key)
			}
			mu.Unlock()
			if err != nil {
				return fmt.Errorf("key %q: %w", key, err)
			}
		}
		if !more {
			return nil
		}
		lower = append(metaKey(keys[len(keys)-1]), 0)
	}
}

// landAllFast lands a purge of everything with two range deletions if no
// key was written since it was made, and reports whether it did.
func (s *Store) landAllFast(p *pendingPurge) bool {
	s.lockAll()
	defer s.unlockAll()
	if p.ndirty.Load() > 0 {
		return false
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange([]byte{metaPrefix}, []byte{metaPrefix + 1}, nil)
	_ = b.DeleteRange([]byte{slicePrefix}, []byte{slicePrefix + 1}, nil)
	if err := s.commit(b); err != nil {
		return false // the slow way says why
	}
	s.removeAllFiles()
	return true
}

// deleteKeyLocked deletes key's meta and every slice of its hash on disk,
// without touching memory (the key is hidden, its memory already dropped).
// The caller holds key's stripe lock.
func (s *Store) deleteKeyLocked(key string) error {
	exists, err := s.metaOnDisk(key)
	if err != nil || !exists {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(metaKey(key), nil)
	h := keyHash(key)
	start, end := hashSpan(h)
	_ = b.DeleteRange(start, end, nil)
	if err := s.commit(b); err != nil {
		return err
	}
	s.removeObjectFiles(key, h)
	return nil
}
