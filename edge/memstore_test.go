package edge_test

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/segstore"
)

// memStore is an edge.Store in a map, with segstore's contract but none of
// its machinery (no disk, no checksums, no eviction): the golden tests'
// store, where only what the edge asks of a store matters. segstore's own
// tests hold the real one to the contract.
type memStore struct {
	mu     sync.Mutex // protects metas and slices
	metas  map[string]*segstore.Meta
	slices map[memSliceKey][]byte
}

// memSliceKey names a slice as segstore's keys do: object, version, index.
type memSliceKey struct {
	key     string
	version uint64
	index   int64
}

var _ edge.Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{metas: map[string]*segstore.Meta{}, slices: map[memSliceKey][]byte{}}
}

// cloneMeta copies m so that neither the caller nor the store can change
// the other's.
func cloneMeta(m *segstore.Meta) *segstore.Meta {
	c := *m
	if m.Header != nil {
		c.Header = make(map[string][]string, len(m.Header))
		for k, vv := range m.Header {
			c.Header[k] = slices.Clone(vv)
		}
	}
	return &c
}

// Meta returns the meta of key, shared (the caller must not modify it), or
// an error wrapping segstore.ErrNotFound.
func (s *memStore) Meta(key string) (*segstore.Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.metas[key]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("memstore: meta %q: %w", key, segstore.ErrNotFound)
}

// PutMeta stores a copy of m. A new Version drops the previous version's
// slices; the same Version with another Size or SliceSize is refused.
func (s *memStore) PutMeta(m *segstore.Meta) error {
	if m.Key == "" || m.Version == 0 || m.Size < 0 || m.SliceSize <= 0 || m.SliceSize > segstore.MaxSliceSize {
		return fmt.Errorf("memstore: put meta %q: invalid meta (version %d, size %d, slice size %d)", m.Key, m.Version, m.Size, m.SliceSize)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.metas[m.Key]
	if prev != nil && prev.Version == m.Version && (prev.Size != m.Size || prev.SliceSize != m.SliceSize) {
		return fmt.Errorf("memstore: put meta %q: version %016x changed size or slice size", m.Key, m.Version)
	}
	if prev != nil && prev.Version != m.Version {
		s.dropLocked(m.Key)
	}
	s.metas[m.Key] = cloneMeta(m)
	return nil
}

// dropLocked deletes every slice of key, of every version.
func (s *memStore) dropLocked(key string) {
	maps.DeleteFunc(s.slices, func(k memSliceKey, _ []byte) bool { return k.key == key })
}

// Has reports whether slice i of m's version is stored.
func (s *memStore) Has(m *segstore.Meta, i int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.slices[memSliceKey{m.Key, m.Version, i}]
	return ok
}

// CountStored counts the stored slices first..last of m's version.
func (s *memStore) CountStored(m *segstore.Meta, first, last int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for k := range s.slices {
		if k.key == m.Key && k.version == m.Version && k.index >= first && k.index <= last {
			n++
		}
	}
	return n
}

// OpenSlice returns slice i of m's version as a file of its own, as
// segstore's is: an unlinked temporary file holding a copy of its bytes,
// positioned at its start. segstore.ErrNotFound when it is not stored.
func (s *memStore) OpenSlice(m *segstore.Meta, i int64) (*os.File, error) {
	s.mu.Lock()
	data, ok := s.slices[memSliceKey{m.Key, m.Version, i}]
	s.mu.Unlock()
	if !ok || m.SliceLen(i) == 0 {
		return nil, fmt.Errorf("memstore: open slice %d of %q: %w", i, m.Key, segstore.ErrNotFound)
	}
	f, err := os.CreateTemp("", "memstore-slice-*")
	if err != nil {
		return nil, fmt.Errorf("memstore: open slice %d of %q: %w", i, m.Key, err)
	}
	_ = os.Remove(f.Name()) // gone with the last descriptor
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("memstore: open slice %d of %q: %w", i, m.Key, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("memstore: open slice %d of %q: %w", i, m.Key, err)
	}
	return f, nil
}

// WriteSlice stores a copy of slice i of m's version, which must be whole;
// segstore.ErrStale when the object's meta is gone or names another
// version.
func (s *memStore) WriteSlice(m *segstore.Meta, i int64, data []byte) error {
	n := m.SliceLen(i)
	if n == 0 || int64(len(data)) != n {
		return fmt.Errorf("memstore: write slice %d of %q: %d bytes, want %d", i, m.Key, len(data), n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.metas[m.Key]
	if cur == nil || cur.Version != m.Version {
		return fmt.Errorf("memstore: write slice %d of %q version %016x: %w", i, m.Key, m.Version, segstore.ErrStale)
	}
	if cur.Size != m.Size || cur.SliceSize != m.SliceSize {
		return errors.New("memstore: write slice: the meta's size differs from the stored one of its version")
	}
	s.slices[memSliceKey{m.Key, m.Version, i}] = slices.Clone(data)
	return nil
}

// Purge deletes key's meta and all its slices; an unknown key is no error.
func (s *memStore) Purge(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.metas, key)
	s.dropLocked(key)
	return nil
}

// stored describes what the store holds of key, for the golden output:
// the meta's validator and size and the stored slices' indices.
func (s *memStore) stored(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.metas[key]
	if m == nil {
		return "nothing"
	}
	var idx []int64
	for k := range s.slices {
		if k.key == key && k.version == m.Version {
			idx = append(idx, k.index)
		}
	}
	slices.Sort(idx)
	val := "etag " + m.ETag
	if m.ETag == "" {
		val = "last-modified " + m.LastModified
	}
	return fmt.Sprintf("%s, %d bytes, slices %v of %d", val, m.Size, idx, m.SliceCount())
}

// The golden tests' store keeps segstore's contract where the edge relies
// on it: unknown metas are ErrNotFound, a slice of a replaced or purged
// version is refused with ErrStale, and a new version drops the old one's
// slices.
func TestMemStoreContract(t *testing.T) {
	s := newMemStore()
	if _, err := s.Meta("k"); !errors.Is(err, segstore.ErrNotFound) {
		t.Fatalf("Meta of an unknown key: %v, want ErrNotFound", err)
	}
	v1 := &segstore.Meta{Key: "k", Size: 10, SliceSize: 4, Version: 1}
	if err := s.PutMeta(v1); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSlice(v1, 2, []byte("ab")); err != nil {
		t.Fatalf("write the short last slice: %v", err)
	}
	if err := s.WriteSlice(v1, 0, []byte("abc")); err == nil {
		t.Fatal("a slice of the wrong length was written")
	}
	f, err := s.OpenSlice(v1, 2)
	if err != nil {
		t.Fatalf("OpenSlice: %v", err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(got) != "ab" {
		t.Fatalf("OpenSlice's file holds %q, %v; want the slice, \"ab\"", got, err)
	}
	if _, err := s.OpenSlice(v1, 0); !errors.Is(err, segstore.ErrNotFound) {
		t.Fatalf("open of a slice not stored: %v, want ErrNotFound", err)
	}
	if bad := (&segstore.Meta{Key: "k", Size: 20, SliceSize: 4, Version: 1}); s.PutMeta(bad) == nil {
		t.Fatal("the same version with another size was stored")
	}
	v2 := &segstore.Meta{Key: "k", Size: 10, SliceSize: 4, Version: 2}
	if err := s.PutMeta(v2); err != nil {
		t.Fatal(err)
	}
	if s.Has(v1, 2) || s.CountStored(v1, 0, 2) != 0 {
		t.Fatal("a new version kept the old one's slices")
	}
	if err := s.WriteSlice(v1, 0, []byte("abcd")); !errors.Is(err, segstore.ErrStale) {
		t.Fatalf("write for a replaced version: %v, want ErrStale", err)
	}
	if err := s.WriteSlice(v2, 0, []byte("abcd")); err != nil || !s.Has(v2, 0) || s.CountStored(v2, 0, 2) != 1 {
		t.Fatalf("write for the current version: %v", err)
	}
	if err := s.Purge("k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Meta("k"); !errors.Is(err, segstore.ErrNotFound) || s.Has(v2, 0) {
		t.Fatalf("after Purge: meta %v, slice 0 stored %v", err, s.Has(v2, 0))
	}
	if err := s.WriteSlice(v2, 1, []byte("abcd")); !errors.Is(err, segstore.ErrStale) {
		t.Fatalf("write after Purge: %v, want ErrStale", err)
	}
	if err := s.Purge("unknown"); err != nil {
		t.Fatalf("Purge of an unknown key: %v", err)
	}
}
