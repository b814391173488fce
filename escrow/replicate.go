package escrow

import (
	"sort"
	"time"
)

// This file holds replication between regions: the dispatch of peer
// messages, the merge of peer rows into this node's view, the sequence
// tracking that spots a gap and asks for a repair, the snapshots that
// answer one, the resync after a reconnect, and the digests a node sends
// and reads. Borrowing is in borrow.go, the time-driven work in tick.go.

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
	if err := n.admit(m); err != nil {
		return err
	}
	if m.Type != MsgAdvice {
		n.peer(m.From).heard = n.now
	}
	n.learnClock(m)
	// A region writes only its own rows: reject any row of another writer.
	if m.Type == MsgRows || m.Type == MsgBorrowResp {
		for i := range m.Rows {
			if m.Rows[i].Region != m.From {
				return errorf(CodeInvalid, "%s message from %s carries a row of %s", m.Type, m.From, m.Rows[i].Region)
			}
			if err := ValidStockKey(m.Rows[i].SKU); err != nil {
				return err
			}
			if m.Rows[i].SentTo(m.From) != 0 {
				return errorf(CodeInvalid, "row %s/%s sends to itself", m.From, m.Rows[i].SKU)
			}
			// The wire decoder checks these; messages handed over in
			// process (the simulator) must meet the same bounds.
			if err := checkRowBounds(&m.Rows[i]); err != nil {
				n.stats.OutOfBounds++
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
		s, ok := n.admitRow(in)
		if !ok {
			continue // never merged nor stored; counted
		}
		if p := n.peer(in.Region); in.Seq > p.maxRow {
			p.maxRow = in.Seq // (rows come from their writer only: onRows)
		}
		if s == nil {
			s = n.learnNew(in.SKU)
		}
		rec := s.rec(in.Region)
		var ch bool
		switch {
		case n.cfg.bugs.MergeBySum:
			ch = sumInto(&rec.Row, in)
		case n.cfg.bugs.LastRowWins && in.Reserved < rec.Row.Reserved:
			// The bug: the incoming (older) Reserved replaces the newer.
			rec.Row.Merge(in)
			rec.Row.Reserved, ch = in.Reserved, true
		default:
			ch = rec.Row.Merge(in)
		}
		if ch {
			rec.updated = n.clockNs
			n.markRow(rec)
			n.markChanged(s)
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
	if m.To == n.cfg.Region {
		if m.Qty == RepairBySKU {
			n.onSnapRows(m, p) // snapshot_sku.go
			return
		}
		// An answer in sequence order: the peer no longer answers in SKU
		// order (restarted without the SKU cache), so a snapshot in
		// progress from it is given up and seen is asked from again.
		p.snap = snapRecv{}
	} else {
		p.bcast.note(m.PrevSeq, m.Seq) // snapshot_sku.go
	}
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
		if !n.member(name) {
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
	n.send(n.repairRequest(from, p))
}

func (n *Node) onRepair(m *Message) {
	n.peer(m.From)
	if m.Qty == RepairBySKU && n.cache.on {
		n.onRepairBySKU(m) // snapshot_sku.go
		return
	}
	// A snapshot in chunks: past MaxRepairRows, the answer covers the
	// oldest changes, up to the sequence of its last row. That claim is
	// true (every own row whose latest change is in (m.Seq, upTo] is in
	// it; a row changed since is newer and in a later chunk), so the peer
	// takes upTo as seen and asks again from there. An urgent digest at
	// once tells it that there is more, so it need not wait for two.
	recs, cut := n.oldestOwn(m.Seq, n.cfg.MaxRepairRows)
	upTo := n.seq
	if cut {
		upTo = recs[len(recs)-1].Seq
		n.stats.RepairChunks++
		n.urgentDigest = true
		n.lastDigest = time.Time{}
	}
	rows := make([]Row, len(recs))
	for i, r := range recs {
		rows[i] = r.Row.Clone()
	}
	n.stats.RepairsServed++
	n.stats.RepairRowsServed += uint64(len(rows))
	// Rows not yet broadcast are included: the answer goes out after this
	// Ready is persisted, like every message.
	for _, msg := range n.rowsMessages(m.From, m.Seq, upTo, rows) {
		n.send(msg)
	}
}

func (n *Node) onDigest(m *Message) {
	p := n.peer(m.From)
	p.bySKU = m.Qty == RepairBySKU
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
		if ValidStockKey(d.SKU) != nil {
			continue
		}
		if n.skus[d.SKU] == nil && (!n.cache.on || !n.stored(d.SKU)) {
			n.learnSKU(d.SKU)
		}
	}
}

func (n *Node) digest() {
	if n.cfg.DigestInterval < 0 || n.now.Sub(n.lastDigest) < n.cfg.DigestInterval {
		return
	}
	n.lastDigest = n.now
	m := Message{Type: MsgDigest, From: n.cfg.Region, Seq: n.seq, Urgent: n.urgentDigest, Seen: n.seenList(),
		Fenced: n.fenceHeld(), Epoch: n.clockStamp()}
	if n.cache.on {
		m.Qty = RepairBySKU // this node answers repairs in SKU order (snapshot_sku.go)
	}
	n.urgentDigest = false
	n.digestSKUs(&m)
	n.send(m)
}

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
