package sim

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

func TestZZRebalanceDebug(t *testing.T) {
	if os.Getenv("RBDEBUG") == "" {
		t.Skip()
	}
	seeds, _ := strconv.Atoi(os.Getenv("RBSEEDS"))
	if seeds == 0 {
		seeds = 3
	}
	for _, strat := range []string{"escrow", "escrow+rebalancer"} {
		var tot [12]uint64
		var fr, holds, strand uint64
		var p99 float64
		for seed := 1; seed <= seeds; seed++ {
			o := Options{Seed: uint64(seed), Regions: 5, Workload: os.Getenv("RBWL"), Strategy: strat, Faults: os.Getenv("RBFAULTS")}
			w, err := newWorld(o.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			w.run()
			w.finish()
			for _, ep := range w.eps[:w.nReg] {
				s := ep.node.Stats()
				for i, v := range []uint64{s.Granted, s.Rejected, s.BorrowsSent, s.BorrowsAnswered, s.BorrowTimeouts, s.BorrowUnitsIn, s.DonatedUnits, s.TopUps, s.AdviceApplied, s.AdviceIgnored} {
					tot[i] += v
				}
			}
			if len(w.eps) > w.nReg {
				st := w.eps[w.nReg].d.(*simRebalancer).rb.Stats()
				fmt.Printf("  seed %d rb stats %+v\n", seed, st)
			}
			fr += w.res.FalseRejects
			holds += w.res.Holds
			strand += w.res.StrandedAtSellout
			p99 += w.res.P99HoldMs
		}
		fmt.Printf("%-18s fr=%.4f strand=%d p99=%.1f granted=%d rejected=%d borrows=%d answered=%d timeouts=%d unitsIn=%d donated=%d topups=%d advApplied=%d advIgnored=%d\n",
			strat, float64(fr)/float64(holds), strand, p99/float64(seeds), tot[0], tot[1], tot[2], tot[3], tot[4], tot[5], tot[6], tot[7], tot[8], tot[9])
	}
}
