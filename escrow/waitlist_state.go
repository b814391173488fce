package escrow

import (
	"sort"
	"time"
)

// The waitlist's durable state (Persist.Waits, State.Waits), inspection and
// the invariant check (see waitlist.go).

// drainWaits moves the changed entries into the Ready's Persist.
func (n *Node) drainWaits(rd *Ready) {
	w := &n.wait
	if len(w.dirty) == 0 {
		return
	}
	for _, e := range w.dirty {
		e.dirty = false
		if w.entries[e.ID] != e {
			continue // retired within this Ready: it is in DeletedWaits
		}
		rd.Persist.Waits = append(rd.Persist.Waits, e.WaitEntry)
	}
	w.dirty = w.dirty[:0]
}

// restoreWaits loads stored entries, in placement order.
func (n *Node) restoreWaits(ws []WaitEntry) error {
	if len(ws) == 0 {
		return nil
	}
	w := &n.wait
	for i := range ws {
		e := &waitRec{WaitEntry: ws[i]}
		e.Lines = append([]Line(nil), e.Lines...)
		e.Position = nil
		owner, err := OwnerOf(e.ID)
		if err != nil {
			return err
		}
		if owner != n.cfg.Region {
			return errorf(CodeInvariant, "stored waitlist entry %s belongs to region %s", e.ID, owner)
		}
		if _, err := NormalizeLines(e.Lines); err != nil || e.State < Waiting || e.State > WaitExpired {
			return errorf(CodeInvariant, "stored waitlist entry %s is malformed", e.ID)
		}
		w.entries[e.ID] = e
		w.seq = max(w.seq, e.Seq)
		if e.State == Waiting {
			w.queue = append(w.queue, e)
			w.expiry.push(nanos(e.Deadline), waitID(e.ID))
			n.countWaiting(e, +1)
		} else {
			w.retire.push(nanos(e.Updated.Add(n.cfg.HoldRetain)), waitID(e.ID))
		}
	}
	sort.Slice(w.queue, func(i, j int) bool { return w.queue[i].Seq < w.queue[j].Seq })
	w.promoteDue = w.waiting > 0
	w.demandDue = w.waiting > 0
	return nil
}

// WaitEntries returns a copy of every entry this node keeps, in placement
// order, with positions for waiting ones: for checkers and inspection.
func (n *Node) WaitEntries() []WaitEntry {
	out := make([]WaitEntry, 0, len(n.wait.entries))
	for _, e := range n.wait.entries {
		out = append(out, n.viewWait(e))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// Waiting returns the number of waiting entries and units of sku here.
func (n *Node) Waiting(sku string) (entries int, units uint64) {
	if w := n.wait.perSKU[sku]; w != nil {
		return w.entries, w.units
	}
	return 0, 0
}

// checkWaitlist asserts the waitlist invariants: the queue is in placement
// order and the per-SKU counts match the waiting entries. For tests.
func (n *Node) checkWaitlist() error {
	w := &n.wait
	units := map[string]uint64{}
	entries := map[string]int{}
	var last uint64
	total := 0
	for _, e := range w.queue {
		if e.Seq <= last {
			return errorf(CodeInvariant, "waitlist out of placement order at %s", e.ID)
		}
		last = e.Seq
		if e.State != Waiting {
			continue
		}
		total++
		for _, l := range e.Lines {
			units[l.SKU] += l.Qty
			entries[l.SKU]++
		}
	}
	if total != w.waiting {
		return errorf(CodeInvariant, "waitlist: %d waiting entries, count says %d", total, w.waiting)
	}
	for sku, sw := range w.perSKU {
		if sw.entries != entries[sku] || sw.units != units[sku] {
			return errorf(CodeInvariant, "waitlist of %s: count %d/%d units, queue %d/%d", sku, sw.entries, sw.units, entries[sku], units[sku])
		}
	}
	return nil
}

// PromotedWaits calls f with the wait time (placement to promotion, on the
// owner's clock) of every entry the Persist promotes. An entry is written
// only when it changes and a promoted entry never changes again, so a
// runtime that calls it once per committed Persist sees each promotion once
// (metrics: the wait-time histogram).
func (p *Persist) PromotedWaits(f func(wait time.Duration)) {
	for i := range p.Waits {
		if e := &p.Waits[i]; e.State == Promoted {
			f(max(0, e.Updated.Sub(e.Created)))
		}
	}
}

// waitingUnits sums the units every waiting entry of this region asks for.
func (n *Node) waitingUnits() uint64 {
	var u uint64
	for _, sw := range n.wait.perSKU {
		u += sw.units
	}
	return u
}
