package escrow

import (
	"time"
)

// This file holds the node's time-driven duties, run on every Step after
// the input: hold expiry and retention, idempotency-key expiry, borrow and
// pending-hold deadlines. tick also calls the duties that live with their
// concept (topUps in borrow.go, retryRepairs and digest in replicate.go,
// pushHomes in homes.go).

// tick runs the time-driven work: expiry, borrow deadlines, top-ups,
// digests, retention.
func (n *Node) tick() {
	if n.fence.st.Fenced && n.fenceTick() {
		return
	}
	n.sweep()
	n.expirePending()
	n.waitTick()
	n.topUps()
	n.retryRepairs()
	n.pushHomes()
	n.digest()
}

func (n *Node) sweep() {
	if n.hc.on {
		n.sweepHolds() // through the source's indexes (holdcache.go)
		return
	}
	for budget := n.cfg.MaxSweepPerTick; budget > 0 && n.expiry.Len() > 0; {
		it := n.expiry[0]
		if it.at > nanos(n.now) {
			break
		}
		n.expiry.pop()
		h := it.p
		if h.State != Held {
			continue // stale entry: finished (and maybe retired)
		}
		if h.expires > it.at {
			n.expiry.push(h.expires, h) // extended: one entry per hold
			continue
		}
		n.expire(h)
		budget--
	}
	for budget := n.cfg.MaxSweepPerTick; budget > 0 && n.retire.Len() > 0 && n.retire[0].at <= nanos(n.now); budget-- {
		h := n.retire.pop().p
		if id := h.ID(); n.holds.get(id) == h && h.State.Terminal() {
			n.holds.del(id)
			h.gone = true
			n.unpinIdem(h)
			n.retired = append(n.retired, id) // Persist.DeletedHolds (drainExpiry)
		}
	}
	for budget := n.cfg.MaxSweepPerTick; budget > 0 && n.idemExpiry.Len() > 0 && n.idemExpiry[0].at <= nanos(n.now); budget-- {
		it := n.idemExpiry.pop()
		if e := it.p; n.idem[e.Key] == e && !e.liveAt(n.now) {
			n.dropIdem(e) // else replaced: the new record has its own entry
		}
	}
}

func (n *Node) expirePending() {
	// This runs on every Step: scan the borrows only once the earliest
	// deadline has come, not on every input (thousands of borrows can be in
	// flight during a flash sale).
	if len(n.borrows) > 0 && !n.now.Before(n.borrowScanAt) {
		var next time.Time
		for id, b := range n.borrows {
			if !n.now.Before(b.deadline) {
				delete(n.borrows, id)
				n.stats.BorrowTimeouts++
				n.noteTimeout(b.to, n.now.Sub(b.sent))
				if b.topUp {
					// Resident only: a SKU with a top-up in flight is never
					// dropped (skucache.go), and a lookup here, in map order,
					// would reorder the cache's LRU list from run to run.
					if s := n.skus[b.sku]; s != nil && s.topUp == id {
						s.topUp = 0
					}
				}
				continue
			}
			if next.IsZero() || b.deadline.Before(next) {
				next = b.deadline
			}
		}
		n.borrowScanAt = next
	}
	// Pending holds are in arrival order and all wait BorrowTimeout, so
	// their deadlines never decrease: only the head needs a look.
	if len(n.pending) == 0 || n.now.Before(n.pending[0].deadline) {
		return
	}
	for _, p := range n.pending {
		if n.now.Before(p.deadline) {
			break
		}
		p.asks = 0
	}
	n.retryDue = true
	n.retryPending()
}
