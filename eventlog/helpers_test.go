package eventlog

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

var t0 = time.Unix(1_700_000_000, 0).UTC()

func memDB(t testing.TB) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// nodeEvents runs a small node through every kind of change and returns
// its events, as the runtime would get them from Persist.Events.
func nodeEvents(t testing.TB) []escrow.Event {
	t.Helper()
	n, err := escrow.NewNode(escrow.Config{Region: "eu", DigestInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var evs []escrow.Event
	now := t0
	step := func(c escrow.Command) *escrow.Reply {
		now = now.Add(time.Second)
		if err := n.Step(escrow.Input{Now: now, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
		rd := n.Ready()
		evs = keptEvents(evs, &rd)
		if len(rd.Reply) != 1 || rd.Reply[0].Err != nil {
			t.Fatalf("%s: replies %+v", c.Kind, rd.Reply)
		}
		r := rd.Reply[0] // a copy: the node reuses a Ready's replies once Advanced
		n.Advance()
		return &r
	}
	step(escrow.Command{Kind: escrow.CmdRestock, ReqID: 1, SKU: "apple", Qty: 10})
	h := step(escrow.Command{Kind: escrow.CmdHold, ReqID: 2, Lines: []escrow.Line{{SKU: "apple", Qty: 2}}, Meta: `{"cart":"c1"}`}).Hold
	step(escrow.Command{Kind: escrow.CmdExtend, ReqID: 3, HoldID: h.ID, TTL: 30 * time.Minute})
	step(escrow.Command{Kind: escrow.CmdConfirm, ReqID: 4, HoldID: h.ID})
	h2 := step(escrow.Command{Kind: escrow.CmdHold, ReqID: 5, Lines: []escrow.Line{{SKU: "apple", Qty: 1}}, Meta: "not json"}).Hold
	step(escrow.Command{Kind: escrow.CmdRelease, ReqID: 6, HoldID: h2.ID})
	h3 := step(escrow.Command{Kind: escrow.CmdHold, ReqID: 7, Lines: []escrow.Line{{SKU: "apple", Qty: 1}}, TTL: time.Minute}).Hold
	now = now.Add(2 * time.Minute)
	if err := n.Step(escrow.Input{Now: now}); err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	evs = keptEvents(evs, &rd)
	if len(rd.Persist.Events) != 1 || rd.Persist.Events[0].HoldID != h3.ID {
		t.Fatalf("sweep events %+v", rd.Persist.Events)
	}
	n.Advance()
	step(escrow.Command{Kind: escrow.CmdWriteOff, ReqID: 8, SKU: "apple", Qty: 3})
	// The waitlist: the last units held, three shoppers wait; a release
	// promotes the first, the second cancels, the third expires.
	h4 := step(escrow.Command{Kind: escrow.CmdHold, ReqID: 9, Lines: []escrow.Line{{SKU: "apple", Qty: 5}}}).Hold
	var waits [3]string
	for i := range waits {
		waits[i] = step(escrow.Command{Kind: escrow.CmdHold, ReqID: uint64(10 + i), Lines: []escrow.Line{{SKU: "apple", Qty: 5}},
			Wait: time.Duration(i+1) * time.Minute, Meta: `{"cart":"w"}`}).Wait.ID
	}
	step(escrow.Command{Kind: escrow.CmdRelease, ReqID: 13, HoldID: h4.ID})
	step(escrow.Command{Kind: escrow.CmdWaitCancel, ReqID: 14, HoldID: waits[1]})
	now = now.Add(10 * time.Minute)
	if err := n.Step(escrow.Input{Now: now}); err != nil {
		t.Fatal(err)
	}
	rd = n.Ready()
	evs = keptEvents(evs, &rd)
	n.Advance()
	return evs
}

// keptEvents appends rd's events to evs with their holds cloned: a hold
// copy no reply shares (an expiry's) is the node's again once the Ready
// is Advanced, and these events are read after that.
func keptEvents(evs []escrow.Event, rd *escrow.Ready) []escrow.Event {
	for _, e := range rd.Persist.Events {
		if e.Hold != nil {
			h := e.Hold.Clone()
			e.Hold = &h
		}
		evs = append(evs, e)
	}
	return evs
}

// stockEvents makes n restock events, for tests that need many.
func stockEvents(from, n int) []escrow.Event {
	evs := make([]escrow.Event, n)
	for i := range evs {
		q := uint64(from + i)
		evs[i] = escrow.Event{Kind: escrow.EvStockRestocked, At: time.Now(), SKU: "apple", Qty: q, Available: q}
	}
	return evs
}

// commit appends evs to o in one synced batch, as the region runtime does.
func commit(t testing.TB, db *pebble.DB, o *Outbox, evs []escrow.Event) uint64 {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	head, err := o.Append(b, evs)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	o.Committed(head)
	return head
}
