package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/region"
)

// parseKV reads the last line of a bench output as key=value pairs.
func parseKV(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	kv := map[string]string{}
	for _, f := range strings.Fields(last) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("last line has a field without '=': %q", last)
		}
		kv[k] = v
	}
	for _, k := range []string{"holds_per_s", "p50_ms", "p99_ms", "p999_ms", "errors", "rejected", "target", "durable", "concurrency", "skus"} {
		if _, ok := kv[k]; !ok {
			t.Fatalf("last line lacks %s: %q", k, last)
		}
	}
	return kv
}

func TestBenchInProcess(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    benchOpts
	}{
		{"http-hot-hold", benchOpts{target: "http", skus: 1, mix: "hold"}},
		{"http-shopper-nosync", benchOpts{target: "http", skus: 50, mix: "shopper", noSync: true}},
		{"http-stdlib-client", benchOpts{target: "http", skus: 2, mix: "shopper", client: "std"}},
		{"engine-shopper", benchOpts{target: "engine", skus: 3, mix: "shopper"}},
		{"engine-zipf-reopen", benchOpts{target: "engine", skus: 5000, dist: "zipf", mix: "hold", reopen: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.concurrency, o.duration, o.warmup, o.qty, o.ttl, o.restock = 4, 400*time.Millisecond, 100*time.Millisecond, 2, time.Minute, true
			o.dataDir = t.TempDir()
			if o.reopen {
				o.upProfile = filepath.Join(t.TempDir(), "up.prof")
				o.loadProfile = filepath.Join(t.TempDir(), "load.prof")
			}
			var stdout, stderr bytes.Buffer
			if err := runBench(context.Background(), o, &stdout, &stderr); err != nil {
				t.Fatalf("bench: %v\nstderr:\n%s", err, stderr.String())
			}
			kv := parseKV(t, stdout.String())
			if kv["errors"] != "0" || kv["rejected"] != "0" {
				t.Fatalf("errors/rejected in a run with ample stock: %s\nstderr:\n%s", stdout.String(), stderr.String())
			}
			if rate, _ := strconv.ParseFloat(kv["holds_per_s"], 64); rate <= 0 {
				t.Fatalf("no holds: %s", stdout.String())
			}
			wantDurable := strconv.FormatBool(!o.noSync)
			if kv["target"] != o.target || kv["durable"] != wantDurable || kv["concurrency"] != "4" || kv["skus"] != strconv.Itoa(o.skus) {
				t.Fatalf("labels wrong: %s", stdout.String())
			}
			if o.target == "engine" {
				// The catalogue was loaded, the live holds and memory reported.
				if kv["load_s"] == "" || kv["heap_mb"] == "" {
					t.Fatalf("no load or memory figures: %s", stdout.String())
				}
				if h, _ := strconv.ParseUint(kv["active_holds"], 10, 64); o.mix == "hold" && h == 0 {
					t.Fatalf("no live holds reported: %s", stdout.String())
				}
			}
			if o.target == "engine" {
				// The CPU until the store's flushes and compactions are done
				// counts the window's too.
				cpu, err1 := strconv.ParseFloat(kv["cpu_us_per_hold"], 64)
				drained, err2 := strconv.ParseFloat(kv["drained_cpu_us_per_hold"], 64)
				if err1 != nil || err2 != nil || drained < cpu || kv["drain_s"] == "" {
					t.Fatalf("drained CPU per hold missing or below the window's: %s", stdout.String())
				}
			}
			if o.reopen {
				if up, err := strconv.ParseFloat(kv["startup_s"], 64); err != nil || up <= 0 {
					t.Fatalf("no start-up time: %s", stdout.String())
				}
				if _, err := strconv.ParseFloat(kv["startup_cpu_s"], 64); err != nil {
					t.Fatalf("no start-up CPU time: %s", stdout.String())
				}
				if fi, err := os.Stat(o.upProfile); err != nil || fi.Size() == 0 {
					t.Fatalf("no start-up profile in %s: %v", o.upProfile, err)
				}
				if fi, err := os.Stat(o.loadProfile); err != nil || fi.Size() == 0 {
					t.Fatalf("no load profile in %s: %v", o.loadProfile, err)
				}
			}
			if o.dist != "" && kv["dist"] != o.dist {
				t.Fatalf("dist label wrong: %s", stdout.String())
			}
			if o.mix == "shopper" {
				// Each hold is followed by a confirm or release: twice the requests.
				ok, _ := strconv.ParseFloat(kv["ok"], 64)
				req, _ := strconv.ParseFloat(kv["req_per_s"], 64)
				el, _ := strconv.ParseFloat(kv["elapsed_s"], 64)
				if got := req * el; got < 2*ok-1 || got > 2*ok+1 {
					t.Fatalf("shopper: %v requests for %v holds", got, ok)
				}
			}
			if !strings.Contains(stderr.String(), "done: ok=") {
				t.Errorf("no progress line on stderr:\n%s", stderr.String())
			}
		})
	}
}

// --url benchmarks a region served elsewhere; its stock starts empty, so the
// restock through the admin API is what makes the holds succeed.
func TestBenchURL(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := region.Open(ctx, region.Config{Name: "remote", DataDir: t.TempDir(), NoSync: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	api, err := httpapi.New(r, region.Config{Name: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { served <- api.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	o := benchOpts{url: "http://" + ln.Addr().String(), target: "http", concurrency: 3, duration: 300 * time.Millisecond,
		skus: 2, qty: 1, mix: "hold", ttl: time.Minute, restock: true, quiet: true, jsonOut: false}
	var stdout, stderr bytes.Buffer
	if err := runBench(ctx, o, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	kv := parseKV(t, stdout.String())
	if kv["errors"] != "0" || kv["durable"] != "unknown" {
		t.Fatalf("%s", stdout.String())
	}
	// Without restock the region has nothing to hold: every hold is rejected,
	// and the command says so with an error.
	o.restock = false
	o.skus = 1
	stdout.Reset()
	r2, err := region.Open(ctx, region.Config{Name: "empty", DataDir: t.TempDir(), NoSync: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served2 := make(chan error, 1)
	api2, err := httpapi.New(r2, region.Config{Name: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { served2 <- api2.Serve(ctx, ln2) }()
	defer func() { cancel(); <-served2 }()
	o.url = "http://" + ln2.Addr().String()
	err = runBench(ctx, o, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "no hold was granted") {
		t.Fatalf("bench on an empty region: err %v, out %s", err, stdout.String())
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	base := benchOpts{target: "http", concurrency: 1, duration: time.Second, skus: 1, qty: 1, mix: "hold", ttl: time.Minute}
	for name, mut := range map[string]func(o *benchOpts){
		"mix":         func(o *benchOpts) { o.mix = "browse" },
		"target":      func(o *benchOpts) { o.target = "grpc" },
		"skus":        func(o *benchOpts) { o.skus = 0 },
		"url+engine":  func(o *benchOpts) { o.url, o.target = "http://127.0.0.1:1", "engine" },
		"url+no-sync": func(o *benchOpts) { o.url, o.noSync = "http://127.0.0.1:1", true },
		"concurrency": func(o *benchOpts) { o.concurrency = 0 },
		"client":      func(o *benchOpts) { o.client = "curl" },
		"dist":        func(o *benchOpts) { o.dist = "pareto" },
		"http-skus":   func(o *benchOpts) { o.skus = 100_001 },
		"skus-10M+1":  func(o *benchOpts) { o.target, o.skus = "engine", 10_000_001 },
		"url+reopen":  func(o *benchOpts) { o.url, o.reopen = "http://127.0.0.1:1", true },
		"up-profile":  func(o *benchOpts) { o.target, o.upProfile = "engine", "up.prof" },
	} {
		o := base
		mut(&o)
		if err := runBench(context.Background(), o, io.Discard, io.Discard); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
