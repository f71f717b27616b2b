package slicer

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestContentRange(t *testing.T) {
	tests := []struct {
		r    Range
		size int64
		want string
	}{
		{Range{0, 500}, 1234, "bytes 0-499/1234"},
		{Range{1233, 1234}, 1234, "bytes 1233-1233/1234"},
		{Range{500, 1000}, -1, "bytes 500-999/*"},
		{Range{math.MaxInt64 - 1, math.MaxInt64}, math.MaxInt64, "bytes 9223372036854775806-9223372036854775806/9223372036854775807"},
	}
	for _, tt := range tests {
		if got := ContentRange(tt.r, tt.size); got != tt.want {
			t.Errorf("ContentRange(%v, %d) = %q, want %q", tt.r, tt.size, got, tt.want)
		}
	}
	for size, want := range map[int64]string{0: "bytes */0", 1234: "bytes */1234"} {
		if got := UnsatisfiedContentRange(size); got != want {
			t.Errorf("UnsatisfiedContentRange(%d) = %q, want %q", size, got, want)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		name        string
		v           string
		r           Range
		size        int64
		unsatisfied bool
		bad         bool
	}{
		{"range", "bytes 0-499/1234", Range{0, 500}, 1234, false, false},
		{"last byte", "bytes 1233-1233/1234", Range{1233, 1234}, 1234, false, false},
		{"one byte object", "bytes 0-0/1", Range{0, 1}, 1, false, false},
		{"unknown size", "bytes 500-999/*", Range{500, 1000}, -1, false, false},
		{"unsatisfied", "bytes */1234", Range{}, 1234, true, false},
		{"unsatisfied empty", "bytes */0", Range{}, 0, true, false},
		{"unit case", "Bytes 0-0/1", Range{0, 1}, 1, false, false},
		{"field OWS", " bytes 0-0/1\t", Range{0, 1}, 1, false, false},
		{"leading zeros", "bytes 00-01/02", Range{0, 2}, 2, false, false},
		{"max", "bytes 0-9223372036854775806/9223372036854775807", Range{0, math.MaxInt64}, math.MaxInt64, false, false},

		{"empty", "", Range{}, 0, false, true},
		{"unit only", "bytes", Range{}, 0, false, true},
		{"no length", "bytes 0-499", Range{}, 0, false, true},
		{"other unit", "items 0-1/2", Range{}, 0, false, true},
		{"equals sign", "bytes=0-1/2", Range{}, 0, false, true},
		{"two spaces", "bytes  0-1/2", Range{}, 0, false, true},
		{"last before first", "bytes 5-4/10", Range{}, 0, false, true},
		{"last == size", "bytes 0-10/10", Range{}, 0, false, true},
		{"range of empty", "bytes 0-0/0", Range{}, 0, false, true},
		{"negative first", "bytes -1-5/10", Range{}, 0, false, true},
		{"negative last", "bytes 0--5/10", Range{}, 0, false, true},
		{"negative size", "bytes 0-1/-5", Range{}, 0, false, true},
		{"plus sign", "bytes +0-1/2", Range{}, 0, false, true},
		{"letters", "bytes a-b/10", Range{}, 0, false, true},
		{"bad size", "bytes 0-1/x", Range{}, 0, false, true},
		{"both unknown", "bytes */*", Range{}, 0, false, true},
		{"star range", "bytes *-1/10", Range{}, 0, false, true},
		{"no first", "bytes -1/10", Range{}, 0, false, true},
		{"no dash", "bytes 5/10", Range{}, 0, false, true},
		{"no last", "bytes 0-/10", Range{}, 0, false, true},
		{"overflow size", "bytes 0-1/99999999999999999999", Range{}, 0, false, true},
		{"overflow last", "bytes 0-9223372036854775807/*", Range{}, 0, false, true},
		{"trailing junk", "bytes 0-1/2 junk", Range{}, 0, false, true},
		{"space before dash", "bytes 0 -1/2", Range{}, 0, false, true},
		{"space before slash", "bytes 0-1 /2", Range{}, 0, false, true},
		{"two ranges", "bytes 0-1,3-4/10", Range{}, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, size, unsatisfied, err := ParseContentRange(tt.v)
			if tt.bad {
				if !errors.Is(err, ErrBadContentRange) {
					t.Fatalf("ParseContentRange(%q) = %v, %d, %v, %v; want ErrBadContentRange", tt.v, r, size, unsatisfied, err)
				}
				if !strings.Contains(err.Error(), strconv.Quote(tt.v)) {
					t.Errorf("ParseContentRange(%q) error %q does not quote the value", tt.v, err)
				}
				return
			}
			if err != nil || r != tt.r || size != tt.size || unsatisfied != tt.unsatisfied {
				t.Fatalf("ParseContentRange(%q) = %v, %d, %v, %v; want %v, %d, %v, nil", tt.v, r, size, unsatisfied, err, tt.r, tt.size, tt.unsatisfied)
			}
		})
	}
}
