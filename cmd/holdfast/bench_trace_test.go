package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --trace writes an execution trace of the window that go tool trace reads
// (its header names the format), and a trace file that cannot be created
// fails the run instead of being skipped silently.
func TestBenchTrace(t *testing.T) {
	o := benchOpts{target: "http", skus: 1, mix: "hold", concurrency: 2, duration: 300 * time.Millisecond,
		warmup: 50 * time.Millisecond, qty: 1, ttl: time.Minute, restock: true, dataDir: t.TempDir(),
		tracePath: filepath.Join(t.TempDir(), "bench.trace")}
	var stdout, stderr bytes.Buffer
	if err := runBench(context.Background(), o, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(o.tracePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("go 1.")) || !bytes.Contains(b[:16], []byte(" trace")) || len(b) < 1024 {
		t.Fatalf("not an execution trace (%d bytes): %q", len(b), b[:min(len(b), 32)])
	}

	o.tracePath = filepath.Join(t.TempDir(), "missing-dir", "bench.trace")
	o.dataDir = t.TempDir()
	if err := runBench(context.Background(), o, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "trace") {
		t.Fatalf("a trace file that cannot be created: err = %v, want the trace's error", err)
	}
}
