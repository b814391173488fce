package escrow

import (
	"fmt"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// TestFinishReplySharesEvent: the reply to a confirm, a release or an
// extend that changes the hold shares the copy its event made (one copy
// of 216 bytes per change fewer), and that copy states the hold as
// changed: state, Updated and Expires as of the command. The planted bug
// FinishReplyStale answers with a copy made before the change and is
// caught.
func TestFinishReplySharesEvent(t *testing.T) {
	checkWithAndWithoutBug(t, "FinishReplyStale", plantedbugs.Bugs{FinishReplyStale: true}, finishReplySharesEvent)
}

func finishReplySharesEvent(t *testing.T, bugs plantedbugs.Bugs) error {
	cfg := Config{Region: "eu", DigestInterval: -1}
	n := newNodeWithBugs(t, cfg, bugs)
	now := t0
	req := uint64(0)
	step := func(c Command) Ready {
		req++
		c.ReqID = req
		if err := n.Step(Input{Now: now, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
		rd := n.Ready()
		if len(rd.Reply) != 1 || rd.Reply[0].Err != nil || (c.Kind != CmdRestock && rd.Reply[0].Hold == nil) {
			t.Fatalf("%s: reply %+v", c.Kind, rd.Reply)
		}
		return rd
	}
	step(Command{Kind: CmdRestock, SKU: "apple", Qty: 10})
	n.Advance()
	var ids []string
	for i := 0; i < 3; i++ {
		rd := step(Command{Kind: CmdHold, Lines: []Line{{SKU: "apple", Qty: 1}}, TTL: time.Minute})
		ids = append(ids, rd.Reply[0].Hold.ID)
		n.Advance()
	}
	now = now.Add(time.Second)
	for i, tc := range []struct {
		cmd   Command
		state HoldState
		exp   time.Time
	}{
		{Command{Kind: CmdConfirm, HoldID: ids[0]}, Confirmed, t0.Add(time.Minute)},
		{Command{Kind: CmdRelease, HoldID: ids[1]}, Released, t0.Add(time.Minute)},
		{Command{Kind: CmdExtend, HoldID: ids[2], TTL: 2 * time.Minute}, Held, now.Add(2*time.Minute + 2*time.Second)}, // stepped 2s on
	} {
		rd := step(tc.cmd)
		h := rd.Reply[0].Hold
		if len(rd.Persist.Events) != 1 {
			t.Fatalf("%s: %d events", tc.cmd.Kind, len(rd.Persist.Events))
		}
		if h.ID != ids[i] || h.State != tc.state || !h.Updated.Equal(now) || !h.Expires.Equal(tc.exp) {
			return fmt.Errorf("%s: the reply says %s, updated %v, expires %v; want %s, %v, %v",
				tc.cmd.Kind, h.State, h.Updated, h.Expires, tc.state, now, tc.exp)
		}
		if ev := rd.Persist.Events[0].Hold; ev != h {
			return fmt.Errorf("%s: the reply and the event have a copy each", tc.cmd.Kind)
		}
		n.Advance()
		now = now.Add(time.Second)
	}
	return nil
}
