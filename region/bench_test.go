package region

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// BenchmarkRegionHoldDurable: concurrent callers create one-unit holds
// through Do, with the real Pebble Store and synced commits. Reports
// holds/s, p50/p99 latency and the mean commit batch size.
//
//	go test ./region/ -run '^$' -bench 'RegionHoldDurable/callers=256' -benchtime 200000x
//	go test ./region/ -run '^$' -bench 'RegionHoldDurable/callers=1$' -benchtime 20000x
//
// At 256 callers each commit carries about all of them (see the linger in
// stepLoop), so holds/s is bounded by 256 / (fsync + stepping time).
// HOLDFAST_LONE_COMMIT=1 turns Config.LoneCommit on, HOLDFAST_INLINE=0
// the inline commit off (Config.NoInlineCommit; an A/B with one binary).
func BenchmarkRegionHoldDurable(b *testing.B) {
	for _, callers := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) { benchHolds(b, callers, false) })
	}
}

// BenchmarkRegionHoldNoSync is the same without fsync: the CPU ceiling of
// the apply loop and the store (NOT durable). callers=1 shows what a lone
// caller pays beyond fsync (go test ./region -run '^$' -bench 'RegionHoldNoSync/callers=1$' -benchtime 20000x).
func BenchmarkRegionHoldNoSync(b *testing.B) {
	for _, callers := range []int{1, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) { benchHolds(b, callers, true) })
	}
}

func benchHolds(b *testing.B, callers int, noSync bool) {
	const skus = 256
	r, err := Open(context.Background(), Config{Name: "eu", DataDir: b.TempDir(), NoSync: noSync, Logger: quietLogger(),
		LoneCommit: os.Getenv("HOLDFAST_LONE_COMMIT") == "1", NoInlineCommit: os.Getenv("HOLDFAST_INLINE") == "0"})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	names := make([]string, skus)
	var wg sync.WaitGroup
	for i := range names {
		names[i] = fmt.Sprintf("sku-%04d", i)
		wg.Add(1)
		go func(sku string) {
			defer wg.Done()
			for k := 0; k < 4; k++ {
				if rep, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdRestock, SKU: sku, Qty: escrow.MaxQty}); err != nil || rep.Err != nil {
					b.Errorf("restock: %v %v", err, rep.Err)
				}
			}
		}(names[i])
	}
	wg.Wait()
	var next atomic.Int64
	lat := make([][]time.Duration, callers)
	var failed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	lone0 := r.loneCommits.Load()
	inline0 := r.inline.commits.Load()
	commits0, cmds0 := r.commits.Load(), r.commitCmds.Load()
	start := time.Now()
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			mine := make([]time.Duration, 0, b.N/callers+1)
			lines := []escrow.Line{{Qty: 1}}
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					break
				}
				lines[0].SKU = names[int(i)%skus]
				t0 := time.Now()
				rep, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: lines})
				mine = append(mine, time.Since(t0))
				if err != nil || rep.Err != nil {
					failed.Add(1)
				}
			}
			lat[c] = mine
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d holds failed", n)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	q := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "holds/s")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
	// CPU time per hold (whole process: loop, store, Pebble background
	// work, callers): less sensitive than holds/s to a shared machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/hold")
	// Batches the stepper committed itself (a lone caller, nothing in
	// flight; Config.LoneCommit, on with HOLDFAST_LONE_COMMIT=1), per hold.
	b.ReportMetric(float64(r.loneCommits.Load()-lone0)/float64(b.N), "lone/hold")
	// Batches committed on their caller's goroutine (the inline commit,
	// off with HOLDFAST_INLINE=0), per hold.
	b.ReportMetric(float64(r.inline.commits.Load()-inline0)/float64(b.N), "inline/hold")
	if c := r.commits.Load() - commits0; c > 0 {
		// Of the measured holds only (inputs/commit also counts the restocks).
		b.ReportMetric(float64(r.commitCmds.Load()-cmds0)/float64(c), "run-inputs/commit")
	}
	if c := r.commits.Load(); c > 0 {
		b.ReportMetric(float64(r.commitCmds.Load())/float64(c), "inputs/commit")
		b.ReportMetric(float64(r.applyNanos.Load())/float64(c)/1000, "apply-us")
	}
}

// cpuTime returns the user+system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
