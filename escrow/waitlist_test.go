package escrow

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// runWaitWorkload drives one node through a sold-out SKU: shoppers wait
// (some with two-line carts), holders release or let holds expire, a few
// waiters cancel, a restock comes. It returns the checker's findings.
func runWaitWorkload(t *testing.T, seed uint64, bugs plantedbugs.Bugs) *WaitChecker {
	t.Helper()
	cfg := Config{Region: "eu", DefaultTTL: time.Minute}
	n := newNodeWithBugs(t, cfg, bugs)
	rng := rand.New(rand.NewPCG(seed, 18))
	now := t0
	chk := NewWaitChecker()
	var req uint64
	var holds, waits []string
	step := func(c *Command) []Reply {
		if c != nil {
			req++
			c.ReqID = req
		}
		if err := n.Step(Input{Now: now, Cmd: c}); err != nil {
			t.Fatal(err)
		}
		rd := n.Ready()
		chk.Observe(&rd.Persist)
		chk.Forget(rd.Persist.DeletedWaits)
		n.Advance()
		if err := n.checkWaitlist(); err != nil && !bugs.Any() {
			t.Fatal(err)
		}
		for _, s := range n.skus {
			if n.available(s) > 0 && !bugs.Any() {
				// Units available while a covered entry waits would be
				// stranded: the head of every SKU's line must be blocked.
				for _, e := range n.wait.queue {
					if e.State != Waiting || !sharesSKU(e.Lines, []Line{{SKU: s.sku}}) {
						continue
					}
					if len(e.Lines) == 1 && e.Lines[0].Qty <= n.available(s) {
						t.Fatalf("seed %d: %d units of %s available while entry #%d for %d waits", seed, n.available(s), s.sku, e.Seq, e.Lines[0].Qty)
					}
					break // only the head of the SKU's line
				}
			}
		}
		return rd.Reply
	}
	step(&Command{Kind: CmdRestock, SKU: "A", Qty: 3})
	step(&Command{Kind: CmdRestock, SKU: "B", Qty: 2})
	for i := 0; i < 400; i++ {
		now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
		switch k := rng.IntN(10); {
		case k < 5:
			lines := []Line{{SKU: "A", Qty: uint64(1 + rng.IntN(2))}}
			if rng.IntN(4) == 0 {
				lines = append(lines, Line{SKU: "B", Qty: 1})
			}
			for _, r := range step(&Command{Kind: CmdHold, Lines: lines, Wait: time.Duration(30+rng.IntN(120)) * time.Second}) {
				if r.Hold != nil {
					holds = append(holds, r.Hold.ID)
				}
				if r.Wait != nil {
					waits = append(waits, r.Wait.ID)
				}
			}
		case k < 7 && len(holds) > 0:
			j := rng.IntN(len(holds))
			step(&Command{Kind: CmdRelease, HoldID: holds[j]})
			holds = append(holds[:j], holds[j+1:]...)
		case k < 8 && len(waits) > 0:
			step(&Command{Kind: CmdWaitCancel, HoldID: waits[rng.IntN(len(waits))]})
		case k < 9:
			for _, e := range n.WaitEntries() {
				if e.HoldID != "" && rng.IntN(2) == 0 {
					step(&Command{Kind: CmdRelease, HoldID: e.HoldID}) // abandoned cart of a promoted shopper
				}
			}
		default:
			if rng.IntN(10) == 0 {
				step(&Command{Kind: CmdRestock, SKU: "A", Qty: 1})
			}
			step(nil)
		}
	}
	return chk
}

// TestWaitlistFIFOAndTerminal: without bugs the checker finds nothing over
// many seeds (and promotions happen); each planted waitlist bug is caught.
func TestWaitlistFIFOAndTerminal(t *testing.T) {
	seeds := 20
	if testing.Short() {
		seeds = 5
	}
	for s := uint64(1); s <= uint64(seeds); s++ {
		chk := runWaitWorkload(t, s, plantedbugs.Bugs{})
		if len(chk.Violations) > 0 {
			t.Fatalf("seed %d: %v", s, chk.Violations)
		}
		if chk.Promotions == 0 {
			t.Fatalf("seed %d: no promotion: the workload does not exercise the waitlist", s)
		}
	}
	for name, b := range map[string]plantedbugs.Bugs{
		"PromoteOutOfOrder":  {PromoteOutOfOrder: true},
		"PromotedKeepsPlace": {PromotedKeepsPlace: true},
	} {
		caught := false
		for s := uint64(1); s <= uint64(seeds) && !caught; s++ {
			caught = len(runWaitWorkload(t, s, b).Violations) > 0
		}
		if !caught {
			t.Errorf("planted bug %s was not caught in %d seeds", name, seeds)
		}
	}
}
