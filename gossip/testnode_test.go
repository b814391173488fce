package gossip

import (
	"context"
	"errors"
	"fmt"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/internal/faultproxy"
)

// testNode is a minimal region runtime for gossip tests: one goroutine owns
// an escrow.Node, steps it with commands, peer messages and 10 ms ticks,
// "persists" in memory and hands rd.Send to the transport. It is what
// package region does, without Pebble and HTTP.
type testNode struct {
	t      testing.TB
	region string
	node   *escrow.Node
	trp    atomic.Pointer[Transport]
	msgs   chan escrow.Message
	cmds   chan cmdReq
	insp   chan func(*escrow.Node)
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	closed bool
}

type cmdReq struct {
	cmd   escrow.Command
	reply chan escrow.Reply
}

func newTestNode(t testing.TB, cfg escrow.Config) *testNode {
	t.Helper()
	n, err := escrow.NewNode(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{t: t, region: cfg.Region, node: n, msgs: make(chan escrow.Message, 4096),
		cmds: make(chan cmdReq, 1024), insp: make(chan func(*escrow.Node)), stop: make(chan struct{}), done: make(chan struct{})}
	go tn.loop()
	return tn
}

func (tn *testNode) loop() {
	defer close(tn.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var reqID uint64
	waiting := map[uint64]chan escrow.Reply{}
	for {
		select {
		case <-tn.stop:
			return
		case m := <-tn.msgs:
			_ = tn.node.Step(escrow.Input{Now: time.Now(), Msg: &m})
		case c := <-tn.cmds:
			reqID++
			c.cmd.ReqID = reqID
			waiting[reqID] = c.reply
			tn.node.Step(escrow.Input{Now: time.Now(), Cmd: &c.cmd})
		case f := <-tn.insp:
			f(tn.node)
			continue
		case <-tick.C:
			tn.node.Step(escrow.Input{Now: time.Now()})
		}
		for tn.node.HasReady() {
			rd := tn.node.Ready()
			if tr := tn.trp.Load(); tr != nil {
				tr.Send(rd.Send)
			}
			for _, r := range rd.Reply {
				if ch := waiting[r.ReqID]; ch != nil {
					delete(waiting, r.ReqID)
					ch <- r
				}
			}
			tn.node.Advance()
		}
	}
}

func (tn *testNode) Deliver(m escrow.Message) {
	select {
	case tn.msgs <- m:
	default:
	}
}

func (tn *testNode) Execute(ctx context.Context, cmd escrow.Command) (escrow.Reply, error) {
	ch := make(chan escrow.Reply, 1)
	select {
	case tn.cmds <- cmdReq{cmd: cmd, reply: ch}:
	case <-ctx.Done():
		return escrow.Reply{}, ctx.Err()
	case <-tn.stop:
		return escrow.Reply{}, errors.New("node stopped")
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return escrow.Reply{}, ctx.Err()
	case <-tn.stop:
		return escrow.Reply{}, errors.New("node stopped")
	}
}

// Do runs cmd here, forwarding hold operations on other regions' holds
// like the region runtime does.
func (tn *testNode) Do(ctx context.Context, cmd escrow.Command) (escrow.Reply, error) {
	if cmd.HoldID != "" {
		if owner, err := escrow.OwnerOf(cmd.HoldID); err == nil && owner != tn.region {
			return tn.trp.Load().Forward(ctx, owner, cmd)
		}
	}
	return tn.Execute(ctx, cmd)
}

func (tn *testNode) inspect(f func(*escrow.Node)) {
	done := make(chan struct{})
	tn.insp <- func(n *escrow.Node) { f(n); close(done) }
	<-done
}

func (tn *testNode) view(sku string) escrow.View {
	var v escrow.View
	tn.inspect(func(n *escrow.Node) { v = n.View(sku) })
	return v
}

func (tn *testNode) Close() {
	tn.mu.Lock()
	if tn.closed {
		tn.mu.Unlock()
		return
	}
	tn.closed = true
	tn.mu.Unlock()
	if tr := tn.trp.Load(); tr != nil {
		_ = tr.Close()
	}
	close(tn.stop)
	<-tn.done
}

// testCluster is an embedded NATS server and regions connected to it, each
// through its own fault-injecting proxy.
type testCluster struct {
	t       testing.TB
	srv     *server.Server
	url     string
	cluster string
	nodes   map[string]*testNode
	proxies map[string]*faultproxy.Proxy
	keys    *testKeys      // set before add: a signed cluster
	wire    map[string]int // set before add: a region's Config.WireVersion
}

func newTestCluster(t testing.TB, regions ...string) *testCluster {
	t.Helper()
	return newTestClusterKeys(t, nil, regions...)
}

// newTestClusterKeys is newTestCluster, signed with keys when not nil.
func newTestClusterKeys(t testing.TB, keys *testKeys, regions ...string) *testCluster {
	t.Helper()
	srv, url := testutil.NATS(t)
	tc := &testCluster{t: t, srv: srv, url: url, cluster: "test", nodes: map[string]*testNode{}, proxies: map[string]*faultproxy.Proxy{}, keys: keys}
	t.Cleanup(func() {
		for _, n := range tc.nodes {
			n.Close()
		}
		for _, p := range tc.proxies {
			_ = p.Close()
		}
	})
	for _, r := range regions {
		tc.add(r, escrow.Config{Region: r, DigestInterval: 100 * time.Millisecond, RepairTimeout: 200 * time.Millisecond})
	}
	return tc
}

func (tc *testCluster) add(region string, ecfg escrow.Config) *testNode {
	t := tc.t
	t.Helper()
	p := tc.proxies[region]
	if p == nil {
		var err error
		p, err = faultproxy.New("127.0.0.1:0", tc.srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		tc.proxies[region] = p
	}
	tn := newTestNode(t, ecfg)
	var keys *Keyring
	if tc.keys != nil {
		keys = tc.keys.ring(t, region)
	}
	tr, err := Connect(context.Background(), Config{URL: p.URL(), Cluster: tc.cluster, Region: region, Keys: keys,
		ReconnectWait: 50 * time.Millisecond, ForwardTimeout: 500 * time.Millisecond, Logger: quietLog(),
		WireVersion: tc.wire[region]}, tn)
	if err != nil {
		tn.Close()
		t.Fatal(err)
	}
	tn.trp.Store(tr)
	tc.nodes[region] = tn
	return tn
}

func (tc *testCluster) do(region string, cmd escrow.Command) escrow.Reply {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := tc.nodes[region].Do(ctx, cmd)
	if err != nil {
		tc.t.Fatalf("%s %s: %v", region, cmd.Kind, err)
	}
	return r
}

// converged reports whether every node sees the same rows of sku, with
// conservation, and a description otherwise.
func (tc *testCluster) converged(sku string) (bool, string) {
	var first escrow.View
	var firstName string
	for name, n := range tc.nodes {
		v := n.view(sku)
		if err := v.CheckConservation(); err != nil {
			return false, fmt.Sprintf("%s: %v", name, err)
		}
		if first == nil {
			first, firstName = v, name
			continue
		}
		if len(v) != len(first) {
			return false, fmt.Sprintf("%s knows %d rows, %s knows %d", name, len(v), firstName, len(first))
		}
		for r, row := range first {
			o := v[r]
			if o == nil || !o.Equal(row) {
				return false, fmt.Sprintf("row %s differs: %s has %+v, %s has %+v", r, firstName, row, name, o)
			}
		}
	}
	return true, ""
}

func (tn *testNode) tr() *Transport { return tn.trp.Load() }
