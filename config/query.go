package config

import (
	"fmt"
	"sort"
	"strings"
)

// QueryMode says how a request's query string enters the cache key.
type QueryMode int

const (
	// QueryKeep keeps the query string exactly as sent (the default).
	QueryKeep QueryMode = iota
	// QueryIgnore drops the query string: every query maps to one object.
	QueryIgnore
	// QuerySort sorts the parameters, so "b=2&a=1" and "a=1&b=2" share an object.
	QuerySort
)

// String returns the mode as written in the configuration: keep, ignore or sort.
func (m QueryMode) String() string {
	switch m {
	case QueryKeep:
		return "keep"
	case QueryIgnore:
		return "ignore"
	case QuerySort:
		return "sort"
	}
	return fmt.Sprintf("QueryMode(%d)", int(m))
}

// parseQueryMode is the inverse of String.
func parseQueryMode(s string) (QueryMode, bool) {
	for _, m := range []QueryMode{QueryKeep, QueryIgnore, QuerySort} {
		if s == m.String() {
			return m, true
		}
	}
	return 0, false
}

// Normalize returns the form of rawQuery (URL.RawQuery, without "?") that
// belongs in the cache key. QuerySort orders the parameters by name, keeping
// the order of repeated names and the bytes of each parameter as sent, and
// drops empty parameters ("a=1&&b=2" becomes "a=1&b=2").
func (m QueryMode) Normalize(rawQuery string) string {
	switch m {
	case QueryIgnore:
		return ""
	case QuerySort:
		params := strings.Split(rawQuery, "&")
		kept := params[:0]
		for _, p := range params {
			if p != "" {
				kept = append(kept, p)
			}
		}
		sort.SliceStable(kept, func(i, j int) bool { return paramName(kept[i]) < paramName(kept[j]) })
		return strings.Join(kept, "&")
	}
	return rawQuery
}

func paramName(p string) string {
	name, _, _ := strings.Cut(p, "=")
	return name
}
