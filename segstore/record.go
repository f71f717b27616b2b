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
	sliceKeyLen  = 1 + 8 + 8 + 8
	metaHdrLen   = 1 + 4 + 8 + 8 + 8 // format, CRC-32C, version, size, slice size
	metaFormat   = 1
	hashPrefixed = 1 + 8 // "s" + hash: the span of every version of one key
)

// Store format markers, the value of formatKey. A store directory says which
// layout it holds, so that a binary that does not know it refuses the
// directory instead of misreading it:
//
//   - segstore/1 and segstore/2: slice bytes in Pebble values (formats 1
//     and 2), written by earlier versions;
//   - segstore/3: slice bytes in files, Pebble holding slice entries
//     (format 3) that name them and hold their checksums.
//
// Open accepts segstore/1 and segstore/2 by dropping their slices, whose
// bytes this version does not read, and keeping their metas, so that the
// objects are revalidated rather than learned anew; then it writes
// segstore/3 before anything else (see checkFormat).
const (
	formatValue = "segstore/3"
)

// formatsDropped are the markers of stores whose slices Open drops.
var formatsDropped = []string{"segstore/1", "segstore/2"}

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

// Slice entries. A slice's bytes are in a file of its own (files.go); its
// entry in Pebble, under its slice key, is what makes it visible, and
// holds its checksums:
//
//	[0]      3 (the format)
//	[1:1+4c] c = ceil(SliceLen / 64 KiB) CRC-32Cs, big-endian, one per
//	         64 KiB chunk of the slice (the last chunk may be short): the
//	         CRC of chunk j is that of the slice key, then j as 4 bytes
//	         big-endian, then the chunk's bytes
//
// Each checksum covers the key, so a file found under the wrong name (a
// bug, a file moved by hand) fails as surely as damaged bytes; each also
// covers its chunk's index, so chunks cannot trade places. The checksums
// are computed from the bytes in memory while the slice is written, so
// they say what the origin sent, not what the disk kept. The slice's
// length is not stored: it is the meta's SliceLen, and the file must hold
// exactly that many bytes.
const (
	sliceFormat = 3

	chunkShift = 16
	chunkSize  = 1 << chunkShift // bytes of slice per CRC

	// maxEntryLen is the longest slice entry: that of a slice of
	// MaxSliceSize.
	maxEntryLen = 1 + 4*(MaxSliceSize/chunkSize)
)

// chunkCount is the number of chunks of a slice of n bytes.
func chunkCount(n int64) int64 { return (n + chunkSize - 1) >> chunkShift }

// entryLen is the length of the entry of a slice of n bytes.
func entryLen(n int64) int { return int(1 + 4*chunkCount(n)) }

// validEntry reports whether v can be the entry of a slice of n bytes.
// Open uses it to check entries without reading files.
func validEntry(v []byte, n int64) bool {
	return n > 0 && len(v) == entryLen(n) && v[0] == sliceFormat
}

// keySeed is the CRC-32C of a slice key: where every checksum of a slice
// starts.
func keySeed(k []byte) uint32 { return crc32.Checksum(k, castagnoli) }

// chunkChecksum is the checksum of chunk j of a slice whose key's CRC is
// seed.
func chunkChecksum(seed uint32, j int64, chunk []byte) uint32 {
	// crc32.Update of the 4 bytes of j, big-endian, done by hand with the
	// table: a byte slice passed to crc32.Update escapes.
	c := ^seed
	for shift := 24; shift >= 0; shift -= 8 {
		c = castagnoli[byte(c)^byte(uint32(j)>>shift)] ^ c>>8
	}
	return crc32.Update(^c, castagnoli, chunk)
}

// putEntry writes the entry of slice bytes data, under key k, into v,
// which must be entryLen(len(data)) bytes long.
func putEntry(v []byte, k []byte, data []byte) {
	v[0] = sliceFormat
	seed := keySeed(k)
	for j, off := int64(0), 0; off < len(data); j, off = j+1, off+chunkSize {
		chunk := data[off:min(off+chunkSize, len(data))]
		binary.BigEndian.PutUint32(v[1+4*j:], chunkChecksum(seed, j, chunk))
	}
}

func putUint32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }

// checkChunks verifies data, the bytes of chunks first, first+1, ... of
// the slice of key k and entry v (sliceLen bytes), against the entry: data
// starts at chunk first's first byte and ends at a chunk's end or at the
// slice's. It returns why they are corrupt, if they are.
func checkChunks(k, v []byte, sliceLen, first int64, data []byte) error {
	seed := keySeed(k)
	for j, off := first, 0; off < len(data); j, off = j+1, off+chunkSize {
		cs := j << chunkShift
		chunk := data[off:min(off+chunkSize, len(data))]
		if cs+int64(len(chunk)) > sliceLen || 1+4*j+4 > int64(len(v)) {
			return fmt.Errorf("chunk %d: %d bytes at %d, past the slice's %d", j, len(chunk), cs, sliceLen)
		}
		if got, want := chunkChecksum(seed, j, chunk), binary.BigEndian.Uint32(v[1+4*j:]); got != want {
			return fmt.Errorf("chunk %d (bytes %d-%d): crc32c %08x, want %08x", j, cs, cs+int64(len(chunk))-1, got, want)
		}
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
	Consistency  Class               `json:"class,omitempty"`
	Status       int                 `json:"status,omitempty"`
	Vary         []string            `json:"vary,omitempty"`
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
		Consistency:  m.Consistency,
		Status:       m.Status,
		Vary:         m.Vary,
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
	m.StoredAt, m.Lifetime, m.NoRange, m.Consistency, m.Status = b.StoredAt, b.Lifetime, b.NoRange, b.Consistency, b.Status
	m.Vary = b.Vary
	return &m, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}
