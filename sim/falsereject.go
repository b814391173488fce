package sim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// Causes of a false rejection (a cart refused or unanswered while its
// units existed somewhere), classified when it happens from what the
// oracle sees: where the units of the short SKU were, which regions were
// down or cut off from the one that answered, and how the refusal came.
const (
	frNoAnswer        = "no_answer"           // unanswered, the gateway up and reachable: replies or requests lost
	frRoutedLost      = "routed_unanswered"   // as no_answer, but the gateway had routed the hold to a home
	frRegionDown      = "region_down"         // unanswered: the shopper's region crashed or paused meanwhile
	frHomeUnreachable = "home_unreachable"    // a retry of a routed hold whose home could not be reached
	frBorrowDeadline  = "borrow_deadline"     // waited on a borrow; units were in reach but came too late or short
	frStaleView       = "stale_view"          // refused at once while reachable regions had the units: nobody was asked
	frStranded        = "stranded_in_crashed" // the units missing were in regions that were down
	frPartitioned     = "partitioned"         // the units missing were in regions cut off from the one answering
	frInFlight        = "in_flight"           // the units were moving: sent (to the refusing region, too), their row not yet seen
	frFenced          = "fenced"              // refused by a region on probation or fenced (its store went back, or a restart)
	frOther           = "other"               // another refusal: hold capacity, waitlist full…
)

// frOrder is the order of the causes in reports.
var frOrder = []string{frPartitioned, frBorrowDeadline, frRegionDown, frNoAnswer, frStaleView, frStranded,
	frHomeUnreachable, frRoutedLost, frInFlight, frFenced, frOther}

// Unavoidable causes: no placement or movement of stock answers a shopper
// whose own region is down or paused (region_down), refuses writes while
// fenced or on probation (fenced), or whose requests and replies to a live
// region are lost on the way (no_answer). Every other
// cause counts as avoidable: a strategy that had moved the units in time
// (before the partition or the crash, ahead of the borrow, to where the
// shopper asked) would have served the cart. The avoidable rate is a
// second figure next to false_reject_rate, not a replacement.
var frUnavoidable = map[string]bool{frRegionDown: true, frNoAnswer: true, frFenced: true}

// avoidableFalseRejects sums the counts of m whose cause is avoidable.
func avoidableFalseRejects(m map[string]uint64) uint64 {
	var n uint64
	for c, v := range m {
		if !frUnavoidable[c] {
			n += v
		}
	}
	return n
}

// availOf is the true available count of region r for SKU s over every
// owner's latest row (as checkAvailable computes it).
func (o *oracle) availOf(r, s int) int64 {
	k := r*o.S + s
	m := &o.mem[k]
	return int64(m.minted) + int64(o.recv[k]) - int64(o.memSent[k].SentTotal()) - int64(m.reserved) +
		int64(m.released) - int64(m.shrunk)
}

// refusalCause classifies the refusal of a hold by region srv with error
// e, after the hold waited waited ns at srv. Observation only: it draws
// nothing and changes nothing.
func (w *world) refusalCause(srv int, cmd *escrow.Command, e *escrow.Error, waited int64) string {
	switch e.Code {
	case escrow.CodeHomeUnreachable:
		return frHomeUnreachable
	case escrow.CodeFenced:
		return frFenced
	case escrow.CodeInsufficientStock:
	default:
		return frOther
	}
	s, ok := w.skuIdx[e.SKU]
	if !ok {
		return frOther
	}
	var qty uint64
	for _, l := range cmd.Lines {
		if l.SKU == e.SKU {
			qty = l.Qty
		}
	}
	var reach, down, cut int64
	for r := 0; r < w.nReg; r++ {
		a := max(0, w.orc.availOf(r, s))
		switch {
		case w.eps[r].down:
			down += a
		case r != srv && (w.isBlocked(srv, r) || w.isBlocked(r, srv)):
			cut += a
		default:
			reach += a
		}
	}
	if reach >= int64(qty) {
		// Units sent to srv whose row srv has not seen yet count as srv's
		// in the oracle, but nobody can sell them: on their way (or
		// dropped by a partition and not yet repaired). When the
		// reachable units without them fall short, they were in flight.
		if n := w.eps[srv].node; n != nil {
			unseen := max(0, w.orc.availOf(srv, s)-int64(n.Available(e.SKU)))
			if reach-unseen < int64(qty) {
				return frInFlight
			}
		}
	}
	switch {
	case reach >= int64(qty) && waited >= int64(5*time.Millisecond):
		return frBorrowDeadline
	case reach >= int64(qty):
		return frStaleView
	case down > 0 && (cut == 0 || down >= cut):
		return frStranded
	case cut > 0:
		return frPartitioned
	}
	return frInFlight
}

// unansweredCause classifies a cart given up after every retry.
func (w *world) unansweredCause(cl *client) string {
	ep := w.eps[cl.home]
	if ep.down || ep.inc != cl.homeInc || (w.nf.pausedUntil != nil && w.nf.pausedUntil[cl.home] > cl.start) {
		return frRegionDown
	}
	if cl.routed {
		return frRoutedLost
	}
	return frNoAnswer
}

// noteFalseReject counts a false rejection by its cause.
func (w *world) noteFalseReject(cause string) {
	if w.frCause == nil {
		w.frCause = map[string]uint64{}
	}
	w.frCause[cause]++
}

// causesLine formats counts by cause in frOrder, with their share.
func causesLine(m map[string]uint64) string {
	var total uint64
	for _, v := range m {
		total += v
	}
	var parts []string
	seen := map[string]bool{}
	for _, c := range frOrder {
		seen[c] = true
		if v := m[c]; v > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d(%.0f%%)", c, v, 100*float64(v)/float64(total)))
		}
	}
	var rest []string
	for c := range m {
		if !seen[c] {
			rest = append(rest, c)
		}
	}
	sort.Strings(rest)
	for _, c := range rest {
		parts = append(parts, fmt.Sprintf("%s=%d", c, m[c]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
