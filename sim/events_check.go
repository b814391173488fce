package sim

import (
	"github.com/holdfast-io/holdfast/escrow"
)

// The event checker. A region's durable model (durable.events) numbers the
// events of each Persist it keeps 1, 2, 3 … across crashes, as the region's
// outbox does; a Persist that never became durable leaves no event. At each
// durable write the checker compares the events the Persist carries with
// the change it makes to the durable state (before it is applied):
//
//   - every hold the events name is in the Persist (no event for a change
//     that is not kept), and the events of one hold, applied in order to
//     its durable state, are legal (created only for a hold never created
//     before; extended, confirmed, released, expired only while held, each
//     with the state it names) and end at the hold the Persist writes;
//   - every hold the Persist writes is explained by its events: created if
//     new, the finishing event if it left HELD, extended if its deadline
//     moved later (one event per acknowledged change, no missing one);
//   - per SKU, the restock and write-off events of the region's own row add
//     up to exactly the row's Minted and Shrunk increase;
//   - the sequence continues the region's durable one, with no gap.
//
// A violation counts in Result.EventErrors.

// waitEventState is the state each waitlist event brings its entry to.
var waitEventState = map[escrow.EventKind]escrow.WaitState{escrow.EvWaitJoined: escrow.Waiting,
	escrow.EvWaitPromoted: escrow.Promoted, escrow.EvWaitCancelled: escrow.Cancelled, escrow.EvWaitExpired: escrow.WaitExpired}

// checkWaitEvent: a waitlist event names an entry the Persist writes (w),
// in the state the event announces (an entry ends once, so the written
// state is the event's unless it joined and ended in one batch); a
// promotion names the hold the entry became.
func (o *oracle) checkWaitEvent(ep *endpoint, e *escrow.Event, w *escrow.WaitEntry) {
	switch {
	case w == nil:
		o.eventError(ep, "%s event of entry %s, which the Persist does not write", e.Kind, e.Wait.ID)
	case e.Wait.State != waitEventState[e.Kind]:
		o.eventError(ep, "%s event of entry %s carries state %v", e.Kind, e.Wait.ID, e.Wait.State)
	case e.Kind != escrow.EvWaitJoined && w.State != e.Wait.State:
		o.eventError(ep, "%s event of entry %s, which the Persist writes as %v", e.Kind, e.Wait.ID, w.State)
	case e.Kind == escrow.EvWaitPromoted && (e.Wait.HoldID == "" || e.Wait.HoldID != w.HoldID):
		o.eventError(ep, "promoted event of entry %s names hold %q, the Persist writes %q", e.Wait.ID, e.Wait.HoldID, w.HoldID)
	}
}

// evState is what the checker knows of a hold from its events.
type evState struct {
	exists  bool
	state   escrow.HoldState
	expires int64
}

func (o *oracle) eventError(ep *endpoint, format string, args ...any) {
	o.w.res.EventErrors++
	if o.w.res.EventErrors <= 3 {
		o.w.fail("events of region %s: "+format, append([]any{ep.name}, args...)...)
	}
}

// onEvents checks p's events against ep's durable state, which p is about
// to be applied to.
func (o *oracle) onEvents(ep *endpoint, p *escrow.Persist) {
	d := ep.dur
	if o.evCreated == nil {
		o.evCreated = map[string]bool{}
	}
	if len(p.Events) == 0 && len(p.Holds) == 0 && len(p.Rows) == 0 {
		return
	}
	written := make(map[string]*escrow.Hold, len(p.Holds))
	for i := range p.Holds {
		written[p.Holds[i].ID] = p.Holds[i]
	}
	cur := map[string]evState{}
	stateOf := func(id string) evState {
		if s, ok := cur[id]; ok {
			return s
		}
		h, ok := d.holds[id]
		if !ok {
			return evState{}
		}
		return evState{exists: true, state: h.State, expires: h.Expires.UnixNano()}
	}
	var restocked, writtenOff map[string]uint64
	var waits map[string]*escrow.WaitEntry
	for i := range p.Events {
		e := &p.Events[i]
		if e.Kind.IsWait() {
			if waits == nil {
				waits = make(map[string]*escrow.WaitEntry, len(p.Waits))
				for j := range p.Waits {
					waits[p.Waits[j].ID] = &p.Waits[j]
				}
			}
			o.checkWaitEvent(ep, e, waits[e.Wait.ID])
			continue
		}
		if !e.Kind.IsHold() {
			switch e.Kind {
			case escrow.EvStockRestocked:
				if restocked == nil {
					restocked = map[string]uint64{}
				}
				restocked[e.SKU] += e.Qty
			case escrow.EvStockWrittenOff:
				if writtenOff == nil {
					writtenOff = map[string]uint64{}
				}
				writtenOff[e.SKU] += e.Qty
			default:
				o.eventError(ep, "event %d has unknown kind %d", i, e.Kind)
			}
			continue
		}
		if e.Hold.ID != e.HoldID {
			o.eventError(ep, "%s event names hold %s but carries %s", e.Kind, e.HoldID, e.Hold.ID)
			continue
		}
		if written[e.HoldID] == nil {
			o.eventError(ep, "%s event for hold %s, which the Persist does not write", e.Kind, e.HoldID)
			continue
		}
		s := stateOf(e.HoldID)
		var ok bool
		switch e.Kind {
		case escrow.EvHoldCreated:
			ok = !s.exists && !o.evCreated[e.HoldID] && e.Hold.State == escrow.Held
			o.evCreated[e.HoldID] = true
		case escrow.EvHoldExtended:
			ok = s.exists && s.state == escrow.Held && e.Hold.State == escrow.Held && e.Hold.Expires.UnixNano() > s.expires
		case escrow.EvHoldConfirmed, escrow.EvHoldReleased, escrow.EvHoldExpired:
			want := map[escrow.EventKind]escrow.HoldState{escrow.EvHoldConfirmed: escrow.Confirmed,
				escrow.EvHoldReleased: escrow.Released, escrow.EvHoldExpired: escrow.Expired}[e.Kind]
			ok = s.exists && s.state == escrow.Held && e.Hold.State == want
		}
		if !ok {
			o.eventError(ep, "%s event for hold %s in state %v (exists %v)", e.Kind, e.HoldID, s.state, s.exists)
		}
		cur[e.HoldID] = evState{exists: true, state: e.Hold.State, expires: e.Hold.Expires.UnixNano()}
	}
	for id, h := range written {
		s := stateOf(id)
		old, had := d.holds[id]
		switch {
		case !s.exists:
			o.eventError(ep, "hold %s written in state %v with no created event", id, h.State)
		case s.state != h.State:
			o.eventError(ep, "hold %s written %v, its events leave it %v", id, h.State, s.state)
		case h.State == escrow.Held && had && old.State == escrow.Held && h.Expires.After(old.Expires) && s.expires < h.Expires.UnixNano():
			o.eventError(ep, "hold %s extended with no extended event", id)
		}
	}
	for i := range p.Rows {
		r := &p.Rows[i]
		if r.Region != ep.name {
			continue
		}
		old := d.rows[[2]string{r.SKU, r.Region}]
		if dm := r.Minted - old.Minted; dm != restocked[r.SKU] {
			o.eventError(ep, "%s: minted +%d, restock events +%d", r.SKU, dm, restocked[r.SKU])
		}
		if ds := r.Shrunk - old.Shrunk; ds != writtenOff[r.SKU] {
			o.eventError(ep, "%s: shrunk +%d, write-off events +%d", r.SKU, ds, writtenOff[r.SKU])
		}
		delete(restocked, r.SKU)
		delete(writtenOff, r.SKU)
	}
	for sku, q := range restocked {
		o.eventError(ep, "%s: restock events +%d for a row the Persist does not write", sku, q)
	}
	for sku, q := range writtenOff {
		o.eventError(ep, "%s: write-off events +%d for a row the Persist does not write", sku, q)
	}
	if want := o.evSeq(ep); d.evSeq != want {
		o.eventError(ep, "durable event sequence at %d, the region had %d", d.evSeq, want)
	}
	o.evSeqs[ep.idx] += uint64(len(p.Events))
}

// evSeq is the last event sequence of ep's region the checker has seen
// made durable.
func (o *oracle) evSeq(ep *endpoint) uint64 {
	if o.evSeqs == nil {
		o.evSeqs = make([]uint64, o.w.nReg)
	}
	return o.evSeqs[ep.idx]
}
