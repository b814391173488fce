package sim

// The drain of the region the membership fault removes (membership.go).

import (
	"strconv"

	"github.com/holdfast-io/holdfast/escrow"
)

// drainRestocks restocks elsewhere what the write-offs at the removed
// region made durable, with keyed restocks retried until durable.
func (w *world) drainRestocks() {
	mb := w.mb
	o := w.orc
	pending := make([]uint64, len(w.setup.SKUs))
	keep := mb.pend[:0]
	for _, p := range mb.pend {
		at := w.eps[p.at]
		switch _, ok := at.dur.idem[p.key]; {
		case ok:
			mb.restocked[p.s] += p.qty
			mb.drained += p.qty
		case at.inc != p.inc || at.down:
			// Lost with a crash before it was durable: issued again below.
		case at.node.Fence().Fenced && !at.node.HasReady() && !at.fsyncBusy && !w.regionBusy(at):
			// Refused: the region was fenced (its store went back, or a
			// restart probation) when the restock reached it, and nothing
			// of it is on its way to the store: issued again below, at a
			// region that takes it (drainTarget skips fenced ones).
		default:
			pending[p.s] += p.qty
			keep = append(keep, p)
		}
	}
	mb.pend = keep
	for s, sku := range w.setup.SKUs {
		off := o.dur[mb.x*o.S+s].shrunk - mb.base[s]
		owed := off - mb.restocked[s] - mb.unrestocked[s] - pending[s]
		if off < mb.restocked[s]+mb.unrestocked[s]+pending[s] || owed == 0 {
			continue
		}
		if o := w.ownerOf(sku); o >= 0 && o != mb.x && w.writesRefused(o) {
			// A location only a region refusing writes for good (its
			// store went back) may mint: nobody can restock it until
			// the operator replaces that region. The units are counted
			// as stranded (stranded_units), not restocked.
			mb.unrestocked[s] += owed
			mb.stranded += owed
			continue
		}
		t, key := w.drainTarget(sku)
		if t < 0 {
			continue
		}
		ep := w.eps[t]
		mb.keys++
		k := "drain-" + w.eps[mb.x].name + "-" + strconv.Itoa(mb.keys)
		w.nextReq++
		c := escrow.Command{Kind: escrow.CmdRestock, ReqID: w.nextReq, SKU: key, Qty: min(owed, escrow.MaxQty),
			IdemKey: k, IdemHash: owed}
		mb.pend = append(mb.pend, mbRestock{key: k, at: t, inc: ep.inc, s: s, qty: c.Qty})
		w.step(ep, escrow.Input{Cmd: &c})
	}
}

// drainTarget picks where drained units of key are restocked: the joiner
// or the next member that is up (the strategy's server of it), and the
// stock key there (a location of the removed region moves to one of the
// target's own). -1 when no member is up.
func (w *world) drainTarget(key string) (int, string) {
	mb := w.mb
	cands := []int{mb.joiner}
	for i := 1; i < w.nReg-1; i++ {
		cands = append(cands, (mb.x+i)%(w.nReg-1))
	}
	for _, c := range cands {
		if !w.mayRun(w.eps[c]) {
			continue
		}
		t := w.strat.Server(&w.setup, c)
		if t == mb.x || w.eps[t].down || w.eps[t].node.Fence().Fenced {
			continue
		}
		if len(w.setup.Locations) == 0 {
			return t, key
		}
		sku, _ := escrow.SplitStockKey(key)
		if o := w.ownerOf(key); o != mb.x && o >= 0 {
			if w.eps[o].down || !w.mayRun(w.eps[o]) {
				continue
			}
			return o, key
		}
		return t, escrow.StockKey(sku, w.eps[t].name+"_a")
	}
	return -1, ""
}

// drained reports whether the removed region may be stopped: nothing held
// or waiting there, nothing available (in its view and in truth: no unit
// on its way to it), no borrow of its in flight, every drained unit
// restocked, and every other member up with its last rows stored.
func (w *world) drained() bool {
	mb := w.mb
	ep := w.eps[mb.x]
	o := w.orc
	if ep.down || ep.fsyncBusy || w.regionBusy(ep) || ep.node.HasReady() || len(mb.pend) > 0 || ep.node.Fence().Fenced {
		return false
	}
	for s, sku := range w.setup.SKUs {
		k := mb.x*o.S + s
		m := &o.mem[k]
		// Units a region whose store went back lent it and it never
		// saw are out of reach (that region sends no rows any more):
		// they stay stranded in that region's ledger, counted as such,
		// and must not hold the drain up for good.
		unseen := int64(0)
		for f := range w.eps[:w.nReg] {
			if f != mb.x && w.writesRefused(f) {
				unseen += w.lentUnseenBy(f, mb.x, s)
			}
		}
		if ep.node.Available(sku) != 0 || o.trueAvail(mb.x, s)-unseen != 0 || m.reserved != m.released+m.sold {
			return false
		}
		if o.dur[k].shrunk-mb.base[s] != mb.restocked[s]+mb.unrestocked[s] {
			return false
		}
		if n, _ := ep.node.Waiting(sku); n > 0 {
			return false
		}
	}
	for _, e := range w.q.h {
		if e.kind == evMsg && e.msg != nil && e.msg.From == ep.name && e.msg.Type == escrow.MsgBorrowReq {
			return false
		}
	}
	for _, r := range ep.node.Rows() {
		if r.Region != ep.name {
			continue
		}
		for i, m := range w.eps[:w.nReg] {
			if i == mb.x || !w.mayRun(m) {
				continue
			}
			if m.down {
				return false
			}
			// Its stored copy, not only the one in memory: a member
			// that crashes before syncing the removed region's last
			// row would come back without it, with nobody left to send
			// it again.
			if seq, ok := m.node.RowSeq(r.SKU, ep.name); !ok || seq < r.Seq {
				return false
			}
			if d, ok := m.dur.rows[[2]string{r.SKU, ep.name}]; !ok || d.Seq < r.Seq {
				return false
			}
		}
	}
	return true
}

// trueAvail is available(r) of SKU s over every owner's latest row.
func (o *oracle) trueAvail(r, s int) int64 {
	k := r*o.S + s
	m := &o.mem[k]
	return int64(m.minted) + int64(o.recv[k]) - int64(o.memSent[k].SentTotal()) - int64(m.reserved) +
		int64(m.released) - int64(m.shrunk)
}
