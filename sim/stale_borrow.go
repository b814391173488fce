package sim

import (
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// The checker stale_borrows_honoured (runs with the named faults; issue 21):
// a donor never moves units for a borrow request its requester had
// certainly given up on, as far as the donor could know. The simulator
// keeps its own record of when each borrow request was sent (the
// requester's clock when its message left, never earlier than the stamp
// the request carries) and, per donor and requester, the highest clock
// reading the requester stated in a digest or borrow request that the
// donor accepted in its current life (a restarted donor has forgotten
// them: escrow keeps the marks in memory), bounded as the donor bounds it
// (at most a borrow window past the donor's clock: a requester whose clock
// runs ahead cannot be judged). A borrow request delivered when that
// reading is more than the requester's longest borrow window past the
// request's sending is stale: if the donor's step gives units in answer to
// a borrow (BorrowUnitsOut rises; advice and pushes to homes in the same
// step are not answers), the checker fails. stale_borrows_refused counts
// the donors' refusals (escrow.Stats.BorrowStaleRefused).
type staleBorrows struct {
	sent  map[staleKey]int64 // borrow request (requester, id) -> requester's clock at sending, Unix ms
	heard []staleHeard       // [donor*N+requester]
}

type staleKey struct {
	from int
	id   uint64
}

type staleHeard struct {
	inc uint32 // the donor's incarnation the mark belongs to
	ms  uint64
}

func newStaleBorrows(nReg int) *staleBorrows {
	return &staleBorrows{sent: map[staleKey]int64{}, heard: make([]staleHeard, nReg*nReg)}
}

// noteStaleSend records when a region's borrow request left.
func (w *world) noteStaleSend(src int, m *escrow.Message) {
	sb := w.nf.sb
	if sb == nil || m.Type != escrow.MsgBorrowReq || src >= w.nReg || w.eps[src].node == nil {
		return
	}
	k := staleKey{src, m.ID}
	if _, ok := sb.sent[k]; !ok {
		sb.sent[k] = w.eps[src].node.Now().UnixMilli()
	}
}

// stepStale steps a digest or borrow request to a region and runs the
// checker; it reports false for other messages (not stepped).
func (w *world) stepStale(ep *endpoint, m *escrow.Message) bool {
	sb := w.nf.sb
	if sb == nil || (m.Type != escrow.MsgDigest && m.Type != escrow.MsgBorrowReq) || ep.idx >= w.nReg || ep.node == nil {
		return false
	}
	from, ok := w.byName[m.From]
	if !ok || from >= w.nReg {
		return false
	}
	h := &sb.heard[ep.idx*w.nReg+from]
	if h.inc != ep.inc {
		*h = staleHeard{inc: ep.inc}
	}
	stale := false
	if m.Type == escrow.MsgBorrowReq {
		if at, ok := sb.sent[staleKey{from, m.ID}]; ok && at > 0 {
			stale = escrow.StaleBorrow(uint64(at), h.ms, ep.node.StaleWindow()) // every region has the same window
		}
	}
	donated := ep.node.Stats().BorrowUnitsOut
	errs := w.res.MsgErrors
	limit := uint64(max(0, ep.node.Now().Add(ep.node.StaleWindow()).UnixMilli()))
	w.step(ep, escrow.Input{Msg: m})
	if ep.down || ep.node == nil {
		return true
	}
	if stale && ep.node.Stats().BorrowUnitsOut > donated {
		w.res.StaleBorrowsHonoured++
		if w.res.StaleBorrowsHonoured == 1 {
			w.fail("stale_borrows_honoured: %s lent %d units of %s to %s for borrow %d, sent %v before %s's latest clock reading it had",
				ep.name, ep.node.Stats().BorrowUnitsOut-donated, m.SKU, m.From, m.ID,
				time.Duration(int64(h.ms)-sb.sent[staleKey{from, m.ID}])*time.Millisecond, m.From)
		}
	}
	if w.res.MsgErrors == errs && m.Epoch > h.ms {
		h.ms = min(m.Epoch, max(h.ms, limit))
	}
	return true
}
