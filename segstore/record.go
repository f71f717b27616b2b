package segstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Key prefixes. Everything the store writes starts with one of them; the
// ranges [m, n) and [s, t) are scanned separately.
const (
	metaPrefix   = 'm'
	slicePrefix  = 's'
	formatKey    = "!format" // sorts before both ranges
	formatValue  = "segstore/1"
	sliceKeyLen  = 1 + 8 + 8 + 8
	sliceHdrLen  = 1 + 4 // format, CRC-32C
	sliceFormat  = 1
	metaHdrLen   = 1 + 4 + 8 + 8 + 8 // format, CRC-32C, version, size, slice size
	metaFormat   = 1
	hashPrefixed = 1 + 8 // "s" + hash: the span of every version of one key
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// keyHash is the first 8 bytes of SHA-256(key): a fixed-size, stable
// stand-in for the cache key in slice keys.
func keyHash(key string) uint64 {
	sum := sha256.Sum256([]byte(key))
	return binary.BigEndian.Uint64(sum[:8])
}

func metaKey(key string) []byte {
	b := make([]byte, 1+len(key))
	b[0] = metaPrefix
	copy(b[1:], key)
	return b
}

type sliceKey [sliceKeyLen]byte

func makeSliceKey(h, version uint64, i int64) sliceKey {
	var k sliceKey
	k[0] = slicePrefix
	binary.BigEndian.PutUint64(k[1:], h)
	binary.BigEndian.PutUint64(k[9:], version)
	binary.BigEndian.PutUint64(k[17:], uint64(i))
	return k
}

// parseSliceKey splits a slice key; ok is false if k is not one.
func parseSliceKey(k []byte) (h, version uint64, i int64, ok bool) {
	if len(k) != sliceKeyLen || k[0] != slicePrefix {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), binary.BigEndian.Uint64(k[9:]),
		int64(binary.BigEndian.Uint64(k[17:])), true
}

// versionSpan is the key range [start, end) of every slice of one version.
func versionSpan(h, version uint64) (start, end []byte) {
	start = make([]byte, 1+8+8)
	start[0] = slicePrefix
	binary.BigEndian.PutUint64(start[1:], h)
	binary.BigEndian.PutUint64(start[9:], version)
	return start, successor(start)
}

// hashSpan is the key range [start, end) of every slice of every version
// of the keys hashing to h.
func hashSpan(h uint64) (start, end []byte) {
	start = make([]byte, hashPrefixed)
	start[0] = slicePrefix
	binary.BigEndian.PutUint64(start[1:], h)
	return start, successor(start)
}

// successor returns the smallest key greater than every key with prefix p,
// or nil if there is none (p is all 0xff).
func successor(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// sliceChecksum covers the key as well as the payload, so a value stored
// under the wrong key fails verification too.
func sliceChecksum(k []byte, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(k, castagnoli), castagnoli, payload)
}

// putSliceHeader writes the header of a slice value into hdr.
func putSliceHeader(hdr []byte, k []byte, payload []byte) {
	hdr[0] = sliceFormat
	binary.BigEndian.PutUint32(hdr[1:5], sliceChecksum(k, payload))
}

// checkSlice verifies a slice value split into its header and payload.
func checkSlice(k []byte, hdr [sliceHdrLen]byte, payload []byte) error {
	if hdr[0] != sliceFormat {
		return fmt.Errorf("unknown slice format %d", hdr[0])
	}
	if got, want := sliceChecksum(k, payload), binary.BigEndian.Uint32(hdr[1:5]); got != want {
		return fmt.Errorf("crc32c %08x, want %08x", got, want)
	}
	return nil
}

// metaBody is the JSON part of a meta value: the fields Open never needs.
type metaBody struct {
	ETag         string              `json:"etag,omitempty"`
	LastModified string              `json:"last_modified,omitempty"`
	Header       map[string][]string `json:"header,omitempty"`
	StoredAt     time.Time           `json:"stored_at"`
	Lifetime     time.Duration       `json:"lifetime_ns"`
	NoRange      bool                `json:"no_range,omitempty"`
}

// encodeMeta returns the value stored under metaKey(m.Key).
func encodeMeta(m *Meta) ([]byte, error) {
	body, err := json.Marshal(metaBody{
		ETag:         m.ETag,
		LastModified: m.LastModified,
		Header:       m.Header,
		StoredAt:     m.StoredAt,
		Lifetime:     m.Lifetime,
		NoRange:      m.NoRange,
	})
	if err != nil {
		return nil, err
	}
	v := make([]byte, metaHdrLen+len(body))
	v[0] = metaFormat
	binary.BigEndian.PutUint64(v[5:], m.Version)
	binary.BigEndian.PutUint64(v[13:], uint64(m.Size))
	binary.BigEndian.PutUint64(v[21:], uint64(m.SliceSize))
	copy(v[metaHdrLen:], body)
	binary.BigEndian.PutUint32(v[1:5], metaChecksum(m.Key, v))
	return v, nil
}

func metaChecksum(key string, v []byte) uint32 {
	c := crc32.Update(0, castagnoli, []byte{metaPrefix})
	c = crc32.Update(c, castagnoli, []byte(key))
	return crc32.Update(c, castagnoli, v[5:])
}

var errBadMeta = errors.New("bad meta record")

// decodeMetaHeader verifies a meta value and returns the Meta without the
// JSON part decoded (enough for Open).
func decodeMetaHeader(key string, v []byte) (Meta, error) {
	if len(v) < metaHdrLen || v[0] != metaFormat {
		return Meta{}, fmt.Errorf("%w: %d bytes, format %d", errBadMeta, len(v), firstByte(v))
	}
	if got, want := metaChecksum(key, v), binary.BigEndian.Uint32(v[1:5]); got != want {
		return Meta{}, fmt.Errorf("%w: crc32c %08x, want %08x", errBadMeta, got, want)
	}
	m := Meta{
		Key:       key,
		Version:   binary.BigEndian.Uint64(v[5:]),
		Size:      int64(binary.BigEndian.Uint64(v[13:])),
		SliceSize: int64(binary.BigEndian.Uint64(v[21:])),
	}
	if err := m.check(); err != nil {
		return Meta{}, fmt.Errorf("%w: %w", errBadMeta, err)
	}
	return m, nil
}

// decodeMeta verifies and decodes a whole meta value.
func decodeMeta(key string, v []byte) (*Meta, error) {
	m, err := decodeMetaHeader(key, v)
	if err != nil {
		return nil, err
	}
	var b metaBody
	if err := json.Unmarshal(v[metaHdrLen:], &b); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadMeta, err)
	}
	m.ETag, m.LastModified, m.Header = b.ETag, b.LastModified, b.Header
	m.StoredAt, m.Lifetime, m.NoRange = b.StoredAt, b.Lifetime, b.NoRange
	return &m, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}
