package gossip

import (
	"context"
	"errors"
	"fmt"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// TestForwardRoutedHold sends a routed hold from us to eu over NATS: eu's
// node serves it from its own slice, a retry with the same key is replayed,
// a plain hold is not sent at all, and a region nobody serves is reported
// as having no responders.
func TestForwardRoutedHold(t *testing.T) {
	tc := newTestCluster(t, "eu", "us")
	tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	us := tc.nodes["us"].tr()
	cmd := escrow.Command{Kind: escrow.CmdHold, Routed: true, TTL: time.Minute,
		Lines: []escrow.Line{{SKU: "A", Qty: 2}}, IdemKey: "cart-7", IdemHash: 42, Meta: `{"m":1}`}
	rep, err := us.Forward(ctx, "eu", cmd)
	if err != nil || rep.Err != nil || rep.Hold == nil || !strings.HasPrefix(rep.Hold.ID, "eu-") ||
		rep.Hold.IdemKey != "cart-7" || rep.Hold.Meta != `{"m":1}` || rep.Replayed {
		t.Fatalf("routed hold: %+v %v %v", rep.Hold, rep.Err, err)
	}
	again, err := us.Forward(ctx, "eu", cmd)
	if err != nil || again.Err != nil || !again.Replayed || again.Hold.ID != rep.Hold.ID {
		t.Fatalf("retry: %+v %v %v", again.Hold, again.Err, err)
	}
	// eu has nothing left: its refusal comes back as the answer.
	cmd.IdemKey = ""
	if rep, err := us.Forward(ctx, "eu", cmd); err != nil || rep.Err == nil || rep.Err.Code != escrow.CodeInsufficientStock {
		t.Fatalf("routed hold beyond eu's stock: %+v %v", rep, err)
	}
	cmd.Routed = false
	if _, err := us.Forward(ctx, "eu", cmd); err == nil || errors.Is(err, region.ErrUnreachable) {
		t.Fatalf("plain hold forwarded: %v", err)
	}
	_, err = us.Forward(ctx, "zz", escrow.Command{Kind: escrow.CmdGet, HoldID: "zz-0123456789abcdefgh"})
	if !errors.Is(err, region.ErrNoResponders) || !errors.Is(err, region.ErrUnreachable) {
		t.Fatalf("forward to a region nobody serves: %v", err)
	}
}

// failingInbox answers every forwarded command with err.
type failingInbox struct{ err error }

func (failingInbox) Deliver(escrow.Message) {}
func (f failingInbox) Execute(context.Context, escrow.Command) (escrow.Reply, error) {
	return escrow.Reply{}, f.err
}

// TestForwardFailureRefusedOrNot: a target that did not run the command
// (its Inbox says region.ErrNotRun) answers Refused, and the caller gets
// region.ErrRefused (it may run a routed hold elsewhere); any other failure at the
// target (its store failing, its own timeout) may have applied the command,
// so the caller gets region.ErrUnreachable without region.ErrRefused.
func TestForwardFailureRefusedOrNot(t *testing.T) {
	_, url := testutil.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name    string
		err     error
		refused bool
	}{
		{"not run", fmt.Errorf("%w: queue full", region.ErrNotRun), true},
		{"store failing", errors.New("region: storage unavailable"), false},
		{"timeout at the target", context.DeadlineExceeded, false},
	} {
		eu, err := Connect(ctx, Config{URL: url, Cluster: "refused", Region: "eu"}, failingInbox{err: tc.err})
		if err != nil {
			t.Fatal(err)
		}
		us, err := Connect(ctx, Config{URL: url, Cluster: "refused", Region: "us"}, failingInbox{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = us.Forward(ctx, "eu", escrow.Command{Kind: escrow.CmdHold, Routed: true, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
		if !errors.Is(err, region.ErrUnreachable) || errors.Is(err, region.ErrRefused) != tc.refused {
			t.Errorf("%s: err %v, want region.ErrUnreachable and refused %v", tc.name, err, tc.refused)
		}
		us.Close()
		eu.Close()
	}
}
