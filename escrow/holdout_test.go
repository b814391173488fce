package escrow

import (
	"fmt"
	"reflect"
	"slices"
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
	step := stepCommands(t, n, &now)
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
		if rd.Reply[i].Hold != rd.Persist.Holds[i] {
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

// stepCommands returns a step of n that gives each command the next
// ReqID and steps it at *now (which the caller may move).
func stepCommands(t *testing.T, n *Node, now *time.Time) func(Command) {
	req := uint64(0)
	return func(c Command) {
		t.Helper()
		req++
		c.ReqID = req
		if err := n.Step(Input{Now: *now, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
	}
}

// persistedOnce checks that holds are exactly want's, once each, in the
// state want gives.
func persistedOnce(holds []*Hold, want map[string]HoldState) string {
	seen := map[string]bool{}
	for i := range holds {
		h := holds[i]
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

// TestHoldCopiesKeptUntilAdvance: Persist.Holds and the copies of holds
// that no reply shares (an expiry's event; the copy Persist.Holds gets of
// a hold changed twice in one Ready) are reused once their Ready is
// Advanced, never before. Two Readies are out at once, as in a pipeline:
// the older one must still state each hold as it was at its Ready when
// the newer one is made. Each Ready expires a hold and grants another;
// every other one also creates and confirms a hold, which Persist.Holds
// must name once, CONFIRMED (its final state), though its events state it
// twice. After its Advance, a Ready's Persist.Holds and expiry copies are
// poison (the node reuses them), while the grant's copy, which a caller
// keeps through its reply, is intact. The planted bug RecycleAtReady
// (reused as soon as the next Ready is made) is caught.
func TestHoldCopiesKeptUntilAdvance(t *testing.T) {
	checkWithAndWithoutBug(t, "RecycleAtReady", plantedbugs.Bugs{RecycleAtReady: true}, pipelinedHoldCopies)
}

func pipelinedHoldCopies(t *testing.T, bugs plantedbugs.Bugs) error {
	n := newNodeWithBugs(t, Config{Region: "eu", DigestInterval: -1}, bugs)
	now := t0
	req := uint64(0)
	step := func(c Command) *Reply {
		req++
		c.ReqID = req
		k := len(n.out.Reply)
		if err := n.Step(Input{Now: now, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
		if len(n.out.Reply) != k+1 || n.out.Reply[k].Err != nil {
			t.Fatalf("%s: replies %+v", c.Kind, n.out.Reply[k:])
		}
		return &n.out.Reply[k]
	}
	step(Command{Kind: CmdRestock, SKU: "apple", Qty: 1000})
	n.Ready()
	n.Advance()
	hold := Command{Kind: CmdHold, Lines: []Line{{SKU: "apple", Qty: 1}}, TTL: MinTTL}
	// said is what a Ready said when it was returned.
	type said struct {
		rd      Ready
		holds   []Hold  // Persist.Holds, as values
		events  []Hold  // each event's hold, as values
		expired *Hold   // the expiry event's copy (no reply shares it)
		granted *Hold   // the grant's reply's copy (kept)
		ptrs    []*Hold // Persist.Holds' entries, as pointers
	}
	take := func(round int) said {
		now = now.Add(MinTTL + time.Millisecond) // the last round's grant expires at the next step
		s := said{}
		s.granted = step(hold).Hold
		want := map[string]HoldState{s.granted.ID: Held}
		if round%2 == 0 {
			both := step(hold).Hold.ID
			step(Command{Kind: CmdConfirm, HoldID: both})
			want[both] = Confirmed
		}
		s.rd = n.Ready()
		for _, e := range s.rd.Persist.Events {
			s.events = append(s.events, *e.Hold)
			if e.Kind == EvHoldExpired {
				s.expired = e.Hold
				want[e.HoldID] = Expired
			}
		}
		if round > 0 && s.expired == nil {
			t.Fatalf("round %d: no hold expired", round)
		}
		if msg := persistedOnce(s.rd.Persist.Holds, want); msg != "" {
			t.Fatalf("round %d: %s", round, msg)
		}
		for _, h := range s.rd.Persist.Holds {
			s.holds = append(s.holds, *h)
		}
		s.ptrs = slices.Clone(s.rd.Persist.Holds)
		return s
	}
	check := func(s said) error {
		if len(s.rd.Persist.Holds) != len(s.holds) || len(s.rd.Persist.Events) != len(s.events) {
			return fmt.Errorf("a Ready out now persists %d holds and has %d events, had %d and %d",
				len(s.rd.Persist.Holds), len(s.rd.Persist.Events), len(s.holds), len(s.events))
		}
		for i, h := range s.rd.Persist.Holds {
			if !reflect.DeepEqual(*h, s.holds[i]) {
				return fmt.Errorf("Persist.Holds[%d] of a Ready out now is %s %s, was %s %s", i, h.ID, h.State, s.holds[i].ID, s.holds[i].State)
			}
		}
		for i, e := range s.rd.Persist.Events {
			if !reflect.DeepEqual(*e.Hold, s.events[i]) {
				return fmt.Errorf("event %d of a Ready out now states %s %s, stated %s %s", i, e.Hold.ID, e.Hold.State, s.events[i].ID, s.events[i].State)
			}
		}
		return nil
	}
	older := take(0)
	poisoned := 0
	for round := 1; round <= 40; round++ {
		newer := take(round)
		if err := check(older); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		n.Advance() // older
		if err := check(newer); err != nil {
			return fmt.Errorf("round %d, after the older Ready's Advance: %w", round, err)
		}
		if round > 1 && !bugs.RecycleAtReady {
			// Reused: what the older Ready pointed to is poison now, but
			// for the copy its reply shares. An expiry copy made before
			// its slice grew stays in the old array (not reused, the
			// collector's), as it was.
			switch {
			case older.expired.ID == poisonedHold.ID:
				poisoned++
			case older.expired.State != Expired:
				t.Fatalf("round %d: an Advanced Ready's expiry copy states %s %s", round, older.expired.ID, older.expired.State)
			}
			for i, p := range older.ptrs {
				if older.rd.Persist.Holds[i] != &poisonedHold {
					t.Fatalf("round %d: an Advanced Ready's Persist.Holds[%d] still points to %s (%p was %p)", round, i, older.rd.Persist.Holds[i].ID, older.rd.Persist.Holds[i], p)
				}
			}
		}
		if older.granted.ID == poisonedHold.ID || older.granted.State != Held {
			t.Fatalf("round %d: the grant's reply, which a caller keeps, changed to %s %s", round, older.granted.ID, older.granted.State)
		}
		older = newer
	}
	n.Advance()
	t.Logf("%d of 39 Advanced Readies had their expiry copy reused", poisoned)
	if poisoned < 10 && !bugs.RecycleAtReady {
		t.Fatalf("%d of 39 Advanced Readies had their expiry copy reused", poisoned)
	}
	return nil
}

// TestHoldCopiesInBlocks: a Ready of many holds after one of a single hold
// keeps its copies in blocks of at most maxHoldBlock (below the runtime's
// large-object size), each reply sharing its copy with Persist.Holds, and
// no copy moved or written twice.
func TestHoldCopiesInBlocks(t *testing.T) {
	n := newNodeWithBugs(t, Config{Region: "eu", DigestInterval: -1}, plantedbugs.Bugs{})
	now := t0
	step := stepCommands(t, n, &now)
	step(Command{Kind: CmdRestock, SKU: "apple", Qty: 1000})
	advanced(n)
	hold := Command{Kind: CmdHold, Lines: []Line{{SKU: "apple", Qty: 1}}}
	step(hold)
	advanced(n)
	const many = 3*maxHoldBlock + 7
	for i := 0; i < many; i++ {
		step(hold)
		if cap(n.holdOut) > maxHoldBlock {
			t.Fatalf("after %d holds the block of copies has room for %d, more than %d", i+1, cap(n.holdOut), maxHoldBlock)
		}
	}
	if n.keptOut != many {
		t.Fatalf("%d kept copies counted, want %d", n.keptOut, many)
	}
	rd := advanced(n)
	if len(rd.Reply) != many || len(rd.Persist.Holds) != many {
		t.Fatalf("%d replies and %d holds persisted, want %d", len(rd.Reply), len(rd.Persist.Holds), many)
	}
	seen := map[*Hold]bool{}
	for i := range rd.Reply {
		h := rd.Reply[i].Hold
		if h != rd.Persist.Holds[i] {
			t.Fatalf("hold %d: the reply and Persist.Holds have a copy each", i)
		}
		if seen[h] || h.State != Held || len(h.Lines) != 1 {
			t.Fatalf("hold %d: copy %p seen before %v, state %v, lines %v", i, h, seen[h], h.State, h.Lines)
		}
		seen[h] = true
	}
	if n.lastHolds != many || n.keptOut != 0 {
		t.Fatalf("after the Ready: lastHolds %d (want %d), keptOut %d (want 0)", n.lastHolds, many, n.keptOut)
	}
}

func TestHoldBlockSize(t *testing.T) {
	for _, tc := range []struct{ last, kept, want int }{
		{0, 0, 1},               // nothing known: one
		{3, 0, 3},               // as many as the last Ready
		{3, 3, 3},               // outgrown: as many again
		{80, 64, 16},            // the rest of the last Ready's
		{1000, 0, maxHoldBlock}, // never a large object
		{1000, 5 * maxHoldBlock, maxHoldBlock},
	} {
		if got := holdBlock(tc.last, tc.kept); got != tc.want {
			t.Errorf("holdBlock(%d, %d) = %d, want %d", tc.last, tc.kept, got, tc.want)
		}
	}
}
