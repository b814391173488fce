package escrow

import (
	"sort"
	"time"
)

// This file holds the movement of units between regions that a node starts
// or answers itself: borrowing for a hold it cannot cover (and the retry of
// waiting holds as answers come), lending to a peer that asks, following the
// rebalancer's advice from its own surplus, and the background top-up of a
// slice that runs low.

// borrowFor asks peers for the units p is short of. It returns false when
// no peer is known to have surplus for some short line.
func (n *Node) borrowFor(p *pendingHold) bool {
	type ask struct {
		to  string
		sku string
		qty uint64
	}
	var asks []ask
	for i := range p.lines {
		l := p.lines[i]
		s := n.lookup(l.SKU)
		if s == nil {
			if p.cmd.Partial {
				continue // a partial hold gets the other lines
			}
			return false // unknown everywhere this node knows
		}
		have := n.available(s)
		if have >= l.Qty {
			continue
		}
		need := l.Qty - have
		surplus := n.addHinted(l.SKU, n.peerSurplus(s))
		n.stretchDeadline(p, surplus)
		surplus = n.inReach(surplus, p.deadline.Sub(n.now))
		plan := PlanBorrowNear(need, surplus, n.reach)
		if plan == nil && p.cmd.Partial {
			// A partial hold asks for what peers are known to have.
			plan, _ = planNear(need, surplus, n.reach)
			if plan == nil {
				continue
			}
		}
		if plan == nil {
			return false
		}
		for _, a := range plan {
			asks = append(asks, ask{to: a.Region, sku: l.SKU, qty: a.Qty})
		}
	}
	if len(asks) == 0 {
		return false
	}
	for _, a := range asks {
		n.nextBorrowID()
		n.addBorrow(&borrowOut{sku: a.sku, to: a.to, deadline: p.deadline, pend: p, qty: a.qty})
		n.stats.BorrowsSent++
		n.send(Message{Type: MsgBorrowReq, From: n.cfg.Region, To: a.to, ID: n.borrowID, SKU: a.sku, Qty: a.qty, Urgent: true,
			Epoch: n.clockStamp()})
		p.asks++
	}
	return true
}

// peerSurplus lists peers with a positive available count of s in this
// view that were heard from lately.
func (n *Node) peerSurplus(s *skuState) []PeerStock {
	var out []PeerStock
	for _, rec := range s.list {
		r := rec.Region
		if r == n.cfg.Region {
			continue
		}
		if !n.member(r) {
			continue
		}
		if !n.worthAsking(r) {
			continue
		}
		if a := s.availableOf(r); a > 0 {
			out = append(out, PeerStock{Region: r, Available: uint64(a)})
		}
	}
	return out
}

// worthAsking reports whether peer r may be asked to lend. A peer silent
// for PeerSilence (it misses its digests) is presumed cut off: asking it
// would only make the shopper wait out the borrow deadline. A peer never
// heard from (e.g. just after a restart) is given the benefit of the doubt.
func (n *Node) worthAsking(r string) bool {
	p := n.peers[r]
	if p != nil && p.fenced {
		return false // its digest says it refuses writes: it would lend nothing
	}
	if p != nil && !p.gone.IsZero() && !p.heard.After(p.gone) {
		return false // the runtime found it gone and it has not spoken since
	}
	if p == nil || p.heard.IsZero() || n.cfg.PeerSilence < 0 {
		return true
	}
	return n.now.Sub(p.heard) <= n.cfg.PeerSilence
}

func (n *Node) onBorrowReq(m *Message) error {
	if err := ValidStockKey(m.SKU); err != nil {
		return err
	}
	if m.Qty > MaxQty*MaxLines {
		return errorf(CodeInvalid, "borrow of %d units exceeds the limit", m.Qty)
	}
	n.peer(m.From)
	if n.refuseStale(m) {
		return nil // its requester gave up on it: no units move (borrow_stale.go)
	}
	given, seen := n.donations.get(m.From, m.ID)
	s := n.lookup(m.SKU)
	if !n.keyMaySell(m.SKU, m.From) {
		// The asker may not sell from this location: it gets nothing.
		n.refuseLocation()
		seen = true
	}
	if !seen && s != nil && s.own != nil {
		avail := n.available(s)
		floor := uint64(0)
		if !m.Urgent {
			floor = n.donorFloor(s)
		}
		// Units this region's own waiters need are not lent.
		floor += n.waitUnits(s.sku)
		if avail > floor {
			given = min(m.Qty, avail-floor)
		}
		if given > 0 {
			s.own.addSent(m.From, given)
			n.touchOwn(s.own)
			n.stats.DonatedUnits += given
			n.stats.BorrowUnitsOut += given
		}
		n.donations.put(n.now, m.From, m.ID, given)
	}
	resp := Message{Type: MsgBorrowResp, From: n.cfg.Region, To: m.From, ID: m.ID, SKU: m.SKU, Qty: given}
	if s != nil && s.own != nil {
		resp.Rows = []Row{s.own.Row.Clone()}
	}
	// Sent after the Ready that made the transfer durable is persisted.
	n.send(resp)
	return nil
}

// nextBorrowID advances borrowID. Ids are not persisted but donors remember
// them (per borrower) to dedupe retries, so a restarted node must not reuse
// the ids of its previous life: they follow the clock (Unix ns) when it is
// ahead, which a restart cannot go behind.
func (n *Node) nextBorrowID() uint64 {
	n.borrowID++
	if t := n.now.UnixNano(); t > 0 && uint64(t) > n.borrowID {
		n.borrowID = uint64(t)
	}
	return n.borrowID
}

// bump notes a change that may raise available(self) of s.
func (n *Node) bump(s *skuState) {
	s.gen++
	if s.waiting > 0 {
		n.retryDue = true
	}
	n.noteWaitBump(s.sku)
}

// addBorrow records an own request in flight under borrowID.
func (n *Node) addBorrow(b *borrowOut) {
	b.sent = n.now
	n.borrows[n.borrowID] = b
	if len(n.borrows) == 1 || b.deadline.Before(n.borrowScanAt) {
		n.borrowScanAt = b.deadline
	}
}

// donorFloor is what a region keeps for itself when asked for background
// (non-urgent) units: its own top-up threshold, at least DonorFloor.
func (n *Node) donorFloor(s *skuState) uint64 {
	return max(n.cfg.DonorFloor, n.topUpThreshold(s))
}

func (n *Node) onBorrowResp(m *Message) {
	b := n.borrows[m.ID]
	if m.Qty == 0 && m.Epoch != 0 && n.onStaleAnswer(m.ID, b, m) {
		b = nil // refused as stale and asked again
	}
	if b != nil && b.to == m.From {
		delete(n.borrows, m.ID)
		n.noteRTT(m.From, n.now.Sub(b.sent))
		n.stats.BorrowsAnswered++
		n.stats.BorrowUnitsIn += m.Qty
		if m.Qty < b.qty {
			n.dropHint(b.sku, m.From)
		}
		if b.topUp {
			if s := n.lookup(b.sku); s != nil && s.topUp == m.ID {
				s.topUp = 0
			}
		} else if b.pend != nil && b.pend.asks > 0 {
			b.pend.asks--
			n.retryDue = true
		}
	}
	n.mergeRows(m.Rows)
	n.retryPending()
}

// retryPending grants waiting holds that can now be covered, in arrival
// order, and rejects those whose every borrow has been answered.
//
// It is called after every change that may help a waiting hold, so it
// returns at once unless a SKU that a pending hold waits for changed (or a
// borrow was answered or timed out), and skips holds whose SKUs did not.
func (n *Node) retryPending() {
	if len(n.pending) == 0 || !n.retryDue {
		return
	}
	n.retryDue = false
	w := 0
	for _, p := range n.pending {
		if !p.done {
			if g := p.genSum(); p.asks > 0 && g == p.gen {
				// Nothing it needs changed since the last attempt.
			} else if !n.queuedFor(p.lines) && n.tryGrant(&p.cmd, p.lines, p.waiters) == nil {
				p.done = true
			} else if p.asks <= 0 || n.queuedFor(p.lines) {
				n.grantOrReject(&p.cmd, p.lines, p.waiters)
				p.done = true
			} else {
				p.gen = g
			}
		}
		if p.done {
			if p.cmd.IdemKey != "" && n.pendingIdem[p.cmd.IdemKey] == p {
				delete(n.pendingIdem, p.cmd.IdemKey)
			}
			for _, s := range p.skus {
				s.waiting--
			}
			continue
		}
		n.pending[w] = p
		w++
	}
	clear(n.pending[w:])
	n.pending = n.pending[:w]
}

// maxAdviceLead bounds how far an advice epoch (the daemon's Unix
// milliseconds) may be ahead of this node's clock. Without it one advice
// with a huge epoch, from a daemon with a broken clock, would make the node
// ignore every later advice until it restarts.
const maxAdviceLead = time.Minute

func (n *Node) onAdvice(m *Message) {
	if m.Epoch <= n.adviceEpoch || m.Epoch > uint64(max(0, n.now.Add(maxAdviceLead).UnixMilli())) {
		n.stats.AdviceIgnored++
		return
	}
	// Remembered at most maxAdviceSkew ahead of the clock: a forged epoch
	// far ahead cannot make the node ignore genuine advice until then.
	n.adviceEpoch = min(m.Epoch, uint64(max(0, n.now.Add(maxAdviceSkew).UnixMilli())))
	n.setHomes(m.Homes)
	applied := false
	for _, mv := range m.Moves {
		if mv.From != n.cfg.Region || mv.To == n.cfg.Region || ValidRegion(mv.To) != nil || ValidStockKey(mv.SKU) != nil {
			continue
		}
		if !n.adviceTarget(mv.To) {
			continue // units sent to a region outside the cluster would be stranded
		}
		if !n.keyMaySell(mv.SKU, mv.To) {
			n.refuseLocation()
			continue // a region receives quota only of locations it may sell from
		}
		if n.outOfTouch(mv.To) {
			// Units sent to a fenced region would be stranded there, and
			// to one not heard from lately lost to shoppers while it is
			// cut off (in_touch.go); the daemon plans again.
			n.stats.AdviceSkippedOutOfTouch++
			continue
		}
		s := n.lookup(mv.SKU)
		if s == nil || s.own == nil {
			continue
		}
		// Units that holds waiting on a borrow need here are not surplus.
		give := AdviceGive(n.available(s), n.donorFloor(s)+n.pendingNeed(mv.SKU)+n.waitUnits(mv.SKU), mv.Qty)
		if give == 0 {
			continue
		}
		s.own.addSent(mv.To, give)
		n.touchOwn(s.own)
		n.stats.DonatedUnits += give
		applied = true
	}
	if applied {
		n.stats.AdviceApplied++
	}
}

// pendingNeed returns the units of sku that holds waiting on a borrow ask
// for (bounded by MaxPending holds).
func (n *Node) pendingNeed(sku string) uint64 {
	var q uint64
	for _, p := range n.pending {
		if p.done {
			continue
		}
		for _, l := range p.lines {
			if l.SKU == sku {
				q += l.Qty
			}
		}
	}
	return q
}

// noteLow remembers SKUs whose own slice fell below the top-up threshold.
func (n *Node) noteLow(s *skuState) {
	if n.cfg.LowWater == 0 && n.cfg.TopUpHorizon <= 0 {
		return // top-up off
	}
	if n.available(s) < n.topUpThreshold(s) {
		n.lowSKUs[s.sku] = struct{}{}
	}
}

func (n *Node) topUpThreshold(s *skuState) uint64 {
	return TopUpThreshold(n.cfg.LowWater, n.demandNow(s), max(0, n.cfg.TopUpHorizon))
}

func (n *Node) topUps() {
	if len(n.lowSKUs) == 0 {
		return
	}
	names := make([]string, 0, len(n.lowSKUs))
	for sku := range n.lowSKUs {
		names = append(names, sku)
	}
	sort.Strings(names) // determinism
	budget := n.cfg.MaxTopUpsPerTick
	for _, sku := range names {
		if budget == 0 {
			break
		}
		s := n.lookup(sku)
		delete(n.lowSKUs, sku)
		if s.topUp != 0 || n.homed(sku) || !n.keyMaySell(sku, n.cfg.Region) {
			// One top-up in flight per SKU. Dropped from the set rather than
			// kept: the set is sorted on every Step, and the next grant
			// notes the SKU again if it is still low.
			continue
		}
		avail := n.available(s)
		thr := n.topUpThreshold(s)
		if avail >= thr {
			continue
		}
		peers := n.peerSurplus(s)
		for i := range peers {
			p := &peers[i]
			p.Available = subFloor(p.Available, n.cfg.DonorFloor)
		}
		to, qty := PlanTopUp(avail, thr, peers)
		if qty == 0 {
			continue
		}
		budget--
		n.nextBorrowID()
		s.topUp = n.borrowID
		n.addBorrow(&borrowOut{sku: sku, to: to, deadline: n.now.Add(n.cfg.RepairTimeout), topUp: true})
		n.stats.TopUps++
		n.stats.BorrowsSent++
		n.send(Message{Type: MsgBorrowReq, From: n.cfg.Region, To: to, ID: n.borrowID, SKU: sku, Qty: qty, Epoch: n.clockStamp()})
	}
}

func subFloor(a, floor uint64) uint64 {
	if a > floor {
		return a - floor
	}
	return 0
}
