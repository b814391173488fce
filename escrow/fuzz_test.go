package escrow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Seed corpora run in plain `go test`; `go test -fuzz=FuzzX ./escrow/`
// explores further (see README).

func sampleMessages() []Message {
	row := Row{SKU: "sku-1", Region: "eu", Seq: 7, Minted: 100, Reserved: 50, Released: 10, Sold: 20, Shrunk: 3,
		Sent: []Transfer{{To: "ap", Qty: 4}, {To: "us", Qty: 9}}}
	return []Message{
		{Type: MsgRows, From: "eu", PrevSeq: 5, Seq: 7, Rows: []Row{row, {SKU: "b", Region: "eu", Seq: 6}}},
		{Type: MsgRows, From: "eu", To: "us", PrevSeq: 0, Seq: 3, More: true, Rows: []Row{row}},
		{Type: MsgRepairReq, From: "us", To: "eu", Seq: 12},
		{Type: MsgBorrowReq, From: "us", To: "eu", ID: 1 << 40, SKU: "sku-1", Qty: 3, Urgent: true},
		{Type: MsgBorrowResp, From: "eu", To: "us", ID: 1 << 40, SKU: "sku-1", Qty: 3, Rows: []Row{row}},
		{Type: MsgDigest, From: "eu", Seq: 99, Digest: []SKUDigest{{SKU: "sku-1", Available: 5, Held: 2, DemandMilli: 1500, Rejected: 1}}},
		{Type: MsgAdvice, From: "rebalancer", Epoch: 3, Moves: []Move{{SKU: "sku-1", From: "eu", To: "us", Qty: 10}}},
	}
}

func sampleHold() Hold {
	return Hold{ID: "eu-01hf7yat00s6xyv3d6", Lines: []Line{{SKU: "A", Qty: 2}, {SKU: "B", Qty: 1}}, State: Confirmed,
		Created: t0, Expires: t0.Add(10 * time.Minute), MaxExpires: t0.Add(time.Hour), Updated: t0.Add(time.Minute),
		IdemKey: "cart-7", Meta: `{"user":"u1"}`}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := EncodeMessage(nil, &m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte("hfM"))
	f.Add([]byte{'h', 'f', 2, 'M'})
	f.Add([]byte{'h', 'f', 1, 'M', 1, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrWire) && !errors.Is(err, ErrWireVersion) {
				t.Fatalf("error %v wraps neither ErrWire nor ErrWireVersion", err)
			}
			return
		}
		out, err := EncodeMessage(nil, &m)
		if err != nil {
			t.Fatalf("accepted message does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", b, out)
		}
		m2, err := DecodeMessage(out)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("decode(encode(m)) = %+v, %v; want %+v", m2, err, m)
		}
		// An accepted message never crashes a node (it may be refused).
		n, err := NewNode(Config{Region: "eu", DigestInterval: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = n.Step(Input{Now: t0, Cmd: &Command{Kind: CmdRestock, SKU: "sku-1", Qty: 5}})
		_ = n.Step(Input{Now: t0, Msg: &m})
		_ = n.Ready()
	})
}

func FuzzDecodeRow(f *testing.F) {
	for _, m := range sampleMessages() {
		for i := range m.Rows {
			b := EncodeRow(nil, &m.Rows[i])
			f.Add(b)
			f.Add(b[:len(b)-1])
		}
	}
	f.Add([]byte{'h', 'f', 1, 'R'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRow(b)
		if err != nil {
			if !errors.Is(err, ErrWire) && !errors.Is(err, ErrWireVersion) {
				t.Fatalf("error %v wraps neither ErrWire nor ErrWireVersion", err)
			}
			return
		}
		if out := EncodeRow(nil, &r); !bytes.Equal(out, b) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", b, out)
		}
		if r.Held() > r.Reserved {
			t.Fatalf("accepted row with negative held: %+v", r)
		}
		for i := 1; i < len(r.Sent); i++ {
			if r.Sent[i-1].To >= r.Sent[i].To {
				t.Fatalf("accepted unsorted sent: %+v", r.Sent)
			}
		}
	})
}

func FuzzDecodeHold(f *testing.F) {
	h := sampleHold()
	b := EncodeHold(nil, &h)
	f.Add(b)
	f.Add(b[:len(b)-3])
	h.State = Held
	h.Lines = h.Lines[:1]
	h.IdemKey, h.Meta = "", ""
	f.Add(EncodeHold(nil, &h))
	f.Add([]byte{'h', 'f', 1, 'H'})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHold(b)
		if err != nil {
			if !errors.Is(err, ErrWire) && !errors.Is(err, ErrWireVersion) {
				t.Fatalf("error %v wraps neither ErrWire nor ErrWireVersion", err)
			}
			return
		}
		if out := EncodeHold(nil, &h); !bytes.Equal(out, b) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", b, out)
		}
		lines, lerr := NormalizeLines(h.Lines)
		if lerr != nil || !reflect.DeepEqual(lines, h.Lines) {
			t.Fatalf("accepted lines %+v (%v)", h.Lines, lerr)
		}
		if _, err := OwnerOf(h.ID); err != nil {
			t.Fatalf("accepted id %q", h.ID)
		}
		// A stored hold restores a node without a panic.
		owner, _ := OwnerOf(h.ID)
		_, _ = NewNode(Config{Region: owner}, &State{Holds: []Hold{h}})
	})
}

// fuzzRow builds a valid row of writer "eu" for SKU "A" from a PRNG.
func fuzzRow(r *rand.Rand, big bool) Row {
	lim := uint64(8)
	if big {
		lim = maxCounter - 1
	}
	v := func() uint64 { return r.Uint64N(lim + 1) }
	row := Row{SKU: "A", Region: "eu", Seq: v(), Minted: v(), Reserved: v(), Released: v(), Sold: v(), Shrunk: v()}
	for _, to := range []string{"ap", "sa", "us"} {
		if q := v(); q > 0 && r.IntN(2) == 0 {
			row.Sent = append(row.Sent, Transfer{To: to, Qty: q})
		}
	}
	return row
}

func merged(a, b Row) Row {
	c := a.Clone()
	c.Merge(&b)
	return c
}

func FuzzMerge(f *testing.F) {
	f.Add(uint64(1), uint64(2), false)
	f.Add(uint64(3), uint64(4), true)
	f.Add(uint64(0), uint64(0), false)
	f.Fuzz(func(t *testing.T, s1, s2 uint64, big bool) {
		r := rand.New(rand.NewPCG(s1, s2))
		a, b, c := fuzzRow(r, big), fuzzRow(r, big), fuzzRow(r, big)
		if ab, ba := merged(a, b), merged(b, a); !ab.Equal(&ba) {
			t.Fatalf("not commutative:\n%+v\n%+v", ab, ba)
		}
		if l, rr := merged(merged(a, b), c), merged(a, merged(b, c)); !l.Equal(&rr) {
			t.Fatalf("not associative:\n%+v\n%+v", l, rr)
		}
		aa := a.Clone()
		if aa.Merge(&a) || !aa.Equal(&a) {
			t.Fatalf("not idempotent: %+v", aa)
		}
		ab := a.Clone()
		changed := ab.Merge(&b)
		if !rowLE(&a, &ab) || !rowLE(&b, &ab) {
			t.Fatalf("merge is not an upper bound: %+v", ab)
		}
		if changed == ab.Equal(&a) {
			t.Fatalf("Merge reported changed=%v for %+v -> %+v", changed, a, ab)
		}
		for i := 1; i < len(ab.Sent); i++ {
			if ab.Sent[i-1].To >= ab.Sent[i].To {
				t.Fatalf("merge broke the order of Sent: %+v", ab.Sent)
			}
		}
		// Merge never aliases: changing the input later leaves the result.
		if len(b.Sent) > 0 {
			before := ab.Clone()
			b.Sent[0].Qty += 1000
			if !ab.Equal(&before) {
				t.Fatal("merge result aliases its input")
			}
		}
	})
}

// TestDecodeRejects lists inputs every decoder must refuse.
func TestDecodeRejects(t *testing.T) {
	good := sampleMessages()[0]
	enc := func(m Message) []byte {
		b, err := EncodeMessage(nil, &m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := enc(good)
	cases := map[string][]byte{
		"empty":          nil,
		"bad magic":      append([]byte("xx"), b[2:]...),
		"kind row":       append([]byte{'h', 'f', 1, 'R'}, b[4:]...),
		"trailing byte":  append(append([]byte(nil), b...), 0),
		"truncated":      b[:len(b)-1],
		"unknown type":   enc(Message{Type: 99, From: "eu"}),
		"zero type":      enc(Message{From: "eu"}),
		"bad from":       enc(Message{Type: MsgRows, From: "EU"}),
		"empty from":     enc(Message{Type: MsgRows}),
		"bad to":         enc(Message{Type: MsgRows, From: "eu", To: "u s"}),
		"bad sku":        enc(Message{Type: MsgBorrowReq, From: "eu", To: "us", SKU: "a\x00"}),
		"row bad region": enc(Message{Type: MsgRows, From: "eu", Rows: []Row{{SKU: "A", Region: "E"}}}),
		"row returns more": enc(Message{Type: MsgRows, From: "eu",
			Rows: []Row{{SKU: "A", Region: "eu", Reserved: 1, Released: 1, Sold: 1}}}),
		"row unsorted sent": enc(Message{Type: MsgRows, From: "eu",
			Rows: []Row{{SKU: "A", Region: "eu", Sent: []Transfer{{To: "us", Qty: 1}, {To: "ap", Qty: 1}}}}}),
		"row zero sent": enc(Message{Type: MsgRows, From: "eu",
			Rows: []Row{{SKU: "A", Region: "eu", Sent: []Transfer{{To: "us"}}}}}),
		"row sends to itself": enc(Message{Type: MsgRows, From: "eu",
			Rows: []Row{{SKU: "A", Region: "eu", Sent: []Transfer{{To: "eu", Qty: 1}}}}}),
		"counter too big": enc(Message{Type: MsgBorrowReq, From: "eu", Qty: maxCounter}),
		"newer version":   append([]byte{'h', 'f', 2}, b[3:]...),
		"huge count": func() []byte {
			x := []byte{'h', 'f', 1, 'M', byte(MsgRows), 2, 'e', 'u', 0, 0, 0, 0, 0, 0, 0, 0}
			return binary.AppendUvarint(x, 1<<40)
		}(),
		"overlong varint": {'h', 'f', 1, 'M', byte(MsgRows), 2, 'e', 'u', 0, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"too big":         make([]byte, MaxMessageBytes+1),
	}
	for name, in := range cases {
		if _, err := DecodeMessage(in); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrWire) && !errors.Is(err, ErrWireVersion) {
			t.Errorf("%s: error %v is not a wire error", name, err)
		}
	}
	if _, err := DecodeMessage(append([]byte{'h', 'f', 2}, b[3:]...)); !errors.Is(err, ErrWireVersion) {
		t.Errorf("newer version: %v", err)
	}
	// Encoding refuses what decoding would refuse for size.
	big := Message{Type: MsgRows, From: "eu", Rows: make([]Row, MaxWireRows+1)}
	if _, err := EncodeMessage(nil, &big); err == nil {
		t.Error("oversized message encoded")
	}
	long := Message{Type: MsgDigest, From: "eu"}
	for i := 0; i < MaxWireDigest; i++ {
		long.Digest = append(long.Digest, SKUDigest{SKU: strings.Repeat("x", MaxSKULen)})
	}
	if _, err := EncodeMessage(nil, &long); err != nil {
		t.Errorf("a digest within limits: %v", err)
	}
	// Holds.
	h := sampleHold()
	hb := EncodeHold(nil, &h)
	h2, err := DecodeHold(hb)
	if err != nil || !reflect.DeepEqual(h, h2) {
		t.Fatalf("hold round trip: %+v %v", h2, err)
	}
	for name, bad := range map[string]Hold{
		"bad state":      {ID: h.ID, State: 9, Lines: h.Lines},
		"no lines":       {ID: h.ID, State: Held},
		"bad id":         {ID: "x", State: Held, Lines: h.Lines},
		"duplicate sku":  {ID: h.ID, State: Held, Lines: []Line{{SKU: "A", Qty: 1}, {SKU: "A", Qty: 1}}},
		"unsorted lines": {ID: h.ID, State: Held, Lines: []Line{{SKU: "B", Qty: 1}, {SKU: "A", Qty: 1}}},
		"zero qty":       {ID: h.ID, State: Held, Lines: []Line{{SKU: "A"}}},
	} {
		if _, err := DecodeHold(EncodeHold(nil, &bad)); err == nil {
			t.Errorf("hold %s: accepted", name)
		}
	}
}
