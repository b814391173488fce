package sim

// The membership checker (membership.go): probation, non-members,
// drained units.

import (
	"slices"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// memberInput watches what the joiner hears: digests of members.
func (w *world) memberInput(ep *endpoint, in *escrow.Input) {
	mb := w.mb
	if ep.idx != mb.joiner || in.Msg == nil || in.Msg.Type != escrow.MsgDigest {
		return
	}
	if slices.Contains(mb.conf[mb.joiner], in.Msg.From) {
		mb.heard[in.Msg.From] = true
	}
}

// memberReady checks a Ready of the joiner: its own row may change only
// once its probation may have ended.
func (w *world) memberReady(ep *endpoint, rd *escrow.Ready) {
	mb := w.mb
	if mb.stopped && ep.idx != mb.x {
		w.sentToRemoved(ep, rd)
	}
	if ep.idx != mb.joiner || mb.wrote {
		return
	}
	own := false
	for i := range rd.Persist.Rows {
		own = own || rd.Persist.Rows[i].Region == ep.name
	}
	if !own {
		return
	}
	mb.wrote = true
	waited := ep.node.Now().Sub(mb.probeStart)
	all := true
	for _, m := range mb.conf[mb.joiner] {
		all = all && (m == ep.name || mb.heard[m])
	}
	if waited < mbProbationMin || (!all && waited < mbProbationMax) {
		w.membershipError("new region %s changed its own row %v after its empty start, before its probation "+
			"could end (every other member heard: %v)", ep.name, waited.Round(time.Millisecond), all)
	}
}

// sentToRemoved checks a Ready of a member after the removal: it may send
// the removed region units only while its node still lists it (a late or
// replayed borrow request of the removed region, before this member's
// restart): those units are stranded, and counted.
func (w *world) sentToRemoved(ep *endpoint, rd *escrow.Ready) {
	o := w.orc
	x := w.eps[w.mb.x].name
	for i := range rd.Persist.Rows {
		r := &rd.Persist.Rows[i]
		s, ok := w.skuIdx[r.SKU]
		if r.Region != ep.name || !ok {
			continue
		}
		old, cur := sentTo(o.memSent[ep.idx*o.S+s].Sent, x), sentTo(r.Sent, x)
		if cur > old && !slices.Contains(ep.node.Members(), x) {
			w.membershipError("%s, whose members no longer list %s, sent it %d units of %s after its removal",
				ep.name, x, cur-old, r.SKU)
		}
	}
}

// ownDurable returns a region's durable own rows by SKU.
func (w *world) ownDurable(ep *endpoint) map[string]escrow.Row {
	out := map[string]escrow.Row{}
	for k, r := range ep.dur.rows {
		if k[1] == ep.name {
			out[k[0]] = r
		}
	}
	return out
}

func sentTo(sent []escrow.Transfer, to string) uint64 {
	for _, t := range sent {
		if t.To == to {
			return t.Qty
		}
	}
	return 0
}

func (w *world) membershipError(format string, args ...any) {
	w.res.MembershipErrors++
	w.fail("membership_errors: "+format, args...)
}

// storeWentBack reports whether a region's store was sent back in time
// (storage_faults_fence.go) during the run.
func (w *world) storeWentBack(ep *endpoint) bool { return ep.rt != nil && ep.rt.sb.wentBack }

// retiredRow is the last own row of SKU sku of a region that is down for
// good (the removed region), for conservation; nil otherwise.
func (w *world) retiredRow(i int, sku string) *escrow.Row {
	mb := w.mb
	if mb == nil || i != mb.x || !mb.stopped {
		return nil
	}
	if r, ok := mb.last[sku]; ok {
		return &r
	}
	return nil
}

// retiredCopy is the copy of region owner's row of SKU sku that the
// removed region kept in its store (from which retiredRow is taken), once
// it is down for good; nil otherwise.
func (w *world) retiredCopy(i int, sku, owner string) *escrow.Row {
	mb := w.mb
	if mb == nil || i != mb.x || !mb.stopped || !w.eps[i].down {
		return nil
	}
	if r, ok := w.eps[i].dur.rows[[2]string{sku, owner}]; ok {
		return &r
	}
	return nil
}

// finishMembership runs the membership checker at the end of the run.
func (w *world) finishMembership() {
	mb := w.mb
	if mb == nil {
		return
	}
	if !mb.joined || !mb.left {
		w.membershipError("the membership change did not complete (joined %v, left %v)", mb.joined, mb.left)
		return
	}
	if mb.leaveSkipped {
		return // nobody was removed
	}
	o := w.orc
	x := w.eps[mb.x]
	for s, sku := range w.setup.SKUs {
		// It stopped with nothing available or held: what it has now
		// was sent to it since (sentToRemoved), stranded.
		m := o.mem[mb.x*o.S+s]
		mb.stranded += uint64(max(0, o.trueAvail(mb.x, s))) + m.reserved - m.released - m.sold
		if off := o.dur[mb.x*o.S+s].shrunk - mb.base[s]; off != mb.restocked[s]+mb.owedFenced[s] {
			w.membershipError("%d units of %s written off at %s, %d restocked elsewhere, %d owed to a fenced owner",
				off, sku, x.name, mb.restocked[s], mb.owedFenced[s])
		}
		fin, had := mb.final[sku]
		for i, ep := range w.eps[:w.nReg] {
			if i == mb.x || ep.down {
				continue
			}
			v := ep.node.View(sku)[x.name]
			switch {
			case v == nil && !had:
			case had && w.storeWentBack(ep) && (v == nil || regressed(v, &fin) == ""):
				// Its store went back (wipe, rollback...): it lost the
				// newer copies with it, and nobody sends the removed
				// region's rows any more. Behind is all it may be.
			case v == nil || !had || !v.Equal(&fin):
				w.membershipError("%s's copy of removed region %s's row of %s is not its last row", ep.name, x.name, sku)
			}
		}
	}
}
