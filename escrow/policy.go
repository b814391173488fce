package escrow

import (
	"sort"
	"time"
)

// PeerStock is a peer's available units of one SKU as seen locally.
type PeerStock struct {
	Region    string
	Available uint64
	Qty       uint64 // in a plan: units to ask for
}

// PlanBorrow decides whom to ask for need units: peers with known surplus,
// largest first (ties by name, for determinism), each asked for at most what
// it is known to have. It returns nil when the known surplus cannot cover
// need, so the hold is rejected at once instead of waiting for a deadline.
func PlanBorrow(need uint64, peers []PeerStock) []PeerStock {
	plan, short := planLargestFirst(need, peers)
	if short > 0 {
		return nil
	}
	return plan
}

// PlanWaitBorrow decides whom to ask for the need units a SKU's waiters (or
// a partial hold) lack: like PlanBorrow, but a plan that covers only part
// of need is kept (some units now serve better than none).
func PlanWaitBorrow(need uint64, peers []PeerStock) []PeerStock {
	plan, _ := planLargestFirst(need, peers)
	return plan
}

// planLargestFirst orders peers by known surplus, largest first (ties by
// name, for determinism), and asks them in that order.
func planLargestFirst(need uint64, peers []PeerStock) (plan []PeerStock, short uint64) {
	sort.Slice(peers, func(i, j int) bool {
		if peers[i].Available != peers[j].Available {
			return peers[i].Available > peers[j].Available
		}
		return peers[i].Region < peers[j].Region
	})
	return planInOrder(need, peers)
}

// planInOrder asks peers in their order, each for at most what it is known
// to have, until need is covered; short is what they leave uncovered.
func planInOrder(need uint64, peers []PeerStock) (plan []PeerStock, short uint64) {
	for _, p := range peers {
		if need == 0 {
			break
		}
		if p.Available == 0 {
			continue
		}
		q := min(need, p.Available)
		plan = append(plan, PeerStock{Region: p.Region, Qty: q})
		need -= q
	}
	return plan, need
}

// TopUpThreshold is the low-water mark of a slice: the larger of a fixed
// floor and the units expected to be requested over horizon at the current
// demand rate (units/s).
func TopUpThreshold(lowWater uint64, demandPerSec float64, horizon time.Duration) uint64 {
	d := uint64(demandPerSec*horizon.Seconds() + 0.5)
	return max(lowWater, d)
}

// PlanTopUp picks the peer with the largest surplus (already net of its
// floor) and asks for enough to reach twice the threshold, at most half of
// that peer's surplus so that donors are never drained by top-ups.
func PlanTopUp(avail, threshold uint64, peers []PeerStock) (to string, qty uint64) {
	if avail >= threshold || threshold == 0 {
		return "", 0
	}
	var best PeerStock
	for _, p := range peers {
		if p.Available > best.Available || (p.Available == best.Available && p.Available > 0 && p.Region < best.Region) {
			best = p
		}
	}
	want := 2*threshold - avail
	q := min(want, best.Available/2)
	if q == 0 {
		return "", 0
	}
	return best.Region, q
}

// AdviceGive is how many units a region gives when advised to send qty:
// only what lies above its floor.
func AdviceGive(avail, floor, qty uint64) uint64 {
	if avail <= floor {
		return 0
	}
	return min(qty, avail-floor)
}
