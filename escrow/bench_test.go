package escrow

import (
	"testing"
	"time"
)

// benchNode is a node with stock for chunk one-unit holds of one SKU.
// The benchmarks replace it (timer stopped) every chunk operations so that
// memory stays bounded whatever b.N is.
const benchChunk = 1 << 16

// cpuTimer reports CPU ns/op (all threads, GC included) when b ends.
func cpuTimer(b *testing.B) func() {
	start := cpuNanos()
	return func() {
		if d := cpuNanos() - start; d > 0 && b.N > 0 {
			b.ReportMetric(float64(d)/float64(b.N), "cpu-ns/op")
		}
	}
}

func newBenchNode(b *testing.B) *Node {
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	for i := 0; i < benchChunk/MaxQty+1; i++ {
		c := Command{Kind: CmdRestock, ReqID: uint64(i), SKU: "sku-000001", Qty: MaxQty}
		if err := n.Step(Input{Now: now, Cmd: &c}); err != nil {
			b.Fatal(err)
		}
	}
	n.Ready()
	n.Advance()
	return n
}

// renewEvery returns a fresh bench node (timer stopped) once every
// benchChunk operations, n otherwise.
func renewEvery(b *testing.B, n *Node, i int) *Node {
	if i%benchChunk != benchChunk-1 {
		return n
	}
	b.StopTimer()
	defer b.StartTimer()
	return newBenchNode(b)
}

// stepOK steps cmd at now and takes the Ready, which must carry one
// successful reply; the caller advances. (No b.Helper: it is on the
// measured path.)
func stepOK(b *testing.B, n *Node, now time.Time, cmd *Command) Ready {
	if err := n.Step(Input{Now: now, Cmd: cmd}); err != nil {
		b.Fatal(err)
	}
	rd := n.Ready()
	if len(rd.Reply) != 1 || rd.Reply[0].Err != nil {
		b.Fatalf("%s reply %+v", cmd.Kind, rd.Reply)
	}
	return rd
}

// BenchmarkNodeHold: one one-line hold per op, through Step, Ready and
// Advance, as a runtime drives it (one Ready per command: the worst case
// for group commit). The clock moves 1µs per op.
func BenchmarkNodeHold(b *testing.B) {
	b.ReportAllocs()
	n := newBenchNode(b)
	now := t0
	lines := []Line{{SKU: "sku-000001", Qty: 1}}
	cmd := Command{Kind: CmdHold, Lines: lines}
	b.ResetTimer()
	defer cpuTimer(b)()
	for i := 0; i < b.N; i++ {
		n = renewEvery(b, n, i)
		now = now.Add(time.Microsecond)
		cmd.ReqID = uint64(i)
		stepOK(b, n, now, &cmd)
		n.Advance()
	}
}

// BenchmarkNodeHoldConfirm: create a hold, then confirm it, each through
// Step, Ready and Advance.
func BenchmarkNodeHoldConfirm(b *testing.B) {
	b.ReportAllocs()
	n := newBenchNode(b)
	now := t0
	cmd := Command{Kind: CmdHold, Lines: []Line{{SKU: "sku-000001", Qty: 1}}}
	conf := Command{Kind: CmdConfirm}
	b.ResetTimer()
	defer cpuTimer(b)()
	for i := 0; i < b.N; i++ {
		n = renewEvery(b, n, i)
		now = now.Add(time.Microsecond)
		cmd.ReqID = uint64(2 * i)
		rd := stepOK(b, n, now, &cmd)
		conf.HoldID = rd.Reply[0].Hold.ID // before Advance, which reuses the replies
		n.Advance()
		conf.ReqID = uint64(2*i + 1)
		stepOK(b, n, now, &conf)
		n.Advance()
	}
}

// BenchmarkNodeHoldSteady: holds of 1s expire and retire as the clock
// moves 1ms per op, so each op also pays for one expiry and one deletion:
// the steady state of a busy region (about 1,000 live holds).
func BenchmarkNodeHoldSteady(b *testing.B) {
	b.ReportAllocs()
	n, cmd := steadyHoldNode(b)
	now := t0
	b.ResetTimer()
	defer cpuTimer(b)()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Millisecond)
		cmd.ReqID = uint64(i)
		stepOK(b, n, now, &cmd)
		n.Advance()
	}
}

// BenchmarkNodeHoldBatched: 64 holds per Ready (group commit).
func BenchmarkNodeHoldBatched(b *testing.B) { benchHoldsPerReady(b, 64) }

func BenchmarkEncodeDecodeMessage(b *testing.B) {
	b.ReportAllocs()
	m := Message{Type: MsgRows, From: "eu", PrevSeq: 10, Seq: 12, Rows: []Row{
		{SKU: "sku-000001", Region: "eu", Seq: 12, Minted: 1000, Reserved: 500, Released: 100, Sold: 300,
			Sent: []Transfer{{To: "ap", Qty: 10}, {To: "us", Qty: 20}}},
	}}
	var buf []byte
	for i := 0; i < b.N; i++ {
		var err error
		buf, err = EncodeMessage(buf[:0], &m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeMessage(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNodeHoldWhileBorrowing: holds granted locally while 5,000 other
// holds wait on borrows that are never answered (a flash sale with a slow
// peer). The waiting holds must not make every step slower.
func BenchmarkNodeHoldWhileBorrowing(b *testing.B) {
	b.ReportAllocs()
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1, BorrowTimeout: time.Hour, MaxLifetime: 2 * time.Hour}, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	step := func(in Input) {
		in.Now = now
		if err := n.Step(in); err != nil {
			b.Fatal(err)
		}
	}
	// us has "scarce"; eu has none, so holds of it wait on borrows.
	step(Input{Msg: &Message{Type: MsgRows, From: "us", Seq: 1, Rows: []Row{{SKU: "scarce", Region: "us", Seq: 1, Minted: MaxQty}}}})
	for i := 0; i < 5000; i++ {
		step(Input{Cmd: &Command{Kind: CmdHold, ReqID: uint64(i), Lines: []Line{{SKU: "scarce", Qty: 1}}}})
	}
	step(Input{Cmd: &Command{Kind: CmdRestock, SKU: "plenty", Qty: MaxQty}})
	n.Ready()
	n.Advance()
	if got := n.Stats().PendingHolds; got != 5000 {
		b.Fatalf("%d pending", got)
	}
	cmd := Command{Kind: CmdHold, Lines: []Line{{SKU: "plenty", Qty: 1}}}
	b.ResetTimer()
	defer cpuTimer(b)()
	for i := 0; i < b.N; i++ {
		if i%(MaxQty-1) == MaxQty-2 {
			b.StopTimer()
			step(Input{Cmd: &Command{Kind: CmdRestock, SKU: "plenty", Qty: MaxQty}})
			b.StartTimer()
		}
		now = now.Add(time.Microsecond)
		cmd.ReqID = uint64(1e6 + i)
		if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
			b.Fatal(err)
		}
		rd := n.Ready()
		id := rd.Reply[0].Hold.ID // read before Advance, which reuses the replies
		n.Advance()
		// Every other hold is released: a release must not retry the
		// waiting holds of another SKU.
		if i%2 == 0 {
			rel := Command{Kind: CmdRelease, ReqID: cmd.ReqID, HoldID: id}
			if err := n.Step(Input{Now: now, Cmd: &rel}); err != nil {
				b.Fatal(err)
			}
			n.Ready()
			n.Advance()
		}
	}
}

// BenchmarkNodeHoldBatch: 256 one-line holds stepped per Ready, as the
// region's apply loop cuts them at 256 callers; ns/op is per hold.
func BenchmarkNodeHoldBatch(b *testing.B) { benchHoldsPerReady(b, 256) }

// BenchmarkNodeHoldCohort: Readies of 80, 80, 80 and 16 holds, over and
// over, the way a runtime cuts a cohort of 256 callers into write-ahead
// batches and a small final one; ns/op is per hold. The hold copies of a
// Ready that outgrows the one before it are not moved (holdout.go).
func BenchmarkNodeHoldCohort(b *testing.B) {
	b.ReportAllocs()
	sizes := [...]int{80, 80, 80, 16} // 256: benchChunk is a multiple
	n := newBenchNode(b)
	now := t0
	cmd := Command{Kind: CmdHold, Lines: []Line{{SKU: "sku-000001", Qty: 1}}}
	b.ResetTimer()
	defer cpuTimer(b)()
	k, in := 0, 0 // the Ready's size index, holds stepped into it
	for i := 0; i < b.N; i++ {
		n = renewEvery(b, n, i-1) // at a cohort's start
		now = now.Add(time.Microsecond)
		cmd.ReqID = uint64(i)
		if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
			b.Fatal(err)
		}
		if in++; in == sizes[k] {
			if rd := n.Ready(); len(rd.Reply) != in {
				b.Fatalf("%d replies, want %d", len(rd.Reply), in)
			}
			n.Advance()
			k, in = (k+1)%len(sizes), 0
		}
	}
}

// benchHoldsPerReady steps one-line holds of one SKU, batch of them per
// Ready; ns/op is per hold.
func benchHoldsPerReady(b *testing.B, batch int) {
	b.ReportAllocs()
	n := newBenchNode(b)
	now := t0
	cmd := Command{Kind: CmdHold, Lines: []Line{{SKU: "sku-000001", Qty: 1}}}
	b.ResetTimer()
	defer cpuTimer(b)()
	for i := 0; i < b.N; i++ {
		n = renewEvery(b, n, i-1) // at a batch's start (benchChunk is a multiple of batch)
		now = now.Add(time.Microsecond)
		cmd.ReqID = uint64(i)
		if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
			b.Fatal(err)
		}
		if i%batch == batch-1 {
			rd := n.Ready()
			if len(rd.Reply) != batch {
				b.Fatalf("%d replies", len(rd.Reply))
			}
			n.Advance()
		}
	}
}
