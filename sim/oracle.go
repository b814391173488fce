package sim

import (
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// counters are the fields of an own row that the oracle needs.
type counters struct {
	minted, reserved, released, sold, shrunk uint64
}

func countersOf(r *escrow.Row) counters {
	return counters{r.Minted, r.Reserved, r.Released, r.Sold, r.Shrunk}
}

func (c *counters) add(o counters) {
	c.minted += o.minted
	c.reserved += o.reserved
	c.released += o.released
	c.sold += o.sold
	c.shrunk += o.shrunk
}

func (c *counters) sub(o counters) {
	c.minted -= o.minted
	c.reserved -= o.reserved
	c.released -= o.released
	c.sold -= o.sold
	c.shrunk -= o.shrunk
}

// ledger sums the durable holds of one region and SKU by state.
type ledger struct{ reserved, sold, returned uint64 }

type ackRec struct {
	seq   uint64 // replySeq of the reply that acknowledged state
	state escrow.HoldState
	lines []escrow.Line
	owner int
	lost  bool
}

// oracle sees everything: every region's own rows as they leave the node
// (in memory) and as they become durable, every durable hold, and every
// reply that reached a client. The checkers compare the system against it.
type oracle struct {
	w   *world
	S   int
	mem []counters // [region*S+sku] own rows as of the last Ready
	dur []counters // [region*S+sku] own rows as of the last durable write
	agg []counters // [sku] sum of mem over regions
	led []ledger   // [region*S+sku] durable holds
	// holds is the durable state of every hold ever written.
	holds   map[string]escrow.HoldState
	deleted map[string]bool
	// Events (events_check.go): holds ever created, durable event
	// sequence per region.
	evCreated map[string]bool
	evSeqs    []uint64
	maxOver   []int64
	flagged   []bool

	acked map[string]*ackRec
	// byIdem: the hold each idempotency key created (double_holds).
	byIdem map[string]string
	// deletedAt: when each deleted hold was deleted (soaks only: prune).
	deletedAt map[string]int64
	ackedBy   [][]string

	touched []int
	// touchGen[s] == gen: s is in touched (one pass of onReady or
	// onDurable), so touch is O(1), not a scan of touched.
	touchGen []uint64
	gen      uint64
	soldOut  []bool // [region*S+sku] refused for lack of stock since the last restock

	// Transfers as of the latest own rows, for the true available(r).
	memSent []escrow.Row // [region*S+sku] only Sent is used
	durSent []escrow.Row // [region*S+sku] durable Sent
	recv    []uint64     // [region*S+sku] Σ over owners' rows of Sent[region]
	negFlag []bool       // [region*S+sku] negative available reported
	// What stores that went back in time had given out beyond the rows
	// restored (storage_faults_fence.go); nil until one did.
	ghost     []counters // [region*S+sku]
	ghostSent []uint64   // [region*S+sku] units lent, summed over borrowers
	// ghostSentTo: the same per borrower, [(region*S+sku)*nReg+borrower]
	// (wrapping like ghostSent; read signed).
	ghostSentTo []uint64
}

func newOracle(w *world) *oracle {
	S := len(w.setup.SKUs)
	N := w.nReg
	o := &oracle{
		w: w, S: S,
		mem: make([]counters, N*S), dur: make([]counters, N*S), agg: make([]counters, S),
		led: make([]ledger, N*S), holds: map[string]escrow.HoldState{}, deleted: map[string]bool{},
		maxOver: make([]int64, S), flagged: make([]bool, N*S),
		acked: map[string]*ackRec{}, ackedBy: make([][]string, N), soldOut: make([]bool, N*S), touchGen: make([]uint64, S),
		memSent: make([]escrow.Row, N*S), durSent: make([]escrow.Row, N*S), recv: make([]uint64, N*S),
		negFlag: make([]bool, N*S), byIdem: map[string]string{},
	}
	if w.o.Soak {
		o.deletedAt = map[string]int64{}
	}
	return o
}

// globalAvail is Σ available over every region's latest own row: the
// units a shopper could get somewhere right now (transfers cancel out).
func (o *oracle) globalAvail(s int) int64 {
	a := &o.agg[s]
	return int64(a.minted) - int64(a.shrunk) - int64(a.reserved) + int64(a.released)
}

func (o *oracle) couldGrant(lines []escrow.Line, locs []escrow.LineLocations) bool {
	if len(locs) > 0 {
		return o.couldGrantAt(lines, locs)
	}
	for _, l := range lines {
		s, ok := o.w.skuIdx[l.SKU]
		// (Units stranded in a region fenced for good are not there to sell.)
		if !ok || o.globalAvail(s)-o.w.strandedAt(s) < int64(l.Qty) {
			return false
		}
	}
	return true
}

// noteStockReject measures stranded stock: when region r first refuses
// SKU s for lack of stock since s was last restocked (its sell-out), the
// units still available anywhere are stranded. In a flash sale only the
// flash SKU counts.
func (o *oracle) noteStockReject(r, s int, avail int64) {
	k := r*o.S + s
	if (o.w.wl.flashLike() && s != 0) || o.soldOut[k] {
		return
	}
	o.soldOut[k] = true
	o.w.res.strandedSum += uint64(max(0, avail))
	o.w.res.strandedN++
}

func (o *oracle) touch(s int) {
	if o.touchGen[s] == o.gen {
		return
	}
	o.touchGen[s] = o.gen
	o.touched = append(o.touched, s)
}

// untouch empties touched for a new pass.
func (o *oracle) untouch() {
	o.touched = o.touched[:0]
	o.gen++
}

// onReady sees the own rows a Ready carries: the node's memory. No
// oversell: Σ Sold + Σ held ≤ Σ Minted − Σ Shrunk, i.e. global available
// never below zero.
func (o *oracle) onReady(ep *endpoint, rd *escrow.Ready) {
	o.untouch()
	if o.w.mb != nil {
		o.w.memberReady(ep, rd)
	}
	for i := range rd.Persist.Rows {
		r := &rd.Persist.Rows[i]
		if r.Region != ep.name {
			continue
		}
		s, ok := o.w.skuIdx[r.SKU]
		if !ok {
			continue
		}
		k := ep.idx*o.S + s
		if r.Minted > o.mem[k].minted {
			// Restocked: a new sell-out may come.
			for i := 0; i < o.w.nReg; i++ {
				o.soldOut[i*o.S+s] = false
			}
		}
		o.agg[s].sub(o.mem[k])
		o.mem[k] = countersOf(r)
		o.agg[s].add(o.mem[k])
		o.setSent(k, s, r.Sent)
		o.touch(s)
	}
	for _, s := range o.touched {
		o.checkAvailable(ep, s)
		if a := o.globalAvail(s); a < 0 && -a > o.maxOver[s] {
			if o.maxOver[s] == 0 {
				o.w.fail("oversell: %s: sold+held exceeds minted-shrunk by %d (at %s)", o.w.setup.SKUs[s], -a, ep.name)
			}
			o.maxOver[s] = -a
		}
	}
}

// setSent replaces the transfers of own row k (of SKU s).
func (o *oracle) setSent(k, s int, sent []escrow.Transfer) {
	for _, t := range o.memSent[k].Sent {
		if i, ok := o.w.byName[t.To]; ok && i < o.w.nReg {
			o.recv[i*o.S+s] -= t.Qty
		}
	}
	o.memSent[k].Sent = append(o.memSent[k].Sent[:0], sent...)
	for _, t := range sent {
		if i, ok := o.w.byName[t.To]; ok && i < o.w.nReg {
			o.recv[i*o.S+s] += t.Qty
		}
	}
}

// checkAvailable: a region only spends what it owns, so its true
// available count (over every owner's latest row) is never negative. Only
// the region's own actions lower it, so it is checked when they happen.
func (o *oracle) checkAvailable(ep *endpoint, s int) {
	k := ep.idx*o.S + s
	m := &o.mem[k]
	a := int64(m.minted) + int64(o.recv[k]) - int64(o.memSent[k].SentTotal()) - int64(m.reserved) +
		int64(m.released) - int64(m.shrunk) + o.ghostAvail(k)
	if a < 0 && !o.negFlag[k] {
		o.negFlag[k] = true
		o.w.res.ConservationErrors++
		o.w.fail("available(%s, %s) = %d: spent units it did not own", ep.name, o.w.setup.SKUs[s], a)
	}
}

// onCrash forgets what the region had not made durable.
func (o *oracle) onCrash(ep *endpoint) {
	for s := 0; s < o.S; s++ {
		k := ep.idx*o.S + s
		o.agg[s].sub(o.mem[k])
		o.mem[k] = o.dur[k]
		o.agg[s].add(o.mem[k])
		o.setSent(k, s, o.durSent[k].Sent)
	}
}

func contribution(st escrow.HoldState, qty uint64) ledger {
	switch st {
	case escrow.Confirmed:
		return ledger{sold: qty}
	case escrow.Released, escrow.Expired:
		return ledger{returned: qty}
	}
	return ledger{}
}

// onDurable follows every durable write: own rows and holds. Every unit a
// row reserved, sold or returned must match its holds' states, so units of
// expired holds must come back as Released.
func (o *oracle) onDurable(ep *endpoint, p *escrow.Persist) {
	o.untouch()
	for i := range p.Rows {
		r := &p.Rows[i]
		if r.Region != ep.name {
			continue
		}
		if s, ok := o.w.skuIdx[r.SKU]; ok {
			k := ep.idx*o.S + s
			if r.Minted > o.dur[k].minted {
				o.noteReturned(s, r.Minted-o.dur[k].minted)
			}
			o.dur[k] = countersOf(r)
			o.durSent[k].Sent = append(o.durSent[k].Sent[:0], r.Sent...)
			o.touch(s)
		}
	}
	for i := range p.Holds {
		h := p.Holds[i]
		prev, seen := o.holds[h.ID]
		o.checkHoldClock(ep, h, prev, seen)
		if seen && prev == h.State {
			continue
		}
		for _, l := range h.Lines {
			s, ok := o.w.skuIdx[l.SKU]
			if !ok {
				continue
			}
			L := &o.led[ep.idx*o.S+s]
			if !seen {
				L.reserved += l.Qty
			} else {
				c := contribution(prev, l.Qty)
				L.sold -= c.sold
				L.returned -= c.returned
			}
			c := contribution(h.State, l.Qty)
			if c.returned > 0 && (!seen || contribution(prev, l.Qty).returned == 0) {
				o.noteReturned(s, c.returned)
			}
			L.sold += c.sold
			L.returned += c.returned
			o.touch(s)
		}
		o.holds[h.ID] = h.State
	}
	for _, id := range p.DeletedHolds {
		o.deleted[id] = true
		if o.deletedAt != nil {
			o.deletedAt[id] = o.w.now
		}
	}
	o.onDurableWaits(ep, p)
	for _, s := range o.touched {
		k := ep.idx*o.S + s
		d, l := o.dur[k], o.led[k]
		if (d.reserved != l.reserved || d.sold != l.sold || d.released != l.returned) && !o.flagged[k] {
			o.flagged[k] = true
			o.w.res.Unreturned++
			o.w.fail("units: %s/%s row reserved=%d sold=%d released=%d but its holds say reserved=%d sold=%d returned=%d",
				ep.name, o.w.setup.SKUs[s], d.reserved, d.sold, d.released, l.reserved, l.sold, l.returned)
		}
	}
}

// legal reports whether a hold acknowledged in state old may now be in
// state cur. A held hold past its deadline is expired for every operation
// before the sweeper writes it, so "expired" may still be stored as held.
func legal(old, cur escrow.HoldState) bool {
	switch old {
	case escrow.Held:
		return true
	case escrow.Expired:
		return cur == escrow.Expired || cur == escrow.Held
	}
	return old == cur
}

func sameLines(a, b []escrow.Line) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (o *oracle) lose(a *ackRec, id, why string) {
	if a.lost {
		return
	}
	a.lost = true
	o.w.res.LostAcked++
	o.w.fail("acknowledged hold %s (%s) %s", id, a.state, why)
}

// observe checks a reply that reached a client against what earlier
// replies acknowledged, and remembers what it acknowledges.
func (o *oracle) observe(req *request) {
	r := &req.reply
	if r.Hold != nil {
		id := r.Hold.ID
		a := o.acked[id]
		if a == nil {
			if req.cmd.Kind != escrow.CmdHold {
				return
			}
			owner, err := escrow.OwnerOf(id)
			if err != nil {
				o.w.fail("hold id %q: %v", id, err)
				return
			}
			oi := o.w.byName[owner]
			a = &ackRec{seq: req.replySeq, state: r.Hold.State, lines: append([]escrow.Line(nil), r.Hold.Lines...), owner: oi}
			o.acked[id] = a
			o.ackedBy[oi] = append(o.ackedBy[oi], id)
			return
		}
		if req.replySeq < a.seq {
			return // an older snapshot overtaken on the way: not a later answer
		}
		if !legal(a.state, r.Hold.State) {
			o.lose(a, id, "answered later as "+r.Hold.State.String())
		} else if !sameLines(a.lines, r.Hold.Lines) {
			o.lose(a, id, "answered later with other lines")
		}
		if a.state == escrow.Held {
			a.state, a.seq = r.Hold.State, req.replySeq
		}
		return
	}
	if r.Err != nil && r.Err.Code == escrow.CodeNotFound && req.cmd.HoldID != "" {
		if a := o.acked[req.cmd.HoldID]; a != nil && req.replySeq >= a.seq && !o.deleted[req.cmd.HoldID] {
			o.lose(a, req.cmd.HoldID, "answered later as not found")
		}
	}
}

// checkAcked compares every hold a client was told about with the owner's
// durable state (after a restart, and at the end).
func (o *oracle) checkAcked(ep *endpoint, justLoaded bool) {
	for _, id := range o.ackedBy[ep.idx] {
		a := o.acked[id]
		if a.lost {
			continue
		}
		// On the simulated disk, and in the node rebuilt from it.
		h, ok := ep.dur.holds[id]
		nh, nok := ep.node.Hold(id)
		switch {
		case !ok && o.deleted[id]:
		case !ok:
			o.lose(a, id, "is not in "+ep.name+"'s durable state")
		case !legal(a.state, h.State):
			o.lose(a, id, "is stored as "+h.State.String())
		case !sameLines(a.lines, h.Lines):
			o.lose(a, id, "is stored with other lines")
		case !justLoaded:
			// Later the node may legally retire a terminal hold first.
		case !nok:
			o.lose(a, id, "is stored but not loaded by "+ep.name)
		case !legal(a.state, nh.State) || !sameLines(a.lines, nh.Lines):
			o.lose(a, id, "is loaded as "+nh.State.String())
		}
	}
}

// final runs the end-of-run checkers.
func (o *oracle) final() {
	w := o.w
	for _, ep := range w.eps[:w.nReg] {
		if ep.down {
			continue
		}
		o.checkAcked(ep, false)
		if w.writesRefused(ep.idx) {
			// Fenced: it expires nothing (its row stays as it was).
			w.res.FencedRegions++
			continue
		}
		// Every hold past its deadline must have been expired (its
		// units returned) by the sweeper.
		now := w.nodeNow(ep)
		stale := 0
		for _, h := range ep.dur.holds {
			if h.State == escrow.Held && !now.Before(h.Expires.Add(time.Second)) {
				stale++
			}
		}
		if stale > 0 {
			w.res.Unreturned += uint64(stale)
			w.fail("%s: %d holds past their deadline were never expired", ep.name, stale)
		}
	}
	if w.res.strandedN > 0 {
		w.res.StrandedAtSellout = float64(w.res.strandedSum) / float64(w.res.strandedN)
	}
	// Conservation over the owners' latest rows, and over every region's
	// view once converged.
	for s, sku := range w.setup.SKUs {
		v := escrow.View{}
		for i, ep := range w.eps[:w.nReg] {
			if r := w.retiredRow(i, sku); r != nil {
				v[ep.name] = r // the removed region's last row (membership)
			}
			if ep.down {
				continue
			}
			if r := w.ownerRowForChecks(ep, sku); r != nil {
				v[ep.name] = r
			}
		}
		if err := v.CheckConservation(); err != nil {
			w.res.ConservationErrors++
			w.fail("conservation of %s over the owners' rows: %v", sku, err)
		}
		if w.res.Unconverged == 0 {
			for _, ep := range w.eps[:w.nReg] {
				if ep.down || w.writesRefused(ep.idx) {
					continue // (a fenced region's own row is behind)
				}
				if err := w.viewForChecks(ep, sku).CheckConservation(); err != nil {
					w.res.ConservationErrors++
					w.fail("conservation of %s in %s's view: %v", sku, ep.name, err)
				}
			}
		}
		w.res.Oversell += uint64(o.maxOver[s])
	}
}
