// Package origin is sliceedge's upstream client. It fetches runs of slices
// with a Range request conditioned on the version being filled (If-Match, or
// If-Unmodified-Since when Last-Modified is the validator), and checks every
// response before a byte of it is used: the status, a Content-Range whose
// start, end and complete length are exactly the ones asked for, and a
// validator byte-identical to the version's. An origin that ignores Range
// (answers 200) is reported as such so the caller can cut the whole body
// into slices as it passes.
//
// Fills (fill.go) collapse concurrent requests per slice: every request
// that needs a slice already on its way reads the same bytes as they arrive.
package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// Response is an origin answer that passed validation.
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
}

// Client fetches from one origin. Its zero value is not usable: build it
// with NewClient. A Client is safe for concurrent use.
type Client struct {
	http        *http.Client
	readTimeout time.Duration
}

// Options tune a Client.
type Options struct {
	ConnectTimeout time.Duration // TCP connect; 0 means 5s
	ReadTimeout    time.Duration // headers and gaps between body bytes; 0 means 30s
	// Transport replaces the default transport (tests); nil is the default.
	Transport http.RoundTripper
}

// NewClient returns a Client for opts.
func NewClient(opts Options) *Client {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	rt := opts.Transport
	if rt == nil {
		rt = &http.Transport{
			Proxy:                 nil, // an edge talks to its origin directly
			DialContext:           (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: opts.ReadTimeout,
			DisableCompression:    true, // byte ranges address the identity encoding
			ReadBufferSize:        64 << 10,
			WriteBufferSize:       16 << 10,
		}
	}
	return &Client{
		http: &http.Client{
			Transport: rt,
			// Redirects are the client's business: pass them through.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		readTimeout: opts.ReadTimeout,
	}
}

// hopHeaders are not forwarded (RFC 9110 §7.6.1), nor are the headers the
// client uses to talk to the edge rather than to the object.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
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
	for _, h := range hopHeaders {
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
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return nil, fmt.Errorf("origin: %s %s: %w: %w", method, req.URL, ErrTimeout, err)
		}
		return nil, fmt.Errorf("origin: %s %s: %w", method, req.URL, err)
	}
	out, err := c.check(req, resp)
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
	out.Body = newBody(ctx, resp.Body, out.Range.Len(), out.Size < 0, c.readTimeout, cancel)
	return out, nil
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
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if !req.HasRange() {
			return nil, fmt.Errorf("origin: 206 to a request without Range: %w", ErrBadContentRange)
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
// body: a short body is ErrTruncated, never a short slice.
type body struct {
	rc      io.ReadCloser
	left    int64 // bytes still owed; unused when toEOF
	toEOF   bool  // no announced length: read until EOF
	timeout time.Duration
	ctx     context.Context // the request's; its cause says why it ended
	cancel  context.CancelCauseFunc
	timer   *time.Timer // cancels ctx with ErrTimeout when no byte comes in time
}

func newBody(ctx context.Context, rc io.ReadCloser, n int64, toEOF bool, timeout time.Duration, cancel context.CancelCauseFunc) *body {
	b := &body{rc: rc, left: n, toEOF: toEOF, timeout: timeout, ctx: ctx, cancel: cancel}
	b.timer = time.AfterFunc(timeout, func() { cancel(ErrTimeout) })
	return b
}

func (b *body) Read(p []byte) (int, error) {
	if !b.toEOF {
		if b.left <= 0 {
			return 0, io.EOF
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
	case err == io.EOF:
		return n, io.EOF
	case err != nil:
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return n, fmt.Errorf("origin: body ended %d bytes early: %w: %w", b.left, ErrTruncated, err)
		}
		if errors.Is(context.Cause(b.ctx), ErrTimeout) || isTimeout(err) {
			return n, fmt.Errorf("origin: no body byte for %v: %w: %w", b.timeout, ErrTimeout, err)
		}
		return n, fmt.Errorf("origin: read body: %w", err)
	}
	if !b.toEOF && b.left == 0 {
		return n, io.EOF
	}
	return n, nil
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
