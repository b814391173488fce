// Package loadgen is a closed-loop load generator with fixed-memory latency
// accounting. `holdfast bench`, the demo and the bench/ module (PostgreSQL
// and Redis baselines) all time their operations with it, so that every
// system in a comparison is measured by the same code.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holdfast-io/holdfast/internal/hist"
)

// Outcome classifies one operation.
type Outcome uint8

const (
	OK       Outcome = iota // the hold was granted
	Rejected                // a definite "no" from the system (not enough stock)
	Error                   // anything else: transport error, overload, bad status
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Rejected:
		return "rejected"
	default:
		return "error"
	}
}

// Result is what one operation reports.
type Result struct {
	Outcome Outcome
	// Latency of the measured part of the operation (for the shopper mix:
	// the hold, not the confirm or release that follows it). 0 means the
	// whole call, as timed by the generator.
	Latency time.Duration
	// Extra counts requests the operation made besides the measured one
	// (a confirm or release), for the requests-per-second figure.
	Extra uint32
	// Err describes an Error outcome; the first one seen is kept for the
	// summary, so an operation should not build it on the fast path.
	Err error
}

// Op runs one operation. It is called from one worker goroutine only, so it
// may keep per-worker state (buffers, a PRNG) without locks.
type Op func(ctx context.Context) Result

// Config describes a run.
type Config struct {
	Concurrency int           // workers, each with one operation in flight
	Duration    time.Duration // measured window
	// Warmup runs before the measured window; its operations are not
	// counted (connections open, caches fill, the Go scheduler settles).
	Warmup time.Duration
	// NewOp returns the operation of worker w (0 <= w < Concurrency). It is
	// called before the clock starts; an error aborts the run.
	NewOp func(w int) (Op, error)
	// Progress, when set, is called about once per second during the
	// measured window with cumulative counts.
	Progress func(Progress)
	// WindowOpen, when set, is called once as the measured window opens
	// (e.g. to start a CPU profile of the window only).
	WindowOpen func()
	// Grace is how long the generator waits, after the window closes, for
	// operations still in flight before cancelling them (default 5s).
	Grace time.Duration
}

// Progress is a once-per-second snapshot.
type Progress struct {
	Elapsed  time.Duration // since the measured window opened
	OK       uint64        // cumulative in the window
	Rejected uint64
	Errors   uint64
	OKPerSec float64 // over the last interval
	Interval time.Duration
	InWarmup bool
	Final    bool // the last call, after the window closed
}

// String formats a progress line for humans.
func (p Progress) String() string {
	if p.InWarmup {
		return "warming up"
	}
	if p.Final {
		return fmt.Sprintf("%5.1fs  done: ok=%d rejected=%d errors=%d", p.Elapsed.Seconds(), p.OK, p.Rejected, p.Errors)
	}
	return fmt.Sprintf("%5.1fs  %9.0f holds/s  ok=%d rejected=%d errors=%d",
		p.Elapsed.Seconds(), p.OKPerSec, p.OK, p.Rejected, p.Errors)
}

// Summary is the result of a run.
type Summary struct {
	Labels      []Label // printed first by KeyValues, in order
	Concurrency int
	Elapsed     time.Duration // measured window
	OK          uint64
	Rejected    uint64
	Errors      uint64
	Extra       uint64 // follow-up requests (confirm/release) in the window
	// Latency covers OK and Rejected operations (errors are counted only:
	// a refused connection is fast and would flatter the percentiles).
	Latency  *hist.Histogram
	FirstErr string // the first error seen, for the operator
}

// Label is one key=value pair describing a run (target, durable, ...).
type Label struct{ Key, Value string }

// HoldsPerSec is granted holds per second of the measured window.
func (s *Summary) HoldsPerSec() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.OK) / s.Elapsed.Seconds()
}

// RequestsPerSec counts every request: holds (granted or not), follow-ups
// and errors.
func (s *Summary) RequestsPerSec() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.OK+s.Rejected+s.Errors+s.Extra) / s.Elapsed.Seconds()
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// KeyValues is the machine-readable one-line summary, e.g.
// "target=http durable=true concurrency=64 skus=1 holds_per_s=51234 p50_ms=1.101 ...".
// Values never contain spaces.
func (s *Summary) KeyValues() string {
	var b strings.Builder
	for _, l := range s.Labels {
		b.WriteString(l.Key)
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(l.Value, " ", "_"))
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "holds_per_s=%.0f p50_ms=%s p99_ms=%s p999_ms=%s max_ms=%s errors=%d rejected=%d ok=%d req_per_s=%.0f elapsed_s=%.2f",
		s.HoldsPerSec(), ms(s.Latency.Quantile(0.5)), ms(s.Latency.Quantile(0.99)),
		ms(s.Latency.Quantile(0.999)), ms(s.Latency.Max()), s.Errors, s.Rejected, s.OK,
		s.RequestsPerSec(), s.Elapsed.Seconds())
	return b.String()
}

// Map returns the summary as a flat map for JSON output.
func (s *Summary) Map() map[string]any {
	m := map[string]any{}
	for _, l := range s.Labels {
		m[l.Key] = l.Value
	}
	m["holds_per_s"] = s.HoldsPerSec()
	m["req_per_s"] = s.RequestsPerSec()
	m["p50_ms"] = s.Latency.Quantile(0.5).Seconds() * 1000
	m["p99_ms"] = s.Latency.Quantile(0.99).Seconds() * 1000
	m["p999_ms"] = s.Latency.Quantile(0.999).Seconds() * 1000
	m["max_ms"] = s.Latency.Max().Seconds() * 1000
	m["mean_ms"] = s.Latency.Mean().Seconds() * 1000
	m["ok"] = s.OK
	m["rejected"] = s.Rejected
	m["errors"] = s.Errors
	m["concurrency"] = s.Concurrency
	m["elapsed_s"] = s.Elapsed.Seconds()
	if s.FirstErr != "" {
		m["first_error"] = s.FirstErr
	}
	return m
}

// worker is one goroutine's private accounting. The counters are atomics
// only so that the progress reporter may read them; each has one writer.
type worker struct {
	hist     hist.Histogram
	ok       atomic.Uint64
	rejected atomic.Uint64
	errors   atomic.Uint64
	extra    uint64
	firstErr error
	_        [64]byte // keep neighbours' counters off this cache line
}

// Limits on a run, so that a typo cannot exhaust the machine.
const (
	MaxConcurrency = 100_000
	MaxDuration    = 24 * time.Hour
)

// Run drives cfg.Concurrency workers in a closed loop (each starts its next
// operation when the previous one returns) for cfg.Warmup + cfg.Duration,
// and counts the operations that complete inside the measured window. ctx
// cancels the run early; the summary then covers the time actually run.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Concurrency < 1 || cfg.Concurrency > MaxConcurrency {
		return nil, fmt.Errorf("loadgen: concurrency must be 1..%d, got %d", MaxConcurrency, cfg.Concurrency)
	}
	if cfg.Duration <= 0 || cfg.Duration > MaxDuration || cfg.Warmup < 0 || cfg.Warmup > MaxDuration {
		return nil, fmt.Errorf("loadgen: duration must be in (0, %v] and warmup in [0, %v]", MaxDuration, MaxDuration)
	}
	if cfg.NewOp == nil {
		return nil, errors.New("loadgen: NewOp is required")
	}
	grace := cfg.Grace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	ops := make([]Op, cfg.Concurrency)
	for w := range ops {
		op, err := cfg.NewOp(w)
		if err != nil {
			return nil, fmt.Errorf("loadgen: worker %d: %w", w, err)
		}
		ops[w] = op
	}
	workers := make([]worker, cfg.Concurrency)

	// Operations get opCtx, which outlives the window by the grace period,
	// so an operation in flight when the window closes can finish cleanly
	// instead of turning into a cancellation error.
	opCtx, cancelOps := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelOps()
	var stop atomic.Bool
	base := time.Now()
	warmEnd := cfg.Warmup
	end := cfg.Warmup + cfg.Duration
	// endNs is where the window closes; it moves earlier if ctx is cancelled.
	var endNs atomic.Int64
	endNs.Store(int64(end))

	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func(wk *worker, op Op) {
			defer wg.Done()
			for !stop.Load() {
				t0 := time.Since(base)
				r := op(opCtx)
				t1 := time.Since(base)
				if int64(t1) > endNs.Load() {
					return // the window has closed: stop loading the system
				}
				if t1 < warmEnd {
					continue
				}
				switch r.Outcome {
				case OK, Rejected:
					lat := r.Latency
					if lat == 0 {
						lat = t1 - t0
					}
					wk.hist.Record(lat)
					if r.Outcome == OK {
						wk.ok.Add(1)
					} else {
						wk.rejected.Add(1)
					}
				default:
					wk.errors.Add(1)
					if wk.firstErr == nil {
						wk.firstErr = r.Err
						if wk.firstErr == nil {
							wk.firstErr = errors.New("unspecified error")
						}
					}
				}
				wk.extra += uint64(r.Extra)
			}
		}(&workers[i], ops[i])
	}

	// The reporter also closes the window: at its end or when ctx ends.
	// Its ticker starts when the window opens, so that progress lines fall
	// on whole seconds of the window.
	timer := time.NewTimer(end)
	defer timer.Stop()
	warmTimer := time.NewTimer(warmEnd)
	defer warmTimer.Stop()
	var tick <-chan time.Time
	var last uint64
	lastAt := warmEnd
	if cfg.Progress != nil && warmEnd > 0 {
		cfg.Progress(Progress{InWarmup: true})
	}
loop:
	for {
		select {
		case <-timer.C:
			break loop
		case <-ctx.Done():
			now := time.Since(base)
			if now < end {
				endNs.Store(int64(now))
			}
			break loop
		case <-warmTimer.C:
			if cfg.WindowOpen != nil {
				cfg.WindowOpen()
			}
			t := time.NewTicker(time.Second)
			defer t.Stop()
			tick = t.C
		case <-tick:
			if cfg.Progress == nil {
				continue
			}
			now := time.Since(base)
			p := Progress{Elapsed: now - warmEnd}
			for i := range workers {
				p.OK += workers[i].ok.Load()
				p.Rejected += workers[i].rejected.Load()
				p.Errors += workers[i].errors.Load()
			}
			p.Interval = now - lastAt
			if p.Interval > 0 {
				p.OKPerSec = float64(p.OK-last) / p.Interval.Seconds()
			}
			last, lastAt = p.OK, now
			cfg.Progress(p)
		}
	}
	stop.Store(true)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		cancelOps()
		<-done
	}

	s := &Summary{Concurrency: cfg.Concurrency, Latency: &hist.Histogram{}}
	s.Elapsed = time.Duration(endNs.Load()) - warmEnd
	if s.Elapsed < 0 {
		s.Elapsed = 0
	}
	for i := range workers {
		wk := &workers[i]
		s.Latency.Merge(&wk.hist)
		s.OK += wk.ok.Load()
		s.Rejected += wk.rejected.Load()
		s.Errors += wk.errors.Load()
		s.Extra += wk.extra
		if s.FirstErr == "" && wk.firstErr != nil {
			s.FirstErr = wk.firstErr.Error()
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(Progress{Final: true, Elapsed: s.Elapsed, OK: s.OK, Rejected: s.Rejected, Errors: s.Errors,
			OKPerSec: s.HoldsPerSec(), Interval: s.Elapsed})
	}
	return s, nil
}
