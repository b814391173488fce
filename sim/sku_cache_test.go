package sim

import (
	"testing"
	"time"
)

// TestPlantedEvictDirty: a SKU cache that drops SKUs with unsaved rows
// (the planted evict-dirty) loses changes; the conservation checker (and
// the oversell one) catch it on seed 1, which passes without the bug.
func TestPlantedEvictDirty(t *testing.T) {
	t.Parallel()
	o := Options{Seed: 1, Workload: "steady", Faults: FaultsAll, SKUCache: 8, Duration: 10 * time.Minute}
	clean := o
	if err := o.SetBug(BugEvictDirty); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, o)
	if r.ConservationErrors == 0 || r.Oversell == 0 {
		t.Fatalf("evict-dirty not caught on seed 1: conservation_errors=%d oversell=%d", r.ConservationErrors, r.Oversell)
	}
	t.Logf("seed 1: caught: conservation_errors=%d oversell=%d event_errors=%d", r.ConservationErrors, r.Oversell, r.EventErrors)
	if r := mustRun(t, clean); r.Failed() {
		t.Fatalf("seed 1 fails with --sku-cache 8 and no bug: %v", r.Failures)
	}
}

// TestSKUCacheSweep: with every region keeping at most 8 of the 20 SKUs
// resident, every workload under every fault passes every checker, on
// both runtimes, and the cache is used (misses and evictions).
func TestSKUCacheSweep(t *testing.T) {
	seeds, dur := sweepSize(t)
	for _, wl := range []string{"steady", "flash", "skew", "waitlist"} {
		o := Options{Workload: wl, Faults: FaultsAll, Regions: 4, Duration: dur, SKUCache: 8}
		sweepOK(t, "sku-cache/"+wl, o, seeds)
		r := mustRun(t, Options{Seed: 1, Workload: wl, Faults: FaultsAll, Regions: 4, Duration: dur, SKUCache: 8})
		if r.SKUCacheMisses == 0 || r.SKUCacheEvictions == 0 {
			t.Fatalf("%s: the cache was not used: misses %d evictions %d", wl, r.SKUCacheMisses, r.SKUCacheEvictions)
		}
	}
	sweepOK(t, "sku-cache/region", Options{Workload: "steady", Faults: FaultsAll, Regions: 3, Duration: dur, SKUCache: 8,
		Runtime: RuntimeRegion}, 1)
}

// TestSKUCacheDeterministic: a run with --sku-cache gives the same result,
// cache counters included, every time (a lookup in map order once
// reordered the LRU list from run to run: seed 2, skew, --faults all).
func TestSKUCacheDeterministic(t *testing.T) {
	t.Parallel()
	o := Options{Seed: 2, Workload: "skew", Faults: FaultsAll, SKUCache: 8}
	first := mustRun(t, o)
	for range 4 {
		r := mustRun(t, o)
		if r.SKUCacheMisses != first.SKUCacheMisses || r.SKUCacheEvictions != first.SKUCacheEvictions ||
			r.Holds != first.Holds || r.FalseRejects != first.FalseRejects || r.Msgs != first.Msgs {
			t.Fatalf("runs differ: misses %d vs %d, evictions %d vs %d, holds %d vs %d, false rejects %d vs %d, msgs %d vs %d",
				r.SKUCacheMisses, first.SKUCacheMisses, r.SKUCacheEvictions, first.SKUCacheEvictions,
				r.Holds, first.Holds, r.FalseRejects, first.FalseRejects, r.Msgs, first.Msgs)
		}
	}
}
