package escrow

import "time"

// Stale borrow requests: a donor refuses a borrow request its requester has
// certainly given up on.
//
// Under faults a borrow request can reach its donor long after it was sent:
// a late replay of an old message, a partition or a pause that held it back.
// Honouring it moves units to a requester that gave up on that borrow when
// its deadline passed (the hold it was for was answered long ago): they sit
// in a slice whose owner did not ask for them now, and when that owner has
// stopped for good (a removed region) nobody sells them.
//
// The requester stamps its clock reading (Unix milliseconds) in the
// otherwise unused Message.Epoch of its digests and of its borrow requests
// (no new field, no new wire version: every version encodes Epoch for every
// message type). Each donor keeps per peer a high-water mark of those stamps
// (peer.clockHW). A borrow deadline is at most staleWindow after its request
// was stamped, and a requester expires its borrows before it stamps a digest
// (tick), so a request stamped more than staleWindow below the requester's
// mark is one it has given up on: the donor answers it with nothing and its
// mark in Epoch (a refusal), moving no units. A requester that receives a
// refusal for a borrow it still awaits (its clock went back, say, across a
// restart) asks again at once with a fresh stamp if its hold still needs
// the units and its deadline allows, rather than waiting out the deadline;
// it does not ask again when the fresh stamp would be refused too.
//
// Bounds: a stamp of 0 (a release that does not stamp) is never stale; a
// mark is raised at most staleWindow past the donor's own clock, so a
// forged or broken far-future stamp makes the donor refuse only requests
// stamped before the donor's clock reading when it learned the stamp: a
// peer whose clock runs ahead of the donor's is never refused wrongly (its
// stale requests are then honoured: the check fails open), and one whose
// clock runs behind by d loses at most d of fresh requests. Marks live in memory only: a donor that
// restarts forgets them and honours stale requests until it hears the
// requester's next digest.

// staleWindow is the longest a requester waits for a borrow answer: a
// hold's stretched deadline (borrowTimeoutMax) or a top-up's
// (RepairTimeout).
func (n *Node) staleWindow() time.Duration {
	return max(n.borrowTimeoutMax(), n.cfg.RepairTimeout)
}

// StaleBorrow reports whether a borrow request stamped stamp (the
// requester's clock, Unix ms; 0: not stamped) is one its requester has
// certainly given up on, given the highest clock reading mark (Unix ms) of
// that requester known and the longest borrow deadline window. The window
// is rounded up to whole milliseconds and the comparison is strict, so that
// the truncation of both readings to milliseconds never makes a live
// request look stale.
func StaleBorrow(stamp, mark uint64, window time.Duration) bool {
	if stamp == 0 || mark <= stamp {
		return false
	}
	w := uint64((max(0, window) + time.Millisecond - 1) / time.Millisecond)
	return mark-stamp > w
}

// clockStamp is this node's clock reading for a stamp: Unix ms, 0 before
// 1970 (never stale).
func (n *Node) clockStamp() uint64 {
	return uint64(max(0, n.now.UnixMilli()))
}

// learnClock raises the mark of m's sender from the stamp of its digest or
// borrow request, at most staleWindow past this node's clock.
func (n *Node) learnClock(m *Message) {
	if m.Epoch == 0 || (m.Type != MsgDigest && m.Type != MsgBorrowReq) {
		return
	}
	limit := uint64(max(0, n.now.Add(n.staleWindow()).UnixMilli()))
	if p := n.peer(m.From); m.Epoch > p.clockHW {
		p.clockHW = min(m.Epoch, limit)
	}
}

// refuseStale answers a stale borrow request with nothing, and the
// requester's mark in Epoch, and reports whether it did.
func (n *Node) refuseStale(m *Message) bool {
	p := n.peer(m.From)
	if n.cfg.bugs.HonourStaleBorrows || !StaleBorrow(m.Epoch, p.clockHW, n.staleWindow()) {
		return false
	}
	n.stats.BorrowStaleRefused++
	n.send(Message{Type: MsgBorrowResp, From: n.cfg.Region, To: m.From, ID: m.ID, SKU: m.SKU, Epoch: p.clockHW})
	return true
}

// onStaleAnswer handles a refusal (a borrow answer with nothing and a mark
// in Epoch) of own borrow b (nil or another donor's if this node no longer
// awaits it: counted only). It reports whether it asked again, in which
// case the answer is otherwise ignored; if not, it is an answer of nothing.
func (n *Node) onStaleAnswer(id uint64, b *borrowOut, m *Message) bool {
	n.stats.BorrowStaleAnswers++
	if b == nil || b.to != m.From || b.topUp || b.pend == nil || b.pend.done || b.qty == 0 || !n.now.Before(b.pend.deadline) ||
		StaleBorrow(n.clockStamp(), m.Epoch, n.staleWindow()) {
		return false
	}
	delete(n.borrows, id)
	n.nextBorrowID()
	n.addBorrow(&borrowOut{sku: b.sku, to: b.to, deadline: b.deadline, pend: b.pend, qty: b.qty})
	n.stats.BorrowsSent++
	n.stats.BorrowStaleReasked++
	n.send(Message{Type: MsgBorrowReq, From: n.cfg.Region, To: b.to, ID: n.borrowID, SKU: b.sku, Qty: b.qty, Urgent: true,
		Epoch: n.clockStamp()})
	return true
}

// StaleWindow is the longest this node waits for a borrow answer: a
// request it stamped more than this below its later clock readings is one
// it has given up on (StaleBorrow).
func (n *Node) StaleWindow() time.Duration { return n.staleWindow() }

// PeerClock is the highest clock reading of peer r this node has learned
// from its digests and borrow requests (bounded as learnClock bounds it),
// zero if none.
func (n *Node) PeerClock(r string) time.Time {
	p := n.peers[r]
	if p == nil || p.clockHW == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(p.clockHW)).UTC()
}
