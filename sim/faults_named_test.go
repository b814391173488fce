package sim

import (
	"strings"
	"testing"
	"time"
)

// Each planted bug of a named fault is caught by its checker with that
// fault alone within 20 seeds, and not with no fault on the same seeds
// (at most as many as it took with the fault): the fault is what exposes it.
func TestPlantedBugsNeedTheirFault(t *testing.T) {
	t.Parallel()
	cases := []struct {
		bug, fault string
		opts       Options
		checker    func(r *Result) uint64
		name       string
	}{
		{BugAckSlowFsync, "stall", Options{}, func(r *Result) uint64 { return r.LostAcked }, "lost_acked"},
		{BugSkipVerify, "corrupt", Options{}, func(r *Result) uint64 { return r.CorruptAccepted }, "corrupt_accepted"},
		{BugIgnoreIdemKey, "linkloss", Options{}, func(r *Result) uint64 { return r.DoubleHolds }, "double_holds"},
		{BugTrustClock, "jump", Options{}, func(r *Result) uint64 { return r.ClockErrors }, "clock_errors"},
		{BugLastRowWins, "replay", Options{}, func(r *Result) uint64 { return r.RowRegressions }, "row_regressions"},
	}
	for _, c := range cases {
		t.Run(c.bug, func(t *testing.T) {
			o := c.opts
			o.Regions, o.Duration = 3, 2*time.Minute
			if err := o.SetBug(c.bug); err != nil {
				t.Fatal(err)
			}
			caught := uint64(0)
			o.Faults = c.fault
			for seed := uint64(1); seed <= 20 && caught == 0; seed++ {
				o.Seed = seed
				if r := mustRun(t, o); c.checker(r) > 0 && r.Failed() {
					caught = seed
					t.Logf("faults=%s seed %d: %s caught it: %s", c.fault, seed, c.name, strings.Join(r.Failures[:min(2, len(r.Failures))], "; "))
				}
			}
			if caught == 0 {
				t.Fatalf("bug %s not caught with faults=%s on seeds 1-20", c.bug, c.fault)
			}
			o.Faults = FaultsNone
			for seed := uint64(1); seed <= caught; seed++ {
				o.Seed = seed
				if r := mustRun(t, o); r.Failed() {
					t.Fatalf("bug %s caught without its fault (seed %d): %v", c.bug, seed, r.Failures)
				}
			}
		})
	}
}
