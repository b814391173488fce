package gossip

import (
	"context"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// chaosInbox duplicates and reorders what the transport delivers: each
// message is delivered now or after a short random delay, and some twice.
type chaosInbox struct {
	*testNode
	mu   sync.Mutex
	rng  *rand.Rand
	dups atomic.Int64
	wg   sync.WaitGroup
}

func (c *chaosInbox) Deliver(m escrow.Message) {
	c.mu.Lock()
	x := c.rng.IntN(10)
	delay := time.Duration(c.rng.IntN(20)) * time.Millisecond
	c.mu.Unlock()
	if x < 3 {
		c.dups.Add(1)
		c.testNode.Deliver(m) // once now, once again later
	}
	if x < 6 {
		c.wg.Add(1)
		time.AfterFunc(delay, func() { defer c.wg.Done(); c.testNode.Deliver(m) })
		return
	}
	c.testNode.Deliver(m)
}

// TestDuplicatesAndReordering: with every region's deliveries duplicated
// and reordered, one unit still goes to exactly one of many shoppers, a
// borrow still works, and the regions converge with conservation.
func TestDuplicatesAndReordering(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	srv, _ := testutil.NATS(t)
	tc := &testCluster{t: t, srv: srv, cluster: "chaos", nodes: map[string]*testNode{}}
	var inboxes []*chaosInbox
	for i, r := range []string{"eu", "us", "ap"} {
		tn := newTestNode(t, escrow.Config{Region: r, DigestInterval: 50 * time.Millisecond, RepairTimeout: 100 * time.Millisecond})
		in := &chaosInbox{testNode: tn, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
		tr, err := Connect(context.Background(), Config{URL: srv.ClientURL(), Cluster: tc.cluster, Region: r, Logger: quietLog()}, in)
		if err != nil {
			t.Fatal(err)
		}
		tn.trp.Store(tr)
		tc.nodes[r] = tn
		inboxes = append(inboxes, in)
	}
	defer func() {
		for _, in := range inboxes {
			_ = in.testNode.tr().Close() // no new deliveries, so no new timers
			in.wg.Wait()
			in.testNode.Close()
		}
	}()
	tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1})
	tc.do("ap", escrow.Command{Kind: escrow.CmdRestock, SKU: "B", Qty: 5})
	tc.waitKnows("us", "eu", "A", 5*time.Second)
	tc.waitKnows("ap", "eu", "A", 5*time.Second)
	tc.waitKnows("us", "ap", "B", 5*time.Second)
	var granted atomic.Int64
	var wg sync.WaitGroup
	names := []string{"eu", "us", "ap"}
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := tc.nodes[names[i%3]].Do(ctx, holdCmd("A", 1))
			if err != nil {
				t.Error(err)
				return
			}
			if r.Err == nil {
				granted.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if granted.Load() != 1 {
		t.Fatalf("seed %d: %d holds granted for 1 unit", seed, granted.Load())
	}
	// us borrows B from ap, one unit at a time, through duplicated answers.
	got := 0
	for i := 0; i < 8; i++ {
		if r := tc.do("us", holdCmd("B", 1)); r.Err == nil {
			got++
		}
	}
	if got > 5 {
		t.Fatalf("seed %d: %d units of B held, 5 exist", seed, got)
	}
	for _, sku := range []string{"A", "B"} {
		testutil.WaitFor(t, 10*time.Second, func() bool { ok, _ := tc.converged(sku); return ok },
			func() string { _, why := tc.converged(sku); return sku + ": " + why })
	}
	if tot := tc.nodes["eu"].view("B").Totals(); tot.Held != int64(got) || tot.Minted != 5 {
		t.Fatalf("seed %d: B totals %+v with %d holds", seed, tot, got)
	}
	var dups int64
	for _, in := range inboxes {
		dups += in.dups.Load()
	}
	t.Logf("seed %d: %d duplicated deliveries; %d of 8 holds of B granted at us", seed, dups, got)
	if dups == 0 {
		t.Fatal("no duplicate was delivered: the test tested nothing")
	}
}
