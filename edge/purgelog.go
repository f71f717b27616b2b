package edge

import (
	"sort"
	"strings"
	"sync"
)

// purgeLog remembers recent purges and invalidations, so that an origin
// answer that was on its way while its key was purged does not store its
// meta: that would bring back what the operator (or an unsafe request)
// removed. Answers for other keys store as usual.
//
// A fetch takes an epoch before it asks the origin and stores through
// storeUnlessPurged; a purge is recorded before the store deletes
// anything. The read lock held across the check and the store orders the
// two: a meta stored before the record is deleted by the purge, and one
// stored after it is not stored at all.
type purgeLog struct {
	mu     sync.RWMutex
	seq    uint64
	recs   []purgeRec // seq ascending
	pruned uint64     // seq of the newest record dropped to bound the log
}

type purgeRec struct {
	seq    uint64
	key    string // the key, or a key prefix; "" with prefix set is everything
	prefix bool
}

// maxPurgeRecs bounds the log. A fetch that began before the oldest record
// kept is treated as overtaken by a purge: it serves its answer but does
// not store it, which costs a refetch, never a resurrected object.
const maxPurgeRecs = 8192

// epoch returns the point in the log a fetch starts from.
func (l *purgeLog) epoch() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.seq
}

// add records a purge of key, or of every key starting with it when prefix
// is set ("" and prefix: all keys). Call it before deleting.
func (l *purgeLog) add(key string, prefix bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.recs = append(l.recs, purgeRec{seq: l.seq, key: key, prefix: prefix})
	if n := len(l.recs) - maxPurgeRecs; n > 0 {
		l.pruned = l.recs[n-1].seq
		l.recs = append(l.recs[:0], l.recs[n:]...)
	}
}

// storeUnlessPurged runs put unless key was purged after epoch, and says
// whether it ran and succeeded.
func (l *purgeLog) storeUnlessPurged(key string, epoch uint64, put func() error) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.purgedSince(key, epoch) {
		return false
	}
	return put() == nil
}

func (l *purgeLog) purgedSince(key string, epoch uint64) bool {
	if epoch < l.pruned {
		return true
	}
	i := sort.Search(len(l.recs), func(i int) bool { return l.recs[i].seq > epoch })
	for _, r := range l.recs[i:] {
		if r.key == key || (r.prefix && strings.HasPrefix(key, r.key)) {
			return true
		}
	}
	return false
}
