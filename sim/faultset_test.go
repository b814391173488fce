package sim

import (
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	for in, want := range map[string]FaultSet{
		"none": 0, "partitions": FaultPartitions, "all": FaultsAllSet,
		"partitions,crash,spike,lossy,skew": legacyAll, " jump , linkloss ": FaultJump | FaultLinkLoss,
		"none,asym": FaultAsym,
	} {
		got, err := ParseFaults(in)
		if err != nil || got != want {
			t.Errorf("ParseFaults(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// Every fault, those that send a store back in time included.
	if got := FaultsAllSet.String(); got != strings.Join(FaultNames(), ",") || !FaultsAllSet.Has(storeBackFaults) {
		t.Errorf("all = %s, want every fault: %v", got, FaultNames())
	}
	// The escrow runtime has no store: its effective "all" leaves them out.
	esc := Options{Faults: FaultsAll, Runtime: RuntimeEscrow}
	if got := esc.faultSet(); got != FaultsAllSet&^storeBackFaults {
		t.Errorf("escrow runtime all = %s, want all but the store-back faults", got)
	}
	reg := Options{Faults: FaultsAll, Runtime: RuntimeRegion}
	if got := reg.faultSet(); got != FaultsAllSet {
		t.Errorf("region runtime all = %s, want every fault", got)
	}
	_, err := ParseFaults("jump,bogus")
	if err == nil || !strings.Contains(err.Error(), `"bogus"`) || !strings.Contains(err.Error(), "linkloss") {
		t.Errorf("unknown fault: %v, want the name and the valid names", err)
	}
	if got, err := ParseFaults("membership"); err != nil || got != FaultMembership {
		t.Errorf("membership: %v, %v; want the fault", got, err)
	}
	if _, err := Run(Options{Faults: "partitions,nope"}); err == nil {
		t.Error("Run accepted an unknown fault")
	}
}

// Every false rejection of a named mix has one cause, and only named
// mixes report them (the old outputs stay as they were).
func TestFalseRejectCauses(t *testing.T) {
	t.Parallel()
	o := Options{Seed: 2, Regions: 4, Duration: time.Minute, Faults: FaultsAll, Workload: "shift"}
	r := mustRun(t, o)
	var sum uint64
	for _, v := range r.FalseRejectsByCause {
		sum += v
	}
	if r.FalseRejects == 0 || sum != r.FalseRejects {
		t.Fatalf("causes %v sum to %d, false rejections %d", r.FalseRejectsByCause, sum, r.FalseRejects)
	}
	o.Faults = "partitions,crash,spike,lossy,skew"
	if r := mustRun(t, o); r.FalseRejectsByCause != nil || r.FaultCounts != nil {
		t.Fatalf("the old all reports causes %v and counts %v", r.FalseRejectsByCause, r.FaultCounts)
	}
}
