package sim

import (
	"fmt"
	"io"
)

// The false rejections by cause, gathered into what a strategy that
// moves stock (the rebalancer and its homes) can and cannot change: the
// question of issue 21, whether escrow+rebalancer can reach half of
// reactive escrow's false-reject rate under faults.
//
//   - region_down+no_answer: the shopper's region down or paused, its
//     messages lost, or the region fenced (region_down, no_answer,
//     fenced). No strategy changes them (frUnavoidable).
//   - partitioned: the units were behind a partition. Only units moved
//     before it began would help, and in the shift workload the popular
//     SKUs are within a few units of selling out: wherever the last units
//     are, a partition cuts some shoppers off from them.
//   - stranded_in_crashed: the units were in a crashed region.
//   - stale_digest: regions in reach had the units but the refusing
//     region's view of them was out of date (stale_view), or they were on
//     their way to it, their row unseen (in_flight).
//   - borrow_deadline: it asked, the answers came too late or short.
//   - homes: holds routed to a scarce SKU's home, lost on the way or
//     refused as home-unreachable (routed_unanswered, home_unreachable).
//
// The floor is region_down+no_answer and partitioned per cart: what a
// strategy would still refuse if it served every other shopper. When it
// exceeds half of escrow's rate, the target is out of reach of any
// placement under these faults.
type frGroups struct {
	Faults, Partitioned, Crashed, Stale, Borrow, Homes, Other, Avoidable uint64
}

func groupFalseRejects(m map[string]uint64) frGroups {
	return frGroups{
		Faults:      m[frRegionDown] + m[frNoAnswer] + m[frFenced],
		Partitioned: m[frPartitioned],
		Crashed:     m[frStranded],
		Stale:       m[frStaleView] + m[frInFlight],
		Borrow:      m[frBorrowDeadline],
		Homes:       m[frRoutedLost] + m[frHomeUnreachable],
		Other:       m[frOther],
		Avoidable:   avoidableFalseRejects(m),
	}
}

// floorRate is the floor of g per cart (0 without carts).
func (g frGroups) floorRate(holds uint64) float64 {
	if holds == 0 {
		return 0
	}
	return float64(g.Faults+g.Partitioned) / float64(holds)
}

func (g frGroups) String() string {
	return fmt.Sprintf("region_down+no_answer=%d partitioned=%d stranded_in_crashed=%d stale_digest=%d borrow_deadline=%d homes=%d other=%d avoidable=%d",
		g.Faults, g.Partitioned, g.Crashed, g.Stale, g.Borrow, g.Homes, g.Other, g.Avoidable)
}

// writeFloor writes the false_rejects_floor line of a summary that
// classified its false rejections (label "" for a single strategy).
func writeFloor(w io.Writer, label string, s Summary) {
	if s.FalseRejectsByCause == nil {
		return
	}
	g := groupFalseRejects(s.FalseRejectsByCause)
	if label != "" {
		label = " " + label
	}
	fmt.Fprintf(w, "false_rejects_floor%s: %s floor_rate=%.4f (region_down+no_answer and partitioned per cart)\n",
		label, g, g.floorRate(s.Holds))
}

// writeHalfTarget writes, for each strategy compared after the first
// (the base, escrow in issue 21), whether half of the base's false-reject
// rate is within its floor.
func writeHalfTarget(w io.Writer, names []string, sums []Summary) {
	if len(sums) < 2 || sums[0].FalseRejectsByCause == nil {
		return
	}
	half := sums[0].FalseRejectRate / 2
	for i := 1; i < len(sums); i++ {
		if sums[i].FalseRejectsByCause == nil {
			continue
		}
		floor := groupFalseRejects(sums[i].FalseRejectsByCause).floorRate(sums[i].Holds)
		verdict := "the floor alone exceeds the target: out of reach under these faults"
		if floor <= half {
			verdict = "the floor does not rule it out"
		}
		fmt.Fprintf(w, "half_target %s: %.4f (half of %s's %.4f), %s has %.4f, floor %.4f: %s\n",
			names[i], half, names[0], sums[0].FalseRejectRate, names[i], sums[i].FalseRejectRate, floor, verdict)
	}
}
