package httpapi

import (
	"net/http"

	"github.com/holdfast-io/holdfast/escrow"
)

// healthz answers while the process serves at all.
func (s *Server) healthz(w http.ResponseWriter, req *http.Request) {
	s.writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "region": s.name})
}

// readyz answers 200 only when the region accepts writes: not while it
// starts, closes or rebuilds, and not while it is fenced or on probation.
func (s *Server) readyz(w http.ResponseWriter, req *http.Request) {
	if !s.rt.Ready() {
		s.problem(exch(w, req), http.StatusServiceUnavailable, ProblemNotReady,
			"the region is starting, closing or rebuilding its state from storage", nil)
		return
	}
	if st := s.rt.Fence(); st.Fenced {
		w.Header().Set("Retry-After", s.fenceRetryAfter())
		s.problem(exch(w, req), http.StatusServiceUnavailable, escrow.CodeFenced.String(), st.Detail, nil)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "region": s.name})
}
