package escrow

import (
	"sort"
	"time"
)

func (n *Node) message(m *Message) error {
	if err := ValidRegion(m.From); err != nil {
		return err
	}
	if m.Type != MsgAdvice && m.From == n.cfg.Region {
		return errorf(CodeInvalid, "message %s claims to come from this region", m.Type)
	}
	if m.To != "" && m.To != n.cfg.Region {
		return errorf(CodeInvalid, "message %s addressed to %s delivered to %s", m.Type, m.To, n.cfg.Region)
	}
	if n.allow != nil && m.Type != MsgAdvice && !n.allow[m.From] {
		return errorf(CodeInvalid, "region %s is not in the peer allow-list", m.From)
	}
	if m.Type != MsgAdvice {
		n.peer(m.From).heard = n.now
	}
	// A region writes only its own rows: reject any row of another writer.
	if m.Type == MsgRows || m.Type == MsgBorrowResp {
		for i := range m.Rows {
			if m.Rows[i].Region != m.From {
				return errorf(CodeInvalid, "%s message from %s carries a row of %s", m.Type, m.From, m.Rows[i].Region)
			}
			if err := ValidSKU(m.Rows[i].SKU); err != nil {
				return err
			}
			if m.Rows[i].SentTo(m.From) != 0 {
				return errorf(CodeInvalid, "row %s/%s sends to itself", m.From, m.Rows[i].SKU)
			}
			// The wire decoder checks these; messages handed over in
			// process (the simulator) must meet the same bounds.
			if err := checkRowBounds(&m.Rows[i]); err != nil {
				return err
			}
		}
	}
	if done, err := n.fenceMessage(m); done {
		return err
	}
	switch m.Type {
	case MsgRows:
		n.onRows(m)
	case MsgRepairReq:
		n.onRepair(m)
	case MsgBorrowReq:
		return n.onBorrowReq(m)
	case MsgBorrowResp:
		n.onBorrowResp(m)
	case MsgDigest:
		n.onDigest(m)
	case MsgAdvice:
		n.onAdvice(m)
	default:
		return errorf(CodeInvalid, "unknown message type %d", m.Type)
	}
	return nil
}

// mergeRows folds peer rows into the view and reports whether any changed.
func (n *Node) mergeRows(rows []Row) bool {
	changed := false
	for i := range rows {
		in := &rows[i]
		s := n.sku(in.SKU)
		rec := s.rec(in.Region)
		var ch bool
		if n.cfg.Bugs.MergeBySum {
			ch = sumInto(&rec.Row, in)
		} else {
			ch = rec.Row.Merge(in)
		}
		if ch {
			rec.updated = n.now
			n.markRow(rec)
			n.bump(s)
			changed = true
		}
	}
	return changed
}

// sumInto is the MergeBySum bug: it double-counts redelivered rows.
func sumInto(r *Row, o *Row) bool {
	r.Seq = max(r.Seq, o.Seq)
	r.Minted += o.Minted
	r.Reserved += o.Reserved
	r.Released += o.Released
	r.Sold += o.Sold
	r.Shrunk += o.Shrunk
	for _, t := range o.Sent {
		r.addSent(t.To, t.Qty)
	}
	return true
}

func (n *Node) onRows(m *Message) {
	p := n.peer(m.From)
	changed := n.mergeRows(m.Rows)
	if m.To == n.cfg.Region && !m.More {
		// The answer to our repair (perhaps "nothing new"): a later sign
		// that we are behind may ask again at once.
		p.repairAt = time.Time{}
	}
	switch {
	case m.Seq <= p.seen:
		// Old news (a duplicate or a late copy): merged above, and it must
		// neither reset a snapshot in progress nor look like a gap.
	case m.More && p.chainTo != 0 && m.PrevSeq >= p.chainFrom && m.Seq <= p.chainTo:
		// A duplicate of a part of the snapshot in progress.
	case m.More && m.PrevSeq <= p.seen && m.PrevSeq >= p.chainFrom:
		// First part of a snapshot that starts at or before what we have.
		p.chainFrom, p.chainTo = m.PrevSeq, m.Seq
	case m.More && p.chainTo != 0 && m.PrevSeq == p.chainTo:
		p.chainTo = m.Seq
	case m.More:
		p.chainFrom, p.chainTo = 0, 0
		n.gap(m.From, p)
	case m.PrevSeq <= p.seen || (p.chainTo != 0 && m.PrevSeq == p.chainTo):
		if m.Seq > p.seen {
			p.seen = m.Seq
			if !p.seenDirty {
				p.seenDirty = true
				n.seenDirty = append(n.seenDirty, m.From)
			}
		}
		p.chainFrom, p.chainTo = 0, 0
		p.repairAt = time.Time{}
		p.askAgain = false
		p.suspect = false
	default:
		n.gap(m.From, p)
	}
	if changed {
		n.retryPending()
	}
}

// retryRepairs asks again the peers whose gap came while a repair was
// outstanding, once RepairTimeout has passed: without it a gap seen just
// after an answer that did not cover it would wait for two more digests.
func (n *Node) retryRepairs() {
	if !n.repairsDue {
		return
	}
	n.repairsDue = false
	names := make([]string, 0, len(n.peers))
	for name, p := range n.peers {
		if !p.askAgain {
			continue
		}
		if n.now.Sub(p.repairAt) < n.cfg.RepairTimeout {
			n.repairsDue = true // not yet
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names) // determinism
	for _, name := range names {
		n.gap(name, n.peers[name])
	}
}

// resync follows a reconnect of the runtime's link: ask every peer for the
// rows changed after what we have (a repair outstanding from before the cut
// was lost with it), and send the digest now, urgent.
func (n *Node) resync() {
	names := make([]string, 0, len(n.peers))
	for name := range n.peers {
		names = append(names, name)
	}
	sort.Strings(names) // determinism
	for _, name := range names {
		if n.allow != nil && !n.allow[name] {
			continue
		}
		p := n.peers[name]
		p.repairAt = time.Time{}
		n.gap(name, p)
	}
	if n.cfg.DigestInterval >= 0 {
		n.lastDigest = time.Time{}
		n.urgentDigest = true
	}
}

// gap asks the peer for its rows changed after what we have, unless a
// repair is already outstanding and not yet timed out.
func (n *Node) gap(from string, p *peer) {
	n.stats.Gaps++
	if !p.repairAt.IsZero() && n.now.Sub(p.repairAt) < n.cfg.RepairTimeout {
		// One repair at a time; this gap may be newer than what it asked
		// for, so ask again once it is due (retryRepairs) unless its
		// answer catches us up first.
		p.askAgain = true
		n.repairsDue = true
		return
	}
	p.askAgain = false
	p.repairAt = n.now
	n.stats.RepairsSent++
	n.send(Message{Type: MsgRepairReq, From: n.cfg.Region, To: from, Seq: p.seen})
}

func (n *Node) onRepair(m *Message) {
	n.peer(m.From)
	var rows []Row
	for _, name := range n.skuOrder {
		s := n.skus[name]
		if s.own != nil && s.own.Seq > m.Seq {
			rows = append(rows, s.own.Row.Clone())
		}
	}
	n.stats.RepairsServed++
	// Rows not yet broadcast are included: the answer goes out after this
	// Ready is persisted, like every message.
	for _, msg := range n.rowsMessages(m.From, m.Seq, n.seq, rows) {
		n.send(msg)
	}
}

func (n *Node) onDigest(m *Message) {
	p := n.peer(m.From)
	if m.Seq > p.seen {
		// A digest can overtake the rows it counts: ask only when two
		// digests in a row show us behind, or at once when the peer says
		// it has just been reconnected (its rows in between were lost).
		if p.suspect || m.Urgent {
			n.gap(m.From, p)
		}
		p.suspect = true
	} else {
		p.suspect = false
	}
	// Learn peers' stock of SKUs we have never seen, so that a hold for
	// them can borrow.
	for _, d := range m.Digest {
		if ValidSKU(d.SKU) != nil {
			continue
		}
		s := n.skus[d.SKU]
		if s == nil || s.recs[m.From] == nil {
			n.sku(d.SKU)
		}
	}
}

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
		s := n.skus[l.SKU]
		if s == nil {
			return false // unknown everywhere this node knows
		}
		have := n.available(s)
		if have >= l.Qty {
			continue
		}
		need := l.Qty - have
		plan := PlanBorrow(need, n.peerSurplus(s))
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
		n.addBorrow(&borrowOut{sku: a.sku, to: a.to, deadline: p.deadline, pend: p})
		n.stats.BorrowsSent++
		n.send(Message{Type: MsgBorrowReq, From: n.cfg.Region, To: a.to, ID: n.borrowID, SKU: a.sku, Qty: a.qty, Urgent: true})
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
		if n.allow != nil && !n.allow[r] {
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
	if err := ValidSKU(m.SKU); err != nil {
		return err
	}
	if m.Qty > MaxQty*MaxLines {
		return errorf(CodeInvalid, "borrow of %d units exceeds the limit", m.Qty)
	}
	n.peer(m.From)
	key := donationKey{from: m.From, id: m.ID}
	given, seen := n.donations[key]
	s := n.skus[m.SKU]
	if !seen && s != nil && s.own != nil {
		avail := n.available(s)
		floor := uint64(0)
		if !m.Urgent {
			floor = n.donorFloor(s)
		}
		if avail > floor {
			given = min(m.Qty, avail-floor)
		}
		if given > 0 {
			s.own.addSent(m.From, given)
			n.touchOwn(s.own)
			n.stats.DonatedUnits += given
		}
		n.rememberDonation(key, given)
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
}

// addBorrow records an own request in flight under borrowID.
func (n *Node) addBorrow(b *borrowOut) {
	n.borrows[n.borrowID] = b
	if len(n.borrows) == 1 || b.deadline.Before(n.borrowScanAt) {
		n.borrowScanAt = b.deadline
	}
}

func (n *Node) rememberDonation(k donationKey, given uint64) {
	if len(n.donationLog) >= n.cfg.MaxDonations {
		old := n.donationLog[0]
		n.donationLog = n.donationLog[1:]
		delete(n.donations, old)
	}
	n.donations[k] = given
	n.donationLog = append(n.donationLog, k)
}

// donorFloor is what a region keeps for itself when asked for background
// (non-urgent) units: its own top-up threshold, at least DonorFloor.
func (n *Node) donorFloor(s *skuState) uint64 {
	return max(n.cfg.DonorFloor, n.topUpThreshold(s))
}

func (n *Node) onBorrowResp(m *Message) {
	b := n.borrows[m.ID]
	if b != nil && b.to == m.From {
		delete(n.borrows, m.ID)
		n.stats.BorrowsAnswered++
		n.stats.BorrowUnitsIn += m.Qty
		if b.topUp {
			if s := n.skus[b.sku]; s != nil && s.topUp == m.ID {
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
			} else if n.tryGrant(&p.cmd, p.lines, p.waiters) == nil {
				p.done = true
			} else if p.asks <= 0 {
				n.reject(&p.cmd, p.lines, p.waiters)
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
const maxAdviceLead = time.Hour

func (n *Node) onAdvice(m *Message) {
	if m.Epoch <= n.adviceEpoch || m.Epoch > uint64(max(0, n.now.Add(maxAdviceLead).UnixMilli())) {
		n.stats.AdviceIgnored++
		return
	}
	n.adviceEpoch = m.Epoch
	n.setHomes(m.Homes)
	applied := false
	for _, mv := range m.Moves {
		if mv.From != n.cfg.Region || mv.To == n.cfg.Region || ValidRegion(mv.To) != nil || ValidSKU(mv.SKU) != nil {
			continue
		}
		if n.allow != nil && !n.allow[mv.To] {
			continue
		}
		if p := n.peers[mv.To]; p != nil && p.fenced {
			continue // units sent to a fenced region would be stranded there
		}
		s := n.skus[mv.SKU]
		if s == nil || s.own == nil {
			continue
		}
		// Units that holds waiting on a borrow need here are not surplus.
		give := AdviceGive(n.available(s), n.donorFloor(s)+n.pendingNeed(mv.SKU), mv.Qty)
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
	if n.cfg.LowWater == 0 && n.cfg.TopUpHorizon == 0 {
		return
	}
	if n.available(s) < n.topUpThreshold(s) {
		n.lowSKUs[s.sku] = struct{}{}
	}
}

func (n *Node) topUpThreshold(s *skuState) uint64 {
	return TopUpThreshold(n.cfg.LowWater, n.demandNow(s), n.cfg.TopUpHorizon)
}

// tick runs the time-driven work: expiry, borrow deadlines, top-ups,
// digests, retention.
func (n *Node) tick() {
	if n.fence.st.Fenced && n.fenceTick() {
		return
	}
	n.sweep()
	n.expirePending()
	n.topUps()
	n.retryRepairs()
	n.pushHomes()
	n.digest()
}

func (n *Node) sweep() {
	for budget := n.cfg.MaxSweepPerTick; budget > 0 && n.expiry.Len() > 0; {
		it := n.expiry[0]
		if it.at > nanos(n.now) {
			break
		}
		popTime(&n.expiry)
		h := n.holds[it.id]
		if h == nil || h.State != Held {
			continue // stale entry: finished or retired
		}
		if at := nanos(h.Expires); at > it.at {
			n.expiry.push(timeItem{at: at, id: h.ID}) // extended: one entry per hold
			continue
		}
		n.expire(h)
		budget--
	}
	for budget := n.cfg.MaxSweepPerTick; budget > 0 && n.retire.Len() > 0 && n.retire[0].at <= nanos(n.now); budget-- {
		it := popTime(&n.retire)
		if h := n.holds[it.id]; h != nil && h.State.Terminal() {
			delete(n.holds, it.id)
			n.out.Persist.DeletedHolds = append(n.out.Persist.DeletedHolds, it.id)
		}
	}
	for budget := n.cfg.MaxSweepPerTick; budget > 0 && n.idemExpiry.Len() > 0 && n.idemExpiry[0].at <= nanos(n.now); budget-- {
		it := popTime(&n.idemExpiry)
		if e := n.idem[it.id]; e != nil && !e.Expires.After(n.now) {
			delete(n.idem, it.id)
			// Added and expired within this Ready (a tiny IdemTTL): the
			// delete wins whatever order the runtime applies the batch in.
			for i := range n.out.Persist.Idem {
				if n.out.Persist.Idem[i].Key == it.id {
					n.out.Persist.Idem = append(n.out.Persist.Idem[:i], n.out.Persist.Idem[i+1:]...)
					break
				}
			}
			n.out.Persist.DeletedIdem = append(n.out.Persist.DeletedIdem, it.id)
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
				if b.topUp {
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
		s := n.skus[sku]
		delete(n.lowSKUs, sku)
		if s.topUp != 0 || n.homed(sku) {
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
		n.send(Message{Type: MsgBorrowReq, From: n.cfg.Region, To: to, ID: n.borrowID, SKU: sku, Qty: qty})
	}
}

func subFloor(a, floor uint64) uint64 {
	if a > floor {
		return a - floor
	}
	return 0
}

func (n *Node) digest() {
	if n.cfg.DigestInterval < 0 || n.now.Sub(n.lastDigest) < n.cfg.DigestInterval {
		return
	}
	n.lastDigest = n.now
	m := Message{Type: MsgDigest, From: n.cfg.Region, Seq: n.seq, Urgent: n.urgentDigest, Seen: n.seenList(),
		Fenced: n.fence.st.Fenced && !n.fence.st.Probation}
	n.urgentDigest = false
	k := min(len(n.skuOrder), n.cfg.MaxDigestSKUs)
	for i := 0; i < k; i++ {
		if n.digestNext >= len(n.skuOrder) {
			n.digestNext = 0
		}
		s := n.skus[n.skuOrder[n.digestNext]]
		n.digestNext++
		if s.own == nil && s.demandT.IsZero() {
			continue
		}
		d := SKUDigest{SKU: s.sku, Available: n.available(s), Rejected: s.reject,
			DemandMilli: uint64(n.demandNow(s) * 1000)}
		if s.own != nil {
			d.Held = s.own.Held()
		}
		m.Digest = append(m.Digest, d)
	}
	n.send(m)
}

func popTime(h *timeHeap) timeItem { return h.pop() }

// checkRowBounds rejects a peer row that breaks the wire limits or returns
// more units than it reserved.
func checkRowBounds(r *Row) *Error {
	if r.Seq >= maxCounter || r.Minted >= maxCounter || r.Reserved >= maxCounter || r.Released >= maxCounter ||
		r.Sold >= maxCounter || r.Shrunk >= maxCounter || len(r.Sent) > MaxRegions {
		return errorf(CodeInvalid, "row %s/%s is out of range", r.Region, r.SKU)
	}
	if r.Released+r.Sold > r.Reserved {
		return errorf(CodeInvalid, "row %s/%s returns more than it reserved", r.Region, r.SKU)
	}
	for i := range r.Sent {
		if r.Sent[i].Qty >= maxCounter || ValidRegion(r.Sent[i].To) != nil || (i > 0 && r.Sent[i-1].To >= r.Sent[i].To) {
			return errorf(CodeInvalid, "row %s/%s has a bad transfer list", r.Region, r.SKU)
		}
	}
	return nil
}
