package origintest

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// gamma is splitmix64's increment (2^64 / golden ratio).
const gamma = 0x9E3779B97F4A7C15

// mix is the splitmix64 finaliser: a bijection whose output bits each depend
// on every input bit.
func mix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// seed identifies the bytes of (name, version): FNV-1a of the name, mixed
// with the version so that adjacent versions give unrelated seeds.
func seed(name string, version int) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return mix(mix(h) ^ mix(uint64(int64(version))+gamma))
}

// word is the 8-byte word with index w of the object whose seed is s.
func word(s, w uint64) uint64 { return mix(s + (w+1)*gamma) }

// Fill writes into p the bytes of object name at version, starting at object
// offset off (off >= 0). It is the only definition of an object's content.
func Fill(p []byte, name string, version int, off int64) {
	if off < 0 {
		panic("origintest: Fill with negative offset")
	}
	fill(p, seed(name, version), off)
}

func fill(p []byte, s uint64, off int64) {
	w := uint64(off) / 8
	if head := int(off % 8); head != 0 && len(p) > 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], word(s, w))
		n := copy(p, b[head:])
		p = p[n:]
		w++
	}
	// z is the splitmix64 state of word w; stepping it by gamma per word
	// keeps the loop to two multiplies and three shifts per 8 bytes.
	z := s + (w+1)*gamma
	g := uint64(gamma) // a variable, so that multiples wrap like the state
	for len(p) >= 32 {
		binary.LittleEndian.PutUint64(p[0:8], mix(z))
		binary.LittleEndian.PutUint64(p[8:16], mix(z+g))
		binary.LittleEndian.PutUint64(p[16:24], mix(z+2*g))
		binary.LittleEndian.PutUint64(p[24:32], mix(z+3*g))
		z += 4 * g
		p = p[32:]
	}
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p[:8], mix(z))
		z += gamma
		p = p[8:]
	}
	if len(p) > 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], mix(z))
		copy(p, b[:])
	}
}

// Expected returns the bytes [r0, r1) of object name at version; r1 is
// exclusive, so Range "bytes=a-b" corresponds to Expected(name, v, a, b+1).
func Expected(name string, version int, r0, r1 int64) []byte {
	if r0 < 0 || r1 < r0 {
		panic(fmt.Sprintf("origintest: Expected with bad range [%d, %d)", r0, r1))
	}
	p := make([]byte, r1-r0)
	Fill(p, name, version, r0)
	return p
}

// Verify checks that p holds the bytes of object name at version starting
// at object offset off. It returns ok, or the object offset (not the index in
// p) of the first byte that differs.
func Verify(p []byte, name string, version int, off int64) (badAt int64, ok bool) {
	s := seed(name, version)
	var buf [4096]byte
	for i := 0; i < len(p); i += len(buf) {
		chunk := p[i:min(i+len(buf), len(p))]
		want := buf[:len(chunk)]
		fill(want, s, off+int64(i))
		if string(chunk) != string(want) {
			for j := range chunk {
				if chunk[j] != want[j] {
					return off + int64(i+j), false
				}
			}
		}
	}
	return -1, true
}

// WhichVersion reports which versions, among 0..maxVersion, the bytes of p
// (the body at object offset off of object name) come from, in ascending
// order, checking each 8-byte word of the object separately; -1 comes first
// when some word matches none of them. A body of one version gives one
// element; a body stitched from two versions gives two (and -1 as well when
// the seam falls inside a word).
//
// A word cut by the start or end of p has fewer than 8 bytes and may match
// several versions by chance; it is attributed to a version already found
// when it matches one, else to the lowest version it matches.
func WhichVersion(p []byte, name string, off int64, maxVersion int) []int {
	if off < 0 {
		panic("origintest: WhichVersion with negative offset")
	}
	seeds := make([]uint64, maxVersion+1)
	for v := range seeds {
		seeds[v] = seed(name, v)
	}
	found := make([]bool, maxVersion+1)
	none := false

	// Whole words first, so that partial ones can lean on what they found.
	head := int((8 - off%8) % 8)
	if head > len(p) {
		head = len(p)
	}
	cur := -1 // version of the previous word: the likely one for this word
	w := uint64(off+int64(head)) / 8
	i := head
	for ; i+8 <= len(p); i, w = i+8, w+1 {
		got := binary.LittleEndian.Uint64(p[i : i+8])
		if cur >= 0 && word(seeds[cur], w) == got {
			continue
		}
		cur = -1
		for v, s := range seeds {
			if word(s, w) == got {
				cur = v
				break
			}
		}
		if cur < 0 {
			none = true
		} else {
			found[cur] = true
		}
	}

	partial := func(b []byte, at int64) {
		if len(b) == 0 {
			return
		}
		match := func(v int) bool {
			var e [8]byte
			binary.LittleEndian.PutUint64(e[:], word(seeds[v], uint64(at)/8))
			return string(e[at%8:int(at%8)+len(b)]) == string(b)
		}
		for v := range seeds {
			if found[v] && match(v) {
				return
			}
		}
		for v := range seeds {
			if match(v) {
				found[v] = true
				return
			}
		}
		none = true
	}
	partial(p[:head], off)
	if i < len(p) {
		partial(p[i:], off+int64(i))
	}

	var out []int
	if none {
		out = append(out, -1)
	}
	for v, ok := range found {
		if ok {
			out = append(out, v)
		}
	}
	return slices.Clip(out)
}

// ETag is the strong entity tag, quotes included, of object name at version.
func ETag(name string, version int) string {
	return fmt.Sprintf(`"%016x"`, seed(name, version))
}

// LastModified is the Last-Modified time of any object at version: a fixed
// base time plus one minute per version.
func LastModified(version int) time.Time {
	base := time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)
	return base.Add(time.Duration(version) * time.Minute)
}
