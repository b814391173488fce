package escrow

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestHoldTransitions walks every hold transition from a fresh hold of 2
// units (stock 10, TTL 10m, max lifetime 1h). Each step runs at an offset
// from the hold's creation, WITHOUT a tick first: the deadline must be
// honoured by the operation itself, before any sweep.
func TestHoldTransitions(t *testing.T) {
	type step struct {
		at    time.Duration
		kind  CommandKind
		ttl   time.Duration // extend
		state HoldState     // wanted state in the reply (0: error wanted)
		code  Code          // wanted error code
		exp   time.Duration // wanted Expires offset (0: unchecked)
		avail uint64        // wanted available after the step
	}
	const stock, qty = 10, 2
	cases := []struct {
		name  string
		steps []step
	}{
		{"get", []step{{kind: CmdGet, state: Held, exp: 10 * time.Minute, avail: 8}}},
		{"confirm, repeat, then the other transitions", []step{
			{kind: CmdConfirm, state: Confirmed, avail: 8},
			{at: time.Second, kind: CmdConfirm, state: Confirmed, avail: 8},
			{at: 2 * time.Second, kind: CmdRelease, code: CodeConflict, avail: 8},
			{at: 3 * time.Second, kind: CmdExtend, ttl: time.Minute, code: CodeConflict, avail: 8},
			{at: time.Hour * 2, kind: CmdGet, state: Confirmed, avail: 8},
			{at: time.Hour * 2, kind: CmdConfirm, state: Confirmed, avail: 8},
		}},
		{"release, repeat, then the other transitions", []step{
			{kind: CmdRelease, state: Released, avail: 10},
			{kind: CmdRelease, state: Released, avail: 10},
			{kind: CmdConfirm, code: CodeConflict, avail: 10},
			{kind: CmdExtend, ttl: time.Minute, code: CodeConflict, avail: 10},
			{at: time.Hour, kind: CmdGet, state: Released, avail: 10},
		}},
		{"confirm just before the deadline", []step{
			{at: 10*time.Minute - time.Nanosecond, kind: CmdConfirm, state: Confirmed, avail: 8},
		}},
		{"get at the deadline is expired before any sweep", []step{
			{at: 10 * time.Minute, kind: CmdGet, state: Expired, avail: 10},
			{at: 10 * time.Minute, kind: CmdConfirm, code: CodeConflict, avail: 10},
		}},
		{"confirm at the deadline conflicts", []step{
			{at: 10 * time.Minute, kind: CmdConfirm, code: CodeConflict, avail: 10},
			{at: 10 * time.Minute, kind: CmdGet, state: Expired, avail: 10},
		}},
		{"release after the deadline answers expired", []step{
			{at: 11 * time.Minute, kind: CmdRelease, state: Expired, avail: 10},
			{at: 11 * time.Minute, kind: CmdRelease, state: Expired, avail: 10},
		}},
		{"extend after the deadline conflicts", []step{
			{at: 10 * time.Minute, kind: CmdExtend, ttl: time.Minute, code: CodeConflict, avail: 10},
		}},
		{"extend pushes the deadline", []step{
			{at: 5 * time.Minute, kind: CmdExtend, ttl: 20 * time.Minute, state: Held, exp: 25 * time.Minute, avail: 8},
			{at: 24 * time.Minute, kind: CmdConfirm, state: Confirmed, avail: 8},
		}},
		{"extended hold expires at its new deadline", []step{
			{at: 5 * time.Minute, kind: CmdExtend, ttl: 20 * time.Minute, state: Held, exp: 25 * time.Minute, avail: 8},
			{at: 25 * time.Minute, kind: CmdGet, state: Expired, avail: 10},
		}},
		{"extend capped", []step{
			{at: 9 * time.Minute, kind: CmdExtend, ttl: 40 * time.Minute, state: Held, exp: 49 * time.Minute, avail: 8},
			{at: 48 * time.Minute, kind: CmdExtend, ttl: 40 * time.Minute, state: Held, exp: time.Hour, avail: 8},
			{at: time.Hour - time.Nanosecond, kind: CmdExtend, ttl: time.Hour, state: Held, exp: time.Hour, avail: 8},
			{at: time.Hour, kind: CmdGet, state: Expired, avail: 10},
		}},
		{"extend never shortens", []step{
			{at: time.Minute, kind: CmdExtend, ttl: time.Second, state: Held, exp: 10 * time.Minute, avail: 8},
		}},
		{"extend ttl limits", []step{
			{kind: CmdExtend, ttl: 0, code: CodeInvalid, avail: 8},
			{kind: CmdExtend, ttl: -time.Minute, code: CodeInvalid, avail: 8},
			{kind: CmdExtend, ttl: MinTTL - 1, code: CodeInvalid, avail: 8},
			{kind: CmdExtend, ttl: time.Hour + 1, code: CodeInvalid, avail: 8},
			{kind: CmdGet, state: Held, exp: 10 * time.Minute, avail: 8},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTNode(t, Config{})
			tn.restock("A", stock)
			h := tn.hold(l("A", qty))
			if h.State != Held || !h.Expires.Equal(tn.now.Add(10*time.Minute)) ||
				!h.MaxExpires.Equal(tn.now.Add(time.Hour)) || !h.Created.Equal(tn.now) {
				t.Fatalf("new hold: %+v", h)
			}
			if !strings.HasPrefix(h.ID, "eu-") {
				t.Fatalf("hold id %q lacks the region prefix", h.ID)
			}
			created := tn.now
			for i, st := range tc.steps {
				tn.now = created.Add(st.at)
				before := snap(tn.n)
				r := tn.do(Command{Kind: st.kind, HoldID: h.ID, TTL: st.ttl})
				what := st.kind.String() + " step " + utoa(uint64(i))
				wantCode(t, what, r.Err, st.code)
				if st.code != 0 {
					if r.Hold != nil {
						t.Fatalf("%s: error reply carries a hold", what)
					}
					// A conflict or invalid input changes nothing, except
					// that the deadline may have expired the hold.
					if after := snap(tn.n); st.code != CodeConflict && !reflect.DeepEqual(before, after) {
						t.Fatalf("%s: state changed on error:\n%v\n%v", what, before, after)
					}
				} else {
					if r.Hold == nil || r.Hold.ID != h.ID {
						t.Fatalf("%s: reply hold %+v", what, r.Hold)
					}
					if r.Hold.State != st.state {
						t.Fatalf("%s: state %s, want %s", what, r.Hold.State, st.state)
					}
					if st.exp != 0 && !r.Hold.Expires.Equal(created.Add(st.exp)) {
						t.Fatalf("%s: expires at +%v, want +%v", what, r.Hold.Expires.Sub(created), st.exp)
					}
				}
				if got := tn.n.Available("A"); got != st.avail {
					t.Fatalf("%s: available %d, want %d", what, got, st.avail)
				}
				checkOwnBooks(t, tn.n, "A")
				// The stored hold agrees with the node.
				got, ok := tn.n.Hold(h.ID)
				if !ok {
					t.Fatalf("%s: hold gone", what)
				}
				if b, ok := tn.store.holds[h.ID]; ok {
					sh, _ := DecodeHold(b)
					if sh.State != got.State || !sh.Expires.Equal(got.Expires) {
						t.Fatalf("%s: stored hold %+v, node has %+v", what, sh, got)
					}
				} else {
					t.Fatalf("%s: hold not persisted", what)
				}
			}
		})
	}
}

// checkOwnBooks checks that the own row's counters match the holds kept.
func checkOwnBooks(t testing.TB, n *Node, sku string) {
	t.Helper()
	var held, sold, returned uint64
	n.ForEachHold(func(h *Hold) {
		for _, ln := range h.Lines {
			if ln.SKU != sku {
				continue
			}
			switch h.State {
			case Held:
				held += ln.Qty
			case Confirmed:
				sold += ln.Qty
			default:
				returned += ln.Qty
			}
		}
	})
	v := n.View(sku)
	own := v[n.Region()]
	if own == nil {
		t.Fatalf("no own row of %s", sku)
	}
	if own.Held() != held || own.Sold != sold || own.Released != returned {
		t.Fatalf("own row %+v: holds say held %d sold %d returned %d", *own, held, sold, returned)
	}
	if err := v.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// TestSweepExpiresOnTime checks the sweeper: units come back at the
// deadline (not before), the expiry is persisted, and a sweep budget
// smaller than the backlog does not hide the deadline from operations.
func TestSweepExpiresOnTime(t *testing.T) {
	tn := newTNode(t, Config{MaxSweepPerTick: 1})
	tn.restock("A", 10)
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, tn.hold(l("A", 1)).ID)
	}
	tn.tick(10*time.Minute - time.Nanosecond)
	if got := tn.n.Available("A"); got != 7 {
		t.Fatalf("available before the deadline = %d", got)
	}
	tn.tick(time.Nanosecond)
	// One tick with a budget of 1 expired exactly one hold...
	if got := tn.n.Available("A"); got != 8 {
		t.Fatalf("available after one budgeted sweep = %d, want 8", got)
	}
	if len(tn.last.Persist.Holds) != 1 || tn.last.Persist.Holds[0].State != Expired {
		t.Fatalf("persisted holds %+v", tn.last.Persist.Holds)
	}
	// ...but every operation sees all three as expired.
	for _, id := range ids {
		r := tn.do(Command{Kind: CmdGet, HoldID: id})
		if r.Err != nil || r.Hold.State != Expired {
			t.Fatalf("get %s: %+v", id, r)
		}
	}
	if got := tn.n.Available("A"); got != 10 {
		t.Fatalf("available after gets = %d", got)
	}
	checkOwnBooks(t, tn.n, "A")
	if s := tn.n.Stats(); s.ExpiredHolds != 3 || s.ActiveHolds != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestExtendThenSweep: the expiry index keeps a stale entry for the old
// deadline; the sweeper must not expire an extended hold at it.
func TestExtendThenSweep(t *testing.T) {
	tn := newTNode(t, Config{})
	tn.restock("A", 1)
	h := tn.hold(l("A", 1))
	tn.now = tn.now.Add(9 * time.Minute)
	if r := tn.do(Command{Kind: CmdExtend, HoldID: h.ID, TTL: 5 * time.Minute}); r.Err != nil {
		t.Fatal(r.Err)
	}
	tn.tick(2 * time.Minute) // past the old deadline
	if got, _ := tn.n.Hold(h.ID); got.State != Held {
		t.Fatalf("extended hold swept at its old deadline: %s", got.State)
	}
	tn.tick(3 * time.Minute) // at the new one
	if got, _ := tn.n.Hold(h.ID); got.State != Expired || tn.n.Available("A") != 1 {
		t.Fatalf("hold %s, available %d", got.State, tn.n.Available("A"))
	}
}

// TestHoldRetention: terminal holds stay readable for HoldRetain, then are
// deleted (and the deletion persisted); open holds are never retired.
func TestHoldRetention(t *testing.T) {
	tn := newTNode(t, Config{HoldRetain: time.Hour, MaxLifetime: 3 * time.Hour})
	tn.restock("A", 10)
	a := tn.hold(l("A", 1))
	b := tn.do(Command{Kind: CmdHold, Lines: []Line{l("A", 1)}, TTL: 3 * time.Hour}).Hold
	if r := tn.do(Command{Kind: CmdConfirm, HoldID: a.ID}); r.Err != nil {
		t.Fatal(r.Err)
	}
	tn.tick(time.Hour - time.Nanosecond)
	if _, ok := tn.n.Hold(a.ID); !ok {
		t.Fatal("confirmed hold retired early")
	}
	tn.tick(time.Nanosecond)
	if _, ok := tn.n.Hold(a.ID); ok {
		t.Fatal("confirmed hold kept past retention")
	}
	if _, ok := tn.store.holds[a.ID]; ok {
		t.Fatal("retired hold still stored")
	}
	r := tn.do(Command{Kind: CmdGet, HoldID: a.ID})
	wantCode(t, "get retired", r.Err, CodeNotFound)
	if got, ok := tn.n.Hold(b.ID); !ok || got.State != Held {
		t.Fatalf("open hold retired: %+v", got)
	}
	if tn.n.Available("A") != 8 {
		t.Fatalf("available %d", tn.n.Available("A"))
	}
}

// TestRetireSameReady: a hold finished and retired within one Ready must
// not be resurrected by the store, whatever order the batch is applied in.
func TestRetireSameReady(t *testing.T) {
	for _, deletesFirst := range []bool{false, true} {
		tn := newTNode(t, Config{HoldRetain: time.Nanosecond})
		tn.deletesFirst = deletesFirst
		tn.step(&Command{Kind: CmdRestock, ReqID: 1, SKU: "A", Qty: 1})
		tn.step(&Command{Kind: CmdHold, ReqID: 2, Lines: []Line{l("A", 1)}, TTL: time.Second})
		id := tn.drain()[1].Hold.ID
		tn.step(&Command{Kind: CmdRelease, ReqID: 3, HoldID: id})
		tn.tick(time.Second) // retire, in the Ready of the release
		if _, ok := tn.n.Hold(id); ok {
			t.Fatal("hold not retired")
		}
		if _, ok := tn.store.holds[id]; ok {
			t.Fatalf("deletesFirst=%v: retired hold resurrected in the store", deletesFirst)
		}
	}
}

// TestHoldTTL checks the TTL limits of a new hold.
func TestHoldTTL(t *testing.T) {
	cases := []struct {
		ttl  time.Duration
		code Code
		exp  time.Duration
	}{
		{0, 0, 10 * time.Minute},
		{MinTTL, 0, MinTTL},
		{time.Hour, 0, time.Hour},
		{MinTTL - 1, CodeInvalid, 0},
		{-time.Second, CodeInvalid, 0},
		{time.Hour + 1, CodeInvalid, 0},
	}
	for _, tc := range cases {
		tn := newTNode(t, Config{})
		tn.restock("A", 1)
		before := snap(tn.n)
		r := tn.do(Command{Kind: CmdHold, Lines: []Line{l("A", 1)}, TTL: tc.ttl})
		wantCode(t, "ttl "+tc.ttl.String(), r.Err, tc.code)
		if tc.code != 0 {
			if after := snap(tn.n); !reflect.DeepEqual(before, after) {
				t.Fatalf("ttl %v: state changed", tc.ttl)
			}
			continue
		}
		if !r.Hold.Expires.Equal(tn.now.Add(tc.exp)) {
			t.Fatalf("ttl %v: expires +%v", tc.ttl, r.Hold.Expires.Sub(tn.now))
		}
	}
	// A configured default applies; a default above the lifetime is refused.
	tn := newTNode(t, Config{DefaultTTL: time.Minute})
	tn.restock("A", 1)
	if h := tn.hold(l("A", 1)); !h.Expires.Equal(tn.now.Add(time.Minute)) {
		t.Fatalf("default ttl: expires +%v", h.Expires.Sub(tn.now))
	}
	if _, err := NewNode(Config{Region: "eu", DefaultTTL: 2 * time.Hour}, nil); err == nil {
		t.Fatal("default TTL above the lifetime accepted")
	}
}

// TestMultiLineAllOrNothing: a cart is granted whole or not at all.
func TestMultiLineAllOrNothing(t *testing.T) {
	tn := newTNode(t, Config{})
	tn.restock("A", 5)
	tn.restock("B", 1)
	before := snap(tn.n)
	r := tn.do(Command{Kind: CmdHold, Lines: []Line{l("A", 2), l("B", 2)}})
	wantCode(t, "short cart", r.Err, CodeInsufficientStock)
	if r.Err.SKU != "B" || r.Err.Available != 1 {
		t.Fatalf("error names %q with %d available", r.Err.SKU, r.Err.Available)
	}
	if after := snap(tn.n); !reflect.DeepEqual(before, after) {
		t.Fatalf("rejected cart changed state:\n%v\n%v", before, after)
	}
	h := tn.hold(l("B", 1), l("A", 2), l("A", 3))
	if !reflect.DeepEqual(h.Lines, []Line{l("A", 5), l("B", 1)}) {
		t.Fatalf("lines not sorted and merged: %+v", h.Lines)
	}
	if tn.n.Available("A") != 0 || tn.n.Available("B") != 0 {
		t.Fatal("cart not fully reserved")
	}
	if r := tn.do(Command{Kind: CmdRelease, HoldID: h.ID}); r.Err != nil {
		t.Fatal(r.Err)
	}
	checkOwnBooks(t, tn.n, "A")
	checkOwnBooks(t, tn.n, "B")
	if tn.n.Available("A") != 5 || tn.n.Available("B") != 1 {
		t.Fatal("release did not return every line")
	}
}

// TestHoldCapacity: at MaxHolds live holds a new hold is refused with
// CodeHoldCapacity (not a stock refusal: the units are there), and nothing
// changes.
func TestHoldCapacity(t *testing.T) {
	tn := newTNode(t, Config{MaxHolds: 2})
	tn.restock("A", 10)
	tn.hold(l("A", 1))
	tn.hold(l("A", 1))
	before := snap(tn.n)
	r := tn.do(Command{Kind: CmdHold, Lines: []Line{l("A", 1)}})
	wantCode(t, "third hold", r.Err, CodeHoldCapacity)
	if after := snap(tn.n); after.String() != before.String() {
		t.Fatalf("state changed:\n%s\n%s", before, after)
	}
	if CodeHoldCapacity.String() != "hold-capacity" {
		t.Fatalf("slug %q", CodeHoldCapacity.String())
	}
}
