package escrow

import "fmt"

// WaitChecker checks the waitlist guarantees from outside a node, on what
// it persists (Persist.Waits of every Ready, in order), so that the
// simulator and tests can run it against any node:
//   - every entry ends in exactly one terminal state, and a terminal entry
//     never changes again (a second promotion is a violation);
//   - FIFO under the head-of-line policy (waitlist.go): when an entry is
//     promoted, no earlier entry of the same region sharing a SKU with it
//     is still waiting.
type WaitChecker struct {
	entries map[string]WaitEntry // by id
	// Violations found so far (the first few).
	Violations []string
	Promotions int
}

// NewWaitChecker returns an empty checker.
func NewWaitChecker() *WaitChecker { return &WaitChecker{entries: map[string]WaitEntry{}} }

func (c *WaitChecker) fail(format string, args ...any) {
	if len(c.Violations) < 20 {
		c.Violations = append(c.Violations, fmt.Sprintf(format, args...))
	}
}

// Observe takes the Persist of one Ready of one node.
func (c *WaitChecker) Observe(p *Persist) {
	var promoted []WaitEntry
	for _, e := range p.Waits {
		old, seen := c.entries[e.ID]
		if seen && old.State.Terminal() && (old.State != e.State || old.HoldID != e.HoldID) {
			c.fail("entry %s changed after its terminal state %s: now %s (hold %s → %s)", e.ID, old.State, e.State, old.HoldID, e.HoldID)
		}
		if e.State == Promoted && (!seen || old.State != Promoted || old.HoldID != e.HoldID) {
			promoted = append(promoted, e)
			c.Promotions++
		}
		c.entries[e.ID] = e
	}
	for _, e := range promoted {
		region, _ := OwnerOf(e.ID)
		for _, o := range c.entries {
			if o.State != Waiting || o.Seq >= e.Seq {
				continue
			}
			if r, _ := OwnerOf(o.ID); r != region || !sharesSKU(o.Lines, e.Lines) {
				continue
			}
			c.fail("entry %s (#%d) was promoted while the earlier entry %s (#%d) for the same SKU waits", e.ID, e.Seq, o.ID, o.Seq)
		}
	}
}

// Entry returns the last state of entry id the checker saw.
func (c *WaitChecker) Entry(id string) (WaitEntry, bool) {
	e, ok := c.entries[id]
	return e, ok
}

// Forget drops terminal entries deleted after retention.
func (c *WaitChecker) Forget(ids []string) {
	for _, id := range ids {
		delete(c.entries, id)
	}
}

func sharesSKU(a, b []Line) bool {
	for _, x := range a {
		for _, y := range b {
			if x.SKU == y.SKU {
				return true
			}
		}
	}
	return false
}
