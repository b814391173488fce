package escrow

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
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
		{Type: MsgDigest, From: "eu", Seq: 99, Seen: []RegionSeq{{Region: "ap", Seq: 3}, {Region: "us", Seq: 1 << 40}}, Fenced: true},
		{Type: MsgAdvice, From: "rebalancer", Epoch: 3, Moves: []Move{{SKU: "sku-1", From: "eu", To: "us", Qty: 10}}},
		{Type: MsgAdvice, From: "rebalancer", Epoch: 4, Moves: []Move{{SKU: "sku-1", From: "eu", To: "us", Qty: 10}},
			Homes: []Home{{SKU: "sku-1", Region: "eu"}, {SKU: "sku-2", Region: "us"}}},
		{Type: MsgAdvice, From: "rebalancer", Epoch: 5, Homes: []Home{{SKU: "sku-3", Region: "ap"}}},
		// Version 3: location keys (locations_wire.go).
		{Type: MsgRows, From: "eu", PrevSeq: 7, Seq: 8, Speaks: WireVersion,
			Rows: []Row{{SKU: StockKey("sku-1", "eu-berlin"), Region: "eu", Seq: 8, Minted: 4, Sent: []Transfer{{To: "us", Qty: 1}}}}},
		{Type: MsgBorrowReq, From: "us", To: "eu", ID: 9, SKU: StockKey("sku-1", "eu-paris"), Qty: 2, Speaks: WireVersion},
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
	// Found by the fuzzer: a peer claiming a later wire version (48).
	f.Add([]byte("hf\x03M0\x03\x0200\x0200000\x00\x0e00000\x1f0000000000\x00\x00\x00"))
	f.Add([]byte{'h', 'f', 1, 'M', 1, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrWire) && !errors.Is(err, ErrWireVersion) {
				t.Fatalf("error %v wraps neither ErrWire nor ErrWireVersion", err)
			}
			return
		}
		if m.Speaks > WireVersion {
			// A peer of a later release says it speaks more than this
			// build: accepted (rolling upgrades), but this build never
			// writes such a claim, so there is no round trip to check.
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
	if _, err := DecodeMessage(append([]byte{'h', 'f', WireVersion + 1}, b[3:]...)); !errors.Is(err, ErrWireVersion) {
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

// TestWireHomes: the homes section of an advice round-trips; a message
// without homes encodes exactly as before homes existed (no flag, no
// section), so older regions still read it; a homes flag without homes and
// more than MaxWireHomes homes are refused.
func TestWireHomes(t *testing.T) {
	enc := func(m Message) []byte {
		t.Helper()
		b, err := EncodeMessage(nil, &m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	adv := Message{Type: MsgAdvice, From: "rebalancer", Epoch: 1_700_000_000_123,
		Moves: []Move{{SKU: "sku-1", From: "eu", To: "us", Qty: 10}}}
	// Encoded by the codec as it was before homes (git bd538b2~1).
	golden := map[string]struct {
		m   Message
		hex string
	}{
		"advice": {adv, "6866014d060a726562616c616e63657200000000000000fbd095ffbc3100000105736b752d310265750275730a"},
		"digest": {Message{Type: MsgDigest, From: "eu", Seq: 99, Digest: []SKUDigest{{SKU: "sku-1", Available: 5, Held: 2, DemandMilli: 1500, Rejected: 1}}},
			"6866014d050265750000630000000000000105736b752d310502dc0b0100"},
		"urgent borrow": {Message{Type: MsgBorrowReq, From: "us", To: "eu", ID: 1 << 40, SKU: "sku-1", Qty: 3, Urgent: true},
			"6866014d0302757302657580808080802000000205736b752d310300000000"},
	}
	for name, g := range golden {
		if got := hex.EncodeToString(enc(g.m)); got != g.hex {
			t.Errorf("%s encodes as\n%s\nbefore homes it was\n%s", name, got, g.hex)
		}
	}
	empty := adv
	empty.Homes = []Home{} // empty, not nil: still no section
	if got := hex.EncodeToString(enc(empty)); got != golden["advice"].hex {
		t.Errorf("advice with an empty homes slice encodes as %s", got)
	}

	withHomes := adv
	withHomes.Homes = []Home{{SKU: "sku-1", Region: "eu"}, {SKU: strings.Repeat("x", MaxSKULen), Region: strings.Repeat("r", MaxRegionLen)}}
	b := enc(withHomes)
	got, err := DecodeMessage(b)
	if err != nil || !reflect.DeepEqual(got, withHomes) {
		t.Fatalf("round trip with homes: %+v, %v", got, err)
	}
	// The same bytes as without homes, but for the flag and the section
	// after the moves. Flags: after magic, version, kind, type, from, to
	// (empty), id, seq and prev seq (0: one byte each).
	want := enc(adv)
	want[4+1+1+len(adv.From)+1+3] |= flagHomes
	want = binary.AppendUvarint(want, uint64(len(withHomes.Homes)))
	for _, h := range withHomes.Homes {
		want = binary.AppendUvarint(want, uint64(len(h.SKU)))
		want = append(want, h.SKU...)
		want = binary.AppendUvarint(want, uint64(len(h.Region)))
		want = append(want, h.Region...)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("advice with homes encodes as\n%x\nwant\n%x", b, want)
	}

	// The flags byte follows the header, type, from, to, id, seq, prev seq.
	head := func(flags byte) []byte {
		x := []byte{'h', 'f', 1, 'M', byte(MsgAdvice), 2, 'r', 'b', 0, 0, 0, 0, flags, 0, 0, 1, 0, 0, 0}
		return x
	}
	if _, err := DecodeMessage(head(0)); err != nil {
		t.Fatalf("hand-built advice without homes refused: %v", err)
	}
	homes := func(n int) []byte {
		x := binary.AppendUvarint(head(flagHomes), uint64(n))
		for i := 0; i < n; i++ {
			x = append(x, 1, 'A', 2, 'e', 'u')
		}
		return x
	}
	if m, err := DecodeMessage(homes(1)); err != nil || !reflect.DeepEqual(m.Homes, []Home{{"A", "eu"}}) {
		t.Fatalf("hand-built advice with one home: %+v, %v", m.Homes, err)
	}
	for name, in := range map[string][]byte{
		"homes flag without homes":      homes(0),
		"homes flag without a section":  head(flagHomes),
		"over MaxWireHomes":             homes(MaxWireHomes + 1),
		"home cut short":                homes(1)[:len(homes(1))-1],
		"home region over MaxRegionLen": append(append(binary.AppendUvarint(head(flagHomes), 1), 1, 'A', MaxRegionLen+1), strings.Repeat("r", MaxRegionLen+1)...),
	} {
		if _, err := DecodeMessage(in); !errors.Is(err, ErrWire) {
			t.Errorf("%s: error %v, want a wire error", name, err)
		}
	}
	if _, err := DecodeMessage(homes(MaxWireHomes)); err != nil {
		t.Errorf("MaxWireHomes homes refused: %v", err)
	}
	big := adv
	big.Homes = make([]Home, MaxWireHomes+1)
	if _, err := EncodeMessage(nil, &big); err == nil {
		t.Error("advice over MaxWireHomes encoded")
	}
}
