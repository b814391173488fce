package sim

import (
	"testing"
	"time"
)

// TestLocationWorkloadSafe: the locations workload under every fault
// passes every checker, per (SKU, location), with no unit granted from a
// location its line did not allow; lines were split and quota of the
// shared locations moved between their two sellers.
func TestLocationWorkloadSafe(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 2; seed++ {
		o := Options{Seed: seed, Regions: 3, Duration: 2 * time.Minute, Workload: "locations", Faults: FaultsAll}
		t.Logf("seed %d: holdfast sim %v", seed, o.Args(seed))
		r := mustRun(t, o)
		if r.Failed() {
			t.Fatalf("seed %d: %v", seed, r.Failures[:min(3, len(r.Failures))])
		}
		if !r.locations || r.Granted == 0 || r.LocationSplitLines == 0 || r.BorrowUnitsIn == 0 {
			t.Fatalf("seed %d: the workload did not exercise locations: granted %d, split lines %d, borrowed units %d",
				seed, r.Granted, r.LocationSplitLines, r.BorrowUnitsIn)
		}
	}
}

// TestLocationWorkloadOnRegionRuntime: the same on the real region runtime
// (Pebble store of format 2 with location keys, the wire codec with
// version-3 messages), one seed.
func TestLocationWorkloadOnRegionRuntime(t *testing.T) {
	o := Options{Seed: 1, Regions: 3, Duration: time.Minute, Workload: "locations", Faults: FaultsAll, Runtime: RuntimeRegion}
	t.Logf("holdfast sim %v", o.Args(1))
	r := mustRun(t, o)
	if r.Failed() || r.Granted == 0 || r.MsgErrors > 0 {
		t.Fatalf("granted %d, message errors %d: %v", r.Granted, r.MsgErrors, r.Failures[:min(3, len(r.Failures))])
	}
}

// TestLocationCheckerCatchesPlantedBug: with grant-any-location planted (a
// line no eligible location covers is granted from another one), the
// location checker reports it.
func TestLocationCheckerCatchesPlantedBug(t *testing.T) {
	t.Parallel()
	o := Options{Regions: 3, Duration: time.Minute, Workload: "locations"}
	if err := o.SetBug(BugGrantAnyLocation); err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= 3; seed++ {
		o.Seed = seed
		r := mustRun(t, o)
		if r.LocationViolations > 0 && r.Failed() {
			t.Logf("seed %d: caught: %v", seed, r.Failures[:min(2, len(r.Failures))])
			return
		}
	}
	t.Fatal("the location checker missed grant-any-location on seeds 1-3")
}
