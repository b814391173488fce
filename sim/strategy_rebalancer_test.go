package sim

import (
	"testing"
	"time"
)

// TestRebalancerSweep runs escrow+rebalancer under every fault level and
// expects every safety checker to pass (oversell=0 lost_acked=0 ...):
// advice must never break safety, whatever the network or crashes do to
// the daemon. HOLDFAST_SIM_SEEDS=N makes it a long sweep:
//
//	HOLDFAST_SIM_SEEDS=50 go test ./sim -run RebalancerSweep -timeout 1h
func TestRebalancerSweep(t *testing.T) {
	t.Parallel()
	seeds, dur := sweepSize(t)
	for _, faults := range []string{FaultsNone, FaultsPartitions, FaultsAll} {
		for _, wl := range []string{"shift", "skew", "flash"} {
			o := Options{Strategy: "escrow+rebalancer", Workload: wl, Faults: faults, Regions: 5, Duration: dur}
			sweepOK(t, faults+"/"+wl, o, seeds)
		}
	}
}

// TestRebalancerMovesStock checks that the simulated daemon is live: on a
// skewed workload its advice is applied by the regions, the same seed
// gives the same run, and the run differs from plain escrow.
func TestRebalancerMovesStock(t *testing.T) {
	t.Parallel()
	o := Options{Seed: 1, Strategy: "escrow+rebalancer", Workload: "skew", Regions: 5, Duration: time.Minute}
	w, err := newWorld(o.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	w.run()
	w.finish()
	var applied, donated uint64
	for _, ep := range w.eps[:w.nReg] {
		s := ep.node.Stats()
		applied += s.AdviceApplied
		donated += s.DonatedUnits
	}
	d, ok := w.eps[w.nReg].d.(*simRebalancer)
	if !ok {
		t.Fatalf("endpoint %d is not the rebalancer", w.nReg)
	}
	st := d.rb.Stats()
	if st.Rounds == 0 || st.MovesAdvised == 0 || applied == 0 || donated == 0 {
		t.Fatalf("rebalancer idle: %+v, advice applied %d times, %d units donated", st, applied, donated)
	}
	if w.res.Failed() {
		t.Fatalf("checkers failed: %v", w.res.Failures)
	}
	again, err := Run(o)
	if err != nil {
		t.Fatal(err)
	}
	if again.TraceHash != w.res.TraceHash {
		t.Fatalf("same seed, different traces: %x vs %x", again.TraceHash, w.res.TraceHash)
	}
	o.Strategy = "escrow"
	plain, err := Run(o)
	if err != nil {
		t.Fatal(err)
	}
	if plain.TraceHash == w.res.TraceHash {
		t.Fatal("escrow+rebalancer ran exactly like escrow")
	}
}

// TestRebalancerHalvesFalseRejects is the rebalancer's figure as a
// regression test: on the shift and skew workloads (5 regions, no faults,
// seeds 1–3 of 2 minutes), escrow+rebalancer refuses at most half as many
// carts while the units existed as escrow alone, with no more stock
// stranded at sell-out, and it does so by routing holds to the homes of
// scarce SKUs. Virtual time: the result is exact for these seeds.
func TestRebalancerHalvesFalseRejects(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs 12 simulations")
	}
	for _, wl := range []string{"shift", "skew"} {
		run := func(strategy string) Summary {
			var rs []*Result
			for seed := uint64(1); seed <= 3; seed++ {
				o := Options{Seed: seed, Strategy: strategy, Workload: wl, Regions: 5, Duration: 2 * time.Minute}
				r, err := Run(o)
				if err != nil {
					t.Fatal(err)
				}
				if r.Failed() {
					t.Fatalf("%s %s seed %d: checkers failed: %v", wl, strategy, seed, r.Failures)
				}
				rs = append(rs, r)
			}
			return Summarize(rs)
		}
		plain, rb := run("escrow"), run("escrow+rebalancer")
		t.Logf("%s: false_reject_rate %.4f -> %.4f, stranded %.1f -> %.1f, p99 %.1f -> %.1f ms",
			wl, plain.FalseRejectRate, rb.FalseRejectRate, plain.StrandedAtSellout, rb.StrandedAtSellout,
			plain.P99HoldMs, rb.P99HoldMs)
		if plain.FalseRejectRate == 0 || rb.FalseRejectRate > plain.FalseRejectRate/2 {
			t.Errorf("%s: false_reject_rate %.4f with the rebalancer, want at most half of %.4f",
				wl, rb.FalseRejectRate, plain.FalseRejectRate)
		}
		if rb.StrandedAtSellout > plain.StrandedAtSellout {
			t.Errorf("%s: stranded at sell-out rose from %.1f to %.1f", wl, plain.StrandedAtSellout, rb.StrandedAtSellout)
		}
	}
}

// TestRebalancerUnderFaults is the rebalancer's figure under every fault
// as a regression test: on the shift workload (5 regions, --faults all,
// seeds 1–4 of 3 minutes), escrow+rebalancer refuses at most 75% as many
// carts while the units existed as escrow alone, also counting only the
// avoidable causes, with every checker passing. Virtual time: the result
// is exact for these seeds: 0.0991 → 0.0678 (68%), avoidable 0.0682 →
// 0.0461 (68%) when the bound was set; without the fresh-push rule
// (in_touch.go) 0.0754 (76%, over the bound) and 0.0488 (72%). The
// issue's target (at most half) is out of reach under faults;
// docs/simulator.md, "Rebalancer under faults", says why.
// Every fault but membership: its added region and drain outlast these
// 3-minute runs, and with it the rebalancer refuses more than escrow on
// these seeds (0.0914 -> 0.1007 when measured), a figure of its own.
func TestRebalancerUnderFaults(t *testing.T) {
	t.Parallel()
	const allButMembership = "partitions,crash,spike,lossy,skew,jump,stall,pause,asym,replay,corrupt,linkloss"
	if testing.Short() {
		t.Skip("runs 8 simulations")
	}
	run := func(strategy string) Summary {
		var rs []*Result
		for seed := uint64(1); seed <= 4; seed++ {
			o := Options{Seed: seed, Strategy: strategy, Workload: "shift", Faults: allButMembership,
				Regions: 5, Duration: 3 * time.Minute}
			r, err := Run(o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Failed() {
				t.Fatalf("%s seed %d: checkers failed: %v", strategy, seed, r.Failures)
			}
			rs = append(rs, r)
		}
		return Summarize(rs)
	}
	plain, rb := run("escrow"), run("escrow+rebalancer")
	t.Logf("seeds 1-4: false_reject_rate %.4f -> %.4f, avoidable %.4f -> %.4f",
		plain.FalseRejectRate, rb.FalseRejectRate, plain.AvoidableFalseRejectRate, rb.AvoidableFalseRejectRate)
	if plain.FalseRejectRate == 0 || rb.FalseRejectRate > 0.75*plain.FalseRejectRate {
		t.Errorf("false_reject_rate %.4f with the rebalancer, want at most 75%% of escrow's %.4f",
			rb.FalseRejectRate, plain.FalseRejectRate)
	}
	if plain.AvoidableFalseRejectRate == 0 || rb.AvoidableFalseRejectRate > 0.75*plain.AvoidableFalseRejectRate {
		t.Errorf("avoidable false_reject_rate %.4f with the rebalancer, want at most 75%% of escrow's %.4f",
			rb.AvoidableFalseRejectRate, plain.AvoidableFalseRejectRate)
	}
}
