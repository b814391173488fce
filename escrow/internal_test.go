package escrow

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// TestDeadlineHeap checks the hand-written heap against sorting.
func TestDeadlineHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		var h dlHeap[waitID]
		var all []dlItem[waitID]
		n := r.IntN(200)
		for i := 0; i < n; i++ {
			it := dlItem[waitID]{at: int64(r.IntN(20)), p: waitID(rune('a' + r.IntN(26)))}
			h.push(it.at, it.p)
			all = append(all, it)
			if r.IntN(4) == 0 && h.Len() > 0 {
				got := h.pop()
				sort.Slice(all, func(i, j int) bool {
					return all[i].at < all[j].at || all[i].at == all[j].at && all[i].p < all[j].p
				})
				if got != all[0] {
					t.Fatalf("pop %+v, want %+v", got, all[0])
				}
				all = all[1:]
			}
		}
		sort.Slice(all, func(i, j int) bool {
			return all[i].at < all[j].at || all[i].at == all[j].at && all[i].p < all[j].p
		})
		for _, want := range all {
			if got := h.pop(); got != want {
				t.Fatalf("pop %+v, want %+v", got, want)
			}
		}
		if h.Len() != 0 {
			t.Fatal("heap not empty")
		}
	}
}

func TestNanosOrder(t *testing.T) {
	ts := []time.Time{{}, time.Unix(-1<<62, 0), t0, t0.Add(1), time.Unix(1<<62, 0)}
	for i := 1; i < len(ts); i++ {
		if nanos(ts[i-1]) > nanos(ts[i]) {
			t.Fatalf("nanos(%v) > nanos(%v)", ts[i-1], ts[i])
		}
	}
}

// TestTotalsCountsReceiversWithoutRow: units sent to a region that never
// wrote a row of its own are still available there, and conservation
// counts them.
func TestTotalsCountsReceiversWithoutRow(t *testing.T) {
	v := View{"eu": {SKU: "A", Region: "eu", Seq: 2, Minted: 10, Sent: []Transfer{{To: "us", Qty: 3}}}}
	if a := v.Available("us"); a != 3 {
		t.Fatalf("available(us) = %d", a)
	}
	if tot := v.Totals(); tot.Available != 10 || tot.Minted != 10 {
		t.Fatalf("totals %+v", tot)
	}
	if err := v.CheckConservation(); err != nil {
		t.Fatal(err)
	}
	// A view that over-sends is caught through the receiver-less region.
	v["eu"].Minted = 2
	if err := v.CheckConservation(); err == nil {
		t.Fatal("negative available not caught")
	}
}

// TestExtendKeepsIndexSmall: a client extending in a tight loop must not
// grow the expiry index (one entry per open hold).
func TestExtendKeepsIndexSmall(t *testing.T) {
	tn := newTNode(t, Config{})
	tn.restock("A", 1)
	h := tn.hold(l("A", 1))
	for i := 0; i < 5000; i++ {
		tn.now = tn.now.Add(time.Millisecond)
		if r := tn.do(Command{Kind: CmdExtend, HoldID: h.ID, TTL: 10 * time.Minute}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if got := tn.n.expiry.Len(); got > 1 {
		t.Fatalf("expiry index has %d entries for one hold", got)
	}
	// Past the first deadline the entry moves; the hold stays held until
	// its last one.
	last, _ := tn.n.Hold(h.ID)
	tn.now = h.Expires
	tn.tick(0)
	if got, _ := tn.n.Hold(h.ID); got.State != Held || tn.n.expiry.Len() != 1 {
		t.Fatalf("state %s, index %d", got.State, tn.n.expiry.Len())
	}
	tn.now = last.Expires
	tn.tick(0)
	if got, _ := tn.n.Hold(h.ID); got.State != Expired {
		t.Fatalf("state %s at the extended deadline", got.State)
	}
}
