package sim

import (
	"testing"
	"time"
)

// TestSweepLargeCatalogue: the simulator keeps its checkers over a
// catalogue of 100k SKUs drawn by Zipf(1.1) popularity (the workload's
// shape), with partitions, in seconds: no checker may be quadratic in
// SKUs. Not with -short (the race run): its 300k rows take a GB there.
func TestSweepLargeCatalogue(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("100k SKUs")
	}
	o := Options{Strategy: "escrow", Workload: "steady", Faults: FaultsPartitions, Regions: 3, SKUs: 100_000,
		Duration: 20 * time.Second, Rate: 50}
	sweepOK(t, "escrow/steady/100k-skus", o, 1)
}
