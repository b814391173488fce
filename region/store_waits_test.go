package region

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// TestStoreWaitlistSurvivesCrash drives a real node: a sold-out SKU, three
// shoppers join its waitlist, one is promoted by a release and one cancels.
// After a crash keeping only synced data, the restarted node has every
// entry with its state, placement order, position and deadline, and the
// next returned unit goes to the oldest waiter.
func TestStoreWaitlistSurvivesCrash(t *testing.T) {
	mem := vfs.NewCrashableMem()
	s, err := OpenStore("db", stCrashOpts(mem, t))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0).UTC()
	n, err := escrow.NewNode(escrow.Config{Region: stRegion}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var req uint64
	do := func(n *escrow.Node, c escrow.Command) escrow.Reply {
		t.Helper()
		req++
		c.ReqID = req
		if err := n.Step(escrow.Input{Now: now, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
		rd := n.Ready()
		if err := s.Apply(&rd.Persist); err != nil {
			t.Fatal(err)
		}
		defer n.Advance() // after the reply is read: Advance reuses the replies
		for _, r := range rd.Reply {
			if r.ReqID == c.ReqID {
				return r
			}
		}
		t.Fatalf("no reply to %s", c.Kind)
		return escrow.Reply{}
	}
	hold := func(n *escrow.Node, qty uint64, wait time.Duration) escrow.Reply {
		return do(n, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: qty}}, Wait: wait})
	}
	do(n, escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1})
	h := hold(n, 1, 0).Hold
	var ids []string
	for i, d := range []time.Duration{15 * time.Minute, 20 * time.Minute, 25 * time.Minute, 2 * time.Minute} {
		now = now.Add(time.Second)
		r := hold(n, 1, d)
		if r.Wait == nil || r.Wait.State != escrow.Waiting || r.Wait.Position[0] != uint64(i+1) {
			t.Fatalf("join %d: %+v", i, r)
		}
		ids = append(ids, r.Wait.ID)
	}
	do(n, escrow.Command{Kind: escrow.CmdRelease, HoldID: h.ID})
	do(n, escrow.Command{Kind: escrow.CmdWaitCancel, HoldID: ids[1]})
	before := n.WaitEntries()

	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	_ = s.Close()
	s, err = OpenStore("db", stCrashOpts(crashed, t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := stLoad(t, s)
	n2, err := escrow.NewNode(escrow.Config{Region: stRegion}, st)
	if err != nil {
		t.Fatal(err)
	}
	after := n2.WaitEntries()
	if len(after) != len(before) {
		t.Fatalf("after the crash %d entries, before %d", len(after), len(before))
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.ID != b.ID || a.Seq != b.Seq || a.State != b.State || !a.Deadline.Equal(b.Deadline) ||
			a.HoldID != b.HoldID || len(a.Position) != len(b.Position) || (len(a.Position) > 0 && a.Position[0] != b.Position[0]) {
			t.Errorf("entry %d: before %+v, after %+v", i, b, a)
		}
	}
	want := []escrow.WaitState{escrow.Promoted, escrow.Cancelled, escrow.Waiting, escrow.Waiting}
	for i, w := range want {
		if after[i].State != w {
			t.Errorf("entry %d is %s, want %s", i, after[i].State, w)
		}
	}
	// The promoted hold of entry 0 expires and its unit goes to entry 2.
	n = n2
	now = now.Add(escrow.DefaultTTL)
	do(n, escrow.Command{Kind: escrow.CmdWaitGet, HoldID: ids[2]})
	got := n.WaitEntries()
	if got[2].State != escrow.Promoted || got[3].State != escrow.WaitExpired {
		t.Fatalf("after the expiry: entry 2 %s, entry 3 %s (deadline %v, now %v)", got[2].State, got[3].State, got[3].Deadline, now)
	}
}
