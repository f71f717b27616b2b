package segstore

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sliceedge/sliceedge/slicer"
)

// MaxSliceSize is the largest slice size the store accepts.
const MaxSliceSize = 64 << 20

// Meta is what the store knows about one object. A *Meta returned by the
// store is shared and must not be modified; to change an object, build a new
// Meta and PutMeta it.
type Meta struct {
	Key       string // normalised cache key, e.g. "example.com/video/a.mp4?x=1"
	Size      int64  // complete length in bytes
	SliceSize int64  // fixed at first fill; never changed for this Version
	// Version is random and non-zero (NewVersion), minted whenever the
	// validator changes. It is part of every slice key.
	Version      uint64
	ETag         string              // strong ETag as received, or ""
	LastModified string              // as received
	Header       map[string][]string // response headers to replay (Content-Type, Cache-Control, ...)
	StoredAt     time.Time           // when the meta was last validated with the origin
	Lifetime     time.Duration       // freshness lifetime from StoredAt
	NoRange      bool                // the origin ignored Range for this object (fills fetch whole bodies)
	// Consistency says how an origin answer is proved to be of this
	// version; "" for a meta stored before it was recorded (Class
	// derives it).
	Consistency Class
	// Status is the status of the stored answer when it is not 200 (a
	// 404, a redirect): its body is the object, and Range does not apply
	// to it. 0 means 200.
	Status int
	// Vary, when not empty, makes this meta a marker rather than an
	// object: the answers for its key vary on these request fields
	// (canonical names, sorted), and each variant is an object of its
	// own under a key derived from the request's values of them.
	Vary []string
}

// Class is how answers of separate origin requests for one object are
// proved to be of the same version, so that a body never mixes versions.
type Class string

const (
	// ByETag: a strong ETag, sent in If-Match on every fill and compared
	// byte for byte with every answer's.
	ByETag Class = "strong-etag"
	// ByLastModified: no strong ETag but a Last-Modified, sent in
	// If-Unmodified-Since on every fill; every answer's Last-Modified must
	// equal the stored one, and its complete length the stored size.
	ByLastModified Class = "last-modified"
	// Unproven: neither. No later answer can be proved to be this
	// version, so its slices come only from the answer that created it; a
	// slice missing later makes the object be fetched again as a new
	// version.
	Unproven Class = "none"
)

// Class returns m's consistency class: the one recorded, or for a meta
// stored before classes were, the one its validator implies.
func (m *Meta) Class() Class {
	switch {
	case m.Consistency != "":
		return m.Consistency
	case m.ETag != "":
		return ByETag
	case m.LastModified != "":
		return ByLastModified
	}
	return Unproven
}

// NewVersion returns a random, non-zero version id from crypto/rand.
func NewVersion() uint64 {
	var b [8]byte
	for {
		// crypto/rand.Read never fails (Go 1.24+: it crashes the program
		// rather than return an error).
		_, _ = rand.Read(b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// SliceCount returns the number of slices of m; the last may be short.
func (m *Meta) SliceCount() int64 { return slicer.SliceCount(m.Size, m.SliceSize) }

// SliceLen returns the length of slice i of m, or 0 if there is no such slice.
func (m *Meta) SliceLen(i int64) int64 {
	if i < 0 || i >= m.SliceCount() {
		return 0
	}
	return slicer.SliceRange(i, m.SliceSize, m.Size).Len()
}

// check reports why m cannot be stored, if it cannot.
func (m *Meta) check() error {
	switch {
	case m.Key == "":
		return errors.New("empty key")
	case m.Version == 0:
		return errors.New("version 0 (use NewVersion)")
	case m.Size < 0:
		return fmt.Errorf("negative size %d", m.Size)
	case m.SliceSize <= 0 || m.SliceSize > MaxSliceSize:
		return fmt.Errorf("slice size %d out of range (1 to %d)", m.SliceSize, MaxSliceSize)
	}
	return nil
}

// clone returns a copy of m that shares nothing mutable with it.
func (m *Meta) clone() *Meta {
	c := *m
	if m.Header != nil {
		c.Header = make(map[string][]string, len(m.Header))
		for k, v := range m.Header {
			c.Header[k] = append([]string(nil), v...)
		}
	}
	c.Vary = append([]string(nil), m.Vary...)
	return &c
}
