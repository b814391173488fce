package escrow

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// This file holds the global rebalancer: a pure policy (Rebalance) that
// turns per-region digests into advice, and a pure state machine
// (Rebalancer) that remembers digests, tracks advice in flight and numbers
// rounds. The daemon (package rebalancer) and the simulator both drive the
// same Rebalancer, so the simulator measures exactly the production policy.
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
		var avail uint64
		var demand, best float64
		bi := -1
		for i, r := range s.Regions {
			avail += r.Available
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
	var total uint64
	want := make([]float64, n)
	var sumWant float64
	for i, r := range regs {
		total += r.Available
		d := r.DemandPerSec
		if d < 0 || math.IsNaN(d) || math.IsInf(d, 0) {
			d = 0
		}
		want[i] = d*p.Horizon.Seconds() + p.RejectWeight*float64(r.Rejected)
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
		f := p.Floor + uint64(math.Ceil(d*p.FloorHorizon.Seconds()))
		floor[i] = f
		fl[i] = float64(f)
		sumFloor += f
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

// RebalancerConfig configures a Rebalancer. Zero values take the defaults
// noted.
type RebalancerConfig struct {
	// ID is the From of the advice; it must pass ValidRegion and should not
	// be a region's name.
	ID     string
	Policy RebalancePolicy
	// StaleAfter: a region with no digest for this long is left out of
	// the plan (5s). A SKU entry older than SKUStaleAfter is dropped even
	// if the region is alive (4 × StaleAfter): regions digest at most
	// MaxDigestSKUs SKUs at a time, round-robin.
	StaleAfter    time.Duration
	SKUStaleAfter time.Duration
	// Settle: a move advised at t is in flight until both regions'
	// digests of its SKU arrive after t+Settle; the SKU is not planned
	// again meanwhile, so the same shortfall is not advised twice. Set it
	// above the time a move takes to show in both digests: advice to the
	// donor, its rows to the receiver, the receiver's digest back (1s).
	Settle time.Duration
	// StandbyAfter: while advice from another daemon with a smaller ID was
	// seen within this time, this one only observes (3s; <0: never).
	StandbyAfter time.Duration
	MaxRegions   int // regions tracked (256)
	MaxSKUs      int // SKU entries per region (100,000)
	MaxInFlight  int // moves remembered in flight (100,000)
}

func (c RebalancerConfig) withDefaults() RebalancerConfig {
	def := func(v *time.Duration, x time.Duration) {
		if *v == 0 {
			*v = x
		}
	}
	def(&c.StaleAfter, 5*time.Second)
	def(&c.SKUStaleAfter, 4*c.StaleAfter)
	def(&c.Settle, time.Second)
	def(&c.StandbyAfter, 3*time.Second)
	if c.MaxRegions <= 0 {
		c.MaxRegions = 256
	}
	if c.MaxSKUs <= 0 {
		c.MaxSKUs = 100_000
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 100_000
	}
	c.Policy = c.Policy.withDefaults()
	return c
}

// RebalancerStats are cumulative counters of a Rebalancer.
type RebalancerStats struct {
	Rounds, StandbyRounds      uint64
	MovesAdvised, UnitsAdvised uint64
	Digests, DigestsDropped    uint64 // dropped: over a limit
	ForeignAdvice              uint64 // advice seen from other daemons
	Regions                    int    // live and not fenced at the last round (in the plan)
	InFlight                   int
	FrozenSKUs                 int // SKUs skipped at the last round: moves in flight
	Homes                      int // scarce SKUs with a home at the last round
	Epoch                      uint64
	Standby                    bool
}

// Rebalancer is the rebalancer's state machine: Step feeds it digests (and
// advice from other daemons), Round produces the advice of one round. Like
// Node it never reads the clock and does no I/O.
type Rebalancer struct {
	cfg        RebalancerConfig
	regions    map[string]*rbRegion
	inflight   []inflightMove
	epoch      uint64
	leaderSeen time.Time
	homes      []Home // of the last round
	stats      RebalancerStats
}

type rbRegion struct {
	seen time.Time
	skus map[string]*rbSKU
	// fenced: its latest digest says it is fenced (its store went back in
	// time): it neither gives nor receives, and its units are not
	// counted, so it is left out of the plan.
	fenced bool
}

type rbSKU struct {
	d        SKUDigest
	at       time.Time
	rejected uint64 // rejections between the last two digests
}

type inflightMove struct {
	Move
	at time.Time
}

// NewRebalancer returns a Rebalancer for cfg.
func NewRebalancer(cfg RebalancerConfig) (*Rebalancer, error) {
	if err := ValidRegion(cfg.ID); err != nil {
		return nil, fmt.Errorf("escrow: rebalancer id: %w", err)
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.StaleAfter < 0 || cfg.Settle < 0 || cfg.SKUStaleAfter < 0 {
		return nil, fmt.Errorf("escrow: rebalancer: negative duration in config")
	}
	return &Rebalancer{cfg: cfg.withDefaults(), regions: make(map[string]*rbRegion)}, nil
}

// ID returns the daemon id that signs the advice.
func (r *Rebalancer) ID() string { return r.cfg.ID }

// Stats returns the counters.
func (r *Rebalancer) Stats() RebalancerStats {
	s := r.stats
	s.InFlight = len(r.inflight)
	s.Epoch = r.epoch
	return s
}

// Step feeds one message received at now: a region's digest, or advice
// published by another daemon (which raises the epoch, counts its moves
// as in flight and may put this daemon on standby). Other messages are
// ignored. It returns an error for a malformed message.
func (r *Rebalancer) Step(now time.Time, m *Message) error {
	if err := ValidRegion(m.From); err != nil {
		return err
	}
	switch m.Type {
	case MsgDigest:
		return r.digest(now, m)
	case MsgAdvice:
		if m.From == r.cfg.ID {
			return nil // our own, echoed back by the transport
		}
		if m.Epoch > uint64(max(0, now.Add(maxAdviceLead).UnixMilli())) {
			// Regions ignore it (onAdvice): adopting its epoch would make
			// them ignore ours too, and standing by for it would leave
			// them without advice.
			return errorf(CodeInvalid, "advice from %s has epoch %d, more than %v ahead of this clock", m.From, m.Epoch, maxAdviceLead)
		}
		r.stats.ForeignAdvice++
		r.epoch = max(r.epoch, m.Epoch)
		if m.From < r.cfg.ID {
			r.leaderSeen = now
			// The leader's homes are what regions follow: start from them
			// on taking over, so that homes do not flip with the daemon.
			r.homes = r.homes[:0]
			for _, h := range m.Homes {
				if ValidSKU(h.SKU) == nil && ValidRegion(h.Region) == nil && len(r.homes) < MaxWireHomes {
					r.homes = append(r.homes, h)
				}
			}
		}
		for _, mv := range m.Moves {
			if ValidSKU(mv.SKU) == nil && ValidRegion(mv.From) == nil && ValidRegion(mv.To) == nil && mv.Qty > 0 {
				r.addInFlight(mv, now)
			}
		}
	}
	return nil
}

func (r *Rebalancer) digest(now time.Time, m *Message) error {
	if m.From == r.cfg.ID {
		return errorf(CodeInvalid, "digest claims to come from the rebalancer %s", m.From)
	}
	reg := r.regions[m.From]
	if reg == nil {
		if len(r.regions) >= r.cfg.MaxRegions {
			r.expire(now)
			if len(r.regions) >= r.cfg.MaxRegions {
				r.stats.DigestsDropped++
				return errorf(CodeInvalid, "rebalancer tracks its maximum of %d regions", r.cfg.MaxRegions)
			}
		}
		reg = &rbRegion{skus: make(map[string]*rbSKU)}
		r.regions[m.From] = reg
	}
	r.stats.Digests++
	reg.seen = now
	reg.fenced = m.Fenced
	for _, d := range m.Digest {
		if ValidSKU(d.SKU) != nil {
			continue
		}
		e := reg.skus[d.SKU]
		if e == nil {
			if len(reg.skus) >= r.cfg.MaxSKUs {
				r.stats.DigestsDropped++
				continue
			}
			e = &rbSKU{d: d}
			reg.skus[d.SKU] = e
		} else if d.Rejected >= e.d.Rejected {
			e.rejected = d.Rejected - e.d.Rejected
		} else {
			e.rejected = d.Rejected // the region restarted its counter
		}
		e.d = d
		e.at = now
	}
	return nil
}

func (r *Rebalancer) addInFlight(mv Move, at time.Time) {
	if len(r.inflight) >= r.cfg.MaxInFlight {
		r.inflight = r.inflight[1:]
	}
	r.inflight = append(r.inflight, inflightMove{Move: mv, at: at})
}

// expire forgets silent regions, old SKU entries and settled moves.
func (r *Rebalancer) expire(now time.Time) {
	for name, reg := range r.regions {
		if now.Sub(reg.seen) > r.cfg.StaleAfter {
			delete(r.regions, name)
			continue
		}
		for sku, e := range reg.skus {
			if now.Sub(e.at) > r.cfg.SKUStaleAfter {
				delete(reg.skus, sku)
			}
		}
	}
	w := 0
	for _, f := range r.inflight {
		if now.Sub(f.at) <= r.cfg.Settle+r.cfg.StaleAfter && !r.settled(f) {
			r.inflight[w] = f
			w++
		}
	}
	clear(r.inflight[w:])
	r.inflight = r.inflight[:w]
}

// settled reports whether both regions of a move have sent a digest of
// its SKU at least Settle after it was advised (or are gone), so that
// their digests show it applied or refused.
func (r *Rebalancer) settled(f inflightMove) bool {
	for _, name := range []string{f.From, f.To} {
		reg := r.regions[name]
		if reg == nil {
			continue
		}
		if e := reg.skus[f.SKU]; e != nil && e.at.Before(f.at.Add(r.cfg.Settle)) {
			return false
		}
	}
	return true
}

// Input returns what the policy sees at now: every live region's latest
// digest of every SKU.
func (r *Rebalancer) Input(now time.Time) RebalanceInput {
	r.expire(now)
	loads := make(map[string][]RegionLoad)
	names := make([]string, 0, len(r.regions))
	for name := range r.regions {
		names = append(names, name)
	}
	sort.Strings(names)
	planned := 0
	for _, name := range names {
		reg := r.regions[name]
		if reg.fenced {
			continue
		}
		planned++
		for sku, e := range reg.skus {
			loads[sku] = append(loads[sku], RegionLoad{Region: name, Available: e.d.Available, Held: e.d.Held,
				DemandPerSec: float64(e.d.DemandMilli) / 1000, Rejected: e.rejected})
		}
	}
	in := RebalanceInput{SKUs: make([]SKULoad, 0, len(loads))}
	for sku, l := range loads {
		in.SKUs = append(in.SKUs, SKULoad{SKU: sku, Regions: l})
	}
	sort.Slice(in.SKUs, func(i, j int) bool { return in.SKUs[i].SKU < in.SKUs[j].SKU })
	r.stats.Regions = planned
	return in
}

// Round runs the policy at now and returns the advice to broadcast. It
// returns false while the daemon is on standby. The advice is returned
// even without moves: it tells other daemons this one is active. Its
// Epoch is above every epoch this Rebalancer has issued or seen, and is
// the round's Unix milliseconds when the clock allows, so that a restarted
// or newly elected daemon is not ignored by regions.
func (r *Rebalancer) Round(now time.Time) (Message, bool) {
	in := r.Input(now)
	if r.cfg.StandbyAfter > 0 && !r.leaderSeen.IsZero() && now.Sub(r.leaderSeen) < r.cfg.StandbyAfter {
		r.stats.StandbyRounds++
		r.stats.Standby = true
		return Message{}, false
	}
	r.stats.Standby = false
	r.stats.Rounds++
	// Scarce SKUs get a home instead of moves: the regions send their
	// units there themselves, as they become available.
	r.homes = ChooseHomes(in, r.homes, r.cfg.Policy)
	r.stats.Homes = len(r.homes)
	if len(r.homes) > 0 {
		homed := make(map[string]bool, len(r.homes))
		for _, h := range r.homes {
			homed[h.SKU] = true
		}
		in.SKUs = dropSKUs(in.SKUs, homed)
	}
	// A SKU with moves in flight is not planned again until they show in
	// the digests: a digest sent before a move landed would make the
	// policy advise the same move twice, and one sent after it would make
	// any correction for the move count it twice.
	if len(r.inflight) > 0 {
		frozen := make(map[string]bool, len(r.inflight))
		for _, f := range r.inflight {
			frozen[f.SKU] = true
		}
		in.SKUs = dropSKUs(in.SKUs, frozen)
		r.stats.FrozenSKUs = len(frozen)
	} else {
		r.stats.FrozenSKUs = 0
	}
	moves := Rebalance(in, r.cfg.Policy)
	ms := now.UnixMilli()
	if ms > 0 && uint64(ms) > r.epoch {
		r.epoch = uint64(ms)
	} else {
		r.epoch++
	}
	for _, mv := range moves {
		r.addInFlight(mv, now)
		r.stats.MovesAdvised++
		r.stats.UnitsAdvised += mv.Qty
	}
	return Message{Type: MsgAdvice, From: r.cfg.ID, Epoch: r.epoch, Moves: moves,
		Homes: append([]Home(nil), r.homes...)}, true
}

// dropSKUs removes the SKUs in drop from loads, in place.
func dropSKUs(loads []SKULoad, drop map[string]bool) []SKULoad {
	w := 0
	for _, s := range loads {
		if !drop[s.SKU] {
			loads[w] = s
			w++
		}
	}
	return loads[:w]
}

// Targets returns the policy's targets at now, for metrics.
func (r *Rebalancer) Targets(now time.Time) []SKUTarget {
	return RebalanceTargets(r.Input(now), r.cfg.Policy)
}
