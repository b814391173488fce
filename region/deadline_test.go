package region

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// TestDoWithinFarDeadlineOnTime: a caller whose deadline is further than
// deadlineSlowFor waits on the slow tick, and still gets DeadlineExceeded
// within a few fast ticks of its deadline: it moves to the fast tick once
// the deadline is near. The deadline is put half-way between two slow
// ticks, so that a caller left on the slow tick would be about half a slow
// period late (and one that never looked again, never answered). The write
// never completes during the wait (gatedApply, no inline commit).
func TestDoWithinFarDeadlineOnTime(t *testing.T) {
	r, _ := openGated(t, Config{})
	<-*r.deadlineSlowTick.Load() // a slow tick just passed
	timeout := deadlineSlowFor + deadlineSlowEvery/2
	start := time.Now()
	_, err := r.DoWithin(context.Background(), escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1}, timeout)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want context.DeadlineExceeded", err)
	}
	// Left on the slow tick it would be ~deadlineSlowEvery/2 late; the
	// bound leaves a loaded machine 15 fast ticks of slack under that.
	if took < timeout || took > timeout+deadlineSlowEvery*2/5 {
		t.Fatalf("timed out after %v, timeout %v (fast tick %v)", took, timeout, deadlineTickEvery)
	}
}
