// Package origin is sliceedge's upstream client. It fetches runs of slices
// with a Range request conditioned on the version being filled (If-Match, or
// If-Unmodified-Since when Last-Modified is the validator), and checks every
// response before a byte of it is used: the status, a Content-Range whose
// start, end and complete length are exactly the ones asked for, one part
// of identity bytes (no multipart/byteranges, no content coding), a body
// that ends where it said, and a validator byte-identical to the version's.
// An origin that ignores Range (answers 200) is reported as such so the
// caller can cut the whole body into slices as it passes. Hop-by-hop headers
// never leave Fetch, in either direction (RFC 9110 §7.6.1).
//
// Fills (fill.go) collapse concurrent requests per slice: every request
// that needs a slice already on its way reads the same bytes as they arrive.
package origin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/sliceedge/sliceedge/slicer"
)

// Errors a Fetch reports. Callers map them to an answer with errors.Is.
var (
	// ErrVersionChanged: the origin's validator is not the version's (412 to
	// If-Match, or a different ETag). The object changed during the fill.
	ErrVersionChanged = errors.New("origin: object changed during the fill (validator mismatch)")
	// ErrBadContentRange: a 206 whose Content-Range is malformed or is not
	// the range asked for.
	ErrBadContentRange = errors.New("origin: Content-Range does not match the range asked for")
	// ErrTruncated: the body ended before the announced length.
	ErrTruncated = errors.New("origin: body truncated")
	// ErrTimeout: no response or no body byte within the read timeout.
	ErrTimeout = errors.New("origin: read timeout")
	// ErrUnsatisfiable: the origin answered 416; RangeError carries the size.
	ErrUnsatisfiable = errors.New("origin: range not satisfiable")
	// ErrBadAnswer: an answer that is not one part of identity bytes of
	// exactly the range asked for, in a way Content-Range does not show: a
	// multipart/byteranges 206, a content coding other than identity, or a
	// body that goes on past the length it announced. Nothing of it may be
	// used; what was already sent of it cannot be trusted either.
	ErrBadAnswer = errors.New("origin: answer is not one part of identity bytes of the range asked for")
	// ErrHeadersTooLarge: the response headers exceed Options.MaxHeaderBytes.
	ErrHeadersTooLarge = errors.New("origin: response headers too large")
)

// StatusError is an origin answer the edge does not slice (4xx, 5xx, 3xx).
// Resp is the origin's response, body unread, for the caller to relay or
// close.
type StatusError struct {
	Resp *http.Response
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("origin: unexpected status %d", e.Resp.StatusCode)
}

// RangeError is a 416 from the origin: Size is the complete length it gave,
// or -1.
type RangeError struct{ Size int64 }

func (e *RangeError) Error() string {
	return fmt.Sprintf("origin: range not satisfiable (size %d)", e.Size)
}

// Unwrap makes errors.Is(err, ErrUnsatisfiable) true.
func (e *RangeError) Unwrap() error { return ErrUnsatisfiable }

// Validator identifies one version of an object: a strong ETag, or
// Last-Modified when the rule accepts it. The zero Validator means none.
type Validator struct {
	ETag         string
	LastModified string
}

// IsZero reports whether v carries no validator.
func (v Validator) IsZero() bool { return v.ETag == "" && v.LastModified == "" }

// Matches reports whether other is byte-identical to v in the field v is
// based on (its ETag when it has one). Only a strong comparison is
// meaningful for byte ranges (RFC 9110 §8.8.3.2).
func (v Validator) Matches(other Validator) bool {
	if v.ETag != "" {
		return v.ETag == other.ETag
	}
	return v.LastModified != "" && v.LastModified == other.LastModified
}

// ValidatorOf extracts the strong validator of a response header: a strong
// ETag, else Last-Modified when useLastModified is set. A weak ETag is not a
// validator for byte ranges.
func ValidatorOf(h http.Header, useLastModified bool) Validator {
	var v Validator
	if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		v.ETag = et
	}
	if v.ETag == "" && useLastModified {
		v.LastModified = h.Get("Last-Modified")
	}
	return v
}

// Request is one request to an origin.
type Request struct {
	Method string      // GET (default) or HEAD
	URL    string      // absolute origin URL
	Host   string      // Host header override, "" = the URL's host
	Header http.Header // headers forwarded from the client (may be nil)
	// Range asks for these bytes. End may lie past the object when its size
	// is not yet known; the origin clamps it. Nil asks for the whole object.
	Range *slicer.Range
	// Suffix, when Range is nil and Suffix > 0, asks for the object's last
	// Suffix bytes ("bytes=-N"): the size need not be known.
	Suffix int64
	// IfMatch conditions the request on this version.
	IfMatch Validator
	// IfNoneMatch revalidates this version: a 304 means it is still current.
	IfNoneMatch Validator
}

// HasRange reports whether req asks for part of the object.
func (req *Request) HasRange() bool { return req.Range != nil || req.Suffix > 0 }

// rangeHeader is the Range header req sends, when HasRange.
func (req *Request) rangeHeader() string {
	if req.Range != nil {
		return req.Range.Header()
	}
	return "bytes=-" + strconv.FormatInt(req.Suffix, 10)
}

// Response is an origin answer that passed validation. Its Header holds no
// hop-by-hop header.
type Response struct {
	Status int
	Header http.Header
	// Size is the object's complete length, -1 when the origin did not say
	// (a chunked 200).
	Size int64
	// Range is the span of the object Body carries.
	Range slicer.Range
	// Ranged is false when the origin answered 200 to a Range request.
	Ranged bool
	// Body reads the bytes of Range and reports ErrTruncated or ErrTimeout
	// when the origin fails to deliver them. Close it.
	Body io.ReadCloser
	// CheckedAtEnd: no Content-Length enforces the body's length (it is
	// chunked or ends with the connection), so only at its end can Body
	// tell that nothing follows the announced bytes. After the last of
	// them Body reads once more and reports ErrBadAnswer if more come, or
	// io.EOF; until then none of its bytes may be kept.
	CheckedAtEnd bool
	// Member is the pool member that answered (Pool.Fetch); "" from a
	// Client.
	Member string
}

// Client fetches from one origin. Its zero value is not usable: build it
// with NewClient. A Client is safe for concurrent use.
type Client struct {
	http           *http.Client
	own            *http.Transport // the transport NewClient built, nil when given one
	readTimeout    time.Duration
	connectTimeout time.Duration
	maxHeaderBytes int64
}

// Options tune a Client.
type Options struct {
	// ConnectTimeout bounds the TCP connect and, for https origins, the
	// TLS handshake, each; 0 means 5s.
	ConnectTimeout time.Duration
	ReadTimeout    time.Duration // headers and gaps between body bytes; 0 means 30s
	// MaxHeaderBytes bounds the response headers (status line included)
	// read from the origin; 0 means 64 KiB. More is ErrHeadersTooLarge:
	// they would be stored with the object and replayed on every answer.
	MaxHeaderBytes int64
	// TLS is the client side of https connections (CAs, server name,
	// client certificate); nil means the system's roots and the URL's
	// host. It is cloned, not kept.
	TLS *tls.Config
	// MaxConns bounds the connections open to the origin at once; 0
	// means no limit. Requests past it wait for one to be free.
	MaxConns int
	// Transport replaces the default transport (tests); nil is the default.
	// Its own limits then apply, and MaxHeaderBytes is checked after the
	// headers are read.
	Transport http.RoundTripper
}

// DefaultMaxHeaderBytes is Options.MaxHeaderBytes when it is 0.
const DefaultMaxHeaderBytes = 64 << 10

// NewClient returns a Client for opts.
func NewClient(opts Options) *Client {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	c := &Client{readTimeout: opts.ReadTimeout, connectTimeout: opts.ConnectTimeout, maxHeaderBytes: opts.MaxHeaderBytes}
	rt := opts.Transport
	if rt == nil {
		c.own = &http.Transport{
			Proxy:       nil, // an edge talks to its origin directly
			DialContext: (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
			// Without it a TLS origin that accepts and never speaks holds
			// every request to it forever.
			TLSHandshakeTimeout:    opts.ConnectTimeout,
			MaxIdleConns:           256,
			MaxIdleConnsPerHost:    64,
			MaxConnsPerHost:        opts.MaxConns,
			IdleConnTimeout:        90 * time.Second,
			ResponseHeaderTimeout:  opts.ReadTimeout,
			MaxResponseHeaderBytes: opts.MaxHeaderBytes,
			DisableCompression:     true, // byte ranges address the identity encoding
			ReadBufferSize:         64 << 10,
			WriteBufferSize:        16 << 10,
		}
		if opts.TLS != nil {
			c.own.TLSClientConfig = opts.TLS.Clone()
		}
		rt = c.own
	}
	c.http = &http.Client{
		Transport: rt,
		// Redirects are the client's business: pass them through.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// Close closes the client's idle origin connections, when the transport is
// its own (a given Transport may be shared, so it is left alone). Requests
// in flight are not affected; a reload calls it on the client it replaces.
func (c *Client) Close() {
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
}

// hopByHop are the headers that describe a connection, not a message (RFC
// 9110 §7.6.1, and the obsolete ones still seen); with those a Connection
// header names, they never cross the edge.
var hopByHop = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// RemoveHopByHop deletes from h the hop-by-hop headers and every header
// its Connection header names (RFC 9110 §7.6.1). Fetch applies it in both
// directions; the edge's header policy applies it to what it forwards.
func RemoveHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
}

// edgeHeaders are the client's headers that address the edge rather than
// the object: Fetch sets its own.
var edgeHeaders = []string{
	"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
	"Accept-Encoding",
}

// Fetch sends req and validates the answer. On success the caller owns
// resp.Body. Status 304 (to IfNoneMatch) is returned as a Response with no
// body. Other statuses the edge does not slice come back as *StatusError.
func (c *Client) Fetch(ctx context.Context, req *Request) (*Response, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	ctx, cancel := context.WithCancelCause(ctx)
	hr, err := http.NewRequestWithContext(ctx, method, req.URL, nil)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("origin: build request for %s: %w", req.URL, err)
	}
	for k, vv := range req.Header {
		hr.Header[k] = vv
	}
	RemoveHopByHop(hr.Header)
	for _, h := range edgeHeaders {
		hr.Header.Del(h)
	}
	if req.Host != "" {
		hr.Host = req.Host
	}
	// Slices address bytes of the identity encoding.
	hr.Header.Set("Accept-Encoding", "identity")
	if req.HasRange() {
		hr.Header.Set("Range", req.rangeHeader())
	}
	setCondition(hr.Header, "If-Match", "If-Unmodified-Since", req.IfMatch)
	setCondition(hr.Header, "If-None-Match", "If-Modified-Since", req.IfNoneMatch)

	resp, err := c.http.Do(hr)
	if err != nil {
		cancel(nil)
		if isHeadersTooLarge(err) {
			return nil, c.headersTooLarge(method, req.URL, err)
		}
		if strings.Contains(err.Error(), "TLS handshake timeout") {
			// net/http's own error, which has no type: say which limit it was.
			return nil, fmt.Errorf("origin: %s %s: no TLS handshake within connect_timeout (%v): %w: %w", method, req.URL, c.connectTimeout, ErrTimeout, err)
		}
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return nil, fmt.Errorf("origin: %s %s: %w: %w", method, req.URL, ErrTimeout, err)
		}
		return nil, fmt.Errorf("origin: %s %s: %w", method, req.URL, err)
	}
	if n := headerBytes(resp); n > c.maxHeaderBytes {
		// Only a given Transport lets this through; ours stops at the limit.
		resp.Body.Close()
		cancel(nil)
		return nil, c.headersTooLarge(method, req.URL, fmt.Errorf("%d bytes of headers", n))
	}
	// Checked before the hop-by-hop headers go, so that a coding hidden
	// behind a Connection header is still seen.
	out, err := c.check(req, resp)
	RemoveHopByHop(resp.Header)
	if err != nil {
		var se *StatusError
		if !errors.As(err, &se) {
			resp.Body.Close()
			cancel(nil)
		} else {
			se.Resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		}
		return nil, err
	}
	if out.Status == http.StatusNotModified || method == http.MethodHead {
		resp.Body.Close()
		cancel(nil)
		out.Body = http.NoBody
		return out, nil
	}
	toEOF := out.Size < 0
	out.CheckedAtEnd = !toEOF && resp.ContentLength < 0
	out.Body = newBody(ctx, resp.Body, out.Range.Len(), toEOF, out.CheckedAtEnd, c.readTimeout, cancel)
	return out, nil
}

// headersTooLarge is the error for an answer whose headers exceed the
// limit, saying how to raise it.
func (c *Client) headersTooLarge(method, url string, err error) error {
	return fmt.Errorf("origin: %s %s: response headers exceed %d bytes (raise the origin's max_header_bytes): %w: %w",
		method, url, c.maxHeaderBytes, ErrHeadersTooLarge, err)
}

// isHeadersTooLarge recognises net/http's error for headers past
// MaxResponseHeaderBytes, which has no type of its own.
func isHeadersTooLarge(err error) bool {
	return strings.Contains(err.Error(), "server response headers exceeded")
}

// headerBytes is the size of resp's status line and headers as sent, near
// enough: "Name: value\r\n" per value.
func headerBytes(resp *http.Response) int64 {
	n := int64(len(resp.Status) + len(resp.Proto) + 3)
	for k, vv := range resp.Header {
		for _, v := range vv {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n
}

func setCondition(h http.Header, etagHeader, dateHeader string, v Validator) {
	switch {
	case v.ETag != "":
		h.Set(etagHeader, v.ETag)
	case v.LastModified != "":
		h.Set(dateHeader, v.LastModified)
	}
}

// check validates resp against req (DESIGN.md, request lifecycle step 5).
func (c *Client) check(req *Request, resp *http.Response) (*Response, error) {
	out := &Response{Status: resp.StatusCode, Header: resp.Header, Size: -1}
	// Both fields, so the version's own kind of validator is compared.
	got := Validator{ETag: ValidatorOf(resp.Header, false).ETag, LastModified: resp.Header.Get("Last-Modified")}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent {
		// Every Fetch asks for identity: slices address identity bytes.
		if ce := contentCoding(resp.Header); ce != "" {
			return nil, fmt.Errorf("origin: %d with Content-Encoding %q to Accept-Encoding: identity: %w", resp.StatusCode, ce, ErrBadAnswer)
		}
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if !req.HasRange() {
			return nil, fmt.Errorf("origin: 206 to a request without Range: %w", ErrBadContentRange)
		}
		if ct := resp.Header.Get("Content-Type"); isMultipartByteranges(ct) {
			// We ask for one range, which must come as one part (RFC
			// 9110 §15.3.7.2); the parts' boundaries and headers are not
			// the object's bytes, whatever the Content-Range says.
			return nil, fmt.Errorf("origin: 206 with Content-Type %q to the single range %s: %w", ct, req.rangeHeader(), ErrBadAnswer)
		}
		cr := resp.Header.Get("Content-Range")
		r, size, unsatisfied, err := slicer.ParseContentRange(cr)
		if err != nil || unsatisfied || size < 0 {
			return nil, fmt.Errorf("origin: Content-Range %q for %s: %w", cr, req.rangeHeader(), ErrBadContentRange)
		}
		var want slicer.Range
		if req.Range != nil {
			want = slicer.Range{Start: req.Range.Start, End: min(req.Range.End, size)}
		} else {
			want = slicer.Range{Start: max(size-req.Suffix, 0), End: size}
		}
		if r != want {
			return nil, fmt.Errorf("origin: Content-Range %q for %s (object of %d bytes): %w", cr, req.rangeHeader(), size, ErrBadContentRange)
		}
		if resp.ContentLength >= 0 && resp.ContentLength != r.Len() {
			return nil, fmt.Errorf("origin: Content-Length %d with Content-Range %q: %w", resp.ContentLength, cr, ErrBadContentRange)
		}
		out.Size, out.Range, out.Ranged = size, r, true
	case http.StatusOK:
		out.Size = resp.ContentLength
		out.Range = slicer.Range{Start: 0, End: max(out.Size, 0)}
		if out.Size < 0 {
			out.Range.End = -1 // unknown: read to EOF
		}
		out.Ranged = !req.HasRange()
	case http.StatusNotModified:
		if req.IfNoneMatch.IsZero() {
			return nil, &StatusError{Resp: resp}
		}
		return out, nil
	case http.StatusPreconditionFailed:
		if !req.IfMatch.IsZero() {
			return nil, fmt.Errorf("origin: 412 to If-Match %s: %w", req.IfMatch.String(), ErrVersionChanged)
		}
		return nil, &StatusError{Resp: resp}
	case http.StatusRequestedRangeNotSatisfiable:
		size := int64(-1)
		if _, n, unsatisfied, err := slicer.ParseContentRange(resp.Header.Get("Content-Range")); err == nil && unsatisfied {
			size = n
		}
		return nil, &RangeError{Size: size}
	default:
		return nil, &StatusError{Resp: resp}
	}
	if !req.IfMatch.IsZero() && !req.IfMatch.Matches(got) {
		return nil, fmt.Errorf("origin: validator %s, filling %s: %w", got.String(), req.IfMatch.String(), ErrVersionChanged)
	}
	return out, nil
}

// contentCoding is the content coding of an answer, "" for identity
// (RFC 9110 §8.4: a list, applied in order; "identity" is no coding).
func contentCoding(h http.Header) string {
	var codings []string
	for _, v := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			if c = textproto.TrimString(c); c != "" && !strings.EqualFold(c, "identity") {
				codings = append(codings, c)
			}
		}
	}
	return strings.Join(codings, ", ")
}

// isMultipartByteranges reports whether a Content-Type is
// multipart/byteranges (RFC 9110 §14.6), also when its parameters do not
// parse.
func isMultipartByteranges(ct string) bool {
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt == "multipart/byteranges"
	}
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(textproto.TrimString(mt), "multipart/byteranges")
}

// String quotes the validator for messages.
func (v Validator) String() string {
	if v.ETag != "" {
		return "ETag " + v.ETag
	}
	if v.LastModified != "" {
		return "Last-Modified " + strconv.Quote(v.LastModified)
	}
	return "none"
}

// IsConnectError reports whether err is a failure to reach the origin at
// all (refused, unreachable, DNS), as opposed to one during an answer.
func IsConnectError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// cancelBody releases a request's context when its body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// body enforces the announced length and the read timeout on an origin
// body: a short body is ErrTruncated, never a short slice; a body whose
// length no Content-Length enforces and that goes on past the announced
// bytes is ErrBadAnswer.
type body struct {
	rc       io.ReadCloser
	size     int64 // bytes announced; unused when toEOF
	left     int64 // bytes still owed; unused when toEOF
	toEOF    bool  // no announced length: read until EOF
	checkEnd bool  // the transport does not enforce size: see end
	ended    error // end's verdict, once it has one
	timeout  time.Duration
	ctx      context.Context // the request's; its cause says why it ended
	cancel   context.CancelCauseFunc
	timer    *time.Timer // cancels ctx with ErrTimeout when no byte comes in time
}

func newBody(ctx context.Context, rc io.ReadCloser, n int64, toEOF, checkEnd bool, timeout time.Duration, cancel context.CancelCauseFunc) *body {
	b := &body{rc: rc, size: n, left: n, toEOF: toEOF, checkEnd: checkEnd, timeout: timeout, ctx: ctx, cancel: cancel}
	b.timer = time.AfterFunc(timeout, func() { cancel(ErrTimeout) })
	return b
}

func (b *body) Read(p []byte) (int, error) {
	if !b.toEOF {
		if b.left <= 0 {
			return 0, b.end()
		}
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
	}
	b.timer.Reset(b.timeout)
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	switch {
	case err == io.EOF && !b.toEOF && b.left > 0:
		return n, fmt.Errorf("origin: body ended %d bytes early: %w", b.left, ErrTruncated)
	case err == io.EOF && !b.toEOF && b.checkEnd:
		// The transport saw the end right after the last byte owed.
		b.ended = io.EOF
		return n, io.EOF
	case err == io.EOF:
		return n, io.EOF
	case err != nil:
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return n, fmt.Errorf("origin: body ended %d bytes early: %w: %w", b.left, ErrTruncated, err)
		}
		return n, b.readError(err)
	}
	if !b.toEOF && b.left == 0 && !b.checkEnd {
		return n, io.EOF
	}
	// With checkEnd, the last bytes go to the reader now and the end is
	// checked on its next read, so waiters see them at once.
	return n, nil
}

// end reports the end of a body once the announced bytes are read. Where
// a Content-Length enforces the length the transport has stopped there.
// Otherwise (chunked, or delimited by the connection's close) the origin
// decides where the body ends, and a body longer than it announced is a
// lie about which bytes these were: one more read, within the read
// timeout, must report the end.
func (b *body) end() error {
	if !b.checkEnd {
		return io.EOF
	}
	if b.ended != nil {
		return b.ended
	}
	var buf [512]byte
	for tries := 0; b.ended == nil; tries++ {
		b.timer.Reset(b.timeout)
		n, err := b.rc.Read(buf[:])
		switch {
		case n > 0:
			b.ended = fmt.Errorf("origin: body goes on past the %d bytes it announced (no Content-Length): %w", b.size, ErrBadAnswer)
		case err == io.EOF:
			b.ended = io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			b.ended = fmt.Errorf("origin: body cut before its end was framed, after the %d bytes it announced: %w: %w", b.size, ErrTruncated, err)
		case err != nil:
			b.ended = b.readError(err)
		case tries >= 100:
			b.ended = fmt.Errorf("origin: checking the end of the body: %w", io.ErrNoProgress)
		}
	}
	return b.ended
}

// readError wraps a failed read of the body.
func (b *body) readError(err error) error {
	if errors.Is(context.Cause(b.ctx), ErrTimeout) || isTimeout(err) {
		return fmt.Errorf("origin: no body byte for %v: %w: %w", b.timeout, ErrTimeout, err)
	}
	return fmt.Errorf("origin: read body: %w", err)
}

func (b *body) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// Transport is the round tripper the client uses, for requests the edge
// passes through unchanged.
func (c *Client) Transport() http.RoundTripper { return c.http.Transport }
