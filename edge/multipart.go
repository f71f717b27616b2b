package edge

import (
	"bytes"
	"mime/multipart"
	"net/textproto"

	"github.com/sliceedge/sliceedge/slicer"
)

// multipartBody frames a multipart/byteranges answer (RFC 9110 §14.6).
// The framing is produced up front so Content-Length is exact.
type multipartBody struct {
	boundary string
	headers  [][]byte // framing before part k
	tail     []byte   // closing delimiter
	ranges   []slicer.Range
}

func newMultipart(contentType string, ranges []slicer.Range, size int64) *multipartBody {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mp := &multipartBody{boundary: mw.Boundary(), ranges: ranges}
	for _, rg := range ranges {
		h := textproto.MIMEHeader{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		h.Set("Content-Range", slicer.ContentRange(rg, size))
		mark := b.Len()
		// Writing to a bytes.Buffer cannot fail.
		_, _ = mw.CreatePart(h)
		mp.headers = append(mp.headers, bytes.Clone(b.Bytes()[mark:]))
	}
	mark := b.Len()
	_ = mw.Close()
	mp.tail = bytes.Clone(b.Bytes()[mark:])
	return mp
}

// length is the exact byte count of the whole body.
func (mp *multipartBody) length() int64 {
	n := int64(len(mp.tail))
	for k, rg := range mp.ranges {
		n += int64(len(mp.headers[k])) + rg.Len()
	}
	return n
}

func (mp *multipartBody) partHeader(k int) []byte { return mp.headers[k] }
func (mp *multipartBody) trailer() []byte         { return mp.tail }
