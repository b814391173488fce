package escrow

import (
	"fmt"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// TestReadySlicesKeptUntilAdvance: with two Readies out at once (a
// pipeline writes one batch while the last one syncs), each keeps its own
// events, replies and messages until it is Advanced, however the node reuses the
// slices of Advanced ones. The planted bug RecycleAtReady (the last
// Ready's slices reused as soon as the next Ready begins) is caught.
func TestReadySlicesKeptUntilAdvance(t *testing.T) {
	checkWithAndWithoutBug(t, "RecycleAtReady", plantedbugs.Bugs{RecycleAtReady: true}, pipelinedReadies)
}

// pipelinedReadies takes Readies of 1 to 4 holds two at a time, checks
// that the older one still says what it said when it was returned once
// the newer one is made, then Advances the older one.
func pipelinedReadies(t *testing.T, bugs plantedbugs.Bugs) error {
	cfg := Config{Region: "eu", DigestInterval: -1}
	n := newNodeWithBugs(t, cfg, bugs)
	now := t0
	if err := n.Step(Input{Now: now, Cmd: &Command{Kind: CmdRestock, SKU: "apple", Qty: MaxQty}}); err != nil {
		t.Fatal(err)
	}
	n.Ready()
	n.Advance()
	req := uint64(0)
	// said is what a Ready said when it was returned: its replies'
	// request and hold ids, its events' hold ids.
	type said struct {
		rd       Ready
		reqs     []uint64
		replyIDs []string
		eventIDs []string
		sendSeqs []uint64
	}
	take := func(holds int) said {
		for i := 0; i < holds; i++ {
			req++
			if err := n.Step(Input{Now: now, Cmd: &Command{Kind: CmdHold, ReqID: req, Lines: []Line{{SKU: "apple", Qty: 1}}}}); err != nil {
				t.Fatal(err)
			}
		}
		s := said{rd: n.Ready()}
		for _, r := range s.rd.Reply {
			if r.Err != nil || r.Hold == nil {
				t.Fatalf("reply %+v", r)
			}
			s.reqs = append(s.reqs, r.ReqID)
			s.replyIDs = append(s.replyIDs, r.Hold.ID)
		}
		for _, e := range s.rd.Persist.Events {
			s.eventIDs = append(s.eventIDs, e.HoldID)
		}
		for _, m := range s.rd.Send {
			s.sendSeqs = append(s.sendSeqs, m.Seq)
		}
		if len(s.sendSeqs) != 1 {
			t.Fatalf("a Ready of %d holds sends %d messages, want its one broadcast", holds, len(s.sendSeqs))
		}
		if len(s.reqs) != holds || len(s.eventIDs) != holds {
			t.Fatalf("a Ready of %d holds has %d replies and %d events", holds, len(s.reqs), len(s.eventIDs))
		}
		return s
	}
	check := func(s said) error {
		if len(s.rd.Reply) != len(s.reqs) || len(s.rd.Persist.Events) != len(s.eventIDs) {
			return fmt.Errorf("a Ready out now has %d replies and %d events, had %d and %d",
				len(s.rd.Reply), len(s.rd.Persist.Events), len(s.reqs), len(s.eventIDs))
		}
		for i, r := range s.rd.Reply {
			if r.ReqID != s.reqs[i] || r.Hold == nil || r.Hold.ID != s.replyIDs[i] || r.Err != nil {
				return fmt.Errorf("reply %d of a Ready out now answers request %d (hold %v), was %d (hold %s)",
					i, r.ReqID, r.Hold, s.reqs[i], s.replyIDs[i])
			}
		}
		for i, e := range s.rd.Persist.Events {
			if e.HoldID != s.eventIDs[i] || e.Kind != EvHoldCreated {
				return fmt.Errorf("event %d of a Ready out now is %s of %s, was the creation of %s", i, e.Kind, e.HoldID, s.eventIDs[i])
			}
		}
		for i, m := range s.rd.Send {
			if m.Type != MsgRows || m.Seq != s.sendSeqs[i] || m.From != "eu" {
				return fmt.Errorf("message %d of a Ready out now is %s from %q up to seq %d, was rows up to %d", i, m.Type, m.From, m.Seq, s.sendSeqs[i])
			}
		}
		return nil
	}
	older := take(1)
	for round := 0; round < 40; round++ {
		now = now.Add(time.Millisecond)
		newer := take(1 + round%4)
		if err := check(older); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		n.Advance() // older
		if err := check(newer); err != nil {
			return fmt.Errorf("round %d, after the older Ready's Advance: %w", round, err)
		}
		older = newer
	}
	n.Advance()
	return nil
}

// TestReadySlicesReusedAndPoisoned: once Advanced, a Ready's replies,
// events and messages are poisoned (a reply read late is an error to no
// request, not a success; a message is from no region) and the next Ready
// reuses them: a steady run of one-hold Readies takes no new slice.
func TestReadySlicesReusedAndPoisoned(t *testing.T) {
	n := restockedNode(t, 1)
	now := t0
	cmd := Command{Kind: CmdHold, ReqID: 1, Lines: []Line{{SKU: "sku-000001", Qty: 1}}}
	if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	if len(rd.Reply) != 1 || rd.Reply[0].Err != nil || len(rd.Persist.Events) != 1 {
		t.Fatalf("Ready %+v", rd)
	}
	granted := rd.Reply[0].Hold
	n.Advance()
	if r := rd.Reply[0]; r.Err == nil || r.Kind != poisonKind || r.ReqID == 1 {
		t.Fatalf("a reply read after Advance is %+v, want poison", r)
	}
	if e := rd.Persist.Events[0]; e.Kind != poisonKind {
		t.Fatalf("an event read after Advance is %+v, want poison", e)
	}
	if m := rd.Send[0]; m.Type != poisonKind || ValidRegion(m.From) == nil {
		t.Fatalf("a message read after Advance is %+v, want poison", m)
	}
	if granted.State != Held || granted.ID == poisonedHold.ID {
		t.Fatalf("the granted hold, which a caller keeps, changed: %+v", granted)
	}
	cmd.ReqID++
	if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
		t.Fatal(err)
	}
	next := n.Ready()
	if &next.Reply[0] != &rd.Reply[0] || &next.Persist.Events[0] != &rd.Persist.Events[0] || &next.Send[0] != &rd.Send[0] {
		t.Fatal("the next Ready did not reuse the Advanced one's slices")
	}
	if next.Reply[0].ReqID != 2 || next.Reply[0].Err != nil || next.Persist.Events[0].Kind != EvHoldCreated {
		t.Fatalf("the next Ready says %+v, %+v", next.Reply[0], next.Persist.Events[0])
	}
	n.Advance()
}

// TestReadyQueueBoundedUnderPipeline: a runtime that always has a Ready
// out (each Ready is taken before the one before it is Advanced, as a
// busy pipeline does) never empties the queue of Readies out; the queue
// must still stay bounded (it grew by one entry per Ready), and the
// Readies still out must keep their slices.
func TestReadyQueueBoundedUnderPipeline(t *testing.T) {
	n := restockedNode(t, 1)
	now := t0
	cmd := Command{Kind: CmdHold, Lines: []Line{{SKU: "sku-000001", Qty: 1}}}
	take := func() Ready {
		now = now.Add(time.Microsecond)
		cmd.ReqID++
		if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
			t.Fatal(err)
		}
		return n.Ready()
	}
	out := []Ready{take(), take()}
	for i := 0; i < 10_000; i++ {
		out = append(out, take())
		n.Advance()
		out = out[1:]
		// The two Readies still out answer their own requests.
		for j, rd := range out {
			if want := cmd.ReqID - uint64(len(out)-1-j); len(rd.Reply) != 1 || rd.Reply[0].ReqID != want || rd.Reply[0].Err != nil {
				t.Fatalf("round %d: Ready out %d replies %+v, want request %d", i, j, rd.Reply, want)
			}
		}
	}
	if c := cap(n.readyBufs.out); c > 4*compactOutAt {
		t.Fatalf("the queue of Readies out has room for %d after 10,000 Readies with two out at a time", c)
	}
	n.Advance()
	n.Advance()
}
