package sim

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// storeBackOpts is a short flash sale on the region runtime with one fault
// that sends a store back in time.
func storeBackOpts(fault string) Options {
	return Options{Workload: "flash", Faults: fault, Regions: 3, Duration: time.Minute, Runtime: RuntimeRegion}
}

// TestStoreBackFaults: a wiped store, a restore from an older copy and a
// disk whose fsync lies are each caught by the store fence: every checker
// stays at zero (no oversell, no acknowledged hold lost beyond those the
// region lost with its store, counted apart), the region ends the run
// refusing writes, and the run is deterministic.
func TestStoreBackFaults(t *testing.T) {
	for _, fault := range []string{"wipe", "rollback", "fsynclie", "bitflip"} {
		t.Run(fault, func(t *testing.T) {
			o := storeBackOpts(fault)
			for seed := uint64(1); seed <= 2; seed++ {
				o.Seed = seed
				r := mustRun(t, o)
				t.Logf("seed %d: %s=%d wiped_lost=%d fenced_regions=%d fence_refused=%d skipped=%d", seed, fault,
					r.FaultCounts[fault], r.WipedLost, r.FencedRegions, r.FenceRefused, r.StoreBackSkipped)
				if r.Failed() {
					t.Fatalf("seed %d: %s", seed, strings.Join(r.Failures, "; "))
				}
				if r.FaultCounts[fault]+r.StoreBackSkipped != 1 {
					t.Errorf("seed %d: %s=%d skipped=%d, want one episode", seed, fault, r.FaultCounts[fault], r.StoreBackSkipped)
				}
			}
		})
	}
}

// TestStoreBackDeterminism: the same seed gives the same result and
// report, byte for byte, with every store fault of this file at once.
func TestStoreBackDeterminism(t *testing.T) {
	o := storeBackOpts("wipe,rollback,fsynclie,bitflip")
	o.Seed = 3
	if testing.Short() {
		o.Duration = 30 * time.Second // (CI runs it with -race)
	}
	t.Logf("seed %d (replay: holdfast sim %v)", o.Seed, o.Args(o.Seed))
	a, b := mustRun(t, o), mustRun(t, o)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("results differ:\n%+v\n%+v", a, b)
	}
	var ta, tb bytes.Buffer
	WriteText(&ta, o, []*Result{a})
	WriteText(&tb, o, []*Result{b})
	if ta.String() != tb.String() {
		t.Fatalf("reports differ:\n%s\n%s", ta.String(), tb.String())
	}
	if a.Failed() || a.FencedRegions == 0 {
		t.Fatalf("fenced_regions=%d, failures %v", a.FencedRegions, a.Failures)
	}
}

// The planted bugs the store faults catch: the fence ignoring its peers
// (every fault here, flash sale) and a restart that does not wait for them
// (rollback, fsynclie: the restarted region grants from its old rows before
// the peers' digests fence it; rollback's window is caught less often, 3
// seeds in 15 of each of steady, flash and skew when written) oversell,
// which the oversell checker or the region's own available going negative
// catches within 10 seeds.
func TestPlantedIgnoreFenceWipe(t *testing.T) {
	plantedStoreBack(t, BugIgnoreFence, "wipe")
}
func TestPlantedIgnoreFenceRollback(t *testing.T) {
	plantedStoreBack(t, BugIgnoreFence, "rollback")
}
func TestPlantedIgnoreFenceFsyncLie(t *testing.T) {
	plantedStoreBack(t, BugIgnoreFence, "fsynclie")
}
func TestPlantedIgnoreFenceBitflip(t *testing.T) {
	plantedStoreBack(t, BugIgnoreFence, "bitflip")
}
func TestPlantedNoRestartProbationRollback(t *testing.T) {
	plantedStoreBack(t, BugNoRestartProbation, "rollback")
}
func TestPlantedNoRestartProbationFsyncLie(t *testing.T) {
	plantedStoreBack(t, BugNoRestartProbation, "fsynclie")
}

func plantedStoreBack(t *testing.T, bug, fault string) {
	o := storeBackOpts(fault)
	if err := o.SetBug(bug); err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= 10; seed++ {
		o.Seed = seed
		r := mustRun(t, o)
		if r.Oversell+r.ConservationErrors > 0 && r.Failed() {
			t.Logf("seed %d: caught: oversell=%d conservation_errors=%d: %s", seed, r.Oversell, r.ConservationErrors,
				strings.Join(r.Failures[:min(2, len(r.Failures))], "; "))
			return
		}
	}
	t.Fatalf("bug %s not caught with faults=%s on seeds 1-10 (flash)", bug, fault)
}
