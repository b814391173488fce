package gossip

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

var testHold = escrow.Hold{
	ID:         "eu-0123456789abcdefgh",
	Lines:      []escrow.Line{{SKU: "A", Qty: 2}, {SKU: "B", Qty: 1}},
	State:      escrow.Held,
	Created:    time.Unix(1_700_000_000, 0).UTC(),
	Expires:    time.Unix(1_700_000_600, 0).UTC(),
	MaxExpires: time.Unix(1_700_003_600, 0).UTC(),
	Updated:    time.Unix(1_700_000_000, 0).UTC(),
	IdemKey:    "k1",
	Meta:       `{"cart":"x"}`,
}

func TestForwardCodecRoundTrip(t *testing.T) {
	for _, k := range []escrow.CommandKind{escrow.CmdGet, escrow.CmdConfirm, escrow.CmdRelease, escrow.CmdExtend} {
		in := ForwardRequest{From: "us", Cmd: escrow.Command{Kind: k, HoldID: testHold.ID, TTL: 90 * time.Second}}
		b, err := EncodeForwardRequest(nil, &in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeForwardRequest(b)
		if err != nil || !reflect.DeepEqual(in, out) {
			t.Fatalf("request %s: got %+v, %v", k, out, err)
		}
	}
	if _, err := EncodeForwardRequest(nil, &ForwardRequest{From: "us", Cmd: escrow.Command{Kind: escrow.CmdHold}}); err == nil {
		t.Fatal("a hold command was encoded for forwarding")
	}
	h := testHold
	replies := []ForwardReply{
		{Reply: escrow.Reply{Kind: escrow.CmdConfirm, Hold: &h}},
		{Reply: escrow.Reply{Kind: escrow.CmdGet, Err: &escrow.Error{Code: escrow.CodeNotFound, Detail: "no hold"}}},
		{Reply: escrow.Reply{Kind: escrow.CmdRelease, Err: &escrow.Error{Code: escrow.CodeNotOwner, Detail: "x", Owner: "ap"}}},
		{Failure: "owner busy"},
	}
	for _, in := range replies {
		b, err := EncodeForwardReply(nil, &in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeForwardReply(b)
		if err != nil || !reflect.DeepEqual(in, out) {
			t.Fatalf("reply: got %+v, %v; want %+v", out, err, in)
		}
	}
	b, _ := EncodeForwardRequest(nil, &ForwardRequest{From: "us", Cmd: escrow.Command{Kind: escrow.CmdGet, HoldID: testHold.ID}})
	b[2]++
	if _, err := DecodeForwardRequest(b); !errors.Is(err, escrow.ErrWireVersion) {
		t.Fatalf("future version: %v", err)
	}
	// A number must be in its shortest form: TTL 0 written as two bytes is refused.
	b, _ = EncodeForwardRequest(nil, &ForwardRequest{From: "us", Cmd: escrow.Command{Kind: escrow.CmdGet, HoldID: testHold.ID}})
	b = append(b[:len(b)-1], 0x80, 0x00)
	if _, err := DecodeForwardRequest(b); !errors.Is(err, ErrCodec) {
		t.Fatalf("non-minimal TTL: %v", err)
	}
}

func TestEventRoundTrip(t *testing.T) {
	for _, st := range []escrow.HoldState{escrow.Held, escrow.Confirmed, escrow.Released, escrow.Expired} {
		h := testHold
		h.State = st
		ev, err := EventOf(&h)
		if err != nil {
			t.Fatal(err)
		}
		b, err := EncodeEvent(&ev)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeEvent(b)
		if err != nil || !reflect.DeepEqual(ev, out) {
			t.Fatalf("%s: got %+v, %v; want %+v", st, out, err, ev)
		}
	}
	h := testHold
	h.Updated = h.Updated.Add(time.Minute)
	if ev, _ := EventOf(&h); ev.Type != EventExtended {
		t.Fatalf("extended hold gives event %q", ev.Type)
	}
	for _, bad := range []string{`{}`, `{"v":2}`, `[]`, `{"v":1,"type":"hold.held","state":"confirmed"}`,
		`{"v":1,"type":"hold.held","state":"held","region":"us","hold_id":"eu-0123456789abcdefgh","lines":[{"sku":"A","qty":1}]}`,
		`{"v":1,"type":"hold.held","state":"held","region":"eu","hold_id":"eu-0123456789abcdefgh","lines":[{"sku":"A","qty":0}]}`,
		`{"v":1,"type":"hold.held","state":"held","region":"eu","hold_id":"eu-0123456789abcdefgh","lines":[{"sku":"A","qty":1}]} {}`,
	} {
		if _, err := DecodeEvent([]byte(bad)); err == nil {
			t.Errorf("DecodeEvent(%s) accepted", bad)
		}
	}
}

func FuzzDecodeForwardRequest(f *testing.F) {
	for _, k := range []escrow.CommandKind{escrow.CmdGet, escrow.CmdExtend} {
		b, _ := EncodeForwardRequest(nil, &ForwardRequest{From: "us", Cmd: escrow.Command{Kind: k, HoldID: testHold.ID, TTL: time.Minute}})
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte("hf\x01Q"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeForwardRequest(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		b2, err := EncodeForwardRequest(nil, &r)
		if err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
		r2, err := DecodeForwardRequest(b2)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %+v vs %+v (%v)", r, r2, err)
		}
	})
}

func FuzzDecodeForwardReply(f *testing.F) {
	h := testHold
	for _, r := range []ForwardReply{
		{Reply: escrow.Reply{Kind: escrow.CmdConfirm, Hold: &h, Replayed: true}},
		{Reply: escrow.Reply{Kind: escrow.CmdGet, Err: &escrow.Error{Code: escrow.CodeConflict, Detail: "d", SKU: "A", Available: 3}}},
		{Failure: "busy"},
	} {
		b, _ := EncodeForwardReply(nil, &r)
		f.Add(b)
	}
	f.Add([]byte("hf\x01P\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeForwardReply(b)
		if err != nil {
			return
		}
		b2, err := EncodeForwardReply(nil, &r)
		if err != nil {
			t.Fatalf("decoded reply does not encode: %v", err)
		}
		if _, err := DecodeForwardReply(b2); err != nil {
			t.Fatalf("re-encoded reply does not decode: %v", err)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	for _, st := range []escrow.HoldState{escrow.Held, escrow.Expired} {
		h := testHold
		h.State = st
		ev, _ := EventOf(&h)
		b, _ := EncodeEvent(&ev)
		f.Add(b)
	}
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeEvent(b)
		if err != nil {
			return
		}
		b2, err := EncodeEvent(&ev)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		if _, err := DecodeEvent(b2); err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
	})
}

// FuzzHandle feeds arbitrary subjects and payloads to the inbound path:
// nothing may panic, and whatever is delivered passed the subject rules.
func FuzzHandle(f *testing.F) {
	b, _ := escrow.EncodeMessage(nil, &escrow.Message{Type: escrow.MsgRows, From: "us", Seq: 1, Rows: []escrow.Row{{SKU: "A", Region: "us", Seq: 1, Minted: 1}}})
	f.Add("holdfast.c.rows.us", b)
	b, _ = escrow.EncodeMessage(nil, &escrow.Message{Type: escrow.MsgBorrowResp, From: "us", To: "eu", ID: 3, Qty: 1,
		Rows: []escrow.Row{{SKU: "A", Region: "us", Seq: 2, Minted: 1, Sent: []escrow.Transfer{{To: "eu", Qty: 1}}}}})
	f.Add("holdfast.c.borrow.eu.us", b)
	f.Add("holdfast.c.advice", []byte("hf\x01M"))
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		in := &captureInbox{}
		tr, err := newTransport(Config{URL: "x", Cluster: "c", Region: "eu", Logger: quietLog()}, in)
		if err != nil {
			t.Fatal(err)
		}
		if !tr.handle(subject, data, time.Now()) {
			return
		}
		m := in.msgs[0]
		if m.Type != escrow.MsgAdvice && (m.From == "eu" || (m.To != "" && m.To != "eu")) {
			t.Fatalf("delivered %+v on %s", m, subject)
		}
		for _, r := range m.Rows {
			if r.Region != m.From {
				t.Fatalf("delivered a row of %s from %s", r.Region, m.From)
			}
		}
	})
}
