package origintest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// ControlPrefix is the path prefix of the control endpoints that
// [Server.ControlHandler] serves and [Server.Handler] routes to it. A path
// under it is never an object.
const ControlPrefix = "/.origin/"

// Stats is the answer of GET /.origin/stats: the server's object counters.
type Stats struct {
	Requests  int64 `json:"requests"`   // [Server.Requests]
	BodyBytes int64 `json:"body_bytes"` // [Server.BodyBytes]
}

// ObjectInfo is the answer of GET /.origin/object?path=P.
type ObjectInfo struct {
	Size    int64 `json:"size"`    // bytes
	Version int   `json:"version"` // current version; see [Server.SetVersion]
}

// maxModeBody bounds a PUT /.origin/mode body; a Mode is a few hundred bytes.
const maxModeBody = 64 << 10

// ControlHandler serves the endpoints that let a process drive an origin
// running in another one (`sliceedge bench` against `sliceedge origin`):
//
//	GET    /.origin/stats           {"requests":N,"body_bytes":N}
//	POST   /.origin/reset           ResetCounters; 204
//	GET    /.origin/object?path=P   {"size":N,"version":N}; 404 if P is no object
//	PUT    /.origin/mode?path=P     body: a Mode as JSON; SetPathMode, or SetMode when P is empty; 204
//	DELETE /.origin/mode?path=P     ClearPathMode; 204
//
// A Mode is encoded by encoding/json with its Go field names; durations
// (Latency, Stall) are nanoseconds: {"Latency":20000000,"Bandwidth":52428800}.
// Unknown fields and an unknown LieContentRange are answered 400. Control
// requests are not counted in the object counters nor recorded in
// LastRequests.
func (s *Server) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ControlPrefix+"stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, Stats{Requests: s.Requests(), BodyBytes: s.BodyBytes()})
	})
	mux.HandleFunc("POST "+ControlPrefix+"reset", func(w http.ResponseWriter, r *http.Request) {
		s.ResetCounters()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+ControlPrefix+"object", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		size, version, ok := s.Object(p)
		if p == "" || !ok {
			writeText(w, http.StatusNotFound, fmt.Sprintf("origintest: no object %q", p))
			return
		}
		writeJSON(w, ObjectInfo{Size: size, Version: version})
	})
	mux.HandleFunc("PUT "+ControlPrefix+"mode", func(w http.ResponseWriter, r *http.Request) {
		var m Mode
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxModeBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			writeText(w, http.StatusBadRequest, "origintest: mode: "+err.Error())
			return
		}
		if err := m.check(); err != nil {
			writeText(w, http.StatusBadRequest, "origintest: mode: "+err.Error())
			return
		}
		if p := r.URL.Query().Get("path"); p != "" {
			s.SetPathMode(p, m)
		} else {
			s.SetMode(m)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE "+ControlPrefix+"mode", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		if p == "" {
			writeText(w, http.StatusBadRequest, "origintest: DELETE mode needs ?path=; PUT an empty mode ({}) to reset the server's mode")
			return
		}
		s.ClearPathMode(p)
		w.WriteHeader(http.StatusNoContent)
	})
	// Other paths under the prefix get the mux's 404, other methods its 405.
	return mux
}

// isControl reports whether a request is for the control endpoints.
func isControl(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, ControlPrefix) }

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs of numbers are written
		writeText(w, http.StatusInternalServerError, "origintest: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}
