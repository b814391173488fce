package gossip

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// A routed hold that may wait keeps its wait; waitlist get and cancel of
// another region's entry travel like get; a reply carrying an entry keeps
// it; every truncation is refused; a plain routed hold encodes as before.
func TestForwardCodecWaitlist(t *testing.T) {
	in := ForwardRequest{From: "us", Cmd: routedHold()}
	in.Cmd.Wait = 5 * time.Minute
	b, err := EncodeForwardRequest(nil, &in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeForwardRequest(b)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("routed hold with wait: got %+v, %v; want %+v", out, err, in)
	}
	for i := range b {
		if _, err := DecodeForwardRequest(b[:i]); !errors.Is(err, ErrCodec) {
			t.Fatalf("truncated to %d of %d bytes: %v", i, len(b), err)
		}
	}
	plain := ForwardRequest{From: "us", Cmd: routedHold()}
	pb, err := EncodeForwardRequest(nil, &plain)
	if err != nil || len(pb) >= len(b) {
		t.Fatalf("a hold without wait must encode shorter (as before): %d vs %d bytes, %v", len(pb), len(b), err)
	}
	for _, c := range []escrow.Command{{Kind: escrow.CmdHold, Routed: true, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, Wait: -time.Second},
		{Kind: escrow.CmdWaitGet, HoldID: testHold.ID, Wait: time.Minute}} {
		if _, err := EncodeForwardRequest(nil, &ForwardRequest{From: "us", Cmd: c}); err == nil {
			t.Errorf("%s with wait %v encoded", c.Kind, c.Wait)
		}
	}

	for _, k := range []escrow.CommandKind{escrow.CmdWaitGet, escrow.CmdWaitCancel} {
		req := ForwardRequest{From: "us", Cmd: escrow.Command{Kind: k, HoldID: testHold.ID}}
		b, err := EncodeForwardRequest(nil, &req)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := DecodeForwardRequest(b); err != nil || !reflect.DeepEqual(req, out) {
			t.Fatalf("%s: got %+v, %v", k, out, err)
		}
	}

	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	entry := escrow.WaitEntry{ID: "eu-01hf7yerygy79s7scz", Seq: 7, State: escrow.Waiting,
		Lines: []escrow.Line{{SKU: "A", Qty: 2}, {SKU: "B", Qty: 1}}, Created: t0, Deadline: t0.Add(time.Minute),
		Updated: t0, TTL: 10 * time.Minute, Meta: `{"cart":"c"}`, Position: []uint64{3, 1}}
	promoted := entry
	promoted.State, promoted.HoldID, promoted.Position = escrow.Promoted, testHold.ID, nil
	for _, rep := range []escrow.Reply{
		{Kind: escrow.CmdHold, Wait: &entry},
		{Kind: escrow.CmdWaitGet, Wait: &promoted},
		{Kind: escrow.CmdHold, Replayed: true, Wait: &entry},
		{Kind: escrow.CmdHold, Err: &escrow.Error{Code: escrow.CodeWaitlistFull, Detail: "full"}},
	} {
		b, err := EncodeForwardReply(nil, &ForwardReply{Reply: rep})
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeForwardReply(b)
		if err != nil || !reflect.DeepEqual(got.Reply, rep) {
			t.Fatalf("reply %+v: got %+v, %v", rep, got.Reply, err)
		}
		for i := range b {
			if _, err := DecodeForwardReply(b[:i]); !errors.Is(err, ErrCodec) {
				t.Fatalf("reply truncated to %d of %d bytes: %v", i, len(b), err)
			}
		}
	}
	// A bad entry is refused.
	bad := entry
	bad.State = 9
	b, err = EncodeForwardReply(nil, &ForwardReply{Reply: escrow.Reply{Kind: escrow.CmdWaitGet, Wait: &bad}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeForwardReply(b); !errors.Is(err, ErrCodec) {
		t.Fatalf("entry in state 9 decoded: %v", err)
	}
}
