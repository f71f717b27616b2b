package segstore

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestChunkChecksum checks chunkChecksum against its definition in the
// format: the CRC-32C of the slice key, the chunk index as 4 bytes
// big-endian, and the chunk.
func TestChunkChecksum(t *testing.T) {
	k := makeSliceKey(keyHash("example.com/a"), 0x0123456789abcdef, 7)
	chunk := bytes.Repeat([]byte("sliceedge"), 1000)
	for _, j := range []int64{0, 1, 255, 256, 1023, 1 << 24, 0xdeadbeef} {
		var msg []byte
		msg = append(msg, k[:]...)
		msg = binary.BigEndian.AppendUint32(msg, uint32(j))
		msg = append(msg, chunk...)
		if got, want := chunkChecksum(keySeed(k[:]), j, chunk), crc32.Checksum(msg, castagnoli); got != want {
			t.Errorf("chunkChecksum(chunk %d) = %08x, want %08x", j, got, want)
		}
	}
}

// TestSliceEntryLayout checks putEntry byte for byte against the format
// described in record.go, for slices around chunk boundaries; checkChunks
// passes the slice and fails it with any one byte flipped; and a
// SliceWriter fed the slice in uneven pieces computes the same entry as it
// goes.
func TestSliceEntryLayout(t *testing.T) {
	k := makeSliceKey(keyHash("example.com/b"), 42, 3)
	for _, n := range []int{1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 17, 16 * chunkSize} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + i>>9)
		}
		c := (n + chunkSize - 1) / chunkSize
		v := make([]byte, entryLen(int64(n)))
		if len(v) != 1+4*c {
			t.Fatalf("n=%d: entry of %d bytes, want %d", n, len(v), 1+4*c)
		}
		putEntry(v, k[:], data)
		if v[0] != 3 {
			t.Fatalf("n=%d: format byte %d, want 3", n, v[0])
		}
		for j := range c {
			msg := append(bytes.Clone(k[:]), byte(j>>24), byte(j>>16), byte(j>>8), byte(j))
			msg = append(msg, data[j*chunkSize:min((j+1)*chunkSize, n)]...)
			if got, want := binary.BigEndian.Uint32(v[1+4*j:]), crc32.Checksum(msg, castagnoli); got != want {
				t.Fatalf("n=%d: checksum of chunk %d is %08x, want %08x", n, j, got, want)
			}
		}
		if !validEntry(v, int64(n)) || validEntry(append(bytes.Clone(v), 0), int64(n)) || validEntry(v, int64(n)+chunkSize) {
			t.Errorf("n=%d: validEntry wrong", n)
		}
		if err := checkChunks(k[:], v, int64(n), 0, data); err != nil {
			t.Fatalf("n=%d: checkChunks of the slice itself: %v", n, err)
		}
		for _, at := range []int{0, n / 2, n - 1} {
			bad := bytes.Clone(data)
			bad[at] ^= 0x40
			if err := checkChunks(k[:], v, int64(n), 0, bad); err == nil {
				t.Errorf("n=%d: checkChunks passed a flip at byte %d", n, at)
			}
		}
		other := makeSliceKey(keyHash("example.com/b"), 42, 4)
		if err := checkChunks(other[:], v, int64(n), 0, data); err == nil {
			t.Errorf("n=%d: checkChunks passed the slice under another slice's key", n)
		}
		// The running checksums of a SliceWriter, fed in pieces that
		// straddle chunk boundaries.
		w := &SliceWriter{s: &Store{files: &sliceFiles{osFS: true}}, m: &Meta{Key: "example.com/b"}, n: int64(n), k: k, seed: keySeed(k[:]), f: discardFile{}}
		for off, step := 0, 1; off < n; off, step = off+step, step*3+1 {
			if _, err := w.Write(data[off:min(off+step, n)]); err != nil {
				t.Fatalf("n=%d: write at %d: %v", n, off, err)
			}
		}
		w.ent[0] = sliceFormat
		if got := w.ent[:entryLen(int64(n))]; !bytes.Equal(got, v) {
			t.Errorf("n=%d: SliceWriter's entry %x, putEntry's %x", n, got, v)
		}
	}
}

// discardFile is a vfs.File that takes writes and drops them.
type discardFile struct{ vfs.File }

func (discardFile) Write(p []byte) (int, error) { return len(p), nil }
