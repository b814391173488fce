package escrow

import (
	"testing"
	"time"
)

// Every waitlist transition states its event in the Ready that persists it
// (checkEvents checks each against the written entry): joined, promoted
// (naming its hold, in the batch that creates the hold), cancelled and
// expired.
func TestWaitlistEvents(t *testing.T) {
	tn := newTNode(t, Config{})
	tn.restock("A", 1)
	h := tn.hold(l("A", 1))
	join := func() WaitEntry {
		t.Helper()
		r := tn.do(Command{Kind: CmdHold, Lines: []Line{l("A", 1)}, Wait: time.Minute})
		if r.Wait == nil {
			t.Fatalf("join: %+v", r)
		}
		if ev := tn.last.Persist.Events; len(ev) != 1 || ev[0].Kind != EvWaitJoined || ev[0].Subject() != r.Wait.ID {
			t.Fatalf("join events: %+v", ev)
		}
		return *r.Wait
	}
	first, second, third := join(), join(), join()
	if r := tn.do(Command{Kind: CmdRelease, HoldID: h.ID}); r.Err != nil {
		t.Fatal(r.Err)
	}
	var kinds []EventKind
	var promoted Event
	for _, e := range tn.last.Persist.Events {
		kinds = append(kinds, e.Kind)
		if e.Kind == EvWaitPromoted {
			promoted = e
		}
	}
	if promoted.Wait.ID != first.ID || promoted.Wait.HoldID == "" || len(kinds) != 3 {
		t.Fatalf("release events %v, promoted %+v", kinds, promoted.Wait)
	}
	if r := tn.do(Command{Kind: CmdWaitCancel, HoldID: second.ID}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if ev := tn.last.Persist.Events; len(ev) != 1 || ev[0].Kind != EvWaitCancelled || ev[0].Wait.ID != second.ID {
		t.Fatalf("cancel events: %+v", ev)
	}
	tn.tick(2 * time.Minute)
	found := false
	for _, e := range tn.last.Persist.Events {
		found = found || (e.Kind == EvWaitExpired && e.Wait.ID == third.ID)
	}
	if !found {
		t.Fatalf("no expired event of %s: %+v", third.ID, tn.last.Persist.Events)
	}
	for _, k := range []EventKind{EvWaitJoined, EvWaitPromoted, EvWaitCancelled, EvWaitExpired} {
		if !k.IsWait() || k.IsHold() || k.String() == "" {
			t.Errorf("kind %d: IsWait %v IsHold %v name %q", k, k.IsWait(), k.IsHold(), k)
		}
	}
}
