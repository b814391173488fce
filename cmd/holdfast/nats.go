package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/region"
)

func init() {
	commands = append(commands, newNATSCmd)
	attachPeers = connectPeers
}

// Environment variables with the NATS credentials and TLS files of
// "holdfast region" (kept out of flags and YAML so that secrets' paths can
// come from the deployment).
const (
	envNATSCreds   = "HOLDFAST_NATS_CREDS"
	envNATSTLSCert = "HOLDFAST_NATS_TLS_CERT"
	envNATSTLSKey  = "HOLDFAST_NATS_TLS_KEY"
	envNATSTLSCA   = "HOLDFAST_NATS_TLS_CA"
)

// connectPeers joins region r to its peers over NATS (gossip.AttachRegion),
// with the credentials and TLS files from the environment and the
// transport's metrics registered with the region's. Closing the result
// closes the transport.
func connectPeers(ctx context.Context, cfg region.Config, r *region.Region) (io.Closer, error) {
	gcfg := gossip.ConfigFor(cfg)
	gcfg.CredsFile = os.Getenv(envNATSCreds)
	gcfg.TLSCert = os.Getenv(envNATSTLSCert)
	gcfg.TLSKey = os.Getenv(envNATSTLSKey)
	gcfg.TLSCA = os.Getenv(envNATSTLSCA)
	gcfg.Registerer = r.Registry()
	tr, err := gossip.AttachRegion(ctx, r, gcfg)
	if err != nil {
		return nil, err // not a nil *Transport in a non-nil io.Closer
	}
	if !cfg.Events.Relayed || r.Events() == nil {
		return tr, nil
	}
	auth := gossip.Auth{CredsFile: gcfg.CredsFile, TLSCert: gcfg.TLSCert, TLSKey: gcfg.TLSKey, TLSCA: gcfg.TLSCA}
	rl, err := startRelay(cfg, r, auth)
	if err != nil {
		tr.Close()
		return nil, err
	}
	return closers{rl, tr}, nil
}

// closers closes each in order and joins the errors.
type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

func newNATSCmd() *cobra.Command {
	var addr, configFile, name, logLevel, storeDir string
	noJetStream := false
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run an embedded NATS server for local multi-process setups",
		Example: `  holdfast nats --addr 127.0.0.1:4222
  holdfast nats --config configs/local/nats.conf`,
		Long: `Runs a nats-server inside holdfast, listening on --addr (loopback by default),
so that regions started as separate processes can find each other:

  holdfast nats --addr 127.0.0.1:4222
  holdfast region --name eu --cluster c --nats-url nats://127.0.0.1:4222 ...

--config reads a nats-server configuration file (authorization, permissions,
TLS); --addr, when given, overrides its listen address. In production run a
real NATS cluster per region, joined by gateways (configs/nats-supercluster.conf).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := textLogger(logLevel)
			if err != nil {
				return err
			}
			opts := gossip.EmbeddedOptions{ConfigFile: configFile, ServerName: name, Logger: log,
				JetStream: !noJetStream, StoreDir: storeDir}
			if opts.JetStream && opts.StoreDir == "" {
				opts.StoreDir = filepath.Join(os.TempDir(), "holdfast-nats")
			}
			if configFile == "" || cmd.Flags().Changed("addr") {
				host, portStr, err := net.SplitHostPort(addr)
				if err != nil {
					return fmt.Errorf("--addr %q: %w", addr, err)
				}
				port, err := strconv.Atoi(portStr)
				if err != nil || port < 0 || port > 65535 {
					return fmt.Errorf("--addr %q: bad port", addr)
				}
				if port == 0 {
					port = -1 // any free port
				}
				opts.Host, opts.Port = host, port
			}
			srv, url, err := gossip.RunEmbedded(opts)
			if err != nil {
				return err
			}
			log.Info("NATS server ready", "url", url)
			fmt.Fprintln(cmd.OutOrStdout(), url)
			ctx, stop := signalContext(cmd)
			defer stop()
			<-ctx.Done()
			log.Info("shutting down NATS server")
			srv.Shutdown()
			done := make(chan struct{})
			go func() { srv.WaitForShutdown(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				return fmt.Errorf("nats server did not stop within 10s")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:4222", "listen address host:port (port 0 picks a free one)")
	f.StringVar(&configFile, "config", "", "nats-server configuration file")
	f.StringVar(&name, "name", "", "server name (default: generated)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&storeDir, "store-dir", "", "JetStream file store directory (default: <tmp>/holdfast-nats); the region event streams live there")
	f.BoolVar(&noJetStream, "no-jetstream", false, "run without JetStream (the regions' event relays then wait for a stream)")
	return cmd
}
