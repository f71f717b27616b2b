package edge_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/slicer"
)

// fuzzObjects are the objects FuzzOriginAnswer asks for: slice-aligned,
// a slice and a bit, and smaller than a slice. Each has versions 1 and 2.
var fuzzObjects = []struct {
	path string
	size int64
}{
	{"/fz/a.bin", 3 << 20},
	{"/fz/b.bin", 1<<20 + 13},
	{"/fz/c.bin", 70 << 10},
}

// answerKinds are the ways the fuzzed origin answers one of the edge's own
// fetches (discovery, revalidation, fill). Each is a lie, a failure or
// the truth; the bytes it sends are always those of the version its
// validator names, so that "every byte is of one version" is the edge's
// doing alone.
const (
	answerTruth        = iota // 206 (or 200) with exactly what was asked
	answerWhole               // 200 with the whole object, ignoring Range
	answerStartOff            // Content-Range start off by one, body as asked
	answerEndOff              // Content-Range end off by one
	answerTotalOff            // Content-Range total one more
	answerHugeTotal           // Content-Range total 2^63-1
	answerMultipart           // a multipart/byteranges 206 to one range, chunked, with the range's Content-Range
	answerGzip                // the body gzip-compressed, Content-Encoding: gzip, chunked
	answerGzipPadded          // gzip, cut or padded to the length asked for
	answerTruncated           // Content-Length says all, half comes, then close
	answerLonger              // chunked, the asked bytes and more
	answerOtherVersion        // the other version's bytes and validator
	answerWeakETag            // a weak validator
	answerNoValidator         // no ETag, no Last-Modified
	answer304Other            // 304 with another ETag (or 500 when not conditional)
	answer500                 // 500
	answer412                 // 412
	answer416                 // 416 with a made-up length
	answerStall               // the truth, stalling past the read timeout after some bytes
	answerHugeLength          // 200 with Content-Length 2^63-1, a few bytes, close
	answerKinds
)

// FuzzOriginAnswer puts a fuzzed origin in front of a real edge on a real
// store: per origin request the input chooses the status, Content-Range,
// length, validator, encoding, content type, multipart, truncation and
// stalls. For every answer a client gets, every byte belongs to one version
// of the object (the client's own headers go through on a pass, and the
// origin answers those honestly), or the answer is cut, or a 5xx. The
// process never panics, and the live heap stays bounded.
func FuzzOriginAnswer(f *testing.F) {
	// A seed is: the object, the first request's Range, then the answers
	// of the origin's fetches in turn (a kind, plus answerKinds for
	// version 2). The first fetch is the discovery, the next ones fills.
	for _, seed := range [][]byte{
		{0, 0, answerTruth},
		{0, 1, answerTruth, answerMultipart, answerTruth},
		{1, 2, answerTruth, answerGzip, answerTruth, answerTruth},
		{0, 1, answerTruth, answerGzipPadded, answerTruth},
		{0, 1, answerTruth, answerLonger, answerTruth},
		{0, 1, answerTruth, answerTruncated, answerTruth, answerTruth},
		{1, 0, answerWhole, answerOtherVersion, answerTruth},
		{0, 1, answerTruth, answerOtherVersion + answerKinds, answerTruth},
		{2, 4, answerHugeTotal, answerTruth},
		{0, 1, answerTruth, answerHugeLength, answerTruth},
		{1, 1, answerStartOff, answerEndOff, answerTotalOff, answerTruth},
		{0, 1, answerTruth, answerStartOff, answerTruth},
		{0, 3, answer304Other, answerTruth},
		{0, 1, answerTruth, answerStall, answerTruth},
		{2, 5, answerWeakETag, answerNoValidator, answer412, answer416, answer500},
		{0, 2, answerMultipart, answerGzipPadded, answerLonger, answerTruth},
	} {
		f.Add(seed)
	}
	h := newHarnessWith(f, setup{Config: edited("read_timeout: 5s", "read_timeout: 300ms")})
	var script fuzzScript
	h.setHook(script.answer)
	execs := 0
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 2 {
			return
		}
		obj := fuzzObjects[int(in[0])%len(fuzzObjects)]
		// An object of its own per input: what earlier inputs stored is
		// not this one's to meet.
		execs++
		obj.path = fmt.Sprintf("/fz/%d%s", execs, strings.TrimPrefix(obj.path, "/fz"))
		script.set(in[2:], obj.path, obj.size)
		client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableCompression: true}}
		defer client.CloseIdleConnections()
		// Two requests: the input's, which discovers the object, then the
		// whole object, whose missing slices are filled with the object
		// known: both kinds of origin fetch meet the script.
		for k, rng := range []string{fuzzRange(in[1], obj.size), ""} {
			req, err := http.NewRequest(http.MethodGet, h.srv.URL+obj.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "edge.test"
			req.Header.Set("X-Fuzz-Client", "1") // what a pass-through carries, and a fetch of the edge's own does not
			if rng != "" {
				req.Header.Set("Range", rng)
			}
			if k == 0 && in[1]%7 == 3 {
				req.Header.Set("If-None-Match", origintest.ETag(obj.path, 1))
			}
			resp, err := client.Do(req)
			if err != nil {
				continue // refused or cut before the headers: allowed
			}
			body, readErr := io.ReadAll(resp.Body)
			resp.Body.Close()
			what := fmt.Sprintf("GET %s Range %q, script %v: status %d, X-Cache %s, Cache-Status %q",
				obj.path, rng, in[2:], resp.StatusCode, resp.Header.Get("X-Cache"), resp.Header.Get("Cache-Status"))
			checkFuzzAnswer(t, what, resp, body, readErr, obj.path, obj.size)
		}
		if heap := liveHeap(); heap > 1<<30 {
			t.Fatalf("script %v: live heap %d MiB", in, heap>>20)
		}
	})
}

// checkFuzzAnswer checks one client answer: a 5xx or any 4xx is allowed; a
// 200 or 206 holds bytes of one version at the offsets it says (parts of a
// multipart answer each), decoded first when the edge passed a gzip answer
// through with its Content-Encoding; a cut body's bytes are checked as far
// as they came.
func checkFuzzAnswer(t *testing.T, what string, resp *http.Response, body []byte, readErr error, path string, size int64) {
	t.Helper()
	if resp.StatusCode != 200 && resp.StatusCode != 206 {
		return
	}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if readErr != nil {
			return // a cut gzip stream: nothing to decode reliably
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: Content-Encoding gzip, but not gzip: %v", what, err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: Content-Encoding gzip, but not gzip: %v", what, err)
		}
	}
	oneOf := func(b []byte, off int64, part string) {
		if len(b) == 0 {
			return
		}
		if vs := origintest.WhichVersion(b, path, off, 2); len(vs) != 1 || vs[0] < 1 {
			t.Fatalf("%s%s: %d bytes at offset %d are of versions %v (cut: %v)", what, part, len(b), off, vs, readErr)
		}
	}
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case resp.StatusCode == 200:
		if readErr == nil && resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
			t.Fatalf("%s: %d bytes, Content-Length %d", what, len(body), resp.ContentLength)
		}
		oneOf(body, 0, "")
	case mt == "multipart/byteranges":
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for k := 0; ; k++ {
			part, err := mr.NextPart()
			if err != nil {
				if err != io.EOF && readErr == nil {
					t.Fatalf("%s: multipart: %v", what, err)
				}
				return
			}
			r, _, _, err := slicer.ParseContentRange(part.Header.Get("Content-Range"))
			if err != nil {
				t.Fatalf("%s: part %d Content-Range %q", what, k, part.Header.Get("Content-Range"))
			}
			pb, perr := io.ReadAll(part)
			if perr == nil && int64(len(pb)) != r.Len() {
				t.Fatalf("%s: part %d has %d bytes for %q", what, k, len(pb), part.Header.Get("Content-Range"))
			}
			oneOf(pb, r.Start, fmt.Sprintf(" part %d", k))
		}
	default:
		// The total may be the one a lying discovery answer gave: what the
		// object is, no cache can know better. Its bytes are checked.
		r, _, _, err := slicer.ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			t.Fatalf("%s: Content-Range %q", what, resp.Header.Get("Content-Range"))
		}
		if readErr == nil && int64(len(body)) != r.Len() {
			t.Fatalf("%s: %d bytes for Content-Range %q", what, len(body), resp.Header.Get("Content-Range"))
		}
		oneOf(body, r.Start, "")
	}
}

// fuzzRange is the Range header a client sends, chosen by b: none, one
// range, a suffix, two ranges, or one past the end.
func fuzzRange(b byte, size int64) string {
	switch b % 6 {
	case 0:
		return ""
	case 1:
		return "bytes=100-199"
	case 2:
		return fmt.Sprintf("bytes=%d-", size/2)
	case 3:
		return "bytes=-1000"
	case 4:
		return fmt.Sprintf("bytes=0-9,%d-%d", size-10, size-1)
	}
	return fmt.Sprintf("bytes=%d-%d", 1<<20-5, 1<<20+5)
}

// fuzzScript is the fuzzed origin: the n-th request of the edge's own
// answers as script[n % len] says; a pass-through (it carries the client's
// X-Fuzz-Client) is answered honestly.
type fuzzScript struct {
	mu   chan struct{} // a one-slot lock, so answers can be set between inputs
	kind []byte
	path string
	size int64
	n    int
}

func (s *fuzzScript) lock() {
	if s.mu == nil {
		panic("fuzzScript used before set")
	}
	s.mu <- struct{}{}
}
func (s *fuzzScript) unlock() { <-s.mu }

func (s *fuzzScript) set(kinds []byte, path string, size int64) {
	if s.mu == nil {
		s.mu = make(chan struct{}, 1)
	}
	s.lock()
	defer s.unlock()
	s.kind, s.path, s.size, s.n = append([]byte(nil), kinds...), path, size, 0
}

// next returns the kind and version of the next answer to path.
func (s *fuzzScript) next(path string) (kind, version int, size int64, ok bool) {
	s.lock()
	defer s.unlock()
	if path != s.path {
		for _, o := range fuzzObjects {
			if strings.HasSuffix(path, strings.TrimPrefix(o.path, "/fz")) {
				return answerTruth, 1, o.size, true // a fill of an earlier input's object
			}
		}
		return 0, 0, 0, false
	}
	if len(s.kind) == 0 {
		return answerTruth, 1, s.size, true
	}
	b := s.kind[s.n%len(s.kind)]
	s.n++
	return int(b) % answerKinds, 1 + int(b/answerKinds)%2, s.size, true
}

func (s *fuzzScript) answer(w http.ResponseWriter, r *http.Request) bool {
	kind, version, size, ok := s.next(r.URL.Path)
	if !ok {
		w.WriteHeader(404)
		return true
	}
	path := r.URL.Path
	etag := origintest.ETag(path, version)
	h := w.Header()
	h.Set("Cache-Control", "max-age=60")
	h.Set("Content-Type", "application/octet-stream")
	if r.Header.Get("X-Fuzz-Client") != "" {
		// A pass-through: the client's own request, answered truly.
		h.Set("ETag", etag)
		http.ServeContent(w, r, "", origintest.LastModified(version), &fuzzContent{name: path, version: version, size: size})
		return true
	}
	switch kind {
	case answerWeakETag:
		h.Set("ETag", "W/"+etag)
	case answerNoValidator:
	default:
		h.Set("ETag", etag)
		h.Set("Last-Modified", origintest.LastModified(version).UTC().Format(http.TimeFormat))
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if kind == answer304Other {
			h.Set("ETag", `"someone-else"`)
			w.WriteHeader(http.StatusNotModified)
			return true
		}
		if inm == etag && kind == answerTruth {
			w.WriteHeader(http.StatusNotModified)
			return true
		}
	}
	if im := r.Header.Get("If-Match"); im != "" && im != etag && kind != answerOtherVersion {
		w.WriteHeader(http.StatusPreconditionFailed)
		return true
	}
	start, end := int64(0), size // the bytes asked for: [start, end)
	ranged := false
	if rh := r.Header.Get("Range"); rh != "" {
		specs, err := slicer.Parse(rh)
		if err == nil {
			if rs, err := slicer.Resolve(specs, size, slicer.Limits{}); err == nil && len(rs) == 1 {
				start, end, ranged = rs[0].Start, rs[0].End, true
			}
		}
	}
	data := make([]byte, end-start)
	origintest.Fill(data, path, version, start)
	cr := func(a, b, total int64) string { return fmt.Sprintf("bytes %d-%d/%d", a, b-1, total) }
	status := http.StatusOK
	if ranged {
		status = http.StatusPartialContent
		h.Set("Content-Range", cr(start, end, size))
	}
	switch kind {
	case answerWhole:
		h.Del("Content-Range")
		data = make([]byte, size)
		origintest.Fill(data, path, version, 0)
		status = http.StatusOK
	case answerStartOff, answerEndOff, answerTotalOff, answerHugeTotal:
		a, b, total := start, end, size
		switch kind {
		case answerStartOff:
			a++
		case answerEndOff:
			b--
		case answerTotalOff:
			total++
		case answerHugeTotal:
			total = 1<<63 - 1
		}
		h.Set("Content-Range", cr(a, b, total))
		status = http.StatusPartialContent
	case answerMultipart:
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		half := (end - start) / 2
		for _, p := range [][2]int64{{start, start + half}, {start + half, end}} {
			pw, _ := mw.CreatePart(map[string][]string{"Content-Range": {cr(p[0], p[1], size)}, "Content-Type": {"application/octet-stream"}})
			pw.Write(data[p[0]-start : p[1]-start])
		}
		mw.Close()
		// The Content-Range of the one range asked for, no length: a
		// client reading that many bytes gets the multipart framing.
		h.Set("Content-Type", "multipart/byteranges; boundary="+mw.Boundary())
		w.WriteHeader(http.StatusPartialContent)
		w.Write(buf.Bytes())
		return true
	case answerGzip, answerGzipPadded:
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
		h.Set("Content-Encoding", "gzip")
		if kind == answerGzip {
			// Chunked: as many bytes as the origin likes.
			w.WriteHeader(status)
			w.Write(buf.Bytes())
			return true
		}
		// Cut or padded to the length asked for, so no length gives it away.
		z := buf.Bytes()
		data = append(z[:min(len(z), len(data))], make([]byte, max(0, len(data)-len(z)))...)
	case answerTruncated:
		h.Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(status)
		w.Write(data[:len(data)/2])
		panic(http.ErrAbortHandler)
	case answerLonger:
		w.WriteHeader(status)
		w.Write(data)
		w.(http.Flusher).Flush() // chunked: no Content-Length
		w.Write(bytes.Repeat([]byte{0x5a}, 4096))
		return true
	case answerOtherVersion:
		other := 3 - version
		h.Set("ETag", origintest.ETag(path, other))
		h.Set("Last-Modified", origintest.LastModified(other).UTC().Format(http.TimeFormat))
		origintest.Fill(data, path, other, start)
	case answer304Other, answer500:
		w.WriteHeader(http.StatusInternalServerError)
		return true
	case answer412:
		w.WriteHeader(http.StatusPreconditionFailed)
		return true
	case answer416:
		h.Del("Content-Range")
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(size/3, 10))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return true
	case answerStall:
		h.Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(status)
		cut := min(len(data), 1000)
		w.Write(data[:cut])
		w.(http.Flusher).Flush()
		time.Sleep(500 * time.Millisecond) // past the edge's 300ms read timeout
		w.Write(data[cut:])
		return true
	case answerHugeLength:
		h.Del("Content-Range")
		h.Set("Content-Length", strconv.FormatInt(1<<63-1, 10))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:min(len(data), 4096)])
		panic(http.ErrAbortHandler)
	}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	w.Write(data)
	return true
}

// liveHeap is the live heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
