package main

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/internal/soak"
)

func init() { commands = append(commands, newSoakCmd) }

// errSoakFailed makes the process exit non-zero when a check fails.
var errSoakFailed = errors.New("soak: FAIL")

func newSoakCmd() *cobra.Command {
	var cfg soak.Config
	cmd := &cobra.Command{
		Use:    "soak",
		Hidden: true, // driven by bench/soak.sh
		Short:  "Run real region processes under kill -9 and partitions, then check safety",
		Long: `Starts three "holdfast region" processes of --bin, each on its own
"holdfast nats" server (the servers linked through fault proxies), the
rebalancer and HTTP shoppers; kills one region with SIGKILL and cuts one link
every --period, heals, waits for convergence and checks conservation, no
oversell, no lost acknowledged hold and one hold per idempotency key. Prints
memory and file descriptors of every process over time; exits non-zero on
FAIL. bench/soak.sh builds the binary and runs it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Bin == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				cfg.Bin = exe
			}
			if cfg.Dir == "" {
				d, err := os.MkdirTemp("", "holdfast-soak-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				cfg.Dir = d
			}
			abs, err := filepath.Abs(cfg.Dir)
			if err != nil {
				return err
			}
			cfg.Dir = abs
			cfg.Out = cmd.OutOrStdout()
			ctx, stop := signalContext(cmd)
			defer stop()
			res, err := soak.Run(ctx, cfg)
			if err != nil {
				return err
			}
			if !res.Pass() {
				return errSoakFailed
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Bin, "bin", "", "holdfast binary the processes run (default: this one)")
	f.StringVar(&cfg.Dir, "dir", "", "work directory for configs, data and logs (default: a temp dir, removed)")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "time under load and faults")
	f.DurationVar(&cfg.Period, "period", time.Minute, "one kill -9 and one partition per period")
	f.IntVar(&cfg.Shoppers, "shoppers", 8, "concurrent HTTP shoppers")
	f.IntVar(&cfg.SKUs, "skus", 12, "SKUs")
	f.Uint64Var(&cfg.Stock, "stock", 60, "initial units per SKU")
	f.DurationVar(&cfg.Think, "think", 40*time.Millisecond, "mean pause of a shopper between requests")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the shoppers' and faults' choices")
	return cmd
}
