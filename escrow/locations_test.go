package escrow

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func locCfg() Config {
	return Config{Locations: []Location{
		{ID: "berlin", Owner: "eu"},
		{ID: "paris", Owner: "eu", Sellers: []string{"eu", "us"}},
	}}
}

func TestLocationStockKey(t *testing.T) {
	k := StockKey("A", "berlin")
	if sku, loc := SplitStockKey(k); sku != "A" || loc != "berlin" || !HasLocation(k) {
		t.Fatalf("SplitStockKey(%q) = %q, %q", k, sku, loc)
	}
	if StockKey("A", "") != "A" || HasLocation("A") {
		t.Fatal("the default location must be the SKU itself")
	}
	for _, bad := range []string{"A\x1f", "A\x1fBerlin", "A\x1fb\x1fc", "\x1fberlin", "A\x1f" + strings.Repeat("x", 33)} {
		if ValidStockKey(bad) == nil {
			t.Errorf("ValidStockKey(%q) accepted", bad)
		}
	}
	if ValidSKU(k) == nil {
		t.Fatal("a stock key of a location must not pass as a client SKU")
	}
}

func TestLocationConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Region: "eu", Locations: []Location{{ID: "b", Owner: "eu"}, {ID: "b", Owner: "eu"}}},
		{Region: "eu", Locations: []Location{{ID: "B", Owner: "eu"}}},
		{Region: "eu", Locations: []Location{{ID: "b", Owner: "Eu"}}},
		{Region: "eu", FulfilmentOrder: []string{"x"}},
		{Region: "eu", Allocation: "random"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// TestLocationWireVersion3: only messages with location keys are version
// 3; a version-2 reader refuses them; WithoutLocationKeys leaves a message
// a version-2 peer reads.
func TestLocationWireVersion3(t *testing.T) {
	m := Message{Type: MsgRows, From: "eu", Seq: 2, PrevSeq: 0, Speaks: WireVersion,
		Rows: []Row{{SKU: "A", Region: "eu", Seq: 1, Minted: 3}, {SKU: StockKey("A", "berlin"), Region: "eu", Seq: 2, Minted: 4}}}
	b, err := EncodeMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	if b[2] != 3 {
		t.Fatalf("a message with location keys is version %d, want 3", b[2])
	}
	if _, err := DecodeMessageUpTo(b, 2); !errors.Is(err, ErrWireVersion) {
		t.Fatalf("a version-2 reader decoded a version-3 message: %v", err)
	}
	got, err := DecodeMessage(b)
	if err != nil || len(got.Rows) != 2 || got.Rows[1].SKU != m.Rows[1].SKU {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	// The same bytes labelled version 2 are refused (non-canonical).
	b2 := append([]byte(nil), b...)
	b2[2] = 2
	if _, err := DecodeMessage(b2); err == nil {
		t.Fatal("a version-2 message with location keys was accepted")
	}
	// Location keys need a sender that says it speaks 3.
	m1 := m
	m1.Speaks = 2
	if _, err := EncodeMessage(nil, &m1); err == nil {
		t.Fatal("encoded location keys in version 2")
	}
	old, ok := WithoutLocationKeys(&m)
	if !ok || len(old.Rows) != 1 || old.Rows[0].SKU != "A" || old.Seq != m.Seq {
		t.Fatalf("WithoutLocationKeys = %+v, %v", old, ok)
	}
	old.Speaks = 2
	ob, err := EncodeMessage(nil, &old)
	if err != nil || ob[2] != 2 {
		t.Fatalf("filtered message: version %d, %v", ob[2], err)
	}
	if _, err := DecodeMessageUpTo(ob, 2); err != nil {
		t.Fatalf("a version-2 reader refused the filtered message: %v", err)
	}
	if _, ok := WithoutLocationKeys(&Message{Type: MsgBorrowReq, From: "us", To: "eu", SKU: StockKey("A", "paris"), Qty: 1}); ok {
		t.Fatal("a borrow of a location key survived filtering")
	}
}

// TestLocationBorrowRefusedToNonSeller: a donor lends no units of a
// location to a region that may not sell from it, and counts it.
func TestLocationBorrowRefusedToNonSeller(t *testing.T) {
	cfg := locCfg()
	cfg.Region = "eu"
	eu := newTNode(t, cfg)
	eu.restock(StockKey("A", "berlin"), 5)
	eu.restock(StockKey("A", "paris"), 5)
	for i, key := range []string{StockKey("A", "berlin"), StockKey("A", "paris")} {
		eu.sent = nil
		m := Message{Type: MsgBorrowReq, From: "us", To: "eu", ID: uint64(i + 1), SKU: key, Qty: 2, Urgent: true}
		if err := eu.n.Step(Input{Now: eu.now, Msg: &m}); err != nil {
			t.Fatal(err)
		}
		eu.drain()
		var given uint64
		for _, s := range eu.sent {
			if s.Type == MsgBorrowResp {
				given = s.Qty
			}
		}
		want := uint64(2)
		if key == StockKey("A", "berlin") {
			want = 0
		}
		if given != want {
			t.Errorf("borrow of %q by us: given %d, want %d", key, given, want)
		}
	}
	if got := eu.n.Stats().LocationRefused; got != 1 {
		t.Fatalf("LocationRefused = %d, want 1", got)
	}
}

// TestLocationAdviceRefusedToNonSeller: advice moving units of a location
// to a region that may not sell it is not followed.
func TestLocationAdviceRefusedToNonSeller(t *testing.T) {
	cfg := locCfg()
	cfg.Region = "eu"
	cfg.Members = []string{"eu", "us"}
	eu := newTNode(t, cfg)
	berlin := StockKey("A", "berlin")
	eu.restock(berlin, 50)
	m := Message{Type: MsgAdvice, From: "rebalancer", Epoch: uint64(eu.now.UnixMilli()),
		Moves: []Move{{SKU: berlin, From: "eu", To: "us", Qty: 10}}}
	if err := eu.n.Step(Input{Now: eu.now, Msg: &m}); err != nil {
		t.Fatal(err)
	}
	eu.drain()
	if v := eu.n.View(berlin); len(v["eu"].Sent) != 0 {
		t.Fatalf("eu sent berlin units to us: %v", v["eu"].Sent)
	}
	if eu.n.Stats().LocationRefused == 0 {
		t.Fatal("refused advice not counted")
	}
}

// TestLocationPlantedBugAllocatesOutside: with the planted bug grant-any-location,
// a line is allocated outside its eligible locations; without it, the same
// request waits on an eligible one. (The simulator's location checker is
// shown to catch the bug in sim.)
func TestLocationPlantedBugAllocatesOutside(t *testing.T) {
	for _, bug := range []bool{false, true} {
		cfg := locCfg()
		cfg.Region = "eu"
		cfg.bugs.GrantAnyLocation = bug
		eu := newTNode(t, cfg)
		eu.restock(StockKey("A", "berlin"), 5)
		r := eu.do(Command{Kind: CmdHold, Lines: []Line{{SKU: "A", Qty: 2}},
			Locations: []LineLocations{{SKU: "A", Locations: []string{"paris"}}}})
		granted := r.Hold != nil && r.Hold.Lines[0].SKU == StockKey("A", "berlin")
		if granted != bug {
			t.Errorf("bug=%v: reply %+v", bug, r)
		}
	}
}

// TestLocationRebalancerAdvice: the rebalancer advises no move (nor home)
// that gives a location's units to a region that may not sell it, where it
// would without locations configured.
func TestLocationRebalancerAdvice(t *testing.T) {
	berlin := StockKey("A", "berlin")
	for _, withLocs := range []bool{false, true} {
		cfg := RebalancerConfig{ID: "rebalancer", Policy: DefaultRebalancePolicy(), StandbyAfter: -1}
		if withLocs {
			cfg.Locations = locCfg().Locations
		}
		rb, err := NewRebalancer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1_700_000_000, 0)
		for _, d := range []Message{
			{Type: MsgDigest, From: "eu", Digest: []SKUDigest{{SKU: berlin, Available: 100, DemandMilli: 0}}},
			{Type: MsgDigest, From: "us", Digest: []SKUDigest{{SKU: berlin, Available: 0, DemandMilli: 2_000, Rejected: 10}}},
		} {
			if err := rb.Step(now, &d); err != nil {
				t.Fatal(err)
			}
		}
		adv, _ := rb.Round(now)
		toUS := false
		for _, mv := range adv.Moves {
			toUS = toUS || mv.To == "us"
		}
		for _, h := range adv.Homes {
			toUS = toUS || h.Region == "us"
		}
		if toUS == withLocs {
			t.Errorf("locations configured %v: moves %+v, homes %+v", withLocs, adv.Moves, adv.Homes)
		}
	}
}

// TestLocationAssertionsPanic: the invariants asserted in production code
// do fire: an allocation outside the line's eligible locations, and a
// grant of a location the region may not sell.
func TestLocationAssertionsPanic(t *testing.T) {
	cfg := locCfg()
	cfg.Region = "us"
	n, err := NewNode(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	mustPanic("allocation outside the eligible locations", func() {
		n.eligible([]Line{{SKU: StockKey("A", "paris"), Qty: 1}}, []string{"berlin"})
	})
	mustPanic("allocation of a location us may not sell", func() {
		n.eligible([]Line{{SKU: StockKey("A", "berlin"), Qty: 1}}, []string{"berlin"})
	})
	mustPanic("grant of a location us may not sell", func() {
		n.checkHoldLocations([]Line{{SKU: StockKey("A", "berlin"), Qty: 1}})
	})
	// What us may sell passes.
	n.eligible([]Line{{SKU: StockKey("A", "paris"), Qty: 1}}, []string{"paris"})
	n.checkHoldLocations([]Line{{SKU: StockKey("A", "paris"), Qty: 1}, {SKU: "A", Qty: 1}})
}
