package escrow

import (
	"testing"
	"time"
)

// defaultTNet is newTNet with the node's own defaults (the harness turns
// top-up off unless a test sets a policy): what `holdfast region` runs with
// no configuration.
func defaultTNet(t *testing.T, cfg Config, regions ...string) *tnet {
	tw := newTNet(t, Config{LowWater: 1}, regions...)
	for _, r := range regions {
		tn := tw.nodes[r]
		c := cfg
		c.Region = r // digests on (default 1s): peers stay heard from
		n, err := NewNode(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		tn.n, tn.cfg = n, c
	}
	return tw
}

// sustainedDemand runs holds of one unit of A at us, one every 10ms (100/s)
// for d, with all stock at eu, and returns us's statistics.
func sustainedDemand(t *testing.T, tw *tnet, d time.Duration) Stats {
	t.Helper()
	eu, us := tw.nodes["eu"], tw.nodes["us"]
	eu.restock("A", 1_000_000)
	tw.flush()
	now := us.now
	for end := now.Add(d); now.Before(end); now = now.Add(10 * time.Millisecond) {
		tw.setNow(now)
		us.submit(Command{Lines: []Line{l("A", 1)}})
		eu.step(nil)
		eu.drain()
		us.step(nil)
		us.drain()
		tw.flush()
	}
	return us.n.Stats()
}

// TestTopUpDefaultFollowsDemand: a region with no configuration and no
// stock of its own, under sustained demand, borrows a bounded number of
// times (the default demand-driven top-up brings it seconds of demand at
// a time), not once per hold as with top-up off.
func TestTopUpDefaultFollowsDemand(t *testing.T) {
	const holds = 2000 // 20 s at 100 holds/s
	def := sustainedDemand(t, defaultTNet(t, Config{}, "eu", "us"), holds*10*time.Millisecond)
	off := sustainedDemand(t, defaultTNet(t, Config{TopUpHorizon: -1}, "eu", "us"), holds*10*time.Millisecond)
	t.Logf("default: %d granted, %d borrows (%d top-ups); top-up off: %d granted, %d borrows",
		def.Granted, def.BorrowsSent, def.TopUps, off.Granted, off.BorrowsSent)
	if def.Granted != holds || off.Granted != holds {
		t.Fatalf("granted %d (default) and %d (top-up off), want %d each", def.Granted, off.Granted, holds)
	}
	if off.BorrowsSent < holds/2 {
		t.Fatalf("top-up off borrowed only %d times for %d holds: the comparison shows nothing", off.BorrowsSent, holds)
	}
	// The threshold grows with the demand estimate (EWMA, DemandTau 30s)
	// and each top-up asks for twice it, so the borrows grow like the log
	// of the units sold, not like the holds.
	if def.BorrowsSent > 40 {
		t.Fatalf("default config borrowed %d times for %d holds, want a bounded number (≤ 40)", def.BorrowsSent, holds)
	}
}
