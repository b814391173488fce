package sim

import (
	"fmt"
	"os"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// The escrow+rebalancer strategy is escrow (borrow on miss, low-water
// top-up) plus the global rebalancer daemon, modelled as an actor on the
// network next to one region: it hears the regions' digests, runs the
// production policy (escrow.Rebalancer) every RebalanceInterval and
// broadcasts advice. Its input and output cross the simulated network, it
// shares the links, partitions and crashes of its site, and a crash loses
// everything it remembered (digests, moves in flight); its epochs come from
// the clock, so regions still accept it after a restart.

// RebalanceInterval is the simulated daemon's round period.
const RebalanceInterval = time.Second

// SimRebalancePolicy is the policy the simulated daemon runs; the daemon's
// command-line defaults are the same (escrow.DefaultRebalancePolicy).
func SimRebalancePolicy() escrow.RebalancePolicy { return escrow.DefaultRebalancePolicy() }

var testPolicy *escrow.RebalancePolicy

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
		// Next to the last region: not the first, which the fault
		// schedules and the central strategy single out.
		site: len(s.Regions) - 1,
		cfg: escrow.RebalancerConfig{
			ID:         "rebalancer",
			Policy:     SimRebalancePolicy(),
			StaleAfter: 5 * RebalanceInterval,
			// Digests come every second and a move needs an
			// inter-region round trip to show in both digests.
			Settle: 2 * time.Second,
			// One daemon: never on standby.
			StandbyAfter: -1,
		},
	}
	if testPolicy != nil {
		d.cfg.Policy = *testPolicy
	}
	d.Reset()
	return d
}

func (d *simRebalancer) Name() string             { return d.cfg.ID }
func (d *simRebalancer) Site() int                { return d.site }
func (d *simRebalancer) TickEvery() time.Duration { return RebalanceInterval }
func (d *simRebalancer) Delay() time.Duration     { return 2 * time.Millisecond }

func (d *simRebalancer) Tick(now time.Time) []escrow.Message {
	if dbgRB {
		for _, s := range d.rb.Input(now).SKUs {
			if s.SKU == os.Getenv("RBSKU") {
				fmt.Printf("%s in %+v\n", now.Format("04:05.000"), s.Regions)
			}
		}
	}
	adv, ok := d.rb.Round(now)
	if dbgRB {
		for _, m := range adv.Moves {
			if m.SKU == os.Getenv("RBSKU") {
				fmt.Printf("   move %+v\n", m)
			}
		}
	}
	if !ok || len(adv.Moves) == 0 {
		// Empty advice only tells other daemons this one leads; with one
		// daemon it would be pure message overhead.
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

var dbgRB = os.Getenv("RBTRACE") != ""
