package gossip

import (
	"context"
	"errors"
	"fmt"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/internal/faultproxy"
	"github.com/holdfast-io/holdfast/region"
)

func holdCmd(sku string, qty uint64) escrow.Command {
	return escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: sku, Qty: qty}}, TTL: time.Minute}
}

// waitKnows waits until region knows sku's row of writer at least at seq.
func (tc *testCluster) waitKnows(region, writer, sku string, within time.Duration) {
	tc.t.Helper()
	testutil.WaitFor(tc.t, within, func() bool {
		v := tc.nodes[region].view(sku)
		return v != nil && v[writer] != nil && v[writer].Minted > 0
	}, func() string { return fmt.Sprintf("%s never learned %s's row of %s", region, writer, sku) })
}

func TestBorrowLastUnitOverNATS(t *testing.T) {
	tc := newTestCluster(t, "eu", "us", "ap")
	if r := tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1}); r.Err != nil {
		t.Fatal(r.Err)
	}
	tc.waitKnows("us", "eu", "A", 5*time.Second)
	r := tc.do("us", holdCmd("A", 1))
	if r.Err != nil || r.Hold == nil {
		t.Fatalf("hold at us: %+v", r.Err)
	}
	if owner, _ := escrow.OwnerOf(r.Hold.ID); owner != "us" {
		t.Fatalf("hold %s not owned by us", r.Hold.ID)
	}
	if r2 := tc.do("ap", holdCmd("A", 1)); r2.Err == nil || r2.Err.Code != escrow.CodeInsufficientStock {
		t.Fatalf("second hold at ap: %+v", r2)
	}
	// Forwarding: confirm us's hold from ap.
	c := tc.do("ap", escrow.Command{Kind: escrow.CmdConfirm, HoldID: r.Hold.ID})
	if c.Err != nil || c.Hold == nil || c.Hold.State != escrow.Confirmed {
		t.Fatalf("forwarded confirm: %+v err=%v", c, c.Err)
	}
	testutil.WaitFor(t, 5*time.Second, func() bool { ok, _ := tc.converged("A"); return ok },
		func() string { _, why := tc.converged("A"); return why })
}

func TestOneUnitManyShoppers(t *testing.T) {
	tc := newTestCluster(t, "eu", "us", "ap")
	tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1})
	tc.waitKnows("us", "eu", "A", 5*time.Second)
	tc.waitKnows("ap", "eu", "A", 5*time.Second)
	regions := []string{"eu", "us", "ap"}
	var granted, rejected atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := tc.nodes[regions[i%3]].Do(ctx, holdCmd("A", 1))
			switch {
			case err != nil:
				t.Error(err)
			case r.Err == nil:
				granted.Add(1)
			case r.Err.Code == escrow.CodeInsufficientStock:
				rejected.Add(1)
			default:
				t.Error(r.Err)
			}
		}(i)
	}
	wg.Wait()
	if granted.Load() != 1 || rejected.Load() != 99 {
		t.Fatalf("granted %d, rejected %d; want 1 and 99", granted.Load(), rejected.Load())
	}
	testutil.WaitFor(t, 5*time.Second, func() bool { ok, _ := tc.converged("A"); return ok },
		func() string { _, why := tc.converged("A"); return why })
}

func TestForwardUnreachable(t *testing.T) {
	tc := newTestCluster(t, "eu", "us")
	tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1})
	r := tc.do("eu", holdCmd("A", 1))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	tc.proxies["eu"].Cut()
	testutil.WaitFor(t, 5*time.Second, func() bool { return !tc.nodes["eu"].tr().Connected() }, func() string { return "eu still connected" })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := tc.nodes["us"].Do(ctx, escrow.Command{Kind: escrow.CmdGet, HoldID: r.Hold.ID})
	if !errors.Is(err, region.ErrUnreachable) {
		t.Fatalf("forward to a cut-off owner: %v", err)
	}
	t.Logf("unreachable owner answered in %v", time.Since(start))
	// A region that is itself cut off answers at once.
	_, err = tc.nodes["eu"].tr().Forward(ctx, "us", escrow.Command{Kind: escrow.CmdGet, HoldID: "us-0123456789abcdefgh"})
	if !errors.Is(err, region.ErrUnreachable) {
		t.Fatalf("forward from a cut-off region: %v", err)
	}
	tc.proxies["eu"].Heal()
	testutil.WaitFor(t, 5*time.Second, func() bool {
		_, err := tc.nodes["us"].Do(ctx, escrow.Command{Kind: escrow.CmdGet, HoldID: r.Hold.ID})
		return err == nil
	}, func() string { return "forward after heal still fails" })
}

// TestPartitionAndHeal cuts ap off, lets both sides sell, heals, and
// checks that each side sold at most what it owned, that the regions
// converge with conservation, and that no acknowledged hold was lost.
func TestPartitionAndHeal(t *testing.T) {
	tc := newTestCluster(t, "eu", "us", "ap")
	tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 4})
	tc.do("ap", escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 2})
	tc.waitKnows("us", "eu", "A", 5*time.Second)
	tc.waitKnows("us", "ap", "A", 5*time.Second)
	tc.proxies["ap"].Cut()
	testutil.WaitFor(t, 5*time.Second, func() bool { return !tc.nodes["ap"].tr().Connected() }, func() string { return "ap still connected" })
	var held []string
	grantedAP, grantedMain := 0, 0
	for i := 0; i < 5; i++ {
		if r := tc.do("ap", holdCmd("A", 1)); r.Err == nil {
			grantedAP++
			held = append(held, r.Hold.ID)
		}
		for _, reg := range []string{"eu", "us"} {
			start := time.Now()
			r := tc.do(reg, holdCmd("A", 1))
			if d := time.Since(start); d > escrow.DefaultBorrowTO+200*time.Millisecond {
				t.Errorf("hold at %s took %v during the partition", reg, d)
			}
			if r.Err == nil {
				grantedMain++
				held = append(held, r.Hold.ID)
			}
		}
	}
	if grantedAP != 2 || grantedMain != 4 {
		t.Fatalf("during the partition ap granted %d (owns 2), eu+us granted %d (own 4)", grantedAP, grantedMain)
	}
	tc.proxies["ap"].Heal()
	start := time.Now()
	testutil.WaitFor(t, 10*time.Second, func() bool { ok, _ := tc.converged("A"); return ok },
		func() string { _, why := tc.converged("A"); return why })
	t.Logf("converged %v after heal", time.Since(start))
	for _, id := range held {
		owner, _ := escrow.OwnerOf(id)
		r := tc.do(owner, escrow.Command{Kind: escrow.CmdGet, HoldID: id})
		if r.Err != nil || r.Hold.State != escrow.Held {
			t.Fatalf("acknowledged hold %s: %+v", id, r)
		}
	}
	v := tc.nodes["eu"].view("A")
	if tot := v.Totals(); tot.Held != 6 || tot.Available != 0 {
		t.Fatalf("after heal: %+v", tot)
	}
}

// TestMissedMessagesCatchUp: a region that missed row deltas while cut off
// learns them after heal through digests and repair.
func TestMissedMessagesCatchUp(t *testing.T) {
	tc := newTestCluster(t, "eu", "us")
	tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1})
	tc.waitKnows("us", "eu", "A", 5*time.Second)
	tc.proxies["us"].Cut()
	testutil.WaitFor(t, 5*time.Second, func() bool { return !tc.nodes["us"].tr().Connected() }, func() string { return "us still connected" })
	for i := 0; i < 20; i++ {
		tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: fmt.Sprintf("S%02d", i), Qty: 3})
	}
	tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1})
	tc.proxies["us"].Heal()
	testutil.WaitFor(t, 10*time.Second, func() bool {
		var seq, peer uint64
		tc.nodes["eu"].inspect(func(n *escrow.Node) { seq = n.Seq() })
		tc.nodes["us"].inspect(func(n *escrow.Node) { peer = n.PeerSeq("eu") })
		return peer == seq
	}, func() string { return "us never caught up with eu" })
	for _, sku := range []string{"A", "S00", "S19"} {
		if ok, why := tc.converged(sku); !ok {
			t.Fatalf("%s: %s", sku, why)
		}
	}
}

func TestProxyCutHeal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p, err := faultproxy.New("127.0.0.1:0", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	echo := func() error {
		c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "ping" {
			return fmt.Errorf("echo %q", buf)
		}
		return nil
	}
	if err := echo(); err != nil {
		t.Fatal(err)
	}
	c, _ := net.Dial("tcp", p.Addr())
	_, _ = c.Write([]byte("x"))
	b := make([]byte, 1)
	_, _ = io.ReadFull(c, b)
	p.Cut()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(b); err == nil {
		t.Fatal("open connection survived Cut")
	}
	c.Close()
	if err := echo(); err == nil {
		t.Fatal("echo through a cut proxy")
	}
	p.Heal()
	if err := echo(); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}

// TestConnectBeforeServer: a region started while NATS is down keeps
// retrying in the background and joins once the server is up.
func TestConnectBeforeServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close() // the port is free; nothing listens yet
	in := &captureInbox{}
	tr, err := Connect(context.Background(), Config{URL: fmt.Sprintf("nats://127.0.0.1:%d", addr.Port), Cluster: "c",
		Region: "eu", ReconnectWait: 20 * time.Millisecond, Logger: quietLog()}, in)
	if err != nil {
		t.Fatalf("connect with the server down: %v", err)
	}
	defer tr.Close()
	if tr.Connected() {
		t.Fatal("connected to nothing")
	}
	tr.Send([]escrow.Message{{Type: escrow.MsgDigest, From: "eu", Seq: 1}}) // dropped, counted, no block
	if v := counterValue(tr.m.dropped.WithLabelValues("disconnected")); v != 1 {
		t.Fatalf("dropped while disconnected = %v", v)
	}
	srv, _, err := RunEmbedded(EmbeddedOptions{Host: "127.0.0.1", Port: addr.Port})
	if err != nil {
		t.Skipf("port %d taken meanwhile: %v", addr.Port, err)
	}
	defer srv.Shutdown()
	testutil.WaitFor(t, 10*time.Second, tr.Connected, func() string { return "never connected" })
}
