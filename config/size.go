package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Binary size units. Sizes in the configuration use these only: a cache
// slice is a power of two, and "4MB" would be a silent 4 000 000.
const (
	KiB int64 = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

// sizeWant says what ParseSize accepts; it ends every size error.
const sizeWant = "want a whole number of bytes, or a whole number with B, KiB, MiB, GiB or TiB, e.g. 4MiB"

// ParseSize parses a byte count: a whole number of bytes ("1048576") or a
// whole number followed by a binary unit B, KiB, MiB, GiB or TiB ("64KiB",
// "10 GiB"; the unit is case-insensitive). Fractions ("1.5MiB") and
// negative numbers are errors, and so are the decimal units KB, MB, GB and
// TB: they are rejected rather than guessed at.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '-' || t[i] == '+' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, fmt.Errorf("%q is not a size (%s)", s, sizeWant)
	}
	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("%s is negative (%s)", t, sizeWant)
	}
	var mult int64
	switch strings.ToLower(unit) {
	case "", "b":
		mult = 1
	case "kib":
		mult = KiB
	case "mib":
		mult = MiB
	case "gib":
		mult = GiB
	case "tib":
		mult = TiB
	case "k", "kb", "m", "mb", "g", "gb", "t", "tb":
		return 0, fmt.Errorf("%q uses a decimal or ambiguous unit (want a binary unit KiB, MiB, GiB or TiB, e.g. 4MiB)", s)
	default:
		return 0, fmt.Errorf("%q has an unknown unit %q (%s)", s, unit, sizeWant)
	}
	if strings.ContainsAny(num, ".eE") {
		return 0, fmt.Errorf("%q is not a whole number (%s)", s, sizeWant)
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(num, "+"), 10, 64)
	if errors.Is(err, strconv.ErrRange) || err == nil && n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q is too large (want at most 8388607TiB)", s)
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (%s)", s, sizeWant)
	}
	return n * mult, nil
}

// FormatSize writes n in the largest binary unit that divides it exactly
// ("4MiB", "1536KiB", "1000B"), so ParseSize(FormatSize(n)) == n.
func FormatSize(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
