package escrow

import (
	"fmt"
	"sort"
	"time"
)

// This file holds the rebalancer's state machine (Rebalancer): it remembers
// the regions' digests, tracks advice in flight, numbers rounds and stands
// by while a daemon with a smaller ID is active. Each round it hands what it
// knows to the pure policy in rebalance_policy.go. Like Node it never reads
// the clock and does no I/O.

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
	// Locations: the cluster's locations. No move sends units of a
	// location to a region that may not sell from it, and no such region
	// is made its home (the regions refuse both anyway).
	Locations   []Location
	MaxRegions  int // regions tracked (256)
	MaxSKUs     int // SKU entries per region (100,000)
	MaxInFlight int // moves remembered in flight (100,000)
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
	// ImplausibleSKUs: SKUs skipped at the last round because the units
	// their digests claim sum to MaxSKUUnits or more (a lying or broken
	// region); nothing is advised for them.
	ImplausibleSKUs int
	Epoch           uint64
	Standby         bool
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
				if ValidStockKey(h.SKU) == nil && ValidRegion(h.Region) == nil && len(r.homes) < MaxWireHomes {
					r.homes = append(r.homes, h)
				}
			}
		}
		for _, mv := range m.Moves {
			if ValidStockKey(mv.SKU) == nil && ValidRegion(mv.From) == nil && ValidRegion(mv.To) == nil && mv.Qty > 0 {
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
		if ValidStockKey(d.SKU) != nil {
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
				DemandPerSec: float64(e.d.DemandMilli) / 1000, Rejected: e.rejected, Waiting: e.d.Waiting})
		}
	}
	in := RebalanceInput{SKUs: make([]SKULoad, 0, len(loads))}
	for sku, l := range loads {
		in.SKUs = append(in.SKUs, SKULoad{SKU: sku, Regions: l})
	}
	sort.Slice(in.SKUs, func(i, j int) bool { return in.SKUs[i].SKU < in.SKUs[j].SKU })
	r.stats.Regions = planned
	r.stats.ImplausibleSKUs = CountImplausibleSKUs(in)
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
	r.homes = r.sellableHomes(ChooseHomes(in, r.homes, r.cfg.Policy))
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
	moves := r.sellableMoves(Rebalance(in, r.cfg.Policy))
	ms := now.UnixMilli()
	if ms > 0 && uint64(ms) > r.epoch {
		r.epoch = uint64(ms)
	} else {
		r.epoch++
	}
	for _, mv := range moves {
		r.addInFlight(mv, now)
		r.stats.MovesAdvised++
		r.stats.UnitsAdvised = satAdd(r.stats.UnitsAdvised, mv.Qty)
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
