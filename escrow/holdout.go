package escrow

// This file holds the copies of holds a Ready carries. A hold changed in a
// Ready is copied once, by the event that states the change (holdEvent),
// into the node's holdOut; the reply that grants it shares that copy
// (granted), and so does Persist.Holds when every hold changed in the
// Ready changed once. Before, Ready made a second copy of every dirty hold
// (216 bytes, four time conversions) for Persist.Holds.
//
// Every change of a hold is markHold then holdEvent (newHold, finish,
// extend). outCopy checks that it was, for a hold not dirty before (so
// holdOut and dirtyHolds grow in step); anything else (a hold changed
// twice, a change without its event) breaks the sharing for the rest of
// the Ready, and Ready copies each hold as before.

// outCopy appends a copy of h as it is now to holdOut and returns it. The
// slice starts at the size of the last Ready's (growTo); a copy made
// before a growth stays where it is, read only, the same value as the one
// the grown slice holds.
func (n *Node) outCopy(h *holdRec) *Hold {
	if n.holdOut == nil {
		// Room for as many as the last Ready had (from the arena while
		// few): most Readies then allocate nothing here, or once.
		n.holdOut = n.holdArena.take(max(1, min(n.lastHolds, maxGrowHint)))
	}
	// Filled in place (fillHold), not appended as a value: no Hold
	// temporary, no bulk write barrier.
	k := len(n.holdOut) + 1
	n.holdOut = growTo(n.holdOut, n.lastHolds)[:k]
	h.fillHold(&n.holdOut[k-1])
	if n.marked != h || k != len(n.dirtyHolds) || n.dirtyHolds[k-1] != h {
		n.outBroken = true
	}
	n.marked = nil
	return &n.holdOut[k-1]
}

// persistHolds returns Persist.Holds: every dirty hold still kept (a hold
// finished and retired within this Ready is in DeletedHolds, and writing
// it too would make the batch depend on the order of puts and deletes), as
// it is now, in dirtyHolds order. It clears dirtyHolds.
func (n *Node) persistHolds() []Hold {
	shared := !n.outBroken && n.marked == nil && len(n.holdOut) == len(n.dirtyHolds)
	for _, h := range n.dirtyHolds {
		if h.gone {
			shared = false
			break
		}
	}
	if n.cfg.bugs.ShareAllHoldCopies && len(n.holdOut) > 0 {
		shared = true
	}
	var ps []Hold
	if shared {
		// Each dirty hold's current copy, in order: holdOut is the list.
		ps = n.holdOut[:len(n.holdOut):len(n.holdOut)]
	} else {
		ps = n.holdArena.take(len(n.dirtyHolds))
	}
	for _, h := range n.dirtyHolds {
		h.dirty = false
		if !shared {
			if h.gone {
				continue
			}
			// Lines are immutable once a hold exists: shared, not copied.
			ps = append(ps, h.hold())
		}
		if n.hc.on {
			n.pushHold(h, n.cache.readyNo)
		}
	}
	n.dirtyHolds = n.dirtyHolds[:0]
	return ps
}
