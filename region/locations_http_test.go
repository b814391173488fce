package region_test

import (
	"strings"
	"testing"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

func locationRegion(t *testing.T) (*region.Region, string) {
	// A Pebble store: the hold listing reads it.
	return openStoreRegion(t, t.TempDir(), func(c *region.Config) {
		c.Escrow.Locations = []escrow.Location{{ID: "eu-berlin", Owner: "eu"}, {ID: "eu-paris", Owner: "eu"}, {ID: "us-nyc", Owner: "us"}}
	})
}

// TestHTTPLocationHoldAllocations: restock per location, a split line's
// allocations in the reply, the per-location stock view, and a release
// returning units to exactly the locations they came from.
func TestHTTPLocationHoldAllocations(t *testing.T) {
	_, base := locationRegion(t)
	for loc, q := range map[string]string{"eu-berlin": "2", "eu-paris": "5"} {
		if res := call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":`+q+`,"location":"`+loc+`"}`, nil); res.Status != 200 {
			t.Fatalf("restock %s: %d %s", loc, res.Status, res.Body)
		}
	}
	res := call(t, base, "POST", "/v1/holds", jsonCT,
		`{"items":[{"sku":"A","qty":4,"locations":["eu-berlin","eu-paris"],"split":true}]}`, nil)
	if res.Status != 201 {
		t.Fatalf("hold: %d %s", res.Status, res.Body)
	}
	h := res.Hold(t)
	want := []api.Allocation{{Location: "eu-berlin", Qty: 2}, {Location: "eu-paris", Qty: 2}}
	if len(h.Items) != 1 || h.Items[0].SKU != "A" || h.Items[0].Qty != 4 || len(h.Items[0].Allocations) != 2 ||
		h.Items[0].Allocations[0] != want[0] || h.Items[0].Allocations[1] != want[1] {
		t.Fatalf("hold items: %+v", h.Items)
	}
	st, _ := getStock(t, base, "A")
	if b, p := st.Locations["eu-berlin"], st.Locations["eu-paris"]; b.Held != 2 || b.Available != 0 || p.Held != 2 || p.Available != 3 ||
		b.Regions["eu"].Held != 2 {
		t.Fatalf("per-location view: %+v", st.Locations)
	}
	var list api.HoldList
	call(t, base, "GET", "/v1/holds?sku=A", "", "", nil).JSON(t, &list)
	if len(list.Holds) != 1 || list.Holds[0].ID != h.ID {
		t.Fatalf("holds of sku A: %+v", list.Holds)
	}
	var one api.Stock
	call(t, base, "GET", "/v1/skus/A?location=eu-paris", "", "", nil).JSON(t, &one)
	if one.Location != "eu-paris" || one.SKU != "A" || one.Available != 3 || one.Held != 2 {
		t.Fatalf("?location= view: %+v", one)
	}
	if res := call(t, base, "POST", "/v1/holds/"+h.ID+"/release", jsonCT, `{}`, nil); res.Status != 200 {
		t.Fatalf("release: %d %s", res.Status, res.Body)
	}
	st, _ = getStock(t, base, "A")
	if b, p := st.Locations["eu-berlin"], st.Locations["eu-paris"]; b.Available != 2 || b.Held != 0 || p.Available != 5 || p.Held != 0 {
		t.Fatalf("after release: %+v", st.Locations)
	}
	m := string(call(t, base, "GET", "/metrics", "", "", nil).Body)
	if !strings.Contains(m, "holdfast_location_split_lines_total 1") {
		t.Fatalf("split lines not counted:\n%s", grepLines(m, "holdfast_location"))
	}
}

// TestHTTPLocationBadInput: a stock key as an item SKU, a malformed,
// unknown or unsellable location are 400s that change nothing, and the
// refusals of configured rules are counted.
func TestHTTPLocationBadInput(t *testing.T) {
	r, base := locationRegion(t)
	call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":3,"location":"eu-berlin"}`, nil)
	before := snapshot(t, r)
	for _, body := range []string{
		`{"items":[{"sku":"A\u001feu-berlin","qty":1}]}`,
		`{"items":[{"sku":"A","qty":1,"locations":["Berlin"]}]}`,
		`{"items":[{"sku":"A","qty":1,"locations":["atlantis"]}]}`,
		`{"items":[{"sku":"A","qty":1,"locations":["us-nyc"]}]}`,
		`{"items":[{"sku":"A","qty":1,"locations":["eu-berlin"]},{"sku":"A","qty":1}]}`,
	} {
		if res := call(t, base, "POST", "/v1/holds", jsonCT, body, nil); res.Status != 400 {
			t.Errorf("hold %s: %d %s", body, res.Status, res.Body)
		}
	}
	for _, body := range []string{`{"qty":1,"location":"us-nyc"}`, `{"qty":1,"location":"x y"}`} {
		if res := call(t, base, "POST", "/v1/skus/A/restock", jsonCT, body, nil); res.Status != 400 {
			t.Errorf("restock %s: %d %s", body, res.Status, res.Body)
		}
	}
	if after := snapshot(t, r); after != before {
		t.Fatalf("refused requests changed the state:\n%s\n%s", before, after)
	}
	m := string(call(t, base, "GET", "/metrics", "", "", nil).Body)
	if !strings.Contains(m, "holdfast_location_refused_total 3") {
		t.Fatalf("refusals not counted:\n%s", grepLines(m, "holdfast_location"))
	}
}
