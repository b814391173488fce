package escrow

import (
	"testing"
	"time"
)

// TestRTTSkipsFarPeer: eu measures the round trip of its borrows; once ap
// is known to be further away than a hold's borrow deadline, a hold asks
// the near peer us even though ap has the larger surplus, and counts ap as
// skipped for distance. The timeout that taught eu about ap raised its
// estimate to the time waited.
func TestRTTSkipsFarPeer(t *testing.T) {
	// A fixed deadline (max = min): stretching is TestRTTStretchesDeadline.
	tw := newTNet(t, Config{BorrowTimeout: 100 * time.Millisecond, BorrowTimeoutMax: 100 * time.Millisecond, PeerSilence: -1}, "ap", "eu", "us")
	eu := tw.nodes["eu"]
	tw.nodes["ap"].restock("A", 100)
	tw.nodes["us"].restock("A", 10)
	tw.flush()
	advance := func(d time.Duration) {
		tw.setNow(eu.now.Add(d))
		eu.tick(0)
	}
	borrowTo := func() string {
		tw.collect()
		for i := len(tw.queue) - 1; i >= 0; i-- {
			if q := tw.queue[i]; q.m.Type == MsgBorrowReq && q.m.From == "eu" {
				return q.to
			}
		}
		return ""
	}

	// 1. The first hold asks ap (largest surplus); ap answers after 220ms,
	// too late: the borrow times out and ap's estimate becomes ≥ 100ms.
	if r := eu.submit(Command{Lines: []Line{l("A", 1)}}); r != nil {
		t.Fatalf("hold answered at once: %+v", r)
	}
	if to := borrowTo(); to != "ap" {
		t.Fatalf("first borrow went to %q, want ap (largest surplus)", to)
	}
	advance(220 * time.Millisecond)
	tw.flush() // the late answer: merged, but no longer matched
	if rtt, ok := eu.n.PeerRTT("ap"); !ok || rtt < 100*time.Millisecond {
		t.Fatalf("RTT to ap after a timeout: %v %v, want at least the 100ms waited", rtt, ok)
	}
	if _, ok := eu.n.PeerRTT("us"); ok {
		t.Fatal("an RTT to us, which was never asked")
	}

	// 2. Next hold: ap is out of reach within 100ms, us is asked; it
	// answers after 40ms, which becomes its estimate.
	before := eu.n.Stats().BorrowsSkippedFar
	// eu has the 1 unit ap sent late; it needs one more.
	if r := eu.submit(Command{Lines: []Line{l("A", 2)}}); r != nil {
		t.Fatalf("hold answered at once: %+v", r)
	}
	if to := borrowTo(); to != "us" {
		t.Fatalf("second borrow went to %q, want us (ap is too far)", to)
	}
	if got := eu.n.Stats().BorrowsSkippedFar - before; got != 1 {
		t.Fatalf("BorrowsSkippedFar +%d, want +1", got)
	}
	advance(40 * time.Millisecond)
	tw.flush()
	if rtt, ok := eu.n.PeerRTT("us"); !ok || rtt != 40*time.Millisecond {
		t.Fatalf("RTT to us: %v %v, want 40ms", rtt, ok)
	}
	if got := eu.n.PeerRTTs(); len(got) != 2 {
		t.Fatalf("PeerRTTs %v, want ap and us", got)
	}

	// 3. A sample folds in with weight 1/8.
	eu.n.noteRTT("us", 120*time.Millisecond)
	if rtt, _ := eu.n.PeerRTT("us"); rtt != 50*time.Millisecond {
		t.Fatalf("smoothed RTT %v, want 40 + (120-40)/8 = 50ms", rtt)
	}
}
