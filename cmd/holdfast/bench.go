package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/loadgen"
	"github.com/holdfast-io/holdfast/region"
)

func init() { commands = append(commands, newBenchCmd) }

type benchOpts struct {
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	skus        int
	dist        string
	reopen      bool
	skuCache    int
	skuPrefetch string
	holdCache   int
	qty         uint64
	mix         string
	ttl         time.Duration
	url         string
	token       string
	target      string
	noSync      bool
	wal         string
	inline      bool
	maxLinger   time.Duration
	// walOrInlineSet: --wal or --inline-commit given (in-process only).
	walOrInlineSet bool
	noEvents       bool
	relay          bool
	restock        bool
	jsonOut        bool
	quiet          bool
	cpuProfile     string
	tracePath      string
	upProfile      string
	loadProfile    string
	dataDir        string
	client         string
	httpServer     string
}

func newBenchCmd() *cobra.Command {
	o := benchOpts{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Closed-loop hold benchmark against an in-process region (default) or --url",
		Example: `  holdfast bench --duration 10s --concurrency 64 --skus 1
  holdfast bench --target engine --concurrency 256       # the apply loop alone, no HTTP
  holdfast bench --target engine --skus 1000000 --dist zipf --reopen   # a large catalogue, start-up timed
  holdfast bench --mix shopper --skus 1000 --no-sync     # non-durable, for the ratio only
  holdfast bench --url http://127.0.0.1:8080 --token "$HOLDFAST_TOKEN"`,
		Long: `bench drives holds from --concurrency closed-loop clients for --duration and
prints a progress line each second and, last, one key=value line:
  target durable concurrency skus dist mix holds_per_s p50_ms p99_ms p999_ms max_ms errors rejected ...
In-process it adds active_holds, open_s and open_cpu_s (the first open of the
region: with --data-dir of a killed bench and --restock=false, its recovery),
load_s and settle_s (the catalogue load and its flushes), heap_mb, rss_mb,
peak_rss_mb, drain_s and drained_cpu_us_per_hold (the CPU until the store's
flushes and compactions are done), and with --reopen startup_s and startup_cpu_s;
and the group commit over the window: syncs_per_s, holds_per_sync, sync_ms (a
synced batch's write to its fsync) and cuts_<reason>, each reason's share of
the synced batches cut (holdfast_commit_cuts_total); with the own WAL,
wal_bytes_per_hold and wal_sync_ms (one group commit's write and fdatasync).
holds_per_s counts granted holds per second of the measured window; latencies
are those of the hold request (granted or rejected), measured by the client.

By default a fresh region is opened on a temporary directory in this process
and served on 127.0.0.1 (--target http), or driven without HTTP through its
apply loop (--target engine). Its stock is restocked generously so that the
run never runs out. --no-sync skips fsync: non-durable, labelled durable=false.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			serverGC()
			o.walOrInlineSet = cmd.Flags().Changed("wal") || cmd.Flags().Changed("inline-commit")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBench(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.concurrency, "concurrency", 64, "concurrent clients, each with one hold in flight")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "measured window")
	f.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before the window")
	f.IntVar(&o.skus, "skus", 1, "SKUs in the catalogue, 1..10000000 (over HTTP 1..100000; 1 = one hot SKU)")
	f.StringVar(&o.dist, "dist", "uniform", "how SKUs are drawn: uniform, or zipf (popularity rank k drawn with weight 1/(k+1)^1.1)")
	f.IntVar(&o.skuCache, "sku-cache", 0, "in-process region: SKUs kept in memory at most (0: every SKU; region sku_cache)")
	f.StringVar(&o.skuPrefetch, "sku-prefetch", "", "in-process region, with --sku-cache: read the rows of SKUs the node does not hold before stepping, in passes: batch (on the stepper), stage (on a goroutine before it) or off; empty: batch (region sku_prefetch)")
	f.IntVar(&o.holdCache, "hold-cache", 0, "in-process region: holds and idempotency keys kept in memory at most (0: every one; region hold_cache)")
	f.BoolVar(&o.reopen, "reopen", false, "after the run, close the in-process region and time its start-up from the data directory (startup_s)")
	f.Uint64Var(&o.qty, "qty", 1, "units per hold")
	f.StringVar(&o.mix, "mix", "hold", "hold, or shopper (hold, then confirm or release)")
	f.DurationVar(&o.ttl, "ttl", 10*time.Minute, "hold lifetime")
	f.StringVar(&o.url, "url", "", "benchmark an existing region at this URL instead of an in-process one")
	f.StringVar(&o.token, "token", "", "bearer token for --url (needs the admin scope to restock)")
	f.StringVar(&o.target, "target", "http", "http (the real API) or engine (the apply loop, no HTTP; in-process only)")
	f.BoolVar(&o.noSync, "no-sync", false, "in-process region without fsync (NOT durable; for the ratio only)")
	f.DurationVar(&o.maxLinger, "max-linger", region.DefaultMaxLinger, "in-process region's group commit: longest wait for returning callers before a batch is cut (negative: none; region max_linger)")
	f.StringVar(&o.wal, "wal", region.WALOwn, "in-process region's write-ahead log: own or pebble (region wal)")
	f.BoolVar(&o.inline, "inline-commit", true, "in-process region: a lone caller commits on its own goroutine when the apply loop is idle (region inline_commit; =false: every caller through the apply loop)")
	f.BoolVar(&o.noEvents, "no-events", false, "in-process region without its event log (to measure the log's cost)")
	f.BoolVar(&o.relay, "relay", false, "in-process region with its JetStream relay (embedded NATS) and the relay's lag in the summary")
	f.BoolVar(&o.restock, "restock", true, "restock the SKUs before the run so that stock never runs out")
	f.BoolVar(&o.jsonOut, "json", false, "print the summary as one JSON object instead of key=value")
	f.BoolVar(&o.quiet, "quiet", false, "no progress lines")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured window to this file")
	f.StringVar(&o.tracePath, "trace", "", "write a runtime execution trace (go tool trace) of the first seconds of the measured window, at most 10 s, to this file")
	f.StringVar(&o.loadProfile, "load-cpuprofile", "", "write a CPU profile of the catalogue's load (and its settle) to this file")
	f.StringVar(&o.upProfile, "reopen-cpuprofile", "", "with --reopen, write a CPU profile of the start-up to this file")
	f.StringVar(&o.client, "client", "raw", "HTTP client of the load generator: raw (one connection per client, no extra goroutines, like the database drivers) or std (package client over net/http)")
	f.StringVar(&o.httpServer, "http-server", region.HTTPServerFastHTTP, "HTTP server of the in-process region (--target http): fasthttp (the hold routes on github.com/valyala/fasthttp), or nethttp")
	f.StringVar(&o.dataDir, "data-dir", "", "data directory of the in-process region (default: a new temporary directory, removed after)")
	return cmd
}

// benchMaxRate bounds the holds/s any target could reach here; restocking
// for it (times two) keeps every run clear of running out.
const benchMaxRate = 1_000_000

func runBench(ctx context.Context, o benchOpts, stdout, stderr io.Writer) error {
	m, err := loadgen.ParseMix(o.mix)
	if err != nil {
		return err
	}
	if o.dist == "" {
		o.dist = string(loadgen.DistUniform)
	}
	dist, err := loadgen.ParseDist(o.dist)
	if err != nil {
		return err
	}
	wl := loadgen.Workload{SKUs: o.skus, Dist: dist, Qty: o.qty, Mix: m, TTL: o.ttl, Seed: 1}
	if err := wl.Validate(); err != nil {
		return err
	}
	if o.target == "http" && o.skus > loadgen.MaxHTTPSKUs {
		return fmt.Errorf("--skus over HTTP must be 1..%d (one prebuilt request per SKU); --target engine goes to %d", loadgen.MaxHTTPSKUs, loadgen.MaxSKUs)
	}
	if o.upProfile != "" && !o.reopen {
		return errors.New("--reopen-cpuprofile profiles the start-up of --reopen: add --reopen")
	}
	if o.skuCache < 0 || o.skuCache > escrow.MaxResidentSKUsLimit {
		return fmt.Errorf("--sku-cache must be between 0 (off) and %d", escrow.MaxResidentSKUsLimit)
	}
	if o.holdCache < 0 || o.holdCache > escrow.MaxResidentHoldsLimit {
		return fmt.Errorf("--hold-cache must be between 0 (off) and %d", escrow.MaxResidentHoldsLimit)
	}
	if o.holdCache > 0 && o.url != "" {
		return errors.New("--hold-cache configures the in-process region: not with --url (set hold_cache in that region's config)")
	}
	if o.skuCache > 0 && o.url != "" {
		return errors.New("--sku-cache configures the in-process region: not with --url (set sku_cache in that region's config)")
	}
	if o.reopen && o.url != "" {
		return errors.New("--reopen times the in-process region's start-up: not with --url")
	}
	if o.target != "http" && o.target != "engine" {
		return fmt.Errorf("--target must be http or engine, got %q", o.target)
	}
	if o.client == "" {
		o.client = "raw"
	}
	if o.client != "raw" && o.client != "std" {
		return fmt.Errorf("--client must be raw or std, got %q", o.client)
	}
	switch o.httpServer {
	case "":
		o.httpServer = region.HTTPServerFastHTTP
	case region.HTTPServerNetHTTP, region.HTTPServerFastHTTP:
	default:
		return fmt.Errorf("--http-server must be %s or %s, got %q", region.HTTPServerNetHTTP, region.HTTPServerFastHTTP, o.httpServer)
	}
	if o.httpServer != region.HTTPServerFastHTTP && (o.url != "" || o.target == "engine") {
		return errors.New("--http-server picks the in-process region's HTTP server: not with --url or --target engine")
	}
	if o.relay && (o.url != "" || o.noEvents) {
		return errors.New("--relay runs the in-process region's relay: not with --url or --no-events")
	}
	if o.url != "" && (o.target == "engine" || o.noSync || o.noEvents || o.dataDir != "" || o.walOrInlineSet) {
		return errors.New("--url benchmarks a running region over HTTP: --target engine, --no-sync, --no-events, --data-dir, --wal and --inline-commit apply to the in-process region only")
	}
	// The region logs from its own goroutines to the same stream.
	stderr = &lockedWriter{w: stderr}
	logf := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(stderr, format+"\n", args...)
		}
	}
	units := wl.RestockPlan(o.warmup+o.duration, benchMaxRate)
	unitsFor := wl.RestockFor(o.warmup+o.duration, benchMaxRate) // per SKU: zipf gives hot SKUs more
	durable := "unknown"                                         // a remote region's sync setting is not visible from here

	var newOp func(w int) (loadgen.Op, error)
	var relay *benchRelay     // --relay
	var scale []loadgen.Label // load and memory figures of the in-process region
	var reopen func() error   // --reopen
	var activeHolds func() uint64
	var prefetchStats func() region.PrefetchStats
	var inlineCommits func() float64 // --inline-commit: holdfast_inline_commits_total
	var commits func() commitStats   // in-process: the group commit's metrics
	var drain func() error           // in process: wait for the store's flushes and compactions
	if o.url != "" {
		c, err := loadgen.NewHTTPClient(o.url, o.token, o.concurrency, 30*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.UseStdlib = o.client == "std"
		if o.restock {
			logf("restocking %d SKUs with %d units each at %s (%s: the hot ones more)", o.skus, units, o.url, dist)
			if err := restockAll(ctx, o.skus, func(ctx context.Context, i int) error {
				return c.Restock(ctx, loadgen.SKUName(i), unitsFor(i), escrow.MaxQty)
			}); err != nil {
				return err
			}
		}
		if newOp, err = c.NewOp(wl); err != nil {
			return err
		}
	} else {
		dir := o.dataDir
		if dir == "" {
			d, err := os.MkdirTemp("", "holdfast-bench-")
			if err != nil {
				return fmt.Errorf("bench: temp dir: %w", err)
			}
			defer os.RemoveAll(d)
			dir = d
		}
		// The region's own logs would interleave with the progress lines.
		logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		rcfg := region.Config{Name: "bench", DataDir: dir, NoSync: o.noSync, Logger: logger,
			Events: region.EventsConfig{Disabled: o.noEvents}, HTTPServer: o.httpServer, SKUCache: o.skuCache,
			SKUPrefetch: o.skuPrefetch, HoldCache: o.holdCache, WAL: o.wal, NoInlineCommit: !o.inline,
			MaxLinger: o.maxLinger}
		t0, c0 := time.Now(), loadgen.ProcessCPU()
		r, err := region.Open(ctx, rcfg)
		if err != nil {
			return fmt.Errorf("bench: open in-process region: %w", err)
		}
		// The first open's time: with --data-dir of a bench killed with
		// -9 (and --restock=false) it is the recovery's.
		scale = append(scale, loadgen.Label{Key: "open_s", Value: seconds(time.Since(t0))},
			loadgen.Label{Key: "open_cpu_s", Value: seconds(loadgen.ProcessCPU() - c0)})
		defer r.Close()
		activeHolds = func() uint64 { return r.Stats().ActiveHolds }
		prefetchStats = r.PrefetchStats
		if o.inline {
			inlineCommits = func() float64 { return counterValue(r.Registry(), "holdfast_inline_commits_total") }
		}
		commits = func() commitStats { return readCommitStats(r.Registry()) }
		drain = func() error { return settle(ctx, r, 60*time.Second) }
		if o.reopen {
			reopen = func() error {
				if err := r.Close(); err != nil {
					return err
				}
				runtime.GC()
				stopProfile, err := startProfile(o.upProfile)
				if err != nil {
					return err
				}
				t0, c0 := time.Now(), loadgen.ProcessCPU()
				r2, err := region.Open(ctx, rcfg)
				upCPU := loadgen.ProcessCPU() - c0
				if perr := stopProfile(); err == nil {
					err = perr
				}
				if err != nil {
					return fmt.Errorf("bench: reopen: %w", err)
				}
				up := time.Since(t0)
				scale = append(scale, loadgen.Label{Key: "startup_s", Value: seconds(up)},
					loadgen.Label{Key: "startup_cpu_s", Value: seconds(upCPU)})
				logf("bench: reopened in %v", up)
				// The live heap of the reopened region: what start-up
				// keeps in memory (every row, or the holds only with
				// --sku-cache).
				scale = append(scale, loadgen.Label{Key: "reopen_heap_mb", Value: strconv.FormatFloat(float64(liveHeap())/(1<<20), 'f', 0, 64)})
				return r2.Close()
			}
		}
		durable = strconv.FormatBool(!o.noSync)
		if o.relay {
			if relay, err = startBenchRelay(r, dir); err != nil {
				return err
			}
			defer relay.close()
		}
		if o.restock {
			logf("restocking %d SKUs with %d units each (%s: the hot ones more)", o.skus, units, dist)
			stopLoadProfile, err := startProfile(o.loadProfile)
			if err != nil {
				return err
			}
			t0 := time.Now()
			if err := engineLoad(ctx, r, o.skus, unitsFor, func(done int) {
				logf("bench: loaded %d of %d SKUs in %v", done, o.skus, time.Since(t0).Round(time.Millisecond))
			}); err != nil {
				_ = stopLoadProfile() // the load's error is the one to report
				return err
			}
			scale = append(scale, loadgen.Label{Key: "load_s", Value: seconds(time.Since(t0))})
			// Measure the steady state, not the compaction of the load.
			t1 := time.Now()
			if err := settle(ctx, r, 30*time.Second); err != nil {
				return err
			}
			scale = append(scale, loadgen.Label{Key: "settle_s", Value: seconds(time.Since(t1))})
			if err := stopLoadProfile(); err != nil {
				return err
			}
		}
		if o.target == "engine" {
			newOp = engineOp(r, wl)
		} else {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("bench: listen: %w", err)
			}
			sctx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
			api, err := httpapi.New(r, rcfg)
			if err != nil {
				stopServe()
				return fmt.Errorf("bench: %w", err)
			}
			served := make(chan error, 1)
			go func() { served <- api.Serve(sctx, ln) }()
			defer func() { stopServe(); <-served }()
			c, err := loadgen.NewHTTPClient("http://"+ln.Addr().String(), "", o.concurrency, 30*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.UseStdlib = o.client == "std"
			if newOp, err = c.NewOp(wl); err != nil {
				return err
			}
		}
	}

	cfg := loadgen.Config{Concurrency: o.concurrency, Duration: o.duration, Warmup: o.warmup, NewOp: newOp}
	// CPU time of the whole process (clients, HTTP, region, Pebble) over the
	// window: per hold, it is the cost that a quiet machine would turn into
	// throughput, and it is far less noisy than holds/s on a shared one.
	var cpuStart time.Duration
	var inlineStart float64
	var commitsStart commitStats
	cfg.WindowOpen = func() {
		cpuStart = loadgen.ProcessCPU()
		if inlineCommits != nil {
			inlineStart = inlineCommits()
		}
		if commits != nil {
			commitsStart = commits()
		}
		if relay != nil {
			relay.setMeasuring(true)
		}
	}
	var profiling bool
	var profErr error
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer f.Close()
		// Profile the measured window, not the set-up and warm-up.
		open := cfg.WindowOpen
		cfg.WindowOpen = func() {
			open()
			profiling = true
			profErr = pprof.StartCPUProfile(f)
		}
	}
	var tracer *benchTracer
	if o.tracePath != "" {
		tracer = newBenchTracer(o.tracePath)
		open := cfg.WindowOpen
		cfg.WindowOpen = func() { open(); tracer.start(o.duration) }
	}
	cfg.Progress = func(p loadgen.Progress) { logf("bench: %s", p.String()) }
	logf("bench: target=%s durable=%s concurrency=%d skus=%d dist=%s mix=%s duration=%v warmup=%v",
		o.target, durable, o.concurrency, o.skus, dist, m, o.duration, o.warmup)
	s, err := loadgen.Run(ctx, cfg)
	cpu := loadgen.ProcessCPU() - cpuStart
	var inlineRun float64
	if inlineCommits != nil {
		inlineRun = inlineCommits() - inlineStart
	}
	var commitsRun commitStats
	if commits != nil {
		commitsRun = commits().minus(commitsStart)
	}
	if profiling {
		pprof.StopCPUProfile()
		if profErr != nil {
			return fmt.Errorf("bench: cpu profile: %w", profErr)
		}
	}
	if err != nil {
		if tracer != nil && tracer.timer != nil {
			_ = tracer.finish() // the run's error is the one to report
		}
		return err
	}
	if tracer != nil {
		if err := tracer.finish(); err != nil {
			return err
		}
	}
	s.Labels = []loadgen.Label{
		{Key: "target", Value: o.target},
		{Key: "durable", Value: durable},
		{Key: "concurrency", Value: strconv.Itoa(o.concurrency)},
		{Key: "skus", Value: strconv.Itoa(o.skus)},
		{Key: "dist", Value: string(dist)},
		{Key: "mix", Value: string(m)},
	}
	if o.skuCache > 0 {
		s.Labels = append(s.Labels, loadgen.Label{Key: "sku_cache", Value: strconv.Itoa(o.skuCache)})
		if o.skuPrefetch != "" {
			s.Labels = append(s.Labels, loadgen.Label{Key: "sku_prefetch", Value: o.skuPrefetch})
		}
	}
	if o.holdCache > 0 {
		s.Labels = append(s.Labels, loadgen.Label{Key: "hold_cache", Value: strconv.Itoa(o.holdCache)})
	}
	if !o.inline {
		s.Labels = append(s.Labels, loadgen.Label{Key: "inline_commit", Value: "false"})
	} else if inlineCommits != nil && s.OK > 0 {
		// Commits of the window made on their caller's goroutine, per granted hold.
		s.Labels = append(s.Labels, loadgen.Label{Key: "inline_per_hold", Value: strconv.FormatFloat(inlineRun/float64(s.OK), 'f', 3, 64)})
	}
	s.Labels = append(s.Labels, commitsRun.labels(s.OK, s.Elapsed)...)
	if o.target == "http" {
		s.Labels = append(s.Labels, loadgen.Label{Key: "client", Value: o.client})
		if o.url == "" {
			s.Labels = append(s.Labels, loadgen.Label{Key: "http_server", Value: o.httpServer})
		}
	}
	if cpuStart > 0 && s.OK > 0 && o.url == "" {
		// Includes the few milliseconds of the grace period after the window.
		s.Labels = append(s.Labels,
			loadgen.Label{Key: "cpu_cores", Value: strconv.FormatFloat(cpu.Seconds()/s.Elapsed.Seconds(), 'f', 2, 64)},
			loadgen.Label{Key: "cpu_us_per_hold", Value: strconv.FormatFloat(float64(cpu.Microseconds())/float64(s.OK), 'f', 1, 64)})
		if drain != nil {
			// The window leaves flushes and compactions owed (more with
			// larger memtables and L0 thresholds): the CPU until the store
			// is quiet again, per hold, counts that debt too.
			t0 := time.Now()
			if err := drain(); err != nil {
				return err
			}
			all := loadgen.ProcessCPU() - cpuStart
			s.Labels = append(s.Labels,
				loadgen.Label{Key: "drain_s", Value: seconds(time.Since(t0))},
				loadgen.Label{Key: "drained_cpu_us_per_hold", Value: strconv.FormatFloat(float64(all.Microseconds())/float64(s.OK), 'f', 1, 64)})
		}
	}
	if relay != nil {
		s.Labels = append(s.Labels, relay.labels()...)
	}
	if activeHolds != nil {
		// The holds of the warm-up and the run, still live until --ttl.
		s.Labels = append(s.Labels, loadgen.Label{Key: "active_holds", Value: strconv.FormatUint(activeHolds(), 10)})
		if o.skuPrefetch != "" {
			ps := prefetchStats()
			s.Labels = append(s.Labels, loadgen.Label{Key: "prefetch_reads", Value: strconv.FormatUint(ps.Reads, 10)},
				loadgen.Label{Key: "prefetch_served", Value: strconv.FormatUint(ps.Served, 10)},
				loadgen.Label{Key: "prefetch_stale", Value: strconv.FormatUint(ps.Stale, 10)},
				loadgen.Label{Key: "prefetch_dropped", Value: strconv.FormatUint(ps.Dropped, 10)},
				loadgen.Label{Key: "prefetch_passes", Value: strconv.FormatUint(ps.Passes, 10)})
		}
		s.Labels = append(s.Labels, scale...)
		s.Labels = append(s.Labels, readMem().labels("")...)
	}
	if reopen != nil {
		n := len(scale)
		if err := reopen(); err != nil {
			return err
		}
		s.Labels = append(s.Labels, scale[n:]...)
	}
	if s.FirstErr != "" {
		logf("bench: %d errors, first: %s", s.Errors, s.FirstErr)
	}
	if o.jsonOut {
		if err := json.NewEncoder(stdout).Encode(s.Map()); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, s.KeyValues())
	}
	if s.OK == 0 {
		return fmt.Errorf("bench: no hold was granted (errors=%d rejected=%d; first error: %s)", s.Errors, s.Rejected, s.FirstErr)
	}
	return nil
}

// restockAll restocks every SKU, 32 at a time so that the restocks share
// fsyncs instead of paying one each.
func restockAll(ctx context.Context, skus int, restock func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := 0; i < skus && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			if err := restock(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}(i)
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// engineOp drives the region's apply loop directly: the same commands the
// HTTP handlers send, without HTTP, JSON or sockets.
func engineOp(r *region.Region, wl loadgen.Workload) func(w int) (loadgen.Op, error) {
	name := engineSKUName(wl.SKUs)
	return func(w int) (loadgen.Op, error) {
		pick := wl.Picker(w)
		return func(ctx context.Context) loadgen.Result {
			t0 := time.Now()
			// A fresh Lines slice per hold: the region may still read the
			// command after Do returns on a cancelled context.
			rep, err := r.Do(ctx, escrow.Command{Kind: escrow.CmdHold, TTL: wl.TTL,
				Lines: []escrow.Line{{SKU: name(pick.SKU()), Qty: wl.Qty}}})
			lat := time.Since(t0)
			if err != nil {
				return loadgen.Result{Outcome: loadgen.Error, Err: err}
			}
			if rep.Err != nil {
				if rep.Err.Code == escrow.CodeInsufficientStock {
					return loadgen.Result{Outcome: loadgen.Rejected, Latency: lat}
				}
				return loadgen.Result{Outcome: loadgen.Error, Err: rep.Err}
			}
			if wl.Mix != loadgen.MixShopper {
				return loadgen.Result{Outcome: loadgen.OK, Latency: lat}
			}
			kind := escrow.CmdRelease
			if pick.Confirm() {
				kind = escrow.CmdConfirm
			}
			rep, err = r.Do(ctx, escrow.Command{Kind: kind, HoldID: rep.Hold.ID})
			if err == nil && rep.Err != nil {
				err = rep.Err
			}
			if err != nil {
				return loadgen.Result{Outcome: loadgen.Error, Err: fmt.Errorf("%s: %w", kind, err), Extra: 1}
			}
			return loadgen.Result{Outcome: loadgen.OK, Latency: lat, Extra: 1}
		}, nil
	}
}

// lockedWriter serialises writes from several goroutines to one stream.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// liveHeap returns the bytes of live heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
