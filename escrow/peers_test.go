package escrow

import (
	"reflect"
	"testing"
	"time"
)

// tnet is a deterministic network of tnodes for scripted scenarios:
// messages wait in a queue until the test delivers, drops or duplicates
// them.
type tnet struct {
	t     *testing.T
	nodes map[string]*tnode
	queue []tmsg
}

type tmsg struct {
	to string
	m  Message
}

func newTNet(t *testing.T, cfg Config, regions ...string) *tnet {
	tw := &tnet{t: t, nodes: map[string]*tnode{}}
	for _, r := range regions {
		c := cfg
		c.Region = r
		tw.nodes[r] = newTNode(t, c)
	}
	return tw
}

// collect moves what the nodes sent into the queue (broadcasts fanned out).
func (tw *tnet) collect() {
	for _, r := range sortedKeys(tw.nodes) {
		tn := tw.nodes[r]
		for _, m := range tn.sent {
			if m.Speaks == 0 && MessageHasLocationKeys(&m) {
				m.Speaks = WireVersion // as the transport stamps it
			}
			b, err := EncodeMessage(nil, &m)
			if err != nil {
				tw.t.Fatal(err)
			}
			dm, err := DecodeMessage(b)
			if err != nil {
				tw.t.Fatal(err)
			}
			for _, to := range sortedKeys(tw.nodes) {
				if to == r || (m.To != "" && m.To != to) {
					continue
				}
				tw.queue = append(tw.queue, tmsg{to: to, m: dm})
			}
		}
		tn.sent = nil
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

// deliver delivers queue[i] and returns the replies it caused.
func (tw *tnet) deliver(i int) []Reply {
	tw.t.Helper()
	q := tw.queue[i]
	tw.queue = append(tw.queue[:i], tw.queue[i+1:]...)
	return tw.deliverMsg(q)
}

func (tw *tnet) deliverMsg(q tmsg) []Reply {
	tw.t.Helper()
	tn := tw.nodes[q.to]
	m := q.m
	if err := tn.n.Step(Input{Now: tn.now, Msg: &m}); err != nil {
		tw.t.Fatalf("%s rejected %s from %s: %v", q.to, m.Type, m.From, err)
	}
	rs := tn.drain()
	tw.collect()
	return rs
}

// flush delivers everything, in order, until the network is quiet.
func (tw *tnet) flush() {
	tw.t.Helper()
	tw.collect()
	for i := 0; len(tw.queue) > 0; i++ {
		if i > 10000 {
			tw.t.Fatal("network never quiet")
		}
		tw.deliver(0)
	}
}

// dropAll loses every message in flight.
func (tw *tnet) dropAll() { tw.collect(); tw.queue = nil }

func (tw *tnet) setNow(now time.Time) {
	for _, tn := range tw.nodes {
		tn.now = now
	}
}

func (tw *tnet) find(to string, typ MsgType) int {
	tw.collect()
	for i, q := range tw.queue {
		if q.to == to && q.m.Type == typ {
			return i
		}
	}
	return -1
}

// TestBorrowLastUnit: a region without stock borrows the last unit from a
// peer; the units travel inside the donor's row; the second shopper is
// refused everywhere.
func TestBorrowLastUnit(t *testing.T) {
	tw := newTNet(t, Config{}, "ap", "eu", "us")
	tw.nodes["eu"].restock("A", 1)
	tw.flush()
	us := tw.nodes["us"]
	us.req++
	cmd := Command{Kind: CmdHold, ReqID: us.req, Lines: []Line{l("A", 1)}}
	if err := us.n.Step(Input{Now: us.now, Cmd: &cmd}); err != nil {
		t.Fatal(err)
	}
	if rs := us.drain(); len(rs) != 0 {
		t.Fatalf("hold answered before the borrow: %+v", rs)
	}
	i := tw.find("eu", MsgBorrowReq)
	if i < 0 {
		t.Fatal("no borrow request to eu")
	}
	if m := tw.queue[i].m; m.Qty != 1 || m.SKU != "A" || !m.Urgent {
		t.Fatalf("borrow request %+v", m)
	}
	tw.deliver(i)
	// The donor's Ready persisted the transfer before sending the answer.
	if got := tw.nodes["eu"].store.rows[[2]string{"A", "eu"}]; got == nil {
		t.Fatal("donor row not persisted")
	} else if r, _ := DecodeRow(got); r.SentTo("us") != 1 {
		t.Fatalf("persisted donor row %+v", r)
	}
	j := tw.find("us", MsgBorrowResp)
	if j < 0 {
		t.Fatal("no borrow answer")
	}
	rs := tw.deliver(j)
	if len(rs) != 1 || rs[0].Err != nil || rs[0].ReqID != cmd.ReqID || rs[0].Hold.State != Held {
		t.Fatalf("hold after borrow: %+v", rs)
	}
	tw.flush()
	for _, r := range []string{"ap", "eu", "us"} {
		if r := tw.nodes[r].do(Command{Kind: CmdHold, Lines: []Line{l("A", 1)}}); r.Err == nil {
			t.Fatalf("a second unit was granted at %s", r.Hold.ID)
		}
		tw.flush()
	}
	for _, r := range []string{"ap", "eu", "us"} {
		v := tw.nodes[r].n.View("A")
		if err := v.CheckConservation(); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if v["us"] == nil || v["us"].Reserved != 1 {
			t.Fatalf("%s does not see the hold at us: %+v", r, v["us"])
		}
	}
}

// TestBorrowTimeout: without an answer the hold is refused at its deadline
// (a later tick), and a late answer still delivers the units.
func TestBorrowTimeout(t *testing.T) {
	tw := newTNet(t, Config{BorrowTimeout: 50 * time.Millisecond}, "eu", "us")
	tw.nodes["eu"].restock("A", 5)
	tw.flush()
	us := tw.nodes["us"]
	us.req++
	cmd := Command{Kind: CmdHold, ReqID: us.req, Lines: []Line{l("A", 2)}, IdemKey: "k", IdemHash: 9}
	if err := us.n.Step(Input{Now: us.now, Cmd: &cmd}); err != nil {
		t.Fatal(err)
	}
	us.drain()
	// A retry with the same key while the borrow is in flight waits too.
	retry := cmd
	us.req++
	retry.ReqID = us.req
	if err := us.n.Step(Input{Now: us.now, Cmd: &retry}); err != nil {
		t.Fatal(err)
	}
	if rs := us.drain(); len(rs) != 0 {
		t.Fatalf("retry answered early: %+v", rs)
	}
	// Another body under the key is refused at once.
	if r := us.do(Command{Kind: CmdHold, Lines: []Line{l("A", 1)}, IdemKey: "k", IdemHash: 10}); r.Err == nil || r.Err.Code != CodeIdempotencyReuse {
		t.Fatalf("reuse while pending: %+v", r)
	}
	req := tw.find("eu", MsgBorrowReq)
	late := tw.queue[req]
	tw.queue = nil
	us.tick(49 * time.Millisecond)
	if len(us.last.Reply) != 0 {
		t.Fatal("refused before the deadline")
	}
	us.tick(time.Millisecond)
	rs := us.last.Reply
	if len(rs) != 2 || rs[0].Err == nil || rs[0].Err.Code != CodeInsufficientStock || rs[1].Err == nil {
		t.Fatalf("at the deadline: %+v", rs)
	}
	if s := us.n.Stats(); s.PendingHolds != 0 || s.BorrowTimeouts != 1 {
		t.Fatalf("stats %+v", s)
	}
	// The late request is still served; its units arrive and stay at us.
	tw.setNow(us.now)
	tw.deliverMsg(late)
	tw.flush()
	if got := us.n.Available("A"); got != 2 {
		t.Fatalf("late borrow: us has %d", got)
	}
	if r := us.do(cmd); r.Err != nil || r.Replayed {
		t.Fatalf("retry after the refusal: %+v", r)
	}
	tw.flush()
	checkConverged(t, tw, "A")
}

// TestDonationDedupe: a duplicated borrow request is answered again but
// gives nothing twice.
func TestDonationDedupe(t *testing.T) {
	tw := newTNet(t, Config{}, "eu", "us")
	tw.nodes["eu"].restock("A", 10)
	tw.flush()
	us := tw.nodes["us"]
	us.req++
	cmd := Command{Kind: CmdHold, ReqID: us.req, Lines: []Line{l("A", 3)}}
	if err := us.n.Step(Input{Now: us.now, Cmd: &cmd}); err != nil {
		t.Fatal(err)
	}
	us.drain()
	i := tw.find("eu", MsgBorrowReq)
	q := tw.queue[i]
	tw.deliverMsg(q)
	tw.deliverMsg(q) // duplicate
	tw.flush()
	eu := tw.nodes["eu"].n.View("A")["eu"]
	if eu.SentTo("us") != 3 {
		t.Fatalf("donor sent %d for one request of 3", eu.SentTo("us"))
	}
	if us.n.Available("A") != 0 || tw.nodes["eu"].n.Available("A") != 7 {
		t.Fatalf("available us %d eu %d", us.n.Available("A"), tw.nodes["eu"].n.Available("A"))
	}
	checkConverged(t, tw, "A")
}

// TestBorrowAfterRestart: borrow ids are not persisted, so a restarted
// borrower must not reuse ids its donors remember, or they would answer
// from their dedupe memory and give nothing.
func TestBorrowAfterRestart(t *testing.T) {
	tw := newTNet(t, Config{}, "eu", "us")
	tw.nodes["eu"].restock("A", 10)
	tw.flush()
	us := tw.nodes["us"]
	borrowOne := func() Reply {
		us.req++
		cmd := Command{Kind: CmdHold, ReqID: us.req, Lines: []Line{l("A", 1)}}
		if err := us.n.Step(Input{Now: us.now, Cmd: &cmd}); err != nil {
			t.Fatal(err)
		}
		rs := us.drain()
		tw.collect()
		for len(tw.queue) > 0 && len(rs) == 0 {
			rs = append(rs, tw.deliver(0)...)
		}
		tw.flush()
		if len(rs) != 1 {
			t.Fatalf("replies %+v", rs)
		}
		return rs[0]
	}
	if r := borrowOne(); r.Err != nil {
		t.Fatal(r.Err)
	}
	us.restart()
	tw.setNow(t0.Add(time.Second))
	if r := borrowOne(); r.Err != nil {
		t.Fatalf("borrow after restart: %v", r.Err)
	}
	if got := tw.nodes["eu"].n.View("A")["eu"].SentTo("us"); got != 2 {
		t.Fatalf("eu sent %d", got)
	}
}

// TestRepairAfterRestart: a restored region serves its own rows to a peer
// that missed them, and digests reveal the gap.
func TestRepairAfterRestart(t *testing.T) {
	tw := newTNet(t, Config{}, "eu", "us")
	tw.nodes["eu"].restock("A", 4)
	tw.nodes["eu"].restock("B", 2)
	tw.dropAll() // us never heard of it
	tw.nodes["eu"].restart()
	us := tw.nodes["us"]
	if us.n.View("A") != nil {
		t.Fatal("us saw lost rows")
	}
	m := Message{Type: MsgRepairReq, From: "us", To: "eu", Seq: 0}
	tw.deliverMsg(tmsg{to: "eu", m: m})
	tw.flush()
	checkConverged(t, tw, "A")
	checkConverged(t, tw, "B")
	if us.n.PeerSeq("eu") != 2 {
		t.Fatalf("us has seen eu up to %d", us.n.PeerSeq("eu"))
	}
	// And the restored donor can still lend: its own row is known.
	us.req++
	cmd := Command{Kind: CmdHold, ReqID: us.req, Lines: []Line{l("A", 1)}}
	if err := us.n.Step(Input{Now: us.now, Cmd: &cmd}); err != nil {
		t.Fatal(err)
	}
	us.drain()
	tw.flush()
	if r, ok := us.replies[cmd.ReqID]; !ok || r.Err != nil {
		t.Fatalf("borrow from a restored donor: %+v", r)
	}
}

// TestGapRepair: a lost rows message is detected at the next one and
// repaired; a digest also reveals silence after a loss.
func TestGapRepair(t *testing.T) {
	tw := newTNet(t, Config{DigestInterval: time.Second}, "eu", "us")
	eu, us := tw.nodes["eu"], tw.nodes["us"]
	eu.restock("A", 1)
	tw.dropAll()
	eu.restock("B", 1)
	tw.collect()
	// The rows of B arrive with PrevSeq 1 > seen 0: a gap, repaired.
	tw.flush()
	checkConverged(t, tw, "A")
	if s := us.n.Stats(); s.Gaps == 0 || s.RepairsSent == 0 {
		t.Fatalf("stats %+v", s)
	}
	// Silence after a loss: two digests ahead of what us has seen.
	eu.restock("A", 1)
	tw.dropAll()
	for i := 0; i < 3; i++ {
		tw.setNow(eu.now.Add(time.Second))
		eu.tick(0)
		us.tick(0)
		tw.flush()
	}
	checkConverged(t, tw, "A")
}

// TestMultiPartRows: a snapshot larger than MaxRowsPerMsg is split; the
// receiver's sequence advances only when every part arrived in order, and
// a lost part is repaired.
func TestMultiPartRows(t *testing.T) {
	tw := newTNet(t, Config{MaxRowsPerMsg: 2}, "eu", "us")
	eu, us := tw.nodes["eu"], tw.nodes["us"]
	// Five SKUs changed in one Ready: one broadcast of three parts.
	for i, sku := range []string{"A", "B", "C", "D", "E"} {
		eu.req++
		c := Command{Kind: CmdRestock, ReqID: eu.req, SKU: sku, Qty: uint64(i + 1)}
		if err := eu.n.Step(Input{Now: eu.now, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
	}
	eu.drain()
	tw.collect()
	if len(tw.queue) != 3 || !tw.queue[0].m.More || !tw.queue[1].m.More || tw.queue[2].m.More {
		t.Fatalf("parts %+v", tw.queue)
	}
	parts := append([]tmsg(nil), tw.queue...)
	tw.queue = nil
	// Out of order: the last part first does not advance the sequence.
	tw.deliverMsg(parts[2])
	if us.n.PeerSeq("eu") != 0 {
		t.Fatalf("seen %d after the last part alone", us.n.PeerSeq("eu"))
	}
	tw.queue = nil // drop the repair request
	repairs := us.n.Stats().RepairsSent
	// In order, with duplicates of parts already received: a duplicate
	// must not break the snapshot in progress.
	tw.deliverMsg(parts[0])
	tw.deliverMsg(parts[1])
	tw.deliverMsg(parts[0])
	tw.deliverMsg(parts[2])
	if us.n.PeerSeq("eu") != 5 {
		t.Fatalf("seen %d after all parts in order", us.n.PeerSeq("eu"))
	}
	if got := us.n.Stats().RepairsSent; got != repairs {
		t.Fatalf("%d repairs asked for a duplicate part", got-repairs)
	}
	// A late copy of an old last part in the middle of a newer snapshot is
	// old news: it must not break that snapshot.
	for _, sku := range []string{"A", "B", "C", "D", "E"} {
		eu.req++
		c := Command{Kind: CmdWriteOff, ReqID: eu.req, SKU: sku, Qty: 1}
		if err := eu.n.Step(Input{Now: eu.now, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
	}
	eu.drain()
	tw.collect()
	newer := append([]tmsg(nil), tw.queue...)
	tw.queue = nil
	tw.deliverMsg(newer[0])
	tw.deliverMsg(parts[2])
	tw.deliverMsg(newer[1])
	tw.deliverMsg(newer[2])
	if us.n.PeerSeq("eu") != 10 || us.n.Stats().RepairsSent != repairs {
		t.Fatalf("seen %d, %d repairs", us.n.PeerSeq("eu"), us.n.Stats().RepairsSent-repairs)
	}
	tw.collect()
	if len(tw.queue) != 0 {
		t.Fatalf("duplicates caused messages: %+v", tw.queue)
	}
	for _, sku := range []string{"A", "B", "C", "D", "E"} {
		checkConverged(t, tw, sku)
	}
	// A lost middle part: the sequence stays, a repair fixes it.
	for _, sku := range []string{"A", "B", "C", "D", "E"} {
		eu.req++
		c := Command{Kind: CmdRestock, ReqID: eu.req, SKU: sku, Qty: 1}
		if err := eu.n.Step(Input{Now: eu.now, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
	}
	eu.drain()
	tw.collect()
	parts = append([]tmsg(nil), tw.queue...)
	tw.queue = nil
	tw.deliverMsg(parts[0])
	tw.deliverMsg(parts[2])
	if us.n.PeerSeq("eu") != 10 {
		t.Fatalf("seen %d with a part missing", us.n.PeerSeq("eu"))
	}
	tw.flush()
	if us.n.PeerSeq("eu") != 15 {
		t.Fatalf("seen %d after repair", us.n.PeerSeq("eu"))
	}
	for _, sku := range []string{"A", "B", "C", "D", "E"} {
		checkConverged(t, tw, sku)
	}
}

// TestAdvice: a region follows advice only from its surplus, once per
// epoch, and ignores moves that are not its own.
func TestAdvice(t *testing.T) {
	tw := newTNet(t, Config{DonorFloor: 2}, "eu", "us")
	eu := tw.nodes["eu"]
	eu.restock("A", 10)
	eu.hold(l("A", 5))
	tw.flush()
	adv := Message{Type: MsgAdvice, From: "rebalancer", Epoch: 1, Moves: []Move{
		{SKU: "A", From: "eu", To: "us", Qty: 100}, // capped at 5 - floor 2 = 3
		{SKU: "A", From: "us", To: "eu", Qty: 1},   // not eu's move
		{SKU: "Z", From: "eu", To: "us", Qty: 1},   // unknown SKU
		{SKU: "A", From: "eu", To: "eu", Qty: 1},   // to itself
	}}
	tw.deliverMsg(tmsg{to: "eu", m: adv})
	tw.deliverMsg(tmsg{to: "eu", m: adv}) // repeated epoch: ignored
	tw.flush()
	if got := eu.n.View("A")["eu"].SentTo("us"); got != 3 {
		t.Fatalf("advice moved %d", got)
	}
	if eu.n.Available("A") != 2 || tw.nodes["us"].n.Available("A") != 3 {
		t.Fatal("advice did not respect the floor")
	}
	if s := eu.n.Stats(); s.AdviceApplied != 1 || s.AdviceIgnored != 1 {
		t.Fatalf("stats %+v", s)
	}
	checkConverged(t, tw, "A")
}

// TestAdviceEpochFromTheFuture: an advice whose epoch (the daemon's Unix
// milliseconds) is more than an hour ahead of the region's clock is
// ignored, so that one broken daemon clock cannot make the region ignore
// every later advice.
func TestAdviceEpochFromTheFuture(t *testing.T) {
	tw := newTNet(t, Config{}, "eu", "us")
	eu := tw.nodes["eu"]
	eu.restock("A", 10)
	tw.flush()
	move := []Move{{SKU: "A", From: "eu", To: "us", Qty: 1}}
	future := uint64(eu.n.Now().Add(2 * time.Hour).UnixMilli())
	tw.deliverMsg(tmsg{to: "eu", m: Message{Type: MsgAdvice, From: "rebalancer", Epoch: future, Moves: move}})
	tw.flush()
	if got := eu.n.View("A")["eu"].SentTo("us"); got != 0 {
		t.Fatalf("advice from two hours ahead moved %d units", got)
	}
	now := uint64(eu.n.Now().UnixMilli())
	tw.deliverMsg(tmsg{to: "eu", m: Message{Type: MsgAdvice, From: "rebalancer", Epoch: now, Moves: move}})
	tw.flush()
	if got := eu.n.View("A")["eu"].SentTo("us"); got != 1 {
		t.Fatalf("advice at the current epoch after a future one moved %d units, want 1", got)
	}
	if s := eu.n.Stats(); s.AdviceApplied != 1 || s.AdviceIgnored != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestTopUp: a region below its low-water mark asks the richest peer in
// the background, never draining it below its own floor.
func TestTopUp(t *testing.T) {
	tw := newTNet(t, Config{LowWater: 4}, "eu", "us")
	eu, us := tw.nodes["eu"], tw.nodes["us"]
	eu.restock("A", 40)
	us.restock("A", 5)
	tw.flush()
	us.hold(l("A", 2)) // 3 < 4: low
	tw.flush()
	if s := us.n.Stats(); s.TopUps != 1 {
		t.Fatalf("stats %+v", s)
	}
	if got := us.n.Available("A"); got <= 4 {
		t.Fatalf("after top-up us has %d", got)
	}
	if eu.n.Available("A") < 4 {
		t.Fatalf("donor drained to %d", eu.n.Available("A"))
	}
	checkConverged(t, tw, "A")
}

func checkConverged(t *testing.T, tw *tnet, sku string) {
	t.Helper()
	truth := View{}
	for r, tn := range tw.nodes {
		if own := tn.n.View(sku)[r]; own != nil {
			truth[r] = own
		}
	}
	for r, tn := range tw.nodes {
		v := tn.n.View(sku)
		for w, row := range truth {
			if v[w] == nil || !v[w].Equal(row) {
				t.Fatalf("%s sees %s/%s as %+v, owner has %+v", r, w, sku, v[w], *row)
			}
		}
		if err := v.CheckConservation(); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
	}
}

// TestPeerAllowList: with Peers set, other regions' messages are refused
// and never lend or borrow.
func TestPeerAllowList(t *testing.T) {
	tw := newTNet(t, Config{Peers: []string{"us"}}, "eu", "us", "zz")
	zz := tw.nodes["zz"]
	zz.restock("A", 5)
	tw.collect()
	for _, q := range tw.queue {
		if q.to != "eu" {
			continue
		}
		m := q.m
		if err := tw.nodes["eu"].n.Step(Input{Now: t0, Msg: &m}); err == nil {
			t.Fatalf("eu accepted %s from zz", m.Type)
		}
	}
	tw.queue = nil
	if v := tw.nodes["eu"].n.View("A"); v != nil && v["zz"] != nil {
		t.Fatal("eu merged a row from a region outside its allow-list")
	}
	if s := tw.nodes["eu"].n.Stats(); s.MsgsRejected == 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestIdempotentRetryWhileBorrowing: a retry that arrives while the first
// request waits on a borrow gets the same hold, marked Replayed.
func TestIdempotentRetryWhileBorrowing(t *testing.T) {
	tw := newTNet(t, Config{}, "eu", "us")
	tw.nodes["eu"].restock("A", 5)
	tw.flush()
	us := tw.nodes["us"]
	cmd := Command{Kind: CmdHold, Lines: []Line{l("A", 2)}, IdemKey: "k", IdemHash: 1}
	for i := 0; i < 3; i++ {
		us.req++
		cmd.ReqID = us.req
		if err := us.n.Step(Input{Now: us.now, Cmd: &cmd}); err != nil {
			t.Fatal(err)
		}
		us.drain()
	}
	tw.flush()
	first := us.replies[1]
	if first.Err != nil || first.Replayed {
		t.Fatalf("first: %+v", first)
	}
	for _, id := range []uint64{2, 3} {
		r := us.replies[id]
		if r.Err != nil || !r.Replayed || r.Hold.ID != first.Hold.ID {
			t.Fatalf("retry %d: %+v", id, r)
		}
	}
	if got := tw.nodes["eu"].n.View("A")["eu"].SentTo("us"); got != 2 {
		t.Fatalf("borrowed %d for one hold of 2", got)
	}
	if s := us.n.Stats(); s.Granted != 1 || s.BorrowsSent != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestStockView: the stock command shows every region's row as seen here.
func TestStockView(t *testing.T) {
	tw := newTNet(t, Config{}, "eu", "us")
	tw.nodes["eu"].restock("A", 5)
	tw.nodes["us"].restock("A", 3)
	tw.nodes["us"].hold(l("A", 1))
	tw.flush()
	tw.setNow(t0.Add(time.Second))
	r := tw.nodes["eu"].do(Command{Kind: CmdStock, SKU: "A"})
	s := r.Stock
	if r.Err != nil || s.Available != 5 || s.Global != 7 || len(s.Regions) != 2 {
		t.Fatalf("stock %+v", s)
	}
	if u := s.Regions[1]; u.Region != "us" || u.Available != 2 || u.Held != 1 || u.Age != time.Second {
		t.Fatalf("us as seen from eu: %+v", u)
	}
}

// TestBadPeerRows: rows out of range are refused, in process as on the
// wire, so that no peer can wrap a region's available count negative.
func TestBadPeerRows(t *testing.T) {
	tn := newTNode(t, Config{})
	tn.restock("A", 1)
	bad := []Row{
		{SKU: "A", Region: "us", Seq: 1, Sent: []Transfer{{To: "eu", Qty: maxCounter}}},
		{SKU: "A", Region: "us", Seq: 1, Minted: maxCounter},
		{SKU: "A", Region: "us", Seq: 1, Reserved: 1, Released: 1, Sold: 1},
		{SKU: "A", Region: "us", Seq: 1, Sent: []Transfer{{To: "zz", Qty: 1}, {To: "ap", Qty: 1}}},
		{SKU: "A", Region: "eu", Seq: 1},     // another writer's row
		{SKU: "A\x00", Region: "us", Seq: 1}, // bad SKU
		{SKU: "A", Region: "us", Seq: 1, Sent: []Transfer{{To: "us", Qty: 1}}},
	}
	for i, r := range bad {
		m := Message{Type: MsgRows, From: "us", Seq: 1, Rows: []Row{r}}
		before := snap(tn.n)
		if err := tn.n.Step(Input{Now: tn.now, Msg: &m}); err == nil {
			t.Errorf("row %d accepted: %+v", i, r)
		}
		tn.drain()
		if after := snap(tn.n); !reflect.DeepEqual(before, after) {
			t.Errorf("row %d changed state", i)
		}
	}
	// The largest rows that are accepted, from every region at once, keep
	// the arithmetic in range.
	for i := 0; i < MaxRegions-1; i++ {
		r := Row{SKU: "A", Region: "p" + utoa(uint64(i)), Seq: 1, Minted: maxCounter - 1,
			Sent: []Transfer{{To: "eu", Qty: maxCounter - 1}}}
		m := Message{Type: MsgRows, From: r.Region, Seq: 1, Rows: []Row{r}}
		if err := tn.n.Step(Input{Now: tn.now, Msg: &m}); err != nil {
			t.Fatal(err)
		}
		tn.drain()
	}
	if a := tn.n.View("A").Available("eu"); a <= 0 {
		t.Fatalf("available wrapped: %d", a)
	}
}

// TestPendingGrantedByRelease: a hold waiting on a borrow is granted as
// soon as a release here frees the units, without waiting for the answer;
// changes to other SKUs leave it waiting.
func TestPendingGrantedByRelease(t *testing.T) {
	tw := newTNet(t, Config{BorrowTimeout: time.Second}, "eu", "us")
	eu := tw.nodes["eu"]
	tw.nodes["us"].restock("A", 5)
	eu.restock("A", 1)
	eu.restock("B", 1)
	tw.flush()
	h1 := eu.hold(l("A", 1))
	hb := eu.hold(l("B", 1))
	eu.req++
	wait := Command{Kind: CmdHold, ReqID: eu.req, Lines: []Line{l("A", 1)}}
	if err := eu.n.Step(Input{Now: eu.now, Cmd: &wait}); err != nil {
		t.Fatal(err)
	}
	eu.drain()
	tw.dropAll() // the borrow is lost
	if eu.n.Stats().PendingHolds != 1 {
		t.Fatal("not waiting")
	}
	eu.do(Command{Kind: CmdRelease, HoldID: hb.ID})
	eu.restock("B", 3)
	if _, ok := eu.replies[wait.ReqID]; ok {
		t.Fatal("granted by a change of another SKU")
	}
	eu.do(Command{Kind: CmdRelease, HoldID: h1.ID})
	r, ok := eu.replies[wait.ReqID]
	if !ok || r.Err != nil || r.Hold.State != Held {
		t.Fatalf("waiting hold after the release: %+v (answered %v)", r, ok)
	}
	if eu.n.Stats().PendingHolds != 0 || eu.n.Available("A") != 0 {
		t.Fatalf("pending %d, available %d", eu.n.Stats().PendingHolds, eu.n.Available("A"))
	}
}
