package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/sim"
)

func init() { commands = append(commands, newSimCmd) }

func newSimCmd() *cobra.Command {
	d := sim.Defaults()
	o := d
	var (
		seed        uint64
		seeds       string
		asJSON      bool
		report      string
		trace       string
		compare     string
		workers     int
		heapProfile string
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Deterministic partition simulator: safety checkers and strategy metrics",
		Example: `  holdfast sim --seeds 1-20 --regions 5 --faults all --workload flash
  holdfast sim --seeds 1-20 --regions 5 --workload shift --strategy escrow+rebalancer
  holdfast sim --seeds 1-10 --compare escrow,static,central --faults partitions
  holdfast sim --seed 3 --faults all --report /tmp/sim.html
  holdfast sim --seeds 1-5 --faults jump,linkloss,corrupt
  holdfast sim --soak 4h --regions 3 --faults all`,
		Long: `sim drives the real escrow state machine of every region through a simulated
world (virtual clock, network with partitions, drops, duplicates, delays,
crashes losing what was not fsynced, clock skew and jumps, fsync stalls,
process pauses, one-way partitions, late replays, corrupted messages, lost
shopper links, retrying and abandoning shoppers) and checks that nothing is
oversold or lost. --faults takes none, all or a comma list of fault names;
docs/simulator.md lists each fault with its checker and planted bug. The same arguments
give byte-identical output on stdout; events/s goes to stderr.
The last line is key=value; the exit status is 1 if a checker failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, to := seed, seed
			if seeds != "" {
				var err error
				if from, to, err = parseSeeds(seeds); err != nil {
					return err
				}
			}
			if compare != "" {
				return runCompare(o, from, to, workers, compare)
			}
			if heapProfile != "" {
				if !o.Soak {
					return fmt.Errorf("sim: --heap-profile needs --soak")
				}
				if err := os.MkdirAll(heapProfile, 0o755); err != nil {
					return err
				}
				o.SoakHook = heapProfileHook(heapProfile)
			}
			start := time.Now()
			var rs []*sim.Result
			var err error
			if trace != "" {
				if from != to {
					return fmt.Errorf("sim: --trace needs a single seed")
				}
				rs, err = runTrace(o, from, trace)
			} else {
				rs, err = sim.Sweep(o, from, to, workers)
			}
			if err != nil {
				return err
			}
			wall := time.Since(start)
			var out bytes.Buffer
			if asJSON {
				if err := sim.WriteJSON(&out, o, rs); err != nil {
					return err
				}
			} else {
				sim.WriteText(&out, o, rs)
			}
			s := sim.Summarize(rs)
			if report != "" {
				r := rs[0]
				for _, x := range rs {
					if x.Failed() {
						r = x
						break
					}
				}
				// Replay the chosen seed recording its time series: the
				// run is deterministic, so it is the same run.
				ro := o
				ro.Seed, ro.Series = r.Seed, true
				if r, err = sim.Run(ro); err != nil {
					return err
				}
				if err := writeReport(report, o, r, s); err != nil {
					return err
				}
				if !asJSON {
					fmt.Fprintf(&out, "report: %s (seed %d)\n", report, r.Seed)
				}
			}
			w := workers
			if w <= 0 {
				w = runtime.NumCPU()
			}
			w = min(w, len(rs))
			fmt.Fprintf(os.Stderr, "sim: %d events in %v wall on %d worker(s): %.0f events/s (%.0f events/s per worker)\n",
				s.Events, wall.Round(time.Millisecond), w, float64(s.Events)/wall.Seconds(),
				float64(s.Events)/wall.Seconds()/float64(w))
			for _, r := range rs {
				for _, x := range r.Soak {
					fmt.Fprintf(os.Stderr, "sim: soak seed %d minute %d: heap %.1f MB\n", r.Seed, x.Minute, float64(x.HeapBytes)/(1<<20))
				}
			}
			for _, r := range rs {
				if r.Failed() {
					fmt.Fprintf(&out, "replay: holdfast sim %s\n", strings.Join(o.Args(r.Seed), " "))
				}
			}
			if !asJSON {
				fmt.Fprintln(&out, s.KV())
			}
			if _, err := os.Stdout.Write(out.Bytes()); err != nil {
				return err
			}
			if len(s.FailedSeeds) > 0 {
				return fmt.Errorf("sim: a safety checker failed on %d of %d seeds", len(s.FailedSeeds), len(rs))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&seed, "seed", d.Seed, "seed of a single run")
	f.StringVar(&seeds, "seeds", "", "range of seeds A-B (inclusive) to sweep")
	f.IntVar(&o.Regions, "regions", d.Regions, "number of regions")
	f.IntVar(&o.SKUs, "skus", d.SKUs, "number of SKUs")
	f.Uint64Var(&o.Stock, "stock", d.Stock, "initial units of each SKU, split over the regions")
	f.DurationVar(&o.Duration, "duration", d.Duration, "virtual time during which shoppers arrive")
	f.StringVar(&o.Workload, "workload", d.Workload, "steady | skew | shift | flash | waitlist")
	f.StringVar(&o.Faults, "faults", d.Faults, "none | all | comma list of: "+strings.Join(sim.FaultNames(), ", "))
	f.StringVar(&o.Strategy, "strategy", d.Strategy, "stock strategy: "+strings.Join(sim.Strategies(), " | "))
	f.Float64Var(&o.Rate, "rate", d.Rate, "carts per second over all regions")
	f.DurationVar(&o.TTL, "ttl", d.TTL, "hold TTL asked by shoppers")
	f.DurationVar(&o.BorrowTimeout, "borrow-timeout", d.BorrowTimeout, "escrow borrow deadline (0: escrow default)")
	f.DurationVar(&o.Tick, "tick", d.Tick, "runtime tick period")
	f.DurationVar(&o.Fsync, "fsync", d.Fsync, "mean latency of a synced write")
	f.DurationVar(&o.ClientLatency, "client-latency", d.ClientLatency, "one-way latency client to region")
	f.DurationVar(&o.InterMin, "inter-min", d.InterMin, "one-way inter-region latency, minimum")
	f.DurationVar(&o.InterMax, "inter-max", d.InterMax, "one-way inter-region latency, maximum")
	f.StringVar(&o.RTT, "rtt", "", "round-trip times of region pairs, e.g. us-eu=80ms,us-ap=220ms,eu-ap=150ms,*=40ms (a side is a region or its zone prefix)")
	f.DurationVar(&o.BorrowTimeoutMax, "borrow-timeout-max", 0, "upper bound of the RTT-following borrow deadline (0: escrow default)")
	f.BoolVar(&o.Wire, "wire", false, "round-trip every message through the wire codec")
	f.StringVar(&o.Runtime, "runtime", sim.RuntimeEscrow, "what drives each region: escrow (the simulator's own persist-then-reply loop, fast) | region (the real region runtime: its pipeline stages, Pebble on a crashable in-memory vfs, the wire codec; slower)")
	f.IntVar(&o.HoldCache, "hold-cache", 0, "holds and idempotency keys each region keeps in memory at most (0: all); the others are read from its simulated disk on demand (escrow and region runtimes)")
	f.IntVar(&o.SKUCache, "sku-cache", 0, "SKUs each region keeps in memory at most (0: all); the others are read from its simulated disk on first touch (escrow and region runtimes)")
	f.Float64Var(&o.Partial, "partial", 0, "fraction of carts sent as partial holds (0..1)")
	f.Var(soakFlag{&o}, "soak", "soak for this much simulated time (e.g. 4h; sets --duration): long-lived holds, retention cycles, the heap sampled every simulated hour")
	f.StringVar(&heapProfile, "heap-profile", "", "write a heap profile into this directory at every soak sample (heap-seed<S>-min<M>.pb.gz; keep it out of the repo)")
	_ = f.MarkHidden("heap-profile") // a tool for chasing soak growth (docs/simulator.md, Soak)
	f.BoolVar(&asJSON, "json", false, "print results as JSON")
	f.StringVar(&report, "report", "", "write a self-contained HTML report to this file")
	f.StringVar(&compare, "compare", "", "run these strategies (comma-separated, or all) on the same seeds and compare them")
	f.StringVar(&trace, "trace", "", "write every event of the (single) seed to this file")
	f.IntVar(&workers, "workers", 0, "parallel seeds (0: number of CPUs); output does not depend on it")
	return cmd
}

func parseSeeds(s string) (uint64, uint64, error) {
	a, b, ok := strings.Cut(s, "-")
	from, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 64)
	to := from
	var err2 error
	if ok {
		to, err2 = strconv.ParseUint(strings.TrimSpace(b), 10, 64)
	}
	if err1 != nil || err2 != nil || to < from {
		return 0, 0, fmt.Errorf("sim: --seeds wants A-B with A <= B, got %q", s)
	}
	return from, to, nil
}

func writeReport(path string, o sim.Options, r *sim.Result, s sim.Summary) error {
	var b bytes.Buffer
	if err := sim.WriteReport(&b, o, r, s); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("sim: write report: %w", err)
	}
	return nil
}

func runTrace(o sim.Options, seed uint64, path string) ([]*sim.Result, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("sim: trace: %w", err)
	}
	o.Seed = seed
	r, err := sim.RunTrace(o, f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("sim: trace: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	return []*sim.Result{r}, nil
}

// runCompare runs several strategies on the same seeds: one table row per
// strategy, then the replay lines, then the key=value line over all runs.
func runCompare(o sim.Options, from, to uint64, workers int, list string) error {
	names := sim.Strategies()
	if list != "all" {
		names = strings.Split(list, ",")
	}
	start := time.Now()
	var runs [][]*sim.Result
	var all []*sim.Result
	for _, n := range names {
		so := o
		so.Strategy = strings.TrimSpace(n)
		rs, err := sim.Sweep(so, from, to, workers)
		if err != nil {
			return err
		}
		runs = append(runs, rs)
		all = append(all, rs...)
	}
	s := sim.Summarize(all)
	fmt.Fprintf(os.Stderr, "sim: %d events in %v wall: %.0f events/s\n", s.Events,
		time.Since(start).Round(time.Millisecond), float64(s.Events)/time.Since(start).Seconds())
	var out bytes.Buffer
	sim.WriteComparison(&out, o, names, runs)
	for i, rs := range runs {
		for _, r := range rs {
			if r.Failed() {
				so := o
				so.Strategy = names[i]
				fmt.Fprintf(&out, "replay: holdfast sim %s\n", strings.Join(so.Args(r.Seed), " "))
			}
		}
	}
	fmt.Fprintf(&out, "strategies=%d %s\n", len(names), s.KV())
	if _, err := os.Stdout.Write(out.Bytes()); err != nil {
		return err
	}
	if len(s.FailedSeeds) > 0 {
		return fmt.Errorf("sim: a safety checker failed on %d runs", len(s.FailedSeeds))
	}
	return nil
}

// soakFlag is --soak DURATION: a soak of that much simulated time.
type soakFlag struct{ o *sim.Options }

func (f soakFlag) String() string {
	if f.o == nil || !f.o.Soak {
		return ""
	}
	return f.o.Duration.String()
}

func (f soakFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("sim: --soak wants a duration such as 4h: %w", err)
	}
	f.o.Soak, f.o.Duration = true, d
	return nil
}

func (soakFlag) Type() string { return "duration" }

// heapProfileHook writes the heap profile of the process at every soak
// sample into dir, named by seed and simulated minute. The sample has just
// run a full GC, so the profile's in-use figures are what is live. With
// several workers it is the whole process's heap, other seeds included.
func heapProfileHook(dir string) func(uint64, sim.SoakSample) {
	var mu sync.Mutex
	return func(seed uint64, s sim.SoakSample) {
		mu.Lock()
		defer mu.Unlock()
		name := filepath.Join(dir, fmt.Sprintf("heap-seed%d-min%04d.pb.gz", seed, s.Minute))
		f, err := os.Create(name)
		if err == nil {
			err = pprof.Lookup("heap").WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "sim: heap profile: %v\n", err)
		}
	}
}
