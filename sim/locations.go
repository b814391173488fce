package sim

// The locations workload: stock by (SKU, location). Every region owns two
// locations: "<region>_a", sold by that region alone, and "<region>_b",
// sold by it and the next region (so quota of it moves between exactly
// those two). Stock is minted at each location's owner; every cart line
// names one to three of the locations its home region may sell from, in a
// random preference order, and a third of them allow splitting.
//
// The escrow key of each (SKU, location) is what the checkers watch (the
// setup's SKUs are the stock keys), so no oversell, conservation,
// convergence and acknowledged holds are checked per (SKU, location); the
// location checker adds that every granted unit comes from a location its
// line allowed and that its region may sell from (Result.LocationViolations).

import (
	"math/rand/v2"
	"slices"

	"github.com/holdfast-io/holdfast/escrow"
)

const workloadLocations = "locations"

// simLocations are the locations of a run of n regions.
func simLocations(regions []string) []escrow.Location {
	var out []escrow.Location
	for i, r := range regions {
		next := regions[(i+1)%len(regions)]
		out = append(out,
			escrow.Location{ID: r + "_a", Owner: r},
			escrow.Location{ID: r + "_b", Owner: r, Sellers: []string{r, next}})
	}
	return out
}

// setupLocations turns the run's SKUs into stock keys of every location;
// it returns the SKUs the shoppers ask for.
func (w *world) setupLocations() []string {
	base := w.setup.SKUs
	w.setup.Locations = simLocations(w.setup.Regions)
	w.setup.SKUs = nil
	clear(w.skuIdx)
	for _, sku := range base {
		for _, l := range w.setup.Locations {
			k := escrow.StockKey(sku, l.ID)
			w.skuIdx[k] = len(w.setup.SKUs)
			w.setup.SKUs = append(w.setup.SKUs, k)
		}
	}
	return base
}

// maySell reports whether region i may sell the units of stock key.
func (w *world) maySell(i int, key string) bool {
	_, loc := escrow.SplitStockKey(key)
	if loc == "" {
		return true
	}
	for _, l := range w.setup.Locations {
		if l.ID == loc {
			if len(l.Sellers) == 0 {
				return l.Owner == w.setup.Regions[i]
			}
			return slices.Contains(l.Sellers, w.setup.Regions[i])
		}
	}
	return false
}

// initialStock is the initial stock of key at region i: the whole of a
// location's at its owner, else the strategy's split.
func (w *world) initialStock(i int, key string) uint64 {
	if len(w.setup.Locations) == 0 {
		return split(w.o.Stock, w.o.Regions, i) // not the joiner of fault membership
	}
	if w.ownerOf(key) == i {
		return w.o.Stock
	}
	return 0
}

// ownerOf is the index of the region owning key's location (-1: none).
func (w *world) ownerOf(key string) int {
	_, loc := escrow.SplitStockKey(key)
	for _, l := range w.setup.Locations {
		if l.ID == loc {
			return w.byName[l.Owner]
		}
	}
	return -1
}

// lineLocations draws the eligible locations of a cart's lines at region
// home: for each line one to three of the locations home may sell from,
// in random order, a third of them splittable.
func (wl *workload) lineLocations(r *rand.Rand, lines []escrow.Line, home int) []escrow.LineLocations {
	var sellable []string
	for _, l := range wl.locs {
		if slices.Contains(l.Sellers, wl.regions[home]) || (len(l.Sellers) == 0 && l.Owner == wl.regions[home]) {
			sellable = append(sellable, l.ID)
		}
	}
	out := make([]escrow.LineLocations, 0, len(lines))
	for _, l := range lines {
		n := 1 + r.IntN(min(3, len(sellable)))
		perm := r.Perm(len(sellable))
		ll := escrow.LineLocations{SKU: l.SKU, Split: r.IntN(3) == 0}
		for _, p := range perm[:n] {
			ll.Locations = append(ll.Locations, sellable[p])
		}
		out = append(out, ll)
	}
	return out
}

// restockLocation draws the location of a restock of sku: one of all the
// locations, minted at its owner.
func (wl *workload) restockLocation(r *rand.Rand, sku string) (key string, region int) {
	l := wl.locs[r.IntN(len(wl.locs))]
	return escrow.StockKey(sku, l.ID), slices.Index(wl.regions, l.Owner)
}

// checkLocations is the location checker: every line of a hold granted to
// cl is at a location that cl's line allowed (or exactly the key cl asked
// for) and that the granting region may sell from.
func (w *world) checkLocations(cl *client, h *escrow.Hold) {
	if len(w.setup.Locations) == 0 {
		return
	}
	owner, _ := escrow.OwnerOf(h.ID)
	for _, l := range h.Lines {
		sku, loc := escrow.SplitStockKey(l.SKU)
		ok := false
		for _, ll := range cl.locs {
			if ll.SKU == sku {
				ok = slices.Contains(ll.Locations, loc)
			}
		}
		for _, asked := range cl.lines {
			ok = ok || asked.SKU == l.SKU
		}
		if ok && !w.maySell(w.byName[owner], l.SKU) {
			ok = false
		}
		if !ok {
			w.res.LocationViolations++
			w.fail("location: hold %s granted %d of %s from %q, which its line did not allow or %s may not sell",
				h.ID, l.Qty, sku, loc, owner)
		}
	}
}

// couldGrantAt is couldGrant for lines restricted to locations: each line
// is covered by the units existing anywhere at one of its eligible
// locations (or, split, at all of them together).
func (o *oracle) couldGrantAt(lines []escrow.Line, locs []escrow.LineLocations) bool {
	for _, l := range lines {
		var ll *escrow.LineLocations
		for i := range locs {
			if locs[i].SKU == l.SKU {
				ll = &locs[i]
			}
		}
		if ll == nil {
			if !o.couldGrant([]escrow.Line{l}, nil) {
				return false
			}
			continue
		}
		var sum, best int64
		for _, loc := range ll.Locations {
			if s, ok := o.w.skuIdx[escrow.StockKey(l.SKU, loc)]; ok {
				a := max(o.globalAvail(s), 0)
				sum += a
				best = max(best, a)
			}
		}
		if (ll.Split && sum < int64(l.Qty)) || (!ll.Split && best < int64(l.Qty)) {
			return false
		}
	}
	return true
}
