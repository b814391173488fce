package configs_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/rebalancer"
	"github.com/holdfast-io/holdfast/region"
)

// recorder is a Registerer that remembers what was registered, so that the
// test can list metric names even for vectors with no series yet.
type recorder struct {
	mu   sync.Mutex
	reg  *prometheus.Registry
	cols []prometheus.Collector
}

func newRecorder() *recorder { return &recorder{reg: prometheus.NewRegistry()} }

func (r *recorder) Register(c prometheus.Collector) error {
	r.mu.Lock()
	r.cols = append(r.cols, c)
	r.mu.Unlock()
	return r.reg.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recorder) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) names() map[string]bool {
	r.mu.Lock()
	cols := append([]prometheus.Collector(nil), r.cols...)
	r.mu.Unlock()
	out := map[string]bool{}
	for _, c := range cols {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				out[m[1]] = true
			}
		}
	}
	return out
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// exportedMetrics runs a region (Pebble in a temp dir) with its NATS
// transport on an embedded loopback server, and a rebalancer, and returns
// the names of every metric they export.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	names := map[string]bool{}

	r, err := region.Open(ctx, region.Config{Name: "eu", DataDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })

	_, url := testutil.NATS(t)
	grec := newRecorder()
	tr, err := gossip.AttachRegion(ctx, r, gossip.Config{URL: url, Cluster: "metrics", Region: "eu", Registerer: grec,
		Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	for n := range grec.names() {
		names[n] = true
	}

	// Use the API so that the labelled series of the region exist.
	h, err := httpapi.New(r, region.Config{Name: r.Name()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restock(ctx, "A", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: "A", Qty: 1}}}); err != nil {
		t.Fatal(err)
	}
	// A hold of a region nobody serves: forwarded, and unreachable.
	if _, err := c.GetHold(ctx, "zz-0k3m1q9d2x7c4b8n5v"); client.StatusOf(err) != 503 {
		t.Fatalf("get of a hold of an absent region: %v", err)
	}
	mfs, err := r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	// The own write-ahead log's metrics exist only with wal: own.
	ro, err := region.Open(ctx, region.Config{Name: "eu", DataDir: t.TempDir(), WAL: region.WALOwn, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	mfs, err = ro.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	// Series only once a peer has answered a borrow (one per peer); the
	// estimate it shows is tested in escrow (TestRTTSkipsFarPeer).
	names["holdfast_peer_rtt_seconds"] = true

	rrec := newRecorder()
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- rebalancer.Run(rctx, rebalancer.Config{NATSURL: url, Cluster: "metrics", Registerer: rrec,
			Logger: quietLogger()})
	}()
	t.Cleanup(func() {
		rcancel()
		if err := <-done; err != nil {
			t.Errorf("rebalancer: %v", err)
		}
	})
	testutil.Eventually(t, 20*time.Second, "the rebalancer to register its metrics", func() bool {
		return len(rrec.names()) > 0
	})
	for n := range rrec.names() {
		names[n] = true
	}
	return names
}

var metricRef = regexp.MustCompile(`holdfast_[a-z0-9_]+`)

// TestDashboardAndAlertsUseExportedMetrics: every holdfast metric the
// Grafana dashboard, the alert rules and docs/operations.md name is
// exported by a region, its transport or the rebalancer.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	names := exportedMetrics(t)
	if !names["holdfast_holds_total"] || !names["holdfast_gossip_connected"] || !names["holdfast_rebalancer_rounds_total"] {
		t.Fatalf("expected metrics missing from what was collected: %v", keys(names))
	}
	for _, f := range []string{"grafana-dashboard.json", "prometheus-alerts.yml", "../docs/operations.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, ref := range metricRef.FindAllString(string(b), -1) {
			if seen[ref] || strings.HasSuffix(ref, "_") { // a prefix such as holdfast_gossip_*
				continue
			}
			seen[ref] = true
			base := ref
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if strings.HasSuffix(ref, suf) && names[strings.TrimSuffix(ref, suf)] {
					base = strings.TrimSuffix(ref, suf)
				}
			}
			if !names[base] {
				t.Errorf("%s uses %s, which no holdfast binary exports", f, ref)
			}
		}
		if len(seen) == 0 {
			t.Errorf("%s names no holdfast metric", f)
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
