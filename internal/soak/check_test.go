package soak

import (
	"strings"
	"testing"

	"github.com/holdfast-io/holdfast/api"
)

// healthy is a small soak outcome that passes every check: 10 units of
// "s" restocked, one hold confirmed (2 units), one released, one left held.
func healthy() (*Ledger, *Final) {
	l := &Ledger{
		Regions:           []string{"eu", "us"},
		Restocked:         map[string]uint64{"s": 10},
		RestockAmbiguous:  map[string]uint64{},
		WrittenOff:        map[string]uint64{},
		WriteOffAmbiguous: map[string]uint64{},
		Holds: []*HoldRecord{
			{Key: "k1", Gateway: "eu", SKU: "s", Qty: 2, AckedIDs: []string{"eu-1"}, Confirmed: true},
			{Key: "k2", Gateway: "us", SKU: "s", Qty: 1, AckedIDs: []string{"us-1"}, Released: true},
			{Key: "k3", Gateway: "us", SKU: "s", Qty: 1, AckedIDs: []string{"us-2"}},
			{Key: "k4", Gateway: "eu", SKU: "s", Qty: 5}, // refused or lost: no ack
		},
	}
	view := map[string]api.RegionStock{
		"eu": {Available: 3, Held: 0, Sold: 2, Seq: 7},
		"us": {Available: 4, Held: 1, Sold: 0, Seq: 9},
	}
	hold := func(id, cart, state string, qty uint64) api.Hold {
		return api.Hold{ID: id, Cart: cart, State: state, Items: []api.Item{{SKU: "s", Qty: qty}}}
	}
	f := &Final{
		Stock: map[string]map[string]api.Stock{
			"eu": {"s": {SKU: "s", Region: "eu", Regions: view}},
			"us": {"s": {SKU: "s", Region: "us", Regions: view}},
		},
		Got: map[string]api.Hold{
			"eu-1": hold("eu-1", "k1", "confirmed", 2),
			"us-1": hold("us-1", "k2", "released", 1),
			"us-2": hold("us-2", "k3", "held", 1),
		},
		GetErr: map[string]string{},
		Listed: []api.Hold{hold("eu-1", "k1", "confirmed", 2), hold("us-1", "k2", "released", 1), hold("us-2", "k3", "held", 1)},
	}
	return l, f
}

func TestCheckHealthyPasses(t *testing.T) {
	l, f := healthy()
	if v := Check(l, f); len(v) != 0 {
		t.Fatalf("a healthy soak fails: %v", v)
	}
}

// Each planted fault must be caught by the named check, and only the
// violation kind it plants is expected among the results.
func TestCheckCatchesPlantedFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(l *Ledger, f *Final)
		want  string
	}{
		{"two ids acked for one key", func(l *Ledger, f *Final) {
			l.Holds[2].NoteAck("us-3")
			f.Got["us-3"] = f.Got["us-2"]
		}, "dup-key: key k3 acknowledged as 2 holds"},
		{"a second hold of a key in the store", func(l *Ledger, f *Final) {
			f.Listed = append(f.Listed, api.Hold{ID: "eu-9", Cart: "k3", State: "expired", Items: []api.Item{{SKU: "s", Qty: 1}}})
		}, "dup-key: key k3 has 2 holds in the stores"},
		{"acked hold not found", func(l *Ledger, f *Final) {
			delete(f.Got, "us-2")
		}, "lost-ack: hold us-2 (key k3) acknowledged but not found"},
		{"acked hold unreadable", func(l *Ledger, f *Final) {
			delete(f.Got, "us-2")
			f.GetErr["us-2"] = "503 owner unreachable"
		}, "lost-ack: hold us-2 (key k3) unreadable"},
		{"acked confirm lost", func(l *Ledger, f *Final) {
			g := f.Got["eu-1"]
			g.State = "expired"
			f.Got["eu-1"] = g
		}, "lost-ack: hold eu-1 (key k1) confirm acknowledged, now expired"},
		{"acked release lost", func(l *Ledger, f *Final) {
			g := f.Got["us-1"]
			g.State = "held"
			f.Got["us-1"] = g
		}, "lost-ack: hold us-1 (key k2) release acknowledged, now held"},
		{"hold with other items", func(l *Ledger, f *Final) {
			g := f.Got["us-2"]
			g.Items = []api.Item{{SKU: "s", Qty: 3}}
			f.Got["us-2"] = g
		}, "lost-ack: hold us-2 (key k3) has items"},
		{"hold not listed", func(l *Ledger, f *Final) {
			f.Listed = f.Listed[:2]
		}, "lost-ack: hold us-2 (key k3) found by GET but not listed"},
		{"a unit vanished", func(l *Ledger, f *Final) {
			v := cloneView(f.Stock["eu"]["s"].Regions)
			r := v["us"]
			r.Available--
			v["us"] = r
			setView(f, v)
		}, "conservation: s in eu's view: available 6 + held 1 + sold 2 = 9, want 10"},
		{"a unit appeared", func(l *Ledger, f *Final) {
			v := cloneView(f.Stock["eu"]["s"].Regions)
			r := v["eu"]
			r.Available++
			v["eu"] = r
			setView(f, v)
		}, "conservation: s in eu's view: available 8 + held 1 + sold 2 = 11, want 10"},
		{"negative available", func(l *Ledger, f *Final) {
			v := cloneView(f.Stock["eu"]["s"].Regions)
			v["eu"] = api.RegionStock{Available: -1, Sold: 6, Seq: 7}
			setView(f, v)
		}, "conservation: s: eu sees eu available -1 < 0"},
		{"views differ", func(l *Ledger, f *Final) {
			v := cloneView(f.Stock["us"]["s"].Regions)
			r := v["eu"]
			r.Seq = 6
			v["eu"] = r
			st := f.Stock["us"]["s"]
			st.Regions = v
			f.Stock["us"]["s"] = st
		}, "unconverged: s: us sees eu as"},
		{"sold more than came in", func(l *Ledger, f *Final) {
			v := cloneView(f.Stock["eu"]["s"].Regions)
			v["eu"] = api.RegionStock{Available: 0, Sold: 12, Seq: 7}
			v["us"] = api.RegionStock{Available: 0, Sold: 0, Seq: 9}
			setView(f, v)
		}, "oversell: s in eu's view: held 0 + sold 12 > 10 came in"},
		{"confirmed but not counted sold", func(l *Ledger, f *Final) {
			v := cloneView(f.Stock["eu"]["s"].Regions)
			v["eu"] = api.RegionStock{Available: 5, Sold: 0, Seq: 7}
			setView(f, v)
		}, "oversell: s in eu's view: sold 0 < 2 units whose confirm was acknowledged"},
		{"more confirmed than came in", func(l *Ledger, f *Final) {
			l.Restocked["s"] = 1
		}, "oversell: s: shoppers were told 2 units confirmed, at most 1 came in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, f := healthy()
			tc.plant(l, f)
			v := Check(l, f)
			found := false
			for _, x := range v {
				if strings.Contains(x, tc.want) {
					found = true
				}
			}
			if !found {
				t.Fatalf("planted %q, want a violation containing %q, got %v", tc.name, tc.want, v)
			}
		})
	}
}

// A lost restock answer widens conservation to a range: both outcomes pass,
// a third does not.
func TestCheckAmbiguousRestock(t *testing.T) {
	for _, tc := range []struct {
		restocked, ambiguous uint64
		pass                 bool
	}{
		{10, 0, true}, {8, 2, true}, {10, 5, true}, {11, 0, false}, {6, 3, false},
	} {
		l, f := healthy()
		l.Restocked["s"], l.RestockAmbiguous["s"] = tc.restocked, tc.ambiguous
		v := CheckConservation(l, f)
		if (len(v) == 0) != tc.pass {
			t.Errorf("restocked %d, ambiguous %d: pass=%v, violations %v", tc.restocked, tc.ambiguous, tc.pass, v)
		}
	}
}

func cloneView(m map[string]api.RegionStock) map[string]api.RegionStock {
	out := make(map[string]api.RegionStock, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// setView gives every region the same (converged) view v of "s".
func setView(f *Final, v map[string]api.RegionStock) {
	for r, m := range f.Stock {
		st := m["s"]
		st.Regions = v
		f.Stock[r]["s"] = st
	}
}
