package region_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
)

// TestMultiRegionWaitlistForwarded: GET and DELETE /v1/waitlist/{id} at a
// region that does not own the entry go to its owner over NATS (as hold
// operations do), through the real gossip forward codec; the answers are
// the owner's: waiting with its position, then promoted with its hold, and
// a cancel of the promoted entry is 409.
func TestMultiRegionWaitlistForwarded(t *testing.T) {
	w := newMRWorld(t, "eu", "us")
	w.mustDo("eu", restock("A", 1))
	h := w.mustDo("eu", escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, TTL: time.Minute})
	if h.Err != nil || h.Hold == nil {
		t.Fatalf("hold at eu: %+v", h)
	}
	j := w.mustDo("eu", escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, Wait: time.Minute, Meta: `{"c":1}`})
	if j.Err != nil || j.Wait == nil {
		t.Fatalf("wait at eu: %+v %v", j, j.Err)
	}
	id := j.Wait.ID
	us := w.serveAPI("us")
	get := func() api.WaitlistEntry {
		t.Helper()
		code, body := httpDo(t, "GET", us+"/v1/waitlist/"+id, nil)
		if code != http.StatusOK {
			t.Fatalf("GET at us: %d %s", code, body)
		}
		var e api.WaitlistEntry
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	if e := get(); e.State != "waiting" || e.Region != "eu" || len(e.Position) != 1 || e.Position[0] != 1 || string(e.Metadata) != `{"c":1}` {
		t.Fatalf("forwarded GET: %+v", e)
	}
	if r := w.mustDo("eu", escrow.Command{Kind: escrow.CmdRelease, HoldID: h.Hold.ID}); r.Err != nil {
		t.Fatalf("release: %v", r.Err)
	}
	e := get()
	if e.State != "promoted" || e.HoldID == "" {
		t.Fatalf("forwarded GET after the release: %+v", e)
	}
	if code, body := httpDo(t, "DELETE", us+"/v1/waitlist/"+id, nil); code != http.StatusConflict {
		t.Fatalf("forwarded cancel of a promoted entry: %d %s", code, body)
	}
	// A waiting entry cancelled through us.
	j2 := w.mustDo("eu", escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, Wait: time.Minute})
	if j2.Wait == nil {
		t.Fatalf("second wait at eu: %+v %v", j2, j2.Err)
	}
	code, body := httpDo(t, "DELETE", us+"/v1/waitlist/"+j2.Wait.ID, nil)
	var c api.WaitlistEntry
	if err := json.Unmarshal(body, &c); code != http.StatusOK || err != nil || c.State != "cancelled" {
		t.Fatalf("forwarded cancel: %d %s", code, body)
	}
	var st escrow.WaitState
	w.inspect("eu", func(n *escrow.Node) {
		for _, x := range n.WaitEntries() {
			if x.ID == j2.Wait.ID {
				st = x.State
			}
		}
	})
	if st != escrow.Cancelled {
		t.Fatalf("the owner has the entry %s, want cancelled", st)
	}
}
