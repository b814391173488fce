// Command baseline runs the holdfast benchmark workload against PostgreSQL
// (a row-locked stock table) or Redis (a Lua script), timed by the same
// loadgen code as `holdfast bench`, and ends with the same key=value line.
// bench/compare.sh starts the servers and calls it; it is also usable alone:
//
//	baseline --system postgres --dsn postgres://bench@127.0.0.1:5432/bench --setup
//	baseline --system redis --addr 127.0.0.1:6379 --setup --concurrency 64
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/holdfast-io/holdfast/loadgen"
)

// system is one database under test.
type system interface {
	// Setup (re)creates the schema and stocks every SKU with units.
	Setup(ctx context.Context, wl loadgen.Workload, units uint64) error
	// NewOp opens worker w's connection and returns its operation.
	NewOp(ctx context.Context, wl loadgen.Workload, w int) (loadgen.Op, error)
	// Durable reports whether the server's settings make an acknowledged
	// hold survive a crash, and a short description of them.
	Durable(ctx context.Context) (bool, string, error)
	Close()
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		sysName     = flag.String("system", "", "postgres or redis")
		dsn         = flag.String("dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL connection string")
		addr        = flag.String("addr", "127.0.0.1:6379", "Redis address")
		concurrency = flag.Int("concurrency", 64, "concurrent clients, each with one hold in flight")
		duration    = flag.Duration("duration", 10*time.Second, "measured window")
		warmup      = flag.Duration("warmup", time.Second, "unmeasured warm-up before the window")
		skus        = flag.Int("skus", 1, "SKUs drawn uniformly (1 = one hot SKU)")
		qty         = flag.Uint64("qty", 1, "units per hold")
		mix         = flag.String("mix", "hold", "hold, or shopper (hold then confirm or release)")
		ttl         = flag.Duration("ttl", 10*time.Minute, "hold lifetime")
		setup       = flag.Bool("setup", true, "recreate the schema and stock before the run")
		jsonOut     = flag.Bool("json", false, "print the summary as JSON instead of key=value")
		quiet       = flag.Bool("quiet", false, "no progress lines")
		serverPID   = flag.Int("server-pid", 0, "pid of the server (Redis, or the PostgreSQL postmaster): its CPU time and its children's is added to cpu_us_per_hold")
	)
	flag.Parse()
	m, err := loadgen.ParseMix(*mix)
	if err != nil {
		return err
	}
	wl := loadgen.Workload{SKUs: *skus, Qty: *qty, Mix: m, TTL: *ttl, Seed: 1}
	if err := wl.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var sys system
	switch *sysName {
	case "postgres":
		sys = &pgSystem{dsn: *dsn}
	case "redis":
		sys, err = newRedisSystem(*addr, *concurrency)
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("--system must be postgres or redis, got %q", *sysName)
	}
	defer sys.Close()

	durable, settings, err := sys.Durable(ctx)
	if err != nil {
		return fmt.Errorf("%s: read durability settings: %w", *sysName, err)
	}
	if *setup {
		// Stock for far more holds than any of these systems can grant, so
		// that no run is cut short by running out.
		units := wl.RestockPlan(*warmup+*duration, 1_000_000)
		if err := sys.Setup(ctx, wl, units); err != nil {
			return fmt.Errorf("%s: setup: %w", *sysName, err)
		}
	}
	cfg := loadgen.Config{
		Concurrency: *concurrency,
		Duration:    *duration,
		Warmup:      *warmup,
		NewOp:       func(w int) (loadgen.Op, error) { return sys.NewOp(ctx, wl, w) },
	}
	// CPU of this client process plus the server's, over the window: the
	// cost per hold that a busy shared machine distorts least.
	// The client's and the server's shares are reported apart too, to
	// compare each with holdfast's load generator and region.
	var clientStart, serverStart time.Duration
	cfg.WindowOpen = func() { clientStart, serverStart = loadgen.ProcessCPU(), serverCPU(*serverPID) }
	if !*quiet {
		cfg.Progress = func(p loadgen.Progress) { fmt.Fprintln(os.Stderr, *sysName+": "+p.String()) }
	}
	s, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	clientCPU := loadgen.ProcessCPU() - clientStart
	srvCPU := serverCPU(*serverPID) - serverStart
	cpu := clientCPU + srvCPU
	s.Labels = []loadgen.Label{
		{Key: "target", Value: *sysName},
		{Key: "durable", Value: strconv.FormatBool(durable)},
		{Key: "settings", Value: settings},
		{Key: "concurrency", Value: strconv.Itoa(*concurrency)},
		{Key: "skus", Value: strconv.Itoa(*skus)},
		{Key: "mix", Value: string(m)},
	}
	if *serverPID > 0 && s.OK > 0 {
		s.Labels = append(s.Labels,
			loadgen.Label{Key: "cpu_cores", Value: strconv.FormatFloat(cpu.Seconds()/s.Elapsed.Seconds(), 'f', 2, 64)},
			loadgen.Label{Key: "cpu_us_per_hold", Value: perHold(cpu, s.OK)},
			loadgen.Label{Key: "client_cpu_us_per_hold", Value: perHold(clientCPU, s.OK)},
			loadgen.Label{Key: "server_cpu_us_per_hold", Value: perHold(srvCPU, s.OK)})
	}
	if s.FirstErr != "" {
		slog.Warn("errors during the run", "count", s.Errors, "first", s.FirstErr)
	}
	if *jsonOut {
		return json.NewEncoder(os.Stdout).Encode(s.Map())
	}
	fmt.Println(s.KeyValues())
	if s.OK == 0 {
		return errors.New("no hold was granted")
	}
	return nil
}

// perHold is d in microseconds per granted hold, one decimal.
func perHold(d time.Duration, ok uint64) string {
	return strconv.FormatFloat(float64(d.Microseconds())/float64(ok), 'f', 1, 64)
}
