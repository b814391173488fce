package escrow

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// This file holds the rebalancer's pure policy: Rebalance turns the
// per-region digests of one round into moves (who gives how many units of
// what to whom), and ChooseHomes picks a home for scarce SKUs. The state
// machine that feeds it (Rebalancer) is in rebalancer.go; the daemon
// (package rebalancer) and the simulator both drive the same Rebalancer,
// so the simulator measures exactly the production policy.
//
// The rebalancer is advisory. A region follows a move only from its own
// surplus (Node.onAdvice, AdviceGive), so nothing here can break safety: at
// worst bad advice moves stock to the wrong place and borrowing fixes it.

// RegionLoad is one region's state of one SKU as the rebalancer sees it.
type RegionLoad struct {
	Region       string
	Available    uint64  // units the region may grant now
	Held         uint64  // units in open holds (not movable)
	DemandPerSec float64 // EWMA of units requested per second
	// Rejected is the number of holds rejected for lack of stock since the
	// previous digest: demand that the EWMA counts once but that the
	// region could not serve.
	Rejected uint64
	// Waiting is the units the region's waitlist asks for: demand that
	// exists now, counted in full.
	Waiting uint64
}

// SKULoad is the state of one SKU in every live region.
type SKULoad struct {
	SKU     string
	Regions []RegionLoad
}

// RebalanceInput is what one round of the policy looks at.
type RebalanceInput struct {
	SKUs []SKULoad
}

// RebalancePolicy tunes Rebalance. Zero values take the defaults noted
// (see DefaultRebalancePolicy).
type RebalancePolicy struct {
	// Horizon: a region's expected demand is DemandPerSec × Horizon plus
	// RejectWeight units per recent rejection. Targets are proportional to
	// expected demand.
	Horizon      time.Duration // 60s
	RejectWeight float64       // 1
	// Floor: every region with demand is first given Floor units plus its
	// demand over FloorHorizon (in proportion, when the stock is short),
	// and is never asked to give below that. Setting them to what a
	// region keeps by itself (twice its low-water mark and top-up
	// horizon) stops advice and the region's own top-up from undoing each
	// other, and keeps every selling region stocked until the next round.
	Floor        uint64        // 0 (DefaultRebalancePolicy: 2)
	FloorHorizon time.Duration // 0
	// Hysteresis: a region receives only when it is short of its target
	// by more than max(MinMove, Hysteresis × target). Donors give only down
	// to their own target, never below, so stock does not ping-pong.
	Hysteresis float64 // 0.25
	MinMove    uint64  // 1: smaller moves are not advised
	// Caps on the units advised per round.
	MaxMovePerSKU uint64 // 0 = no cap
	MaxMoveTotal  uint64 // 0 = no cap
	MaxMoves      int    // moves per round (MaxWireMoves)
	// ScarceHorizon: a SKU whose units available in all live regions are
	// fewer than its total demand over ScarceHorizon is scarce, and gets a
	// home (see Node.route); it stays scarce until they are more than
	// twice that. 0: 5s; <0: no homes.
	ScarceHorizon time.Duration
}

// DefaultRebalancePolicy is the daemon's default policy, also run by the
// simulator's escrow+rebalancer strategy; see rebalancer/README.md.
func DefaultRebalancePolicy() RebalancePolicy {
	return RebalancePolicy{Floor: 2}.withDefaults()
}

func (p RebalancePolicy) withDefaults() RebalancePolicy {
	if p.Horizon <= 0 {
		p.Horizon = 60 * time.Second
	}
	if p.RejectWeight < 0 || math.IsNaN(p.RejectWeight) {
		p.RejectWeight = 0
	} else if p.RejectWeight == 0 {
		p.RejectWeight = 1
	}
	if p.Hysteresis <= 0 || math.IsNaN(p.Hysteresis) {
		p.Hysteresis = 0.25
	}
	if p.MinMove == 0 {
		p.MinMove = 1
	}
	if p.MaxMoves <= 0 || p.MaxMoves > MaxWireMoves {
		p.MaxMoves = MaxWireMoves
	}
	if p.ScarceHorizon == 0 {
		p.ScarceHorizon = 5 * time.Second
	}
	return p
}

// Validate reports the first problem with p.
func (p RebalancePolicy) Validate() error {
	if p.Horizon < 0 || p.FloorHorizon < 0 {
		return fmt.Errorf("escrow: rebalance policy: negative horizon")
	}
	if p.Hysteresis < 0 || p.Hysteresis > 10 || math.IsNaN(p.Hysteresis) {
		return fmt.Errorf("escrow: rebalance policy: hysteresis %v out of [0, 10]", p.Hysteresis)
	}
	if p.RejectWeight < 0 || math.IsNaN(p.RejectWeight) || math.IsInf(p.RejectWeight, 0) {
		return fmt.Errorf("escrow: rebalance policy: reject weight %v must be finite and >= 0", p.RejectWeight)
	}
	return nil
}

// homeSwitch: a SKU keeps its home while the home's demand is at least
// this share of the largest regional demand, so that a home does not flap
// between regions of similar demand.
const homeSwitch = 0.5

// ChooseHomes returns the homes of the scarce SKUs of in, sorted by SKU:
// a SKU is scarce when its units available in all live regions are fewer
// than its total demand over ScarceHorizon, and stays scarce (with the
// home it had in prev) until they exceed twice that or its demand is gone.
// The home is the region with the largest demand (ties: more units, then
// name), or the previous home while its demand is at least half of the
// largest and it is still live.
func ChooseHomes(in RebalanceInput, prev []Home, p RebalancePolicy) []Home {
	p = p.withDefaults()
	if p.ScarceHorizon < 0 {
		return nil
	}
	was := make(map[string]string, len(prev))
	for _, h := range prev {
		was[h.SKU] = h.Region
	}
	var out []Home
	for _, s := range in.SKUs {
		avail, ok := sumAvailable(s.Regions)
		if !ok {
			continue // implausible digests: no home on their word
		}
		var demand, best float64
		bi := -1
		for i, r := range s.Regions {
			d := r.DemandPerSec
			if d <= 0 || math.IsNaN(d) || math.IsInf(d, 0) {
				continue
			}
			demand += d
			if bi < 0 || d > best || (d == best && homeTieBreak(r, s.Regions[bi])) {
				bi, best = i, d
			}
		}
		if bi < 0 {
			continue // no demand: nothing to serve
		}
		limit := demand * p.ScarceHorizon.Seconds()
		prevHome, homed := was[s.SKU]
		if !homed && float64(avail) >= limit || homed && float64(avail) > 2*limit {
			continue // plentiful; a homed SKU only once over twice the limit
		}
		home := s.Regions[bi].Region
		if homed && prevHome != home {
			for _, r := range s.Regions {
				if r.Region == prevHome && r.DemandPerSec >= homeSwitch*best {
					home = prevHome
				}
			}
		}
		out = append(out, Home{SKU: s.SKU, Region: home})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SKU < out[j].SKU })
	// One advice carries every home: past the wire limit the advice would
	// not encode and no region would get any advice at all.
	if len(out) > MaxWireHomes {
		out = out[:MaxWireHomes]
	}
	return out
}

// homeTieBreak orders regions of equal demand: more units first, then name.
func homeTieBreak(a, b RegionLoad) bool {
	if a.Available != b.Available {
		return a.Available > b.Available
	}
	return a.Region < b.Region
}

// SKUTarget is the policy's target slice of one region, for metrics and
// tests.
type SKUTarget struct {
	SKU       string
	Region    string
	Available uint64
	Target    uint64
	Floor     uint64
}

// Rebalance computes advice for one round: for every SKU, target slices of
// the units available across regions, proportional to expected demand over
// the horizon, never below a region's floor; then moves from regions above
// their target to regions short of theirs by more than the hysteresis band,
// largest surplus to largest deficit, within the caps. The moves are sorted
// by SKU, From, To. Regions are never asked to go below their target, which
// is at least their floor, so advice never asks a region for units it
// needs itself and the units advised out of a region never exceed
// Available − floor.
func Rebalance(in RebalanceInput, p RebalancePolicy) []Move {
	moves, _ := rebalance(in, p, false)
	return moves
}

// RebalanceTargets returns the targets Rebalance aims at, sorted by SKU
// and region.
func RebalanceTargets(in RebalanceInput, p RebalancePolicy) []SKUTarget {
	_, t := rebalance(in, p, true)
	return t
}

type skuPlan struct {
	sku     string
	regions []RegionLoad
	target  []uint64
	floor   []uint64
	deficit uint64 // total units short beyond the band
}

func rebalance(in RebalanceInput, p RebalancePolicy, wantTargets bool) ([]Move, []SKUTarget) {
	p = p.withDefaults()
	plans := make([]skuPlan, 0, len(in.SKUs))
	for _, s := range in.SKUs {
		if len(s.Regions) == 0 {
			continue
		}
		regs := append([]RegionLoad(nil), s.Regions...)
		sort.Slice(regs, func(i, j int) bool { return regs[i].Region < regs[j].Region })
		// A region listed twice keeps its first entry: inputs are trusted
		// to be one per region, but the plan must not double-count stock.
		w := 0
		for i := range regs {
			if i > 0 && regs[i].Region == regs[w-1].Region {
				continue
			}
			regs[w] = regs[i]
			w++
		}
		regs = regs[:w]
		if _, ok := sumAvailable(regs); !ok {
			continue // implausible digests: no advice on their word
		}
		plan := skuPlan{sku: s.SKU, regions: regs}
		plan.target, plan.floor = targets(regs, p)
		for i, r := range regs {
			if t := plan.target[i]; t > r.Available && t-r.Available > band(t, p) {
				plan.deficit += t - r.Available
			}
		}
		plans = append(plans, plan)
	}
	var tgts []SKUTarget
	if wantTargets {
		for _, pl := range plans {
			for i, r := range pl.regions {
				tgts = append(tgts, SKUTarget{SKU: pl.sku, Region: r.Region, Available: r.Available,
					Target: pl.target[i], Floor: pl.floor[i]})
			}
		}
		sort.Slice(tgts, func(i, j int) bool {
			if tgts[i].SKU != tgts[j].SKU {
				return tgts[i].SKU < tgts[j].SKU
			}
			return tgts[i].Region < tgts[j].Region
		})
	}
	// When the total cap binds, the SKUs with the largest shortfall go first.
	sort.Slice(plans, func(i, j int) bool {
		if plans[i].deficit != plans[j].deficit {
			return plans[i].deficit > plans[j].deficit
		}
		return plans[i].sku < plans[j].sku
	})
	var moves []Move
	budget := uint64(math.MaxUint64) // units left this round
	if p.MaxMoveTotal > 0 {
		budget = p.MaxMoveTotal
	}
	for _, pl := range plans {
		if pl.deficit == 0 || budget < p.MinMove || len(moves) >= p.MaxMoves {
			break // sorted by deficit: the rest have none either
		}
		skuBudget := budget
		if p.MaxMovePerSKU > 0 {
			skuBudget = min(skuBudget, p.MaxMovePerSKU)
		}
		ms := planMoves(&pl, p, skuBudget, p.MaxMoves-len(moves))
		for _, m := range ms {
			budget -= m.Qty
		}
		moves = append(moves, ms...)
	}
	sort.Slice(moves, func(i, j int) bool {
		a, b := moves[i], moves[j]
		if a.SKU != b.SKU {
			return a.SKU < b.SKU
		}
		if a.From != b.From {
			return a.From < b.From
		}
		return a.To < b.To
	})
	return moves, tgts
}

// band is the hysteresis band of a region whose target is t.
func band(t uint64, p RebalancePolicy) uint64 {
	b := uint64(p.Hysteresis * float64(t))
	return max(b, p.MinMove-1)
}

// targets splits the units available of one SKU (regions sorted by name):
// first the floors of the regions that want units, then the rest in
// proportion to expected demand, by largest remainder (ties to
// the region that sorts first). With no expected demand anywhere, every
// target is the region's own stock: there is nothing to aim at.
func targets(regs []RegionLoad, p RebalancePolicy) (target, floor []uint64) {
	n := len(regs)
	target = make([]uint64, n)
	floor = make([]uint64, n)
	total, _ := sumAvailable(regs) // the caller skipped SKUs whose sum does not fit
	want := make([]float64, n)
	var sumWant float64
	for i, r := range regs {
		d := r.DemandPerSec
		if d < 0 || math.IsNaN(d) || math.IsInf(d, 0) {
			d = 0
		}
		want[i] = d*p.Horizon.Seconds() + p.RejectWeight*float64(r.Rejected) + float64(r.Waiting)
		sumWant += want[i]
	}
	if sumWant <= 0 {
		for i, r := range regs {
			target[i] = r.Available
			floor[i] = min(r.Available, p.Floor)
		}
		return target, floor
	}
	// Floors first: every region that wants units gets Floor plus its
	// demand over FloorHorizon (scaled down in proportion when the stock
	// does not cover every floor), then the rest goes in proportion to
	// expected demand. Targets depend on demand and the total only, not on
	// where the units are, so they do not move when advice is applied:
	// stock does not ping-pong.
	var sumFloor uint64
	fl := make([]float64, n)
	for i, r := range regs {
		if want[i] <= 0 {
			continue
		}
		d := r.DemandPerSec
		if d < 0 || math.IsNaN(d) || math.IsInf(d, 0) {
			d = 0
		}
		f := satAdd(p.Floor, floatUnits(math.Ceil(d*p.FloorHorizon.Seconds())))
		floor[i] = f
		fl[i] = float64(f)
		sumFloor = satAdd(sumFloor, f)
	}
	if sumFloor >= total {
		return apportion(total, fl), apportion(total, fl)
	}
	rest := apportion(total-sumFloor, want)
	for i := range target {
		target[i] = floor[i] + rest[i]
	}
	return target, floor
}

// apportion splits total in proportion to weights by largest remainder;
// ties go to the lower index. The parts sum to total exactly.
func apportion(total uint64, weights []float64) []uint64 {
	out := make([]uint64, len(weights))
	var sum float64
	for _, w := range weights {
		if w > 0 {
			sum += w
		}
	}
	if sum <= 0 || total == 0 {
		return out
	}
	type rem struct {
		i int
		r float64
	}
	rems := make([]rem, 0, len(weights))
	var given uint64
	for i, w := range weights {
		if w <= 0 {
			continue
		}
		exact := float64(total) * w / sum
		q := uint64(math.Floor(exact))
		if given+q > total { // float rounding at huge totals
			q = total - given
		}
		out[i] = q
		given += q
		rems = append(rems, rem{i, exact - float64(q)})
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
	for k := 0; given < total && len(rems) > 0; k = (k + 1) % len(rems) {
		out[rems[k].i]++
		given++
	}
	return out
}

// planMoves matches one SKU's donors (above target) with its receivers
// (short of target beyond the band), largest first, ties by name.
func planMoves(pl *skuPlan, p RebalancePolicy, budget uint64, maxMoves int) []Move {
	type side struct {
		region string
		qty    uint64
	}
	var donors, receivers []side
	for i, r := range pl.regions {
		t := pl.target[i]
		switch {
		case r.Available > t:
			donors = append(donors, side{r.Region, r.Available - t})
		case t > r.Available && t-r.Available > band(t, p):
			receivers = append(receivers, side{r.Region, t - r.Available})
		}
	}
	bySize := func(s []side) {
		sort.Slice(s, func(i, j int) bool {
			if s[i].qty != s[j].qty {
				return s[i].qty > s[j].qty
			}
			return s[i].region < s[j].region
		})
	}
	bySize(donors)
	bySize(receivers)
	var out []Move
	di := 0
	for _, rc := range receivers {
		need := rc.qty
		for need >= p.MinMove && di < len(donors) && len(out) < maxMoves {
			if donors[di].qty < p.MinMove {
				di++ // too small to be worth a transfer
				continue
			}
			q := min(need, donors[di].qty, budget)
			if q < p.MinMove {
				return out // the cap is spent
			}
			out = append(out, Move{SKU: pl.sku, From: donors[di].region, To: rc.region, Qty: q})
			donors[di].qty -= q
			need -= q
			budget -= q
			if donors[di].qty == 0 {
				di++
			}
		}
	}
	return out
}

// sumAvailable is the units available of one SKU over regs, checked: false
// when the sum reaches MaxSKUUnits (or would wrap). Digests are a region's
// word, and no real SKU comes near it; the policy plans nothing on such a
// sum rather than wrap it into small, plausible-looking targets.
func sumAvailable(regs []RegionLoad) (uint64, bool) {
	var total uint64
	for _, r := range regs {
		total = satAdd(total, r.Available)
	}
	return total, total < MaxSKUUnits
}

// CountImplausibleSKUs returns how many SKUs of in have units available
// summing to MaxSKUUnits or more: the policy plans nothing for them.
func CountImplausibleSKUs(in RebalanceInput) (implausible int) {
	for _, s := range in.SKUs {
		if _, ok := sumAvailable(s.Regions); !ok {
			implausible++
		}
	}
	return implausible
}

// floatUnits converts a non-negative unit count computed in floating
// point to uint64, saturating at MaxSKUUnits (a float beyond uint64's
// range does not convert to anything defined).
func floatUnits(x float64) uint64 {
	if !(x > 0) {
		return 0
	}
	if x >= float64(MaxSKUUnits) {
		return MaxSKUUnits
	}
	return uint64(x)
}
