package sim

import (
	"testing"
	"time"
)

// TestHoldCacheSweep: with every region keeping at most 8 holds and 8
// idempotency keys resident, every workload under every fault passes every
// checker (acknowledged holds survive crashes, holds past their deadline
// are expired, conservation), and the cache is used.
func TestHoldCacheSweep(t *testing.T) {
	seeds, dur := sweepSize(t)
	for _, wl := range []string{"steady", "flash", "skew", "waitlist"} {
		o := Options{Workload: wl, Faults: FaultsAll, Regions: 4, Duration: dur, HoldCache: 8}
		sweepOK(t, "hold-cache/"+wl, o, seeds)
		r := mustRun(t, Options{Seed: 1, Workload: wl, Faults: FaultsAll, Regions: 4, Duration: dur, HoldCache: 8})
		if r.HoldCacheMisses == 0 || r.HoldCacheEvictions == 0 {
			t.Fatalf("%s: the cache was not used: misses %d evictions %d", wl, r.HoldCacheMisses, r.HoldCacheEvictions)
		}
	}
	// Both caches at once, and the real region runtime (Pebble on a
	// crashable vfs: the store is the hold source).
	sweepOK(t, "hold-cache+sku-cache", Options{Workload: "steady", Faults: FaultsAll, Regions: 4, Duration: dur,
		HoldCache: 8, SKUCache: 8}, seeds)
	sweepOK(t, "hold-cache/region", Options{Workload: "steady", Faults: FaultsAll, Regions: 3, Duration: dur, HoldCache: 8,
		Runtime: RuntimeRegion}, 1)
}

// TestHoldCacheDeterministic: a run with --hold-cache gives the same
// result, cache counters included, every time.
func TestHoldCacheDeterministic(t *testing.T) {
	t.Parallel()
	o := Options{Seed: 2, Workload: "skew", Faults: FaultsAll, HoldCache: 8}
	first := mustRun(t, o)
	for range 2 {
		r := mustRun(t, o)
		if r.HoldCacheMisses != first.HoldCacheMisses || r.HoldCacheEvictions != first.HoldCacheEvictions ||
			r.Holds != first.Holds || r.Msgs != first.Msgs {
			t.Fatalf("runs differ: misses %d vs %d, evictions %d vs %d, holds %d vs %d, msgs %d vs %d",
				r.HoldCacheMisses, first.HoldCacheMisses, r.HoldCacheEvictions, first.HoldCacheEvictions,
				r.Holds, first.Holds, r.Msgs, first.Msgs)
		}
	}
}

// TestPlantedHoldCacheBugs: a hold cache that drops holds before they are
// saved (evict-dirty-hold) loses acknowledged holds, and one that never
// scans the disk's expiry index (skip-source-expiry) leaves holds past
// their deadline unexpired; seed 1 catches each and passes without it.
func TestPlantedHoldCacheBugs(t *testing.T) {
	t.Parallel()
	base := Options{Seed: 1, Workload: "steady", Faults: FaultsAll, HoldCache: 8, Duration: 10 * time.Minute}
	for _, bug := range []string{BugEvictDirtyHold, BugSkipSourceExpiry} {
		o := base
		if err := o.SetBug(bug); err != nil {
			t.Fatal(err)
		}
		r := mustRun(t, o)
		if !r.Failed() {
			t.Fatalf("%s not caught on seed 1", bug)
		}
		t.Logf("%s: caught on seed 1: lost_acked=%d unreturned=%d conservation_errors=%d event_errors=%d",
			bug, r.LostAcked, r.Unreturned, r.ConservationErrors, r.EventErrors)
	}
	if r := mustRun(t, base); r.Failed() {
		t.Fatalf("seed 1 fails with --hold-cache 8 and no bug: %v", r.Failures)
	}
}
