package rebalancer_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/rebalancer"
	"github.com/holdfast-io/holdfast/region"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type testRegion struct {
	r  *region.Region
	tr *gossip.Transport
}

func openRegion(t *testing.T, ctx context.Context, url, cluster, name string) *testRegion {
	t.Helper()
	st, err := region.OpenStore(t.TempDir(), region.StoreOptions{Region: name, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := region.Open(ctx, region.Config{Name: name, Storage: st, Cluster: cluster, Logger: quiet(),
		TickInterval: 10 * time.Millisecond,
		Escrow: escrow.Config{
			// Fast digests and a short demand memory keep the test short;
			// no top-up, so only the rebalancer moves stock in the
			// background and only borrows move it on the hold path.
			DigestInterval: 100 * time.Millisecond,
			DemandTau:      5 * time.Second,
			BorrowTimeout:  time.Second, // loopback, but a loaded CI machine
			TopUpHorizon:   -1,
		}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := gossip.AttachRegion(ctx, r, gossip.Config{URL: url, Cluster: cluster, Region: name, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tr.Close()
		_ = r.Close()
		_ = st.Close()
	})
	return &testRegion{r: r, tr: tr}
}

func (tr *testRegion) do(t *testing.T, cmd escrow.Command) escrow.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := tr.r.Do(ctx, cmd)
	if err != nil {
		t.Fatalf("%s %s: %v", tr.r.Name(), cmd.Kind, err)
	}
	return rep
}

func (tr *testRegion) hold(t *testing.T, sku string, qty uint64) escrow.Reply {
	t.Helper()
	return tr.do(t, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: sku, Qty: qty}}, TTL: 10 * time.Minute})
}

func (tr *testRegion) view(t *testing.T, sku string) escrow.View {
	t.Helper()
	var v escrow.View
	if err := tr.r.Inspect(context.Background(), func(n *escrow.Node) { v = n.View(sku) }); err != nil {
		t.Fatal(err)
	}
	return v
}

// threeRegions starts an embedded NATS server on loopback and three real
// regions on it (hot, cold_a, cold_b), restocks SKU A at each with the
// units given, and waits until every region knows every row, so that no
// region later borrows from a peer it has not heard of yet. They stop when
// the test ends.
func threeRegions(t *testing.T, cluster string, stockA map[string]uint64) (context.Context, context.CancelFunc, string, map[string]*testRegion) {
	t.Helper()
	_, url := testutil.NATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	regs := map[string]*testRegion{}
	for _, n := range []string{"hot", "cold_a", "cold_b"} {
		regs[n] = openRegion(t, ctx, url, cluster, n)
	}
	for n, q := range stockA {
		if rep := regs[n].do(t, escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: q}); rep.Err != nil {
			t.Fatal(rep.Err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "rows to spread", func() bool {
		for _, r := range regs {
			if len(r.view(t, "A")) != len(stockA) {
				return false
			}
		}
		return true
	})
	return ctx, cancel, url, regs
}

// TestRegionsFollowAdvice runs three real regions (Pebble, gossip) on an
// embedded NATS server. With the daemon running, stock drifts from the
// cold regions toward the hot one without any borrow on the hold path;
// with the daemon killed, holds and borrows go on.
func TestRegionsFollowAdvice(t *testing.T) {
	const cluster = "itest"
	ctx, _, url, regs := threeRegions(t, cluster, map[string]uint64{"hot": 100, "cold_a": 100, "cold_b": 100})
	hot, coldA, coldB := regs["hot"], regs["cold_a"], regs["cold_b"]

	// Demand at hot only, within its own slice: 40 units.
	for range 40 {
		if rep := hot.hold(t, "A", 1); rep.Err != nil {
			t.Fatalf("hold at hot: %v", rep.Err)
		}
	}
	dctx, stopDaemon := context.WithCancel(ctx)
	daemonDone := make(chan error, 1)
	go func() {
		daemonDone <- rebalancer.Run(dctx, rebalancer.Config{NATSURL: url, Cluster: cluster, Interval: 100 * time.Millisecond,
			Settle: 500 * time.Millisecond, Logger: quiet()})
	}()
	// Stock drifts toward hot: the cold regions send it units by advice.
	testutil.Eventually(t, 20*time.Second, "stock to move toward the hot region", func() bool {
		v := hot.view(t, "A")
		return v.Received("hot") >= 100
	})
	if s := hot.r.Stats(); s.BorrowsSent != 0 {
		t.Fatalf("hot borrowed %d times: the units should have come by advice", s.BorrowsSent)
	}
	// cold_b's 100 units alone can meet the condition above (cold regions
	// have no demand, so their target is 0), before cold_a has stepped the
	// same advice or while its digest was not yet in a round: wait for it.
	testutil.Eventually(t, 10*time.Second, "cold_a to apply advice", func() bool { return coldA.r.Stats().AdviceApplied > 0 })

	stopDaemon()
	if err := <-daemonDone; err != nil {
		t.Fatal(err)
	}
	// Without the daemon: a cold region that gave its stock away still
	// grants, by borrowing on the hold path.
	testutil.Eventually(t, 10*time.Second, "cold_b to see what it gave", func() bool {
		return coldB.view(t, "A").Received("hot") >= 100
	})
	coldAvail := coldB.view(t, "A").Available("cold_b")
	before := coldB.r.Stats().BorrowsSent
	for range int(coldAvail) + 5 {
		if rep := coldB.hold(t, "A", 1); rep.Err != nil {
			t.Fatalf("hold at cold_b with the daemon down: %v", rep.Err)
		}
	}
	if s := coldB.r.Stats(); s.BorrowsSent == before {
		t.Fatalf("cold_b granted %d units with %d of its own and no borrow", int(coldAvail)+5, coldAvail)
	}
	if rep := hot.hold(t, "A", 1); rep.Err != nil {
		t.Fatalf("hold at hot with the daemon down: %v", rep.Err)
	}
	for name, r := range regs {
		if err := r.view(t, "A").CheckConservation(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// TestDaemonHomesScarceSKU runs the daemon with three real regions: A is
// scarce under the policy (any demand over a one-hour horizon exceeds its
// 8 units), so the daemon names hot, the only region with demand, its
// home. The cold regions send hot their units and route their holds of A
// there: a hold at cold_a is granted with a hold of hot, a confirm at
// cold_b is forwarded to hot, and at sell-out every region answers 409.
func TestDaemonHomesScarceSKU(t *testing.T) {
	const cluster = "homes"
	ctx, cancel, url, regs := threeRegions(t, cluster, map[string]uint64{"hot": 2, "cold_a": 3, "cold_b": 3})
	hot, coldA, coldB := regs["hot"], regs["cold_a"], regs["cold_b"]
	// Demand at hot only, from its own slice.
	for range 2 {
		if rep := hot.hold(t, "A", 1); rep.Err != nil {
			t.Fatalf("hold at hot: %v", rep.Err)
		}
	}
	policy := escrow.DefaultRebalancePolicy()
	policy.ScarceHorizon = time.Hour
	var homes atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- rebalancer.Run(ctx, rebalancer.Config{NATSURL: url, Cluster: cluster, Interval: 100 * time.Millisecond,
			Policy: policy, Logger: quiet(),
			OnRound: func(adv escrow.Message, published bool) {
				if published {
					homes.Store(int64(len(adv.Homes)))
				}
			}})
	}()
	for n, r := range regs {
		testutil.Eventually(t, 10*time.Second, n+" to put hot in force as the home of A", func() bool {
			var hs []escrow.Home
			if err := r.r.Inspect(context.Background(), func(node *escrow.Node) { hs = node.Homes() }); err != nil {
				t.Fatal(err)
			}
			return len(hs) == 1 && hs[0] == escrow.Home{SKU: "A", Region: "hot"}
		})
	}
	if homes.Load() != 1 {
		t.Fatalf("last advice named %d homes", homes.Load())
	}
	testutil.Eventually(t, 10*time.Second, "the cold regions' units to reach hot", func() bool {
		return hot.view(t, "A").Available("hot") == 6
	})
	rep := coldA.hold(t, "A", 1)
	if rep.Err != nil || !strings.HasPrefix(rep.Hold.ID, "hot-") {
		t.Fatalf("hold at cold_a: %+v %v, want a hold of hot", rep.Hold, rep.Err)
	}
	if rep := coldB.do(t, escrow.Command{Kind: escrow.CmdConfirm, HoldID: rep.Hold.ID}); rep.Err != nil || rep.Hold.State != escrow.Confirmed {
		t.Fatalf("confirm at cold_b: %+v %v", rep.Hold, rep.Err)
	}
	for i := range 5 {
		r := []*testRegion{coldB, coldA, hot}[i%3]
		if rep := r.hold(t, "A", 1); rep.Err != nil || !strings.HasPrefix(rep.Hold.ID, "hot-") {
			t.Fatalf("hold %d at %s: %+v %v, want a hold of hot", i, r.r.Name(), rep.Hold, rep.Err)
		}
	}
	for n, r := range regs {
		if rep := r.hold(t, "A", 1); rep.Err == nil || rep.Err.Code != escrow.CodeInsufficientStock {
			t.Fatalf("hold at %s after sell-out: %+v %v, want insufficient stock", n, rep.Hold, rep.Err)
		}
	}
	if s := coldA.r.Stats(); s.Routed == 0 || s.HomeUnitsSent != 3 {
		t.Fatalf("cold_a: routed %d, sent %d units home (want > 0, 3)", s.Routed, s.HomeUnitsSent)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for name, r := range regs {
		if err := r.view(t, "A").CheckConservation(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
