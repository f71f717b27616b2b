package edge

// GET /config on the admin API: the configuration in force, after the
// reloads, with its secrets hidden.

import (
	"net/http"
	"time"
)

// ConfigReport is the admin API's GET /config.
type ConfigReport struct {
	Source   string    `json:"source"`              // the file, or "embedded defaults"
	LoadedAt time.Time `json:"loaded_at,omitzero"`  // when it was put in force
	Started  time.Time `json:"started_at,omitzero"` // when the process started serving
	// Listeners and StoreDir are the values in force, after --listen and
	// --store-dir and whatever a reload could not apply.
	Listeners []string `json:"listeners"`
	StoreDir  string   `json:"store_dir"`
	// RestartPending names the keys the file changes but that wait for a
	// restart (SetRestartPending).
	RestartPending []string `json:"restart_pending,omitempty"`
	// YAML is the file's text as loaded, admin.token and cluster.secret
	// replaced by <redacted>.
	YAML string `json:"yaml"`
}

// configState is what GET /config tells beyond the Config itself.
type configState struct {
	loadedAt       time.Time
	restartPending []string
}

// SetRestartPending records the keys of the file in force that only a
// restart applies (serve's reload finds them).
func (s *Server) SetRestartPending(keys []string) {
	st := s.cfgState()
	s.cfgInfo.Store(&configState{loadedAt: st.loadedAt, restartPending: keys})
}

func (s *Server) cfgState() configState {
	if st := s.cfgInfo.Load(); st != nil {
		return *st
	}
	return configState{loadedAt: s.Started}
}

// noteLoaded records when a configuration was put in force.
func (s *Server) noteLoaded() {
	s.cfgInfo.Store(&configState{loadedAt: s.now()})
}

func (s *Server) adminConfig(w http.ResponseWriter, r *http.Request) {
	c := s.config()
	text, err := c.Redacted()
	if err != nil {
		adminError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if r.URL.Query().Get("format") == "yaml" {
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		w.Write(text)
		return
	}
	st := s.cfgState()
	// The listeners and the store are those the process started with
	// (s.Config): a reload does not move them.
	rep := ConfigReport{Source: c.Source, LoadedAt: st.loadedAt, Started: s.Started, StoreDir: s.Config.Store.Dir,
		RestartPending: st.restartPending, YAML: string(text)}
	for _, l := range s.Config.Listeners {
		scheme := "http://"
		if l.TLS != nil {
			scheme = "https://"
		}
		rep.Listeners = append(rep.Listeners, scheme+l.Address)
	}
	adminJSON(w, http.StatusOK, rep)
}
