package escrow

import (
	"fmt"
	"testing"
	"time"
)

var members3 = []string{"ap", "eu", "us"}

func stepMsg(tn *tnode, m Message) error {
	tn.t.Helper()
	err := tn.n.Step(Input{Now: tn.now, Msg: &m})
	tn.drain()
	return err
}

// TestMembershipRefusesOutsiders: a row from a region outside the
// membership is never merged (the oversell of the issue: a made-up region
// "sends" 1000 units to eu); nor is a borrow, repair or digest from one;
// advice moving units to, or making a home of, a non-member is refused.
// Every refusal is counted.
func TestMembershipRefusesOutsiders(t *testing.T) {
	eu := newTNode(t, Config{Members: members3})
	eu.restock("A", 5)
	forged := []Message{
		{Type: MsgRows, From: "zz", Seq: 1, Rows: []Row{{SKU: "A", Region: "zz", Seq: 1, Sent: []Transfer{{To: "eu", Qty: 1000}}}}},
		{Type: MsgBorrowResp, From: "zz", To: "eu", ID: 1, Rows: []Row{{SKU: "A", Region: "zz", Seq: 1, Sent: []Transfer{{To: "eu", Qty: 1000}}}}},
		{Type: MsgDigest, From: "zz", Seq: 1, Seen: []RegionSeq{{Region: "eu", Seq: 1 << 40}}},
		{Type: MsgRepairReq, From: "zz", To: "eu", Seq: 1 << 40},
		{Type: MsgBorrowReq, From: "zz", To: "eu", ID: 2, SKU: "A", Qty: 5, Urgent: true},
	}
	for _, m := range forged {
		if err := stepMsg(eu, m); err == nil {
			t.Fatalf("%s from a non-member accepted", m.Type)
		}
		if len(eu.last.Send) != 0 || !eu.last.Persist.Empty() {
			t.Fatalf("%s from a non-member changed something: %+v", m.Type, eu.last)
		}
	}
	if got := eu.n.Available("A"); got != 5 {
		t.Fatalf("available %d, want 5", got)
	}
	if eu.n.Fence().Fenced || eu.n.Stats().FenceClaims != 0 {
		t.Fatalf("a non-member's claim counted: %+v", eu.n.Fence())
	}
	if s := eu.n.Stats(); s.NonMember != uint64(len(forged)) || s.MsgsRejected != uint64(len(forged)) {
		t.Fatalf("stats %+v", s)
	}
	// Advice: a move to zz and a home at zz are refused; a move to us applies.
	adv := Message{Type: MsgAdvice, From: "rb", Epoch: uint64(eu.now.UnixMilli()),
		Moves: []Move{{SKU: "A", From: "eu", To: "zz", Qty: 3}, {SKU: "A", From: "eu", To: "us", Qty: 1}},
		Homes: []Home{{SKU: "A", Region: "zz"}}}
	if err := stepMsg(eu, adv); err != nil {
		t.Fatal(err)
	}
	row := eu.n.View("A")["eu"]
	if row.SentTo("zz") != 0 || row.SentTo("us") != 1 || len(eu.n.homes.list) != 0 {
		t.Fatalf("advice: row %+v, homes %v", row, eu.n.homes.list)
	}
	if s := eu.n.Stats(); s.NonMember != uint64(len(forged))+2 {
		t.Fatalf("advice refusals not counted: %+v", s)
	}
	// A member's row is merged, and may name a non-member in Sent (a region
	// removed later): the units count against the sender only.
	in := Row{SKU: "A", Region: "us", Seq: 1, Minted: 10, Sent: []Transfer{{To: "eu", Qty: 2}, {To: "zz", Qty: 3}}}
	if err := stepMsg(eu, Message{Type: MsgRows, From: "us", Seq: 1, Rows: []Row{in}}); err != nil {
		t.Fatal(err)
	}
	if got := eu.n.Available("A"); got != 5-1+2 {
		t.Fatalf("available %d after the member's row, want 6", got)
	}
}

// TestOpenMembership: with no members listed every well-formed region is
// one (today's behaviour), but the node keeps state for at most maxPeers.
func TestOpenMembership(t *testing.T) {
	eu := newTNode(t, Config{})
	for i := 0; i < maxPeers; i++ {
		if err := stepMsg(eu, Message{Type: MsgDigest, From: fmt.Sprintf("r%d", i), Seq: 1}); err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
	}
	if err := stepMsg(eu, Message{Type: MsgDigest, From: "one_too_many", Seq: 1}); err == nil {
		t.Fatal("peer beyond maxPeers accepted")
	}
	if err := stepMsg(eu, Message{Type: MsgDigest, From: "r3", Seq: 2}); err != nil {
		t.Fatalf("a known peer refused: %v", err)
	}
	if s := eu.n.Stats(); s.OutOfBounds != 1 || len(eu.n.Peers()) != maxPeers {
		t.Fatalf("stats %+v, peers %d", s, len(eu.n.Peers()))
	}
}

// TestBoundedSums: rows from 130 regions each claiming to have sent eu
// 2^56-1 units (the wrap of the issue, open membership): no sum wraps, the
// node never panics, and every row past the per-SKU bound is dropped,
// never stored, and counted.
func TestBoundedSums(t *testing.T) {
	eu := newTNode(t, Config{})
	eu.restock("A", 5)
	for i := 0; i < 130; i++ {
		r := fmt.Sprintf("zz%d", i)
		row := Row{SKU: "A", Region: r, Seq: 1, Sent: []Transfer{{To: "eu", Qty: maxCounter - 1}}}
		if err := stepMsg(eu, Message{Type: MsgRows, From: r, Seq: 1, Rows: []Row{row}}); err != nil {
			t.Fatal(err)
		}
		for _, p := range eu.last.Persist.Rows {
			if p.Region == r && i > 0 {
				t.Fatalf("row %d stored: %+v", i, p)
			}
		}
	}
	// The first row fits (an open membership cannot tell it from a real
	// region: that is what Members is for); its sums do not wrap.
	v := eu.n.View("A")
	if a := v.Available("eu"); a != 5+maxCounter-1 {
		t.Fatalf("available %d", a)
	}
	if tot := v.Totals(); tot.Minted != 5 || tot.Available != 5 {
		t.Fatalf("totals %+v", tot)
	}
	if s := eu.n.Stats(); s.OutOfBounds != 129 {
		t.Fatalf("out of bounds %d, want 129", s.OutOfBounds)
	}
	// A hold still works and the node survives a restart of what it stored.
	eu.hold(l("A", 3))
	eu.restart()
	if a := eu.n.View("A").Available("eu"); a != 2+maxCounter-1 {
		t.Fatalf("available after restart %d", a)
	}
	if r := eu.do(Command{Kind: CmdRestock, SKU: "A", Qty: 1}); r.Err != nil {
		t.Fatal(r.Err)
	}
}

// TestPeerSKULimit: a node learns at most MaxPeerSKUs SKUs from peers,
// from digests and rows alike; its own SKUs are not limited.
func TestPeerSKULimit(t *testing.T) {
	eu := newTNode(t, Config{MaxPeerSKUs: 10, Members: members3})
	var d []SKUDigest
	for i := 0; i < 8; i++ {
		d = append(d, SKUDigest{SKU: fmt.Sprintf("d%d", i), Available: 1})
	}
	if err := stepMsg(eu, Message{Type: MsgDigest, From: "us", Seq: 0, Digest: d}); err != nil {
		t.Fatal(err)
	}
	var rows []Row
	for i := 0; i < 5; i++ {
		rows = append(rows, Row{SKU: fmt.Sprintf("r%d", i), Region: "us", Seq: uint64(i + 1), Minted: 1})
	}
	if err := stepMsg(eu, Message{Type: MsgRows, From: "us", Seq: 5, Rows: rows}); err != nil {
		t.Fatal(err)
	}
	if len(eu.last.Persist.Rows) != 2 {
		t.Fatalf("stored %d rows, want the 2 within the limit", len(eu.last.Persist.Rows))
	}
	s := eu.n.Stats()
	if s.PeerSKUs != 10 || s.PeerSKUsRefused != 3 || len(eu.n.SKUs()) != 10 {
		t.Fatalf("stats %+v, skus %d", s, len(eu.n.SKUs()))
	}
	eu.restock("own", 1) // own SKUs are not peer SKUs
	// A known SKU still merges.
	if err := stepMsg(eu, Message{Type: MsgRows, From: "us", Seq: 6, PrevSeq: 5,
		Rows: []Row{{SKU: "r0", Region: "us", Seq: 6, Minted: 4}}}); err != nil || len(eu.last.Persist.Rows) != 1 {
		t.Fatalf("known SKU: %v, %+v", err, eu.last.Persist.Rows)
	}
	eu.restart() // SKUs named only in digests are not stored
	if s := eu.n.Stats(); s.PeerSKUs != 2 {
		t.Fatalf("after restart peer SKUs %d", s.PeerSKUs)
	}
}

// TestSeqWindow: a known peer's sequence may not jump by more than
// MaxSeqJump in one message.
func TestSeqWindow(t *testing.T) {
	eu := newTNode(t, Config{Members: members3})
	row := Row{SKU: "A", Region: "us", Seq: 3, Minted: 1}
	if err := stepMsg(eu, Message{Type: MsgRows, From: "us", Seq: 3, Rows: []Row{row}}); err != nil {
		t.Fatal(err)
	}
	if err := stepMsg(eu, Message{Type: MsgDigest, From: "us", Seq: 3 + MaxSeqJump + 1}); err == nil {
		t.Fatal("digest jumping past the window accepted")
	}
	row.Seq, row.Minted = 4+MaxSeqJump, 2
	if err := stepMsg(eu, Message{Type: MsgRows, From: "us", PrevSeq: 3, Seq: 4 + MaxSeqJump, Rows: []Row{row}}); err == nil {
		t.Fatal("rows jumping past the window accepted")
	}
	if got := eu.n.PeerSeq("us"); got != 3 {
		t.Fatalf("seen %d", got)
	}
	if s := eu.n.Stats(); s.SeqWindow != 2 {
		t.Fatalf("stats %+v", s)
	}
	if err := stepMsg(eu, Message{Type: MsgDigest, From: "us", Seq: 3 + MaxSeqJump}); err != nil {
		t.Fatalf("a jump within the window refused: %v", err)
	}
}

// TestAdviceFromTheFuture: advice with an epoch ahead of the clock (within
// maxAdviceLead) is applied, but the epoch remembered is clamped, so
// genuine advice a moment later is not shut out; beyond maxAdviceLead it
// is ignored.
func TestAdviceFromTheFuture(t *testing.T) {
	eu := newTNode(t, Config{Members: members3})
	eu.restock("A", 10)
	ms := func(d time.Duration) uint64 { return uint64(eu.now.Add(d).UnixMilli()) }
	if err := stepMsg(eu, Message{Type: MsgAdvice, From: "rb", Epoch: ms(2 * maxAdviceLead)}); err != nil {
		t.Fatal(err)
	}
	if s := eu.n.Stats(); s.AdviceIgnored != 1 {
		t.Fatalf("advice two leads ahead not ignored: %+v", s)
	}
	if err := stepMsg(eu, Message{Type: MsgAdvice, From: "rb", Epoch: ms(maxAdviceLead - time.Second)}); err != nil {
		t.Fatal(err)
	}
	eu.tick(maxAdviceSkew + time.Second)
	genuine := Message{Type: MsgAdvice, From: "rb", Epoch: ms(0), Moves: []Move{{SKU: "A", From: "eu", To: "us", Qty: 2}}}
	if err := stepMsg(eu, genuine); err != nil {
		t.Fatal(err)
	}
	if got := eu.n.View("A")["eu"].SentTo("us"); got != 2 {
		t.Fatalf("genuine advice after a forged future epoch: sent %d, want 2", got)
	}
}

// TestConfigMembers: the membership must list this region, once each.
func TestConfigMembers(t *testing.T) {
	for _, m := range [][]string{{"us"}, {"eu", "eu"}, {"eu", "Bad"}} {
		if _, err := NewNode(Config{Region: "eu", Members: m}, nil); err == nil {
			t.Fatalf("members %v accepted", m)
		}
	}
	n, err := NewNode(Config{Region: "eu", Members: []string{"us", "eu"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(n.Members()); got != "[eu us]" {
		t.Fatalf("members %s", got)
	}
	if n.FenceVoicesNeeded() != 0 {
		t.Fatalf("two regions: voices needed %d, want 0 (only during probation)", n.FenceVoicesNeeded())
	}
	for k, want := range map[int]int{3: 2, 4: 2, 5: 3, 6: 3} {
		var ms []string
		for i := 0; i < k; i++ {
			ms = append(ms, fmt.Sprintf("r%d", i))
		}
		n, err := NewNode(Config{Region: "r0", Members: ms}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.FenceVoicesNeeded(); got != want {
			t.Fatalf("%d members: voices needed %d, want %d", k, got, want)
		}
	}
}
