package escrow

// This file holds the copies of holds a Ready carries. A hold changed in a
// Ready is copied once, by the event that states the change (holdEvent);
// the reply that grants, confirms, releases or extends it shares that copy
// (granted, transition), and Persist.Holds points to it when every hold
// changed in the Ready changed once. Before, Ready made a second copy of
// every dirty hold (216 bytes, four time conversions) for Persist.Holds.
//
// A copy that a reply shares is kept for as long as anything points to it
// (a caller reads its Reply.Hold long after Advance): it comes from the
// hold arena (holdOut). A copy that no reply shares (an expiry's event,
// or Persist.Holds' own copy of a hold changed twice) is the runtime's
// only until the Ready's Advance, like Persist.Holds itself: it goes into
// tmpOut, a slice the node poisons and reuses once the Ready is Advanced
// (readybufs.go), so that a busy region's expiries allocate no copy.
//
// Every change of a hold is markHold then holdEvent (newHold, finish,
// extend). outCopy checks that it was, for a hold not dirty before (so
// outPtrs and dirtyHolds grow in step); anything else (a hold changed
// twice, a change without its event) breaks the sharing for the rest of
// the Ready, and Ready copies each hold (into tmpOut) for Persist.Holds.

// outCopy appends a copy of h as it is now to holdOut (kept: a reply may
// share it) or to tmpOut (reused after Advance: no reply shares it), and
// to outPtrs, and returns it. tmpOut starts at the size of the last
// Ready's (growTo). holdOut is only where kept copies live (outPtrs and
// the replies point to them): when it is full the next copies go to a new
// block and nothing is copied, and no block is larger than maxHoldBlock.
func (n *Node) outCopy(h *holdRec, kept bool) *Hold {
	var hc *Hold
	if kept {
		if len(n.holdOut) == cap(n.holdOut) {
			n.holdOut = n.holdArena.take(holdBlock(n.lastHolds, n.keptOut))
		}
		n.holdOut = n.holdOut[:len(n.holdOut)+1]
		hc = &n.holdOut[len(n.holdOut)-1]
		n.keptOut++
	} else {
		hc = n.tmpCopySlot()
	}
	// Filled in place (fillHold), not appended as a value: no Hold
	// temporary, no bulk write barrier.
	h.fillHold(hc)
	if n.outPtrs == nil {
		n.outPtrs = n.readyBufs.takeHoldPtrs(n.lastHolds+n.lastTmp, n.cfg.bugs.RecycleAtReady)
	}
	*extend(&n.outPtrs, n.lastHolds+n.lastTmp) = hc
	k := len(n.outPtrs)
	if n.marked != h || k != len(n.dirtyHolds) || n.dirtyHolds[k-1] != h {
		n.outBroken = true
	}
	n.marked = nil
	return hc
}

// tmpCopySlot returns the next slot of tmpOut, for a copy no reply shares.
func (n *Node) tmpCopySlot() *Hold {
	if n.tmpOut == nil {
		n.tmpOut = n.readyBufs.takeHoldCopies(n, n.lastTmp)
	}
	return extend(&n.tmpOut, n.lastTmp)
}

// persistHolds returns Persist.Holds: every dirty hold still kept (a hold
// finished and retired within this Ready is in DeletedHolds, and writing
// it too would make the batch depend on the order of puts and deletes), as
// it is now, once, in dirtyHolds order. It clears dirtyHolds. The slice is
// outPtrs when it is that list already (each dirty hold changed once, in
// order: its one copy is its state now); else each hold gets a copy of its
// own in tmpOut, so that a hold changed twice is written once, as it is
// at the end of the Ready, never as one of its events stated it before.
func (n *Node) persistHolds() []*Hold {
	shared := !n.outBroken && n.marked == nil && len(n.outPtrs) == len(n.dirtyHolds)
	for _, h := range n.dirtyHolds {
		if h.gone {
			shared = false
			break
		}
	}
	if n.cfg.bugs.ShareAllHoldCopies && len(n.outPtrs) > 0 {
		shared = true
	}
	var ps []*Hold
	if shared {
		// Each dirty hold's current copy, in order: outPtrs is the list.
		ps, n.outPtrs = n.outPtrs, nil
	} else {
		ps = n.readyBufs.takeHoldPtrs(len(n.dirtyHolds), n.cfg.bugs.RecycleAtReady)
	}
	for _, h := range n.dirtyHolds {
		h.dirty = false
		if !shared {
			if h.gone {
				continue
			}
			// Lines are immutable once a hold exists: shared, not copied.
			hc := n.tmpCopySlot()
			h.fillHold(hc)
			ps = append(ps, hc)
		}
		if n.hc.on {
			n.pushHold(h, n.cache.readyNo)
		}
	}
	n.dirtyHolds = n.dirtyHolds[:0]
	return ps
}

// maxHoldBlock bounds a block of kept hold copies: 128 copies of 216-224
// bytes stay below the runtime's large-object size (32 KiB), whose
// allocations take fresh spans (and page faults) every time. A Ready of a
// busy region carries a few hundred holds; one slice for all of them was
// a large object, grown by copying when the Ready outgrew the last one.
const maxHoldBlock = 128

// holdBlock is the size of the next block of kept copies, kept of them in
// this Ready so far: room for the rest of as many as the last Ready had
// (last), or as many again as there are when it had fewer, at least one
// and at most maxHoldBlock.
func holdBlock(last, kept int) int {
	want := last - kept
	if want <= 0 {
		want = kept
	}
	return min(max(want, 1), maxHoldBlock)
}
