package escrow

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// Tests of homes of scarce SKUs (homes.go): routing, pushing units to the
// home, and every reason a home is not followed.

// newHomesNet returns a network of regions that have all heard from each
// other: each restocks one unit of the filler SKU "Z" and the rows are
// delivered.
func newHomesNet(t *testing.T, cfg Config, regions ...string) *tnet {
	t.Helper()
	tw := newTNet(t, cfg, regions...)
	for _, r := range regions {
		tw.nodes[r].restock("Z", 1)
	}
	tw.flush()
	return tw
}

// advise delivers a rebalancer advice naming homes to every region, at
// each region's clock, and queues what they send.
func (tw *tnet) advise(epoch uint64, homes ...Home) {
	tw.t.Helper()
	for _, r := range sortedKeys(tw.nodes) {
		tw.deliverMsg(tmsg{to: r, m: Message{Type: MsgAdvice, From: "rebal", Epoch: epoch, Homes: homes}})
	}
}

// submit steps a hold at tn and returns its reply if it came in the same
// Ready (nil when the hold waits on a borrow).
func (tn *tnode) submit(c Command) *Reply {
	tn.t.Helper()
	tn.req++
	c.ReqID = tn.req
	c.Kind = CmdHold
	tn.step(&c)
	for _, r := range tn.drain() {
		if r.ReqID == c.ReqID {
			return &r
		}
	}
	return nil
}

// sentType counts the messages of type typ in the last Ready.
func (tn *tnode) sentType(typ MsgType) int {
	k := 0
	for _, m := range tn.last.Send {
		if m.Type == typ {
			k++
		}
	}
	return k
}

// wantRouted checks that r, the reply in tn's last Ready, is CodeRouted
// to owner, and that the Ready wrote and sent nothing.
func wantRouted(t *testing.T, tn *tnode, what string, r *Reply, owner string) {
	t.Helper()
	if r == nil {
		t.Fatalf("%s: no reply, want routed to %s", what, owner)
	}
	wantCode(t, what, r.Err, CodeRouted)
	if r.Err.Owner != owner || r.Hold != nil {
		t.Fatalf("%s: routed to %q with hold %v, want %s", what, r.Err.Owner, r.Hold, owner)
	}
	// Routing writes at most the idempotency key of the routed hold (and
	// the delete of one it evicts, with its expiry index entry), nothing
	// else, and sends nothing.
	p := tn.last.Persist
	for _, e := range p.Idem {
		if e.RoutedTo != owner || e.HoldID != "" {
			t.Fatalf("%s: routing wrote idempotency entry %+v, want one routed to %s", what, e, owner)
		}
	}
	if len(p.IdemUnindexed) != len(p.DeletedIdem) {
		t.Fatalf("%s: routing deleted keys %v but ended expiry entries %v", what, p.DeletedIdem, p.IdemUnindexed)
	}
	p.Idem, p.DeletedIdem, p.IdemUnindexed = nil, nil, nil
	if !p.Empty() || len(tn.last.Send) != 0 {
		t.Fatalf("%s: routing wrote %+v and sent %+v", what, tn.last.Persist, tn.last.Send)
	}
}

// TestHomesRoute: what a hold does at a home, at other regions and with
// Routed set. The regions are ap, eu and us; A is homed at us (which has
// 5 units, plus eu's 3 that eu sends it when the advice comes) and B at
// ap (5 units); C (2 units at ap) has no home.
func TestHomesRoute(t *testing.T) {
	// protectA makes eu keep 3 units of A: a hold of [A 3, C 1] at eu waits
	// on a borrow of C from ap, and eu never sends units a waiting hold
	// needs. The borrow request is lost, so the hold keeps waiting.
	protectA := func(tw *tnet) {
		if r := tw.nodes["eu"].submit(Command{Lines: []Line{l("A", 3), l("C", 1)}}); r != nil {
			tw.t.Fatalf("protecting hold answered at once: %+v", r)
		}
		tw.dropAll()
	}
	cases := []struct {
		name   string
		before func(tw *tnet) // runs before the advice
		at     string
		lines  []Line
		routed bool
		// want: "routed", "granted", "borrows" or an error code.
		want  string
		owner string // routed: the home named
		code  Code
	}{
		{name: "dry non-home routes to the home", at: "eu", lines: []Line{l("A", 1)}, want: "routed", owner: "us"},
		{name: "short non-home routes even if no one has enough", at: "eu", lines: []Line{l("A", 100)}, want: "routed", owner: "us"},
		{name: "enough local units grant locally", before: protectA, at: "eu", lines: []Line{l("A", 2)}, want: "granted"},
		{name: "routed hold borrows", at: "eu", lines: []Line{l("A", 1)}, routed: true, want: "borrows"},
		{name: "routed hold rejected as plain escrow", at: "eu", lines: []Line{l("A", 100)}, routed: true, want: "error", code: CodeInsufficientStock},
		{name: "home grants", at: "us", lines: []Line{l("A", 8)}, want: "granted"},
		{name: "home rejects as plain escrow", at: "us", lines: []Line{l("A", 9)}, want: "error", code: CodeInsufficientStock},
		{name: "cart routes by its first short line with a home", at: "eu", lines: []Line{l("B", 1), l("A", 1)}, want: "routed", owner: "us"},
		{name: "cart skips a short line without a home", at: "eu", lines: []Line{l("C", 1), l("B", 1)}, want: "routed", owner: "ap"},
		{name: "cart skips a covered line", before: protectA, at: "eu", lines: []Line{l("A", 2), l("B", 1)}, want: "routed", owner: "ap"},
		{name: "SKU without a home borrows", at: "eu", lines: []Line{l("C", 1)}, want: "borrows"},
		{name: "unknown SKU", at: "eu", lines: []Line{l("X", 1)}, want: "error", code: CodeUnknownSKU},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tw := newHomesNet(t, Config{}, "ap", "eu", "us")
			tw.nodes["us"].restock("A", 5)
			tw.nodes["eu"].restock("A", 3)
			tw.nodes["ap"].restock("B", 5)
			tw.nodes["ap"].restock("C", 2)
			tw.flush()
			if tc.before != nil {
				tc.before(tw)
			}
			tw.advise(1, Home{"A", "us"}, Home{"B", "ap"})
			tw.flush() // eu's units of A reach us
			tn := tw.nodes[tc.at]
			before, routedBefore := snap(tn.n), tn.n.Stats().Routed
			r := tn.submit(Command{Lines: tc.lines, Routed: tc.routed, IdemKey: "k", IdemHash: 1})
			st := tn.n.Stats()
			switch tc.want {
			case "routed":
				wantRouted(t, tn, tc.name, r, tc.owner)
				if after := snap(tn.n); !reflect.DeepEqual(before, after) {
					t.Fatalf("routing changed the node:\n%v\n%v", before, after)
				}
				if st.Routed != routedBefore+1 {
					t.Fatalf("Stats.Routed %d, want %d", st.Routed, routedBefore+1)
				}
				return
			case "granted":
				if r == nil || r.Err != nil || r.Hold == nil {
					t.Fatalf("want a local grant, got %+v", r)
				}
				if o, _ := OwnerOf(r.Hold.ID); o != tc.at {
					t.Fatalf("hold %s granted at %s", r.Hold.ID, tc.at)
				}
			case "borrows":
				if r != nil || tn.sentType(MsgBorrowReq) == 0 || st.PendingHolds == 0 {
					t.Fatalf("want a borrow, got reply %+v, sent %+v", r, tn.last.Send)
				}
			case "error":
				if r == nil {
					t.Fatalf("no reply, want %s", tc.code)
				}
				wantCode(t, tc.name, r.Err, tc.code)
				if after := snap(tn.n); !reflect.DeepEqual(before, after) {
					t.Fatalf("a refused hold changed the node:\n%v\n%v", before, after)
				}
			}
			if st.Routed != routedBefore {
				t.Fatalf("Stats.Routed moved to %d without routing", st.Routed)
			}
			tw.flush()
			checkConverged(t, tw, "A")
		})
	}
}

// TestHomesPush: on every tick a region sends the home what it has of a
// homed SKU beyond what its waiting holds need; the home sends nothing.
func TestHomesPush(t *testing.T) {
	tw := newHomesNet(t, Config{}, "ap", "eu", "us")
	ap, eu, us := tw.nodes["ap"], tw.nodes["eu"], tw.nodes["us"]
	us.restock("A", 2)
	eu.restock("A", 10)
	ap.restock("C", 5)
	tw.flush()
	// A hold at eu waits on a borrow of C and needs 4 units of A.
	if r := eu.submit(Command{Lines: []Line{l("A", 4), l("C", 3)}, TTL: time.Minute}); r != nil {
		t.Fatalf("hold answered at once: %+v", r)
	}
	tw.advise(1, Home{"A", "us"})
	row := func(tn *tnode) *Row { return tn.n.View("A")[tn.cfg.Region] }
	if got := row(eu).SentTo("us"); got != 6 {
		t.Fatalf("eu sent the home %d units, want 10 - 4 waiting = 6", got)
	}
	if s := eu.n.Stats(); s.HomeUnitsSent != 6 || eu.n.Available("A") != 4 {
		t.Fatalf("eu: HomeUnitsSent %d, available %d", s.HomeUnitsSent, eu.n.Available("A"))
	}
	// Nothing new: a tick sends nothing and writes nothing.
	seq := eu.n.Seq()
	eu.tick(10 * time.Millisecond)
	if eu.n.Seq() != seq || eu.n.Stats().HomeUnitsSent != 6 {
		t.Fatalf("a second tick sent again: seq %d -> %d, %+v", seq, eu.n.Seq(), eu.n.Stats())
	}
	// The home does nothing special.
	us.tick(10 * time.Millisecond)
	if r := row(us); len(r.Sent) != 0 || us.n.Stats().HomeUnitsSent != 0 {
		t.Fatalf("the home sent units: %+v %+v", r.Sent, us.n.Stats())
	}
	// The borrow of C lands: the waiting hold takes eu's 4 units.
	tw.flush()
	var id string
	eu.n.ForEachHold(func(h *Hold) { id = h.ID })
	if id == "" || eu.n.Available("A") != 0 {
		t.Fatalf("waiting hold not granted (hold %q, available %d)", id, eu.n.Available("A"))
	}
	// Units released at eu go to the home at the next scan, at most
	// homePushEvery later.
	if r := eu.do(Command{Kind: CmdRelease, HoldID: id}); r.Err != nil {
		t.Fatal(r.Err)
	}
	eu.tick(homePushEvery)
	if got := row(eu).SentTo("us"); got != 10 || eu.n.Stats().HomeUnitsSent != 10 || eu.n.Available("A") != 0 {
		t.Fatalf("released units not sent on: sent %d, stats %+v", got, eu.n.Stats())
	}
	tw.flush()
	if got := us.n.Available("A"); got != 12 {
		t.Fatalf("home has %d units, want 12", got)
	}
	checkConverged(t, tw, "A")
}

// TestHomesLapse: homes lapse HomeTTL after the latest advice; a negative
// HomeTTL ignores them.
func TestHomesLapse(t *testing.T) {
	for _, ttl := range []time.Duration{2 * time.Second, -1} {
		t.Run(fmt.Sprint(ttl), func(t *testing.T) {
			// Peers never go silent here: only the TTL decides.
			tw := newHomesNet(t, Config{HomeTTL: ttl, PeerSilence: -1}, "eu", "us")
			eu, us := tw.nodes["eu"], tw.nodes["us"]
			us.restock("A", 5)
			tw.flush()
			tw.advise(1, Home{"A", "us"})
			hold := func() *Reply { return eu.submit(Command{Lines: []Line{l("A", 1)}}) }
			if ttl < 0 {
				if h := eu.n.Homes(); h != nil {
					t.Fatalf("homes %v with HomeTTL < 0", h)
				}
				if r := hold(); r != nil || eu.sentType(MsgBorrowReq) != 1 {
					t.Fatalf("want a plain borrow, got %+v", r)
				}
				eu.restock("B", 3)
				eu.restock("A", 3)
				eu.tick(homePushEvery)
				if eu.n.Stats().HomeUnitsSent != 0 {
					t.Fatal("units sent to an ignored home")
				}
				return
			}
			if h := eu.n.Homes(); !reflect.DeepEqual(h, []Home{{"A", "us"}}) {
				t.Fatalf("homes %v", h)
			}
			wantRouted(t, eu, "in force", hold(), "us")
			eu.tick(ttl) // exactly HomeTTL after the advice: still in force
			wantRouted(t, eu, "at HomeTTL", hold(), "us")
			eu.tick(time.Millisecond)
			if h := eu.n.Homes(); h != nil {
				t.Fatalf("homes %v after HomeTTL", h)
			}
			if r := hold(); r != nil || eu.sentType(MsgBorrowReq) != 1 {
				t.Fatalf("lapsed home: want a plain borrow, got %+v", r)
			}
			eu.restock("A", 3)
			eu.tick(homePushEvery)
			if got := eu.n.View("A")["eu"].SentTo("us"); got != 0 {
				t.Fatalf("%d units sent to a lapsed home", got)
			}
			// New advice puts the home back in force.
			avail := eu.n.Available("A")
			tw.setNow(eu.now)
			tw.advise(2, Home{"A", "us"})
			if got := eu.n.View("A")["eu"].SentTo("us"); got != avail || avail == 0 {
				t.Fatalf("renewed home got %d units", got)
			}
		})
	}
}

// TestHomesIgnoredWhenSilent: a home that has gone silent or was never
// heard from is neither routed to nor sent units.
func TestHomesIgnoredWhenSilent(t *testing.T) {
	t.Run("silent", func(t *testing.T) {
		tw := newHomesNet(t, Config{}, "eu", "us") // PeerSilence 1s
		eu, us := tw.nodes["eu"], tw.nodes["us"]
		us.restock("A", 5)
		tw.flush()
		tw.setNow(t0.Add(2 * time.Second))
		tw.advise(1, Home{"A", "us"})
		eu.restock("A", 3)
		eu.tick(homePushEvery)
		if eu.n.Available("A") != 3 || eu.n.Stats().HomeUnitsSent != 0 {
			t.Fatal("units sent to a silent home")
		}
		// Not routed, and the silent home is not asked to lend either.
		if r := eu.submit(Command{Lines: []Line{l("A", 4)}}); r == nil {
			t.Fatal("hold waits on a silent peer")
		} else {
			wantCode(t, "silent home", r.Err, CodeInsufficientStock)
		}
		// The home speaks again: it is followed at the next tick.
		tw.dropAll()
		us.restock("Z", 1)
		tw.flush()
		eu.tick(homePushEvery)
		if got := eu.n.View("A")["eu"].SentTo("us"); got != 3 {
			t.Fatalf("home heard again got %d units", got)
		}
		wantRouted(t, eu, "home heard again", eu.submit(Command{Lines: []Line{l("A", 4)}}), "us")
	})
	t.Run("never heard", func(t *testing.T) {
		tw := newHomesNet(t, Config{PeerSilence: -1}, "eu", "us")
		eu, us := tw.nodes["eu"], tw.nodes["us"]
		us.restock("A", 5)
		eu.restock("A", 3)
		tw.flush()
		// sa is a region eu has never heard from.
		tw.advise(1, Home{"A", "sa"})
		if r := eu.submit(Command{Lines: []Line{l("A", 4)}}); r != nil || eu.sentType(MsgBorrowReq) != 1 {
			t.Fatalf("want a plain borrow, got %+v", r)
		}
		if eu.n.Stats().HomeUnitsSent != 0 {
			t.Fatal("units sent to a region never heard from")
		}
		// Just after a restart, no peer has been heard from yet.
		tw.flush()
		eu.restart()
		eu.step(&Command{Kind: CmdStock, SKU: "A"}) // any input: the node loads its clock
		eu.drain()
		avail := eu.n.Available("A")
		tw.advise(2, Home{"A", "us"})
		if eu.n.Available("A") != avail || eu.n.Stats().HomeUnitsSent != 0 {
			t.Fatalf("restarted node sent units to a home not heard from since: %+v", eu.n.Stats())
		}
		if r := eu.submit(Command{Lines: []Line{l("A", avail+1)}}); r != nil && r.Err != nil && r.Err.Code == CodeRouted {
			t.Fatalf("restarted node routed to a home not heard from since: %+v", r.Err)
		}
	})
}

// TestHomesRetryGoesToFirstRegion: a retry with the same idempotency key
// and body goes where the first attempt was routed, even after the home
// changed; another body under the key is idempotency-key-reuse.
func TestHomesRetryGoesToFirstRegion(t *testing.T) {
	tw := newHomesNet(t, Config{IdemTTL: 10 * time.Second, PeerSilence: -1, HomeTTL: time.Minute}, "ap", "eu", "us")
	eu := tw.nodes["eu"]
	tw.nodes["us"].restock("A", 5)
	tw.flush()
	tw.advise(1, Home{"A", "us"})
	try := func(key string, hash uint64) *Reply {
		return eu.submit(Command{Lines: []Line{l("A", 1)}, IdemKey: key, IdemHash: hash})
	}
	wantRouted(t, eu, "first attempt", try("k", 1), "us")
	tw.flush()
	tw.advise(2, Home{"A", "ap"})
	tw.flush()
	wantRouted(t, eu, "retry after the home moved", try("k", 1), "us")
	wantRouted(t, eu, "another key", try("k2", 1), "ap")
	if s := eu.n.Stats(); s.Routed != 3 {
		t.Fatalf("Stats.Routed %d, want 3", s.Routed)
	}
	// The runtime's own re-send (Routed) is served here, not routed again.
	if r := eu.submit(Command{Lines: []Line{l("A", 1)}, IdemKey: "k", IdemHash: 1, Routed: true}); r != nil && r.Err != nil && r.Err.Code == CodeRouted {
		t.Fatalf("a routed hold was routed again: %v", r.Err)
	}
	tw.flush()
	// Another body under a routed key is refused here, as under the key
	// of a hold granted here: the key is durable at this region.
	wantRouted(t, eu, "another body", try("k3", 1), "ap")
	tw.advise(3, Home{"A", "us"})
	if r := try("k3", 2); r == nil || r.Err == nil || r.Err.Code != CodeIdempotencyReuse {
		t.Fatalf("k3 other body: %+v, want idempotency-key-reuse", r)
	}
	// Once the key has expired, a retry follows the current home.
	eu.tick(11 * time.Second)
	tw.setNow(eu.now)
	tw.advise(4, Home{"A", "ap"})
	wantRouted(t, eu, "retry after IdemTTL", try("k3", 2), "ap")
}

// TestHomesAdviceEpoch: homes change only with a newer epoch; a newer
// advice without homes clears them.
func TestHomesAdviceEpoch(t *testing.T) {
	tw := newHomesNet(t, Config{}, "ap", "eu", "us")
	eu := tw.nodes["eu"]
	want := []Home{{"A", "us"}}
	tw.advise(5, Home{"A", "us"})
	tw.advise(4, Home{"A", "ap"})
	if h := eu.n.Homes(); !reflect.DeepEqual(h, want) {
		t.Fatalf("an older epoch changed the homes to %v", h)
	}
	tw.advise(5)
	if h := eu.n.Homes(); !reflect.DeepEqual(h, want) {
		t.Fatalf("a repeated epoch changed the homes to %v", h)
	}
	if s := eu.n.Stats(); s.AdviceIgnored != 2 {
		t.Fatalf("AdviceIgnored %d, want 2", s.AdviceIgnored)
	}
	tw.advise(6)
	if h := eu.n.Homes(); h != nil {
		t.Fatalf("advice without homes left %v", h)
	}
}

// TestHomesSkipsInvalid: homes naming an invalid SKU or region, or a
// region outside the allow-list, are skipped; a SKU named twice keeps its
// first home; at most MaxWireHomes are kept.
func TestHomesSkipsInvalid(t *testing.T) {
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1, Peers: []string{"ap", "us"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	step := readyStepper(t, n, t0)
	step(Input{Msg: &Message{Type: MsgAdvice, From: "rebal", Epoch: 1, Homes: []Home{
		{"A", "US"},     // invalid region
		{"", "us"},      // invalid SKU
		{"a\x00", "us"}, // invalid SKU
		{"B", "zz"},     // not in the allow-list
		{"D", "eu"},     // this region: kept (it is the home)
		{"C", "us"},
		{"C", "ap"}, // second home of C
	}}})
	if h, want := n.Homes(), []Home{{"C", "us"}, {"D", "eu"}}; !reflect.DeepEqual(h, want) {
		t.Fatalf("homes %v, want %v", h, want)
	}
	many := make([]Home, MaxWireHomes+10)
	for i := range many {
		many[i] = Home{SKU: fmt.Sprintf("s%05d", i), Region: "us"}
	}
	step(Input{Msg: &Message{Type: MsgAdvice, From: "rebal", Epoch: 2, Homes: many}})
	if h := n.Homes(); len(h) != MaxWireHomes || h[0] != many[0] {
		t.Fatalf("%d homes kept, want the first %d", len(h), MaxWireHomes)
	}
}

// TestHomesNoTopUp: a region does not top up a SKU homed elsewhere, after
// routing a hold or after granting one locally (from units a waiting hold
// kept here) that leaves it below its low-water mark.
func TestHomesNoTopUp(t *testing.T) {
	for _, tc := range []struct {
		name           string
		homed, locally bool
	}{
		{name: "no home"}, {name: "no home, local grant", locally: true},
		{name: "homed", homed: true}, {name: "homed, local grant", homed: true, locally: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw := newHomesNet(t, Config{LowWater: 4}, "ap", "eu", "us")
			eu, us := tw.nodes["eu"], tw.nodes["us"]
			us.restock("A", 40)
			tw.nodes["ap"].restock("C", 5)
			eu.restock("A", 4)
			tw.flush()
			if tc.locally {
				// A hold waiting on a lost borrow of C keeps 4 units of A at eu.
				if r := eu.submit(Command{Lines: []Line{l("A", 4), l("C", 1)}}); r != nil {
					t.Fatalf("hold answered at once: %+v", r)
				}
				tw.dropAll()
			} else {
				eu.restock("B", 1) // a hold of A routes or borrows: eu takes all it has
				eu.do(Command{Kind: CmdWriteOff, SKU: "A", Qty: 4})
			}
			if tc.homed {
				tw.advise(1, Home{"A", "us"})
				tw.flush()
			}
			topUpsBefore := eu.n.Stats().TopUps
			r := eu.submit(Command{Lines: []Line{l("A", 1)}})
			if tc.locally && (r == nil || r.Hold == nil) {
				t.Fatalf("want a local grant, got %+v", r)
			}
			eu.tick(10 * time.Millisecond)
			tw.flush()
			eu.tick(10 * time.Millisecond)
			topUps := eu.n.Stats().TopUps - topUpsBefore
			if tc.homed && topUps != 0 {
				t.Fatalf("%d top-ups of a SKU homed elsewhere", topUps)
			}
			if !tc.homed && topUps == 0 {
				t.Fatal("no top-up without a home: the test shows nothing")
			}
		})
	}
}

// TestHomesMaxRouted: the keys of routed holds are bounded by MaxRouted,
// oldest forgotten first.
func TestHomesMaxRouted(t *testing.T) {
	tw := newHomesNet(t, Config{MaxRouted: 2, PeerSilence: -1}, "ap", "eu", "us")
	eu := tw.nodes["eu"]
	tw.nodes["us"].restock("A", 5)
	tw.flush()
	tw.advise(1, Home{"A", "us"})
	try := func(key string) *Reply {
		return eu.submit(Command{Lines: []Line{l("A", 1)}, IdemKey: key, IdemHash: 7})
	}
	for _, k := range []string{"k1", "k2", "k3"} {
		wantRouted(t, eu, k, try(k), "us")
	}
	eu.submit(Command{Lines: []Line{l("A", 1)}}) // no key: nothing to remember
	if h := &eu.n.homes; routedKeys(eu.n) != 2 || len(h.routedLog) != 2 {
		t.Fatalf("%d routed keys, log %v, want 2", routedKeys(eu.n), h.routedLog)
	}
	tw.advise(2, Home{"A", "ap"})
	wantRouted(t, eu, "k3 remembered", try("k3"), "us")
	wantRouted(t, eu, "k1 forgotten", try("k1"), "ap")
	wantRouted(t, eu, "k2 evicted by k1", try("k2"), "ap")
	if h := &eu.n.homes; routedKeys(eu.n) != 2 || len(h.routedLog) != 2 {
		t.Fatalf("%d routed keys, log %v, want 2", routedKeys(eu.n), h.routedLog)
	}
}

// routedKeys counts the idempotency keys of routed holds n keeps.
func routedKeys(n *Node) int {
	c := 0
	for _, e := range n.idem {
		if e.RoutedTo != "" {
			c++
		}
	}
	return c
}

// TestHomesDisagreeingViews: regions whose views of a SKU's home differ
// (advice lost or late) must not pass units round forever: units received
// since the latest advice are not sent on before the next one.
func TestHomesDisagreeingViews(t *testing.T) {
	for _, tc := range []struct {
		name  string
		homes map[string]string // region -> the home it believes in
	}{
		{"two regions name each other", map[string]string{"eu": "us", "us": "eu"}},
		{"three regions in a cycle", map[string]string{"ap": "eu", "eu": "us", "us": "ap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw := newHomesNet(t, Config{PeerSilence: -1}, "ap", "eu", "us")
			for _, r := range sortedKeys(tw.nodes) {
				tw.nodes[r].restock("A", 5)
			}
			tw.flush()
			for _, r := range sortedKeys(tc.homes) {
				tw.deliverMsg(tmsg{to: r, m: Message{Type: MsgAdvice, From: "rebal", Epoch: 1, Homes: []Home{{"A", tc.homes[r]}}}})
			}
			// Scans go on while the views differ (flush fails if the
			// network never quiets); the units received are not sent on.
			for range 10 {
				tw.flush()
				for _, r := range sortedKeys(tw.nodes) {
					tw.nodes[r].tick(homePushEvery)
				}
			}
			tw.flush()
			for _, r := range sortedKeys(tc.homes) {
				if got := tw.nodes[r].n.Stats().HomeUnitsSent; got != 5 {
					t.Errorf("%s sent its home %d units, want its own 5", r, got)
				}
			}
			checkConverged(t, tw, "A")
			var total uint64
			for _, r := range sortedKeys(tw.nodes) {
				total += tw.nodes[r].n.Available("A")
			}
			if total != 15 {
				t.Fatalf("%d units available in all, want 15", total)
			}
			// The views agree again: what was received goes to the home.
			tw.advise(2, Home{"A", "us"})
			tw.flush()
			if got := tw.nodes["us"].n.Available("A"); got != 15 {
				t.Fatalf("the home has %d units once the views agree, want 15", got)
			}
			checkConverged(t, tw, "A")
		})
	}
}

// BenchmarkHoldWithHomes: a one-line hold of a SKU without a home while k
// other SKUs have homes elsewhere. Every Step ticks, so the cost of the
// homes scan (pushHomes) shows here unless it is bounded.
func BenchmarkHoldWithHomes(b *testing.B) {
	for _, k := range []int{0, 100, 1000, MaxWireHomes} {
		b.Run(fmt.Sprint(k), func(b *testing.B) {
			n, err := NewNode(Config{Region: "eu", DigestInterval: -1, PeerSilence: -1, HomeTTL: time.Hour}, nil)
			if err != nil {
				b.Fatal(err)
			}
			now := t0
			step := func(in Input) {
				in.Now = now
				if err := n.Step(in); err != nil {
					b.Fatal(err)
				}
				n.Ready()
				n.Advance()
			}
			// us is heard from; eu has one unit of each homed SKU (sent to
			// us when the advice comes) and plenty of "big".
			step(Input{Msg: &Message{Type: MsgRows, From: "us", Seq: 1, Rows: []Row{{SKU: "Z", Region: "us", Seq: 1, Minted: 1}}}})
			step(Input{Cmd: &Command{Kind: CmdRestock, SKU: "big", Qty: MaxQty}})
			hs := make([]Home, 0, k)
			for i := 0; i < k; i++ {
				sku := fmt.Sprintf("s%05d", i)
				step(Input{Cmd: &Command{Kind: CmdRestock, SKU: sku, Qty: 1}})
				hs = append(hs, Home{SKU: sku, Region: "us"})
			}
			step(Input{Msg: &Message{Type: MsgAdvice, From: "rebalancer", Epoch: 1, Homes: hs}})
			if got := n.Stats().HomeUnitsSent; got != uint64(k) {
				b.Fatalf("%d units sent to homes, want %d", got, k)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now = now.Add(time.Microsecond)
				step(Input{Cmd: &Command{Kind: CmdHold, ReqID: uint64(i), Lines: []Line{{SKU: "big", Qty: 1}}, TTL: time.Minute}})
				if i%(MaxQty/2) == MaxQty/2-1 {
					b.StopTimer()
					step(Input{Cmd: &Command{Kind: CmdRestock, SKU: "big", Qty: MaxQty}})
					b.StartTimer()
				}
			}
		})
	}
}
