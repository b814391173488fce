package sim

import (
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// The escrow+rebalancer strategy is escrow (borrow on miss, low-water
// top-up, same region configuration) plus the global rebalancer daemon,
// modelled as an actor on the network next to one region: it hears the
// regions' digests, runs the production state machine and policy
// (escrow.Rebalancer) every RebalanceInterval and broadcasts advice. Its
// input and output cross the simulated network, it shares the links and
// partitions of its site, it crashes and restarts like a region (the fault
// schedule covers daemons), and a crash loses everything it remembered;
// its epochs come from the clock, so regions accept it after a restart.

// RebalanceInterval is the simulated daemon's round period, the daemon's
// default.
const RebalanceInterval = time.Second

// SimRebalancePolicy is the policy the simulated daemon runs: the daemon's
// defaults (holdfast rebalancer without policy flags).
func SimRebalancePolicy() escrow.RebalancePolicy { return escrow.DefaultRebalancePolicy() }

func init() {
	RegisterStrategy("escrow+rebalancer", func() Strategy { return rebalancerStrategy{} })
}

type rebalancerStrategy struct{ escrowStrategy }

func (rebalancerStrategy) Daemons(s *Setup) []Daemon {
	return []Daemon{newSimRebalancer(s)}
}

type simRebalancer struct {
	site int
	cfg  escrow.RebalancerConfig
	rb   *escrow.Rebalancer
}

func newSimRebalancer(s *Setup) *simRebalancer {
	d := &simRebalancer{
		// Next to the last region: not the first, which the skew and
		// shift workloads make hot at the start.
		site: len(s.Regions) - 1,
		cfg: escrow.RebalancerConfig{
			ID:         "rebalancer",
			Locations:  s.Locations,
			Policy:     SimRebalancePolicy(),
			StaleAfter: 5 * RebalanceInterval,
			// A move shows in both digests after three one-way trips
			// (advice, donor's rows, receiver's digest): 3 × InterMax.
			Settle: max(3*s.Opts.maxOneWay()+100*time.Millisecond, 300*time.Millisecond),
			// One daemon: never on standby.
			StandbyAfter: -1,
		},
	}
	d.Reset()
	return d
}

func (d *simRebalancer) Name() string             { return d.cfg.ID }
func (d *simRebalancer) Site() int                { return d.site }
func (d *simRebalancer) TickEvery() time.Duration { return RebalanceInterval }
func (d *simRebalancer) Delay() time.Duration     { return 2 * time.Millisecond }

func (d *simRebalancer) Tick(now time.Time) []escrow.Message {
	adv, ok := d.rb.Round(now)
	if !ok || len(adv.Moves) == 0 && len(adv.Homes) == 0 {
		// Advice without moves or homes only tells other daemons this one
		// leads; with one daemon it would be pure message overhead. Homes
		// are re-sent every round: regions let them lapse after HomeTTL.
		return nil
	}
	return []escrow.Message{adv}
}

func (d *simRebalancer) Receive(now time.Time, m *escrow.Message) []escrow.Message {
	if m.Type == escrow.MsgDigest || m.Type == escrow.MsgAdvice {
		_ = d.rb.Step(now, m) // a malformed digest is dropped, as the daemon does
	}
	return nil
}

func (d *simRebalancer) Reset() {
	rb, err := escrow.NewRebalancer(d.cfg)
	if err != nil {
		panic("sim: rebalancer config: " + err.Error()) // a programming error
	}
	d.rb = rb
}
