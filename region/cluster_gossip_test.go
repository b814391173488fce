package region_test

import (
	"errors"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/internal/faultproxy"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/region"
)

// TestMultiRegionRoutePartition is the partition as it happens between
// real regions: every region stays connected to its local NATS server and
// the link between the servers (a cluster route through a proxy) is cut,
// so messages vanish silently instead of failing to publish. Each side
// grants at most what it owns, holds answer within the borrow deadline, a
// forwarded operation answers "unreachable", and after heal the regions
// converge with every acknowledged hold intact.
func TestMultiRegionRoutePartition(t *testing.T) {
	a := testutil.NATSRouted(t, "a", "")
	route, err := faultproxy.New("127.0.0.1:0", a.ClusterAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer route.Close()
	b := testutil.NATSRouted(t, "b", route.Addr())
	routed := func() bool { return a.NumRoutes() > 0 && b.NumRoutes() > 0 }
	testutil.WaitFor(t, 10*time.Second, routed, func() string { return "servers never routed" })

	w := newMRWorld(t)
	w.natsAddr = map[string]string{"eu": a.Addr().String(), "us": a.Addr().String(), "ap": b.Addr().String()}
	for _, n := range []string{"eu", "us", "ap"} {
		w.start(n)
	}
	w.mustDo("eu", restock("A", 3))
	w.mustDo("ap", restock("A", 3))
	for _, n := range []string{"eu", "us", "ap"} {
		w.waitKnows(n, "eu", "A", 3)
		w.waitKnows(n, "ap", "A", 3)
	}
	r := w.mustDo("ap", hold("A", 1))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	apHold := r.Hold.ID

	route.Cut()
	testutil.WaitFor(t, 10*time.Second, func() bool { return a.NumRoutes() == 0 && b.NumRoutes() == 0 },
		func() string { return "route still up" })
	for _, n := range []string{"eu", "us", "ap"} {
		if !w.sites[n].tr.Connected() {
			t.Fatalf("%s lost its local NATS connection", n)
		}
	}
	owned := map[string]uint64{}
	for _, n := range []string{"eu", "us", "ap"} {
		w.inspect(n, func(node *escrow.Node) { owned[n] = node.Available("A") })
	}
	granted := map[string]uint64{}
	var held []string
	var maxLat time.Duration
	for i := 0; i < 12; i++ {
		n := []string{"eu", "us", "ap"}[i%3]
		start := time.Now()
		r := w.mustDo(n, hold("A", 1))
		maxLat = max(maxLat, time.Since(start))
		if r.Err == nil {
			granted[n]++
			held = append(held, r.Hold.ID)
		}
	}
	t.Logf("route partition: owned %v, granted %v, max hold latency %v", owned, granted, maxLat)
	if granted["ap"] > owned["ap"] || granted["eu"]+granted["us"] > owned["eu"]+owned["us"] {
		t.Fatalf("oversold: owned %v, granted %v", owned, granted)
	}
	if granted["ap"] != owned["ap"] || granted["eu"]+granted["us"] != owned["eu"]+owned["us"] {
		t.Errorf("stranded units: owned %v, granted %v", owned, granted)
	}
	if limit := escrow.DefaultBorrowTO + 400*time.Millisecond; maxLat > limit {
		t.Errorf("hold latency %v over the borrow deadline + slack %v", maxLat, limit)
	}
	if _, err := w.do("eu", escrow.Command{Kind: escrow.CmdConfirm, HoldID: apHold}); err == nil {
		t.Fatal("confirm of ap's hold at eu succeeded across the partition")
	} else if !errors.Is(err, region.ErrOwnerUnreachable) {
		t.Fatalf("confirm across the partition: %v", err)
	}

	route.Heal()
	healStart := time.Now()
	testutil.WaitFor(t, 10*time.Second, routed, func() string { return "route did not come back" })
	w.waitConverged("A", 15*time.Second)
	t.Logf("converged %v after heal (route re-established by the servers first)", time.Since(healStart))
	if rep := w.mustDo("eu", escrow.Command{Kind: escrow.CmdConfirm, HoldID: apHold}); rep.Err != nil || rep.Hold.State != escrow.Confirmed {
		t.Fatalf("confirm after heal: %+v %v", rep.Hold, rep.Err)
	}
	for _, id := range held {
		rep := w.mustDo("us", escrow.Command{Kind: escrow.CmdGet, HoldID: id})
		if rep.Err != nil || rep.Hold.State != escrow.Held {
			t.Fatalf("acknowledged hold %s: %+v %v", id, rep.Hold, rep.Err)
		}
	}
	w.waitConverged("A", 5*time.Second)
	tot := w.view("us", "A").Totals()
	if tot.Minted != 6 || tot.Sold != 1 || tot.Held != int64(len(held)) || tot.Available != 6-1-int64(len(held)) {
		t.Fatalf("totals %+v with %d holds acknowledged", tot, len(held))
	}
}
