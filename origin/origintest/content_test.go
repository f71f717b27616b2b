package origintest

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestFillDeterministicAndUnaligned(t *testing.T) {
	const name = "/video/a.mp4"
	whole := Expected(name, 3, 0, 4096)
	if !bytes.Equal(whole, Expected(name, 3, 0, 4096)) {
		t.Fatal("Expected is not deterministic")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		off := rng.Int64N(4000)
		n := rng.Int64N(4096 - off + 1)
		p := make([]byte, n)
		Fill(p, name, 3, off)
		if !bytes.Equal(p, whole[off:off+n]) {
			t.Fatalf("Fill(off=%d, len=%d) differs from Expected", off, n)
		}
	}
	// Far offsets work the same way as near ones.
	const far = int64(9)<<30 + 5
	if !bytes.Equal(Expected(name, 3, far, far+10), Expected(name, 3, far-5, far+10)[5:]) {
		t.Fatal("Fill at 9 GiB depends on where the slice starts")
	}
}

func TestVersionsAndNamesDifferEverywhere(t *testing.T) {
	const n = 1 << 20
	v1 := Expected("/a.bin", 1, 0, n)
	for _, other := range []struct {
		what string
		p    []byte
	}{
		{"version 2", Expected("/a.bin", 2, 0, n)},
		{"version 0", Expected("/a.bin", 0, 0, n)},
		{"version -1", Expected("/a.bin", -1, 0, n)},
		{"other name", Expected("/b.bin", 1, 0, n)},
	} {
		for i := 0; i < n; i += 8 {
			if binary.LittleEndian.Uint64(v1[i:]) == binary.LittleEndian.Uint64(other.p[i:]) {
				t.Fatalf("%s: word at %d equals version 1", other.what, i)
			}
		}
	}
	if ETag("/a.bin", 1) == ETag("/a.bin", 2) || ETag("/a.bin", 1) == ETag("/b.bin", 1) {
		t.Fatal("ETags collide")
	}
	if !LastModified(2).Equal(LastModified(1).Add(60e9)) {
		t.Fatal("Last-Modified does not advance by a minute per version")
	}
}

func TestVerify(t *testing.T) {
	const name = "/x"
	p := Expected(name, 1, 1003, 1003+10000)
	if bad, ok := Verify(p, name, 1, 1003); !ok || bad != -1 {
		t.Fatalf("Verify(correct) = %d, %v", bad, ok)
	}
	if _, ok := Verify(p, name, 2, 1003); ok {
		t.Fatal("Verify accepts another version")
	}
	if _, ok := Verify(p, name, 1, 1004); ok {
		t.Fatal("Verify accepts a shifted offset")
	}
	for _, i := range []int{0, 1, 4095, 4096, 9999} {
		q := bytes.Clone(p)
		q[i] ^= 1
		if bad, ok := Verify(q, name, 1, 1003); ok || bad != 1003+int64(i) {
			t.Errorf("byte %d flipped: Verify = %d, %v, want %d, false", i, bad, ok, 1003+i)
		}
	}
	if bad, ok := Verify(nil, name, 1, 5); !ok || bad != -1 {
		t.Fatalf("Verify(empty) = %d, %v", bad, ok)
	}
}

func TestWhichVersion(t *testing.T) {
	const name = "/w.bin"
	const off = 13
	v2 := Expected(name, 2, off, off+100000)
	v3 := Expected(name, 3, off, off+100000)
	stitched := slices.Concat(v2[:50003], v3[50003:]) // at object offset 50016
	midWord := slices.Concat(v2[:50001], v3[50001:])
	garbage := bytes.Clone(v2)
	copy(garbage[777:], make([]byte, 16))

	for _, tc := range []struct {
		name string
		p    []byte
		off  int64
		want []int
	}{
		{"one version", v2, off, []int{2}},
		{"stitched", stitched, off, []int{2, 3}},
		{"stitched inside a word", midWord, off, []int{-1, 2, 3}},
		{"garbage", garbage, off, []int{-1, 2}},
		{"empty", nil, off, nil},
		{"3 bytes inside a word", v3[1:4], off + 1, []int{3}},
		{"partial words only", v3[3:12], off + 3, []int{3}},
		{"aligned", Expected(name, 0, 64, 128), 64, []int{0}},
		{"version above max", Expected(name, 9, 0, 64), 0, []int{-1}},
	} {
		if got := WhichVersion(tc.p, name, tc.off, 5); !slices.Equal(got, tc.want) {
			t.Errorf("%s: WhichVersion = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSyntheticSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		ok   bool
	}{
		{"1GiB.mp4", 1 << 30, true},
		{"64MiB-patch.bin", 64 << 20, true},
		{"100KiB", 100 << 10, true},
		{"12345.bin", 12345, true},
		{"10GiB_x", 10 << 30, true},
		{"2TiB", 2 << 40, true},
		{"0", 0, true},
		{"video.mp4", 0, false},
		{"", 0, false},
		{"5xyz", 0, false},
		{"5KB", 0, false},
		{"99999999999TiB", 0, false},
		{"1234567890123456789", 0, false},
	} {
		size, ok := SyntheticSize(tc.name)
		if size != tc.size || ok != tc.ok {
			t.Errorf("SyntheticSize(%q) = %d, %v, want %d, %v", tc.name, size, ok, tc.size, tc.ok)
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h             string
		size          int64
		kind          rangeKind
		start, length int64
	}{
		{"bytes=0-99", 1000, rangeOne, 0, 100},
		{"bytes=100-", 1000, rangeOne, 100, 900},
		{"bytes=-100", 1000, rangeOne, 900, 100},
		{"bytes=-5000", 1000, rangeOne, 0, 1000},
		{"bytes=990-5000", 1000, rangeOne, 990, 10},
		{"bytes=999-999", 1000, rangeOne, 999, 1},
		{"Bytes = 1-2", 1000, rangeOne, 1, 2},
		{"bytes=1-2,", 1000, rangeOne, 1, 2},
		{"bytes=0-99999999999999999999999", 1000, rangeOne, 0, 1000},
		{"bytes=1000-", 1000, rangeUnsatisfiable, 0, 0},
		{"bytes=99999999999999999999999-", 1000, rangeUnsatisfiable, 0, 0},
		{"bytes=-0", 1000, rangeUnsatisfiable, 0, 0},
		{"bytes=0-", 0, rangeUnsatisfiable, 0, 0},
		{"bytes=-5", 0, rangeNone, 0, 0},
		{"bytes=5-2", 1000, rangeNone, 0, 0},
		{"bytes=0-1,5-6", 1000, rangeNone, 0, 0},
		{"bytes=0-1,2000-", 1000, rangeNone, 0, 0},
		{"bytes=2000-,3000-", 1000, rangeUnsatisfiable, 0, 0},
		{"items=0-1", 1000, rangeNone, 0, 0},
		{"bytes=", 1000, rangeNone, 0, 0},
		{"bytes=a-b", 1000, rangeNone, 0, 0},
		{"bytes=+1-2", 1000, rangeNone, 0, 0},
		{"bytes=1", 1000, rangeNone, 0, 0},
		{"bytes=--1", 1000, rangeNone, 0, 0},
	} {
		kind, start, length := parseRange(tc.h, tc.size)
		if kind != tc.kind || start != tc.start || length != tc.length {
			t.Errorf("range=%q size=%d: got (%d, %d, %d), want (%d, %d, %d)",
				tc.h, tc.size, kind, start, length, tc.kind, tc.start, tc.length)
		}
	}
}

func BenchmarkFill(b *testing.B) {
	p := make([]byte, 64<<10)
	b.SetBytes(int64(len(p)))
	for i := 0; b.Loop(); i++ {
		Fill(p, "/bench.bin", 1, int64(i)*int64(len(p))+3)
	}
}

func BenchmarkVerify(b *testing.B) {
	p := Expected("/bench.bin", 1, 0, 64<<10)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, ok := Verify(p, "/bench.bin", 1, 0); !ok {
			b.Fatal("Verify failed")
		}
	}
}

func BenchmarkWhichVersion(b *testing.B) {
	p := Expected("/bench.bin", 1, 0, 64<<10)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		WhichVersion(p, "/bench.bin", 0, 4)
	}
}
