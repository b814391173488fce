package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/trace"
	"time"
)

// maxBenchTrace bounds the execution trace of --trace: a trace grows by
// about 100-200 KB per second per thousand holds/s (every goroutine switch,
// syscall and wake-up is an event), so the first seconds of the window are
// what is kept; the window itself runs on for --duration.
const maxBenchTrace = 10 * time.Second

// benchTracer writes a runtime execution trace (go tool trace) of the first
// seconds of the measured window: who wakes which goroutine, on which P and
// thread, and how long each waits to run (docs/benchmarks.md, "A lone
// shopper over HTTP"). A trace costs CPU itself: a traced run's holds/s and
// CPU per hold are not the untraced run's.
type benchTracer struct {
	path  string
	f     *os.File
	timer *time.Timer
	err   error
	done  chan struct{} // closed once the trace is stopped and the file closed
}

func newBenchTracer(path string) *benchTracer {
	return &benchTracer{path: path, done: make(chan struct{})}
}

// start begins the trace for at most d (maxBenchTrace at most). It runs at
// the opening of the window (loadgen's WindowOpen).
func (t *benchTracer) start(d time.Duration) {
	f, err := os.Create(t.path)
	if err != nil {
		t.err = fmt.Errorf("bench: trace: %w", err)
		close(t.done)
		return
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		t.err = fmt.Errorf("bench: trace: %w", err)
		close(t.done)
		return
	}
	t.f = f
	t.timer = time.AfterFunc(min(d, maxBenchTrace), t.stop)
}

// stop ends the trace (once) and closes its file.
func (t *benchTracer) stop() {
	trace.Stop()
	if err := t.f.Close(); err != nil {
		t.err = fmt.Errorf("bench: trace: %w", err)
	}
	close(t.done)
}

// finish stops a trace still running (a window shorter than the trace, or
// a run that failed) and reports what went wrong writing it. A trace never
// started (the window did not open) is reported as such.
func (t *benchTracer) finish() error {
	switch {
	case t.timer != nil:
		if t.timer.Stop() {
			t.stop()
		}
	case t.err == nil:
		return errors.New("bench: trace: the measured window never opened")
	}
	<-t.done
	return t.err
}
