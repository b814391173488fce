package escrow

import (
	"testing"
	"time"
)

// TestSeenReportsHighestRow: a digest's Seen names the highest sequence of
// a peer's rows the node holds, not only the last contiguous one. us gets
// eu's rows of sequence 9 while it still waits for a repair of 1..8 (a
// gap): its digest must say it saw eu up to 9, or an eu whose store went
// back to sequence 5 would pass its probation. (Checked: with seenList
// reporting the contiguous sequence, this test fails with Seen = [].)
func TestSeenReportsHighestRow(t *testing.T) {
	us := newTNode(t, Config{Region: "us", DigestInterval: time.Second})
	m := Message{Type: MsgRows, From: "eu", To: "", Seq: 9, PrevSeq: 8,
		Rows: []Row{{SKU: "A", Region: "eu", Seq: 9, Minted: 10}}}
	if err := us.n.Step(Input{Now: us.now, Msg: &m}); err != nil {
		t.Fatal(err)
	}
	us.drain()
	us.sent = nil
	us.tick(2 * time.Second)
	var seen []RegionSeq
	for _, s := range us.sent {
		if s.Type == MsgDigest {
			seen = s.Seen
		}
	}
	if len(seen) != 1 || seen[0] != (RegionSeq{Region: "eu", Seq: 9}) {
		t.Fatalf("digest Seen = %v, want [eu 9]", seen)
	}
	// Also after a restart from the store.
	us.restart()
	us.sent = nil
	us.tick(2 * time.Second)
	seen = nil
	for _, s := range us.sent {
		if s.Type == MsgDigest {
			seen = s.Seen
		}
	}
	if len(seen) != 1 || seen[0].Seq != 9 {
		t.Fatalf("after a restart, digest Seen = %v, want [eu 9]", seen)
	}
}

// TestRestartProbationStaleDigest: on restart probation, a digest older
// than rows the node holds from its sender (a late copy) is no clean
// report, and a fresh clean report ends the probation only once it has
// stood for the minimum wait.
func TestRestartProbationStaleDigest(t *testing.T) {
	st := &State{Seq: 10, Rows: []Row{{SKU: "A", Region: "eu", Seq: 10, Minted: 5}, {SKU: "A", Region: "us", Seq: 50, Minted: 5}}}
	n, err := NewNode(Config{Region: "eu", DigestInterval: time.Second, TopUpHorizon: -1}, st)
	if err != nil {
		t.Fatal(err)
	}
	if !n.BeginRestartProbation(time.Second, 0) {
		t.Fatal("not on restart probation")
	}
	now := t0
	step := func(in Input) {
		t.Helper()
		in.Now = now
		if err := n.Step(in); err != nil {
			t.Fatal(err)
		}
		if n.HasReady() {
			n.Ready()
			n.Advance()
		}
	}
	digest := func(seq uint64) {
		step(Input{Msg: &Message{Type: MsgDigest, From: "us", Seq: seq, Seen: []RegionSeq{{Region: "eu", Seq: 10}}}})
	}
	on := func(want bool, when string) {
		t.Helper()
		if f := n.Fence(); f.Probation != want {
			t.Fatalf("%s: probation %v, want %v (%s)", when, f.Probation, want, f.Detail)
		}
	}
	step(Input{}) // first tick: the wait starts
	digest(40)    // older than us's row of seq 50 that eu holds
	now = now.Add(3 * time.Second)
	step(Input{})
	on(true, "after a stale clean digest and 3s")
	digest(60)
	now = now.Add(500 * time.Millisecond)
	step(Input{})
	on(true, "0.5s after a fresh clean digest")
	now = now.Add(time.Second)
	step(Input{})
	on(false, "1.5s after a fresh clean digest")
}

// TestRestartProbationBehindPeer: a fenced peer whose digests name a
// sequence below rows of it the node holds has had its own store go back:
// the restart probation does not wait for its word, and ends on the other
// peer's standing clean report. Behind but not fenced (a late copy of an
// old digest looks so), it is still awaited.
func TestRestartProbationBehindPeer(t *testing.T) {
	st := &State{Seq: 10, Rows: []Row{{SKU: "A", Region: "eu", Seq: 10, Minted: 5},
		{SKU: "A", Region: "us", Seq: 50, Minted: 5}, {SKU: "A", Region: "ap", Seq: 70, Minted: 5}}}
	n, err := NewNode(Config{Region: "eu", DigestInterval: time.Second, TopUpHorizon: -1}, st)
	if err != nil {
		t.Fatal(err)
	}
	if !n.BeginRestartProbation(time.Second, 0) {
		t.Fatal("not on restart probation")
	}
	now := t0
	step := func(m *Message) {
		t.Helper()
		if err := n.Step(Input{Now: now, Msg: m}); err != nil {
			t.Fatal(err)
		}
		if n.HasReady() {
			n.Ready()
			n.Advance()
		}
	}
	clean := []RegionSeq{{Region: "eu", Seq: 10}}
	step(nil)
	step(&Message{Type: MsgDigest, From: "us", Seq: 60, Seen: clean})
	now = now.Add(2 * time.Second)
	step(nil)
	if !n.Fence().Probation {
		t.Fatal("probation ended without ap's word")
	}
	// A late copy of an old digest of ap: behind, not fenced.
	step(&Message{Type: MsgDigest, From: "ap", Seq: 3})
	now = now.Add(2 * time.Second)
	step(nil)
	if !n.Fence().Probation {
		t.Fatal("probation ended on a late copy of ap's digest")
	}
	// ap's store went back to sequence 3 and ap is fenced: its digests
	// are behind its rows.
	step(&Message{Type: MsgDigest, From: "ap", Seq: 3, Fenced: true})
	step(&Message{Type: MsgDigest, From: "us", Seq: 61, Seen: clean})
	now = now.Add(100 * time.Millisecond)
	step(nil)
	if f := n.Fence(); f.Probation || f.Fenced {
		t.Fatalf("still on probation: %+v", f)
	}
}
