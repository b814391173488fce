package escrow

import (
	"testing"
	"time"
)

// TestResyncRepairsAtOnce: after the runtime's link comes back (Resync),
// a region asks every peer for the rows it missed and sends an urgent
// digest; a peer that missed its rows asks for them on that single digest
// instead of waiting for a second one. Without Resync, one digest is not
// enough (a digest may overtake the rows it counts).
func TestResyncRepairsAtOnce(t *testing.T) {
	for _, resync := range []bool{false, true} {
		tw := newTNet(t, Config{DigestInterval: time.Hour}, "eu", "us")
		eu, us := tw.nodes["eu"], tw.nodes["us"]
		eu.restock("A", 5)
		us.restock("B", 5)
		tw.flush()
		// The link is down: both sides' rows are lost.
		eu.restock("A", 1)
		us.restock("B", 1)
		tw.dropAll()
		if us.n.PeerSeq("eu") == eu.n.Seq() || eu.n.PeerSeq("us") == us.n.Seq() {
			t.Fatal("the lost rows arrived")
		}
		// The link is back. Only eu's runtime saw it (us's stayed up).
		if err := eu.n.Step(Input{Now: eu.now, Resync: resync}); err != nil {
			t.Fatal(err)
		}
		eu.drain()
		tw.collect()
		var repairs, urgent int
		for _, q := range tw.queue {
			switch {
			case q.m.Type == MsgRepairReq && q.to == "us" && q.m.Seq == eu.n.PeerSeq("us"):
				repairs++
			case q.m.Type == MsgDigest && q.m.Urgent:
				urgent++
			}
		}
		tw.flush()
		caughtUp := us.n.PeerSeq("eu") == eu.n.Seq() && eu.n.PeerSeq("us") == us.n.Seq()
		if !resync {
			if repairs != 0 || urgent != 0 || caughtUp {
				t.Fatalf("without resync: %d repairs, %d urgent digests, caught up %v", repairs, urgent, caughtUp)
			}
			continue
		}
		if repairs != 1 || urgent != 1 {
			t.Fatalf("resync sent %d repair requests to us and %d urgent digests, want 1 and 1", repairs, urgent)
		}
		if !caughtUp {
			t.Fatalf("after resync: us has eu up to %d of %d, eu has us up to %d of %d",
				us.n.PeerSeq("eu"), eu.n.Seq(), eu.n.PeerSeq("us"), us.n.Seq())
		}
		checkConverged(t, tw, "A")
		checkConverged(t, tw, "B")
		// The next digest is an ordinary one again.
		eu.tick(2 * time.Hour)
		digests := 0
		for _, m := range eu.last.Send {
			if m.Type == MsgDigest {
				digests++
				if m.Urgent {
					t.Fatal("a second urgent digest")
				}
			}
		}
		if digests != 1 {
			t.Fatalf("%d digests after the interval, want 1", digests)
		}
	}
}

// TestRepairAskedAgain: a sign of a gap that comes while a repair is
// outstanding is not lost: the node asks again once RepairTimeout has
// passed. And the answer to a repair, even "nothing new", ends the
// outstanding repair, so the next sign asks at once.
func TestRepairAskedAgain(t *testing.T) {
	cfg := Config{DigestInterval: time.Hour, RepairTimeout: time.Second}
	tw := newTNet(t, cfg, "eu", "us")
	eu, us := tw.nodes["eu"], tw.nodes["us"]
	us.restock("B", 5)
	tw.flush()
	repairsTo := func(to string) int {
		tw.collect()
		k := 0
		for _, q := range tw.queue {
			if q.m.Type == MsgRepairReq && q.to == to {
				k++
			}
		}
		return k
	}
	urgent := func(seq uint64) Message {
		return Message{Type: MsgDigest, From: "us", Seq: seq, Urgent: true}
	}

	// An answered repair ("nothing new") does not block the next one.
	tw.deliverMsg(tmsg{to: "eu", m: urgent(us.n.Seq() + 1)}) // claims more than it has
	if got := repairsTo("us"); got != 1 {
		t.Fatalf("%d repair requests after an urgent digest, want 1", got)
	}
	tw.flush() // us answers: nothing new
	us.restock("B", 1)
	tw.dropAll() // the rows are lost
	tw.deliverMsg(tmsg{to: "eu", m: urgent(us.n.Seq())})
	if got := repairsTo("us"); got != 1 {
		t.Fatalf("%d repair requests right after an answered repair, want 1", got)
	}

	// A gap while that repair is outstanding is asked again when due.
	us.restock("B", 1)
	tw.dropAll() // the repair request, its answer and the new rows are all lost
	tw.deliverMsg(tmsg{to: "eu", m: urgent(us.n.Seq())})
	if got := repairsTo("us"); got != 0 {
		t.Fatalf("%d repair requests while one is outstanding, want 0", got)
	}
	eu.tick(cfg.RepairTimeout / 2)
	if got := repairsTo("us"); got != 0 {
		t.Fatalf("asked again before the repair timeout")
	}
	eu.tick(cfg.RepairTimeout)
	if got := repairsTo("us"); got != 1 {
		t.Fatalf("%d repair requests after the repair timeout, want 1", got)
	}
	tw.flush()
	if eu.n.PeerSeq("us") != us.n.Seq() {
		t.Fatalf("eu has us's rows up to %d of %d", eu.n.PeerSeq("us"), us.n.Seq())
	}
	checkConverged(t, tw, "B")
	eu.tick(10 * cfg.RepairTimeout)
	if got := repairsTo("us"); got != 0 {
		t.Fatalf("%d repair requests once caught up, want 0", got)
	}
}
