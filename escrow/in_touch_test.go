package escrow

import (
	"testing"
	"time"
)

// TestInTouchHomes: with digests every second, a home last heard from
// more than a digest and a half ago is neither sent units nor routed to,
// although it is not yet silent for PeerSilence (3s) and would still be
// asked to lend; heard from again, it is followed at once.
func TestInTouchHomes(t *testing.T) {
	tw := newHomesNet(t, Config{DigestInterval: time.Second}, "eu", "us")
	eu, us := tw.nodes["eu"], tw.nodes["us"]
	us.restock("A", 5)
	tw.flush()
	if w := eu.n.inTouchWindow(); w != 1500*time.Millisecond {
		t.Fatalf("in-touch window %v, want 1.5s", w)
	}
	tw.dropAll()
	tw.setNow(eu.now.Add(1600 * time.Millisecond))
	tw.advise(1, Home{"A", "us"})
	eu.restock("A", 3)
	eu.tick(homePushEvery)
	if eu.n.Available("A") != 3 || eu.n.Stats().HomeUnitsSent != 0 {
		t.Fatalf("units sent to a home out of touch: available %d, %+v", eu.n.Available("A"), eu.n.Stats())
	}
	if !eu.n.worthAsking("us") {
		t.Fatal("us silent for PeerSilence already: the test does not separate the two windows")
	}
	// Not routed: served here as plain escrow, which borrows from us.
	if r := eu.submit(Command{Lines: []Line{l("A", 4)}}); r != nil || eu.sentType(MsgBorrowReq) != 1 {
		t.Fatalf("want a plain borrow from the home out of touch, got %+v", r)
	}
	// The borrow's answer is heard: the hold takes eu's 3 units and us's
	// 1, and the home is in touch again.
	tw.flush()
	if eu.n.Available("A") != 0 || eu.n.Stats().Granted != 1 {
		t.Fatalf("borrowing hold not granted: available %d, %+v", eu.n.Available("A"), eu.n.Stats())
	}
	eu.restock("A", 2)
	tw.setNow(eu.now)
	tw.advise(2, Home{"A", "us"}) // the next round: the borrowed unit may move on too
	if got := eu.n.View("A")["eu"].SentTo("us"); got != 2 {
		t.Fatalf("home back in touch got %d units, want 2", got)
	}
}

// TestInTouchAdvice: an advised move to a region out of touch is not
// made (and counted); the same move once it is heard from again is.
func TestInTouchAdvice(t *testing.T) {
	tw := newTNet(t, Config{DigestInterval: time.Second}, "eu", "us")
	eu, us := tw.nodes["eu"], tw.nodes["us"]
	eu.restock("A", 10)
	us.restock("Z", 1)
	tw.flush()
	mv := []Move{{SKU: "A", From: "eu", To: "us", Qty: 4}}
	tw.setNow(eu.now.Add(2 * time.Second))
	tw.deliverMsg(tmsg{to: "eu", m: Message{Type: MsgAdvice, From: "rebalancer", Epoch: 1, Moves: mv}})
	if got := eu.n.View("A")["eu"].SentTo("us"); got != 0 {
		t.Fatalf("%d units sent to a region out of touch", got)
	}
	if s := eu.n.Stats(); s.AdviceSkippedOutOfTouch != 1 || s.AdviceApplied != 0 {
		t.Fatalf("stats %+v, want one move skipped, none applied", s)
	}
	tw.dropAll()
	us.restock("Z", 1)
	tw.flush()
	tw.deliverMsg(tmsg{to: "eu", m: Message{Type: MsgAdvice, From: "rebalancer", Epoch: 2, Moves: mv}})
	tw.flush()
	if got := us.n.Available("A"); got != 4 {
		t.Fatalf("us has %d units after advice while in touch, want 4", got)
	}
}

// TestInTouchPushFresh: the fresh-push rule. A home last heard from 400 ms
// ago is in touch (within a digest and a half), so holds this region
// cannot cover are still routed to it, but it is not sent units: a
// partition or crash since would strand them. Heard from again, it gets
// them at the next scan. The window is the shorter of 300 ms and the
// in-touch window.
func TestInTouchPushFresh(t *testing.T) {
	tw := newHomesNet(t, Config{DigestInterval: time.Second}, "eu", "us")
	eu, us := tw.nodes["eu"], tw.nodes["us"]
	us.restock("A", 5)
	tw.flush()
	tw.dropAll()
	tw.setNow(eu.now.Add(400 * time.Millisecond))
	tw.advise(1, Home{"A", "us"})
	eu.restock("A", 3)
	eu.tick(homePushEvery)
	if eu.n.Available("A") != 3 || eu.n.Stats().HomeUnitsSent != 0 {
		t.Fatalf("units pushed to a home heard from 400 ms ago: available %d, %+v", eu.n.Available("A"), eu.n.Stats())
	}
	if eu.n.outOfTouch("us") {
		t.Fatal("us out of touch after 400 ms: the test does not separate the two windows")
	}
	if r := eu.submit(Command{Lines: []Line{l("A", 4)}}); r == nil || r.Err == nil || r.Err.Code != CodeRouted || r.Err.Owner != "us" {
		t.Fatalf("hold not routed to the home in touch: %+v", r)
	}
	// us speaks (a row of Z): eu pushes its 3 units at the next scan.
	tw.dropAll()
	us.restock("Z", 1)
	tw.flush()
	eu.tick(homePushEvery)
	if got := eu.n.View("A")["eu"].SentTo("us"); got != 3 || eu.n.Stats().HomeUnitsSent != 3 {
		t.Fatalf("home heard from again got %d units, want 3 (%+v)", got, eu.n.Stats())
	}

	for _, c := range []struct {
		digests, since time.Duration
		fresh          bool
	}{
		{time.Second, 300 * time.Millisecond, true},
		{time.Second, 301 * time.Millisecond, false},
		{100 * time.Millisecond, 150 * time.Millisecond, true}, // in-touch window 150 ms
		{100 * time.Millisecond, 151 * time.Millisecond, false},
		{-1, time.Hour, true}, // silence not watched
	} {
		cfg := Config{Region: "eu", DigestInterval: c.digests, PeerSilence: 3 * time.Second}
		if c.digests < 0 {
			cfg.PeerSilence = -1 // silence not watched: never stale
		}
		n := &Node{cfg: cfg, peers: map[string]*peer{"us": {heard: time.Unix(100, 0)}}}
		n.now = time.Unix(100, 0).Add(c.since)
		if got := n.freshForPush("us"); got != c.fresh {
			t.Errorf("digests %v, heard %v ago: fresh %v, want %v", c.digests, c.since, got, c.fresh)
		}
		if n.freshForPush("ap") {
			t.Errorf("a peer never heard from is fresh")
		}
	}
}
