package edge

// GET /ls on the admin API: the stored objects under a URL prefix.

import (
	"net/http"
	"strconv"
	"time"

	"github.com/sliceedge/sliceedge/segstore"
)

// Listing is the answer of GET /ls.
type Listing struct {
	Objects []ListedObject `json:"objects"`
	// Next, when set, is the key to pass as ?after= for the next page.
	Next string `json:"next,omitempty"`
}

// ListedObject is one stored object (or Vary variant) in a Listing.
type ListedObject struct {
	Key       string    `json:"key"`
	Size      int64     `json:"size"`
	SliceSize int64     `json:"slice_size"`
	Slices    int64     `json:"slices"`
	Stored    int64     `json:"stored"` // slices stored
	Status    int       `json:"status,omitempty"`
	StoredAt  time.Time `json:"stored_at"`
	Fresh     bool      `json:"fresh"`
	Tags      []string  `json:"tags,omitempty"` // the first maxListedTags
	// MoreTags counts the tags past those: a page of maxList objects
	// stays small whatever the origin tagged them with.
	MoreTags int `json:"more_tags,omitempty"`
}

// maxListedTags is the most tags GET /ls shows of one object.
const maxListedTags = 16

// maxList is the most objects one GET /ls answers; ?limit= asks for fewer.
const maxList = 10000

func (s *Server) adminList(w http.ResponseWriter, r *http.Request) {
	st, ok := s.admin(w)
	if !ok {
		return
	}
	q := r.URL.Query()
	prefix := ""
	if p := q.Get("prefix"); p != "" {
		var err error
		if prefix, err = keyPrefixOf(p); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	limit := 1000
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxList {
			adminError(w, http.StatusBadRequest, "limit "+strconv.Quote(l)+": want a number from 1 to "+strconv.Itoa(maxList))
			return
		}
		limit = n
	}
	after := q.Get("after")
	out := Listing{Objects: []ListedObject{}}
	err := st.ScanMeta(prefix, func(m *segstore.Meta) bool {
		if after != "" && m.Key <= after || len(m.Vary) > 0 { // a Vary marker is listed as its variants
			return true
		}
		if len(out.Objects) == limit {
			out.Next = out.Objects[limit-1].Key
			return false
		}
		o := ListedObject{Key: m.Key, Size: m.Size, SliceSize: m.SliceSize, Slices: m.SliceCount(), Status: m.Status,
			StoredAt: m.StoredAt, Fresh: s.fresh(m), Tags: tagsOf(m.Header)}
		if n := len(o.Tags); n > maxListedTags {
			o.Tags, o.MoreTags = o.Tags[:maxListedTags:maxListedTags], n-maxListedTags
		}
		o.Stored, _ = st.StoredRuns(m)
		out.Objects = append(out.Objects, o)
		return true
	})
	if err != nil {
		adminError(w, http.StatusInternalServerError, "list: "+err.Error())
		return
	}
	adminJSON(w, http.StatusOK, out)
}
