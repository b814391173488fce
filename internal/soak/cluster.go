package soak

// The soak's cluster: per region a `holdfast nats` server and a `holdfast
// region` process; the servers form one NATS cluster whose every route runs
// through a fault proxy, so that cutting the proxy partitions that link;
// and the rebalancer daemon.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/internal/faultproxy"
)

// Regions of the soak cluster.
var Regions = []string{"eu", "us", "ap"}

const clusterName = "soak"

type link struct {
	a, b  int // region indexes, a < b: a's server dials b's through the proxy
	proxy *faultproxy.Proxy
}

func (l *link) String() string { return Regions[l.a] + "-" + Regions[l.b] }

type cluster struct {
	dir        string
	bin        string
	natsPort   []int // client port of each region's server
	routePort  []int
	monPort    []int
	httpPort   []int
	nats       []*proc
	regions    []*proc
	rebalancer *proc
	links      []*link
}

// newCluster picks ports and writes every config file under dir.
func newCluster(bin, dir string, escrowYAML string) (*cluster, error) {
	n := len(Regions)
	ports, err := freePorts(4 * n)
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, bin: bin,
		natsPort: ports[0:n], routePort: ports[n : 2*n], monPort: ports[2*n : 3*n], httpPort: ports[3*n : 4*n]}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	for a := range n {
		for b := a + 1; b < n; b++ {
			p, err := faultproxy.New("127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", c.routePort[b]))
			if err != nil {
				c.closeProxies()
				return nil, err
			}
			c.links = append(c.links, &link{a: a, b: b, proxy: p})
		}
	}
	for i, name := range Regions {
		var routes []string
		for _, l := range c.links {
			if l.a == i {
				routes = append(routes, fmt.Sprintf("%q", "nats-route://"+l.proxy.Addr()))
			}
		}
		// advertise names a port nothing listens on, so that a server
		// never learns a direct address of another and routes around
		// the proxies when a link is cut; no_advertise keeps clients on
		// their own region's server.
		conf := fmt.Sprintf(`server_name: soak-%s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
max_payload: 2MB
write_deadline: "2s"
cluster {
  name: %s
  listen: 127.0.0.1:%d
  advertise: "127.0.0.1:1"
  no_advertise: true
  routes: [%s]
}
`, name, c.natsPort[i], c.monPort[i], clusterName, c.routePort[i], strings.Join(routes, ", "))
		natsConf := filepath.Join(dir, name+"-nats.conf")
		if err := os.WriteFile(natsConf, []byte(conf), 0o644); err != nil {
			c.closeProxies()
			return nil, err
		}
		c.nats = append(c.nats, &proc{name: "nats-" + name, bin: bin, log: filepath.Join(dir, "logs", "nats-"+name+".log"),
			args: []string{"nats", "--config", natsConf, "--no-jetstream", "--log-level", "warn"}})

		var members []string
		for _, m := range Regions {
			members = append(members, "  - name: "+m)
		}
		rconf := fmt.Sprintf(`name: %s
data_dir: %s
http_addr: 127.0.0.1:%d
nats_url: nats://127.0.0.1:%d
cluster: %s
events_relay: false
members:
%s
escrow:
%s`, name, filepath.Join(dir, "data", name), c.httpPort[i], c.natsPort[i], clusterName, strings.Join(members, "\n"), escrowYAML)
		regionConf := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(regionConf, []byte(rconf), 0o644); err != nil {
			c.closeProxies()
			return nil, err
		}
		c.regions = append(c.regions, &proc{name: name, bin: bin, log: filepath.Join(dir, "logs", name+".log"),
			args: []string{"region", "--config", regionConf, "--log-level", "warn"}})
	}
	c.rebalancer = &proc{name: "rebalancer", bin: bin, log: filepath.Join(dir, "logs", "rebalancer.log"),
		args: []string{"rebalancer", "--cluster", clusterName, "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", c.natsPort[0]),
			"--http-addr", "", "--interval", "1s", "--log-level", "warn"}}
	return c, nil
}

// procs lists every child process in table order.
func (c *cluster) procs() []*proc {
	out := append([]*proc{}, c.nats...)
	out = append(out, c.regions...)
	return append(out, c.rebalancer)
}

func (c *cluster) regionURL(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", c.httpPort[i]) }

// start starts the NATS servers, waits for every route, then the regions
// and the rebalancer.
func (c *cluster) start(ctx context.Context) error {
	for i, p := range c.nats {
		if err := p.start(); err != nil {
			return err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", c.natsPort[i])
		if err := waitFor(ctx, 20*time.Second, p.name+" accepts connections", func() bool { return dialable(addr) }); err != nil {
			return err
		}
	}
	for _, l := range c.links {
		if err := waitFor(ctx, 20*time.Second, "route "+l.String(), func() bool { return c.routed(l.a, l.b) }); err != nil {
			return err
		}
	}
	// All at once: a region with an empty store waits on probation until
	// its peers answer that they never saw its rows.
	for _, p := range c.regions {
		if err := p.start(); err != nil {
			return err
		}
	}
	for i := range c.regions {
		if err := c.waitReady(ctx, i); err != nil {
			return err
		}
	}
	return c.rebalancer.start()
}

// startRegion starts region i and waits until it is ready.
func (c *cluster) startRegion(ctx context.Context, i int) error {
	if err := c.regions[i].start(); err != nil {
		return err
	}
	return c.waitReady(ctx, i)
}

// waitReady waits until region i answers /readyz with 200.
func (c *cluster) waitReady(ctx context.Context, i int) error {
	return waitFor(ctx, 30*time.Second, "region "+Regions[i]+" ready", func() bool {
		return httpOK(c.regionURL(i) + "/readyz")
	})
}

// routed reports whether server a has a route to server b (NATS /routez).
func (c *cluster) routed(a, b int) bool {
	resp, err := probeClient.Get(fmt.Sprintf("http://127.0.0.1:%d/routez", c.monPort[a]))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	var rz struct {
		Routes []struct {
			RemoteName string `json:"remote_name"`
		} `json:"routes"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rz); err != nil {
		return false
	}
	for _, r := range rz.Routes {
		if r.RemoteName == "soak-"+Regions[b] {
			return true
		}
	}
	return false
}

// stopAll ends every child, the rebalancer and regions first.
func (c *cluster) stopAll() []error {
	var errs []error
	ps := c.procs()
	for i := len(ps) - 1; i >= 0; i-- {
		if err := ps[i].stop(); err != nil {
			errs = append(errs, err)
		}
	}
	c.closeProxies()
	return errs
}

func (c *cluster) closeProxies() {
	for _, l := range c.links {
		l.proxy.Close()
	}
}
