package region_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/internal/faultproxy"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/internal/testutil/testapi"
	"github.com/holdfast-io/holdfast/region"
)

// Multi-region tests: real regions (Pebble in t.TempDir()) joined by an
// embedded nats-server on loopback, each region's connection running
// through its own faultproxy.Proxy so that it can be cut off.

const mrCluster = "mr"

type mrSite struct {
	name  string
	dir   string
	reg   *region.Region
	tr    *gossip.Transport
	proxy *faultproxy.Proxy
	cfg   region.Config // of the running region, for its HTTP API
}

type mrWorld struct {
	t     testing.TB
	srv   *server.Server
	sites map[string]*mrSite
	log   *slog.Logger
	// wipePeers, when set for a region, makes its next start load its
	// store without peer rows and peer sequences.
	wipePeers map[string]bool
	// noSync opens regions without fsync (benchmarks of the transport only).
	noSync bool
	// natsAddr, when set, names the NATS server a region connects to
	// (through its proxy); default: srv.
	natsAddr map[string]string
	// digest is the regions' digest interval (default 100ms).
	digest time.Duration
	// configure, when set, adjusts a region's config before it opens.
	configure func(c *region.Config)
	// transport, when set, adjusts a region's transport config (rc is the
	// region's) before it connects.
	transport func(rc region.Config, c *gossip.Config)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newMRWorld(t testing.TB, names ...string) *mrWorld {
	t.Helper()
	return newMRWorldOpts(t, false, names...)
}

func newMRWorldOpts(t testing.TB, noSync bool, names ...string) *mrWorld {
	t.Helper()
	return newMRWorldConfigured(t, noSync, nil, names...)
}

// newMRWorldConfigured is newMRWorldOpts with configure (may be nil)
// adjusting every region's config before it opens.
func newMRWorldConfigured(t testing.TB, noSync bool, configure func(c *region.Config), names ...string) *mrWorld {
	t.Helper()
	srv, _ := testutil.NATS(t) // shut down after the regions (cleanups run last first)
	w := &mrWorld{t: t, srv: srv, sites: map[string]*mrSite{}, log: quietLogger(), wipePeers: map[string]bool{}, noSync: noSync,
		configure: configure}
	t.Cleanup(func() {
		for _, s := range w.sites {
			w.stop(s.name)
			_ = s.proxy.Close()
		}
	})
	for _, n := range names {
		w.start(n)
	}
	return w
}

// wipingStore hides peer rows and peer sequences from Load, as if the
// region had lost everything but its own state.
type wipingStore struct {
	*region.Store
	name string
}

func (s wipingStore) Load() (*escrow.State, error) {
	st, err := s.Store.Load()
	if err != nil || st == nil {
		return st, err
	}
	own := st.Rows[:0]
	for _, r := range st.Rows {
		if r.Region == s.name {
			own = append(own, r)
		}
	}
	st.Rows, st.PeerSeq = own, nil
	return st, nil
}

func (w *mrWorld) start(name string) *mrSite {
	t := w.t
	t.Helper()
	s := w.sites[name]
	if s == nil {
		target := w.srv.Addr().String()
		if a := w.natsAddr[name]; a != "" {
			target = a
		}
		p, err := faultproxy.New("127.0.0.1:0", target)
		if err != nil {
			t.Fatal(err)
		}
		s = &mrSite{name: name, dir: t.TempDir(), proxy: p}
		w.sites[name] = s
	}
	cfg := region.Config{Name: name, DataDir: s.dir, Cluster: mrCluster, Logger: w.log, NoSync: w.noSync,
		Escrow: escrow.Config{DigestInterval: cmp.Or(w.digest, 100*time.Millisecond), RepairTimeout: 300 * time.Millisecond}}
	if w.configure != nil {
		w.configure(&cfg)
	}
	if w.wipePeers[name] {
		st, err := region.OpenStore(s.dir, region.StoreOptions{Region: name, Logger: w.log})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Storage = wipingStore{Store: st, name: name}
		delete(w.wipePeers, name)
	}
	ctx := context.Background()
	r, err := region.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	gcfg := gossip.Config{URL: s.proxy.URL(), Cluster: mrCluster, Region: name,
		Logger: w.log, ReconnectWait: 50 * time.Millisecond, ForwardTimeout: 500 * time.Millisecond,
		Registerer: r.Registry()}
	if w.transport != nil {
		w.transport(cfg, &gcfg)
	}
	tr, err := gossip.AttachRegion(ctx, r, gcfg)
	if err != nil {
		_ = r.Close()
		t.Fatalf("connect %s: %v", name, err)
	}
	s.reg, s.tr, s.cfg = r, tr, cfg
	return s
}

func (w *mrWorld) stop(name string) {
	s := w.sites[name]
	if s == nil || s.reg == nil {
		return
	}
	// Transport first: no message is delivered into a closed region.
	_ = s.tr.Close()
	if err := s.reg.Close(); err != nil {
		w.t.Errorf("close %s: %v", name, err)
	}
	s.reg, s.tr = nil, nil
}

func (w *mrWorld) do(name string, cmd escrow.Command) (escrow.Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.sites[name].reg.Do(ctx, cmd)
}

func (w *mrWorld) mustDo(name string, cmd escrow.Command) escrow.Reply {
	w.t.Helper()
	r, err := w.do(name, cmd)
	if err != nil {
		w.t.Fatalf("%s %s: %v", name, cmd.Kind, err)
	}
	return r
}

func (w *mrWorld) inspect(name string, f func(n *escrow.Node)) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.sites[name].reg.Inspect(ctx, f); err != nil {
		w.t.Fatalf("inspect %s: %v", name, err)
	}
}

func (w *mrWorld) view(name, sku string) escrow.View {
	var v escrow.View
	w.inspect(name, func(n *escrow.Node) { v = n.View(sku) })
	return v
}

func (w *mrWorld) waitKnows(name, writer, sku string, minted uint64) {
	w.t.Helper()
	testutil.WaitFor(w.t, 5*time.Second, func() bool {
		v := w.view(name, sku)
		return v != nil && v[writer] != nil && v[writer].Minted >= minted
	}, func() string {
		return fmt.Sprintf("%s never saw %s's row of %s with %d minted", name, writer, sku, minted)
	})
}

// converged reports whether every running region sees identical rows of
// sku and the merged view conserves units.
func (w *mrWorld) converged(sku string) (bool, string) {
	var ref escrow.View
	var refName string
	names := w.running()
	for _, name := range names {
		v := w.view(name, sku)
		if err := v.CheckConservation(); err != nil {
			return false, fmt.Sprintf("%s: %v", name, err)
		}
		if ref == nil {
			ref, refName = v, name
			continue
		}
		if len(v) != len(ref) {
			return false, fmt.Sprintf("%s knows %d rows of %s, %s knows %d", name, len(v), sku, refName, len(ref))
		}
		for r, row := range ref {
			if o := v[r]; o == nil || !o.Equal(row) {
				return false, fmt.Sprintf("row %s/%s: %s has %+v, %s has %+v", r, sku, refName, row, name, o)
			}
		}
	}
	return true, ""
}

func (w *mrWorld) running() []string {
	var names []string
	for n, s := range w.sites {
		if s.reg != nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func (w *mrWorld) waitConverged(sku string, within time.Duration) time.Duration {
	w.t.Helper()
	return testutil.WaitFor(w.t, within, func() bool { ok, _ := w.converged(sku); return ok },
		func() string { _, why := w.converged(sku); return why })
}

func (w *mrWorld) cut(name string) {
	w.t.Helper()
	s := w.sites[name]
	s.proxy.Cut()
	testutil.WaitFor(w.t, 5*time.Second, func() bool { return !s.tr.Connected() }, func() string { return name + " still connected" })
}

func (w *mrWorld) heal(name string) {
	w.t.Helper()
	s := w.sites[name]
	s.proxy.Heal()
	testutil.WaitFor(w.t, 5*time.Second, s.tr.Connected, func() string { return name + " did not reconnect" })
}

// serveAPI serves the HTTP API of a running region on 127.0.0.1 until the
// test ends and returns its base URL.
func (w *mrWorld) serveAPI(name string) string {
	w.t.Helper()
	s := w.sites[name]
	return testapi.ServeAPI(w.t, s.reg, s.cfg)
}

func hold(sku string, qty uint64) escrow.Command {
	return escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: sku, Qty: qty}}, TTL: 10 * time.Minute}
}

func restock(sku string, qty uint64) escrow.Command {
	return escrow.Command{Kind: escrow.CmdRestock, SKU: sku, Qty: qty}
}

// httpDo sends body (nil: none) as JSON and returns the status and body.
func httpDo(t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	var js string
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		js = string(b)
	}
	r := httpCall(t, method, url, js)
	return r.status, r.body
}

// TestMultiRegionBorrowLastUnit: the last unit of a SKU stocked only at eu
// is held at us (borrowed over NATS), a second hold anywhere is refused,
// a confirm at a non-owner is forwarded, and all regions agree.
//
// The borrow deadline is stretched to 2s: the test is about what a borrow
// does, not how fast (on a loaded machine eu's durable transfer and the
// round trip can take longer than the default 50ms, and the hold at us is
// then refused before the units arrive, as designed).
func TestMultiRegionBorrowLastUnit(t *testing.T) {
	w := newMRWorldConfigured(t, false, func(c *region.Config) { c.Escrow.BorrowTimeout = 2 * time.Second }, "eu", "us", "ap")
	w.mustDo("eu", restock("A", 1))
	w.waitKnows("us", "eu", "A", 1)
	us := w.serveAPI("us")
	code, body := httpDo(t, "POST", us+"/v1/holds", api.CreateHoldRequest{Items: []api.Item{{SKU: "A", Qty: 1}}})
	if code != http.StatusCreated {
		t.Fatalf("hold at us: %d %s", code, body)
	}
	var h api.Hold
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ap", "eu", "us"} {
		if r := w.mustDo(name, hold("A", 1)); r.Err == nil || r.Err.Code != escrow.CodeInsufficientStock {
			t.Fatalf("second hold at %s: %+v", name, r)
		}
	}
	// Confirm at ap: forwarded to us, the owner.
	r := w.mustDo("ap", escrow.Command{Kind: escrow.CmdConfirm, HoldID: h.ID})
	if r.Err != nil || r.Hold == nil || r.Hold.State != escrow.Confirmed {
		t.Fatalf("confirm at a non-owner: %+v %v", r, r.Err)
	}
	took := w.waitConverged("A", 5*time.Second)
	t.Logf("converged %v after the confirm", took)
	if tot := w.view("eu", "A").Totals(); tot.Sold != 1 || tot.Available != 0 || tot.Minted != 1 {
		t.Fatalf("totals %+v", tot)
	}
}

// TestMultiRegionOneUnitManyShoppers: 1 unit, 100 concurrent shoppers
// spread over three regions: exactly one hold.
func TestMultiRegionOneUnitManyShoppers(t *testing.T) {
	w := newMRWorld(t, "eu", "us", "ap")
	w.mustDo("eu", restock("A", 1))
	w.waitKnows("us", "eu", "A", 1)
	w.waitKnows("ap", "eu", "A", 1)
	names := []string{"eu", "us", "ap"}
	var mu sync.Mutex
	granted, rejected := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := w.do(names[i%3], hold("A", 1))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("shopper %d: %v", i, err)
			case r.Err == nil:
				granted++
			case r.Err.Code == escrow.CodeInsufficientStock:
				rejected++
			default:
				t.Errorf("shopper %d: %v", i, r.Err)
			}
		}(i)
	}
	wg.Wait()
	if granted != 1 || rejected != 99 {
		t.Fatalf("granted %d, rejected %d; want 1 and 99", granted, rejected)
	}
	w.waitConverged("A", 5*time.Second)
	if tot := w.view("us", "A").Totals(); tot.Held != 1 || tot.Available != 0 {
		t.Fatalf("totals %+v", tot)
	}
}

// TestMultiRegionPartition cuts ap off while shoppers hold everywhere:
// each side grants at most what it owns, holds answer within the borrow
// deadline, and after heal the regions converge with conservation and
// every acknowledged hold intact.
func TestMultiRegionPartition(t *testing.T) {
	w := newMRWorld(t, "eu", "us", "ap")
	w.mustDo("eu", restock("A", 6))
	w.mustDo("us", restock("A", 2))
	w.mustDo("ap", restock("A", 4))
	for _, n := range []string{"eu", "us", "ap"} {
		w.waitKnows(n, "eu", "A", 6)
		w.waitKnows(n, "us", "A", 2)
		w.waitKnows(n, "ap", "A", 4)
	}
	w.cut("ap")
	owned := map[string]uint64{}
	for _, n := range []string{"eu", "us", "ap"} {
		w.inspect(n, func(node *escrow.Node) { owned[n] = node.Available("A") })
	}
	type result struct {
		region  string
		id      string
		latency time.Duration
	}
	var mu sync.Mutex
	var results []result
	var lat []time.Duration
	var wg sync.WaitGroup
	// Twice as many shoppers as units on each side, concurrently.
	for i := 0; i < 24; i++ {
		name := []string{"eu", "us", "ap"}[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r, err := w.do(name, hold("A", 1))
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, d)
			switch {
			case err != nil:
				t.Errorf("hold at %s: %v", name, err)
			case r.Err == nil:
				results = append(results, result{name, r.Hold.ID, d})
			case r.Err.Code != escrow.CodeInsufficientStock:
				t.Errorf("hold at %s: %v", name, r.Err)
			}
		}()
	}
	wg.Wait()
	bySide := map[string]uint64{}
	for _, r := range results {
		side := "eu+us"
		if r.region == "ap" {
			side = "ap"
		}
		bySide[side]++
	}
	if bySide["ap"] > owned["ap"] || bySide["eu+us"] > owned["eu"]+owned["us"] {
		t.Fatalf("oversold during the partition: granted %v, owned %v", bySide, owned)
	}
	// Each side sells everything it owns: eu and us borrow from each other.
	if bySide["ap"] != owned["ap"] || bySide["eu+us"] != owned["eu"]+owned["us"] {
		t.Errorf("stranded units during the partition: granted %v, owned %v", bySide, owned)
	}
	slices.Sort(lat)
	p50, p99, maxLat := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	t.Logf("partition: owned %v, granted %v; hold latency p50 %v p99 %v max %v", owned, bySide, p50, p99, maxLat)
	// The borrow deadline bounds every hold; slack for fsync and a shared CPU.
	if limit := escrow.DefaultBorrowTO + 400*time.Millisecond; maxLat > limit {
		t.Errorf("hold latency %v during the partition exceeds the borrow deadline + slack (%v)", maxLat, limit)
	}
	// Confirm one hold on each side while still partitioned.
	confirmed := map[string]bool{}
	for _, side := range []string{"ap", "eu"} {
		for _, r := range results {
			if r.region == side {
				if rep := w.mustDo(side, escrow.Command{Kind: escrow.CmdConfirm, HoldID: r.id}); rep.Err != nil {
					t.Fatalf("confirm %s: %v", r.id, rep.Err)
				}
				confirmed[r.id] = true
				break
			}
		}
	}
	w.heal("ap")
	took := w.waitConverged("A", 10*time.Second)
	t.Logf("converged %v after heal", took)
	v := w.view("ap", "A")
	if err := v.CheckConservation(); err != nil {
		t.Fatal(err)
	}
	tot := v.Totals()
	if tot.Held+tot.Sold != int64(len(results)) || tot.Sold != 2 || tot.Minted != 12 {
		t.Fatalf("after heal totals %+v, %d holds acknowledged", tot, len(results))
	}
	// No acknowledged hold lost: each is readable from any region (forwarded).
	for i, r := range results {
		at := []string{"eu", "us", "ap"}[i%3]
		rep := w.mustDo(at, escrow.Command{Kind: escrow.CmdGet, HoldID: r.id})
		want := escrow.Held
		if confirmed[r.id] {
			want = escrow.Confirmed
		}
		if rep.Err != nil || rep.Hold.State != want {
			t.Fatalf("acknowledged hold %s read at %s: %+v %v", r.id, at, rep.Hold, rep.Err)
		}
	}
}

// TestMultiRegionForwardUnreachable: with the owner cut off, an operation
// on its hold at another region answers 503 quickly, and works after heal.
func TestMultiRegionForwardUnreachable(t *testing.T) {
	w := newMRWorld(t, "eu", "us")
	w.mustDo("eu", restock("A", 1))
	r := w.mustDo("eu", hold("A", 1))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	us := w.serveAPI("us")
	w.cut("eu")
	start := time.Now()
	code, body := httpDo(t, "POST", us+"/v1/holds/"+r.Hold.ID+"/confirm", nil)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("confirm with the owner cut off: %d %s", code, body)
	}
	t.Logf("503 after %v: %s", time.Since(start), body)
	_, err := w.do("us", escrow.Command{Kind: escrow.CmdGet, HoldID: r.Hold.ID})
	if !errors.Is(err, region.ErrOwnerUnreachable) {
		t.Fatalf("get with the owner cut off: %v", err)
	}
	w.heal("eu")
	testutil.WaitFor(t, 5*time.Second, func() bool {
		code, _ := httpDo(t, "POST", us+"/v1/holds/"+r.Hold.ID+"/confirm", nil)
		return code == http.StatusOK
	}, func() string { return "confirm through us still fails after heal" })
}

// TestMultiRegionAntiEntropy: a region that missed messages while cut off,
// and a region restarted with its peer rows wiped, both catch up.
func TestMultiRegionAntiEntropy(t *testing.T) {
	w := newMRWorld(t, "eu", "us", "ap")
	w.mustDo("eu", restock("A", 3))
	w.waitKnows("us", "eu", "A", 3)
	w.waitKnows("ap", "eu", "A", 3)

	// us misses eu's changes while cut off.
	w.cut("us")
	skus := []string{"A"}
	for i := 0; i < 30; i++ {
		sku := fmt.Sprintf("S%02d", i)
		skus = append(skus, sku)
		w.mustDo("eu", restock(sku, uint64(i+1)))
	}
	if r := w.mustDo("eu", hold("A", 2)); r.Err != nil {
		t.Fatal(r.Err)
	}
	w.heal("us")
	var euSeq uint64
	w.inspect("eu", func(n *escrow.Node) { euSeq = n.Seq() })
	took := testutil.WaitFor(t, 10*time.Second, func() bool {
		var seen uint64
		w.inspect("us", func(n *escrow.Node) { seen = n.PeerSeq("eu") })
		return seen >= euSeq
	}, func() string { return "us never caught up with eu" })
	t.Logf("us caught up %v after heal", took)

	// ap restarts having lost every peer row.
	w.stop("ap")
	w.wipePeers["ap"] = true
	w.start("ap")
	if v := w.view("ap", "A"); v["eu"] != nil {
		t.Fatalf("ap still knows eu's row after the wipe: %+v", v["eu"])
	}
	took = testutil.WaitFor(t, 10*time.Second, func() bool {
		var seen uint64
		w.inspect("ap", func(n *escrow.Node) { seen = n.PeerSeq("eu") })
		return seen >= euSeq
	}, func() string { return "ap never caught up with eu after the wipe" })
	t.Logf("wiped ap caught up %v after restart", took)
	for _, sku := range skus {
		if ok, why := w.converged(sku); !ok {
			t.Fatalf("%s: %s", sku, why)
		}
	}
}

// TestMultiRegionReconnectResyncs: a region cut off from NATS while both
// sides changed catches up as soon as its connection is back, because the
// reconnect makes it ask (gossip.Resyncer → escrow.Input.Resync), not
// because digests show the gap: here digests are an hour apart, so without
// the resync neither side would learn what it missed within the test.
func TestMultiRegionReconnectResyncs(t *testing.T) {
	w := newMRWorld(t)
	w.digest = time.Hour
	w.start("eu")
	w.start("us")
	w.mustDo("eu", restock("A", 5))
	w.mustDo("us", restock("B", 5))
	w.waitKnows("us", "eu", "A", 5)
	w.waitKnows("eu", "us", "B", 5)

	w.cut("us")
	w.mustDo("eu", restock("A", 1)) // its broadcast cannot reach us
	w.mustDo("us", restock("B", 1)) // dropped: us is not connected
	w.heal("us")
	var euSeq, usSeq uint64
	w.inspect("eu", func(n *escrow.Node) { euSeq = n.Seq() })
	w.inspect("us", func(n *escrow.Node) { usSeq = n.Seq() })
	took := testutil.WaitFor(t, 10*time.Second, func() bool {
		var usSeesEU, euSeesUS uint64
		w.inspect("us", func(n *escrow.Node) { usSeesEU = n.PeerSeq("eu") })
		w.inspect("eu", func(n *escrow.Node) { euSeesUS = n.PeerSeq("us") })
		return usSeesEU >= euSeq && euSeesUS >= usSeq
	}, func() string {
		var usSeesEU, euSeesUS uint64
		w.inspect("us", func(n *escrow.Node) { usSeesEU = n.PeerSeq("eu") })
		w.inspect("eu", func(n *escrow.Node) { euSeesUS = n.PeerSeq("us") })
		return fmt.Sprintf("after the reconnect us has eu's rows up to %d of %d, eu has us's up to %d of %d",
			usSeesEU, euSeq, euSeesUS, usSeq)
	})
	t.Logf("both regions caught up %v after the reconnect", took)
	for _, sku := range []string{"A", "B"} {
		w.waitConverged(sku, 5*time.Second)
	}
}
