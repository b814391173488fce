package escrow

import "time"

// EventKind names a change that systems downstream of holdfast (order
// pipelines, mailers, analytics) care about.
type EventKind uint8

const (
	EvHoldCreated     EventKind = iota + 1 // a hold was granted
	EvHoldExtended                         // a held hold's deadline moved later
	EvHoldConfirmed                        // HELD → CONFIRMED
	EvHoldReleased                         // HELD → RELEASED
	EvHoldExpired                          // HELD → EXPIRED (deadline passed)
	EvStockRestocked                       // units added to this region's slice
	EvStockWrittenOff                      // units taken out of this region's slice
	EvWaitJoined                           // a hold joined the waitlist (waitlist.go)
	EvWaitPromoted                         // WAITING → PROMOTED: the entry became hold Wait.HoldID
	EvWaitCancelled                        // WAITING → CANCELLED
	EvWaitExpired                          // WAITING → EXPIRED (its wait deadline passed)
)

var eventNames = [...]string{EvHoldCreated: "hold.created", EvHoldExtended: "hold.extended",
	EvHoldConfirmed: "hold.confirmed", EvHoldReleased: "hold.released", EvHoldExpired: "hold.expired",
	EvStockRestocked: "stock.restocked", EvStockWrittenOff: "stock.written_off",
	EvWaitJoined: "waitlist.joined", EvWaitPromoted: "waitlist.promoted", EvWaitCancelled: "waitlist.cancelled",
	EvWaitExpired: "waitlist.expired"}

// String is the kind's stable name, e.g. "hold.confirmed": it is the suffix
// of the published event type, so it never changes once released.
func (k EventKind) String() string { return enumName(eventNames[:], k) }

// IsHold reports whether k is about one hold (else it is about one SKU).
func (k EventKind) IsHold() bool { return k >= EvHoldCreated && k <= EvHoldExpired }

// IsWait reports whether k is about one waitlist entry.
func (k EventKind) IsWait() bool { return k >= EvWaitJoined && k <= EvWaitExpired }

// EventKinds lists every kind, in order.
func EventKinds() []EventKind {
	return []EventKind{EvHoldCreated, EvHoldExtended, EvHoldConfirmed, EvHoldReleased, EvHoldExpired,
		EvStockRestocked, EvStockWrittenOff, EvWaitJoined, EvWaitPromoted, EvWaitCancelled, EvWaitExpired}
}

// Event is one change, stated by the node in the Ready whose Persist makes
// the change durable: a runtime that writes Persist.Events in the same batch
// as the rest of Persist never announces a change that was not kept, and
// never loses one that was. Events of one Ready are in the order of the
// changes. A hold's events are always stated by the region that owns it
// (only the owner changes a hold, routed holds included).
type Event struct {
	Kind EventKind
	At   time.Time // the node's clock at the change
	// HoldID and Hold (hold events): the hold as of this change, which is
	// not always its state at the end of the Ready (a hold may be created
	// and confirmed in one). Read only: Hold.Lines is shared with the node,
	// and the Hold of a hold's creation with the Reply that granted it.
	// (A pointer, as Wait: an Event is 96 bytes instead of 504, copied into
	// every Ready.)
	HoldID string
	Hold   *Hold
	// SKU, Qty and Available (stock events): units restocked or written off
	// here, and the units available here after the change.
	SKU       string
	Qty       uint64
	Available uint64
	// Wait (waitlist events): the entry as of this change (no Position).
	// Read only: Wait.Lines is shared with the node.
	Wait *WaitEntry
}

// Subject is what the event is about: the hold id, the waitlist entry id
// or the SKU.
func (e *Event) Subject() string {
	switch {
	case e.Kind.IsHold():
		return e.HoldID
	case e.Kind.IsWait():
		return e.Wait.ID
	}
	return e.SKU
}

// holdEvent states a change of h; call it after the change. It returns
// the event's copy of h, which a reply that follows at once may share
// (newHold, granted) when kept; a copy not kept is reused once the Ready
// is Advanced (holdout.go), so no reply may point to it.
func (n *Node) holdEvent(k EventKind, h *holdRec, kept bool) *Hold {
	if n.out.Persist.Events == nil {
		n.out.Persist.Events = n.takeEvents()
	}
	hc := n.outCopy(h, kept)
	extend(&n.out.Persist.Events, n.lastEvents).setHold(k, n.now, hc)
	return hc
}

// setHold makes *e the event of kind k of the hold copy hc at now, field
// by field (see holdRec.fillHold: no bulk write barrier); every field is
// written, so e may be a recycled slot (poisoned, readybufs.go).
func (e *Event) setHold(k EventKind, now time.Time, hc *Hold) {
	e.Kind, e.At, e.HoldID, e.Hold = k, now, hc.ID, hc
	e.SKU, e.Qty, e.Available, e.Wait = "", 0, 0, nil
}

// stockEvent states a restock or write-off of qty units of s.
func (n *Node) stockEvent(k EventKind, s *skuState, qty uint64) {
	if n.out.Persist.Events == nil {
		n.out.Persist.Events = n.takeEvents()
	}
	n.out.Persist.Events = append(growTo(n.out.Persist.Events, n.lastEvents),
		Event{Kind: k, At: n.now, SKU: s.sku, Qty: qty, Available: n.available(s)})
}
