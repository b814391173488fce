package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/holdfast-io/holdfast/cmd/holdfast/regionconfig"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/region"
)

func init() { commands = append(commands, newRegionCmd) }

// attachPeers connects a region to its peers over NATS. The gossip owner
// sets it from an init in nats.go; nil means this build has no gossip.
var attachPeers func(ctx context.Context, cfg region.Config, r *region.Region) (io.Closer, error)

func newRegionCmd() *cobra.Command {
	var (
		configPath string
		flags      region.Config
		// inlineCommit is --inline-commit (region.Config.NoInlineCommit negated).
		inlineCommit bool
		logLevel     string
		logJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "region",
		Short: "Run one region node: holds API over HTTP, state in Pebble, peers over NATS",
		Long: `Runs one region: the HTTP API (/v1/holds, /v1/skus, /metrics, /healthz, /readyz),
an apply loop that commits every change durably (group commit) before it answers,
and, with --nats-url, replication and quota borrowing with the other regions.

Flags override the YAML file given with --config. Without --tokens-file the API
has no auth and the region refuses to listen on anything but loopback.`,
		Example: `  holdfast region --name eu --data-dir /var/lib/holdfast/eu --http-addr 127.0.0.1:8080
  holdfast region --config configs/local/eu.yaml --nats-url nats://127.0.0.1:4222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			serverGC()
			var cfg region.Config
			if configPath != "" {
				c, err := regionconfig.Load(configPath)
				if err != nil {
					return err
				}
				cfg = c
			}
			f := cmd.Flags()
			override(f, "name", &cfg.Name, flags.Name)
			override(f, "data-dir", &cfg.DataDir, flags.DataDir)
			override(f, "http-addr", &cfg.HTTPAddr, flags.HTTPAddr)
			override(f, "nats-url", &cfg.NATSURL, flags.NATSURL)
			override(f, "cluster", &cfg.Cluster, flags.Cluster)
			override(f, "tokens-file", &cfg.TokensFile, flags.TokensFile)
			override(f, "http-server", &cfg.HTTPServer, flags.HTTPServer)
			override(f, "queue-len", &cfg.QueueLen, flags.QueueLen)
			override(f, "max-batch", &cfg.MaxBatch, flags.MaxBatch)
			override(f, "max-linger", &cfg.MaxLinger, flags.MaxLinger)
			override(f, "lone-commit", &cfg.LoneCommit, flags.LoneCommit)
			override(f, "inline-commit", &cfg.NoInlineCommit, !inlineCommit)
			override(f, "tick", &cfg.TickInterval, flags.TickInterval)
			override(f, "no-sync", &cfg.NoSync, flags.NoSync)
			override(f, "wal", &cfg.WAL, flags.WAL)
			override(f, "sku-cache", &cfg.SKUCache, flags.SKUCache)
			override(f, "hold-cache", &cfg.HoldCache, flags.HoldCache)
			if cfg.HTTPAddr == "" {
				cfg.HTTPAddr = "127.0.0.1:8080"
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			hopts := &slog.HandlerOptions{Level: lvl}
			if logJSON {
				cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, hopts))
			} else {
				cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, hopts))
			}
			if cfg.NoSync {
				cfg.Logger.Warn("no_sync is set: commits are NOT durable, a crash loses acknowledged holds (benchmarks only)")
			}
			parent := cmd.Context()
			if parent == nil {
				parent = context.Background()
			}
			ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runRegion(ctx, cfg, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML config file (flags override it)")
	f.StringVar(&flags.Name, "name", "", "region name ([a-z0-9_], prefixes hold ids)")
	f.StringVar(&flags.DataDir, "data-dir", "", "Pebble data directory")
	f.StringVar(&flags.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address")
	f.StringVar(&flags.NATSURL, "nats-url", "", "NATS URL of the peers (empty: region on its own)")
	f.StringVar(&flags.Cluster, "cluster", "holdfast", "cluster name (NATS subject namespace)")
	f.StringVar(&flags.TokensFile, "tokens-file", "", "bearer tokens with scopes (YAML); empty: no auth, loopback only")
	f.StringVar(&flags.HTTPServer, "http-server", region.HTTPServerFastHTTP, "HTTP server of the API: fasthttp (the hold routes on github.com/valyala/fasthttp), or nethttp (Go's net/http); see docs/operations.md")
	f.IntVar(&flags.QueueLen, "queue-len", region.DefaultQueueLen, "client requests waiting for the apply loop before 503")
	f.IntVar(&flags.MaxBatch, "max-batch", region.DefaultMaxBatch, "inputs per committed batch at most")
	f.DurationVar(&flags.MaxLinger, "max-linger", region.DefaultMaxLinger, "group commit: longest wait for returning callers before a batch is cut (negative: none)")
	f.BoolVar(&flags.LoneCommit, "lone-commit", false, "the stepper commits a lone caller's batch itself when nothing is in flight (see docs/operations.md)")
	f.BoolVar(&inlineCommit, "inline-commit", true, "a lone caller commits its command on its own goroutine when the apply loop is idle; --inline-commit=false sends every caller through the loop (see docs/operations.md)")
	f.DurationVar(&flags.TickInterval, "tick", region.DefaultTickInterval, "node tick (expiry and borrow deadlines)")
	f.BoolVar(&flags.NoSync, "no-sync", false, "commit without fsync: NOT durable, benchmarks only")
	f.StringVar(&flags.WAL, "wal", region.WALOwn, "write-ahead log: own (the store's own log) or pebble (pebble's; see docs/operations.md)")
	f.IntVar(&flags.HoldCache, "hold-cache", 0, "holds and idempotency keys kept in memory at most (0: every one); the others are read from the store on demand")
	f.IntVar(&flags.SKUCache, "sku-cache", 0, "SKUs kept in memory at most (0: every SKU); the others are read from the store on first touch")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&logJSON, "log-json", false, "log JSON lines instead of text")
	return cmd
}

// runRegion opens the region, attaches peers, serves HTTP until ctx ends,
// then shuts down in order: HTTP (in-flight requests finish), peers, the
// apply loop and the store. started, if set, gets the listen address once
// the region is open.
func runRegion(ctx context.Context, cfg region.Config, started func(addr string)) error {
	log := cfg.Logger
	if cfg.TokensFile == "" && !httpapi.LoopbackAddr(cfg.HTTPAddr) {
		// Refuse before listening: without auth the API must not be reachable
		// from other machines, even for a moment.
		return fmt.Errorf("refusing to serve on %s without auth: set --tokens-file, or use 127.0.0.1 / [::1] / localhost", cfg.HTTPAddr)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	defer ln.Close()
	r, err := region.Open(ctx, cfg)
	if err != nil {
		return err
	}
	api, err := httpapi.New(r, cfg)
	if err != nil {
		r.Close()
		return err
	}
	var peers io.Closer
	if cfg.NATSURL != "" {
		if attachPeers == nil {
			r.Close()
			return errors.New("--nats-url is set but this build has no NATS transport")
		}
		peers, err = attachPeers(ctx, cfg, r)
		if err != nil {
			r.Close()
			return fmt.Errorf("attach peers at %s: %w", cfg.NATSURL, err)
		}
	}
	if started != nil {
		started(ln.Addr().String())
	}
	// A region whose store is wedged cannot recover in this process: stop
	// serving and exit non-zero so that the supervisor restarts it.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.Fatal():
			cancel()
		case <-sctx.Done():
		}
	}()
	serveErr := api.Serve(sctx, ln)
	if err := r.FatalErr(); err != nil {
		serveErr = errors.Join(serveErr, err)
	}
	log.Info("shutting down", "reason", context.Cause(ctx))
	if peers != nil {
		if err := peers.Close(); err != nil {
			log.Warn("closing peers", "err", err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		return errors.Join(serveErr, err)
	case <-time.After(30 * time.Second):
		return errors.Join(serveErr, errors.New("region did not close within 30s"))
	}
}

// override sets *dst to v when the flag name was given on the command line:
// flags override the YAML file, and an absent flag leaves its value alone.
func override[T any](f *pflag.FlagSet, name string, dst *T, v T) {
	if f.Changed(name) {
		*dst = v
	}
}
