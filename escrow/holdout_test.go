package escrow

import (
	"testing"
	"time"
	"unsafe"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// TestPersistHoldsOnePerHold: Persist.Holds names each hold changed in a
// Ready once, as it is at the Ready, whether its events made one copy of
// it (shared with the event and the reply: no copy of its own) or several
// (created and confirmed in one Ready: the copy of its creation is stale).
// A hold finished and retired in the same Ready is not written (it is in
// DeletedHolds). The planted bug ShareAllHoldCopies writes every copy the
// events made, the stale one too, and is caught.
func TestPersistHoldsOnePerHold(t *testing.T) {
	checkWithAndWithoutBug(t, "ShareAllHoldCopies", plantedbugs.Bugs{ShareAllHoldCopies: true}, func(t *testing.T, bugs plantedbugs.Bugs) error {
		return errIf(persistHoldsOnePerHold(t, bugs))
	})
}

// persistHoldsOnePerHold runs the Readies of TestPersistHoldsOnePerHold
// and returns what is wrong with them ("" when nothing is).
func persistHoldsOnePerHold(t *testing.T, bugs plantedbugs.Bugs) string {
	cfg := Config{Region: "eu", DigestInterval: -1, HoldRetain: time.Millisecond}
	n := newNodeWithBugs(t, cfg, bugs)
	now := t0
	req := uint64(0)
	step := func(c Command) {
		req++
		c.ReqID = req
		if err := n.Step(Input{Now: now, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
	}
	step(Command{Kind: CmdRestock, SKU: "apple", Qty: 100})
	advanced(n)
	hold := Command{Kind: CmdHold, Lines: []Line{{SKU: "apple", Qty: 1}}}

	// A Ready of three new holds, after one like it (holdOut starts at
	// the size of the last Ready's): Persist.Holds is their event copies,
	// shared with the replies.
	var rd Ready
	for r := 0; r < 2; r++ {
		for i := 0; i < 3; i++ {
			step(hold)
		}
		rd = advanced(n)
	}
	if len(rd.Persist.Holds) != 3 || len(rd.Reply) != 3 {
		return "a Ready of 3 grants persists " + utoa(uint64(len(rd.Persist.Holds))) + " holds"
	}
	for i := range rd.Reply {
		if rd.Reply[i].Hold != &rd.Persist.Holds[i] {
			t.Errorf("hold %d: the reply and Persist.Holds have a copy each", i)
		}
	}
	ids := []string{rd.Reply[0].Hold.ID, rd.Reply[1].Hold.ID, rd.Reply[2].Hold.ID}

	// One Ready: a hold granted before is confirmed, another released, a
	// new one stays HELD, and a new one is confirmed (two copies made).
	step(hold)
	rd1 := advanced(n) // the grant's reply, read below, must keep saying HELD
	created := rd1.Reply[0].Hold.ID
	step(hold)
	step(hold)
	both := n.out.Reply[len(n.out.Reply)-1].Hold.ID // created and confirmed in this Ready
	step(Command{Kind: CmdConfirm, HoldID: created})
	step(Command{Kind: CmdRelease, HoldID: ids[0]})
	step(Command{Kind: CmdConfirm, HoldID: both})
	rd = advanced(n)
	want := map[string]HoldState{created: Confirmed, ids[0]: Released, rd.Reply[0].Hold.ID: Held, both: Confirmed}
	if msg := persistedOnce(rd.Persist.Holds, want); msg != "" {
		return msg
	}
	if rd1.Reply[0].Hold.State != Held {
		return "the grant's reply changed to " + rd1.Reply[0].Hold.State.String()
	}

	// Created, confirmed and retired in one Ready: not written at all.
	step(hold)
	rd = advanced(n)
	id := rd.Reply[0].Hold.ID
	step(Command{Kind: CmdConfirm, HoldID: id})
	now = now.Add(time.Second) // past HoldRetain: the next step retires it
	step(hold)
	rd = advanced(n)
	deleted := false
	for _, d := range rd.Persist.DeletedHolds {
		deleted = deleted || d == id
	}
	if !deleted {
		t.Fatalf("deleted %v, want %s among them", rd.Persist.DeletedHolds, id)
	}
	return persistedOnce(rd.Persist.Holds, map[string]HoldState{rd.Reply[1].Hold.ID: Held})
}

// persistedOnce checks that holds are exactly want's, once each, in the
// state want gives.
func persistedOnce(holds []Hold, want map[string]HoldState) string {
	seen := map[string]bool{}
	for i := range holds {
		h := &holds[i]
		st, ok := want[h.ID]
		switch {
		case !ok:
			return "Persist.Holds has hold " + h.ID + ", which did not change or was retired"
		case seen[h.ID]:
			return "Persist.Holds has hold " + h.ID + " twice"
		case h.State != st:
			return "Persist.Holds has hold " + h.ID + " " + h.State.String() + ", want " + st.String()
		}
		seen[h.ID] = true
	}
	if len(seen) != len(want) {
		return "Persist.Holds has " + utoa(uint64(len(seen))) + " holds, want " + utoa(uint64(len(want)))
	}
	return ""
}

// TestHoldRecSize: a hold's record stays in the 112-byte size class (the
// bytes of every live hold; TestMemoryFootprint bounds the total more
// loosely). One more field past the padding makes it 128.
func TestHoldRecSize(t *testing.T) {
	if got := unsafe.Sizeof(holdRec{}); got > 112 {
		t.Fatalf("holdRec is %d bytes, want at most 112", got)
	}
}
