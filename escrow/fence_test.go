package escrow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// holdVia runs a hold at tn through the network (it may borrow) and returns
// its reply.
func holdVia(tw *tnet, tn *tnode, lines ...Line) Reply {
	tw.t.Helper()
	tn.req++
	cmd := Command{Kind: CmdHold, ReqID: tn.req, Lines: lines}
	if err := tn.n.Step(Input{Now: tn.now, Cmd: &cmd}); err != nil {
		tw.t.Fatal(err)
	}
	tn.drain()
	tw.flush()
	r, ok := tn.replies[cmd.ReqID]
	if !ok {
		tw.t.Fatalf("no reply to hold %v", lines)
	}
	return r
}

// wipedEU builds the scenario of the fence: us restocks 10 units of A, eu
// borrows 5 of them for a hold, then eu's store is wiped and eu restarts
// empty under the same name. A third region, ap, has seen eu's rows too:
// outside probation a fence takes a majority of eu's peers (two of two).
// It returns the network and eu's sequence before the wipe.
func wipedEU(t *testing.T, bugs plantedbugs.Bugs) (*tnet, uint64) {
	t.Helper()
	cfg := Config{DigestInterval: time.Second, bugs: bugs, Members: []string{"ap", "eu", "us"}}
	tw := newTNet(t, cfg, "ap", "eu", "us")
	tw.nodes["us"].restock("A", 10)
	tw.flush()
	eu := tw.nodes["eu"]
	if r := holdVia(tw, eu, l("A", 5)); r.Err != nil {
		t.Fatalf("hold at eu before the wipe: %v", r.Err)
	}
	before := eu.n.Seq()
	if before == 0 || tw.nodes["us"].n.PeerSeq("eu") != before {
		t.Fatalf("eu seq %d, us has seen %d", before, tw.nodes["us"].n.PeerSeq("eu"))
	}
	// The wipe: same name, empty store, not on probation (the runtime
	// would put it there; this test shows the digest check on its own).
	c := eu.cfg
	tw.nodes["eu"] = newTNode(t, c)
	tw.nodes["eu"].now = eu.now
	return tw, before
}

// gossip advances every clock by d, ticks every node and delivers
// everything (digests, repairs, rows).
func gossip(tw *tnet, d time.Duration) {
	tw.t.Helper()
	for _, r := range sortedKeys(tw.nodes) {
		tw.nodes[r].tick(d)
	}
	tw.flush()
}

// TestFenceWipedRegion: a wiped region learns from a peer's digest that the
// peer has seen more of its rows than it has, fences itself and refuses
// every write with CodeFenced, changing nothing; without the fence the same
// region grants again the units its lost holds took: an oversell.
func TestFenceWipedRegion(t *testing.T) {
	t.Run("without fence it oversells", func(t *testing.T) {
		tw, _ := wipedEU(t, plantedbugs.Bugs{IgnoreFence: true})
		gossip(tw, time.Second)
		gossip(tw, time.Second) // second digest: eu asks us for a repair
		eu := tw.nodes["eu"]
		if got := eu.n.Available("A"); got != 5 {
			t.Fatalf("wiped eu counts %d units of A as available, want the 5 its lost hold took", got)
		}
		if r := eu.do(Command{Kind: CmdHold, Lines: []Line{l("A", 5)}}); r.Err != nil {
			t.Fatalf("wiped eu without fence refused: %v", r.Err)
		}
		// 10 units exist; 5 held before the wipe, 5 now, and us still has 5.
		if us := tw.nodes["us"].n.Available("A"); us != 5 {
			t.Fatalf("us has %d", us)
		}
	})
	t.Run("fenced", func(t *testing.T) {
		tw, before := wipedEU(t, plantedbugs.Bugs{})
		gossip(tw, time.Second)
		eu := tw.nodes["eu"]
		f := eu.n.Fence()
		if !f.Fenced || f.Probation || f.Peer != "us" || f.PeerSeen != before || f.OwnSeq != 0 ||
			f.Voices != "ap,us" {
			t.Fatalf("fence status %+v, want fenced by us at %d", f, before)
		}
		gossip(tw, time.Second) // the repair brings us's row: 5 units look available
		if got := eu.n.Available("A"); got != 5 {
			t.Fatalf("available %d", got)
		}
		snapBefore := snap(eu.n)
		seqUS := tw.nodes["us"].n.PeerSeq("eu")
		writes := []Command{
			{Kind: CmdHold, Lines: []Line{l("A", 1)}},
			{Kind: CmdHold, Lines: []Line{l("A", 1)}, IdemKey: "k1"},
			{Kind: CmdConfirm, HoldID: "eu-0000000000000000000000"},
			{Kind: CmdRelease, HoldID: "eu-0000000000000000000000"},
			{Kind: CmdExtend, HoldID: "eu-0000000000000000000000", TTL: time.Minute},
			{Kind: CmdRestock, SKU: "A", Qty: 3},
			{Kind: CmdWriteOff, SKU: "A", Qty: 1},
		}
		for _, c := range writes {
			r := eu.do(c)
			wantCode(t, c.Kind.String(), r.Err, CodeFenced)
			for _, want := range []string{"sequence " + utoa(before), "sequence 0", "docs/operations.md", "regions ap", "us (up to"} {
				if !strings.Contains(r.Err.Detail, want) {
					t.Fatalf("%s: detail %q does not say %q", c.Kind, r.Err.Detail, want)
				}
			}
			if !eu.last.Persist.Empty() {
				t.Fatalf("%s: refused command persisted %+v", c.Kind, eu.last.Persist)
			}
		}
		if got := snap(eu.n); !reflect.DeepEqual(got, snapBefore) {
			t.Fatalf("state changed while fenced:\n%v\n%v", snapBefore, got)
		}
		if s := eu.n.Stats(); s.Fenced != 1 || s.FenceRefused != uint64(len(writes)) || s.Granted != 0 {
			t.Fatalf("stats %+v", s)
		}
		// Reads still work.
		if r := eu.do(Command{Kind: CmdStock, SKU: "A"}); r.Err != nil || r.Stock.Available != 5 {
			t.Fatalf("stock while fenced: %+v", r)
		}
		wantCode(t, "get", eu.do(Command{Kind: CmdGet, HoldID: "eu-0000000000000000000000"}).Err, CodeNotFound)
		// Sticky: more gossip, a long time, clean digests change nothing.
		for i := 0; i < 5; i++ {
			gossip(tw, time.Minute)
		}
		if !eu.n.Fence().Fenced {
			t.Fatal("fence lifted")
		}
		wantCode(t, "hold later", eu.do(Command{Kind: CmdHold, Lines: []Line{l("A", 1)}}).Err, CodeFenced)
		// us never saw eu's new rows: nothing was written.
		if got := tw.nodes["us"].n.PeerSeq("eu"); got != seqUS {
			t.Fatalf("us has seen eu up to %d, was %d", got, seqUS)
		}
	})
}

// TestFenceByRepairRequest: a peer asking for our rows after a sequence we
// never reached has seen rows we lost; one such peer is a lone claim, a
// majority of the other members fences.
func TestFenceByRepairRequest(t *testing.T) {
	eu := newTNode(t, Config{Members: []string{"ap", "eu", "us"}})
	eu.restock("A", 3)
	if err := eu.n.Step(Input{Now: eu.now, Msg: &Message{Type: MsgRepairReq, From: "us", To: "eu", Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	if eu.n.Fence().Fenced {
		t.Fatal("fenced by a repair within its sequence")
	}
	eu.drain()
	if err := eu.n.Step(Input{Now: eu.now, Msg: &Message{Type: MsgRepairReq, From: "us", To: "eu", Seq: 9}}); err != nil {
		t.Fatal(err)
	}
	eu.drain()
	if f := eu.n.Fence(); f.Fenced || eu.n.Stats().FenceClaims != 1 {
		t.Fatalf("one voice fenced eu or was not counted: %+v, stats %+v", f, eu.n.Stats())
	}
	if err := eu.n.Step(Input{Now: eu.now, Msg: &Message{Type: MsgRepairReq, From: "ap", To: "eu", Seq: 7}}); err != nil {
		t.Fatal(err)
	}
	eu.drain()
	if f := eu.n.Fence(); !f.Fenced || f.Peer != "ap" || f.PeerSeen != 7 || f.OwnSeq != 1 ||
		f.Voices != "ap,us" {
		t.Fatalf("fence %+v", f)
	}
	for _, m := range eu.last.Send {
		if m.Type == MsgRows {
			t.Fatalf("fenced node served a repair: %+v", m)
		}
	}
}

// TestFencedLendsNothing: a fenced region answers a borrow at once with no
// units, ignores advice, and fails the holds that were waiting on a borrow.
func TestFencedLendsNothing(t *testing.T) {
	tw := newTNet(t, Config{Members: []string{"ap", "eu", "us"}}, "ap", "eu", "us")
	us, eu := tw.nodes["us"], tw.nodes["eu"]
	us.restock("A", 4)
	eu.restock("A", 4)
	tw.flush()
	// eu waits on a borrow from us for a hold of 6.
	eu.req++
	cmd := Command{Kind: CmdHold, ReqID: eu.req, Lines: []Line{l("A", 6)}, IdemKey: "cart"}
	if err := eu.n.Step(Input{Now: eu.now, Cmd: &cmd}); err != nil {
		t.Fatal(err)
	}
	eu.drain()
	if eu.n.Stats().PendingHolds != 1 {
		t.Fatalf("stats %+v", eu.n.Stats())
	}
	// Now digests of both peers fence it before the loan arrives.
	dig := Message{Type: MsgDigest, From: "ap", Seq: tw.nodes["ap"].n.Seq(), Seen: []RegionSeq{{Region: "eu", Seq: 50}}}
	tw.deliverMsg(tmsg{to: "eu", m: dig})
	dig = Message{Type: MsgDigest, From: "us", Seq: us.n.Seq(), Seen: []RegionSeq{{Region: "eu", Seq: 50}}}
	tw.deliverMsg(tmsg{to: "eu", m: dig})
	if r, ok := eu.replies[cmd.ReqID]; !ok || r.Err == nil || r.Err.Code != CodeFenced {
		t.Fatalf("pending hold: %+v (ok %v)", r, ok)
	}
	tw.flush() // the loan arrives: it must not grant anything
	if s := eu.n.Stats(); s.Granted != 0 || s.PendingHolds != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A borrow request gets an immediate empty answer.
	given := eu.n.View("A")["eu"].SentTo("us")
	tw.deliverMsg(tmsg{to: "eu", m: Message{Type: MsgBorrowReq, From: "us", To: "eu", ID: 77, SKU: "A", Qty: 2, Urgent: true}})
	var resp *Message
	for i := range tw.queue {
		if m := &tw.queue[i].m; m.Type == MsgBorrowResp && m.ID == 77 {
			resp = m
		}
	}
	if resp == nil || resp.Qty != 0 || len(resp.Rows) != 0 {
		t.Fatalf("borrow answer %+v", resp)
	}
	// Advice is ignored.
	tw.deliverMsg(tmsg{to: "eu", m: Message{Type: MsgAdvice, From: "rebalancer", Epoch: 1,
		Moves: []Move{{SKU: "A", From: "eu", To: "us", Qty: 2}}}})
	if got := eu.n.View("A")["eu"].SentTo("us"); got != given {
		t.Fatalf("fenced eu sent %d units to us, had sent %d", got, given)
	}
}

// TestFencedGetOfExpiredHold: a get of a hold past its deadline answers
// "expired" without expiring it (which would write the own row), and the
// sweeper leaves it alone.
func TestFencedGetOfExpiredHold(t *testing.T) {
	eu := newTNode(t, Config{})
	eu.restock("A", 3)
	h := eu.hold(l("A", 2))
	eu.n.ImposeFence(FenceStatus{Fenced: true, Peer: "us", PeerSeen: 99, OwnSeq: 2, Detail: "fenced for the test"})
	eu.tick(time.Hour)
	before := snap(eu.n)
	r := eu.do(Command{Kind: CmdGet, HoldID: h.ID})
	if r.Err != nil || r.Hold.State != Expired {
		t.Fatalf("get: %+v", r)
	}
	if !eu.last.Persist.Empty() || !reflect.DeepEqual(snap(eu.n), before) {
		t.Fatal("get of an expired hold wrote while fenced")
	}
	if eu.n.Available("A") != 1 {
		t.Fatalf("available %d", eu.n.Available("A"))
	}
	wantCode(t, "release", eu.do(Command{Kind: CmdRelease, HoldID: h.ID}).Err, CodeFenced)
	// ImposeFence is sticky and the first reason stays.
	eu.n.ImposeFence(FenceStatus{Fenced: true, Peer: "ap", Detail: "other"})
	if f := eu.n.Fence(); f.Peer != "us" {
		t.Fatalf("fence %+v", f)
	}
}

func digestFrom(from string, seen ...RegionSeq) *Message {
	return &Message{Type: MsgDigest, From: from, Seen: seen}
}

// TestProbation: a node whose store started empty refuses writes until
// peers report that they never saw its rows, and not before minWait; a
// report that they did fences it for good; with an allow-list every listed
// peer must report; after maxWait it proceeds anyway.
func TestProbation(t *testing.T) {
	const minWait, maxWait = 1500 * time.Millisecond, 30 * time.Second
	start := func(t *testing.T, peers ...string) *tnode {
		eu := newTNode(t, Config{Peers: peers})
		if !eu.n.BeginProbation(minWait, maxWait) {
			t.Fatal("a fresh node refused probation")
		}
		return eu
	}
	deliver := func(t *testing.T, eu *tnode, m *Message) {
		t.Helper()
		if err := eu.n.Step(Input{Now: eu.now, Msg: m}); err != nil {
			t.Fatal(err)
		}
		eu.drain()
	}
	t.Run("clean digest", func(t *testing.T) {
		eu := start(t)
		r := eu.do(Command{Kind: CmdRestock, SKU: "A", Qty: 1})
		wantCode(t, "restock on probation", r.Err, CodeFenced)
		if !strings.Contains(r.Err.Detail, "probation") || !strings.Contains(r.Err.Detail, "docs/operations.md") {
			t.Fatalf("detail %q", r.Err.Detail)
		}
		deliver(t, eu, digestFrom("us", RegionSeq{Region: "ap", Seq: 4}))
		if !eu.n.Fence().Fenced {
			t.Fatal("probation ended before minWait")
		}
		eu.tick(minWait)
		if f := eu.n.Fence(); f.Fenced || f.Unconfirmed || !strings.Contains(f.Detail, "us reported") {
			t.Fatalf("probation did not end on a clean digest: %+v", f)
		}
		eu.restock("A", 2)
		eu.hold(l("A", 1))
		if s := eu.n.Stats(); s.Fenced != 0 || s.FenceRefused != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("dirty digest", func(t *testing.T) {
		eu := start(t)
		deliver(t, eu, digestFrom("ap"))
		deliver(t, eu, digestFrom("us", RegionSeq{Region: "eu", Seq: 3}))
		eu.tick(maxWait + time.Second)
		f := eu.n.Fence()
		if !f.Fenced || f.Probation || f.Peer != "us" || f.PeerSeen != 3 {
			t.Fatalf("fence %+v", f)
		}
		wantCode(t, "restock", eu.do(Command{Kind: CmdRestock, SKU: "A", Qty: 1}).Err, CodeFenced)
	})
	t.Run("allow-list waits for every peer", func(t *testing.T) {
		eu := start(t, "ap", "eu", "us")
		deliver(t, eu, digestFrom("us"))
		eu.tick(minWait * 2)
		if !eu.n.Fence().Fenced {
			t.Fatal("probation ended with ap silent")
		}
		deliver(t, eu, digestFrom("ap", RegionSeq{Region: "us", Seq: 8}))
		if f := eu.n.Fence(); f.Fenced {
			t.Fatalf("still fenced: %+v", f)
		}
	})
	t.Run("max wait", func(t *testing.T) {
		eu := start(t)
		eu.tick(0) // the wait counts from the node's first input
		eu.tick(maxWait - time.Millisecond)
		if !eu.n.Fence().Fenced {
			t.Fatal("ended early")
		}
		eu.tick(time.Millisecond)
		if f := eu.n.Fence(); f.Fenced || !f.Unconfirmed || !strings.Contains(f.Detail, "no peer reported") {
			t.Fatalf("fence %+v", f)
		}
	})
	t.Run("restarted node is not fresh", func(t *testing.T) {
		eu := newTNode(t, Config{})
		eu.restock("A", 1)
		eu.restart()
		if eu.n.BeginProbation(minWait, maxWait) || eu.n.Fence().Fenced {
			t.Fatal("a node restored with state went on probation")
		}
		eu.hold(l("A", 1))
	})
	t.Run("node on its own clock", func(t *testing.T) {
		// BeginProbation before the first Step: the wait counts from it.
		eu := start(t)
		eu.now = t0.Add(time.Hour)
		deliver(t, eu, digestFrom("us"))
		if !eu.n.Fence().Fenced {
			t.Fatal("probation ended at the first input")
		}
		eu.tick(minWait)
		if eu.n.Fence().Fenced {
			t.Fatal("probation did not end")
		}
	})
}

// TestFenceBadSeen: a digest with a malformed Seen list is rejected whole
// and changes nothing.
func TestFenceBadSeen(t *testing.T) {
	many := make([]RegionSeq, MaxRegions+1)
	for i := range many {
		many[i] = RegionSeq{Region: "r" + utoa(uint64(100+i)), Seq: 1}
	}
	cases := map[string]*Message{
		"unsorted":            digestFrom("us", RegionSeq{Region: "us", Seq: 1}, RegionSeq{Region: "eu", Seq: 9}),
		"duplicate":           digestFrom("us", RegionSeq{Region: "eu", Seq: 9}, RegionSeq{Region: "eu", Seq: 9}),
		"bad name":            digestFrom("us", RegionSeq{Region: "EU", Seq: 9}),
		"too big":             digestFrom("us", RegionSeq{Region: "eu", Seq: maxCounter}),
		"too many":            digestFrom("us", many...),
		"on rows":             {Type: MsgRows, From: "us", Seq: 1, Seen: []RegionSeq{{Region: "eu", Seq: 9}}},
		"fenced flag on rows": {Type: MsgRows, From: "us", Seq: 1, Fenced: true},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			eu := newTNode(t, Config{})
			eu.restock("A", 1)
			before := snap(eu.n)
			if err := eu.n.Step(Input{Now: eu.now, Msg: m}); CodeOf(err) != CodeInvalid {
				t.Fatalf("accepted: %v", err)
			}
			if eu.n.Fence().Fenced || !reflect.DeepEqual(snap(eu.n), before) {
				t.Fatal("a rejected digest changed the node")
			}
			if b, err := EncodeMessage(nil, m); err == nil {
				if _, err := DecodeMessage(b); err == nil {
					t.Fatal("the wire decoder accepts it")
				}
			}
		})
	}
}

// TestDigestSeenWire: digests carry Seen (what the node has seen of each
// peer), it survives the codec, and the decoder refuses malformed lists.
func TestDigestSeenWire(t *testing.T) {
	tw := newTNet(t, Config{DigestInterval: time.Second}, "ap", "eu", "us")
	tw.nodes["eu"].restock("A", 1)
	tw.nodes["eu"].restock("B", 1)
	tw.nodes["ap"].restock("A", 1)
	tw.flush()
	us := tw.nodes["us"]
	us.tick(time.Second)
	var dig *Message
	for i := range us.sent {
		if us.sent[i].Type == MsgDigest {
			dig = &us.sent[i]
		}
	}
	want := []RegionSeq{{Region: "ap", Seq: 1}, {Region: "eu", Seq: 2}}
	if dig == nil || !reflect.DeepEqual(dig.Seen, want) {
		t.Fatalf("digest %+v, want seen %+v", dig, want)
	}
	b, err := EncodeMessage(nil, dig)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMessage(b)
	if err != nil || !reflect.DeepEqual(got.Seen, want) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// Without Seen the encoding is what it was before Seen existed: no flag.
	plain := *dig
	plain.Seen = nil
	pb, _ := EncodeMessage(nil, &plain)
	if got, err := DecodeMessage(pb); err != nil || got.Seen != nil {
		t.Fatalf("digest without seen: %+v, %v", got, err)
	}
	// The tail of b is the seen list: count, then ("ap", 1), ("eu", 2).
	tail := []byte{2, 2, 'a', 'p', 1, 2, 'e', 'u', 2}
	if !bytes.HasSuffix(b, tail) {
		t.Fatalf("encoding %x does not end with the seen list %x", b, tail)
	}
	head := b[:len(b)-len(tail)]
	bad := map[string][]byte{
		"flag without list": append(append([]byte(nil), head...), 0),
		"truncated":         append(append([]byte(nil), head...), 2, 2, 'a', 'p', 1),
		"unsorted":          append(append([]byte(nil), head...), 2, 2, 'e', 'u', 2, 2, 'a', 'p', 1),
		"bad region":        append(append([]byte(nil), head...), 1, 2, 'E', 'U', 2),
		"too many":          binary.AppendUvarint(append([]byte(nil), head...), MaxRegions+1),
		"seq out of range":  binary.AppendUvarint(append(append([]byte(nil), head...), 1, 2, 'e', 'u'), maxCounter),
	}
	for name, in := range bad {
		if _, err := DecodeMessage(in); err == nil || !errors.Is(err, ErrWire) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := EncodeMessage(nil, &Message{Type: MsgDigest, From: "eu", Seen: make([]RegionSeq, MaxRegions+1)}); err == nil {
		t.Error("encoded an oversized seen list")
	}
}

// TestFencedPeerNotAsked: a fenced region says so in its digests, and its
// peers stop asking it to lend (it would give nothing, and a hold planned
// on it would be refused although another peer had the units).
func TestFencedPeerNotAsked(t *testing.T) {
	tw := newTNet(t, Config{DigestInterval: time.Second}, "ap", "eu", "us")
	tw.nodes["eu"].restock("A", 8)
	tw.nodes["ap"].restock("A", 3)
	tw.flush()
	eu, us := tw.nodes["eu"], tw.nodes["us"]
	eu.n.ImposeFence(FenceStatus{Fenced: true, Peer: "ap", PeerSeen: 99, OwnSeq: 1, Detail: "fenced for the test"})
	// Before us hears eu's digest, it plans the loan on eu (the larger
	// surplus) and is refused.
	if r := holdVia(tw, us, l("A", 3)); r.Err == nil || r.Err.Code != CodeInsufficientStock {
		t.Fatalf("hold planned on the fenced eu: %+v", r)
	}
	gossip(tw, time.Second) // eu's digest says it is fenced
	if r := holdVia(tw, us, l("A", 3)); r.Err != nil {
		t.Fatalf("hold at us once eu's digest said fenced: %v", r.Err)
	}
	if got := tw.nodes["ap"].n.View("A")["ap"].SentTo("us"); got != 3 {
		t.Fatalf("ap lent %d", got)
	}
	if got := eu.n.View("A")["eu"].SentTo("us"); got != 0 {
		t.Fatalf("the fenced eu lent %d", got)
	}
}

// TestDigestFencedFlag: only a fence for good is announced; a probation
// ends within seconds, and peers that skipped the region as a lender until
// its next digest would refuse holds it could serve.
func TestDigestFencedFlag(t *testing.T) {
	eu := newTNode(t, Config{DigestInterval: time.Second})
	if !eu.n.BeginProbation(time.Second, time.Minute) {
		t.Fatal("no probation")
	}
	lastDigest := func() *Message {
		t.Helper()
		eu.sent = nil
		eu.tick(time.Second)
		for i := range eu.sent {
			if eu.sent[i].Type == MsgDigest {
				return &eu.sent[i]
			}
		}
		t.Fatal("no digest")
		return nil
	}
	if m := lastDigest(); m.Fenced {
		t.Fatal("a probation was announced as a fence")
	}
	eu.n.ImposeFence(FenceStatus{Fenced: true, Peer: "us", PeerSeen: 5, Detail: "fenced for the test"})
	if m := lastDigest(); !m.Fenced {
		t.Fatal("the fence was not announced")
	}
}

// TestFencedHomeNotUsed: a region whose digest says it is fenced is no
// home: its peers neither route holds to it nor send it their units of the
// SKU (they would be stranded there). Without the fence, the same advice
// makes us send its unit to eu at once.
func TestFencedHomeNotUsed(t *testing.T) {
	for _, fenced := range []bool{false, true} {
		tw := newTNet(t, Config{DigestInterval: time.Second}, "eu", "us")
		eu, us := tw.nodes["eu"], tw.nodes["us"]
		eu.restock("A", 1)
		us.restock("A", 1)
		tw.flush()
		if fenced {
			eu.n.ImposeFence(FenceStatus{Fenced: true, Peer: "us", PeerSeen: 9, OwnSeq: 1, Detail: "fenced for the test"})
		}
		gossip(tw, time.Second) // eu's digest
		advice := Message{Type: MsgAdvice, From: "rebalancer", Epoch: 1, Homes: []Home{{SKU: "A", Region: "eu"}}}
		tw.deliverMsg(tmsg{to: "us", m: advice})
		if h := us.n.Homes(); len(h) != 1 {
			t.Fatalf("homes at us: %+v", h)
		}
		sent := us.n.View("A")["us"].SentTo("eu")
		r := us.do(Command{Kind: CmdHold, Lines: []Line{l("A", 2)}, IdemKey: "k"})
		routed := r.Err != nil && r.Err.Code == CodeRouted
		if fenced && (sent != 0 || routed) {
			t.Fatalf("fenced home: us sent it %d units, hold routed %v (%v)", sent, routed, r.Err)
		}
		if !fenced && (sent != 1 || !routed) {
			t.Fatalf("healthy home: us sent it %d units, hold routed %v (%v)", sent, routed, r.Err)
		}
	}
}

// TestNoAdviceToFencedRegion: advice to send units to a region whose
// digest says it is fenced is not applied (the units would be stranded).
func TestNoAdviceToFencedRegion(t *testing.T) {
	for _, fenced := range []bool{false, true} {
		tw := newTNet(t, Config{DigestInterval: time.Second}, "eu", "us")
		eu, us := tw.nodes["eu"], tw.nodes["us"]
		us.restock("A", 10)
		tw.flush()
		if fenced {
			eu.n.ImposeFence(FenceStatus{Fenced: true, Peer: "us", PeerSeen: 9, Detail: "fenced for the test"})
		}
		gossip(tw, time.Second)
		tw.deliverMsg(tmsg{to: "us", m: Message{Type: MsgAdvice, From: "rebalancer", Epoch: 1,
			Moves: []Move{{SKU: "A", From: "us", To: "eu", Qty: 4}}}})
		sent := us.n.View("A")["us"].SentTo("eu")
		if want := map[bool]uint64{false: 4, true: 0}[fenced]; sent != want {
			t.Fatalf("fenced %v: us sent %d to eu, want %d", fenced, sent, want)
		}
	}
}
