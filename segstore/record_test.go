package segstore

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
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

// TestSliceValueLayout checks putSlice byte for byte against the format
// described in record.go, for payloads around chunk boundaries.
func TestSliceValueLayout(t *testing.T) {
	k := makeSliceKey(keyHash("example.com/b"), 42, 3)
	for _, n := range []int{1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 17, 16 * chunkSize} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i*7 + i>>9)
		}
		c := (n + chunkSize - 1) / chunkSize
		v := make([]byte, sliceHdrLen2(int64(n))+n)
		if len(v) != 1+4*c+n {
			t.Fatalf("n=%d: value of %d bytes, want %d", n, len(v), 1+4*c+n)
		}
		putSlice(v, k[:], payload)
		if v[0] != 2 || !bytes.Equal(v[1+4*c:], payload) {
			t.Fatalf("n=%d: wrong format byte or payload", n)
		}
		for j := range c {
			msg := append(bytes.Clone(k[:]), byte(j>>24), byte(j>>16), byte(j>>8), byte(j))
			msg = append(msg, payload[j*chunkSize:min((j+1)*chunkSize, n)]...)
			if got, want := binary.BigEndian.Uint32(v[1+4*j:]), crc32.Checksum(msg, castagnoli); got != want {
				t.Fatalf("n=%d: checksum of chunk %d is %08x, want %08x", n, j, got, want)
			}
		}
		if !validSliceLen(len(v), int64(n)) || !validSliceLen(sliceHdrLen1+n, int64(n)) || validSliceLen(len(v)+1, int64(n)) {
			t.Errorf("n=%d: validSliceLen wrong", n)
		}
		dst := make([]byte, n)
		if err := readSliceValue(k[:], v, int64(n), 0, dst); err != nil || !bytes.Equal(dst, payload) {
			t.Fatalf("n=%d: readSliceValue: %v", n, err)
		}
	}
}
