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
