package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/holdfast-io/holdfast/client"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/escrow/escrowtest"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/internal/faultproxy"
	"github.com/holdfast-io/holdfast/region"
)

// regionNames are the demo's regions, in order; --regions takes a prefix.
var regionNames = []string{"eu", "us", "ap", "sa", "af", "me", "oc", "ca"}

const cluster = "demo"

// site is one region of the demo with everything it runs on.
type site struct {
	name   string
	reg    *region.Region
	proxy  *faultproxy.Proxy // the region's NATS connection runs through it, so it can be cut
	tr     *gossip.Transport
	ln     net.Listener
	url    string
	client *client.Client
	served chan error
	// grantedCut counts holds this region granted during the partition.
	grantedCut atomic.Uint64
	relay      *siteRelay    // publishes the region's events to JetStream (events.go)
	restocks   atomic.Uint64 // restocks acknowledged here
}

// env is the demo's world: one embedded NATS server and the regions.
type env struct {
	dir     string
	nats    *server.Server
	natsURL string
	sites   []*site
	keepDir bool
}

func startEnv(ctx context.Context, o *Options) (*env, error) {
	dir, err := os.MkdirTemp("", "holdfast-demo-")
	if err != nil {
		return nil, fmt.Errorf("demo: temp dir: %w", err)
	}
	e := &env{dir: dir, keepDir: o.Keep}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.nats, e.natsURL, err = gossip.RunEmbedded(gossip.EmbeddedOptions{Host: "127.0.0.1", Port: -1, ServerName: "holdfast-demo",
		JetStream: true, StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		e.close()
		return nil, fmt.Errorf("demo: embedded NATS: %w", err)
	}
	natsAddr := strings.TrimPrefix(e.natsURL, "nats://")
	// The demo runs a signed cluster: keys as `holdfast keys` makes them,
	// the membership listing every region's public key.
	seedFiles, pubs, err := demoKeys(dir, regionNames[:o.Regions])
	if err != nil {
		e.close()
		return nil, err
	}
	var members []region.Member
	for _, name := range regionNames[:o.Regions] {
		members = append(members, region.Member{Name: name, PublicKey: pubs[name]})
	}
	for i := 0; i < o.Regions; i++ {
		name := regionNames[i]
		s := &site{name: name, served: make(chan error, 1)}
		e.sites = append(e.sites, s)
		if s.proxy, err = faultproxy.New("127.0.0.1:0", natsAddr); err != nil {
			e.close()
			return nil, fmt.Errorf("demo: proxy for %s: %w", name, err)
		}
		ecfg := escrow.Config{LowWater: 3, TopUpHorizon: 2e9, DonorFloor: 1, Locations: demoLocations(regionNames[0])}
		if o.BreakRegion == name {
			ecfg = escrowtest.WithBugs(ecfg, escrowtest.Bugs{GrantWithoutCheck: true})
		}
		s.reg, err = region.Open(ctx, region.Config{
			Name:    name,
			DataDir: filepath.Join(dir, name),
			// Its peers: with it, each region starts on probation (its store
			// is empty) until the others' digests say they never saw it.
			NATSURL:        s.proxy.URL(),
			Cluster:        cluster,
			Members:        members,
			SigningKeyFile: seedFiles[name],
			Escrow:         ecfg,
			Logger:         quiet,
		})
		if err != nil {
			e.close()
			return nil, fmt.Errorf("demo: region %s: %w", name, err)
		}
		if s.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			e.close()
			return nil, fmt.Errorf("demo: listen for %s: %w", name, err)
		}
		s.url = "http://" + s.ln.Addr().String()
		api, err := httpapi.New(s.reg, region.Config{Name: name, Logger: quiet})
		if err != nil {
			e.close()
			return nil, fmt.Errorf("demo: HTTP API of %s: %w", name, err)
		}
		go func(s *site) { s.served <- api.Serve(ctx, s.ln) }(s)
		if err := startSiteRelay(s, quiet); err != nil {
			e.close()
			return nil, err
		}
		s.tr, err = gossip.AttachRegion(ctx, s.reg, gossip.Config{URL: s.proxy.URL(), Cluster: cluster, Region: name, Logger: quiet,
			SigningKeyFile: seedFiles[name], MemberKeys: pubs})
		if err != nil {
			e.close()
			return nil, fmt.Errorf("demo: connect %s to NATS: %w", name, err)
		}
		if s.client, err = client.New(s.url, client.Options{}); err != nil {
			e.close()
			return nil, err
		}
	}
	return e, nil
}

// close stops everything; it removes the temp dir unless the demo keeps it.
func (e *env) close() error {
	var errs []error
	for _, s := range e.sites {
		if s.relay != nil {
			if err := s.relay.close(); err != nil {
				errs = append(errs, fmt.Errorf("relay of %s: %w", s.name, err))
			}
		}
		if s.tr != nil {
			s.tr.Close()
		}
		if s.reg != nil {
			if err := s.reg.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", s.name, err))
			}
		}
		if s.ln != nil {
			s.ln.Close()
		}
		if s.proxy != nil {
			s.proxy.Close()
		}
	}
	if e.nats != nil {
		e.nats.Shutdown()
	}
	if !e.keepDir {
		if err := os.RemoveAll(e.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
