package loadgen

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Each worker cycles through a fixed pattern of outcomes and latencies, so
// the summary's proportions and percentiles are known in advance.
func TestRunCountsAndPercentiles(t *testing.T) {
	var calls atomic.Uint64
	var progress atomic.Int32
	cfg := Config{
		Concurrency: 4,
		Duration:    1200 * time.Millisecond,
		NewOp: func(w int) (Op, error) {
			i := 0
			return func(ctx context.Context) Result {
				calls.Add(1)
				i++
				switch {
				case i%100 == 0:
					return Result{Outcome: Error, Err: errors.New("boom")}
				case i%10 == 0:
					// 9 of every 100 ops are rejected, with latency 10ms.
					return Result{Outcome: Rejected, Latency: 10 * time.Millisecond}
				default:
					// 90 of every 100 ok, latencies 1..90 µs.
					return Result{Outcome: OK, Latency: time.Duration(i%100-i%100/10) * time.Microsecond, Extra: 1}
				}
			}, nil
		},
		Progress: func(p Progress) { progress.Add(1) },
	}
	s, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	total := s.OK + s.Rejected + s.Errors
	if total == 0 || total > calls.Load() || calls.Load()-total > uint64(cfg.Concurrency) {
		t.Fatalf("counted %d of %d calls (at most one per worker may finish after the window)", total, calls.Load())
	}
	if s.Latency.Count() != s.OK+s.Rejected {
		t.Fatalf("histogram has %d values, want ok+rejected = %d", s.Latency.Count(), s.OK+s.Rejected)
	}
	if s.Extra != s.OK {
		t.Fatalf("extra %d, want one per ok op (%d)", s.Extra, s.OK)
	}
	// Each worker's counts follow its pattern to within one cycle.
	cycles := float64(total) / 100
	near := func(name string, got uint64, per float64) {
		want := cycles * per
		if d := float64(got) - want; d > per*float64(cfg.Concurrency)+1 || d < -per*float64(cfg.Concurrency)-1 {
			t.Errorf("%s = %d, want about %.0f", name, got, want)
		}
	}
	near("ok", s.OK, 90)
	near("rejected", s.Rejected, 9)
	near("errors", s.Errors, 1)
	// 99 recorded values per cycle: 90 of 1..90µs and 9 of 10ms. p50 is
	// the 50th of 99 → 50µs; p95 is a 10ms value.
	if p := s.Latency.Quantile(0.5); p < 49*time.Microsecond || p > 51*time.Microsecond {
		t.Errorf("p50 = %v, want ~50µs", p)
	}
	if p := s.Latency.Quantile(0.95); p != 10*time.Millisecond {
		t.Errorf("p95 = %v, want 10ms", p)
	}
	if s.FirstErr != "boom" {
		t.Errorf("first error %q", s.FirstErr)
	}
	if s.Elapsed != cfg.Duration {
		t.Errorf("elapsed %v, want the window %v", s.Elapsed, cfg.Duration)
	}
	if progress.Load() < 1 {
		t.Errorf("no progress callback in %v", cfg.Duration)
	}
	kv := s.KeyValues()
	for _, k := range []string{"holds_per_s=", "p50_ms=", "p99_ms=", "p999_ms=", "errors=", "rejected="} {
		if !strings.Contains(kv, k) {
			t.Errorf("KeyValues lacks %s: %s", k, kv)
		}
	}
}

// Operations that complete during warmup or after the window are not
// counted, and cancelling the context closes the window early.
func TestRunWarmupAndCancel(t *testing.T) {
	start := time.Now()
	var sawWarm atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var first atomic.Bool
	cfg := Config{
		Concurrency: 2,
		// The warm-up outlasts the erring first 100 ms by far: an op that
		// checked the clock in them is counted by when it returns, and a
		// loaded machine can hold a goroutine for a while in between.
		Warmup:   2 * time.Second,
		Duration: time.Hour,
		NewOp: func(w int) (Op, error) {
			return func(ctx context.Context) Result {
				if time.Since(start) < 100*time.Millisecond {
					sawWarm.Store(true)
					return Result{Outcome: Error, Err: errors.New("during warmup")}
				}
				if time.Since(start) > 2400*time.Millisecond && first.CompareAndSwap(false, true) {
					cancel()
				}
				return Result{Outcome: OK}
			}, nil
		},
	}
	s, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !sawWarm.Load() {
		t.Fatal("no op ran during warmup")
	}
	if s.Errors != 0 {
		t.Errorf("%d warmup errors counted: %s", s.Errors, s.FirstErr)
	}
	if s.OK == 0 {
		t.Error("no op counted")
	}
	if s.Elapsed < 200*time.Millisecond || s.Elapsed > 10*time.Second {
		t.Errorf("elapsed %v: the window should close at cancel", s.Elapsed)
	}
}

// An operation still blocked after the grace period gets its context
// cancelled, so a hung system cannot hang the benchmark.
func TestRunCancelsHungOps(t *testing.T) {
	s, err := Run(context.Background(), Config{
		Concurrency: 3,
		Duration:    100 * time.Millisecond,
		Grace:       100 * time.Millisecond,
		NewOp: func(w int) (Op, error) {
			return func(ctx context.Context) Result {
				<-ctx.Done()
				return Result{Outcome: Error, Err: ctx.Err()}
			}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.OK+s.Rejected+s.Errors != 0 {
		t.Errorf("ops that ended after the window were counted: %+v", s)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	op := func(int) (Op, error) { return func(context.Context) Result { return Result{} }, nil }
	for _, c := range []Config{
		{Concurrency: 0, Duration: time.Second, NewOp: op},
		{Concurrency: 1, Duration: 0, NewOp: op},
		{Concurrency: 1, Duration: time.Second},
		{Concurrency: 1, Duration: time.Second, NewOp: func(int) (Op, error) { return nil, errors.New("no conn") }},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// The generator's own loop must not allocate per operation: its cost would
// be charged to the system under test.
func TestRunDoesNotAllocatePerOp(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := Run(context.Background(), Config{
		Concurrency: 2,
		Duration:    300 * time.Millisecond,
		NewOp: func(int) (Op, error) {
			return func(context.Context) Result { return Result{Outcome: OK} }, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	ops := s.OK
	if ops < 10_000 {
		t.Skipf("only %d ops ran: machine too busy to tell", ops)
	}
	// Set-up allocates a fixed amount (workers, histograms, goroutines,
	// timers); allow that, but nothing that grows with the op count.
	if perOp := float64(after.Mallocs-before.Mallocs) / float64(ops); perOp > 0.01 {
		t.Fatalf("%.3f allocations per op (%d allocations, %d ops)", perOp, after.Mallocs-before.Mallocs, ops)
	}
}
