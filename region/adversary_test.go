package region_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/region"
)

// The adversary suite: the forged inputs of the zero-trust issue (16),
// published by a plain NATS client with the real codec against real
// regions (Pebble, embedded NATS, gossip), eu and us of a cluster whose
// members are ap, eu and us (ap is listed but not running: a member an
// attacker might impersonate, or whose key it stole). This file runs an
// unsigned cluster (membership and bounds alone); adversary_signed_test.go
// runs a signed one (members with public keys, regions with
// signing_key_file, wired through gossip.ConfigFor as `holdfast region`
// does). Each row of the table, and the test that asserts it:
//
//	rows from 130 made-up regions, Sent[eu]=2^56-1 (wrap, panic, no restart)
//	    TestAdversaryWrapAndOversell: dropped (non-member), no panic, restarts
//	row from made-up zz, Sent[eu]=1000 for a SKU of 5 (oversell)
//	    TestAdversaryWrapAndOversell: still 5 available, a hold of 1000 refused
//	    TestAdversarySignedForgery: the same in a member's name, unsigned or
//	    forged-signed: dropped (signature), no unit added
//	digest from zz claiming eu's rows up to 2^40; repair request with a high seq
//	    TestAdversaryOneVoiceNoFence: no fence, not after a restart either
//	    TestAdversarySignedForgery: forged digests of members: dropped, no claim
//	the same digest with a real member's credentials (fences every region)
//	    TestAdversaryOneVoiceNoFence, TestAdversaryCompromisedMemberCannotFence:
//	    one voice is a counted claim, not a fence (a majority is needed)
//	advice moving units to made-up zz (stranded)
//	    TestAdversaryAdvice: nothing moves to zz, no home there
//	advice with an epoch an hour ahead (genuine advice ignored)
//	    TestAdversaryAdvice: ignored; genuine advice still applied
//	forwarded release of another region's hold with a self-declared From
//	    TestAdversaryForwardedRelease: refused unsigned, forged, or signed by
//	    another member; the hold stays held
//	    TestAdversaryForwardReplay: a recorded forwarded command is refused
//	    (replay)
//	region-eu subscribed to _INBOX.> reads us<->ap replies
//	    configs/nats_test.go TestSuperclusterInboxes (and
//	    TestSuperclusterPermissions): each region has its own inbox prefix
//	    and cannot subscribe to the others'
//	300 repair requests for seq 0 (6 KB in, 9.4 MB out)
//	    TestAdversaryRepairFlood: the burst (5) served, the rest rate-limited,
//	    answer bytes bounded by the served answers
//	a replayed or forged borrow request stamped long before its requester's
//	latest clock reading (quota moved to a requester that gave up)
//	    TestAdversaryStaleBorrow: refused, no quota moves; a fresh one is
//	    honoured
//	digests naming 200k SKUs, rows for 100k SKUs (memory and store unbounded)
//	    TestAdversarySKUFlood, TestAdversarySignedSKUFlood: at most
//	    max_peer_skus learned, the rest refused; store and live heap bounded
//
// Every test asserts no panic (the regions keep serving), no oversell, no
// fence from one voice, no stranded units, bounded state.

type adversary struct {
	w  *mrWorld
	nc *nats.Conn
}

func newAdversary(t *testing.T, maxPeerSKUs int) *adversary {
	w := newMRWorld(t)
	w.configure = func(c *region.Config) {
		c.Members = []region.Member{{Name: "ap"}, {Name: "eu"}, {Name: "us"}}
		c.Escrow.MaxPeerSKUs = maxPeerSKUs
		c.FreshProbation = 200 * time.Millisecond
		// ap never runs, so its clean report never comes: probation ends
		// at its maximum.
		c.FreshProbationMax = time.Second
	}
	w.start("eu")
	w.start("us")
	w.waitProbationOver(10 * time.Second)
	nc, err := nats.Connect(w.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &adversary{w: w, nc: nc}
}

// publish sends m, encoded by escrow's codec, on the subject gossip uses
// for it.
func (a *adversary) publish(m escrow.Message) {
	a.w.t.Helper()
	b, err := escrow.EncodeMessage(nil, &m)
	if err != nil {
		a.w.t.Fatal(err)
	}
	subj, err := gossip.SubjectFor(mrCluster, &m)
	if err != nil {
		a.w.t.Fatal(err)
	}
	if err := a.nc.Publish(subj, b); err != nil {
		a.w.t.Fatal(err)
	}
}

// waitStat waits until eu's stats satisfy ok (the forged messages reached
// the node and were refused).
func (a *adversary) waitStat(name string, what string, ok func(s escrow.Stats) bool) escrow.Stats {
	a.w.t.Helper()
	var s escrow.Stats
	testutil.WaitFor(a.w.t, 10*time.Second, func() bool {
		s = a.w.sites[name].reg.Stats()
		return ok(s)
	}, func() string { return fmt.Sprintf("%s: %s; stats %+v", name, what, s) })
	return s
}

func (a *adversary) available(name, sku string) int64 {
	var v int64
	a.w.inspect(name, func(n *escrow.Node) { v = int64(n.Available(sku)) })
	return v
}

// assertHealthy: eu serves, is not fenced, and its books are sound.
func (a *adversary) assertHealthy(sku string, stock int64) {
	t := a.w.t
	t.Helper()
	if f := a.w.sites["eu"].reg.Fence(); f.Fenced {
		t.Fatalf("eu fenced: %+v", f)
	}
	v := a.w.view("eu", sku)
	if got := v.Available("eu"); got > stock {
		t.Fatalf("eu counts %d units of %s available, at most %d exist", got, sku, stock)
	}
	for r := range v {
		if r != "eu" && r != "us" && r != "ap" {
			t.Fatalf("eu stored a row of non-member %s: %+v", r, v[r])
		}
	}
}

// TestAdversaryWrapAndOversell: rows from 130 made-up regions each
// claiming Sent[eu] = 2^56-1 (the int64 wrap that panicked the region and
// kept it from restarting), and a row of made-up zz sending 1000 units of a
// SKU stocked with 5 (the oversell). Both are dropped as non-members: eu
// still has 5 units, a hold of 1000 is refused, and eu restarts cleanly.
func TestAdversaryWrapAndOversell(t *testing.T) {
	a := newAdversary(t, 0)
	a.w.mustDo("eu", restock("A", 5))
	for i := 0; i < 130; i++ {
		r := fmt.Sprintf("zz%d", i)
		a.publish(escrow.Message{Type: escrow.MsgRows, From: r, Seq: 1,
			Rows: []escrow.Row{{SKU: "A", Region: r, Seq: 1, Sent: []escrow.Transfer{{To: "eu", Qty: 1<<56 - 1}}}}})
	}
	a.publish(escrow.Message{Type: escrow.MsgRows, From: "zz", Seq: 1,
		Rows: []escrow.Row{{SKU: "A", Region: "zz", Seq: 1, Sent: []escrow.Transfer{{To: "eu", Qty: 1000}}}}})
	a.waitStat("eu", "131 non-member rows refused", func(s escrow.Stats) bool { return s.NonMember >= 131 })
	if got := a.available("eu", "A"); got != 5 {
		t.Fatalf("eu has %d units of A available, want 5", got)
	}
	if r := a.w.mustDo("eu", hold("A", 1000)); r.Err == nil {
		t.Fatalf("hold of 1000 granted: oversell %+v", r.Hold)
	}
	a.assertHealthy("A", 5)
	a.w.stop("eu")
	a.w.start("eu")
	if got := a.available("eu", "A"); got != 5 {
		t.Fatalf("after restart eu has %d units of A available, want 5", got)
	}
	if r := a.w.mustDo("eu", hold("A", 2)); r.Err != nil {
		t.Fatalf("hold after restart: %v", r.Err)
	}
}

// TestAdversaryOneVoiceNoFence: a digest claiming eu's rows up to 2^40,
// from a made-up region and then in the name of member us, and a repair
// request with a high sequence from made-up zz: eu does not fence itself
// (one member's voice is a claim, counted; a non-member's is nothing),
// and keeps granting.
func TestAdversaryOneVoiceNoFence(t *testing.T) {
	a := newAdversary(t, 0)
	a.w.mustDo("eu", restock("A", 5))
	seen := []escrow.RegionSeq{{Region: "eu", Seq: 1 << 40}}
	a.publish(escrow.Message{Type: escrow.MsgDigest, From: "zz", Seq: 1, Seen: seen})
	a.publish(escrow.Message{Type: escrow.MsgRepairReq, From: "zz", To: "eu", Seq: 1 << 40})
	a.waitStat("eu", "non-member claims refused", func(s escrow.Stats) bool { return s.NonMember >= 2 })
	var usSeq uint64
	a.w.inspect("us", func(n *escrow.Node) { usSeq = n.Seq() })
	a.publish(escrow.Message{Type: escrow.MsgDigest, From: "us", Seq: usSeq, Seen: seen})
	a.waitStat("eu", "one member's claim counted", func(s escrow.Stats) bool { return s.FenceClaims == 1 })
	a.assertHealthy("A", 5)
	if r := a.w.mustDo("eu", hold("A", 1)); r.Err != nil {
		t.Fatalf("hold after one voice: %v", r.Err)
	}
	// The claim does not fence across a restart either.
	a.w.stop("eu")
	a.w.start("eu")
	if r := a.w.mustDo("eu", hold("A", 1)); r.Err != nil {
		t.Fatalf("hold after restart: %v", r.Err)
	}
}

// TestAdversaryAdvice: advice moving eu's units to made-up zz (they would
// be stranded for good) moves nothing; advice with an epoch an hour ahead
// is ignored, and one 50 s ahead is applied but does not shut out genuine
// advice a moment later.
func TestAdversaryAdvice(t *testing.T) {
	a := newAdversary(t, 0)
	a.w.mustDo("eu", restock("A", 20))
	now := time.Now()
	a.publish(escrow.Message{Type: escrow.MsgAdvice, From: "rb", Epoch: uint64(now.UnixMilli()),
		Moves: []escrow.Move{{SKU: "A", From: "eu", To: "zz", Qty: 10}}, Homes: []escrow.Home{{SKU: "A", Region: "zz"}}})
	a.waitStat("eu", "advice to zz refused", func(s escrow.Stats) bool { return s.NonMember >= 2 })
	a.publish(escrow.Message{Type: escrow.MsgAdvice, From: "rb", Epoch: uint64(now.Add(time.Hour).UnixMilli())})
	a.waitStat("eu", "advice an hour ahead ignored", func(s escrow.Stats) bool { return s.AdviceIgnored >= 1 })
	a.publish(escrow.Message{Type: escrow.MsgAdvice, From: "rb", Epoch: uint64(now.Add(50 * time.Second).UnixMilli())})
	var genuine escrow.Message
	testutil.WaitFor(t, 30*time.Second, func() bool {
		genuine = escrow.Message{Type: escrow.MsgAdvice, From: "rb", Epoch: uint64(time.Now().UnixMilli()),
			Moves: []escrow.Move{{SKU: "A", From: "eu", To: "us", Qty: 3}}}
		a.publish(genuine)
		return a.w.view("eu", "A")["eu"].SentTo("us") > 0
	}, func() string { return "genuine advice never applied after a forged future epoch" })
	if row := a.w.view("eu", "A")["eu"]; row.SentTo("zz") != 0 {
		t.Fatalf("eu sent units to zz: %+v", row)
	}
	a.assertHealthy("A", 20)
}

// TestAdversarySKUFlood: digests naming thousands of SKUs and rows of
// thousands more, from a member's name: eu learns at most max_peer_skus of
// them (and stores rows only within it), counts the rest, and keeps
// serving.
func TestAdversarySKUFlood(t *testing.T) {
	const limit = 500
	a := newAdversary(t, limit)
	var usSeq uint64
	a.w.inspect("us", func(n *escrow.Node) { usSeq = n.Seq() })
	for batch := 0; batch < 4; batch++ {
		var d []escrow.SKUDigest
		for i := 0; i < 1000; i++ {
			d = append(d, escrow.SKUDigest{SKU: fmt.Sprintf("flood-%d-%d", batch, i), Available: 1})
		}
		a.publish(escrow.Message{Type: escrow.MsgDigest, From: "us", Seq: usSeq, Digest: d})
	}
	s := a.waitStat("eu", "SKUs over the limit refused", func(s escrow.Stats) bool { return s.PeerSKUsRefused >= 3000 })
	if s.PeerSKUs > limit {
		t.Fatalf("eu learned %d SKUs from peers, limit %d", s.PeerSKUs, limit)
	}
	var skus int
	a.w.inspect("eu", func(n *escrow.Node) { skus = len(n.SKUs()) })
	if skus > limit+1 {
		t.Fatalf("eu keeps %d SKUs", skus)
	}
	a.w.mustDo("eu", restock("own", 3)) // its own SKUs are not limited
	if r := a.w.mustDo("eu", hold("own", 3)); r.Err != nil {
		t.Fatalf("hold after the flood: %v", r.Err)
	}
}

// TestAdversaryStaleBorrow: a borrow request in us's name stamped a minute
// before us's latest clock reading eu has (a replayed old request, or a
// forged one) is refused and moves no quota; a request stamped now, the
// control, is honoured.
func TestAdversaryStaleBorrow(t *testing.T) {
	a := newAdversary(t, 0)
	a.w.mustDo("eu", restock("A", 10))
	var mark time.Time
	testutil.WaitFor(t, 10*time.Second, func() bool {
		a.w.inspect("eu", func(n *escrow.Node) { mark = n.PeerClock("us") })
		return !mark.IsZero()
	}, func() string { return "eu never learned us's clock from its digests" })
	a.publish(escrow.Message{Type: escrow.MsgBorrowReq, From: "us", To: "eu", ID: 1, SKU: "A", Qty: 4, Urgent: true,
		Epoch: uint64(mark.Add(-time.Minute).UnixMilli())})
	s := a.waitStat("eu", "the stale request refused", func(s escrow.Stats) bool { return s.BorrowStaleRefused >= 1 })
	if s.DonatedUnits != 0 {
		t.Fatalf("eu donated %d units for a stale request", s.DonatedUnits)
	}
	if row := a.w.view("eu", "A")["eu"]; row.SentTo("us") != 0 {
		t.Fatalf("eu sent units to us for a stale request: %+v", row)
	}
	if got := a.available("eu", "A"); got != 10 {
		t.Fatalf("eu has %d units of A available, want 10", got)
	}
	a.publish(escrow.Message{Type: escrow.MsgBorrowReq, From: "us", To: "eu", ID: 2, SKU: "A", Qty: 4, Urgent: true,
		Epoch: uint64(time.Now().UnixMilli())})
	s = a.waitStat("eu", "the fresh request honoured", func(s escrow.Stats) bool { return s.DonatedUnits >= 4 })
	if s.BorrowStaleRefused != 1 {
		t.Fatalf("eu refused %d requests as stale, want 1 (the fresh one honoured)", s.BorrowStaleRefused)
	}
	a.assertHealthy("A", 10)
}
