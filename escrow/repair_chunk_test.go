package escrow

import (
	"fmt"
	"testing"
	"time"
)

// TestRepairInChunks: a wiped peer of a region with 5,000 SKUs asks for
// everything; with MaxRepairRows 1,000 each answer carries at most 1,000
// rows, the peer takes each chunk's end as seen and asks again (told at
// once by the urgent digest that follows), and after five chunks its copy
// of every row equals the owner's, with rows changing between chunks.
func TestRepairInChunks(t *testing.T) {
	const skus, chunk = 5000, 1000
	eu := newTNode(t, Config{Region: "eu", DigestInterval: time.Second, MaxRepairRows: chunk, MaxRowsPerMsg: 100})
	us := newTNode(t, Config{Region: "us", DigestInterval: time.Second})
	restockSKUs(eu, skus, 500)
	eu.sent = nil
	// The wiped peer asks from 0.
	toEU := []Message{{Type: MsgRepairReq, From: "us", To: "eu", Seq: 0}}
	answers := 0
	for round := 0; len(toEU) > 0; round++ {
		if round > 50 {
			t.Fatalf("still repairing after %d rounds", round)
		}
		for i := range toEU {
			if err := eu.n.Step(Input{Now: eu.now, Msg: &toEU[i]}); err != nil {
				t.Fatal(err)
			}
		}
		toEU = nil
		eu.drain()
		// A row changes between chunks: the snapshot must still end equal.
		eu.restock(fmt.Sprintf("sku-%05d", round*7), 1)
		var rows int
		for _, m := range eu.sent {
			if m.To == "us" && m.Type == MsgRows {
				rows += len(m.Rows)
			}
		}
		if rows > 0 {
			answers++
			if rows > chunk {
				t.Fatalf("round %d: an answer of %d rows, over %d", round, rows, chunk)
			}
		}
		for i := range eu.sent {
			m := eu.sent[i]
			if m.To != "" && m.To != "us" {
				continue
			}
			if err := us.n.Step(Input{Now: us.now, Msg: &m}); err != nil {
				t.Fatalf("round %d: us refused %s: %v", round, m.Type, err)
			}
		}
		eu.sent = nil
		us.drain()
		for _, m := range us.sent {
			if m.Type == MsgRepairReq && m.To == "eu" {
				toEU = append(toEU, m)
			}
		}
		us.sent = nil
	}
	if answers < skus/chunk {
		t.Fatalf("%d answers for %d rows in chunks of %d", answers, skus, chunk)
	}
	for i := 0; i < skus; i++ {
		sku := fmt.Sprintf("sku-%05d", i)
		want, _ := eu.n.RowSeq(sku, "eu")
		got, ok := us.n.RowSeq(sku, "eu")
		if !ok || got != want {
			t.Fatalf("%s: us has eu's row at seq %d (%v), eu at %d", sku, got, ok, want)
		}
	}
	st := eu.n.Stats()
	if st.RepairChunks < skus/chunk-1 || st.RepairRowsServed < skus {
		t.Fatalf("stats: %d chunks, %d rows served", st.RepairChunks, st.RepairRowsServed)
	}
	t.Logf("%d answers, %d chunks cut, %d rows served", answers, st.RepairChunks, st.RepairRowsServed)
}

// TestOldestOwnChunks: for chunk sizes from 1 up, successive chunks are
// sorted, at most k rows, and each holds every own row whose latest change
// falls in its range (checked against a scan of all rows); together they
// cover every own row once. Rows are changed out of order so that the
// sequence range has holes.
func TestOldestOwnChunks(t *testing.T) {
	eu := newTNode(t, Config{Region: "eu"})
	const skus = 3000
	for i := 0; i < skus; i++ {
		eu.step(&Command{Kind: CmdRestock, ReqID: uint64(i + 1), SKU: fmt.Sprintf("sku-%05d", i), Qty: 10})
	}
	eu.drain()
	eu.req = skus + 1
	for i := 0; i < skus; i += 3 { // a third changed again: holes in the range
		eu.restock(fmt.Sprintf("sku-%05d", (i*7)%skus), 1)
	}
	var all []uint64
	eu.n.ForEachRow(func(r *Row) { all = append(all, r.Seq) })
	for _, k := range []int{1, 7, 100, 1000, 5000} {
		after, got := uint64(0), 0
		for {
			recs, cut := eu.n.oldestOwn(after, k)
			if len(recs) == 0 {
				if cut {
					t.Fatalf("k=%d: empty chunk marked cut", k)
				}
				break
			}
			if len(recs) > k {
				t.Fatalf("k=%d: chunk of %d", k, len(recs))
			}
			last := recs[len(recs)-1].Seq
			want := 0
			for _, s := range all {
				if s > after && s <= last {
					want++
				}
			}
			if want != len(recs) {
				t.Fatalf("k=%d after %d: %d rows up to %d, want %d", k, after, len(recs), last, want)
			}
			for i := 1; i < len(recs); i++ {
				if recs[i-1].Seq >= recs[i].Seq {
					t.Fatalf("k=%d: unsorted chunk", k)
				}
			}
			got += len(recs)
			if !cut {
				break
			}
			after = last
		}
		if got != len(all) {
			t.Fatalf("k=%d: chunks carried %d rows of %d", k, got, len(all))
		}
	}
}

// TestRepairInChunksResumes: a snapshot in sequence order (the owner
// without the SKU cache) cut by a disconnect in its third answer resumes
// from the end of the second: the request after the reconnect asks from
// the sequence the second answer ended at, not from 0, and the rows of the
// cut answer that arrived are merged. Seed-free: the cut is fixed.
func TestRepairInChunksResumes(t *testing.T) {
	const skus, chunk = 5000, 1000
	eu := newTNode(t, Config{Region: "eu", DigestInterval: time.Second, MaxRepairRows: chunk, MaxRowsPerMsg: 100})
	us := newTNode(t, Config{Region: "us", DigestInterval: time.Second})
	restockSKUs(eu, skus, 500)
	eu.sent = nil
	toEU := []Message{{Type: MsgRepairReq, From: "us", To: "eu", Seq: 0}}
	answers, resumedFrom := 0, uint64(0)
	for round := 0; len(toEU) > 0; round++ {
		if round > 50 {
			t.Fatalf("still repairing after %d rounds", round)
		}
		for i := range toEU {
			if answers == 3 && resumedFrom == 0 {
				resumedFrom = toEU[i].Seq
			}
			if err := eu.n.Step(Input{Now: eu.now, Msg: &toEU[i]}); err != nil {
				t.Fatal(err)
			}
		}
		toEU = nil
		eu.drain()
		msgs := eu.sent
		eu.sent = nil
		cut := false
		for _, m := range msgs {
			if m.To == "us" && len(m.Rows) > 0 {
				answers++
				break
			}
		}
		if answers == 3 && resumedFrom == 0 {
			msgs = msgs[:len(msgs)/2] // the link drops halfway through the third answer
			cut = true
		}
		for i := range msgs {
			if err := us.n.Step(Input{Now: us.now, Msg: &msgs[i]}); err != nil {
				t.Fatalf("round %d: us refused %s: %v", round, msgs[i].Type, err)
			}
		}
		if cut {
			us.now = us.now.Add(time.Second)
			if err := us.n.Step(Input{Now: us.now, Resync: true}); err != nil {
				t.Fatal(err)
			}
		}
		us.drain()
		for _, m := range us.sent {
			if m.Type == MsgRepairReq && m.To == "eu" {
				toEU = append(toEU, m)
			}
		}
		us.sent = nil
	}
	// The second answer ended at its last row's sequence: about 2,000.
	if resumedFrom < 2*chunk-chunk/10 || resumedFrom > 2*chunk+chunk/10 {
		t.Fatalf("after the disconnect us asked from %d, want the end of the second answer (~%d)", resumedFrom, 2*chunk)
	}
	for i := 0; i < skus; i++ {
		sku := fmt.Sprintf("sku-%05d", i)
		want, _ := eu.n.RowSeq(sku, "eu")
		if got, ok := us.n.RowSeq(sku, "eu"); !ok || got != want {
			t.Fatalf("%s: us has eu's row at seq %d (%v), eu at %d", sku, got, ok, want)
		}
	}
	if served := eu.n.Stats().RepairRowsServed; served > skus+chunk {
		t.Fatalf("%d rows served for %d: more than the cut answer again", served, skus)
	}
	t.Logf("resumed from seq %d; %d rows served", resumedFrom, eu.n.Stats().RepairRowsServed)
}

// restockSKUs restocks sku-00000 … sku-<n-1> with 10 units each, a Ready
// every per restocks, and leaves t's next request id after them.
func restockSKUs(t *tnode, n, per int) {
	for i := 0; i < n; i++ {
		t.step(&Command{Kind: CmdRestock, ReqID: uint64(i + 1), SKU: fmt.Sprintf("sku-%05d", i), Qty: 10})
		if i%per == per-1 {
			t.drain()
		}
	}
	t.drain()
	t.req = uint64(n) + 1
}
