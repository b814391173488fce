package gossip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
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
		{Failure: "owner busy", Refused: true},
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

// routedHold is a routed hold as the region runtime forwards it: the
// client's command as it came (lines unsorted, a SKU twice), Routed set.
func routedHold() escrow.Command {
	return escrow.Command{Kind: escrow.CmdHold, Routed: true, TTL: 10 * time.Minute,
		Lines:   []escrow.Line{{SKU: "B", Qty: 2}, {SKU: "A", Qty: 1}, {SKU: "B", Qty: 3}},
		IdemKey: "cart-42", IdemHash: 0xfedcba9876543210, Meta: `{"cart":"x"}`}
}

// rawHoldRequest writes a hold request field by field, without the
// encoder's checks, to build inputs the decoder must refuse.
func rawHoldRequest(holdID string, lines []escrow.Line, nLines uint64, key, meta string, flags byte) []byte {
	e := escrow.WireEncoder{}
	e.Header(ForwardVersion, kindFwdReq)
	e.String("us")
	e.Byte(byte(escrow.CmdHold))
	e.String(holdID)
	e.Uvarint(uint64(time.Minute))
	e.Uvarint(nLines)
	for _, l := range lines {
		e.String(l.SKU)
		e.Uvarint(l.Qty)
	}
	e.String(key)
	e.Uvarint(7)
	e.String(meta)
	e.Byte(flags)
	return e.B
}

func TestForwardCodecRoutedHold(t *testing.T) {
	in := ForwardRequest{From: "us", Cmd: routedHold()}
	b, err := EncodeForwardRequest(nil, &in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeForwardRequest(b)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("routed hold: got %+v, %v; want %+v", out, err, in)
	}
	// The smallest routed hold: one line, no key, no metadata, default TTL.
	min := ForwardRequest{From: "eu", Cmd: escrow.Command{Kind: escrow.CmdHold, Routed: true, Lines: []escrow.Line{{SKU: "A", Qty: 1}}}}
	if b, err := EncodeForwardRequest(nil, &min); err != nil {
		t.Fatal(err)
	} else if out, err := DecodeForwardRequest(b); err != nil || !reflect.DeepEqual(min, out) {
		t.Fatalf("minimal routed hold: got %+v, %v", out, err)
	}
	// A partial hold with a cart reference keeps both.
	pc := ForwardRequest{From: "us", Cmd: routedHold()}
	pc.Cmd.Partial, pc.Cmd.Cart = true, "cart-42"
	if b, err := EncodeForwardRequest(nil, &pc); err != nil {
		t.Fatal(err)
	} else if out, err := DecodeForwardRequest(b); err != nil || !reflect.DeepEqual(pc, out) {
		t.Fatalf("partial routed hold with cart: got %+v, %v", out, err)
	}
	// Every truncation of a valid request is refused.
	for i := range b {
		if _, err := DecodeForwardRequest(b[:i]); !errors.Is(err, ErrCodec) {
			t.Fatalf("truncated to %d of %d bytes: %v", i, len(b), err)
		}
	}
	if _, err := DecodeForwardRequest(append(b[:len(b):len(b)], 0)); !errors.Is(err, ErrCodec) {
		t.Fatalf("trailing byte: %v", err)
	}

	// What the encoder refuses to send.
	bad := map[string]func(c *escrow.Command){
		"plain hold":          func(c *escrow.Command) { c.Routed = false },
		"routed confirm":      func(c *escrow.Command) { c.Kind, c.HoldID = escrow.CmdConfirm, testHold.ID },
		"hold with a hold id": func(c *escrow.Command) { c.HoldID = testHold.ID },
		"no lines":            func(c *escrow.Command) { c.Lines = nil },
		"zero qty":            func(c *escrow.Command) { c.Lines = []escrow.Line{{SKU: "A", Qty: 0}} },
		"qty over MaxQty":     func(c *escrow.Command) { c.Lines = []escrow.Line{{SKU: "A", Qty: escrow.MaxQty + 1}} },
		"merged qty over MaxQty": func(c *escrow.Command) {
			c.Lines = []escrow.Line{{SKU: "A", Qty: escrow.MaxQty}, {SKU: "A", Qty: 1}}
		},
		"too many lines": func(c *escrow.Command) {
			c.Lines = make([]escrow.Line, escrow.MaxLines+1)
			for i := range c.Lines {
				c.Lines[i] = escrow.Line{SKU: fmt.Sprintf("S%d", i), Qty: 1}
			}
		},
		"bad sku":          func(c *escrow.Command) { c.Lines = []escrow.Line{{SKU: "A\x00", Qty: 1}} },
		"bad idem key":     func(c *escrow.Command) { c.IdemKey = "has space" },
		"long idem key":    func(c *escrow.Command) { c.IdemKey = strings.Repeat("k", escrow.MaxIdemKeyLen+1) },
		"long metadata":    func(c *escrow.Command) { c.Meta = strings.Repeat("m", escrow.MaxMetaLen+1) },
		"negative ttl":     func(c *escrow.Command) { c.TTL = -time.Second },
		"ttl out of range": func(c *escrow.Command) { c.TTL = maxForwardTTL + 1 },
	}
	for name, mod := range bad {
		c := routedHold()
		mod(&c)
		if _, err := EncodeForwardRequest(nil, &ForwardRequest{From: "us", Cmd: c}); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}

	// What the decoder refuses, written without the encoder's checks.
	one := []escrow.Line{{SKU: "A", Qty: 1}}
	if _, err := DecodeForwardRequest(rawHoldRequest("", one, 1, "k", "", requestFlagRouted)); err != nil {
		t.Fatalf("raw routed hold: %v", err) // the raw writer itself is right
	}
	hundredOne := make([]escrow.Line, escrow.MaxLines+1)
	for i := range hundredOne {
		hundredOne[i] = escrow.Line{SKU: fmt.Sprintf("S%d", i), Qty: 1}
	}
	for name, b := range map[string][]byte{
		"plain hold (flags 0)":     rawHoldRequest("", one, 1, "k", "", 0),
		"unknown flags":            rawHoldRequest("", one, 1, "k", "", requestFlagRouted|8),
		"partial, not routed":      rawHoldRequest("", one, 1, "k", "", requestFlagPartial),
		"cart flag, no cart":       rawHoldRequest("", one, 1, "k", "", requestFlagRouted|requestFlagCart),
		"hold id on a hold":        rawHoldRequest(testHold.ID, one, 1, "k", "", requestFlagRouted),
		"no lines":                 rawHoldRequest("", nil, 0, "k", "", requestFlagRouted),
		"too many lines":           rawHoldRequest("", hundredOne, uint64(len(hundredOne)), "k", "", requestFlagRouted),
		"line count over the data": rawHoldRequest("", one, escrow.MaxLines, "k", "", requestFlagRouted),
		"huge line count":          rawHoldRequest("", one, 1<<40, "k", "", requestFlagRouted),
		"zero qty":                 rawHoldRequest("", []escrow.Line{{SKU: "A", Qty: 0}}, 1, "k", "", requestFlagRouted),
		"qty over MaxQty":          rawHoldRequest("", []escrow.Line{{SKU: "A", Qty: escrow.MaxQty + 1}}, 1, "k", "", requestFlagRouted),
		"merged qty over MaxQty": rawHoldRequest("", []escrow.Line{{SKU: "A", Qty: escrow.MaxQty}, {SKU: "A", Qty: 1}}, 2,
			"k", "", requestFlagRouted),
		"empty sku":     rawHoldRequest("", []escrow.Line{{SKU: "", Qty: 1}}, 1, "k", "", requestFlagRouted),
		"bad sku":       rawHoldRequest("", []escrow.Line{{SKU: "A\x01", Qty: 1}}, 1, "k", "", requestFlagRouted),
		"long sku":      rawHoldRequest("", []escrow.Line{{SKU: strings.Repeat("s", escrow.MaxSKULen+1), Qty: 1}}, 1, "k", "", requestFlagRouted),
		"bad idem key":  rawHoldRequest("", one, 1, "a b", "", requestFlagRouted),
		"long idem key": rawHoldRequest("", one, 1, strings.Repeat("k", escrow.MaxIdemKeyLen+1), "", requestFlagRouted),
		"long metadata": rawHoldRequest("", one, 1, "k", strings.Repeat("m", escrow.MaxMetaLen+1), requestFlagRouted),
	} {
		if _, err := DecodeForwardRequest(b); !errors.Is(err, ErrCodec) {
			t.Errorf("%s: decoded (err %v)", name, err)
		}
	}

	// The home's answer to a routed hold travels back.
	h := testHold
	for _, r := range []ForwardReply{
		{Reply: escrow.Reply{Kind: escrow.CmdHold, Hold: &h}},
		{Reply: escrow.Reply{Kind: escrow.CmdHold, Hold: &h, Replayed: true}},
		{Reply: escrow.Reply{Kind: escrow.CmdHold, Err: &escrow.Error{Code: escrow.CodeInsufficientStock, Detail: "d", SKU: "A", Available: 0}}},
	} {
		b, err := EncodeForwardReply(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := DecodeForwardReply(b); err != nil || !reflect.DeepEqual(r, out) {
			t.Fatalf("hold reply: got %+v, %v; want %+v", out, err, r)
		}
	}
	// A routed answer to a routed hold would send it on again: refused.
	b, err = EncodeForwardReply(nil, &ForwardReply{Reply: escrow.Reply{Kind: escrow.CmdHold,
		Err: &escrow.Error{Code: escrow.CodeRouted, Owner: "ap"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeForwardReply(b); !errors.Is(err, ErrCodec) {
		t.Fatalf("routed reply decoded: %v", err)
	}
}

// TestForwardCodecV1Layout pins the encoding of operations on a hold to the
// layout they had before routed holds, so that regions of both builds
// still forward them to each other.
func TestForwardCodecV1Layout(t *testing.T) {
	for _, k := range []escrow.CommandKind{escrow.CmdGet, escrow.CmdConfirm, escrow.CmdRelease, escrow.CmdExtend} {
		want := []byte("hf\x01Q\x02us")
		want = append(want, byte(k), byte(len(testHold.ID)))
		want = append(want, testHold.ID...)
		want = binary.AppendUvarint(want, uint64(90*time.Second))
		got, err := EncodeForwardRequest(nil, &ForwardRequest{From: "us", Cmd: escrow.Command{Kind: k, HoldID: testHold.ID, TTL: 90 * time.Second}})
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: encoded %q, %v; want %q", k, got, err, want)
		}
	}
}

func FuzzDecodeForwardRequest(f *testing.F) {
	for _, k := range []escrow.CommandKind{escrow.CmdGet, escrow.CmdExtend} {
		b, _ := EncodeForwardRequest(nil, &ForwardRequest{From: "us", Cmd: escrow.Command{Kind: k, HoldID: testHold.ID, TTL: time.Minute}})
		f.Add(b)
	}
	b, _ := EncodeForwardRequest(nil, &ForwardRequest{From: "us", Cmd: routedHold()})
	f.Add(b)
	f.Add(rawHoldRequest("", []escrow.Line{{SKU: "A", Qty: 1}}, 1, "", "", 0))
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
		{Reply: escrow.Reply{Kind: escrow.CmdHold, Hold: &h}},
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

// TestForwardReplyFencedAndCapacity: a region that is fenced (or on
// probation) or at its maximum of holds answers a forwarded command with
// that code, and the caller must get it as sent: the region runtime serves
// a routed hold locally when its home answers "fenced", and a client must
// see "fenced" or "hold-capacity", not "owner unreachable".
func TestForwardReplyFencedAndCapacity(t *testing.T) {
	for _, r := range []ForwardReply{
		{Reply: escrow.Reply{Kind: escrow.CmdHold, Err: &escrow.Error{Code: escrow.CodeFenced, Detail: "region us is on probation"}}},
		{Reply: escrow.Reply{Kind: escrow.CmdConfirm, Err: &escrow.Error{Code: escrow.CodeFenced, Detail: "region us is fenced"}}},
		{Reply: escrow.Reply{Kind: escrow.CmdHold, Err: &escrow.Error{Code: escrow.CodeHoldCapacity, Detail: "max holds"}}},
	} {
		b, err := EncodeForwardReply(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := DecodeForwardReply(b); err != nil || !reflect.DeepEqual(r, out) {
			t.Fatalf("%s reply: got %+v, %v; want %+v", r.Reply.Err.Code, out, err, r)
		}
	}
}

// TestForwardCodecLocationRoutedHold: a routed hold keeps its lines'
// eligible locations and split flags; truncations and bad ids are refused.
func TestForwardCodecLocationRoutedHold(t *testing.T) {
	in := ForwardRequest{From: "us", Cmd: routedHold()}
	in.Cmd.Locations = []escrow.LineLocations{{SKU: in.Cmd.Lines[0].SKU, Locations: []string{"eu-berlin", "eu-paris"}, Split: true}}
	b, err := EncodeForwardRequest(nil, &in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeForwardRequest(b)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("routed hold with locations: got %+v, %v; want %+v", out, err, in)
	}
	for i := range b {
		if _, err := DecodeForwardRequest(b[:i]); !errors.Is(err, ErrCodec) {
			t.Fatalf("truncated to %d of %d bytes: %v", i, len(b), err)
		}
	}
	bad := in
	bad.Cmd.Locations = []escrow.LineLocations{{SKU: "A", Locations: []string{"Berlin"}}}
	if b, err := EncodeForwardRequest(nil, &bad); err == nil {
		if _, err := DecodeForwardRequest(b); !errors.Is(err, ErrCodec) {
			t.Fatalf("a bad location id was accepted: %v", err)
		}
	}
}
