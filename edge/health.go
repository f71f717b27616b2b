package edge

// Health endpoints, on the admin listener and without the admin token, for
// load balancers, orchestrators and supervisors:
//   - GET /healthz: the process is alive and serving HTTP (200);
//   - GET /readyz: it should be sent traffic (200), or not (503, with the
//     reason): the store is not open, an origin has no healthy member, or
//     the node is draining (shutting down, or handing over to a new
//     process).

import (
	"net/http"
	"strings"
)

// Ready reports whether the node should be sent traffic, and if not, why:
// every reason that holds, joined.
func (s *Server) Ready() (bool, string) {
	var why []string
	if s.draining.Load() {
		why = append(why, "draining: the node is shutting down or handing over to a new process")
	}
	if st, ok := s.Store.(interface{ Err() error }); ok {
		if err := st.Err(); err != nil {
			why = append(why, "store: "+err.Error())
		}
	}
	if ok, reason := s.OriginsReady(); !ok {
		why = append(why, "origins: "+reason)
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// StartDraining marks the node as draining: /readyz answers 503 from now on, so
// that balancers stop sending it new clients while it finishes the ones it
// has. It does not stop anything by itself.
func (s *Server) StartDraining() { s.draining.Store(true) }

// healthz answers that the process is alive.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 when Ready, else 503 with the reasons.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	ok, why := s.Ready()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: " + why + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}
