package region_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/region"
)

// storeLookups is the value of holdfast_hold_store_lookups_total{result}.
func storeLookups(t *testing.T, r *region.Region, result string) float64 {
	t.Helper()
	mfs, err := r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "holdfast_hold_store_lookups_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestForwardedGetOfRetiredHold: a released hold that its owner (eu) has
// retired from memory is still read by GET — at eu, and at us, which
// forwards the GET to eu — from eu's store, in its final state; the store
// lookup is counted.
func TestForwardedGetOfRetiredHold(t *testing.T) {
	w := newMRWorld(t)
	w.configure = func(c *region.Config) { c.Escrow.HoldRetain = 50 * time.Millisecond }
	w.start("eu")
	w.start("us")
	w.mustDo("eu", restock("A", 2))
	h := w.mustDo("eu", hold("A", 1))
	if h.Err != nil {
		t.Fatal(h.Err)
	}
	id := h.Hold.ID
	if r := w.mustDo("eu", escrow.Command{Kind: escrow.CmdRelease, HoldID: id}); r.Err != nil {
		t.Fatal(r.Err)
	}
	eu := w.sites["eu"].reg
	// Retired: eu's node no longer knows the hold, so eu's GET is served
	// from the store.
	testutil.Eventually(t, 5*time.Second, "eu answers a GET of the retired hold from its store", func() bool {
		var known bool
		w.inspect("eu", func(n *escrow.Node) { _, known = n.Hold(id) })
		if known {
			return false
		}
		r := w.mustDo("eu", escrow.Command{Kind: escrow.CmdGet, HoldID: id})
		return r.Err == nil && storeLookups(t, eu, "found") >= 1
	})
	before := storeLookups(t, eu, "found")
	r, err := w.do("us", escrow.Command{Kind: escrow.CmdGet, HoldID: id})
	if err != nil || r.Err != nil {
		t.Fatalf("forwarded GET of a retired hold: %v %v", err, r.Err)
	}
	if r.Hold.ID != id || r.Hold.State != escrow.Released || len(r.Hold.Lines) != 1 || r.Hold.Lines[0].Qty != 1 {
		t.Fatalf("forwarded GET of a retired hold: %+v", r.Hold)
	}
	if got := storeLookups(t, eu, "found"); got != before+1 {
		t.Fatalf("store lookups found %v, want %v", got, before+1)
	}
	us := w.serveAPI("us")
	code, body := httpDo(t, "GET", us+"/v1/holds/"+id, nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"released"`) {
		t.Fatalf("HTTP GET at us of eu's retired hold: %d %s", code, body)
	}
	// A hold that never existed is still 404, and counted as such.
	missing := strings.TrimSuffix(id, id[len(id)-1:]) + "z"
	if missing == id {
		missing = id[:len(id)-1] + "y"
	}
	r, err = w.do("us", escrow.Command{Kind: escrow.CmdGet, HoldID: missing})
	if err != nil || r.Err == nil || r.Err.Code != escrow.CodeNotFound {
		t.Fatalf("GET of an unknown hold: %v %+v", err, r)
	}
	if storeLookups(t, eu, "not_found") < 1 {
		t.Fatal("a store lookup that found nothing is not counted")
	}
}
