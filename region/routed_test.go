package region

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/holdfast-io/holdfast/escrow"
)

// Routed holds with the fake transport: region eu knows that us has 5
// units of A (a rows message from us) and has an advice naming us the
// home of A, so a hold of A that eu cannot cover is routed to us.

const homeHoldID = "us-0123456789abcdefgh"

// forwardLog records the commands a fake transport was asked to forward.
type forwardLog struct {
	mu     sync.Mutex
	owners []string
	cmds   []escrow.Command
}

func (l *forwardLog) add(owner string, cmd escrow.Command) {
	l.mu.Lock()
	l.owners = append(l.owners, owner)
	l.cmds = append(l.cmds, cmd)
	l.mu.Unlock()
}

func (l *forwardLog) all() ([]string, []escrow.Command) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.owners...), append([]escrow.Command(nil), l.cmds...)
}

// openHomed opens eu with tr attached and waits until the home of A (us)
// is in force.
func openHomed(t *testing.T, tr Transport) *Region {
	t.Helper()
	r := openMem(t, newMemStorage(), func(c *Config) {
		c.TickInterval = 5 * time.Millisecond
		// Nothing lapses while the test runs on a loaded machine: the home
		// (HomeTTL) and us, heard once (PeerSilence).
		c.Escrow.HomeTTL = time.Minute
		c.Escrow.PeerSilence = time.Minute
		c.Escrow.BorrowTimeout = 100 * time.Millisecond
	})
	r.AttachTransport(tr)
	r.Deliver(escrow.Message{Type: escrow.MsgRows, From: "us", PrevSeq: 0, Seq: 1,
		Rows: []escrow.Row{{SKU: "A", Region: "us", Seq: 1, Minted: 5}}})
	r.Deliver(escrow.Message{Type: escrow.MsgAdvice, From: "rebalancer", Epoch: 1,
		Homes: []escrow.Home{{SKU: "A", Region: "us"}}})
	waitFor(t, 5*time.Second, "the home of A in force at eu", func() bool {
		var hs []escrow.Home
		if err := r.Inspect(context.Background(), func(n *escrow.Node) { hs = n.Homes() }); err != nil {
			t.Fatal(err)
		}
		return len(hs) == 1 && hs[0] == escrow.Home{SKU: "A", Region: "us"}
	})
	waitFor(t, 5*time.Second, "the homes gauge", func() bool { return r.homes.Load() == 1 })
	return r
}

func routedCount(r *Region, res int) float64 {
	var m dto.Metric
	if err := r.metrics.routed[res].Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// TestRoutedHoldFallsBackLocally: when the home certainly did not get the
// hold (no responders) it runs at eu with Routed set, as plain escrow: with
// no stock and nobody lending, 409 (never an error because of routing);
// the same with no transport at all.
func TestRoutedHoldFallsBackLocally(t *testing.T) {
	var log forwardLog
	ft := &fakeTransport{forward: func(owner string, cmd escrow.Command) (escrow.Reply, error) {
		log.add(owner, cmd)
		return escrow.Reply{}, fmt.Errorf("%w: %w: us", ErrUnreachable, ErrNoResponders)
	}}
	r := openHomed(t, ft)
	rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, IdemKey: "k2", IdemHash: 7})
	if rep.Err == nil || rep.Err.Code != escrow.CodeInsufficientStock {
		t.Fatalf("fallback with no stock: %+v %v", rep.Hold, rep.Err)
	}
	if owners, cmds := log.all(); len(cmds) != 1 || owners[0] != "us" || !cmds[0].Routed {
		t.Fatalf("forwards: %v %+v", owners, cmds)
	}
	if got := routedCount(r, routedFallback); got != 1 {
		t.Fatalf("routed fallback = %v", got)
	}
	// The local run was plain escrow, except that us, found gone (no
	// responders), is not asked to lend until it speaks again.
	ft.mu.Lock()
	asked := false
	for _, m := range ft.sent {
		asked = asked || m.Type == escrow.MsgBorrowReq && m.To == "us" && m.SKU == "A"
	}
	ft.mu.Unlock()
	if asked {
		t.Fatal("the fallback asked the home that has no responders to lend")
	}

	// us speaks again, so eu routes to it again; without a transport the
	// hold runs here.
	r.Deliver(escrow.Message{Type: escrow.MsgRows, From: "us", PrevSeq: 1, Seq: 2,
		Rows: []escrow.Row{{SKU: "A", Region: "us", Seq: 2, Minted: 5}}})
	waitFor(t, 5*time.Second, "eu hears us again", func() bool {
		var seen uint64
		if err := r.Inspect(context.Background(), func(n *escrow.Node) { seen = n.PeerSeq("us") }); err != nil {
			t.Fatal(err)
		}
		return seen == 2
	})
	r.AttachTransport(nil)
	rep = mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
	if rep.Err == nil || rep.Err.Code != escrow.CodeInsufficientStock {
		t.Fatalf("fallback without transport: %+v %v", rep.Hold, rep.Err)
	}
	if got := routedCount(r, routedFallback); got != 2 {
		t.Fatalf("routed fallback = %v", got)
	}
	if got := routedCount(r, routedBug); got != 0 {
		t.Fatalf("routed bug = %v", got)
	}
}

// TestRoutedHoldHomeGone: a home with no responders at all is reported to
// the node, which serves the next holds itself without trying the home
// again, until the home is heard from.
func TestRoutedHoldHomeGone(t *testing.T) {
	var log forwardLog
	ft := &fakeTransport{forward: func(owner string, cmd escrow.Command) (escrow.Reply, error) {
		log.add(owner, cmd)
		return escrow.Reply{}, fmt.Errorf("%w: %w: %s", ErrUnreachable, ErrNoResponders, owner)
	}}
	r := openHomed(t, ft)
	hold := escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}}
	for i := range 3 {
		if rep := mustDo(t, r, hold); rep.Err == nil || rep.Err.Code != escrow.CodeInsufficientStock {
			t.Fatalf("hold %d: %+v %v", i, rep.Hold, rep.Err)
		}
	}
	if _, cmds := log.all(); len(cmds) != 1 {
		t.Fatalf("%d forwards to a home with no responders, want 1 (then none until it speaks)", len(cmds))
	}
	// us speaks again: holds are routed there again.
	r.Deliver(escrow.Message{Type: escrow.MsgRows, From: "us", PrevSeq: 1, Seq: 2,
		Rows: []escrow.Row{{SKU: "A", Region: "us", Seq: 2, Minted: 6}}})
	waitFor(t, 5*time.Second, "eu to hear from us", func() bool {
		var minted uint64
		if err := r.Inspect(context.Background(), func(n *escrow.Node) {
			if row := n.View("A")["us"]; row != nil {
				minted = row.Minted
			}
		}); err != nil {
			t.Fatal(err)
		}
		return minted == 6
	})
	mustDo(t, r, hold)
	if _, cmds := log.all(); len(cmds) != 2 {
		t.Fatalf("%d forwards after us spoke again, want 2", len(cmds))
	}
}

// lendingTransport is a fake transport whose forwards fail but whose peer
// us lends what eu asks for: the gossip link works, the request/reply to
// us does not (us busy, say).
type lendingTransport struct {
	fakeTransport
	r atomic.Pointer[Region] // set once the region is open
}

func (l *lendingTransport) Send(msgs []escrow.Message) {
	l.fakeTransport.Send(msgs)
	r := l.r.Load()
	for _, m := range msgs {
		if r == nil || m.Type != escrow.MsgBorrowReq || m.To != "us" {
			continue
		}
		r.Deliver(escrow.Message{Type: escrow.MsgBorrowResp, From: "us", To: m.From, ID: m.ID, Qty: m.Qty,
			Rows: []escrow.Row{{SKU: m.SKU, Region: "us", Seq: 2, Minted: 5,
				Sent: []escrow.Transfer{{To: m.From, Qty: m.Qty}}}}})
	}
}

// TestRoutedHoldTimeoutIsUnreachable: when the forward to the home times
// out, the home may have granted the hold, so the hold does not run here
// (that could give the shopper a second hold): the caller gets
// ErrOwnerUnreachable (503), and the retry with the same idempotency key
// goes to the same home again.
func TestRoutedHoldTimeoutIsUnreachable(t *testing.T) {
	var log forwardLog
	ft := &fakeTransport{forward: func(owner string, cmd escrow.Command) (escrow.Reply, error) {
		log.add(owner, cmd)
		return escrow.Reply{}, fmt.Errorf("%w: %s: %v", ErrUnreachable, owner, context.DeadlineExceeded)
	}}
	r := openHomed(t, ft)
	cmd := escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, IdemKey: "k-timeout", IdemHash: 9}
	for attempt := 1; attempt <= 2; attempt++ {
		_, err := r.Do(context.Background(), cmd)
		if !errors.Is(err, ErrOwnerUnreachable) {
			t.Fatalf("attempt %d: err = %v, want ErrOwnerUnreachable", attempt, err)
		}
		if owners, cmds := log.all(); len(cmds) != attempt || owners[attempt-1] != "us" || !cmds[attempt-1].Routed ||
			cmds[attempt-1].IdemKey != "k-timeout" {
			t.Fatalf("attempt %d: forwards %v %+v", attempt, owners, cmds)
		}
	}
	if got := routedCount(r, routedUnreachable); got != 2 {
		t.Fatalf("routed unreachable = %v, want 2", got)
	}
	if got := routedCount(r, routedFallback); got != 0 {
		t.Fatalf("routed fallback = %v: the hold ran here after a timeout", got)
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for _, m := range ft.sent {
		if m.Type == escrow.MsgBorrowReq {
			t.Fatalf("the hold ran here after a timeout (it borrowed: %+v)", m)
		}
	}
}

// TestRoutedHoldFallbackGrants: the fallback serves the hold here like any
// plain hold; with a peer that lends, it is granted (201) with a hold of
// eu.
func TestRoutedHoldFallbackGrants(t *testing.T) {
	lt := &lendingTransport{fakeTransport: fakeTransport{forward: func(string, escrow.Command) (escrow.Reply, error) {
		return escrow.Reply{}, fmt.Errorf("%w: %w: us: owner us is busy", ErrUnreachable, ErrRefused)
	}}}
	r := openHomed(t, lt)
	lt.r.Store(r) // before any hold, so before any borrow request
	rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 2}}})
	if rep.Err != nil || rep.Hold == nil || !strings.HasPrefix(rep.Hold.ID, "eu-") {
		t.Fatalf("fallback with a lender: %+v %v", rep.Hold, rep.Err)
	}
	if got := routedCount(r, routedFallback); got != 1 {
		t.Fatalf("routed fallback = %v", got)
	}
	if got := routedCount(r, routedOK); got != 0 {
		t.Fatalf("routed ok = %v", got)
	}
}

// TestExecuteAcceptsOnlyRoutedHolds: another region may send a hold here
// only when routed; it is served from this region's slice.
func TestExecuteAcceptsOnlyRoutedHolds(t *testing.T) {
	r := openMem(t, newMemStorage(), nil)
	restock(t, r, "A", 2)
	cmd := escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, IdemKey: "k", IdemHash: 1}
	rep, err := r.Execute(context.Background(), cmd)
	if err != nil || rep.Err == nil || rep.Err.Code != escrow.CodeInvalid {
		t.Fatalf("plain hold executed: %+v %v %v", rep.Hold, rep.Err, err)
	}
	cmd.Routed = true
	rep, err = r.Execute(context.Background(), cmd)
	if err != nil || rep.Err != nil || !strings.HasPrefix(rep.Hold.ID, "eu-") {
		t.Fatalf("routed hold: %+v %v %v", rep.Hold, rep.Err, err)
	}
	// Its retry is deduplicated like a local one.
	again, err := r.Execute(context.Background(), cmd)
	if err != nil || again.Err != nil || !again.Replayed || again.Hold.ID != rep.Hold.ID {
		t.Fatalf("routed retry: %+v %v %v", again.Hold, again.Err, err)
	}
	if rep, err := r.Execute(context.Background(), escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1}); err != nil ||
		rep.Err == nil || rep.Err.Code != escrow.CodeInvalid {
		t.Fatalf("restock executed: %+v %v", rep, err)
	}
}
