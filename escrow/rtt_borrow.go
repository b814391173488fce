package escrow

import (
	"sort"
	"time"
)

// RTT-aware borrowing: how long a hold waits for borrowed units, and whom
// it asks first.
//
// The deadline of a hold that must borrow starts at BorrowTimeout (the
// lower bound) and is stretched to rttDeadlineFactor × the smoothed RTT of
// the nearest peer with surplus, at most BorrowTimeoutMax (the upper
// bound): a region whose peers are 80 ms away waits ~160 ms for their
// units instead of giving up at 50 ms while they are on their way. A peer
// with no estimate yet gets BorrowTimeout; a timeout raises its estimate
// to the time waited (noteTimeout), so the next deadline doubles until an
// answer arrives in time or the upper bound is reached. Once a peer has
// answered, its deadline follows its answers only (borrowRTT): a partition
// does not stretch waits, it makes the peer skipped (inReach) and then
// silent (worthAsking); and a peer not heard from since its last timeout
// is not waited for longer than BorrowTimeout (its late answer, or its next
// digest, shows it alive and lets the deadline stretch again). Peers are then
// asked nearest first (PlanBorrowNear; a peer not measured yet counts as
// BorrowTimeout away), and a peer whose RTT exceeds the
// time left is skipped (inReach).

// DefaultBorrowTimeoutMax is the default upper bound of the stretched
// borrow deadline.
const DefaultBorrowTimeoutMax = 500 * time.Millisecond

// rttDeadlineFactor: the deadline allows this many estimated round trips
// (jitter, the donor's fsync and tick granularity ride on the estimate).
const rttDeadlineFactor = 2

// borrowTimeoutMax is the effective upper bound (never below the lower).
func (n *Node) borrowTimeoutMax() time.Duration {
	return max(n.cfg.BorrowTimeoutMax, n.cfg.BorrowTimeout)
}

// stretchDeadline moves p's deadline out to what the nearest peer of
// peers needs, within the bounds. It never moves a deadline in.
func (n *Node) stretchDeadline(p *pendingHold, peers []PeerStock) {
	var best time.Duration
	for _, ps := range peers {
		if p := n.peers[ps.Region]; p == nil || n.silentSinceTimeout(p) {
			continue // cut off, perhaps: waiting longer would only make shoppers wait
		}
		if rtt := n.borrowRTT(ps.Region); rtt > 0 && (best == 0 || rtt < best) {
			best = rtt
		}
	}
	if best == 0 {
		return
	}
	d := min(max(rttDeadlineFactor*best, n.cfg.BorrowTimeout), n.borrowTimeoutMax())
	if at := n.now.Add(d); at.After(p.deadline) {
		if p.deadline.Equal(n.now.Add(n.cfg.BorrowTimeout)) {
			n.stats.BorrowDeadlinesStretched++
		}
		p.deadline = at
	}
}

// reach is the round trip a plan assumes to peer r: its estimate, or
// BorrowTimeout for a peer not measured yet (the benefit of the doubt that
// inReach gives it too; its first answer or timeout measures it).
func (n *Node) reach(r string) time.Duration {
	if d := n.borrowRTT(r); d > 0 {
		return d
	}
	return n.cfg.BorrowTimeout
}

// borrowRTT is the round trip a hold's borrow assumes to peer r (0: no
// estimate). A peer alive since its last timeout (heard from after it)
// that ever answered: the RTT of its answers, never raised by a timeout,
// so that a peer that was cut off is in reach again as soon as it is
// heard from after heal. Otherwise the estimate timeouts raise: a far peer
// never answered is probed with doubling deadlines until its first answer
// arrives in time, and a peer silent since its timeout is skipped once
// that exceeds the time left.
func (n *Node) borrowRTT(r string) time.Duration {
	p := n.peers[r]
	if p == nil {
		return 0
	}
	if !n.silentSinceTimeout(p) && p.artt > 0 {
		return p.artt
	}
	return p.srtt
}

func (n *Node) silentSinceTimeout(p *peer) bool {
	return !p.timedOut.IsZero() && !p.heard.After(p.timedOut)
}

// PlanBorrowNear is PlanBorrow asking the nearest peers first: by
// increasing reach (rtt), ties by larger surplus, then name.
func PlanBorrowNear(need uint64, peers []PeerStock, rtt func(string) time.Duration) []PeerStock {
	plan, short := planNear(need, peers, rtt)
	if short > 0 {
		return nil
	}
	return plan
}

// planNear orders peers nearest first (see PlanBorrowNear) and asks them
// in that order; short is what their known surplus leaves uncovered.
func planNear(need uint64, peers []PeerStock, rtt func(string) time.Duration) (plan []PeerStock, short uint64) {
	reach := make(map[string]time.Duration, len(peers))
	for _, p := range peers {
		reach[p.Region] = rtt(p.Region)
	}
	sort.SliceStable(peers, func(i, j int) bool {
		a, b := peers[i], peers[j]
		if ra, rb := reach[a.Region], reach[b.Region]; ra != rb {
			return ra < rb
		}
		if a.Available != b.Available {
			return a.Available > b.Available
		}
		return a.Region < b.Region
	})
	return planInOrder(need, peers)
}
