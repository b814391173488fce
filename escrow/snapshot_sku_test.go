package escrow

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// snapSKUs and snapChunk: the catalogue is larger than what one answer
// may read (snapScanFactor × snapChunk), so an answer that read it all
// would show.
const snapSKUs, snapChunk = 3000, 100

// snapRun is one run of snapshotScenario: what the owner served and the
// asker ended with.
type snapRun struct {
	answers, requests int
	resumed           int // requests after an interruption that kept the cursor
	maxRead           int // rows one range scan handed out, at most
	served, snapshots uint64
	missing           []string // SKUs whose eu row us lacks or has older
}

// snapshotScenario: eu, with the SKU cache (at most 40 of 3,000 SKUs
// resident), streams a snapshot in SKU order to the wiped us (MaxRepairRows
// 100, parts of at most 32 rows) while rows change on both sides of the
// cursor. Two interruptions: in the third answer a part is lost (us asks
// again at its last part), and in the sixth the link drops (the rest of the
// answer is lost) and comes back (Resync). Broadcasts of the changes are
// delivered, except those in the interruptions. At the end us must hold
// every eu row at eu's version.
func snapshotScenario(t *testing.T, bugs plantedbugs.Bugs) snapRun {
	t.Helper()
	cfg := Config{Region: "eu", MaxResidentSKUs: 40, MaxRepairRows: snapChunk, MaxRowsPerMsg: 32}
	const skus, chunk = snapSKUs, snapChunk
	cfg.bugs = bugs
	eu := newTNode(t, cfg)
	us := newTNode(t, Config{Region: "us"})
	restockSKUs(eu, skus, 100)
	eu.sent = nil
	eu.store.ranges = nil
	// us hears that eu is ahead (an urgent digest, which says eu answers in
	// SKU order) and asks from 0.
	dg := Message{Type: MsgDigest, From: "eu", Seq: eu.n.seq, Urgent: true, Qty: RepairBySKU}
	if err := us.n.Step(Input{Now: us.now, Msg: &dg}); err != nil {
		t.Fatal(err)
	}
	us.drain()
	var run snapRun
	toEU := takeRequests(t, us)
	interrupted := false
	for round := 0; len(toEU) > 0; round++ {
		if round > 200 {
			t.Fatalf("still streaming after %d rounds", round)
		}
		for i := range toEU {
			run.requests++
			if interrupted && toEU[i].SKU != "" {
				run.resumed++
			}
			interrupted = false
			if toEU[i].Qty != RepairBySKU {
				t.Fatalf("round %d: a repair request without RepairBySKU: %+v", round, toEU[i])
			}
			if err := eu.n.Step(Input{Now: eu.now, Msg: &toEU[i]}); err != nil {
				t.Fatal(err)
			}
		}
		toEU = nil
		eu.drain()
		// Rows change between answers, behind and ahead of the cursor.
		eu.restock(fmt.Sprintf("sku-%05d", (round*389)%skus), 1)
		eu.restock(fmt.Sprintf("sku-%05d", skus-1-round), 1)
		var msgs []Message
		rows := 0
		for _, m := range eu.sent {
			if m.To == "us" {
				rows += len(m.Rows)
				if m.Qty != RepairBySKU {
					t.Fatalf("round %d: an answer not in SKU order", round)
				}
			}
			msgs = append(msgs, m)
		}
		eu.sent = nil
		if rows > chunk {
			t.Fatalf("round %d: an answer of %d rows, over %d", round, rows, chunk)
		}
		if rows > 0 {
			run.answers++
		}
		switch run.answers {
		case 3:
			if len(msgs) > 2 {
				msgs = append(msgs[:1], msgs[2:]...) // a part lost
				interrupted = true
			}
		case 6:
			msgs = msgs[:len(msgs)/2] // the link drops...
			interrupted = true
		}
		for i := range msgs {
			if err := us.n.Step(Input{Now: us.now, Msg: &msgs[i]}); err != nil {
				t.Fatalf("round %d: us refused %s: %v", round, msgs[i].Type, err)
			}
		}
		if run.answers == 6 && interrupted {
			// ... and comes back: us asks again at once, from its cursor.
			us.now = us.now.Add(time.Second)
			if err := us.n.Step(Input{Now: us.now, Resync: true}); err != nil {
				t.Fatal(err)
			}
		}
		us.drain()
		toEU = takeRequests(t, us)
		if interrupted && len(toEU) == 0 {
			t.Fatalf("round %d: no request after an interruption", round)
		}
	}
	for _, n := range eu.store.ranges {
		run.maxRead = max(run.maxRead, n)
	}
	run.served = eu.n.Stats().RepairRowsServed
	run.snapshots = us.n.Stats().SnapshotsStarted
	for i := 0; i < skus; i++ {
		sku := fmt.Sprintf("sku-%05d", i)
		want, _ := eu.n.RowSeq(sku, "eu")
		got, ok := us.n.RowSeq(sku, "eu")
		if !ok || got < want {
			run.missing = append(run.missing, sku)
		}
	}
	if len(run.missing) == 0 {
		// Done: us has seen eu up to the snapshot's bound, no snapshot is
		// in progress, and the stats agree. (A second snapshot, from the
		// first one's bound, follows when broadcasts lost in an
		// interruption leave a gap.)
		st := us.n.Stats()
		if st.SnapshotsStarted == 0 || st.SnapshotsDone != st.SnapshotsStarted || st.SnapshotsInProgress != 0 {
			t.Fatalf("us stats: %d started, %d done, %d in progress", st.SnapshotsStarted, st.SnapshotsDone, st.SnapshotsInProgress)
		}
		if st.SnapshotRowsReceived == 0 || st.SnapshotChunksReceived < skus/chunk {
			t.Fatalf("us stats: %d rows, %d chunks received", st.SnapshotRowsReceived, st.SnapshotChunksReceived)
		}
		if p := us.n.peers["eu"]; p.seen == 0 || p.seen > eu.n.seq {
			t.Fatalf("us has seen eu up to %d, eu is at %d", p.seen, eu.n.seq)
		}
	}
	return run
}

// takeRequests returns the repair requests tn sent to eu (and forgets
// everything it sent).
func takeRequests(t *testing.T, tn *tnode) []Message {
	t.Helper()
	var out []Message
	for _, m := range tn.sent {
		if m.Type == MsgRepairReq && m.To == "eu" {
			out = append(out, m)
		}
	}
	tn.sent = nil
	return out
}

// TestSnapshotBySKU: a snapshot in SKU order from an owner with the SKU
// cache reaches every row, each answer reads O(chunk) rows from the row
// source (never the catalogue), and both interruptions resume from the
// asker's cursor instead of starting over.
func TestSnapshotBySKU(t *testing.T) {
	run := snapshotScenario(t, plantedbugs.Bugs{})
	t.Logf("%d snapshots, %d answers, %d requests (%d resumed), %d rows served, at most %d rows read by one range scan",
		run.snapshots, run.answers, run.requests, run.resumed, run.served, run.maxRead)
	if len(run.missing) > 0 {
		t.Fatalf("us lacks eu's rows of %d SKUs, e.g. %s", len(run.missing), run.missing[0])
	}
	if run.answers < snapSKUs/snapChunk {
		t.Fatalf("%d answers for %d rows in chunks of %d", run.answers, snapSKUs, snapChunk)
	}
	if run.resumed != 2 {
		t.Fatalf("%d of 2 interruptions resumed from the cursor", run.resumed)
	}
	// An answer reads at most snapScanFactor rows per row it may send
	// (and the first of the next SKU, where it stops): never the
	// catalogue.
	if run.maxRead > snapScanFactor*snapChunk+1 || run.maxRead >= snapSKUs {
		t.Fatalf("one answer read %d rows from the row source", run.maxRead)
	}
	// Resuming re-sends at most the two interrupted answers (and the
	// rows that changed meanwhile).
	if run.served > snapSKUs+2*snapChunk+300 {
		t.Fatalf("%d rows served for %d SKUs", run.served, snapSKUs)
	}
}

// TestPlantedSnapshotSkipsRow: an answer that leaves out its last row
// while its cursor moves past it (planted SnapshotSkipsRow) leaves the
// asker without rows, and snapshotScenario's check catches it.
func TestPlantedSnapshotSkipsRow(t *testing.T) {
	run := snapshotScenario(t, plantedbugs.Bugs{SnapshotSkipsRow: true})
	if len(run.missing) == 0 {
		t.Fatal("planted SnapshotSkipsRow not caught: us has every row")
	}
	t.Logf("caught: us lacks eu's rows of %d SKUs, e.g. %s", len(run.missing), run.missing[0])
}

// TestSnapshotPartsFitOneMessage: parts of a snapshot in SKU order are cut
// by encoded size as well as by MaxRowsPerMsg, so that the transport never
// has to split one (a split part would carry a cursor past rows it does not
// hold): 4,096-row parts of 128-byte SKUs would be over MaxMessageBytes.
func TestSnapshotPartsFitOneMessage(t *testing.T) {
	eu := newTNode(t, Config{Region: "eu", MaxResidentSKUs: 10, MaxRowsPerMsg: MaxWireRows})
	long := strings.Repeat("x", MaxSKULen-6)
	const skus = 6000
	for i := 0; i < skus; i++ {
		eu.step(&Command{Kind: CmdRestock, ReqID: uint64(i + 1), SKU: fmt.Sprintf("%s%06d", long, i), Qty: 10})
		if i%500 == 499 {
			eu.drain()
		}
	}
	eu.drain()
	eu.sent = nil
	req := Message{Type: MsgRepairReq, From: "us", To: "eu", Qty: RepairBySKU, ID: 1 << snapPartBits}
	if err := eu.n.Step(Input{Now: eu.now, Msg: &req}); err != nil {
		t.Fatal(err)
	}
	eu.drain()
	parts, rows, cut := 0, 0, false
	for i := range eu.sent {
		m := &eu.sent[i]
		if m.To != "us" {
			continue
		}
		b, err := EncodeMessage(nil, m)
		if err != nil || len(b) > MaxMessageBytes {
			t.Fatalf("part %d (%d rows): %d bytes, %v", parts, len(m.Rows), len(b), err)
		}
		if m.ID != req.ID+uint64(parts)+1 || m.Qty != RepairBySKU {
			t.Fatalf("part %d: ID %d, Qty %d", parts, m.ID, m.Qty)
		}
		if m.More && len(m.Rows) < MaxWireRows {
			cut = true
		}
		parts++
		rows += len(m.Rows)
	}
	if rows != skus || !cut {
		t.Fatalf("%d rows in %d parts (cut by size: %v), want %d", rows, parts, cut, skus)
	}
	t.Logf("%d rows in %d parts", rows, parts)
}

// TestSnapshotSlowAnswerNotAskedAgain: while the parts of an answer keep
// coming in order, slower than the repair timeout in all (an owner paced
// by its answer byte budget), digests showing the asker behind do not make
// it ask again (which would void the rest of the answer); after the last
// part it asks for the next chunk once. Without the progress rule (the
// repair timeout counted from the last part in order) it fails: the asker
// asks again after the third part.
func TestSnapshotSlowAnswerNotAskedAgain(t *testing.T) {
	eu := newTNode(t, Config{Region: "eu", MaxResidentSKUs: 20, MaxRepairRows: 500, MaxRowsPerMsg: 50})
	us := newTNode(t, Config{Region: "us"})
	for i := 0; i < 1000; i++ {
		eu.step(&Command{Kind: CmdRestock, ReqID: uint64(i + 1), SKU: fmt.Sprintf("sku-%05d", i), Qty: 10})
	}
	eu.drain()
	eu.sent = nil
	dg := Message{Type: MsgDigest, From: "eu", Seq: eu.n.seq, Urgent: true, Qty: RepairBySKU}
	if err := us.n.Step(Input{Now: us.now, Msg: &dg}); err != nil {
		t.Fatal(err)
	}
	us.drain()
	req := takeRequests(t, us)
	if len(req) != 1 {
		t.Fatalf("%d requests", len(req))
	}
	if err := eu.n.Step(Input{Now: eu.now, Msg: &req[0]}); err != nil {
		t.Fatal(err)
	}
	eu.drain()
	parts := eu.sent
	if len(parts) != 10 {
		t.Fatalf("an answer of %d parts, want 10", len(parts))
	}
	for i := range parts {
		us.now = us.now.Add(400 * time.Millisecond) // 4 s in all, the timeout 1 s
		dg := Message{Type: MsgDigest, From: "eu", Seq: eu.n.seq, Qty: RepairBySKU}
		for _, m := range []*Message{&dg, &parts[i]} {
			if err := us.n.Step(Input{Now: us.now, Msg: m}); err != nil {
				t.Fatal(err)
			}
		}
		if err := us.n.Step(Input{Now: us.now}); err != nil { // a tick: retryRepairs
			t.Fatal(err)
		}
		us.drain()
		got := takeRequests(t, us)
		switch {
		case i < len(parts)-1 && len(got) > 0:
			t.Fatalf("after part %d of %d: asked again from %q", i+1, len(parts), got[0].SKU)
		case i == len(parts)-1 && (len(got) != 1 || got[0].SKU != "sku-00499"):
			t.Fatalf("after the last part: requests %+v, want one from sku-00499", got)
		}
	}
}
