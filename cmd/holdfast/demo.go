package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/demo"
)

func init() { commands = append(commands, newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run three regions, embedded NATS and a flash sale in one process, and check the invariants",
		Long: `demo starts an embedded NATS server and regions (eu, us, ap) with Pebble in temp dirs and
the real HTTP API on loopback, then drives concurrent shoppers over HTTP through five phases:
restock, steady traffic, a partition that cuts one region off NATS, heal and converge, and a
flash sale down to the last unit. It ends with the checks it made and a key=value line, and
exits 0 only if every check held.`,
		Example: `  holdfast demo
  holdfast demo --duration 10s --regions 5
  holdfast demo --keep        # stay up afterwards and print URLs and curl lines to try
  holdfast demo --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			out := cmd.OutOrStdout()
			o.Out = out
			if f, ok := out.(*os.File); ok {
				if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
					o.Live = true
				}
			}
			if o.Keep {
				o.WhileKept = func(urls map[string]string) { keepRunning(ctx, cmd, urls) }
			}
			res, err := demo.Run(ctx, o)
			if err != nil {
				return err
			}
			if !res.OK() {
				return errors.New("demo: a check failed (see above)")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Duration, "duration", 20*time.Second, "length of the whole run; phases scale with it (3s..1h)")
	f.IntVar(&o.Regions, "regions", 3, "number of regions (2..8)")
	f.IntVar(&o.Shoppers, "shoppers", 24, "concurrent shoppers in the steady phases")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the shoppers' choices")
	f.BoolVar(&o.Keep, "keep", false, "stay up after the run (Ctrl-C to stop); keep the data dirs")
	f.BoolVar(&o.JSON, "json", false, "print the result as JSON")
	return cmd
}

func keepRunning(ctx context.Context, cmd *cobra.Command, urls map[string]string) {
	out := cmd.OutOrStdout()
	names := make([]string, 0, len(urls))
	for n := range urls {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(out, "\nregions are up (Ctrl-C to stop):")
	for _, n := range names {
		fmt.Fprintf(out, "  %s  %s\n", n, urls[n])
	}
	u := urls[names[0]]
	fmt.Fprintf(out, "\ntry:\n  curl -s %s/v1/skus/sku-01\n", u)
	fmt.Fprintf(out, "  curl -s -X POST %s/v1/holds -H 'Content-Type: application/json' -d '{\"items\":[{\"sku\":\"sku-01\",\"qty\":1}],\"ttl\":\"5m\"}'\n", u)
	fmt.Fprintf(out, "  holdfast stock sku-01 --url %s\n", u)
	<-ctx.Done()
}
