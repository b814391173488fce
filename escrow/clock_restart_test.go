package escrow

import (
	"testing"
	"time"
)

// TestClockBackwardsAcrossRestart: the node's clock never runs backwards,
// across a restart too. A region restarts while its runtime's clock is 30s
// behind the time it granted a hold (a backward jump while it was down);
// releasing the hold must not date the change before the hold was created,
// and the hold keeps its deadline in the granting clock. (The simulator's
// jump fault found this: clock_errors.)
func TestClockBackwardsAcrossRestart(t *testing.T) {
	tn := newTNode(t, Config{DefaultTTL: time.Minute})
	tn.restock("a", 5)
	tn.tick(time.Minute)
	h := tn.hold(l("a", 2))
	tn.restart()
	tn.now = tn.now.Add(-30 * time.Second)
	r := tn.do(Command{Kind: CmdRelease, HoldID: h.ID})
	if r.Err != nil || r.Hold == nil {
		t.Fatalf("release: %+v", r)
	}
	if r.Hold.Updated.Before(h.Created) {
		t.Fatalf("released at %v, before the hold was created at %v", r.Hold.Updated, h.Created)
	}
	// A second hold made at the jumped-back clock expires on the node's
	// clock: a minute after the first hold's creation at the earliest.
	h2 := tn.hold(l("a", 1))
	if h2.Expires.Before(h.Created.Add(time.Minute)) {
		t.Fatalf("hold after the restart expires at %v, before %v", h2.Expires, h.Created.Add(time.Minute))
	}
}
