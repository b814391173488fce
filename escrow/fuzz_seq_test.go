package escrow

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// FuzzMessageSequence feeds a node SEQUENCES of decoded peer messages,
// interleaved with holds, releases and the passage of time, and checks the
// node's invariants after every step: no panic, available never negative
// and never wrapped, the own row returning no more than it reserved, the
// units of the live holds equal to the own row's held count (local
// conservation: forged peer rows cannot conserve globally, but they must
// not bend the node's own books), and no unit sent to a region outside the
// membership. A fence may only come from two of the two other members.
//
// The input is a list of frames: an op byte, then for op 0 a two-byte
// length and an encoded message (escrow's wire format), for op 1 a
// quantity byte (a hold of A or B), for op 2 a byte of 100ms steps of
// time, for op 3 nothing (release the oldest live hold).
//
//	go test ./escrow -run '^$' -fuzz FuzzMessageSequence -fuzztime 60s
func FuzzMessageSequence(f *testing.F) {
	for _, seq := range attackSequences() {
		f.Add(seq)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, now := fuzzNode(t)
		var live []string
		var req uint64
		fenceVoices := map[string]bool{}
		for step := 0; len(b) > 0 && step < 256; step++ {
			op := b[0] % 4
			b = b[1:]
			in := Input{Now: now}
			switch op {
			case 0:
				if len(b) < 2 {
					return
				}
				k := int(binary.BigEndian.Uint16(b))
				b = b[2:]
				if k > len(b) {
					return
				}
				m, err := DecodeMessage(b[:k])
				b = b[k:]
				if err != nil {
					continue
				}
				in.Msg = &m
				if m.Type == MsgDigest || m.Type == MsgRepairReq {
					fenceVoices[m.From] = true
				}
			case 1:
				if len(b) < 1 {
					return
				}
				sku := "A"
				if b[0]&0x80 != 0 {
					sku = "B"
				}
				req++
				in.Cmd = &Command{Kind: CmdHold, ReqID: req, Lines: []Line{{SKU: sku, Qty: uint64(b[0]&7) + 1}}}
				b = b[1:]
			case 2:
				if len(b) < 1 {
					return
				}
				now = now.Add(time.Duration(b[0]) * 100 * time.Millisecond)
				in.Now = now
				b = b[1:]
			case 3:
				if len(live) == 0 {
					continue
				}
				req++
				in.Cmd = &Command{Kind: CmdRelease, ReqID: req, HoldID: live[0]}
				live = live[1:]
			}
			_ = n.Step(in)
			rd := n.Ready()
			for _, r := range rd.Reply {
				if r.Kind == CmdHold && r.Err == nil && r.Hold != nil && !r.Replayed {
					live = append(live, r.Hold.ID)
				}
			}
			n.Advance()
			checkNodeInvariants(t, n)
			if f := n.Fence(); f.Fenced && !f.Probation {
				voices := strings.Split(f.Voices, ",")
				if len(voices) < 2 {
					t.Fatalf("fenced by %v: fewer than two voices", f.Voices)
				}
				for _, v := range voices {
					if !fenceVoices[v] || !slices.Contains(n.cfg.Members, v) || v == n.cfg.Region {
						t.Fatalf("fenced by %v: %s never claimed or is not a peer member", f.Voices, v)
					}
				}
			}
		}
	})
}

func fuzzNode(t *testing.T) (*Node, time.Time) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n, err := NewNode(Config{Region: "eu", Members: []string{"ap", "eu", "us"}, MaxPeerSKUs: 64,
		DigestInterval: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []Command{{Kind: CmdRestock, SKU: "A", Qty: 10}, {Kind: CmdRestock, SKU: "B", Qty: 3}} {
		c.ReqID = uint64(1000 + i)
		if err := n.Step(Input{Now: now, Cmd: &c}); err != nil {
			t.Fatal(err)
		}
	}
	n.Ready()
	n.Advance()
	return n, now
}

// checkNodeInvariants checks what no peer input may break at a node.
func checkNodeInvariants(t *testing.T, n *Node) {
	t.Helper()
	held := map[string]uint64{}
	for _, h := range n.holds.all() {
		if h.State == Held {
			for _, l := range h.Lines {
				held[l.SKU] += l.Qty
			}
		}
	}
	if n.stats.PeerSKUs > uint64(n.cfg.MaxPeerSKUs) {
		t.Fatalf("learned %d SKUs from peers, limit %d", n.stats.PeerSKUs, n.cfg.MaxPeerSKUs)
	}
	for name, s := range n.skus {
		a := s.availableOf(n.cfg.Region)
		if a < 0 || a >= 4*maxCounter {
			t.Fatalf("available(%s, %s) = %d", n.cfg.Region, name, a)
		}
		if u := n.skuSums(s, nil); !u.fits() {
			t.Fatalf("sums of %s out of bounds: %+v", name, u)
		}
		for _, rec := range s.list {
			if !slices.Contains(n.cfg.Members, rec.Region) {
				t.Fatalf("row of non-member %s stored for %s", rec.Region, name)
			}
		}
		if s.own == nil {
			if held[name] != 0 {
				t.Fatalf("%d units of %s in holds without an own row", held[name], name)
			}
			continue
		}
		r := &s.own.Row
		if r.Released+r.Sold > r.Reserved {
			t.Fatalf("own row %s returns more than it reserved: %+v", name, r)
		}
		if r.Held() != held[name] {
			t.Fatalf("own row %s holds %d units, live holds %d", name, r.Held(), held[name])
		}
		for _, tr := range r.Sent {
			if !slices.Contains(n.cfg.Members, tr.To) {
				t.Fatalf("own row %s sent %d units to non-member %s", name, tr.Qty, tr.To)
			}
		}
	}
}

// attackSequences encodes the forged inputs of the zero-trust issue's
// table (and some honest traffic around them) as fuzz seeds.
func attackSequences() [][]byte {
	enc := func(frames ...any) []byte {
		var out []byte
		for _, fr := range frames {
			switch v := fr.(type) {
			case Message:
				b, err := EncodeMessage(nil, &v)
				if err != nil {
					panic(fmt.Sprintf("seed %+v: %v", v, err))
				}
				out = append(out, 0)
				out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
				out = append(out, b...)
			case hold:
				out = append(out, 1, byte(v))
			case wait:
				out = append(out, 2, byte(v))
			case release:
				out = append(out, 3)
			}
		}
		return out
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wrap []any
	for i := 0; i < 130 && len(wrap) < 60; i++ {
		r := "ap"
		if i%2 == 1 {
			r = "us"
		}
		wrap = append(wrap, Message{Type: MsgRows, From: r, Seq: uint64(i + 1), PrevSeq: uint64(i),
			Rows: []Row{{SKU: "A", Region: r, Seq: uint64(i + 1), Sent: []Transfer{{To: "eu", Qty: maxCounter - 1 - uint64(i)}}}}})
	}
	var skus []SKUDigest
	for i := 0; i < 200; i++ {
		skus = append(skus, SKUDigest{SKU: fmt.Sprintf("s%03d", i), Available: 1})
	}
	seen := func(from string, seq uint64) Message {
		return Message{Type: MsgDigest, From: from, Seq: 1, Seen: []RegionSeq{{Region: "eu", Seq: seq}}}
	}
	return [][]byte{
		enc(append([]any{hold(5)}, wrap...)...),
		enc(Message{Type: MsgRows, From: "zz", Seq: 1, Rows: []Row{{SKU: "B", Region: "zz", Seq: 1, Sent: []Transfer{{To: "eu", Qty: 1000}}}}},
			hold(7), hold(0x87), hold(0x87)),
		enc(seen("ap", 1<<40), hold(3), Message{Type: MsgRepairReq, From: "ap", To: "eu", Seq: 1 << 40}, hold(2), seen("us", 1<<40), hold(1)),
		enc(Message{Type: MsgAdvice, From: "rb", Epoch: uint64(t0.UnixMilli()), Moves: []Move{{SKU: "A", From: "eu", To: "zz", Qty: 5}},
			Homes: []Home{{SKU: "A", Region: "zz"}}}, wait(50), hold(4)),
		enc(Message{Type: MsgAdvice, From: "rb", Epoch: uint64(t0.Add(59 * time.Second).UnixMilli())}, wait(200),
			Message{Type: MsgAdvice, From: "rb", Epoch: uint64(t0.Add(20 * time.Second).UnixMilli()), Moves: []Move{{SKU: "A", From: "eu", To: "us", Qty: 2}}}),
		enc(Message{Type: MsgDigest, From: "us", Seq: 1, Digest: skus[:100]}, Message{Type: MsgDigest, From: "ap", Seq: 1, Digest: skus[100:]}, hold(1)),
		enc(hold(3), hold(2), wait(10), release{}, Message{Type: MsgBorrowReq, From: "us", To: "eu", ID: 9, SKU: "A", Qty: 4, Urgent: true}, hold(6), wait(255), wait(255), release{}),
	}
}

type (
	hold    byte
	wait    byte
	release struct{}
)

// TestAttackSequences runs the seeds of FuzzMessageSequence as a plain test
// (go test runs seeds anyway; this names what each shows).
func TestAttackSequencesEncode(t *testing.T) {
	seqs := attackSequences()
	lens := make([]int, len(seqs))
	for i, s := range seqs {
		lens[i] = len(s)
	}
	sort.Ints(lens)
	if lens[0] == 0 {
		t.Fatal("an empty seed")
	}
}
