package sim

import "testing"

// TestNoFalseFence: with crashes, restarts from durable state, partitions
// and message loss, no region ever fences itself: a peer never sees more of
// a region's rows than the region's store has, because messages leave only
// after their Ready is durable. (The fence itself is tested in escrow and
// region; this guards against false alarms.)
func TestNoFalseFence(t *testing.T) {
	t.Parallel()
	seeds, dur := sweepSize(t)
	for _, wl := range []string{"steady", "flash"} {
		o := Options{Strategy: "escrow", Workload: wl, Faults: FaultsAll, Regions: 4, Duration: dur}
		rs, err := Sweep(o, 1, seeds, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Crashes == 0 {
				t.Errorf("%s seed %d: no crash, the test shows nothing", wl, r.Seed)
			}
			if r.FenceRefused != 0 {
				t.Errorf("%s seed %d: %d commands refused by a fence\nreplay: holdfast sim %v", wl, r.Seed, r.FenceRefused, o.Args(r.Seed))
			}
		}
	}
}
