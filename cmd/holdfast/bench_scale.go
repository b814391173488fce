package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/loadgen"
	"github.com/holdfast-io/holdfast/region"
)

// loadBatch is how many restocks one DoBatch carries when the engine bench
// loads its catalogue: they share the batch's one fsync.
const loadBatch = 4096

// engineLoad restocks skus SKUs, SKU i with units(i) (in restocks of at most
// escrow.MaxQty) through the apply loop in batches of loadBatch SKUs, several batches in flight so that the loop always
// has the next one queued while the previous one syncs.
func engineLoad(ctx context.Context, r *region.Region, skus int, units func(i int) uint64, progress func(done int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct{ from, to int }
	jobs := make(chan job)
	errs := make(chan error, 4)
	done := make(chan int, 4)
	const inFlight = 4
	for w := 0; w < inFlight; w++ {
		go func() {
			cmds := make([]escrow.Command, 0, loadBatch)
			for j := range jobs {
				cmds = cmds[:0]
				for i := j.from; i < j.to; i++ {
					sku := loadgen.SKUName(i)
					for left := units(i); left > 0; {
						n := min(left, escrow.MaxQty)
						cmds = append(cmds, escrow.Command{Kind: escrow.CmdRestock, SKU: sku, Qty: n})
						left -= n
					}
				}
				reps, err := r.DoBatch(ctx, cmds, 5*time.Minute)
				if err == nil {
					for i := range reps {
						if reps[i].Err != nil {
							err = fmt.Errorf("bench: restock %s: %w", cmds[i].SKU, reps[i].Err)
							break
						}
					}
				}
				if err != nil {
					errs <- err
					cancel()
					return
				}
				done <- j.to - j.from
			}
			errs <- nil
		}()
	}
	go func() {
		defer close(jobs)
		for from := 0; from < skus; from += loadBatch {
			select {
			case jobs <- job{from, min(from+loadBatch, skus)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var first error
	loaded, next := 0, 0
	for finished := 0; finished < inFlight; {
		select {
		case n := <-done:
			loaded += n
			if progress != nil && loaded >= next {
				progress(loaded)
				next = loaded + skus/10
			}
		case err := <-errs:
			finished++
			if err != nil && first == nil {
				first = err
			}
		}
	}
	if first != nil {
		return first
	}
	return ctx.Err()
}

// memStats are the process's memory figures for the bench summary.
type memStats struct {
	peakRSS, rss uint64 // bytes, from /proc/self/status (0 elsewhere)
	heap         uint64 // live heap after a GC
}

func readMem() memStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memStats{heap: ms.HeapAlloc}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return m
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil {
			continue
		}
		switch string(f[0]) {
		case "VmHWM:":
			m.peakRSS = v << 10
		case "VmRSS:":
			m.rss = v << 10
		}
	}
	return m
}

func mb(b uint64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 0, 64) }

func (m memStats) labels(prefix string) []loadgen.Label {
	ls := []loadgen.Label{{Key: prefix + "heap_mb", Value: mb(m.heap)}}
	if m.peakRSS > 0 {
		ls = append(ls, loadgen.Label{Key: prefix + "rss_mb", Value: mb(m.rss)},
			loadgen.Label{Key: prefix + "peak_rss_mb", Value: mb(m.peakRSS)})
	}
	return ls
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) }

// engineSKUName returns the SKU name of index i, prebuilt for catalogues
// small enough that the names cost nothing next to the region's own state.
func engineSKUName(skus int) func(i int) string {
	if skus > loadgen.MaxHTTPSKUs {
		return loadgen.SKUName
	}
	names := make([]string, skus)
	for i := range names {
		names[i] = loadgen.SKUName(i)
	}
	return func(i int) string { return names[i] }
}

// settle waits, at most max, until the region's store has no flush or
// compaction in progress.
func settle(ctx context.Context, r *region.Region, max time.Duration) error {
	deadline := time.Now().Add(max)
	for r.StorageBusy() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// startProfile starts a CPU profile into path ("" profiles nothing) and
// returns the function that stops it and closes the file.
func startProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
