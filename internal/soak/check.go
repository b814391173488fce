package soak

// The end-of-soak checker: pure functions over what the shoppers saw
// (Ledger) and what the regions answer once healed (Final). Kept apart
// from the process driver so that each check is unit-tested on synthetic
// data, with a planted fault that it must catch.

import (
	"fmt"
	"sort"

	"github.com/holdfast-io/holdfast/api"
)

// HoldRecord is what a shopper knows of one idempotency key: the hold it
// asked for and every answer it was given.
type HoldRecord struct {
	Key     string // idempotency key, also sent as the hold's cart
	Gateway string // region the shopper asked
	SKU     string
	Qty     uint64
	// AckedIDs are the distinct hold ids of 2xx answers to the create
	// (first answer and retries): more than one is a duplicate hold.
	AckedIDs []string
	// Confirmed and Released: a 2xx answer to confirm or release.
	Confirmed, Released bool
}

// Acked reports whether the create was acknowledged.
func (h *HoldRecord) Acked() bool { return len(h.AckedIDs) > 0 }

// NoteAck records a 2xx create answer with hold id id.
func (h *HoldRecord) NoteAck(id string) {
	for _, x := range h.AckedIDs {
		if x == id {
			return
		}
	}
	h.AckedIDs = append(h.AckedIDs, id)
}

// Ledger is the shoppers' and the stock keeper's record of a soak.
type Ledger struct {
	Holds []*HoldRecord
	// Restocked and WrittenOff are units of acknowledged admin writes per
	// SKU; the Ambiguous maps count units of writes whose answer was lost
	// (timeout, 5xx, connection reset): they may or may not have applied.
	Restocked, RestockAmbiguous   map[string]uint64
	WrittenOff, WriteOffAmbiguous map[string]uint64
	// Regions names every region of the cluster.
	Regions []string
}

// Final is what the regions answer after heal and convergence.
type Final struct {
	// Stock[region][sku] is the region's stock view of the SKU.
	Stock map[string]map[string]api.Stock
	// Got[holdID] is the answer to GET of each acknowledged hold; a hold
	// missing here was not found (404).
	Got map[string]api.Hold
	// GetErr[holdID] is an error other than 404 when reading it.
	GetErr map[string]string
	// Listed is every hold the regions list (GET /v1/holds), all regions.
	Listed []api.Hold
}

// Check runs every check and returns the violations, sorted; none means PASS.
func Check(l *Ledger, f *Final) []string {
	var v []string
	v = append(v, CheckDupKeys(l, f)...)
	v = append(v, CheckAckedHolds(l, f)...)
	v = append(v, CheckConvergedViews(l, f)...)
	v = append(v, CheckConservation(l, f)...)
	v = append(v, CheckNoOversell(l, f)...)
	sort.Strings(v)
	return v
}

// CheckDupKeys: one idempotency key, at most one hold — neither two
// distinct ids acknowledged to the shopper nor two holds listed with the
// key's cart (a retry that created a second hold the shopper never saw).
func CheckDupKeys(l *Ledger, f *Final) []string {
	var v []string
	keys := make(map[string]bool, len(l.Holds))
	for _, h := range l.Holds {
		keys[h.Key] = true
		if len(h.AckedIDs) > 1 {
			v = append(v, fmt.Sprintf("dup-key: key %s acknowledged as %d holds %v", h.Key, len(h.AckedIDs), h.AckedIDs))
		}
	}
	byCart := make(map[string][]string)
	for _, h := range f.Listed {
		if keys[h.Cart] {
			byCart[h.Cart] = append(byCart[h.Cart], h.ID)
		}
	}
	for cart, ids := range byCart {
		if len(uniq(ids)) > 1 {
			v = append(v, fmt.Sprintf("dup-key: key %s has %d holds in the stores %v", cart, len(uniq(ids)), uniq(ids)))
		}
	}
	return v
}

// CheckAckedHolds: every acknowledged hold is found, with the items asked
// for, in a state its acknowledged transitions allow (confirmed if a
// confirm was acknowledged, released or expired if a release was, never
// both), and is listed by its owner.
func CheckAckedHolds(l *Ledger, f *Final) []string {
	var v []string
	listed := make(map[string]bool, len(f.Listed))
	for _, h := range f.Listed {
		listed[h.ID] = true
	}
	for _, r := range l.Holds {
		for _, id := range r.AckedIDs {
			g, ok := f.Got[id]
			if !ok {
				if e := f.GetErr[id]; e != "" {
					v = append(v, fmt.Sprintf("lost-ack: hold %s (key %s) unreadable: %s", id, r.Key, e))
				} else {
					v = append(v, fmt.Sprintf("lost-ack: hold %s (key %s) acknowledged but not found", id, r.Key))
				}
				continue
			}
			if len(f.Listed) > 0 && !listed[id] {
				v = append(v, fmt.Sprintf("lost-ack: hold %s (key %s) found by GET but not listed by its region", id, r.Key))
			}
			if len(g.Items) != 1 || g.Items[0].SKU != r.SKU || g.Items[0].Qty != r.Qty {
				v = append(v, fmt.Sprintf("lost-ack: hold %s (key %s) has items %v, asked %d of %s", id, r.Key, g.Items, r.Qty, r.SKU))
			}
			switch {
			case r.Confirmed && r.Released:
				v = append(v, fmt.Sprintf("inconsistent: hold %s (key %s) acknowledged both confirmed and released", id, r.Key))
			case r.Confirmed && g.State != "confirmed":
				v = append(v, fmt.Sprintf("lost-ack: hold %s (key %s) confirm acknowledged, now %s", id, r.Key, g.State))
			case r.Released && g.State != "released" && g.State != "expired":
				v = append(v, fmt.Sprintf("lost-ack: hold %s (key %s) release acknowledged, now %s", id, r.Key, g.State))
			}
			switch g.State {
			case "held", "confirmed", "released", "expired":
			default:
				v = append(v, fmt.Sprintf("inconsistent: hold %s (key %s) in unknown state %q", id, r.Key, g.State))
			}
		}
	}
	return v
}

// skus returns every SKU of the ledger's admin writes, sorted.
func (l *Ledger) skus() []string {
	seen := map[string]bool{}
	for _, m := range []map[string]uint64{l.Restocked, l.RestockAmbiguous, l.WrittenOff, l.WriteOffAmbiguous} {
		for s := range m {
			seen[s] = true
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// CheckConvergedViews: after heal every region sees the same row of every
// region for every SKU (same seq, available, held, sold), and reports
// its own figures as the others see them.
func CheckConvergedViews(l *Ledger, f *Final) []string {
	var v []string
	for _, sku := range l.skus() {
		var ref map[string]api.RegionStock
		refName := ""
		for _, r := range l.Regions {
			st, ok := f.Stock[r][sku]
			if !ok {
				v = append(v, fmt.Sprintf("unconverged: region %s has no stock view of %s", r, sku))
				continue
			}
			if ref == nil {
				ref, refName = st.Regions, r
				continue
			}
			for _, o := range l.Regions {
				if st.Regions[o] != ref[o] {
					v = append(v, fmt.Sprintf("unconverged: %s: %s sees %s as %+v, %s sees %+v", sku, r, o, st.Regions[o], refName, ref[o]))
				}
			}
		}
	}
	return v
}

// totals sums one region's view of a SKU over every region.
func totals(regions []string, st api.Stock) (avail int64, held, sold uint64) {
	for _, r := range regions {
		rs := st.Regions[r]
		avail += rs.Available
		held += rs.Held
		sold += rs.Sold
	}
	return
}

// CheckConservation: Σ available + held + sold over the regions equals
// restocked − written off, with each lost answer free to have applied or
// not; and no region's available is negative.
func CheckConservation(l *Ledger, f *Final) []string {
	var v []string
	for _, sku := range l.skus() {
		lo := int64(l.Restocked[sku]) - int64(l.WrittenOff[sku]) - int64(l.WriteOffAmbiguous[sku])
		hi := int64(l.Restocked[sku]) + int64(l.RestockAmbiguous[sku]) - int64(l.WrittenOff[sku])
		for _, r := range l.Regions {
			st, ok := f.Stock[r][sku]
			if !ok {
				continue // CheckConvergedViews reports it
			}
			for _, o := range l.Regions {
				if a := st.Regions[o].Available; a < 0 {
					v = append(v, fmt.Sprintf("conservation: %s: %s sees %s available %d < 0", sku, r, o, a))
				}
			}
			a, h, s := totals(l.Regions, st)
			sum := a + int64(h) + int64(s)
			if sum < lo || sum > hi {
				v = append(v, fmt.Sprintf("conservation: %s in %s's view: available %d + held %d + sold %d = %d, want %s",
					sku, r, a, h, s, sum, span(lo, hi)))
			}
		}
	}
	return v
}

func span(lo, hi int64) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d..%d (lost admin answers)", lo, hi)
}

// CheckNoOversell: per SKU, units sold and held never exceed what came in
// (restocked, lost restocks included, minus acknowledged write-offs), and
// the units of holds whose confirm was acknowledged are within what the
// regions count as sold.
func CheckNoOversell(l *Ledger, f *Final) []string {
	var v []string
	confirmed := map[string]uint64{}
	for _, h := range l.Holds {
		if h.Acked() && h.Confirmed {
			confirmed[h.SKU] += h.Qty
		}
	}
	for _, sku := range l.skus() {
		hi := int64(l.Restocked[sku]) + int64(l.RestockAmbiguous[sku]) - int64(l.WrittenOff[sku])
		if int64(confirmed[sku]) > hi {
			v = append(v, fmt.Sprintf("oversell: %s: shoppers were told %d units confirmed, at most %d came in", sku, confirmed[sku], hi))
		}
		for _, r := range l.Regions {
			st, ok := f.Stock[r][sku]
			if !ok {
				continue
			}
			_, h, s := totals(l.Regions, st)
			if int64(h+s) > hi {
				v = append(v, fmt.Sprintf("oversell: %s in %s's view: held %d + sold %d > %d came in", sku, r, h, s, hi))
			}
			if s < confirmed[sku] {
				v = append(v, fmt.Sprintf("oversell: %s in %s's view: sold %d < %d units whose confirm was acknowledged", sku, r, s, confirmed[sku]))
			}
		}
	}
	return v
}

func uniq(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}
