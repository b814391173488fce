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
