package escrow

import (
	"testing"
	"time"
)

// hintNode is region eu of eu, us, ap: us's row of A says it has nothing
// here, ap's row says nothing of a transfer, while us's digest says it has
// 5 units of A (ap lent them in a row version eu never received).
func hintNode(t *testing.T, bugs func(*Config)) (*Node, func(in Input) Ready) {
	t.Helper()
	st := &State{Seq: 1, Rows: []Row{{SKU: "A", Region: "eu", Seq: 1},
		{SKU: "A", Region: "us", Seq: 7, Minted: 3, Reserved: 3}, {SKU: "A", Region: "ap", Seq: 4, Minted: 5, Reserved: 5, Sold: 5}}}
	cfg := Config{Region: "eu", DigestInterval: time.Second, TopUpHorizon: -1}
	if bugs != nil {
		bugs(&cfg)
	}
	n, err := NewNode(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	step := func(in Input) Ready {
		t.Helper()
		if err := n.Step(in); err != nil {
			t.Fatal(err)
		}
		var rd Ready
		if n.HasReady() {
			rd = advanced(n)
		}
		return rd
	}
	step(Input{Now: t0})
	return n, step
}

// hold asks eu for one unit of A and reports whether it sent a borrow
// request to us, and the reply if the hold was answered at once.
func holdAsksUS(step func(Input) Ready, now time.Time) (bool, []Reply) {
	rd := step(Input{Now: now, Cmd: &Command{Kind: CmdHold, ReqID: 1, Lines: []Line{{SKU: "A", Qty: 1}}}})
	more := step(Input{Now: now})
	rd.Send = append(rd.Send, more.Send...)
	rd.Reply = append(rd.Reply, more.Reply...)
	for _, m := range rd.Send {
		if m.Type == MsgBorrowReq && m.To == "us" && m.SKU == "A" {
			return true, rd.Reply
		}
	}
	return false, rd.Reply
}

// TestStockHints: while a peer is fenced (its rows may lag here for good),
// a peer whose digest says it has units this node's view does not credit
// it with is asked to lend; without a fenced peer, or with the planted bug
// no-stock-hints, it is not (the hold is refused at once).
func TestStockHints(t *testing.T) {
	usDigest := &Message{Type: MsgDigest, From: "us", Seq: 7, Digest: []SKUDigest{{SKU: "A", Available: 5}}}
	apFenced := &Message{Type: MsgDigest, From: "ap", Seq: 4, Fenced: true}

	// No fenced peer: the view alone decides, as before.
	n, step := hintNode(t, nil)
	step(Input{Now: t0, Msg: usDigest})
	if asked, rep := holdAsksUS(step, t0); asked || len(rep) != 1 || rep[0].Err == nil || rep[0].Err.Code != CodeInsufficientStock {
		t.Fatalf("no fenced peer: asked us=%v, replies %+v; want an insufficient-stock refusal", asked, rep)
	}
	if len(n.hints) != 0 || n.Stats().StockHintsUsed != 0 {
		t.Fatalf("hints kept without a fenced peer: %v", n.hints)
	}

	// ap fenced: us's digest is a hint, and the hold borrows from us.
	n, step = hintNode(t, nil)
	step(Input{Now: t0, Msg: apFenced})
	step(Input{Now: t0, Msg: usDigest})
	if n.hints[hintKey{sku: "A", region: "us"}] != 5 {
		t.Fatalf("hints %v, want us=5 for A", n.hints)
	}
	if asked, rep := holdAsksUS(step, t0); !asked || len(rep) != 0 {
		t.Fatalf("fenced ap: asked us=%v, replies %+v; want a borrow from us", asked, rep)
	}
	if n.Stats().StockHintsUsed == 0 {
		t.Fatal("StockHintsUsed not counted")
	}
	// us lends nothing: the hint is dropped.
	for bid, b := range n.borrows {
		step(Input{Now: t0.Add(10 * time.Millisecond), Msg: &Message{Type: MsgBorrowResp, From: "us", ID: bid, SKU: b.sku}})
	}
	if _, ok := n.hints[hintKey{sku: "A", region: "us"}]; ok {
		t.Fatalf("hint kept after us lent nothing: %v", n.hints)
	}
	// A digest no longer above the view drops the hint too.
	step(Input{Now: t0, Msg: usDigest})
	step(Input{Now: t0, Msg: &Message{Type: MsgDigest, From: "us", Seq: 8, Digest: []SKUDigest{{SKU: "A"}}}})
	if len(n.hints) != 0 {
		t.Fatalf("hint kept after us's digest said 0: %v", n.hints)
	}

	// The planted bug no-stock-hints: refused at once, as without hints.
	_, step = hintNode(t, func(c *Config) { c.bugs.NoStockHints = true })
	step(Input{Now: t0, Msg: apFenced})
	step(Input{Now: t0, Msg: usDigest})
	if asked, _ := holdAsksUS(step, t0); asked {
		t.Fatal("no-stock-hints: asked us anyway")
	}
}

// TestStockHintsBounded: the hints map keeps at most maxStockHints
// entries; a full map updates and drops existing ones but adds none.
func TestStockHintsBounded(t *testing.T) {
	n, step := hintNode(t, nil)
	step(Input{Now: t0, Msg: &Message{Type: MsgDigest, From: "ap", Seq: 4, Fenced: true}})
	n.hints = make(map[hintKey]uint64, maxStockHints)
	for i := 0; i < maxStockHints; i++ {
		n.hints[hintKey{sku: "X" + utoa(uint64(i)), region: "us"}] = 1
	}
	step(Input{Now: t0, Msg: &Message{Type: MsgDigest, From: "us", Seq: 7, Digest: []SKUDigest{{SKU: "A", Available: 5}}}})
	if len(n.hints) != maxStockHints || n.Stats().StockHintsDropped != 1 {
		t.Fatalf("full map: %d hints, dropped %d; want %d and 1", len(n.hints), n.Stats().StockHintsDropped, maxStockHints)
	}
	delete(n.hints, hintKey{sku: "X0", region: "us"})
	step(Input{Now: t0, Msg: &Message{Type: MsgDigest, From: "us", Seq: 7, Digest: []SKUDigest{{SKU: "A", Available: 5}}}})
	if n.hints[hintKey{sku: "A", region: "us"}] != 5 {
		t.Fatal("hint not kept once the map had room")
	}
}

// TestHeldProbationAnnounced: a restart probation that a lone peer's claim
// holds (a majority is needed to fence) is announced in digests as fenced,
// so peers stop asking it to lend and do not wait for its clean report; a
// probation that may still end is not. The planted bug
// quiet-held-probation keeps it quiet.
func TestHeldProbationAnnounced(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		st := &State{Seq: 10, Rows: []Row{{SKU: "A", Region: "eu", Seq: 10, Minted: 5},
			{SKU: "A", Region: "us", Seq: 50, Minted: 5}, {SKU: "A", Region: "ap", Seq: 70, Minted: 5}}}
		cfg := Config{Region: "eu", DigestInterval: time.Second, TopUpHorizon: -1}
		cfg.bugs.QuietHeldProbation = quiet
		n, err := NewNode(cfg, st)
		if err != nil {
			t.Fatal(err)
		}
		if !n.BeginRestartProbation(time.Second, 0) {
			t.Fatal("not on restart probation")
		}
		now := t0
		digestFenced := func() (bool, bool) {
			t.Helper()
			now = now.Add(1100 * time.Millisecond)
			if err := n.Step(Input{Now: now}); err != nil {
				t.Fatal(err)
			}
			sent, fenced := false, false
			if n.HasReady() {
				for _, m := range n.Ready().Send {
					if m.Type == MsgDigest {
						sent, fenced = true, m.Fenced
					}
				}
				n.Advance()
			}
			return sent, fenced
		}
		if sent, fenced := digestFenced(); !sent || fenced {
			t.Fatalf("quiet=%v: plain probation: digest sent %v fenced %v; want sent, not fenced", quiet, sent, fenced)
		}
		// us has seen eu's rows up to 20: one voice of the two needed.
		if err := n.Step(Input{Now: now, Msg: &Message{Type: MsgDigest, From: "us", Seq: 50,
			Seen: []RegionSeq{{Region: "eu", Seq: 20}}}}); err != nil {
			t.Fatal(err)
		}
		if n.HasReady() {
			advanced(n)
		}
		if f := n.Fence(); !f.Probation {
			t.Fatalf("quiet=%v: a lone voice ended or fenced the probation: %+v", quiet, f)
		}
		if sent, fenced := digestFenced(); !sent || fenced == quiet {
			t.Fatalf("quiet=%v: held probation: digest sent %v fenced %v", quiet, sent, fenced)
		}
	}
}
