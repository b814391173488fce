package sim

import (
	"strings"
	"testing"
	"time"
)

// TestFaultsAllStoreBack: --faults all includes the faults that send a
// store back in time, and the region runtime stays clean under it. Each
// seed was a failure before its fix:
//   - 8/skew: a peer's copy of the fenced region's row lacked a transfer to
//     the region with the units, so it never asked that region (stock
//     hints, escrow/stock_hints.go);
//   - 14/skew: two regions on restart probation, one held by the other's
//     claim, each waited for the other for good (a held probation now says
//     it is fenced: escrow.Node.fenceHeld, which also stops peers asking it
//     to lend: it lends nothing).
//
// Every checker stays at zero, every store-back fault fires, and the
// escrow runtime (no disk) leaves them out of its effective "all".
func TestFaultsAllStoreBack(t *testing.T) {
	cases := []struct {
		seed     uint64
		workload string
	}{{8, "skew"}, {14, "skew"}}
	fired := map[string]uint64{}
	var fenced uint64
	for _, c := range cases {
		o := Options{Seed: c.seed, Workload: c.workload, Faults: FaultsAll, Regions: 3, Duration: 10 * time.Minute,
			Runtime: RuntimeRegion}
		r := mustRun(t, o)
		t.Logf("seed %d/%s: %v wiped_lost=%d fenced_regions=%d bitflip_late=%d", c.seed, c.workload,
			r.FaultCounts, r.WipedLost, r.FencedRegions, r.BitflipLate)
		if r.Failed() {
			t.Fatalf("seed %d/%s (replay: holdfast sim %v): %s", c.seed, c.workload, o.Args(o.Seed),
				strings.Join(r.Failures, "; "))
		}
		for _, f := range []string{"wipe", "rollback", "fsynclie", "bitflip"} {
			if _, ok := r.FaultCounts[f]; !ok {
				t.Fatalf("seed %d: %s is not in the mix of all: %v", c.seed, f, r.FaultCounts)
			}
			fired[f] += r.FaultCounts[f]
		}
		fenced += r.FencedRegions
	}
	for f, n := range fired {
		if n == 0 {
			t.Errorf("%s never fired under all: %v", f, fired)
		}
	}
	if fenced == 0 {
		t.Error("no region ended the runs fenced")
	}
	// The escrow runtime: the store-back faults are not in its mix.
	r := mustRun(t, Options{Seed: 1, Workload: "flash", Faults: FaultsAll, Regions: 3, Duration: time.Minute})
	for _, f := range []string{"wipe", "rollback", "fsynclie", "bitflip", "midsync"} {
		if _, ok := r.FaultCounts[f]; ok {
			t.Errorf("escrow runtime: %s in the mix of all: %v", f, r.FaultCounts)
		}
	}
	if r.Failed() {
		t.Fatalf("escrow runtime: %s", strings.Join(r.Failures, "; "))
	}
}

// The planted bugs of those fixes are caught by the liveness checker
// (units that peers could sell are never sold) on at least one of their
// seeds, and every seed passes without the bug. The mix is every fault but
// membership, the one the seeds were found with: the bugs are of the
// fence, and membership (a region added and another removed) redraws the
// whole schedule. Two seeds each, not one: under heavy CPU load the region
// runtime has, rarely, given another result on seed 14 (1 run in 6 of
// quiet-held-probation with two simulator sweeps running beside it; the
// cause is not established, see docs/simulator.md), and the test must not
// depend on it. Seeds 1-30 of skew were scanned: only 8 and 15 catch
// no-stock-hints, only 11 and 14 quiet-held-probation.
func TestPlantedNoStockHints(t *testing.T) {
	plantedAll(t, BugNoStockHints, "skew", 8, 15)
}
func TestPlantedQuietHeldProbation(t *testing.T) {
	plantedAll(t, BugQuietHeldProbation, "skew", 11, 14)
}

func plantedAll(t *testing.T, bug string, workload string, seeds ...uint64) {
	caught := 0
	for _, seed := range seeds {
		o := Options{Seed: seed, Workload: workload, Faults: (FaultsAllSet &^ FaultMembership).String(), Regions: 3,
			Duration: 10 * time.Minute, Runtime: RuntimeRegion}
		clean := o
		if err := o.SetBug(bug); err != nil {
			t.Fatal(err)
		}
		if r := mustRun(t, o); r.LivenessFailures > 0 && r.Failed() {
			caught++
			t.Logf("seed %d/%s: caught: liveness_failures=%d: %s", seed, workload, r.LivenessFailures, r.Failures[0])
		} else {
			t.Logf("seed %d/%s: bug %s not caught: liveness_failures=%d failures %v", seed, workload, bug,
				r.LivenessFailures, r.Failures)
		}
		if r := mustRun(t, clean); r.Failed() {
			t.Fatalf("seed %d/%s fails without bug %s: %v", seed, workload, bug, r.Failures)
		}
	}
	if caught == 0 {
		t.Fatalf("bug %s not caught on any of seeds %v of %s", bug, seeds, workload)
	}
}
