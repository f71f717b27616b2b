package edge

import "testing"

func TestPurgeLog(t *testing.T) {
	var l purgeLog
	stores := func(key string, epoch uint64) bool {
		return l.storeUnlessPurged(key, epoch, func() error { return nil })
	}
	e0 := l.epoch()
	l.add("h/a/1", false)
	e1 := l.epoch()
	l.add("h/b/", true)
	for _, c := range []struct {
		key   string
		epoch uint64
		want  bool
	}{
		{"h/a/1", e0, false}, // purged after the fetch began
		{"h/a/10", e0, true}, // an exact purge is not a prefix
		{"h/a/1", e1, true},  // purged before the fetch began
		{"h/b/x", e1, false}, // under a purged prefix
		{"h/c", e0, true},
	} {
		if got := stores(c.key, c.epoch); got != c.want {
			t.Errorf("store %q from epoch %d: %v, want %v", c.key, c.epoch, got, c.want)
		}
	}
	e2 := l.epoch()
	l.add("", true) // everything
	if stores("h/c", e2) {
		t.Errorf("stored across a purge of everything")
	}
	// A fetch older than the records kept is treated as purged.
	e3 := l.epoch()
	for i := 0; i < maxPurgeRecs+1; i++ {
		l.add("h/z", false)
	}
	if len(l.recs) != maxPurgeRecs {
		t.Errorf("log holds %d records, want %d", len(l.recs), maxPurgeRecs)
	}
	if stores("h/c", e3) {
		t.Errorf("stored from an epoch older than the log")
	}
	if !stores("h/c", l.epoch()) {
		t.Errorf("a fetch begun after every purge did not store")
	}
}
