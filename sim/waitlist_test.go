package sim

import (
	"strings"
	"testing"
	"time"
)

// The waitlist workload: waiters join in every region, returned units reach
// them, and every waitlist checker passes.
func TestWaitlistWorkload(t *testing.T) {
	t.Parallel()
	o := Options{Seed: 1, Regions: 4, Duration: 2 * time.Minute, Workload: "waitlist", Faults: FaultsAll}
	r := mustRun(t, o)
	t.Logf("seed 1: joined=%d promoted=%d cancelled=%d expired=%d p50=%.0fms p99=%.0fms share=%.3f cross_max=%dms",
		r.WaitJoined, r.WaitPromoted, r.WaitCancelled, r.WaitExpired, r.WaitP50Ms, r.WaitP99Ms, r.ReturnedToWaiters, r.WaitCrossMaxMs)
	if r.WaitViolations != 0 || r.WaitStranded != 0 || r.Oversell != 0 || r.LostAcked != 0 || r.ConservationErrors != 0 {
		t.Fatalf("checkers failed: %v", r.Failures)
	}
	if r.WaitJoined == 0 || r.WaitPromoted == 0 || r.WaitExpired == 0 {
		t.Fatalf("the workload did not exercise the waitlist: joined=%d promoted=%d expired=%d", r.WaitJoined, r.WaitPromoted, r.WaitExpired)
	}
	if r.WaitP50Ms <= 0 || r.WaitP99Ms < r.WaitP50Ms || r.ReturnedToWaiters <= 0 || r.ReturnedToWaiters > 1 {
		t.Fatalf("waitlist figures: p50=%v p99=%v share=%v", r.WaitP50Ms, r.WaitP99Ms, r.ReturnedToWaiters)
	}
	kv := Summarize([]*Result{r}).KV()
	for _, k := range []string{"wait_joined=", "wait_p50_ms=", "wait_p99_ms=", "returned_to_waiters=", "wait_violations=0", "wait_stranded=0"} {
		if !strings.Contains(kv, k) {
			t.Errorf("summary line lacks %s: %s", k, kv)
		}
	}
	if again := mustRun(t, o); again.TraceHash != r.TraceHash {
		t.Fatalf("seed 1 is not deterministic: %x vs %x", again.TraceHash, r.TraceHash)
	}
}

// Other workloads have no waiters, and their summary line has no waitlist
// keys (their output stays as it was).
func TestNoWaitlistKeysWithoutWaiters(t *testing.T) {
	t.Parallel()
	r := mustRun(t, Options{Seed: 1, Regions: 3, Duration: time.Minute, Workload: "flash"})
	if r.WaitJoined != 0 {
		t.Fatalf("flash: %d waiters", r.WaitJoined)
	}
	if kv := Summarize([]*Result{r}).KV(); strings.Contains(kv, "wait_") {
		t.Fatalf("flash summary has waitlist keys: %s", kv)
	}
}

// The simulator's waitlist checkers catch both planted waitlist bugs within
// a few seeds.
func TestWaitlistCheckersCatchBugs(t *testing.T) {
	t.Parallel()
	for _, bug := range []string{BugPromoteOutOfOrder, BugPromotedKeepsPlace} {
		t.Run(bug, func(t *testing.T) {
			o := Options{Regions: 3, Duration: 2 * time.Minute, Workload: "waitlist"}
			if err := o.SetBug(bug); err != nil {
				t.Fatal(err)
			}
			for seed := uint64(1); seed <= 3; seed++ {
				o.Seed = seed
				r := mustRun(t, o)
				if r.WaitViolations > 0 && r.Failed() {
					t.Logf("seed %d: caught: %v", seed, r.Failures[:min(2, len(r.Failures))])
					return
				}
			}
			t.Fatalf("bug %s not caught by the waitlist checkers on seeds 1-3", bug)
		})
	}
}
