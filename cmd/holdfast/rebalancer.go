package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/cmd/holdfast/regionconfig"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/rebalancer"
)

func init() { commands = append(commands, newRebalancerCmd) }

func newRebalancerCmd() *cobra.Command {
	var (
		cfg      rebalancer.Config
		logLevel string
		locsFrom string
	)
	p := escrow.DefaultRebalancePolicy()
	cmd := &cobra.Command{
		Use:   "rebalancer",
		Short: "Run the global rebalancer: move stock toward demand by advice over NATS",
		Example: `  holdfast rebalancer --cluster local --nats-url nats://127.0.0.1:4222
  holdfast rebalancer --cluster c --nats-url nats://127.0.0.1:4222 --interval 1s --http-addr 127.0.0.1:9470`,
		Long: `The rebalancer listens to the regions' digests on holdfast.<cluster>.digest.*,
computes target slices per SKU in proportion to demand, names a home region for
each nearly sold-out SKU (the others send it their units and route such holds to
it), and publishes advice on holdfast.<cluster>.advice every interval. Regions follow advice only from their
surplus, so safety never depends on it. Run several for availability: the one
with the smallest --id publishes, the others take over when it goes quiet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := textLogger(logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = log
			cfg.Policy = p
			if locsFrom != "" {
				if cfg.Locations, err = locationsOf(locsFrom); err != nil {
					return err
				}
			}
			ctx, stop := signalContext(cmd)
			defer stop()
			return rebalancer.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Cluster, "cluster", "", "cluster name (subject namespace of the regions)")
	f.StringVar(&cfg.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	f.StringVar(&cfg.ID, "id", rebalancer.DefaultID, "daemon id ([a-z0-9_]); with several daemons the smallest leads")
	f.DurationVar(&cfg.Interval, "interval", rebalancer.DefaultInterval, "time between rounds")
	f.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:9470", "address of /metrics and /healthz (empty disables)")
	f.StringVar(&cfg.CredsFile, "creds", "", "NATS credentials file")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "client TLS certificate")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "client TLS key")
	f.StringVar(&cfg.TLSCA, "tls-ca", "", "CA bundle for the NATS server")
	f.StringVar(&cfg.SigningKeyFile, "signing-key", "", "signing key file (holdfast keys); the regions list its public key as rebalancer_public_key")
	f.StringToStringVar(&cfg.MemberKeys, "member-key", nil, "region=public key of each region (signed clusters; repeat or comma-separate)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&locsFrom, "locations-from", "", "a region config file whose locations: the advice respects (no units of a location to a region that may not sell it)")
	f.DurationVar(&p.Horizon, "horizon", p.Horizon, "demand horizon: targets are proportional to expected demand over it")
	f.Uint64Var(&p.Floor, "floor", p.Floor, "units a region is never asked to give below")
	f.DurationVar(&p.FloorHorizon, "floor-horizon", p.FloorHorizon, "a region also keeps its demand over this time")
	f.Float64Var(&p.Hysteresis, "hysteresis", p.Hysteresis, "move only when a region is short by more than this fraction of its target")
	f.Uint64Var(&p.MinMove, "min-move", p.MinMove, "smallest move advised")
	f.Uint64Var(&p.MaxMovePerSKU, "max-move-per-sku", p.MaxMovePerSKU, "units advised per SKU per round (0: no cap)")
	f.Uint64Var(&p.MaxMoveTotal, "max-move-total", p.MaxMoveTotal, "units advised per round (0: no cap)")
	f.DurationVar(&p.ScarceHorizon, "scarce-horizon", p.ScarceHorizon,
		"a SKU with fewer units in all regions than its demand over this time gets a home region that the others route its holds to (negative: no homes)")
	_ = cmd.MarkFlagRequired("cluster")
	return cmd
}

// locationsOf reads the locations: of a region config file.
func locationsOf(path string) ([]escrow.Location, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	file, err := regionconfig.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []escrow.Location
	for _, l := range file.Locations {
		out = append(out, escrow.Location{ID: l.ID, Owner: l.Owner, Sellers: l.Sellers})
	}
	return out, nil
}
