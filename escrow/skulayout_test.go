package escrow

import (
	"math"
	"testing"
	"time"
	"unsafe"
)

// TestSKUStateLayout: a skuState is exactly four cache lines and every
// state of a slab starts on a line, so a hold of a cold SKU fetches four
// lines of it (two adjacent-line pairs), not five or six; and the fields
// a hold touches come before the cold ones.
func TestSKUStateLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is sized for 64-bit platforms")
	}
	if got := unsafe.Sizeof(skuState{}); got != skuStateSize {
		t.Fatalf("skuState is %d bytes, want %d (adjust skuStatePad)", got, skuStateSize)
	}
	if got := unsafe.Sizeof(rowRec{}); got > 128 {
		t.Errorf("rowRec is %d bytes, want at most 128", got)
	}
	var s skuState
	if hot, cold := unsafe.Offsetof(s.slot), unsafe.Offsetof(s.reject); hot > cold {
		t.Errorf("hot field slot at %d after the cold reject at %d", hot, cold)
	}
	var tab skuTable
	for i := 0; i < 2*skuSlab+3; i++ {
		p := tab.alloc()
		if a := uintptr(unsafe.Pointer(p)); a%64 != 0 {
			t.Fatalf("state %d at %#x: not on a cache line", i, a)
		}
	}
}

// TestClockNsSub: differences of clockNs are Time.Sub's, bit for bit,
// for clocks with and without a monotonic reading, so the demand EWMA
// decays as it did over time.Times; and the base of a runtime's clock
// keeps its monotonic reading, so that Sub, and clockNs, are taken on the
// monotonic clock there, out of reach of wall-clock steps.
func TestClockNsSub(t *testing.T) {
	for _, base := range []time.Time{t0, time.Unix(0, 0), time.Now(), time.Date(2300, 1, 1, 0, 0, 0, 7, time.UTC)} {
		n := &Node{}
		at := func(u time.Time) int64 {
			n.now = u
			if n.clockBase.IsZero() {
				n.clockBase = u.Add(-clockMargin)
			}
			n.syncClock()
			return n.clockNs
		}
		prev, prevNs := base, at(base)
		if prevNs <= 0 {
			t.Fatalf("base %v: clockNs %d, want > 0", base, prevNs)
		}
		for _, d := range []time.Duration{1, 999, time.Microsecond, 1234567891, 17 * time.Hour, 3 * 365 * 24 * time.Hour} {
			u := prev.Add(d)
			ns := at(u)
			if got, want := time.Duration(ns-prevNs), u.Sub(prev); got != want {
				t.Fatalf("base %v + %v: clockNs difference %v, Sub %v", base, d, got, want)
			}
			if got, want := math.Exp(-time.Duration(ns-prevNs).Seconds()/30), math.Exp(-u.Sub(prev).Seconds()/30); got != want {
				t.Fatalf("decay %v != %v", got, want)
			}
			prev, prevNs = u, ns
		}
	}
	now := time.Now()
	n := &Node{now: now, clockBase: now.Add(-clockMargin)}
	n.syncClock()
	a := n.clockNs
	n.now = now.Add(time.Second)
	n.syncClock()
	if d := time.Duration(n.clockNs - a); d != time.Second {
		t.Fatalf("monotonic difference %v, want 1s", d)
	}
	if n.clockBase.Round(0) == n.clockBase {
		t.Fatalf("clockBase %v lost its monotonic reading", n.clockBase)
	}
}

// TestNewSKUInvalidKey: a SKU state is never made for a name that is not
// a valid stock key (a one-line hold of a resident SKU skips validating
// its name, residentOne); and a one-line hold of a resident SKU after
// another SKU's is looked up under its own name.
func TestNewSKUInvalidKey(t *testing.T) {
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("newSKU made a state for an invalid stock key")
			}
		}()
		n.newSKU(" bad")
	}()
	for i, c := range []Command{
		{Kind: CmdRestock, ReqID: 1, SKU: "a", Qty: 5},
		{Kind: CmdRestock, ReqID: 2, SKU: "b", Qty: 5},
		{Kind: CmdHold, ReqID: 3, Lines: []Line{{SKU: "a", Qty: 2}}},
		{Kind: CmdHold, ReqID: 4, Lines: []Line{{SKU: "b", Qty: 3}}},
		{Kind: CmdHold, ReqID: 5, Lines: []Line{{SKU: " b", Qty: 1}}},
	} {
		if err := n.Step(Input{Now: t0.Add(time.Duration(i) * time.Millisecond), Cmd: &c}); err != nil {
			t.Fatal(err)
		}
	}
	rd := advanced(n)
	if e := rd.Reply[len(rd.Reply)-1].Err; e == nil || e.Code != CodeInvalid {
		t.Errorf("hold of an invalid SKU: %v, want invalid", e)
	}
	if a, b := n.Available("a"), n.Available("b"); a != 3 || b != 2 {
		t.Errorf("available a=%d b=%d, want 3 and 2", a, b)
	}
}
