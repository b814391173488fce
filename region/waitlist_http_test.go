package region_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/region"
)

// TestHTTPWaitlist: a sold-out hold with wait answers 202 + Location; the
// entry shows its position, is promoted to a hold when the unit comes
// back, and a promoted entry cannot be cancelled. Bad input is refused
// with precise problems and changes nothing.
func TestHTTPWaitlist(t *testing.T) {
	r, base := newHTTPRegion(t, region.NewMemStorage(), nil)
	if res := call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":1}`, nil); res.Status != http.StatusOK {
		t.Fatalf("restock: %d %s", res.Status, res.Body)
	}
	first := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}]}`, nil)
	if first.Status != http.StatusCreated {
		t.Fatalf("hold: %d %s", first.Status, first.Body)
	}
	h := first.Hold(t)
	if res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}]}`, nil); res.Status != http.StatusConflict {
		t.Fatalf("sold out without wait: %d %s", res.Status, res.Body)
	}
	before := snapshot(t, r)
	for _, body := range []string{`{"items":[{"sku":"A","qty":1}],"wait":"2h"}`, `{"items":[{"sku":"A","qty":1}],"wait":"soon"}`} {
		res := call(t, base, "POST", "/v1/holds", jsonCT, body, nil)
		if p := res.Problem(t); res.Status != http.StatusBadRequest || !strings.HasSuffix(p.Type, "/invalid") || !strings.Contains(p.Detail, "wait") {
			t.Fatalf("%s: %d %+v", body, res.Status, p)
		}
	}
	if after := snapshot(t, r); after != before {
		t.Fatalf("bad wait changed state:\n%s\n%s", before, after)
	}
	var ids []string
	for i := 0; i < 2; i++ {
		res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}],"wait":"2m"}`,
			map[string]string{"Idempotency-Key": "w" + string(rune('0'+i))})
		if res.Status != http.StatusAccepted {
			t.Fatalf("wait %d: %d %s", i, res.Status, res.Body)
		}
		var e api.WaitlistEntry
		res.JSON(t, &e)
		if e.State != "waiting" || len(e.Position) != 1 || e.Position[0] != uint64(i+1) || res.Header.Get("Location") != "/v1/waitlist/"+e.ID {
			t.Fatalf("wait %d: %+v, Location %q", i, e, res.Header.Get("Location"))
		}
		ids = append(ids, e.ID)
	}
	// A retry with the same key is the same entry.
	res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}],"wait":"2m"}`, map[string]string{"Idempotency-Key": "w0"})
	var again api.WaitlistEntry
	res.JSON(t, &again)
	if res.Status != http.StatusOK || again.ID != ids[0] || res.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %+v", res.Status, again)
	}
	if res := call(t, base, "POST", "/v1/holds/"+h.ID+"/release", "", "", nil); res.Status != http.StatusOK {
		t.Fatalf("release: %d %s", res.Status, res.Body)
	}
	var e0, e1 api.WaitlistEntry
	call(t, base, "GET", "/v1/waitlist/"+ids[0], "", "", nil).JSON(t, &e0)
	call(t, base, "GET", "/v1/waitlist/"+ids[1], "", "", nil).JSON(t, &e1)
	if e0.State != "promoted" || e0.HoldID == "" || e1.State != "waiting" || e1.Position[0] != 1 {
		t.Fatalf("after release: %+v / %+v", e0, e1)
	}
	if got := call(t, base, "GET", "/v1/holds/"+e0.HoldID, "", "", nil).Hold(t); got.State != "held" {
		t.Fatalf("promoted hold: %+v", got)
	}
	if res := call(t, base, "DELETE", "/v1/waitlist/"+ids[0], "", "", nil); res.Status != http.StatusConflict {
		t.Fatalf("cancel of a promoted entry: %d %s", res.Status, res.Body)
	}
	res = call(t, base, "DELETE", "/v1/waitlist/"+ids[1], "", "", nil)
	res.JSON(t, &e1)
	if res.Status != http.StatusOK || e1.State != "cancelled" {
		t.Fatalf("cancel: %d %+v", res.Status, e1)
	}
	if res := call(t, base, "GET", "/v1/waitlist/eu-000000000000000000", "", "", nil); res.Status != http.StatusNotFound {
		t.Fatalf("unknown entry: %d %s", res.Status, res.Body)
	}
	if res := call(t, base, "GET", "/v1/waitlist/nope", "", "", nil); res.Status != http.StatusBadRequest {
		t.Fatalf("malformed id: %d %s", res.Status, res.Body)
	}
	// Metrics: two joined, one promoted (its wait observed), one cancelled,
	// none waiting; every state label present.
	want := map[string]float64{
		"holdfast_waitlist_joined_total":                           2,
		"holdfast_waitlist_waiting":                                0,
		"holdfast_waitlist_waiting_units":                          0,
		`holdfast_waitlist_entries_ended_total{state="promoted"}`:  1,
		`holdfast_waitlist_entries_ended_total{state="cancelled"}`: 1,
		`holdfast_waitlist_entries_ended_total{state="expired"}`:   0,
		"holdfast_waitlist_wait_seconds_count":                     1,
	}
	got := gatherValues(t, r.Registry())
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

// gatherValues flattens a registry into "name{label=\"v\"}" → value
// (histograms as name_count).
func gatherValues(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if lp := m.GetLabel(); len(lp) > 0 {
				var parts []string
				for _, l := range lp {
					parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
				}
				name += "{" + strings.Join(parts, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[name] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[name+"_count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}
