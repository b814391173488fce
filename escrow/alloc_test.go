package escrow

import (
	"testing"
	"time"
)

// TestHoldAllocations: a granted one-line hold, stepped and taken out in a
// Ready of its own, costs the node two allocations (the hold record and
// its id); its lines, reply, event, row copies and broadcast come from the
// node's arenas (chunk), whose allocations spread over many holds. A
// change that allocates per hold again fails here (BenchmarkNodeHold
// shows the same figure as allocs/op).
func TestHoldAllocations(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	for i := 0; i < 4; i++ {
		c := Command{Kind: CmdRestock, ReqID: uint64(i), SKU: "sku-000001", Qty: MaxQty}
		if err := n.Step(Input{Now: now, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
	}
	n.Ready()
	n.Advance()
	cmd := Command{Kind: CmdHold, Lines: []Line{{SKU: "sku-000001", Qty: 1}}}
	hold := func() {
		now = now.Add(time.Microsecond)
		cmd.ReqID++
		if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
			t.Fatal(err)
		}
		rd := n.Ready()
		if len(rd.Reply) != 1 || rd.Reply[0].Err != nil || rd.Reply[0].Hold == nil {
			t.Fatalf("reply %+v", rd.Reply)
		}
		n.Advance()
	}
	for i := 0; i < 2*chunkLen; i++ { // warm the arenas, the maps and the heap
		hold()
	}
	if got := testing.AllocsPerRun(4*chunkLen, hold); got > 1 {
		t.Fatalf("a hold costs %.0f allocations, want at most 1 (its record, the id inside it)", got)
	}
}
