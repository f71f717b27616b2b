package segstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/sliceedge/sliceedge/internal/invariants"
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
//   - segstore/1: slice values of format 1 only;
//   - segstore/2: slice values of format 1 or 2 (format 2 from this version
//     on; format 1 remains readable).
//
// Open accepts both and rewrites a segstore/1 marker as segstore/2 before
// writing anything else (see checkFormat), since it will write format-2
// slices: a binary that only knows segstore/1 then refuses the directory.
const (
	formatValue   = "segstore/2"
	formatValueV1 = "segstore/1"
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

// Slice values. A slice value is a header and then the payload (the slice's
// bytes, SliceLen of them). The first byte of the header is the format:
//
// Format 1 (written before format 2 existed; still read):
//
//	[0]      1
//	[1:5]    CRC-32C (Castagnoli), big-endian, of the slice key followed by
//	         the whole payload
//	[5:]     payload
//
// Format 2 (written now):
//
//	[0]      2
//	[1:1+4c] c = ceil(len(payload) / 64 KiB) CRC-32Cs, big-endian, one per
//	         64 KiB chunk of the payload (the last chunk may be short): the
//	         CRC of chunk j is that of the slice key, then j as 4 bytes
//	         big-endian, then the chunk's bytes
//	[1+4c:]  payload
//
// Each checksum covers the key, so a value found under the wrong key (a bug,
// or a bit flip in the key) fails as surely as a damaged payload; in format 2
// each also covers its chunk's index, so chunks cannot trade places. Format 2
// lets a read of any byte range verify only the chunks the range overlaps. A
// damaged chunk checksum fails its chunk, like damaged payload. The payload
// length is not stored: it is the meta's SliceLen, and the value length must
// be exactly header plus payload.
const (
	sliceFormat1 = 1
	sliceFormat2 = 2

	sliceHdrLen1 = 1 + 4 // format, CRC-32C

	chunkShift = 16
	chunkSize  = 1 << chunkShift // bytes of payload per CRC in format 2

	// maxSliceHdrLen is the longest slice header: format 2 of a slice of
	// MaxSliceSize.
	maxSliceHdrLen = 1 + 4*(MaxSliceSize/chunkSize)
)

// chunkCount is the number of format-2 chunks of a payload of n bytes.
func chunkCount(n int64) int64 { return (n + chunkSize - 1) >> chunkShift }

// sliceHdrLen2 is the header length of a format-2 value of n payload bytes.
func sliceHdrLen2(n int64) int { return int(1 + 4*chunkCount(n)) }

// validSliceLen reports whether a slice value of vlen bytes can hold a
// payload of n bytes in some format. Open uses it to check slices without
// reading their values.
func validSliceLen(vlen int, n int64) bool {
	return n > 0 && (int64(vlen) == sliceHdrLen1+n || int64(vlen) == int64(sliceHdrLen2(n))+n)
}

// keySeed is the CRC-32C of a slice key: where every checksum of a slice
// value starts.
func keySeed(k []byte) uint32 { return crc32.Checksum(k, castagnoli) }

// chunkChecksum is the format-2 checksum of chunk j of a slice whose key's
// CRC is seed.
func chunkChecksum(seed uint32, j int64, chunk []byte) uint32 {
	// crc32.Update of the 4 bytes of j, big-endian, done by hand with the
	// table: a byte slice passed to crc32.Update escapes, and this runs for
	// every chunk read.
	c := ^seed
	for shift := 24; shift >= 0; shift -= 8 {
		c = castagnoli[byte(c)^byte(uint32(j)>>shift)] ^ c>>8
	}
	return crc32.Update(^c, castagnoli, chunk)
}

// putSlice writes a format-2 slice value of payload under key k into v,
// which must be sliceHdrLen2(len(payload))+len(payload) bytes long.
func putSlice(v []byte, k []byte, payload []byte) {
	hdr := sliceHdrLen2(int64(len(payload)))
	v[0] = sliceFormat2
	seed := keySeed(k)
	for j, off := int64(0), 0; off < len(payload); j, off = j+1, off+chunkSize {
		chunk := payload[off:min(off+chunkSize, len(payload))]
		copy(v[hdr+off:], chunk)
		binary.BigEndian.PutUint32(v[1+4*j:], chunkChecksum(seed, j, chunk))
	}
}

// putSliceV1 writes a format-1 slice value of payload under key k into v,
// which must be sliceHdrLen1+len(payload) bytes long. Only tests write
// format 1 now, to check that it stays readable.
func putSliceV1(v []byte, k []byte, payload []byte) {
	v[0] = sliceFormat1
	binary.BigEndian.PutUint32(v[1:5], crc32.Update(keySeed(k), castagnoli, payload))
	copy(v[sliceHdrLen1:], payload)
}

// readSliceValue checks the slice value v of key k, which must hold a
// payload of sliceLen bytes, and copies payload bytes [off, off+len(dst))
// into dst, verifying what that needs: in format 2 the chunks the range
// overlaps, one at a time (so that each is read from main memory once); in
// format 1 the whole payload. It returns why the value is corrupt, if it
// is; dst is then undefined.
func readSliceValue(k []byte, v []byte, sliceLen, off int64, dst []byte) error {
	if len(v) == 0 {
		return errors.New("empty value")
	}
	end := off + int64(len(dst))
	switch v[0] {
	case sliceFormat1:
		if int64(len(v)) != sliceHdrLen1+sliceLen {
			return fmt.Errorf("format 1 value of %d bytes, want %d", len(v), sliceHdrLen1+sliceLen)
		}
		payload := v[sliceHdrLen1:]
		if got, want := crc32.Update(keySeed(k), castagnoli, payload), binary.BigEndian.Uint32(v[1:5]); got != want {
			return fmt.Errorf("crc32c %08x, want %08x", got, want)
		}
		copy(dst, payload[off:end])
		return nil
	case sliceFormat2:
		hdr := sliceHdrLen2(sliceLen)
		if int64(len(v)) != int64(hdr)+sliceLen {
			return fmt.Errorf("format 2 value of %d bytes, want %d", len(v), int64(hdr)+sliceLen)
		}
		payload := v[hdr:]
		seed := keySeed(k)
		for j := off >> chunkShift; j<<chunkShift < end; j++ {
			cs, ce := j<<chunkShift, min((j+1)<<chunkShift, sliceLen)
			lo, hi := max(cs, off), min(ce, end)
			// A chunk wanted whole is copied first and its checksum computed
			// over the copy, the very bytes the caller gets: the copy pulls
			// the chunk out of main memory faster than the checksum would
			// (which then runs on the CPU's cache), about a quarter less
			// time per chunk for a value not in the CPU's caches. A chunk
			// wanted in part is checked in place, then the part copied.
			checked := payload[cs:ce]
			if lo == cs && hi == ce {
				checked = dst[lo-off : hi-off]
				copy(checked, payload[cs:ce])
			}
			if got, want := chunkChecksum(seed, j, checked), binary.BigEndian.Uint32(v[1+4*j:]); got != want {
				return fmt.Errorf("chunk %d (bytes %d-%d): crc32c %08x, want %08x", j, cs, ce-1, got, want)
			}
			if lo != cs || hi != ce {
				copy(dst[lo-off:], payload[lo:hi])
			}
		}
		return nil
	default:
		return fmt.Errorf("unknown slice format %d", v[0])
	}
}

// checkRead re-does, under -tags invariants, what readSliceValue(k, v,
// sliceLen, off, dst) did and returned (bad), the simple way: it verifies
// every chunk of the slice, not only those the range overlaps, and panics
// if readSliceValue passed a range that overlaps a damaged chunk, failed
// one that overlaps none, or copied other bytes than the payload's. Damage
// outside the range is no contradiction: ReadSliceRange does not look
// there, by design.
func checkRead(k, v []byte, sliceLen, off int64, dst []byte, bad error) {
	end := off + int64(len(dst))
	var payload []byte
	damaged := true // in the range, or the value as a whole
	switch {
	case len(v) > 0 && v[0] == sliceFormat1 && int64(len(v)) == sliceHdrLen1+sliceLen:
		payload = v[sliceHdrLen1:]
		damaged = crc32.Update(keySeed(k), castagnoli, payload) != binary.BigEndian.Uint32(v[1:5])
	case len(v) > 0 && v[0] == sliceFormat2 && int64(len(v)) == int64(sliceHdrLen2(sliceLen))+sliceLen:
		payload = v[sliceHdrLen2(sliceLen):]
		damaged = false
		seed := keySeed(k)
		for j := range chunkCount(sliceLen) {
			cs, ce := j*chunkSize, min((j+1)*chunkSize, sliceLen)
			if chunkChecksum(seed, j, payload[cs:ce]) != binary.BigEndian.Uint32(v[1+4*j:]) && cs < end && off < ce {
				damaged = true
			}
		}
	}
	invariants.Check(damaged == (bad != nil), "segstore: read of bytes %d-%d of slice %x (%d bytes, value of %d): readSliceValue says %v, every chunk checked says damaged=%v",
		off, end-1, k, sliceLen, len(v), bad, damaged)
	if bad == nil {
		invariants.Check(bytes.Equal(dst, payload[off:end]), "segstore: read of bytes %d-%d of slice %x: copied bytes differ from the payload's", off, end-1, k)
	}
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
