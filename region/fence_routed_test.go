package region

import (
	"testing"

	"github.com/holdfast-io/holdfast/escrow"
)

// TestRoutedHoldFencedHome: a home that answers a routed hold with
// "fenced" refused it before changing anything, so the hold runs here as
// plain escrow (409 with no stock here), never a 503 or a 500 because the
// home's store went back in time.
func TestRoutedHoldFencedHome(t *testing.T) {
	var log forwardLog
	ft := &fakeTransport{forward: func(owner string, cmd escrow.Command) (escrow.Reply, error) {
		log.add(owner, cmd)
		return escrow.Reply{Kind: cmd.Kind, Err: &escrow.Error{Code: escrow.CodeFenced, Detail: "region us is fenced"}}, nil
	}}
	r := openHomed(t, ft)
	rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, IdemKey: "k", IdemHash: 3})
	if rep.Err == nil || rep.Err.Code != escrow.CodeInsufficientStock {
		t.Fatalf("hold routed to a fenced home: %+v %v", rep.Hold, rep.Err)
	}
	if owners, cmds := log.all(); len(cmds) != 1 || owners[0] != "us" || !cmds[0].Routed {
		t.Fatalf("forwards: %v %+v", owners, cmds)
	}
	if got := routedCount(r, routedFallback); got != 1 {
		t.Fatalf("routed fallback = %v", got)
	}
	if got := routedCount(r, routedUnreachable) + routedCount(r, routedBug); got != 0 {
		t.Fatalf("routed unreachable+bug = %v", got)
	}
}
