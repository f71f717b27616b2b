package origintest

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// serveHTTP answers one request: count and record it, take a snapshot of
// the object and its mode, then headers, preconditions, range and body.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		writeText(w, http.StatusServiceUnavailable, "origintest: closed")
		return
	}
	defer s.inflight.Done()
	s.requests.Add(1)
	s.record(r)

	name := r.URL.Path
	mode := s.mode.Load()
	var (
		isObject bool
		size     int64
		version  int
	)
	e := s.lookup(name, false)
	if e != nil {
		e.requests.Add(1)
		e.mu.Lock()
		if e.mode != nil {
			mode = e.mode
		}
		if e.isObject && mode.FlapEvery > 0 {
			e.flapSeen++
			if e.flapSeen > mode.FlapEvery {
				e.version++
				e.flapSeen = 1
			}
		}
		isObject, size, version = e.isObject, e.size, e.version
		e.mu.Unlock()
	}

	s.sleep(r.Context(), mode.Latency)
	if mode.Status != 0 {
		writeText(w, mode.Status, fmt.Sprintf("origintest: status %d", mode.Status))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeText(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if !isObject {
		writeText(w, http.StatusNotFound, "not found")
		return
	}

	h := w.Header()
	var etag string
	if !mode.NoValidator {
		etag = ETag(name, version)
		if mode.WeakETag {
			etag = "W/" + etag
		}
		h.Set("ETag", etag)
	}
	var lastModified time.Time // zero: none
	if !mode.NoValidator && !mode.NoLastModified {
		lastModified = LastModified(version)
		h.Set("Last-Modified", lastModified.Format(http.TimeFormat))
	}
	cacheControl := "max-age=3600"
	if mode.CacheControl != nil {
		cacheControl = *mode.CacheControl
	}
	if cacheControl != "" {
		h.Set("Cache-Control", cacheControl)
	}
	if mode.NoRange {
		h.Set("Accept-Ranges", "none")
	} else {
		h.Set("Accept-Ranges", "bytes")
	}

	switch checkPreconditions(r, etag, lastModified, mode.IgnoreIfMatch) {
	case preconditionFailed:
		writeText(w, http.StatusPreconditionFailed, "precondition failed")
		return
	case notModified:
		w.WriteHeader(http.StatusNotModified)
		return
	}

	status, start, length := http.StatusOK, int64(0), size
	if rh := r.Header.Get("Range"); rh != "" && !mode.NoRange && ifRangeHolds(r.Header.Get("If-Range"), etag, lastModified) {
		switch kind, a, n := parseRange(rh, size); kind {
		case rangeUnsatisfiable:
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			writeText(w, http.StatusRequestedRangeNotSatisfiable, "range not satisfiable")
			return
		case rangeOne:
			status, start, length = http.StatusPartialContent, a, n
			h.Set("Content-Range", contentRange(mode.LieContentRange, a, a+n-1, size))
		}
	}
	h.Set("Content-Type", contentType(name))
	if !mode.Chunked {
		h.Set("Content-Length", strconv.FormatInt(length, 10))
	}
	w.WriteHeader(status)
	rc := http.NewResponseController(w)
	if mode.Chunked {
		// Headers out before any body byte: no Content-Length can be
		// inferred, so even a short body goes chunked.
		_ = rc.Flush()
	}
	if r.Method == http.MethodHead {
		return
	}
	s.writeBody(w, rc, r.Context(), e, seed(name, version), start, length, mode)
}

// writeBody streams bytes [start, start+length) of the object with seed sd
// in pooled chunks, applying the mode's pacing, stall and truncation.
func (s *Server) writeBody(w http.ResponseWriter, rc *http.ResponseController, ctx context.Context, e *entry, sd uint64, start, length int64, m *Mode) {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp

	chunk := int64(len(buf))
	if m.Bandwidth > 0 {
		chunk = min(max(m.Bandwidth/32, 1), chunk)
	}
	flushEach := m.Chunked || m.Bandwidth > 0
	stalled := m.Stall <= 0
	began := time.Now()
	for pos := int64(0); pos < length; {
		if m.TruncateAfter > 0 && pos >= m.TruncateAfter {
			_ = rc.Flush()
			panic(http.ErrAbortHandler)
		}
		if !stalled && pos >= m.StallAfter {
			_ = rc.Flush()
			s.sleep(ctx, m.Stall)
			stalled = true
		}
		n := min(chunk, length-pos)
		if m.TruncateAfter > 0 {
			n = min(n, m.TruncateAfter-pos)
		}
		if !stalled {
			n = min(n, m.StallAfter-pos)
		}
		fill(buf[:n], sd, start+pos)
		if m.Bandwidth > 0 {
			// Never ahead of Bandwidth: the bytes up to pos+n are due
			// (pos+n)/Bandwidth seconds after the first.
			due := began.Add(time.Duration(float64(pos+n) / float64(m.Bandwidth) * float64(time.Second)))
			s.sleep(ctx, time.Until(due))
		}
		// Count before writing, so that a client that has read a body
		// never sees a counter short of it; take back what did not go out.
		s.bodyBytes.Add(n)
		e.bodyBytes.Add(n)
		k, err := w.Write(buf[:n])
		if err != nil {
			s.bodyBytes.Add(int64(k) - n)
			e.bodyBytes.Add(int64(k) - n)
			return // the client went away
		}
		if flushEach {
			_ = rc.Flush()
		}
		pos += n
	}
}

// sleep waits for d. If the client goes away or the server closes first it
// aborts the handler: the client sees a cut connection, never a response
// that looks complete.
func (s *Server) sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		panic(http.ErrAbortHandler)
	case <-s.done:
		panic(http.ErrAbortHandler)
	}
}

// writeText writes a short plain-text answer for status, keeping the
// headers already set (ETag on a 412, Content-Range on a 416).
func writeText(w http.ResponseWriter, status int, msg string) {
	if status < 200 || status == http.StatusNoContent || status == http.StatusNotModified {
		w.WriteHeader(status) // no body allowed
		return
	}
	body := msg + "\n"
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

type precondition int

const (
	proceed precondition = iota
	preconditionFailed
	notModified
)

// checkPreconditions evaluates If-Match, If-Unmodified-Since, If-None-Match
// and If-Modified-Since in the order of RFC 9110 §13.2.2, for GET and HEAD.
// etag "" and a zero lastModified mean the validator is not sent.
func checkPreconditions(r *http.Request, etag string, lastModified time.Time, ignoreIfMatch bool) precondition {
	if !ignoreIfMatch {
		if im := headerList(r, "If-Match"); im != "" {
			if !matchETag(im, etag, true) {
				return preconditionFailed
			}
		} else if ius := r.Header.Get("If-Unmodified-Since"); ius != "" && !lastModified.IsZero() {
			if t, err := http.ParseTime(ius); err == nil && lastModified.After(t) {
				return preconditionFailed
			}
		}
	}
	if inm := headerList(r, "If-None-Match"); inm != "" {
		if matchETag(inm, etag, false) {
			return notModified
		}
	} else if ims := r.Header.Get("If-Modified-Since"); ims != "" && !lastModified.IsZero() {
		if t, err := http.ParseTime(ims); err == nil && !lastModified.After(t) {
			return notModified
		}
	}
	return proceed
}

// headerList joins the field lines of a list-valued header (RFC 9110 §5.3).
func headerList(r *http.Request, key string) string {
	return strings.Join(r.Header.Values(key), ", ")
}

// matchETag reports whether the If-Match / If-None-Match list matches the
// current tag, with the strong (If-Match, RFC 9110 §13.1.1) or weak
// (If-None-Match, §13.1.2) comparison of §8.8.3.2. "*" matches any
// existing representation.
func matchETag(list, current string, strong bool) bool {
	list = strings.TrimSpace(list)
	if list == "*" {
		return true
	}
	if current == "" || strong && isWeak(current) {
		return false
	}
	for {
		list = strings.TrimLeft(list, " \t,")
		if list == "" {
			return false
		}
		tag, rest, ok := scanETag(list)
		if !ok {
			return false
		}
		list = rest
		if strong && !isWeak(tag) && tag == current ||
			!strong && strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(current, "W/") {
			return true
		}
	}
}

func isWeak(tag string) bool { return strings.HasPrefix(tag, "W/") }

// scanETag splits the entity-tag at the start of s (RFC 9110 §8.8.3) from
// the rest.
func scanETag(s string) (tag, rest string, ok bool) {
	i := 0
	if strings.HasPrefix(s, "W/") {
		i = 2
	}
	if len(s) <= i || s[i] != '"' {
		return "", "", false
	}
	end := strings.IndexByte(s[i+1:], '"')
	if end < 0 {
		return "", "", false
	}
	n := i + 1 + end + 1
	return s[:n], s[n:], true
}

// ifRangeHolds reports whether a Range may be honoured under If-Range
// (RFC 9110 §13.1.5): absent, or a strong ETag equal to the current one, or
// a date equal to Last-Modified.
func ifRangeHolds(ifRange, etag string, lastModified time.Time) bool {
	ifRange = strings.TrimSpace(ifRange)
	if ifRange == "" {
		return true
	}
	if strings.HasPrefix(ifRange, `"`) || isWeak(ifRange) {
		return etag != "" && !isWeak(etag) && ifRange == etag
	}
	t, err := http.ParseTime(ifRange)
	return err == nil && !lastModified.IsZero() && lastModified.Equal(t)
}

type rangeKind int

const (
	rangeNone          rangeKind = iota // no usable range: 200 with the full body
	rangeOne                            // one satisfiable range: 206
	rangeUnsatisfiable                  // 416
)

// parseRange interprets a Range header for a representation of size bytes
// (RFC 9110 §14.1.2, §14.2). An invalid header is ignored (rangeNone), as
// are several ranges: this origin answers those with the full body, which
// §14.2 allows. When the header holds one satisfiable range it returns its
// start and length. A suffix range of an empty representation is
// satisfiable (§14.1.1) but has no bytes to put in a 206, so it gets 200.
func parseRange(h string, size int64) (kind rangeKind, start, length int64) {
	unit, set, ok := strings.Cut(h, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return rangeNone, 0, 0
	}
	specs, satisfiable := 0, 0
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.Trim(spec, " \t")
		if spec == "" {
			continue // empty list elements are allowed (§5.6.1)
		}
		specs++
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return rangeNone, 0, 0
		}
		first, last = strings.Trim(first, " \t"), strings.Trim(last, " \t")
		if first == "" {
			n, ok := parseDigits(last)
			if !ok {
				return rangeNone, 0, 0
			}
			if n > 0 {
				satisfiable++
				start, length = max(size-n, 0), min(n, size)
			}
			continue
		}
		a, ok := parseDigits(first)
		if !ok {
			return rangeNone, 0, 0
		}
		b := int64(-1) // "a-": to the end
		if last != "" {
			if b, ok = parseDigits(last); !ok || b < a {
				return rangeNone, 0, 0
			}
		}
		if a < size {
			satisfiable++
			if b < 0 || b >= size {
				b = size - 1
			}
			start, length = a, b-a+1
		}
	}
	switch {
	case specs == 0:
		return rangeNone, 0, 0
	case satisfiable == 0:
		return rangeUnsatisfiable, 0, 0
	case specs > 1 || length == 0:
		return rangeNone, 0, 0
	}
	return rangeOne, start, length
}

// parseDigits parses 1*DIGIT, saturating at the largest int64: a position
// beyond any size is valid syntax, merely unsatisfiable.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63-1-9)/10 {
			n = 1<<63 - 1
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// contentRange is the Content-Range of bytes a..b of size, told truthfully
// or with the lie named by Mode.LieContentRange.
func contentRange(lie string, a, b, size int64) string {
	switch lie {
	case "start":
		if a > 0 {
			a--
		} else {
			a++
		}
	case "end":
		if b > a {
			b--
		} else {
			b++
		}
	case "total":
		size++
	case "star":
		return fmt.Sprintf("bytes %d-%d/*", a, b)
	case "malformed":
		return fmt.Sprintf("bytes %d-%d", a, b)
	}
	return fmt.Sprintf("bytes %d-%d/%d", a, b, size)
}

// contentType maps the extension of name to a media type from a fixed
// table, so answers are the same on every machine (mime.TypeByExtension
// reads the system's tables).
func contentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".mp4":
		return "video/mp4"
	case ".m4s":
		return "video/iso.segment"
	case ".m4v":
		return "video/x-m4v"
	case ".webm":
		return "video/webm"
	case ".mkv":
		return "video/x-matroska"
	case ".ts":
		return "video/mp2t"
	case ".mp3":
		return "audio/mpeg"
	case ".m4a":
		return "audio/mp4"
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".mpd":
		return "application/dash+xml"
	case ".zip":
		return "application/zip"
	case ".gz", ".tgz":
		return "application/gzip"
	case ".tar":
		return "application/x-tar"
	case ".iso":
		return "application/x-iso9660-image"
	case ".json":
		return "application/json"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".png":
		return "image/png"
	}
	return "application/octet-stream"
}
