package segstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
)

// TestSoftPurge marks every object under a prefix stale the way the edge's
// soft purge does: ScanMeta, then PutMeta of a copy with the same Version
// and Lifetime 0. Every slice must stay, and the metas must say Lifetime 0.
func TestSoftPurge(t *testing.T) {
	s, dir := newStore(t)
	var ms []*segstore.Meta
	for i := range 5 {
		m := newMeta(fmt.Sprintf("example.com/soft/%d", i), 3*64*kib+10, 64*kib)
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
		ms = append(ms, m)
	}
	before := s.Stats()
	var n int
	err := s.ScanMeta("example.com/soft/", func(m *segstore.Meta) bool {
		c := *m
		c.Lifetime = 0
		if err := s.PutMeta(&c); err != nil { // no lock is held while fn runs
			t.Error(err)
		}
		n++
		return true
	})
	if err != nil || n != len(ms) {
		t.Fatalf("ScanMeta visited %d metas, err %v; want %d", n, err, len(ms))
	}
	check := func(when string) {
		for _, m := range ms {
			got, err := s.Meta(m.Key)
			if err != nil || got.Lifetime != 0 || got.Version != m.Version || got.ETag != m.ETag {
				t.Errorf("%s: Meta(%q) = %+v, %v; want the same version with Lifetime 0", when, m.Key, got, err)
			}
			if n, _ := storedBits(s, m); n != m.SliceCount() {
				t.Errorf("%s: %q has %d slices stored, want %d", when, m.Key, n, m.SliceCount())
			}
		}
		if got := checkReadable(t, s, ms...); got != 5*4 {
			t.Errorf("%s: %d slices readable, want 20", when, got)
		}
	}
	check("after soft purge")
	if after := s.Stats(); after.Slices != before.Slices || after.Bytes != before.Bytes || after.Objects != before.Objects {
		t.Errorf("Stats after soft purge = %+v, before %+v", after, before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	check("after restart")
}

func TestScanMeta(t *testing.T) {
	s, _ := newStore(t)
	keys := []string{"example.com/o", "example.com/p", "example.com/p/a", "example.com/p/b/1", "example.com/p/c", "example.com/pz", "example.org/p/a"}
	for _, k := range keys {
		m := newMeta(k, kib, kib)
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Meta("example.com/p/c"); err != nil { // one cached, the others read from Pebble
		t.Fatal(err)
	}
	scan := func(prefix string, limit int) []string {
		var got []string
		err := s.ScanMeta(prefix, func(m *segstore.Meta) bool {
			got = append(got, m.Key)
			return len(got) < limit
		})
		if err != nil {
			t.Fatalf("ScanMeta(%q): %v", prefix, err)
		}
		return got
	}
	tests := []struct {
		prefix string
		limit  int
		want   []string
	}{
		{"example.com/p/", 100, []string{"example.com/p/a", "example.com/p/b/1", "example.com/p/c"}},
		{"example.com/p", 100, []string{"example.com/p", "example.com/p/a", "example.com/p/b/1", "example.com/p/c", "example.com/pz"}},
		{"example.com/p/", 2, []string{"example.com/p/a", "example.com/p/b/1"}},
		{"", 100, keys},
		{"example.net/", 100, nil},
	}
	for _, tt := range tests {
		if got := scan(tt.prefix, tt.limit); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ScanMeta(%q), stopping after %d = %q, want %q", tt.prefix, tt.limit, got, tt.want)
		}
	}
	// Metas come back whole.
	s.ScanMeta("example.org/", func(m *segstore.Meta) bool {
		if m.Size != kib || m.ETag != `"abc"` || m.Header["Content-Type"][0] != "video/mp4" {
			t.Errorf("ScanMeta gave %+v", m)
		}
		return true
	})
}

// TestScanMetaManyWithSlowCallback lists more metas than one chunk while
// the callback is slow and purges what it visits: reads and writes of other
// keys go on meanwhile, and every meta is visited once.
func TestScanMetaManyWithSlowCallback(t *testing.T) {
	s, _ := newStore(t)
	const n = 300
	for i := range n {
		if err := s.PutMeta(newMeta(fmt.Sprintf("example.com/many/%04d", i), kib, kib)); err != nil {
			t.Fatal(err)
		}
	}
	other := newMeta("example.com/other", 64*kib, 64*kib)
	if err := s.PutMeta(other); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, other)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	var reads atomic.Int64
	wg.Add(1)
	go func() { // the read path is never held up by the scan
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := s.ReadSlice(other, 0, nil)
			if err != nil || !bytes.Equal(got, payload(other, 0)) {
				t.Errorf("ReadSlice during ScanMeta: %v", err)
				return
			}
			reads.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	seen := map[string]bool{}
	err := s.ScanMeta("example.com/many/", func(m *segstore.Meta) bool {
		if seen[m.Key] {
			t.Errorf("%q visited twice", m.Key)
		}
		seen[m.Key] = true
		if len(seen)%100 == 0 {
			// A slow callback, in the middle of the scan: reads complete
			// while it runs.
			r := reads.Load()
			origintest.WaitFor(t, "a read while ScanMeta's callback runs", func() bool { return reads.Load() >= r+2 })
		}
		if err := s.Purge(m.Key); err != nil {
			t.Error(err)
		}
		return true
	})
	close(stop)
	wg.Wait()
	if err != nil || len(seen) != n {
		t.Fatalf("ScanMeta visited %d of %d, err %v", len(seen), n, err)
	}
	if st := s.Stats(); st.Objects != 1 {
		t.Errorf("Stats = %+v, want only the other object left", st)
	}
	t.Logf("%d reads during the scan", reads.Load())
}

func TestPurgeAll(t *testing.T) {
	s, dir := newStore(t)
	var ms []*segstore.Meta
	for i := range 50 {
		m := newMeta(fmt.Sprintf("example.com/all/%02d", i), 2*64*kib, 64*kib)
		if err := s.PutMeta(m); err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, m)
		ms = append(ms, m)
	}
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	n, err := s.PurgeAll()
	if err != nil || n != 50 {
		t.Fatalf("PurgeAll = %d, %v; want 50", n, err)
	}
	// The slice files are moved aside at once and removed in the
	// background.
	if files := filesIn(t, filepath.Join(dir, "slices")); len(files) != 0 {
		t.Errorf("%d slice files left under slices/ after PurgeAll", len(files))
	}
	origintest.WaitFor(t, "the purged slice files to be removed", func() bool { return len(filesIn(t, filepath.Join(dir, "tmp"))) == 0 })
	if st := s.Stats(); st.Objects != 0 || st.Slices != 0 || st.Bytes != 0 {
		t.Errorf("Stats after PurgeAll = %+v", st)
	}
	for _, p := range []string{"m", "s"} {
		if keys := keysWithPrefix(t, s, []byte(p)); len(keys) != 0 {
			t.Errorf("%d %q keys left after PurgeAll", len(keys), p)
		}
	}
	for _, m := range ms[:3] {
		if _, err := s.Meta(m.Key); !errors.Is(err, segstore.ErrNotFound) {
			t.Errorf("Meta(%q) after PurgeAll: %v", m.Key, err)
		}
		if s.Has(m, 0) {
			t.Errorf("Has(%q, 0) after PurgeAll", m.Key)
		}
		if err := s.WriteSlice(m, 0, payload(m, 0)); !errors.Is(err, segstore.ErrStale) {
			t.Errorf("WriteSlice of a purged object: %v, want ErrStale", err)
		}
	}
	// The store works on, and the purge survives a restart.
	m := newMeta("example.com/all/new", 64*kib, 64*kib)
	if err := s.PutMeta(m); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, m)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	if st := s.Stats(); st.Objects != 1 || st.Slices != 1 {
		t.Errorf("Stats after restart = %+v, want only the new object", st)
	}
	if n := checkReadable(t, s, append(ms, m)...); n != 1 {
		t.Errorf("%d slices readable after restart, want 1", n)
	}
	checkFiles(t, s, dir, append(ms, m)...)
}
