package demo

import (
	"context"
	"fmt"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
	"github.com/holdfast-io/holdfast/escrow"
)

// Stock by location: the first region owns two warehouses. The demo stocks
// a SKU in both, holds more than either has with a splittable line, and
// checks that the hold is allocated across them and that the release puts
// every unit back where it came from.

const demoLocSKU = "loc-1"

// demoLocations are the warehouses of the first region (the same list in
// every region's config).
func demoLocations(first string) []escrow.Location {
	return []escrow.Location{{ID: first + "-berlin", Owner: first}, {ID: first + "-paris", Owner: first}}
}

// locOps is what the locations phase did.
type locOps struct {
	locs        []string
	stocked     map[string]uint64 // units restocked per location
	asked       uint64
	allocations []api.Allocation
	heldAfter   map[string]uint64 // the stock view's held per location while the hold lives
	availBack   map[string]uint64 // available per location after the release
	minted      uint64
}

func (r *run) locationPhase(ctx context.Context) (*locOps, error) {
	r.setPhase("locations")
	s := r.env.sites[0]
	out := &locOps{stocked: map[string]uint64{}, heldAfter: map[string]uint64{}, availBack: map[string]uint64{}}
	for i, l := range demoLocations(s.name) {
		q := uint64(3 + 2*i) // berlin 3, paris 5
		if _, err := s.client.RestockAt(ctx, demoLocSKU, l.ID, q); err != nil {
			return nil, fmt.Errorf("demo: restock %s at %s: %w", demoLocSKU, l.ID, err)
		}
		s.restocked()
		out.locs = append(out.locs, l.ID)
		out.stocked[l.ID] = q
		out.minted += q
	}
	out.asked = out.stocked[out.locs[0]] + 2 // more than the first warehouse has
	h, err := s.client.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: demoLocSKU, Qty: out.asked,
		Locations: out.locs, Split: true}}})
	if err != nil {
		return nil, fmt.Errorf("demo: hold of %s across %v: %w", demoLocSKU, out.locs, err)
	}
	r.ack(h.ID, h.State)
	if len(h.Items) == 1 {
		out.allocations = h.Items[0].Allocations
	}
	st, err := s.client.Stock(ctx, demoLocSKU)
	if err != nil {
		return nil, fmt.Errorf("demo: stock %s: %w", demoLocSKU, err)
	}
	for id, l := range st.Locations {
		out.heldAfter[id] = l.Held
	}
	r.say("== locations: %s keeps %s in two warehouses (%s %d, %s %d); a hold of %d allowed to split was allocated %v (%s)",
		s.name, demoLocSKU, out.locs[0], out.stocked[out.locs[0]], out.locs[1], out.stocked[out.locs[1]], out.asked, out.allocations, h.ID)
	rel, err := s.client.Release(ctx, h.ID)
	if err != nil {
		return nil, fmt.Errorf("demo: release %s: %w", h.ID, err)
	}
	r.ack(rel.ID, rel.State)
	for _, id := range out.locs {
		st, err := s.client.StockAt(ctx, demoLocSKU, id)
		if err != nil {
			return nil, fmt.Errorf("demo: stock %s at %s: %w", demoLocSKU, id, err)
		}
		out.availBack[id] = st.Available
	}
	return out, nil
}

// check is the phase's summary line: the hold took everything of the first
// warehouse and the rest from the second, the stock view held exactly
// that per location, and the release returned every unit to its location.
func (o *locOps) check() Check {
	var sum uint64
	ok := len(o.allocations) == 2
	for _, a := range o.allocations {
		sum += a.Qty
		ok = ok && o.heldAfter[a.Location] == a.Qty && o.stocked[a.Location] > 0
	}
	ok = ok && sum == o.asked && o.allocations[0].Location == o.locs[0] && o.allocations[0].Qty == o.stocked[o.locs[0]]
	for _, id := range o.locs {
		ok = ok && o.availBack[id] == o.stocked[id]
	}
	return Check{Name: "locations", OK: ok,
		Detail: fmt.Sprintf("%s: %d units held across %d warehouses %v, all back after release", demoLocSKU, sum, len(o.allocations), o.allocations)}
}
