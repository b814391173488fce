package sim

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/region/regiontest"
)

// TestRegionRuntimeDeterminism: with the real region runtime (Pebble, its
// goroutines, the stages scheduled by the seed) the same seed still gives
// the same result, byte for byte, whatever the number of workers.
func TestRegionRuntimeDeterminism(t *testing.T) {
	o := Options{Seed: 7, Regions: 4, Duration: time.Minute, Faults: FaultsAll, Workload: "flash", Runtime: RuntimeRegion}
	if testing.Short() {
		o.Regions, o.Duration = 3, 30*time.Second
	}
	t.Logf("seed %d (replay: holdfast sim %v)", o.Seed, o.Args(o.Seed))
	a, b := mustRun(t, o), mustRun(t, o)
	if a.Runtime != RuntimeRegion {
		t.Fatalf("result says runtime %q, want %q", a.Runtime, RuntimeRegion)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 7: results differ:\n%+v\n%+v", a, b)
	}
	if a.Granted == 0 || a.Failed() {
		t.Fatalf("seed 7: granted %d, failures %v", a.Granted, a.Failures)
	}
	text := func(workers int) string {
		rs, err := Sweep(o, 1, 2, workers)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		WriteText(&buf, o, rs)
		buf.WriteString(Summarize(rs).KV())
		return buf.String()
	}
	x, y := text(1), text(2)
	if x != y {
		t.Fatalf("sweep output depends on workers:\n%s\n----\n%s", x, y)
	}
	if !bytes.Contains([]byte(x), []byte("runtime=region")) {
		t.Fatalf("report does not state the runtime:\n%s", x)
	}
}

// TestRegionRuntimeSweep runs every workload with every fault through the
// real region runtime and expects every checker to pass.
func TestRegionRuntimeSweep(t *testing.T) {
	seeds, dur := uint64(2), time.Minute
	wls := Workloads
	if testing.Short() {
		seeds, dur, wls = 1, 30*time.Second, []string{"flash", "steady"}
	}
	for _, wl := range wls {
		sweepOK(t, "region/"+wl, Options{Workload: wl, Faults: FaultsAll, Regions: 3, Duration: dur,
			Runtime: RuntimeRegion}, seeds)
	}
}

// TestRegionRuntimeCatchesBugs: the two bugs the simulator's own runtime
// could not see are caught within 20 seeds once it drives the real one,
// and so are two runtime bugs only storage faults reveal.
func TestRegionRuntimeCatchesBugs(t *testing.T) {
	cases := []struct {
		bug     string
		checker func(r *Result) uint64
	}{
		{BugReplyBeforeSync, func(r *Result) uint64 { return r.LostAcked }},
		// Row.Merge takes the incoming Reserved instead of the max: every
		// row the region persists is checked, not only replayed ones.
		{BugLastRowWins, func(r *Result) uint64 { return r.ViewRegressions }},
		// The storage faults matter: crashes on the real disk catch a
		// commit without fsync, the disk-full window a failed write
		// answered as a success.
		{BugSkipFsync, func(r *Result) uint64 { return r.LostAcked }},
		{BugAckFailedWrite, func(r *Result) uint64 { return r.LostAcked + r.StoreMismatches }},
	}
	for _, c := range cases {
		t.Run(c.bug, func(t *testing.T) {
			o := Options{Workload: "flash", Faults: FaultsAll, Regions: 4, Duration: time.Minute, Runtime: RuntimeRegion}
			if err := o.SetBug(c.bug); err != nil {
				t.Fatal(err)
			}
			for seed := uint64(1); seed <= 20; seed++ {
				o.Seed = seed
				r := mustRun(t, o)
				if c.checker(r) > 0 && r.Failed() {
					t.Logf("seed %d: caught: %v", seed, r.Failures[:min(2, len(r.Failures))])
					return
				}
			}
			t.Fatalf("bug %s not caught by its checker on seeds 1-20", c.bug)
		})
	}
}

// TestRuntimeOptions: the runtime is checked, and so are the options that
// only make sense with one of them.
func TestRuntimeOptions(t *testing.T) {
	bad := []Options{
		{Runtime: "pebble"},
		{Faults: "crash,torn"},
		{Faults: "diskfull"},
		{Faults: "wipe"}, {Faults: "rollback"}, {Faults: "fsynclie"}, {Faults: "bitflip"},
		{RegionBugs: regiontest.Bugs{ReplyBeforeSync: true}},
		{Runtime: RuntimeRegion, Hooks: Hooks{ReplyBeforePersist: true}},
	}
	for _, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
	good := []Options{{}, {Runtime: RuntimeRegion, Faults: "crash,torn,midsync,recovery,diskfull"},
		{Runtime: RuntimeRegion, Faults: "wipe,rollback,fsynclie,bitflip"},
		{Faults: FaultsAll}, {Runtime: RuntimeRegion, Faults: FaultsAll}}
	for _, o := range good {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
