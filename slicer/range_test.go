package slicer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// manySpecs returns a Range header of n range-specs, the i-th formatted by f.
func manySpecs(n int, f func(i int) string) string {
	var b strings.Builder
	b.WriteString("bytes=")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f(i))
	}
	return b.String()
}

var parseTests = []struct {
	name   string
	header string
	want   []Spec // nil when the header is invalid
}{
	{"single", "bytes=0-499", []Spec{{0, 499, 0}}},
	{"first byte", "bytes=0-0", []Spec{{0, 0, 0}}},
	{"open", "bytes=9500-", []Spec{{9500, -1, 0}}},
	{"suffix", "bytes=-500", []Spec{{-1, -1, 500}}},
	{"suffix zero", "bytes=-0", []Spec{{-1, -1, 0}}},
	{"multiple in written order", "bytes=500-600,0-1,-5,7-", []Spec{{500, 600, 0}, {0, 1, 0}, {-1, -1, 5}, {7, -1, 0}}},
	{"overlapping kept as written", "bytes=0-10,5-15", []Spec{{0, 10, 0}, {5, 15, 0}}},
	{"leading zeros", "bytes=007-010", []Spec{{7, 10, 0}}},
	{"unit capitalised", "Bytes=0-1", []Spec{{0, 1, 0}}},
	{"unit upper case", "BYTES=0-1", []Spec{{0, 1, 0}}},
	{"OWS after =", "bytes= 1-2", []Spec{{1, 2, 0}}},
	{"OWS before comma", "bytes=1-2 ,3-4", []Spec{{1, 2, 0}, {3, 4, 0}}},
	{"OWS after comma", "bytes=1-2, 3-4", []Spec{{1, 2, 0}, {3, 4, 0}}},
	{"tabs", "bytes=\t1-2\t,\t-3\t", []Spec{{1, 2, 0}, {-1, -1, 3}}},
	{"field OWS", "  bytes=1-2  ", []Spec{{1, 2, 0}}},
	{"empty element first", "bytes=,1-2", []Spec{{1, 2, 0}}},
	{"empty elements inside", "bytes=1-2, ,,3-4", []Spec{{1, 2, 0}, {3, 4, 0}}},
	{"empty element last", "bytes=1-2,", []Spec{{1, 2, 0}}},
	{"max int64", "bytes=0-9223372036854775807", []Spec{{0, math.MaxInt64, 0}}},
	{"max int64 suffix", "bytes=-9223372036854775807", []Spec{{-1, -1, math.MaxInt64}}},
	{"max int64 first", "bytes=9223372036854775807-", []Spec{{math.MaxInt64, -1, 0}}},

	{"empty header", "", nil},
	{"unit only", "bytes", nil},
	{"other unit", "items=0-1", nil},
	{"unit prefix", "bytesx=0-1", nil},
	{"space before =", "bytes =0-1", nil},
	{"double =", "bytes==0-1", nil},
	{"no range-spec", "bytes=", nil},
	{"only commas", "bytes=,", nil},
	{"only OWS and commas", "bytes= , ,", nil},
	{"letters", "bytes=a-b", nil},
	{"hex", "bytes=0x10-20", nil},
	{"last before first", "bytes=5-1", nil},
	{"last before first anywhere", "bytes=0-1,5-1", nil},
	{"double dash", "bytes=--1", nil},
	{"three parts", "bytes=1-2-3", nil},
	{"suffix with dash", "bytes=-1-2", nil},
	{"dash only", "bytes=-", nil},
	{"no dash", "bytes=1", nil},
	{"plus sign", "bytes=+1-2", nil},
	{"plus sign last", "bytes=1-+2", nil},
	{"space inside", "bytes=1 - 2", nil},
	{"space inside number", "bytes=1 0-20", nil},
	{"semicolon", "bytes=1-2;3-4", nil},
	{"space separated", "bytes=1-2 3-4", nil},
	{"unicode digit", "bytes=1-\uff12", nil},
	// Numbers past int64 saturate (RFC 9110 §14.1.1: expect large numbers).
	{"overflow last", "bytes=0-9223372036854775808", []Spec{{0, math.MaxInt64, 0}}},
	{"overflow first", "bytes=9223372036854775808-", []Spec{{math.MaxInt64, -1, 0}}},
	{"overflow suffix", "bytes=-9223372036854775808", []Spec{{-1, -1, math.MaxInt64}}},
	{"huge", "bytes=0-99999999999999999999999999", []Spec{{0, math.MaxInt64, 0}}},
	{"huge both, ordered", "bytes=99999999999999999999-99999999999999999999", []Spec{{math.MaxInt64, math.MaxInt64, 0}}},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.header)
			if tt.want == nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Parse(%q) = %v, %v; want ErrInvalid", tt.header, got, err)
				}
				if !strings.Contains(err.Error(), strconv.Quote(tt.header)) {
					t.Errorf("Parse(%q) error %q does not quote the header", tt.header, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Parse(%q) = %v, %v; want %v, nil", tt.header, got, err, tt.want)
			}
		})
	}
}

// whole marks a Resolve case whose answer is (nil, nil): a 200 of the object.
var whole = []Range{}

var resolveTests = []struct {
	name   string
	header string
	size   int64
	max    int
	want   []Range // nil: ErrUnsatisfiable; whole: (nil, nil)
}{
	{"single", "bytes=0-499", 10000, 0, []Range{{0, 500}}},
	{"first byte", "bytes=0-0", 10000, 0, []Range{{0, 1}}},
	{"open", "bytes=9500-", 10000, 0, []Range{{9500, 10000}}},
	{"suffix", "bytes=-500", 10000, 0, []Range{{9500, 10000}}},
	{"last byte", "bytes=-1", 10000, 0, []Range{{9999, 10000}}},
	{"suffix longer than object", "bytes=-500", 100, 0, []Range{{0, 100}}},
	{"suffix equal to object", "bytes=-100", 100, 0, []Range{{0, 100}}},
	{"suffix zero", "bytes=-0", 100, 0, nil},
	{"suffix zero dropped", "bytes=-0,0-0", 100, 0, []Range{{0, 1}}},
	{"last-pos clamped", "bytes=0-99999", 100, 0, []Range{{0, 100}}},
	{"last-pos at end", "bytes=90-99", 100, 0, []Range{{90, 100}}},
	{"first-pos last byte", "bytes=99-", 100, 0, []Range{{99, 100}}},
	{"first-pos == size", "bytes=100-", 100, 0, nil},
	{"first-pos == size closed", "bytes=100-200", 100, 0, nil},
	{"unsatisfiable dropped", "bytes=200-300,0-9", 100, 0, []Range{{0, 10}}},
	{"sorted", "bytes=500-509,0-9", 1000, 0, []Range{{0, 10}, {500, 510}}},
	{"overlapping", "bytes=0-50,25-75", 100, 0, []Range{{0, 76}}},
	{"contained", "bytes=0-99,10-20", 1000, 0, []Range{{0, 100}}},
	{"adjacent", "bytes=0-9,10-19", 100, 0, []Range{{0, 20}}},
	{"adjacent reversed", "bytes=10-19,0-9", 100, 0, []Range{{0, 20}}},
	{"one-byte gap merged", "bytes=0-9,11-19", 100, 0, []Range{{0, 20}}},
	{"gap of MergeGap-1 merged", fmt.Sprintf("bytes=0-9,%d-%d", 10+MergeGap-1, 10+MergeGap+8), 1000, 0, []Range{{0, 10 + MergeGap + 9}}},
	{"gap of MergeGap kept", fmt.Sprintf("bytes=0-9,%d-%d", 10+MergeGap, 10+MergeGap+9), 1000, 0, []Range{{0, 10}, {10 + MergeGap, 10 + MergeGap + 10}}},
	{"gap merged reversed", "bytes=50-59,0-9", 100, 0, []Range{{0, 60}}},
	{"gap merged across a suffix", "bytes=0-9,-5", 100, 0, []Range{{0, 100}}},
	{"chain of small gaps merged", "bytes=0-0,90-90,180-180,270-270", 1000, 0, []Range{{0, 271}}},
	{"many overlapping", "bytes=0-10,5-15,1-2,14-30,-5,996-", 1000, 0, []Range{{0, 31}, {995, 1000}}},
	{"suffix overlapping open", "bytes=90-,-20", 100, 0, []Range{{80, 100}}},
	{"huge last-pos", "bytes=0-9223372036854775807", 100, 0, []Range{{0, 100}}},
	{"huge suffix", "bytes=-9223372036854775807", 100, 0, []Range{{0, 100}}},
	{"huge object", "bytes=9223372036854775806-", math.MaxInt64, 0, []Range{{math.MaxInt64 - 1, math.MaxInt64}}},
	{"huge object suffix", "bytes=-1", math.MaxInt64, 0, []Range{{math.MaxInt64 - 1, math.MaxInt64}}},
	{"size 0 int-range", "bytes=0-0", 0, 0, nil},
	{"size 0 open", "bytes=0-", 0, 0, nil},
	{"size 0 suffix", "bytes=-1", 0, 0, whole},
	{"size 0 suffix and int-range", "bytes=0-5,-1", 0, 0, whole},
	{"size 0 suffix zero", "bytes=-0", 0, 0, nil},
	{"size 1", "bytes=0-0", 1, 0, []Range{{0, 1}}},
	{"MaxRanges exceeded", "bytes=0-0,200-200,400-400", 1000, 2, whole},
	{"MaxRanges reached", "bytes=0-0,200-200,400-400", 1000, 3, []Range{{0, 1}, {200, 201}, {400, 401}}},
	{"MaxRanges counted after coalescing", "bytes=0-0,1-1,2-2", 100, 1, []Range{{0, 3}}},
	{"MaxRanges counted after merging gaps", "bytes=0-0,2-2,4-4", 100, 1, []Range{{0, 5}}},
	{"default MaxRanges exceeded", manySpecs(65, func(i int) string { return fmt.Sprintf("%d-%d", apart*i, apart*i) }), 10000, 0, whole},
	{"default MaxRanges reached", manySpecs(64, func(i int) string { return fmt.Sprintf("%d-%d", apart*i, apart*i) }), 10000, 0, spaced(64, apart)},
	{"2000 one-byte two apart", manySpecs(2000, func(i int) string { return fmt.Sprintf("%d-%d", 2*i, 2*i) }), 10000, 0, []Range{{0, 3999}}},
	{"2000 one-byte two apart, reversed", manySpecs(2000, func(i int) string { return fmt.Sprintf("%d-%d", 3998-2*i, 3998-2*i) }), 10000, 0, []Range{{0, 3999}}},
	{"10000 one-byte adjacent", manySpecs(10000, func(i int) string { return fmt.Sprintf("%d-%d", 9999-i, 9999-i) }), 10000, 0, []Range{{0, 10000}}},
	{"10000 one-byte identical", manySpecs(10000, func(int) string { return "7-7" }), 10000, 0, []Range{{7, 8}}},
	{"10000 whole-object overlapping", manySpecs(10000, func(int) string { return "0-" }), 1000, 0, []Range{{0, 1000}}},
	{"10000 overlapping suffixes", manySpecs(10000, func(i int) string { return "-" + strconv.Itoa(i+1) }), 1000, 0, []Range{{0, 1000}}},
}

// apart is the step between one-byte ranges that are just far enough apart
// not to be merged: their gap is MergeGap.
const apart = MergeGap + 1

// spaced returns n one-byte ranges at 0, step, 2*step, ...
func spaced(n, step int64) []Range {
	rs := make([]Range, n)
	for i := range rs {
		rs[i] = Range{step * int64(i), step*int64(i) + 1}
	}
	return rs
}

func TestResolve(t *testing.T) {
	for _, tt := range resolveTests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := Parse(tt.header)
			if err != nil {
				t.Fatalf("Parse(%.60q) = %v", tt.header, err)
			}
			orig := slices.Clone(specs)
			got, err := Resolve(specs, tt.size, Limits{MaxRanges: tt.max})
			if !slices.Equal(specs, orig) {
				t.Errorf("Resolve(%.60q, %d) modified its specs", tt.header, tt.size)
			}
			switch {
			case tt.want == nil:
				if !errors.Is(err, ErrUnsatisfiable) {
					t.Fatalf("Resolve(%.60q, %d) = %v, %v; want ErrUnsatisfiable", tt.header, tt.size, got, err)
				}
			case len(tt.want) == 0:
				if got != nil || err != nil {
					t.Fatalf("Resolve(%.60q, %d) = %v, %v; want nil, nil (whole object)", tt.header, tt.size, got, err)
				}
			default:
				if err != nil || !slices.Equal(got, tt.want) {
					t.Fatalf("Resolve(%.60q, %d) = %v, %v; want %v", tt.header, tt.size, got, err, tt.want)
				}
			}
		})
	}
}

func TestResolveMisuse(t *testing.T) {
	tests := []struct {
		name    string
		specs   []Spec
		size    int64
		invalid bool // wraps ErrInvalid; otherwise neither sentinel
	}{
		{"no specs", nil, 100, true},
		{"last before first", []Spec{{5, 1, 0}}, 100, true},
		{"negative first", []Spec{{-2, -1, 0}}, 100, true},
		{"negative suffix", []Spec{{-1, -1, -5}}, 100, true},
		{"suffix with last", []Spec{{-1, 5, 5}}, 100, true},
		{"negative size", []Spec{{0, 0, 0}}, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.specs, tt.size, Limits{})
			if err == nil || errors.Is(err, ErrInvalid) != tt.invalid || errors.Is(err, ErrUnsatisfiable) {
				t.Fatalf("Resolve(%v, %d) = %v, %v; want error (ErrInvalid: %v)", tt.specs, tt.size, got, err, tt.invalid)
			}
		})
	}
}

func TestResolveErrorNamesSize(t *testing.T) {
	_, err := Resolve([]Spec{{100, -1, 0}}, 100, Limits{})
	if err == nil || !strings.Contains(err.Error(), "size 100") {
		t.Fatalf("Resolve(bytes=100-, 100) error = %v; want it to name the size", err)
	}
}

func TestFirstKnownStart(t *testing.T) {
	tests := []struct {
		name   string
		header string
		start  int64
		ok     bool
	}{
		{"single", "bytes=100-200", 100, true},
		{"open", "bytes=100-", 100, true},
		{"smallest first", "bytes=500-,100-200", 100, true},
		{"suffix", "bytes=-500", 0, false},
		{"suffix after zero", "bytes=0-10,-500", 0, true},
		{"suffix could start earlier", "bytes=10-20,-500", 0, false},
		{"zero suffix needs no bytes", "bytes=-0,10-20", 10, true},
		{"only zero suffix", "bytes=-0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := Parse(tt.header)
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tt.header, err)
			}
			start, ok := FirstKnownStart(specs)
			if start != tt.start || ok != tt.ok {
				t.Fatalf("FirstKnownStart(%q) = %d, %v; want %d, %v", tt.header, start, ok, tt.start, tt.ok)
			}
		})
	}
}

func TestLongestSuffix(t *testing.T) {
	for _, tt := range []struct {
		header string
		n      int64
		ok     bool
	}{
		{"bytes=-500", 500, true},
		{"bytes=-500,-8", 500, true},
		{"bytes=-8, -0", 8, true},
		{"bytes=-0", 0, false},
		{"bytes=-500,10-20", 0, false},
		{"bytes=0-", 0, false},
	} {
		specs, err := Parse(tt.header)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", tt.header, err)
		}
		if n, ok := LongestSuffix(specs); n != tt.n || ok != tt.ok {
			t.Errorf("LongestSuffix(%q) = %d, %v; want %d, %v", tt.header, n, ok, tt.n, tt.ok)
		}
	}
}

func TestRangeHeader(t *testing.T) {
	tests := []struct {
		r    Range
		want string
	}{
		{Range{0, 1}, "bytes=0-0"},
		{Range{0, 500}, "bytes=0-499"},
		{Range{1 << 20, 2 << 20}, "bytes=1048576-2097151"},
		{Range{math.MaxInt64 - 2, math.MaxInt64 - 1}, "bytes=9223372036854775805-9223372036854775805"},
		// An end at math.MaxInt64 (saturated: unknown) is the end,
		// wherever it is.
		{Range{0, math.MaxInt64}, "bytes=0-"},
		{Range{math.MaxInt64 - 1, math.MaxInt64}, "bytes=9223372036854775806-"},
	}
	for _, tt := range tests {
		if got := tt.r.Header(); got != tt.want {
			t.Errorf("%v.Header() = %q, want %q", tt.r, got, tt.want)
		}
		if got := tt.r.Len(); got != tt.r.End-tt.r.Start {
			t.Errorf("%v.Len() = %d, want %d", tt.r, got, tt.r.End-tt.r.Start)
		}
	}
}

func BenchmarkParseResolve(b *testing.B) {
	const header = "bytes=1048576-2097151"
	const size = 10 << 30
	b.ReportAllocs()
	for b.Loop() {
		specs, err := Parse(header)
		if err != nil {
			b.Fatal(err)
		}
		ranges, err := Resolve(specs, size, Limits{})
		if err != nil || len(ranges) != 1 {
			b.Fatal(ranges, err)
		}
	}
}

func BenchmarkResolveOverlapping(b *testing.B) {
	specs, err := Parse(manySpecs(10000, func(i int) string { return fmt.Sprintf("%d-%d", i, i+100) }))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Resolve(specs, 1<<20, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
