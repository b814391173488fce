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
	// Every fault but those that send a store back in time.
	var want []string
	for _, name := range FaultNames() {
		if f, _ := ParseFaults(name); !storeBackFaults.Has(f) {
			want = append(want, name)
		}
	}
	if got := FaultsAllSet.String(); got != strings.Join(want, ",") || FaultsAllSet&storeBackFaults != 0 {
		t.Errorf("all = %s, want every fault but wipe, rollback, fsynclie, bitflip: %v", got, want)
	}
	_, err := ParseFaults("jump,bogus")
	if err == nil || !strings.Contains(err.Error(), `"bogus"`) || !strings.Contains(err.Error(), "linkloss") {
		t.Errorf("unknown fault: %v, want the name and the valid names", err)
	}
	_, err = ParseFaults("membership")
	if err == nil || !strings.Contains(err.Error(), "not simulated") {
		t.Errorf("membership: %v, want a refusal with its reason", err)
	}
	if _, err := Run(Options{Faults: "partitions,nope"}); err == nil {
		t.Error("Run accepted an unknown fault")
	}
}

// Every false rejection of a named mix has one cause, and only named
// mixes report them (the old outputs stay as they were).
func TestFalseRejectCauses(t *testing.T) {
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
