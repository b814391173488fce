package escrow

import (
	"testing"
	"time"
)

// A peer that has gone silent (cut off: no digests) is not asked to lend, so
// the shopper is refused at once instead of waiting out the borrow deadline;
// once it speaks again it is asked again.
func TestSilentPeerNotAskedToLend(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	eu, err := NewNode(Config{Region: "eu", DigestInterval: -1, TopUpHorizon: -1}, nil) // borrow on miss only
	if err != nil {
		t.Fatal(err)
	}
	us, err := NewNode(Config{Region: "us", DigestInterval: time.Second, TopUpHorizon: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(eu.Step(Input{Now: t0, Cmd: &Command{Kind: CmdRestock, ReqID: 1, SKU: "A", Qty: 5}}))
	rows := advanced(eu).Send
	deliver := func(now time.Time) {
		for i := range rows {
			must(us.Step(Input{Now: now, Msg: &rows[i]}))
		}
	}
	deliver(t0)
	advanced(us)

	borrows := func(rd Ready) int {
		k := 0
		for _, m := range rd.Send {
			if m.Type == MsgBorrowReq {
				k++
			}
		}
		return k
	}
	hold := &Command{Kind: CmdHold, ReqID: 2, Lines: []Line{{SKU: "A", Qty: 1}}}

	// 10s of silence (the default PeerSilence is 3 digest intervals).
	must(us.Step(Input{Now: t0.Add(10 * time.Second), Cmd: hold}))
	rd := advanced(us)
	if n := borrows(rd); n != 0 {
		t.Fatalf("asked a silent peer: %d borrow requests", n)
	}
	if len(rd.Reply) != 1 || rd.Reply[0].Err == nil || rd.Reply[0].Err.Code != CodeInsufficientStock {
		t.Fatalf("want an immediate insufficient-stock reply, got %+v", rd.Reply)
	}

	// The peer speaks again: it is asked.
	deliver(t0.Add(11 * time.Second))
	advanced(us)
	hold.ReqID = 3
	must(us.Step(Input{Now: t0.Add(11 * time.Second), Cmd: hold}))
	rd = advanced(us)
	if n := borrows(rd); n != 1 {
		t.Fatalf("want one borrow request to the peer heard again, got %d (replies %+v)", n, rd.Reply)
	}
}
