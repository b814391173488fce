package escrow

import (
	"testing"
	"time"
)

// holdEventKinds gives, per state a hold can reach, the kind of the event
// that brings it there (EvHoldCreated and EvHoldExtended both leave it held).
var holdEventState = map[EventKind]HoldState{EvHoldCreated: Held, EvHoldExtended: Held,
	EvHoldConfirmed: Confirmed, EvHoldReleased: Released, EvHoldExpired: Expired}

// checkEvents is the durability contract of Persist.Events, checked by
// memStore.apply before it writes p over the state in s (so by every test
// that persists, the property test included): a hold written by p whose
// content changed has exactly one event per change, forming a legal path
// from its stored version to the written one; no event names a hold or SKU
// that p does not write; every hold event is stated by the hold's owner.
func checkEvents(t testing.TB, s *memStore, p *Persist) {
	t.Helper()
	written := make(map[string]*Hold, len(p.Holds))
	for i := range p.Holds {
		written[p.Holds[i].ID] = p.Holds[i]
	}
	deleted := make(map[string]bool, len(p.DeletedHolds))
	for _, id := range p.DeletedHolds {
		deleted[id] = true
	}
	rowSKUs := make(map[string]bool, len(p.Rows))
	for i := range p.Rows {
		rowSKUs[p.Rows[i].SKU] = true
	}
	// last is the hold as of the events seen so far in this batch.
	last := map[string]*Hold{}
	waits := make(map[string]*WaitEntry, len(p.Waits))
	for i := range p.Waits {
		waits[p.Waits[i].ID] = &p.Waits[i]
	}
	for i := range p.Events {
		e := &p.Events[i]
		if e.Kind.IsWait() {
			checkWaitEvent(t, e, waits[e.Wait.ID])
			continue
		}
		if !e.Kind.IsHold() {
			if e.Kind != EvStockRestocked && e.Kind != EvStockWrittenOff {
				t.Fatalf("persist: event %d has unknown kind %d", i, e.Kind)
			}
			if e.Qty == 0 || !rowSKUs[e.SKU] {
				t.Fatalf("persist: %s of %d units of %q without a change of its row", e.Kind, e.Qty, e.SKU)
			}
			continue
		}
		if e.HoldID != e.Hold.ID || e.Subject() != e.HoldID {
			t.Fatalf("persist: %s event names hold %q but carries %q", e.Kind, e.HoldID, e.Hold.ID)
		}
		owner, err := OwnerOf(e.HoldID)
		if err != nil {
			t.Fatalf("persist: %s event of a bad hold id: %v", e.Kind, err)
		}
		if s.region == "" {
			s.region = owner
		} else if owner != s.region {
			t.Fatalf("persist: %s event of hold %s stated in region %s, not its owner", e.Kind, e.HoldID, s.region)
		}
		if written[e.HoldID] == nil && !deleted[e.HoldID] {
			t.Fatalf("persist: %s event of hold %s, which the batch does not write", e.Kind, e.HoldID)
		}
		if e.Hold.State != holdEventState[e.Kind] || !e.Hold.Updated.Equal(e.At) {
			t.Fatalf("persist: %s event of hold %s carries state %s updated %v (event at %v)",
				e.Kind, e.HoldID, e.Hold.State, e.Hold.Updated, e.At)
		}
		prev := last[e.HoldID]
		if prev == nil {
			if b, ok := s.holds[e.HoldID]; ok {
				h, err := DecodeHold(b)
				if err != nil {
					t.Fatalf("persist: stored hold %s: %v", e.HoldID, err)
				}
				prev = &h
			}
		}
		switch {
		case prev == nil && e.Kind != EvHoldCreated:
			t.Fatalf("persist: %s event of hold %s, which was never created", e.Kind, e.HoldID)
		case prev != nil && e.Kind == EvHoldCreated:
			t.Fatalf("persist: second created event of hold %s", e.HoldID)
		case prev != nil && prev.State != Held:
			t.Fatalf("persist: %s event of hold %s, which was already %s", e.Kind, e.HoldID, prev.State)
		case e.Kind == EvHoldExtended && !e.Hold.Expires.After(prev.Expires):
			t.Fatalf("persist: extended event of hold %s whose deadline did not move", e.HoldID)
		}
		last[e.HoldID] = e.Hold
	}
	for id, h := range written {
		got := last[id]
		if got == nil {
			// No event: the hold must be written unchanged.
			if b, ok := s.holds[id]; ok {
				if old, err := DecodeHold(b); err == nil && sameHoldChange(&old, h) {
					continue
				}
			}
			t.Fatalf("persist: hold %s (%s) changed without an event", id, h.State)
		}
		if !sameHoldChange(got, h) {
			t.Fatalf("persist: the last event of hold %s says %s until %v, the batch writes %s until %v",
				id, got.State, got.Expires, h.State, h.Expires)
		}
	}
}

// waitEventState: the state each waitlist event brings its entry to.
var waitEventState = map[EventKind]WaitState{EvWaitJoined: Waiting, EvWaitPromoted: Promoted,
	EvWaitCancelled: Cancelled, EvWaitExpired: WaitExpired}

// checkWaitEvent: a waitlist event names an entry the batch writes, in the
// state the event announces (an entry ends once, so the written state is
// the event's unless it joined and ended in one batch), stated at its change.
func checkWaitEvent(t testing.TB, e *Event, w *WaitEntry) {
	t.Helper()
	if w == nil {
		t.Fatalf("persist: %s event of entry %s, which the batch does not write", e.Kind, e.Wait.ID)
	}
	if e.Subject() != e.Wait.ID || e.Wait.State != waitEventState[e.Kind] || !e.Wait.Updated.Equal(e.At) {
		t.Fatalf("persist: %s event of entry %s carries state %s updated %v (event at %v)", e.Kind, e.Wait.ID, e.Wait.State, e.Wait.Updated, e.At)
	}
	if e.Kind != EvWaitJoined && w.State != e.Wait.State {
		t.Fatalf("persist: %s event of entry %s, which the batch writes as %s", e.Kind, e.Wait.ID, w.State)
	}
	if e.Kind == EvWaitPromoted && (e.Wait.HoldID == "" || e.Wait.HoldID != w.HoldID) {
		t.Fatalf("persist: promoted event of entry %s names hold %q, the batch writes %q", e.Wait.ID, e.Wait.HoldID, w.HoldID)
	}
}

// sameHoldChange compares what events announce of a hold.
func sameHoldChange(a, b *Hold) bool {
	return a.State == b.State && a.Expires.Equal(b.Expires) && a.Updated.Equal(b.Updated)
}

// TestEventsOfEveryChange drives one node through every kind of change and
// checks the events of each Ready (checkEvents runs on every persisted
// batch as well).
func TestEventsOfEveryChange(t *testing.T) {
	tn := newTNode(t, Config{})
	kinds := func() []EventKind {
		var ks []EventKind
		for _, e := range tn.last.Persist.Events {
			ks = append(ks, e.Kind)
		}
		return ks
	}
	want := func(what string, ks ...EventKind) {
		t.Helper()
		got := kinds()
		if len(got) != len(ks) {
			t.Fatalf("%s: events %v, want %v", what, got, ks)
		}
		for i := range ks {
			if got[i] != ks[i] {
				t.Fatalf("%s: events %v, want %v", what, got, ks)
			}
		}
	}
	tn.restock("apple", 10)
	want("restock", EvStockRestocked)
	if e := tn.last.Persist.Events[0]; e.SKU != "apple" || e.Qty != 10 || e.Available != 10 || e.Subject() != "apple" {
		t.Fatalf("restock event %+v", e)
	}
	h := tn.hold(l("apple", 3))
	want("hold", EvHoldCreated)
	if e := tn.last.Persist.Events[0]; e.HoldID != h.ID || e.Hold.Lines[0] != l("apple", 3) {
		t.Fatalf("created event %+v", e)
	}
	tn.tick(time.Second)
	tn.do(Command{Kind: CmdExtend, HoldID: h.ID, TTL: time.Hour})
	want("extend", EvHoldExtended)
	tn.do(Command{Kind: CmdExtend, HoldID: h.ID, TTL: time.Hour})
	want("extend to the same deadline")
	tn.do(Command{Kind: CmdGet, HoldID: h.ID})
	want("get")
	tn.do(Command{Kind: CmdConfirm, HoldID: h.ID})
	want("confirm", EvHoldConfirmed)
	tn.do(Command{Kind: CmdConfirm, HoldID: h.ID})
	want("confirm again")
	h2 := tn.hold(l("apple", 2))
	tn.do(Command{Kind: CmdRelease, HoldID: h2.ID})
	want("release", EvHoldReleased)
	h3 := tn.hold(l("apple", 1))
	tn.tick(DefaultTTL + time.Second)
	want("sweep", EvHoldExpired)
	if e := tn.last.Persist.Events[0]; e.HoldID != h3.ID || e.Hold.State != Expired {
		t.Fatalf("expired event %+v", e)
	}
	r := tn.do(Command{Kind: CmdWriteOff, SKU: "apple", Qty: 100})
	want("write-off", EvStockWrittenOff)
	if e := tn.last.Persist.Events[0]; e.Qty != r.Applied || e.Qty != 7 || e.Available != 0 {
		t.Fatalf("write-off event %+v (applied %d)", e, r.Applied)
	}
	tn.do(Command{Kind: CmdWriteOff, SKU: "apple", Qty: 1})
	want("write-off of nothing")
	for _, k := range EventKinds() {
		if k.String() == "unknown" {
			t.Fatalf("event kind %d has no name", k)
		}
	}
}

// TestEventsCreatedAndFinishedInOneReady: two changes of one hold in one
// Ready are two events, each with the hold as of its change; and the check
// itself refuses a batch that changes a hold without an event.
func TestEventsCreatedAndFinishedInOneReady(t *testing.T) {
	tn := newTNode(t, Config{})
	tn.restock("apple", 10)
	tn.step(&Command{Kind: CmdHold, ReqID: 100, Lines: []Line{l("apple", 1)}})
	var id string
	tn.n.ForEachHold(func(h *Hold) { id = h.ID })
	tn.step(&Command{Kind: CmdConfirm, ReqID: 101, HoldID: id})
	tn.drain()
	evs := tn.last.Persist.Events
	if len(evs) != 2 || evs[0].Kind != EvHoldCreated || evs[1].Kind != EvHoldConfirmed ||
		evs[0].Hold.State != Held || evs[1].Hold.State != Confirmed {
		t.Fatalf("events %+v", evs)
	}

	tn.step(&Command{Kind: CmdHold, ReqID: 102, Lines: []Line{l("apple", 1)}})
	rd := advanced(tn.n)
	rd.Persist.Events = nil
	ft := &fatalCatcher{}
	caught := func() (caught bool) {
		defer func() {
			if r := recover(); r != nil {
				if r != ft {
					panic(r)
				}
				caught = true
			}
		}()
		checkEvents(ft, tn.store, &rd.Persist)
		return false
	}()
	if !caught {
		t.Fatal("a created hold without an event passed the check")
	}
}
