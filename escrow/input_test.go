package escrow

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestBadInput: every malformed or impossible command gets a typed error
// with a message and leaves rows, holds, known SKUs and the sequence as
// they were, and asks nothing to be persisted or sent.
func TestBadInput(t *testing.T) {
	many := make([]Line, MaxLines+1)
	for i := range many {
		many[i] = l("S"+utoa(uint64(i)), 1)
	}
	hundred := many[:MaxLines]
	_ = hundred
	cases := []struct {
		name string
		cmd  Command
		code Code
	}{
		{"no lines", Command{Kind: CmdHold}, CodeInvalid},
		{"zero qty", Command{Kind: CmdHold, Lines: []Line{l("A", 0)}}, CodeInvalid},
		{"negative qty as huge", Command{Kind: CmdHold, Lines: []Line{l("A", uint64(1<<64-1))}}, CodeInvalid},
		{"absurd qty", Command{Kind: CmdHold, Lines: []Line{l("A", MaxQty+1)}}, CodeInvalid},
		{"duplicate lines summing past the limit", Command{Kind: CmdHold, Lines: []Line{l("A", MaxQty), l("A", 1)}}, CodeInvalid},
		{"too many lines", Command{Kind: CmdHold, Lines: many}, CodeInvalid},
		{"empty sku", Command{Kind: CmdHold, Lines: []Line{l("", 1)}}, CodeInvalid},
		{"long sku", Command{Kind: CmdHold, Lines: []Line{l(strings.Repeat("x", MaxSKULen+1), 1)}}, CodeInvalid},
		{"nul in sku", Command{Kind: CmdHold, Lines: []Line{l("A\x00", 1)}}, CodeInvalid},
		{"newline in sku", Command{Kind: CmdHold, Lines: []Line{l("A\n", 1)}}, CodeInvalid},
		{"bad utf-8 sku", Command{Kind: CmdHold, Lines: []Line{l("A\xff", 1)}}, CodeInvalid},
		{"bad line among good", Command{Kind: CmdHold, Lines: []Line{l("A", 1), l("B", 0)}}, CodeInvalid},
		{"long metadata", Command{Kind: CmdHold, Lines: []Line{l("A", 1)}, Meta: strings.Repeat("m", MaxMetaLen+1)}, CodeInvalid},
		{"long idempotency key", Command{Kind: CmdHold, Lines: []Line{l("A", 1)}, IdemKey: strings.Repeat("k", MaxIdemKeyLen+1)}, CodeInvalid},
		{"space in idempotency key", Command{Kind: CmdHold, Lines: []Line{l("A", 1)}, IdemKey: "a b"}, CodeInvalid},
		{"unknown sku", Command{Kind: CmdHold, Lines: []Line{l("nope", 1)}}, CodeUnknownSKU},
		{"unknown sku in a cart", Command{Kind: CmdHold, Lines: []Line{l("A", 1), l("nope", 1)}}, CodeUnknownSKU},
		{"insufficient stock", Command{Kind: CmdHold, Lines: []Line{l("A", 11)}}, CodeInsufficientStock},
		{"unknown hold", Command{Kind: CmdConfirm, HoldID: "eu-0000000000000000zz"}, CodeNotFound},
		{"unknown hold get", Command{Kind: CmdGet, HoldID: "eu-01234567890123456789abcdef"[:21]}, CodeNotFound},
		{"empty hold id", Command{Kind: CmdGet}, CodeInvalid},
		{"hold id without suffix", Command{Kind: CmdRelease, HoldID: "eu-"}, CodeInvalid},
		{"hold id without region", Command{Kind: CmdRelease, HoldID: "-0000"}, CodeInvalid},
		{"hold id without dash", Command{Kind: CmdRelease, HoldID: "eu0000"}, CodeInvalid},
		{"upper-case region", Command{Kind: CmdExtend, HoldID: "EU-0000", TTL: time.Minute}, CodeInvalid},
		{"not base32", Command{Kind: CmdExtend, HoldID: "eu-000u", TTL: time.Minute}, CodeInvalid},
		{"long hold id", Command{Kind: CmdGet, HoldID: "eu-" + strings.Repeat("0", 100)}, CodeInvalid},
		{"unknown command", Command{Kind: CommandKind(99)}, CodeInvalid},
		{"zero command", Command{}, CodeInvalid},
		{"restock zero", Command{Kind: CmdRestock, SKU: "A"}, CodeInvalid},
		{"restock absurd", Command{Kind: CmdRestock, SKU: "A", Qty: MaxQty + 1}, CodeInvalid},
		{"restock bad sku", Command{Kind: CmdRestock, SKU: "\x01", Qty: 1}, CodeInvalid},
		{"write-off zero", Command{Kind: CmdWriteOff, SKU: "A"}, CodeInvalid},
		{"write-off unknown sku", Command{Kind: CmdWriteOff, SKU: "nope", Qty: 1}, CodeUnknownSKU},
		{"write-off bad sku", Command{Kind: CmdWriteOff, SKU: "", Qty: 1}, CodeInvalid},
		{"stock unknown sku", Command{Kind: CmdStock, SKU: "nope"}, CodeUnknownSKU},
		{"stock bad sku", Command{Kind: CmdStock, SKU: strings.Repeat("x", 200)}, CodeInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTNode(t, Config{})
			tn.restock("A", 10)
			tn.restock("B", 10)
			h := tn.hold(l("A", 1))
			_ = h
			before := snap(tn.n)
			stats := tn.n.Stats()
			r := tn.do(tc.cmd)
			wantCode(t, tc.name, r.Err, tc.code)
			if r.Hold != nil || r.Applied != 0 {
				t.Fatalf("error reply carries a result: %+v", r)
			}
			if after := snap(tn.n); !reflect.DeepEqual(before, after) {
				t.Fatalf("state changed:\n%v\n%v", before, after)
			}
			if p := tn.last.Persist; !p.Empty() || len(tn.last.Send) != 0 {
				t.Fatalf("bad input asked to persist or send: %+v", tn.last)
			}
			if s := tn.n.Stats(); s.Granted != stats.Granted || s.ActiveHolds != stats.ActiveHolds {
				t.Fatalf("stats moved: %+v", s)
			}
		})
	}
}

func TestLimitsAccepted(t *testing.T) {
	tn := newTNode(t, Config{})
	lines := make([]Line, MaxLines)
	for i := range lines {
		sku := "S" + utoa(uint64(i))
		tn.restock(sku, 1)
		lines[i] = l(sku, 1)
	}
	long := strings.Repeat("é", MaxSKULen/2) // 128 bytes of printable UTF-8
	tn.restock(long, MaxQty)
	if h := tn.hold(lines...); len(h.Lines) != MaxLines {
		t.Fatalf("%d lines", len(h.Lines))
	}
	r := tn.do(Command{Kind: CmdHold, Lines: []Line{l(long, MaxQty)}, Meta: strings.Repeat("m", MaxMetaLen),
		IdemKey: strings.Repeat("k", MaxIdemKeyLen)})
	wantCode(t, "limits", r.Err, 0)
	if r.Hold.Meta != strings.Repeat("m", MaxMetaLen) || len(r.Hold.ID) > MaxHoldIDLen {
		t.Fatalf("hold %+v", r.Hold)
	}
	// The longest region name still gives ids within MaxHoldIDLen.
	long32 := strings.Repeat("z", MaxRegionLen)
	tl := newTNode(t, Config{Region: long32})
	tl.restock("A", 1)
	h := tl.hold(l("A", 1))
	if len(h.ID) > MaxHoldIDLen {
		t.Fatalf("id %q longer than %d", h.ID, MaxHoldIDLen)
	}
	if o, err := OwnerOf(h.ID); err != nil || o != long32 {
		t.Fatalf("OwnerOf(%q) = %q, %v", h.ID, o, err)
	}
}

// TestNotOwner: operations on another region's hold name the owner.
func TestNotOwner(t *testing.T) {
	for _, k := range []CommandKind{CmdGet, CmdConfirm, CmdRelease, CmdExtend} {
		tn := newTNode(t, Config{})
		tn.restock("A", 1)
		before := snap(tn.n)
		r := tn.do(Command{Kind: k, HoldID: "us_west-0000000000000000zz", TTL: time.Minute})
		wantCode(t, k.String(), r.Err, CodeNotOwner)
		if r.Err.Owner != "us_west" {
			t.Fatalf("%s: owner %q", k, r.Err.Owner)
		}
		if after := snap(tn.n); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s: state changed", k)
		}
	}
}

// TestHoldIDs: ids are region-prefixed, well formed, unique and sort by
// creation time.
func TestHoldIDs(t *testing.T) {
	tn := newTNode(t, Config{Region: "ap_south"})
	tn.restock("A", 1000)
	prev := ""
	seen := map[string]bool{}
	for i := 0; i < 500; i++ {
		if i%5 == 0 {
			tn.now = tn.now.Add(time.Millisecond)
		}
		h := tn.hold(l("A", 1))
		if o, err := OwnerOf(h.ID); err != nil || o != "ap_south" {
			t.Fatalf("OwnerOf(%q) = %q, %v", h.ID, o, err)
		}
		if seen[h.ID] {
			t.Fatalf("duplicate id %s", h.ID)
		}
		seen[h.ID] = true
		if i%5 == 0 && h.ID <= prev {
			t.Fatalf("id %s not after %s", h.ID, prev)
		}
		prev = h.ID
	}
}

// TestIdempotency covers retries with the same key: same body returns the
// original (Replayed), another body is refused, and the key expires.
func TestIdempotency(t *testing.T) {
	tn := newTNode(t, Config{IdemTTL: time.Hour, HoldRetain: 2 * time.Hour})
	tn.restock("A", 10)
	cmd := Command{Kind: CmdHold, Lines: []Line{l("A", 2)}, IdemKey: "cart-1", IdemHash: 42}
	r1 := tn.do(cmd)
	wantCode(t, "first", r1.Err, 0)
	if r1.Replayed {
		t.Fatal("first create marked replayed")
	}
	if len(tn.last.Persist.Idem) != 1 || tn.last.Persist.Idem[0].HoldID != r1.Hold.ID {
		t.Fatalf("idempotency key not persisted with the hold: %+v", tn.last.Persist)
	}
	before := snap(tn.n)
	tn.now = tn.now.Add(time.Minute)
	r2 := tn.do(cmd)
	wantCode(t, "retry", r2.Err, 0)
	if !r2.Replayed || r2.Hold.ID != r1.Hold.ID {
		t.Fatalf("retry: %+v", r2)
	}
	if after := snap(tn.n); !reflect.DeepEqual(before, after) {
		t.Fatal("retry changed state")
	}
	if !tn.last.Persist.Empty() {
		t.Fatalf("retry persisted %+v", tn.last.Persist)
	}
	// Another body under the same key.
	other := cmd
	other.IdemHash = 43
	wantCode(t, "reuse", tn.do(other).Err, CodeIdempotencyReuse)
	if after := snap(tn.n); !reflect.DeepEqual(before, after) {
		t.Fatal("reuse changed state")
	}
	// The replay shows the hold as it is now.
	tn.do(Command{Kind: CmdConfirm, HoldID: r1.Hold.ID})
	if r := tn.do(cmd); !r.Replayed || r.Hold.State != Confirmed {
		t.Fatalf("replay after confirm: %+v", r.Hold)
	}
	if tn.n.Available("A") != 8 {
		t.Fatal("replays reserved units")
	}
	// After IdemTTL the key is forgotten (and its deletion persisted): the
	// same key creates a new hold.
	tn.tick(time.Hour)
	if _, ok := tn.store.idem["cart-1"]; ok {
		t.Fatal("expired key still stored")
	}
	r3 := tn.do(cmd)
	if r3.Err != nil || r3.Replayed || r3.Hold.ID == r1.Hold.ID {
		t.Fatalf("after expiry: %+v", r3)
	}
	if tn.n.Available("A") != 6 {
		t.Fatalf("available %d", tn.n.Available("A"))
	}
	// Replay of an expired hold says expired.
	tn.now = tn.now.Add(10 * time.Minute)
	if r := tn.do(cmd); !r.Replayed || r.Hold.State != Expired {
		t.Fatalf("replay of an expired hold: %+v", r.Hold)
	}
	// A rejected create does not consume the key.
	k2 := Command{Kind: CmdHold, Lines: []Line{l("A", 100)}, IdemKey: "cart-2", IdemHash: 7}
	wantCode(t, "short", tn.do(k2).Err, CodeInsufficientStock)
	tn.restock("A", 100)
	if r := tn.do(k2); r.Err != nil || r.Replayed {
		t.Fatalf("retry after restock: %+v", r)
	}
}

// TestIdempotencySurvivesRestart: keys are durable with their holds.
func TestIdempotencySurvivesRestart(t *testing.T) {
	tn := newTNode(t, Config{})
	tn.restock("A", 10)
	cmd := Command{Kind: CmdHold, Lines: []Line{l("A", 2)}, IdemKey: "k", IdemHash: 1}
	r1 := tn.do(cmd)
	tn.restart()
	r2 := tn.do(cmd)
	if !r2.Replayed || r2.Hold.ID != r1.Hold.ID {
		t.Fatalf("after restart: %+v", r2)
	}
	if tn.n.Available("A") != 8 {
		t.Fatalf("available %d", tn.n.Available("A"))
	}
}

// TestIdemKeyReaddedSameReady: a key that expires and is used again within
// one Ready must survive in the store whatever the order of the batch.
func TestIdemKeyReaddedSameReady(t *testing.T) {
	for _, deletesFirst := range []bool{false, true} {
		tn := newTNode(t, Config{IdemTTL: time.Minute})
		tn.deletesFirst = deletesFirst
		cmd := Command{Kind: CmdHold, ReqID: 2, Lines: []Line{l("A", 1)}, IdemKey: "k", IdemHash: 1}
		tn.step(&Command{Kind: CmdRestock, ReqID: 1, SKU: "A", Qty: 5})
		tn.step(&cmd)
		tn.drain()
		tn.now = tn.now.Add(time.Minute)
		tn.step(nil) // the key expires
		cmd.ReqID = 3
		tn.step(&cmd) // and is used again, in the same Ready
		rs := tn.drain()
		e, ok := tn.store.idem["k"]
		if !ok || e.HoldID != rs[0].Hold.ID {
			t.Fatalf("deletesFirst=%v: stored key %+v ok=%v, want hold %s", deletesFirst, e, ok, rs[0].Hold.ID)
		}
	}
}

// TestRestockWriteOff: restock adds to Minted; write-off takes at most what
// is available (never held units) and reports what it applied.
func TestRestockWriteOff(t *testing.T) {
	tn := newTNode(t, Config{})
	r := tn.do(Command{Kind: CmdRestock, SKU: "A", Qty: 10})
	if r.Err != nil || r.Applied != 10 || r.Stock == nil || r.Stock.Available != 10 {
		t.Fatalf("restock: %+v", r)
	}
	h := tn.hold(l("A", 4))
	r = tn.do(Command{Kind: CmdWriteOff, SKU: "A", Qty: 2})
	if r.Err != nil || r.Applied != 2 || r.Stock.Available != 4 {
		t.Fatalf("write-off 2: %+v", r)
	}
	r = tn.do(Command{Kind: CmdWriteOff, SKU: "A", Qty: 100})
	if r.Err != nil || r.Applied != 4 || r.Stock.Available != 0 || r.Stock.Held != 4 {
		t.Fatalf("write-off 100: %+v %+v", r, r.Stock)
	}
	seq := tn.n.Seq()
	r = tn.do(Command{Kind: CmdWriteOff, SKU: "A", Qty: 1})
	if r.Err != nil || r.Applied != 0 {
		t.Fatalf("write-off of nothing: %+v", r)
	}
	if tn.n.Seq() != seq || len(tn.last.Persist.Rows) != 0 {
		t.Fatal("a write-off of nothing changed the row")
	}
	// The held units are still there for the hold.
	if r := tn.do(Command{Kind: CmdConfirm, HoldID: h.ID}); r.Err != nil {
		t.Fatal(r.Err)
	}
	v := tn.n.View("A")
	own := v["eu"]
	if own.Minted != 10 || own.Shrunk != 6 || own.Sold != 4 || v.Available("eu") != 0 {
		t.Fatalf("row %+v", *own)
	}
	if err := v.CheckConservation(); err != nil {
		t.Fatal(err)
	}
	r = tn.do(Command{Kind: CmdStock, SKU: "A"})
	if r.Err != nil || r.Stock.Sold != 4 || len(r.Stock.Regions) != 1 || r.Stock.Regions[0].Region != "eu" {
		t.Fatalf("stock: %+v", r.Stock)
	}
	// Restock of a new SKU creates it; the counters never overflow within
	// the limits (MaxQty per step).
	for i := 0; i < 3; i++ {
		tn.restock("B", MaxQty)
	}
	if tn.n.Available("B") != 3*MaxQty {
		t.Fatal("restocks do not add up")
	}
}

// TestRestoreRejectsBadState: a store that contradicts itself is refused.
func TestRestoreRejectsBadState(t *testing.T) {
	cfg := Config{Region: "eu"}
	bad := []*State{
		{Seq: 1, Rows: []Row{{SKU: "A", Region: "eu", Seq: 2, Minted: 1}}},
		{Seq: 1, Rows: []Row{{SKU: "A", Region: "eu", Seq: 1, Minted: 1, Reserved: 2}}},
		{Seq: 1, Rows: []Row{{SKU: "", Region: "eu", Seq: 1}}},
		{Holds: []Hold{{ID: "us-0000", State: Held, Lines: []Line{l("A", 1)}}}},
		{Holds: []Hold{{ID: "garbage", State: Held}}},
		{PeerSeq: map[string]uint64{"BAD": 1}},
	}
	for i, st := range bad {
		if _, err := NewNode(cfg, st); err == nil {
			t.Errorf("state %d accepted", i)
		}
	}
	for _, c := range []Config{{}, {Region: "EU"}, {Region: "e-u"}, {Region: "eu", Peers: []string{"x y"}},
		{Region: "eu", MaxLifetime: -1}, {Region: "eu", HoldRetain: -1}, {Region: "eu", DemandTau: -time.Second},
		{Region: "eu", RepairTimeout: -1}, {Region: "eu", DefaultTTL: time.Millisecond}} {
		if _, err := NewNode(c, nil); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}
