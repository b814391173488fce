package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/api/view"
	"github.com/holdfast-io/holdfast/escrow"
)

// parseWait parses the wait of a hold within [MinTTL, the max wait].
func (s *Server) parseWait(v string) (time.Duration, error) {
	maxWait := s.maxWait
	if maxWait == 0 {
		maxWait = escrow.DefaultMaxWait
	}
	return parseDuration("wait", "2m", v, maxWait)
}

// writeWaitJoined answers a hold that joined the waitlist: 202 with the
// entry and its Location (200 when an idempotent retry found it).
func (s *Server) writeWaitJoined(x exchange, rep *escrow.Reply) {
	status := http.StatusAccepted
	if rep.Replayed {
		status = http.StatusOK
		x.setHeader("Idempotent-Replayed", "true")
	}
	x.setHeaderJoined("Location", "/v1/waitlist/", rep.Wait.ID)
	s.sendJSON(x, status, waitJSON(rep.Wait))
}

// waitCmd serves GET (read) and DELETE (cancel) of one waitlist entry.
func (s *Server) waitCmd(kind escrow.CommandKind) func(w http.ResponseWriter, req *http.Request) {
	return func(w http.ResponseWriter, req *http.Request) {
		cmd := escrow.Command{Kind: kind, HoldID: req.PathValue("id")}
		if _, err := escrow.OwnerOf(cmd.HoldID); err != nil {
			s.badRequest(exch(w, req), fmt.Sprintf("malformed waitlist entry id %q", cmd.HoldID))
			return
		}
		rep, ok := s.do(exch(w, req), cmd)
		if !ok {
			return
		}
		s.writeJSON(w, http.StatusOK, waitJSON(rep.Wait))
	}
}

// waitJSON is the API representation of a waitlist entry.
func waitJSON(e *escrow.WaitEntry) *api.WaitlistEntry {
	region, _ := escrow.OwnerOf(e.ID)
	out := &api.WaitlistEntry{
		ID: e.ID, Region: region, State: e.State.String(), Items: view.WaitItems(e.Lines),
		Position: e.Position, CreatedAt: e.Created.UTC(), ExpiresAt: e.Deadline.UTC(), UpdatedAt: e.Updated.UTC(),
		HoldID: e.HoldID, HoldTTL: e.TTL.String(),
	}
	if e.Meta != "" && json.Valid([]byte(e.Meta)) {
		out.Metadata = json.RawMessage(e.Meta)
	}
	return out
}
