package sim

import (
	"testing"
	"time"
)

// TestPartialHoldsSafe: a flash sale where half the carts are partial
// holds, with partitions: every checker passes (no oversell, each hold's
// lines are exactly the units its row reserved, conservation after heal).
// TestCheckersCatchBugs shows the units checker catches a partial hold
// that records more than it reserved.
func TestPartialHoldsSafe(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 2; seed++ {
		o := Options{Seed: seed, Regions: 3, Duration: time.Minute, Workload: "flash", Faults: FaultsPartitions, Partial: 0.5}
		t.Logf("seed %d: holdfast sim %v", seed, o.Args(seed))
		r := mustRun(t, o)
		if r.Failed() {
			t.Fatalf("seed %d: %v", seed, r.Failures[:min(3, len(r.Failures))])
		}
	}
}
