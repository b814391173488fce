package escrow

import (
	"runtime"
	"testing"
	"time"
	"unsafe"
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
	n := restockedNode(t, 4)
	now := t0
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
	// Bytes too: the record (112), the hold's one copy (216), its line,
	// the Ready's row copy (104), the maps' and the expiry heap's growth.
	// The event (96), the reply (72) and the broadcast message (~250)
	// reuse an Advanced Ready's (readybufs.go): taking any of them from
	// the arenas again breaks the bound.
	perHold := bytesPerRun(16*chunkLen, hold)
	if perHold > maxOneHoldReadyBytes {
		t.Fatalf("a hold in a Ready of its own allocates %.0f bytes, want at most %d", perHold, maxOneHoldReadyBytes)
	}
	t.Logf("a hold in a Ready of its own: %.0f bytes allocated", perHold)
}

// TestReadyGrowsOnce: a Ready of many holds (a runtime's batch of
// callers) grows its Events and Reply slices once, to the size of the
// previous Ready, instead of by doubling from one element: each doubling
// is an allocation and a copy of every event so far (504 bytes each).
// The planted bug is growTo returning s unchanged (append doubles again):
// the batch then costs about 2·log2(256) = 16 allocations more.
func TestReadyGrowsOnce(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	const holds = 256
	n := restockedNode(t, 64)
	now := t0
	cmd := Command{Kind: CmdHold, Lines: []Line{{SKU: "sku-000001", Qty: 1}}}
	batch := func() {
		now = now.Add(time.Microsecond)
		for i := 0; i < holds; i++ {
			cmd.ReqID++
			if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
				t.Fatal(err)
			}
		}
		rd := n.Ready()
		if len(rd.Reply) != holds || len(rd.Persist.Events) != holds {
			t.Fatalf("Ready of %d replies and %d events, want %d each", len(rd.Reply), len(rd.Persist.Events), holds)
		}
		if c := cap(rd.Persist.Events); c > 2*holds {
			t.Fatalf("events capacity %d for %d events", c, holds)
		}
		n.Advance()
	}
	for i := 0; i < 4; i++ { // warm the arenas, the maps and the heap
		batch()
	}
	// Per hold: its record (1). Per batch: the events and replies slices
	// (1 each), the persisted holds (1), chunks of the line, hold, row and
	// message arenas (a few), the maps' growth now and then.
	got := testing.AllocsPerRun(20, batch)
	if want := float64(holds + 16); got > want {
		t.Fatalf("a Ready of %d holds costs %.1f allocations, want at most %.0f", holds, got, want)
	}
	t.Logf("a Ready of %d holds: %.1f allocations", holds, got)
	// Bytes too: per hold its record (112), its one copy (216), which the
	// event, the reply and Persist.Holds share (holdout.go), its line and
	// expiry entries, and the maps' growth; its event and reply reuse the
	// slices of an Advanced Ready (readybufs.go). One more copy of the
	// hold per hold (216 bytes), new event and reply slices per Ready
	// (168 bytes a hold), or slices that grow by doubling again, break
	// the bound.
	const batches = 20
	perHold := bytesPerRun(batches, batch) / holds
	if perHold > maxBatchedHoldBytes {
		t.Fatalf("a hold in a Ready of %d allocates %.0f bytes, want at most %d", holds, perHold, maxBatchedHoldBytes)
	}
	t.Logf("a hold in a Ready of %d: %.0f bytes allocated", holds, perHold)
}

// maxBatchedHoldBytes bounds the bytes a hold allocates in a Ready of 256
// (TestReadyGrowsOnce): 473 here and in BenchmarkNodeHoldBatch (529 and
// 523 when the expiry heap grew by append, 705 when each Ready took new
// Events and Reply slices, 962 when Persist.Holds had copies of its own).
const maxBatchedHoldBytes = 500

// maxOneHoldReadyBytes bounds the bytes a hold allocates in a Ready of its
// own (TestHoldAllocations): 574 here, where the expiry heap's doubling
// from 1,024 to 2,048 entries falls in the measured window (564 when it
// grew by append; BenchmarkNodeHold 575, was 626), 820 when each Ready
// took a new message from the arena, 998 when also a new event and reply.
const maxOneHoldReadyBytes = 680

// TestHoldEventSharesReply: the event stating a hold's creation and the
// reply that grants it share one read-only copy of the hold (one copy of
// 216 bytes fewer per hold), and an Event carries its hold and waitlist
// entry by pointer (96 bytes instead of 504, copied into every Ready).
// A later change of the hold gets a copy of its own: the shared one,
// which a runtime may still be answering from, keeps stating the grant.
func TestHoldEventSharesReply(t *testing.T) {
	if got := unsafe.Sizeof(Event{}); got > 96 {
		t.Fatalf("an Event is %d bytes, want at most 96", got)
	}
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	if err := n.Step(Input{Now: now, Cmd: &Command{Kind: CmdRestock, ReqID: 1, SKU: "apple", Qty: 10}}); err != nil {
		t.Fatal(err)
	}
	n.Ready()
	n.Advance()
	if err := n.Step(Input{Now: now, Cmd: &Command{Kind: CmdHold, ReqID: 2, Lines: []Line{{SKU: "apple", Qty: 1}}}}); err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	if len(rd.Reply) != 1 || len(rd.Persist.Events) != 1 || rd.Reply[0].Hold == nil {
		t.Fatalf("Ready %+v", rd)
	}
	if rd.Reply[0].Hold != rd.Persist.Events[0].Hold {
		t.Fatal("the reply and the created event each have their own copy of the hold")
	}
	// The Ready's Reply and Events slices are reused once it is Advanced
	// (readybufs.go); the hold they point to is not, and a caller keeps it.
	granted := rd.Reply[0].Hold
	id := granted.ID
	n.Advance()
	if err := n.Step(Input{Now: now, Cmd: &Command{Kind: CmdHold, ReqID: 3, Lines: []Line{{SKU: "apple", Qty: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if err := n.Step(Input{Now: now, Cmd: &Command{Kind: CmdConfirm, ReqID: 4, HoldID: id}}); err != nil {
		t.Fatal(err)
	}
	rd = n.Ready()
	if len(rd.Persist.Events) != 2 || rd.Persist.Events[0].Hold.State != Held || rd.Persist.Events[1].Hold.State != Confirmed {
		t.Fatalf("events %+v", rd.Persist.Events)
	}
	n.Advance()
	if granted.State != Held {
		t.Fatalf("the grant's reply now says %s", granted.State)
	}
}

// restockedNode is a node of region eu whose one SKU, sku-000001, was
// restocked restocks times by MaxQty, its Ready taken and Advanced.
func restockedNode(t *testing.T, restocks int) *Node {
	t.Helper()
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < restocks; i++ {
		c := Command{Kind: CmdRestock, ReqID: uint64(i), SKU: "sku-000001", Qty: MaxQty}
		if err := n.Step(Input{Now: t0, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
	}
	n.Ready()
	n.Advance()
	return n
}

// steadyHoldNode is the node and hold command of BenchmarkNodeHoldSteady
// and TestExpiryAllocations: one SKU restocked at t0, holds of one unit
// for a second, retired a millisecond after they end.
func steadyHoldNode(tb testing.TB) (*Node, Command) {
	tb.Helper()
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1, HoldRetain: time.Millisecond}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.Step(Input{Now: t0, Cmd: &Command{Kind: CmdRestock, SKU: "sku-000001", Qty: MaxQty}}); err != nil {
		tb.Fatal(err)
	}
	n.Ready()
	n.Advance()
	return n, Command{Kind: CmdHold, Lines: []Line{{SKU: "sku-000001", Qty: 1}}, TTL: time.Second}
}

// TestConfirmAllocations: a hold granted and then confirmed, each in a
// Ready of its own, makes two copies of the hold (one per event, each
// shared with its reply), not three: the confirm's reply shares its
// event's copy (TestFinishReplySharesEvent). A fresh copy for the reply
// again (216 bytes) breaks the byte bound.
func TestConfirmAllocations(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	n := restockedNode(t, 4)
	now := t0
	cmd := Command{Kind: CmdHold, Lines: []Line{{SKU: "sku-000001", Qty: 1}}}
	conf := Command{Kind: CmdConfirm}
	pair := func() {
		now = now.Add(time.Microsecond)
		cmd.ReqID++
		if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
			t.Fatal(err)
		}
		rd := n.Ready()
		if len(rd.Reply) != 1 || rd.Reply[0].Hold == nil {
			t.Fatalf("reply %+v", rd.Reply)
		}
		conf.HoldID = rd.Reply[0].Hold.ID
		n.Advance()
		conf.ReqID = cmd.ReqID
		if err := n.Step(Input{Now: now, Cmd: &conf}); err != nil {
			t.Fatal(err)
		}
		rd = n.Ready()
		if len(rd.Reply) != 1 || rd.Reply[0].Err != nil || rd.Reply[0].Hold.State != Confirmed {
			t.Fatalf("confirm reply %+v", rd.Reply)
		}
		n.Advance()
	}
	for i := 0; i < 2*chunkLen; i++ {
		pair()
	}
	perPair := bytesPerRun(16*chunkLen, pair)
	if perPair > maxHoldConfirmBytes {
		t.Fatalf("a hold and its confirm allocate %.0f bytes, want at most %d", perPair, maxHoldConfirmBytes)
	}
	t.Logf("a hold and its confirm, a Ready each: %.0f bytes allocated", perPair)
}

// TestExpiryAllocations: in the steady state of a busy region (holds of
// 1s granted one per Ready while the clock moves 1ms, so each Ready also
// expires a hold and retires one, as BenchmarkNodeHoldSteady), an expiry
// allocates no copy of its hold: its event's copy, which no reply shares,
// is reused once its Ready is Advanced (holdout.go), as is Persist.Holds.
// A copy per expiry from the arena (216 bytes) breaks the bound.
func TestExpiryAllocations(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	n, cmd := steadyHoldNode(t)
	now := t0
	expired := 0
	hold := func() {
		now = now.Add(time.Millisecond)
		cmd.ReqID++
		if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
			t.Fatal(err)
		}
		rd := n.Ready()
		if len(rd.Reply) != 1 || rd.Reply[0].Err != nil {
			t.Fatalf("reply %+v", rd.Reply)
		}
		for _, e := range rd.Persist.Events {
			if e.Kind == EvHoldExpired {
				expired++
			}
		}
		n.Advance()
	}
	for i := 0; i < 2000; i++ { // past the first expiries: about 1,000 live holds
		hold()
	}
	expired = 0
	const runs = 8 * 1024
	perHold := bytesPerRun(runs, hold)
	if expired != runs {
		t.Fatalf("%d holds expired in %d Readies, want one in each", expired, runs)
	}
	if perHold > maxSteadyHoldBytes {
		t.Fatalf("a hold and an expiry allocate %.0f bytes, want at most %d", perHold, maxSteadyHoldBytes)
	}
	t.Logf("a hold and an expiry, one Ready: %.0f bytes allocated", perHold)
}

// maxSteadyHoldBytes bounds TestExpiryAllocations: 530 bytes in
// BenchmarkNodeHoldSteady (753 when an expiry's copy came from the arena).
const maxSteadyHoldBytes = 640

// maxHoldConfirmBytes bounds TestConfirmAllocations: 1,081 bytes in
// BenchmarkNodeHoldConfirm (1,305 when the confirm's reply had a copy of
// its own).
const maxHoldConfirmBytes = 1180

// bytesPerRun runs f n times and returns the bytes the process allocated
// meanwhile, per run.
func bytesPerRun(n int, f func()) float64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(n)
}
