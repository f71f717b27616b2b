package cluster

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/sliceedge/sliceedge/edge"
)

// purgeRec is one purge as the POP remembers it.
type purgeRec struct {
	ID    string          `json:"id"` // node, its start time and a sequence: unique across restarts
	Node  string          `json:"node"`
	At    time.Time       `json:"at"`
	Order edge.PurgeOrder `json:"order"`
}

// Journal bounds: a node away for longer, or while more purges were made,
// may keep an object purged meanwhile (docs/deploying.md: wipe its store).
const (
	journalMax = 1024
	journalAge = 24 * time.Hour
)

// journal is the recent purges of the whole POP, made here or learned. It
// is this node's state in memberlist's push-pull, so a node that joins
// (or rejoins after being down) learns every purge it missed.
type journal struct {
	mu    sync.Mutex
	start int64 // unix nanos of this process's first record
	seq   uint64
	recs  []purgeRec // oldest first
	seen  map[string]bool
}

// add records a purge made on this node.
func (j *journal) add(node string, o edge.PurgeOrder, at time.Time) purgeRec {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.start == 0 {
		j.start = at.UnixNano()
	}
	j.seq++
	r := purgeRec{ID: fmt.Sprintf("%s/%d/%d", node, j.start, j.seq), Node: node, At: at.UTC(), Order: o}
	j.keep(r)
	return r
}

// learn records a purge made elsewhere and reports whether it is new here
// (and so is to be applied). One older than the journal keeps is new only
// if it is not yet past the age bound.
func (j *journal) learn(r purgeRec) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if r.ID == "" || j.seen[r.ID] || time.Since(r.At) > journalAge {
		return false
	}
	j.keep(r)
	return true
}

// keep appends r and drops what is past the bounds; j.mu is held.
func (j *journal) keep(r purgeRec) {
	if j.seen == nil {
		j.seen = map[string]bool{}
	}
	j.seen[r.ID] = true
	j.recs = append(j.recs, r)
	cut := 0
	for cut < len(j.recs) && (len(j.recs)-cut > journalMax || time.Since(j.recs[cut].At) > journalAge) {
		delete(j.seen, j.recs[cut].ID)
		cut++
	}
	j.recs = append(j.recs[:0], j.recs[cut:]...)
}

// state is the journal as push-pull sends it.
func (j *journal) state() []byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	b, _ := json.Marshal(j.recs)
	return b
}
