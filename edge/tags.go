package edge

// Purge by tag and by glob: the origin's Surrogate-Key and Cache-Tag
// values are stored with each object's headers (its meta, in the index),
// and a purge names a tag, or a URL glob, instead of a URL.

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/sliceedge/sliceedge/segstore"
)

// tagHeaders are the response fields whose values tag an object: Fastly's
// Surrogate-Key (space-separated) and Cloudflare's Cache-Tag
// (comma-separated).
var tagHeaders = []string{"Surrogate-Key", "Cache-Tag"}

// maxTags bounds the tags read from one object, and maxTagLen each tag:
// what an origin claims costs no more than that.
const (
	maxTags   = 256
	maxTagLen = 1024
)

// tagsOf returns the purge tags stored in a meta's headers.
func tagsOf(h map[string][]string) []string {
	var tags []string
	for _, name := range tagHeaders {
		for _, v := range http.Header(h).Values(name) {
			// An iterator: a long header costs no slice of all its fields.
			for t := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
				if len(tags) == maxTags {
					return tags
				}
				if len(t) <= maxTagLen {
					tags = append(tags, t)
				}
			}
		}
	}
	return tags
}

// validTag reports whether t can be a tag: not empty, no separators or
// control characters, at most maxTagLen bytes.
func validTag(t string) bool {
	return t != "" && len(t) <= maxTagLen && !strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == ',' || r == 0x7f })
}

// keysTagged returns the keys of the stored objects tagged t. It reads
// every meta of the store, in chunks with no lock held (ScanMeta): 200,000
// metas took 0.8-1.1 s on a 2-core machine.
func keysTagged(st adminStore, t string) ([]string, error) {
	var keys []string
	err := st.ScanMeta("", func(m *segstore.Meta) bool {
		if slices.Contains(tagsOf(m.Header), t) {
			keys = append(keys, baseKey(m.Key))
		}
		return true
	})
	return slices.Compact(keys), err
}

// baseKey is the key of the URL a Vary variant's key belongs to (a purge
// of it takes every variant), or k itself.
func baseKey(k string) string {
	if i := strings.Index(k, variantSep); i >= 0 {
		return k[:i]
	}
	return k
}

// globKeys maps a URL glob to the key prefix every match starts with and
// the key pattern (path.Match) keys must match. Metacharacters may appear
// in the path only: the host is part of the key and is matched whole.
func globKeys(raw string) (prefix, pattern string, err error) {
	i := strings.IndexAny(raw, "*?[\\")
	if i < 0 {
		return "", "", fmt.Errorf("glob %q has no *, ? or [ (purge one URL with ?url=, or a prefix with ?prefix=)", raw)
	}
	lit, rest := raw[:i], raw[i:]
	scheme := strings.Index(lit, "://")
	if !strings.Contains(lit[scheme+3:], "/") {
		return "", "", fmt.Errorf("glob %q: want a URL whose host is written out, with *, ? or [ in its path only, e.g. http://edge.example.com/video/*.mp4", raw)
	}
	if prefix, err = keyPrefixOf(lit); err != nil {
		return "", "", fmt.Errorf("glob %q: %w", raw, err)
	}
	pattern = prefix + rest
	if _, err := path.Match(pattern, ""); err != nil {
		return "", "", fmt.Errorf("glob %q is not a valid pattern (path.Match syntax: * and ? within one path segment, [a-z] classes, \\ to escape)", raw)
	}
	return prefix, pattern, nil
}

// keysGlobbed returns the keys of the stored objects whose URL matches
// the key pattern: the key itself, or its path without the query (and
// without a Vary variant's suffix).
func keysGlobbed(st adminStore, prefix, pattern string) ([]string, error) {
	var keys []string
	err := st.ScanMeta(prefix, func(m *segstore.Meta) bool {
		k := baseKey(m.Key)
		ok, _ := path.Match(pattern, k)
		if !ok {
			if i := strings.IndexByte(k, '?'); i >= 0 {
				ok, _ = path.Match(pattern, k[:i])
			}
		}
		if ok {
			keys = append(keys, k)
		}
		return true
	})
	return slices.Compact(keys), err
}
