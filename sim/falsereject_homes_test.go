package sim

import (
	"strings"
	"testing"
)

// TestFalseRejectFloor: the causes are gathered into the groups of
// false_rejects_floor, the floor is region_down+no_answer (with fenced)
// and partitioned per cart, and the half target is called out of reach
// exactly when that floor exceeds half of the base strategy's rate.
func TestFalseRejectFloor(t *testing.T) {
	t.Parallel()
	m := map[string]uint64{frRegionDown: 30, frNoAnswer: 20, frFenced: 5, frPartitioned: 45, frStranded: 7,
		frStaleView: 11, frInFlight: 13, frBorrowDeadline: 17, frRoutedLost: 2, frHomeUnreachable: 3, frOther: 1}
	g := groupFalseRejects(m)
	want := frGroups{Faults: 55, Partitioned: 45, Crashed: 7, Stale: 24, Borrow: 17, Homes: 5, Other: 1, Avoidable: 99}
	if g != want {
		t.Fatalf("groups %+v, want %+v", g, want)
	}
	if r := g.floorRate(1000); r != 0.1 {
		t.Fatalf("floor rate %v, want 0.1", r)
	}
	var b strings.Builder
	writeFloor(&b, "rb", Summary{Holds: 1000, FalseRejectsByCause: m})
	if got := b.String(); !strings.HasPrefix(got, "false_rejects_floor rb: region_down+no_answer=55 partitioned=45 ") ||
		!strings.Contains(got, "avoidable=99 floor_rate=0.1000") {
		t.Fatalf("floor line %q", got)
	}
	for _, c := range []struct {
		base float64
		out  bool
	}{{0.19, true}, {0.2, false}, {0.3, false}} {
		b.Reset()
		writeHalfTarget(&b, []string{"escrow", "rb"}, []Summary{
			{Holds: 1000, FalseRejectRate: c.base, FalseRejectsByCause: map[string]uint64{}},
			{Holds: 1000, FalseRejectRate: 0.15, FalseRejectsByCause: m},
		})
		if got := strings.Contains(b.String(), "out of reach"); got != c.out {
			t.Errorf("escrow at %.2f, floor 0.1: %q, want out of reach %v", c.base, b.String(), c.out)
		}
	}
	b.Reset()
	writeHalfTarget(&b, []string{"escrow", "rb"}, []Summary{{Holds: 1000, FalseRejectRate: 0.2}, {Holds: 1000, FalseRejectsByCause: m}})
	if b.Len() != 0 {
		t.Fatalf("half target printed without causes of the base: %q", b.String())
	}
}
