package escrow

import (
	"testing"
	"time"
)

// TestRTTStretchesDeadline: a donor 120 ms away cannot answer within the
// 50 ms lower bound; the timeout teaches eu its distance, and the next
// hold's deadline is stretched to 2 × RTT, so it is granted. With the upper
// bound below the RTT, the donor stays out of reach and the hold is
// refused at once (skipped for distance) instead of waiting in vain.
func TestRTTStretchesDeadline(t *testing.T) {
	for _, tc := range []struct {
		name    string
		max     time.Duration
		granted bool
	}{{"within bounds", 0, true}, {"beyond the upper bound", 100 * time.Millisecond, false}} {
		t.Run(tc.name, func(t *testing.T) {
			tw := newTNet(t, Config{BorrowTimeout: 50 * time.Millisecond, BorrowTimeoutMax: tc.max, PeerSilence: -1}, "ap", "eu")
			eu, ap := tw.nodes["eu"], tw.nodes["ap"]
			ap.restock("A", 100)
			tw.flush()
			const rtt = 120 * time.Millisecond
			hold := func() uint64 {
				eu.req++
				c := Command{Kind: CmdHold, ReqID: eu.req, Lines: []Line{l("A", 1)}}
				eu.step(&c)
				eu.drain()
				return c.ReqID
			}
			// 1. Unknown distance: the 50 ms deadline; the request is lost.
			first := hold()
			if i := tw.find("ap", MsgBorrowReq); i < 0 {
				t.Fatal("no borrow request to ap")
			}
			tw.dropAll()
			eu.tick(rtt)
			if r, ok := eu.replies[first]; !ok || r.Err == nil || r.Err.Code != CodeInsufficientStock {
				t.Fatalf("first hold: %+v %v, want refused at the 50ms deadline", r, ok)
			}
			if d, ok := eu.n.PeerRTT("ap"); !ok || d < 50*time.Millisecond {
				t.Fatalf("RTT to ap after the timeout: %v %v", d, ok)
			}
			// ap's next rows show it alive (a peer silent since its timeout
			// is not waited for longer: TestRTTSilentPeerNotStretched).
			eu.tick(time.Millisecond)
			tw.setNow(eu.now)
			ap.restock("A", 1)
			tw.flush()
			// 2. Known distance.
			stretched := eu.n.Stats().BorrowDeadlinesStretched
			skipped := eu.n.Stats().BorrowsSkippedFar
			second := hold()
			if !tc.granted {
				if r, ok := eu.replies[second]; !ok || r.Err == nil || r.Err.Code != CodeInsufficientStock {
					t.Fatalf("second hold: %+v %v, want refused at once", r, ok)
				}
				if eu.n.Stats().BorrowsSkippedFar != skipped+1 {
					t.Fatal("ap not counted as skipped for distance")
				}
				return
			}
			if eu.n.Stats().BorrowDeadlinesStretched != stretched+1 {
				t.Fatalf("deadline not counted as stretched: %+v", eu.n.Stats())
			}
			req := tw.find("ap", MsgBorrowReq)
			if req < 0 {
				t.Fatal("no borrow request to ap")
			}
			late := tw.queue[req]
			tw.queue = nil
			eu.tick(rtt)
			if _, ok := eu.replies[second]; ok {
				t.Fatal("second hold answered before the donor could")
			}
			tw.setNow(eu.now)
			tw.deliverMsg(late)
			tw.flush()
			if r, ok := eu.replies[second]; !ok || r.Err != nil || r.Hold == nil {
				t.Fatalf("second hold: %+v %v, want granted with ap's unit", r, ok)
			}
		})
	}
}

// TestRTTAsksNearestFirst: a plan asks the nearest peers first, whatever
// their surplus, and counts a peer not measured yet as BorrowTimeout away.
func TestRTTAsksNearestFirst(t *testing.T) {
	rtts := map[string]time.Duration{"ap": 220 * time.Millisecond, "us": 80 * time.Millisecond, "sa": 20 * time.Millisecond}
	reach := func(r string) time.Duration {
		if d, ok := rtts[r]; ok {
			return d
		}
		return 50 * time.Millisecond
	}
	peers := []PeerStock{{Region: "ap", Available: 100}, {Region: "us", Available: 3}, {Region: "eu", Available: 2}, {Region: "sa", Available: 1}}
	plan := PlanBorrowNear(5, peers, reach)
	want := []PeerStock{{Region: "sa", Qty: 1}, {Region: "eu", Qty: 2}, {Region: "us", Qty: 2}}
	if len(plan) != len(want) {
		t.Fatalf("plan %+v, want %+v", plan, want)
	}
	for i := range want {
		if plan[i] != want[i] {
			t.Fatalf("plan %+v, want %+v", plan, want)
		}
	}
	if PlanBorrowNear(200, peers, reach) != nil {
		t.Fatal("a plan for more than the peers have")
	}
}

// TestRTTSilentPeerNotStretched: a peer silent since its borrow timed out
// (cut off, perhaps) does not stretch the next hold's deadline: the hold
// waits BorrowTimeout at most, and is refused at once once the peer's
// raised estimate puts it out of reach.
func TestRTTSilentPeerNotStretched(t *testing.T) {
	tw := newTNet(t, Config{BorrowTimeout: 50 * time.Millisecond, PeerSilence: -1}, "ap", "eu")
	eu := tw.nodes["eu"]
	tw.nodes["ap"].restock("A", 100)
	tw.flush()
	for i := 0; i < 3; i++ {
		eu.req++
		c := Command{Kind: CmdHold, ReqID: eu.req, Lines: []Line{l("A", 1)}}
		eu.step(&c)
		eu.drain()
		tw.dropAll() // the partition
		eu.tick(50 * time.Millisecond)
		if r, ok := eu.replies[c.ReqID]; !ok || r.Err == nil {
			t.Fatalf("hold %d: %+v %v, want refused by the 50ms deadline", i, r, ok)
		}
	}
	if s := eu.n.Stats(); s.BorrowDeadlinesStretched != 0 || s.BorrowsSkippedFar == 0 {
		t.Fatalf("stats: stretched %d, skipped far %d; want 0 and > 0", s.BorrowDeadlinesStretched, s.BorrowsSkippedFar)
	}
}
