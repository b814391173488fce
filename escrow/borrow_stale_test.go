package escrow

import (
	"testing"
	"time"
)

func TestStaleBorrowRule(t *testing.T) {
	cases := []struct {
		stamp, mark uint64
		window      time.Duration
		want        bool
	}{
		{0, 5000, time.Second, false},                      // not stamped
		{4000, 5000, time.Second, false},                   // exactly a window below: may be alive
		{3999, 5000, time.Second, true},                    // more than a window below
		{6000, 5000, time.Second, false},                   // ahead of the mark
		{3999, 5000, time.Second - time.Microsecond, true}, // window rounded up to 1000 ms
		{3999, 5000, 1001 * time.Millisecond, false},       // 1001 ms below a 1001 ms window
		{1, 0, time.Second, false},                         // no mark yet
	}
	for _, c := range cases {
		if got := StaleBorrow(c.stamp, c.mark, c.window); got != c.want {
			t.Errorf("StaleBorrow(%d, %d, %v) = %v, want %v", c.stamp, c.mark, c.window, got, c.want)
		}
	}
}

// staleSetup: eu has 5 of A, us none; a hold at us for 2 waits on a
// borrow request to eu, which the test takes off the network.
func staleSetup(t *testing.T) (*tnet, Message) {
	tw := newTNet(t, Config{}, "eu", "us")
	tw.nodes["eu"].restock("A", 5)
	tw.flush()
	us := tw.nodes["us"]
	us.step(&Command{Kind: CmdHold, ReqID: 1, Lines: []Line{l("A", 2)}})
	if rs := us.drain(); len(rs) != 0 {
		t.Fatalf("hold answered at once: %+v", rs)
	}
	i := tw.find("eu", MsgBorrowReq)
	if i < 0 {
		t.Fatal("no borrow request")
	}
	req := tw.queue[i].m
	tw.queue = append(tw.queue[:i], tw.queue[i+1:]...)
	if want := uint64(us.now.UnixMilli()); req.Epoch != want {
		t.Fatalf("borrow request stamped %d, want the clock %d", req.Epoch, want)
	}
	return tw, req
}

// TestStaleRefusalAsksAgain: a requester that is refused for a borrow it
// still awaits (its clock went back, say) asks again at once with a fresh
// stamp and gets the units before its deadline.
func TestStaleRefusalAsksAgain(t *testing.T) {
	tw, req := staleSetup(t)
	us := tw.nodes["us"]
	tw.deliverMsg(tmsg{to: "us", m: Message{Type: MsgBorrowResp, From: "eu", To: "us", ID: req.ID, SKU: "A", Epoch: req.Epoch + 10}})
	i := tw.find("eu", MsgBorrowReq)
	if i < 0 {
		t.Fatal("no new request after the refusal")
	}
	again := tw.queue[i].m
	if again.ID == req.ID || again.Qty != req.Qty || again.Epoch == 0 {
		t.Fatalf("asked again %+v after %+v", again, req)
	}
	st := us.n.Stats()
	if st.BorrowStaleAnswers != 1 || st.BorrowStaleReasked != 1 || st.BorrowsSent != 2 {
		t.Fatalf("stats after the refusal: answers %d reasked %d sent %d", st.BorrowStaleAnswers, st.BorrowStaleReasked, st.BorrowsSent)
	}
	tw.flush()
	r, ok := us.replies[1]
	if !ok || r.Err != nil || r.Hold == nil {
		t.Fatalf("hold not granted after asking again: %+v (answered %v)", r, ok)
	}
}

// TestStaleRefusalNoLoop: a refusal whose mark shows that a fresh request
// would be refused too ends the wait (an answer of nothing), without
// asking again.
func TestStaleRefusalNoLoop(t *testing.T) {
	tw, req := staleSetup(t)
	us := tw.nodes["us"]
	tw.deliverMsg(tmsg{to: "us", m: Message{Type: MsgBorrowResp, From: "eu", To: "us", ID: req.ID, SKU: "A", Epoch: req.Epoch + 5000}})
	if i := tw.find("eu", MsgBorrowReq); i >= 0 {
		t.Fatalf("asked again though the fresh request would be stale: %+v", tw.queue[i].m)
	}
	r, ok := us.replies[1]
	if !ok || r.Err == nil || r.Err.Code != CodeInsufficientStock {
		t.Fatalf("hold not rejected at the refusal: %+v (answered %v)", r, ok)
	}
	if st := us.n.Stats(); st.BorrowStaleAnswers != 1 || st.BorrowStaleReasked != 0 {
		t.Fatalf("answers %d reasked %d", st.BorrowStaleAnswers, st.BorrowStaleReasked)
	}
}

// TestStaleMarkBounded: a digest stamped an hour ahead (a forged or broken
// clock) raises eu's mark of us at most a window past eu's clock: a
// request us stamps at eu's clock is still honoured.
func TestStaleMarkBounded(t *testing.T) {
	tw, req := staleSetup(t)
	eu := tw.nodes["eu"]
	tw.deliverMsg(tmsg{to: "eu", m: Message{Type: MsgDigest, From: "us", Seq: tw.nodes["us"].n.Seq(),
		Epoch: uint64(eu.now.Add(time.Hour).UnixMilli())}})
	tw.deliverMsg(tmsg{to: "eu", m: req})
	if st := eu.n.Stats(); st.BorrowStaleRefused != 0 || st.DonatedUnits != 2 {
		t.Fatalf("refused %d donated %d: a far-future stamp made a fresh request stale", st.BorrowStaleRefused, st.DonatedUnits)
	}
	// The same request a minute later, after a digest of us's true clock
	// then: refused, and nothing more moves.
	eu.now = eu.now.Add(time.Minute)
	tw.deliverMsg(tmsg{to: "eu", m: Message{Type: MsgDigest, From: "us", Seq: tw.nodes["us"].n.Seq(),
		Epoch: uint64(eu.now.UnixMilli())}})
	req.ID++ // not the remembered donation
	tw.deliverMsg(tmsg{to: "eu", m: req})
	if st := eu.n.Stats(); st.BorrowStaleRefused != 1 || st.DonatedUnits != 2 {
		t.Fatalf("refused %d donated %d: the minute-old request moved units", st.BorrowStaleRefused, st.DonatedUnits)
	}
}
