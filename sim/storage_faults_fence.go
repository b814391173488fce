package sim

// Storage faults that send a region's store back in time (region runtime
// only), each caught by the store fence (escrow/fence.go):
//
//   - wipe: the region's data directory is emptied while it is down; it
//     restarts on an empty store.
//   - rollback: a copy of the directory (its synced image) is taken at a
//     random time, and later the region restarts from that copy.
//   - fsynclie: for a few seconds the disk acknowledges fsyncs without
//     keeping the data: the window ends with a crash whose image is the one
//     of the window's start (what was synced before the disk began to lie).
//
// The region cannot tell: it restarts on what the disk gives it. Its peers
// can: every digest says how far they saw its rows. So every restart of a
// run with these faults uses fresh_probation (an empty store waits for its
// peers' word), and with rollback or fsynclie restart_probation (so does a
// non-empty one), both without a maximum wait. A region that peers saw
// beyond its store is fenced for good, or stays on probation (a lone voice
// of the fence quorum); either way it writes nothing from then on.
//
// Checker expectations: no oversell, ever. The oracle keeps what the lost
// store had given out (units held, sold, lent; its "ghost") on top of the
// region's rows, so a fenced region that granted again would be caught by
// oversell and by its own available going negative. Holds acknowledged by
// the region before the store went back and not in the restored store are
// lost by physics: they are counted as wiped_lost, not lost_acked (and only
// those). A fenced region stays up but writes nothing: it is no probe home,
// its stranded units are not expected to be sold elsewhere, its own rows
// (behind its peers' copies of them) are left out of the convergence and
// conservation checks, and its holds are not expected to expire.
//
// A restore is made only once a peer's store holds the region's rows
// beyond the image (else it waits, until heal): a loss no peer ever saw is
// invisible to the fence, the residual risk docs/operations.md states. All
// the store faults of a run hit one region (storeBackVictim). bitflip is in
// storage_faults_bitflip.go.

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// storeBackFaults are the faults that send a store back in time.
// (bitflip: a refused start comes back on an empty directory.)
const storeBackFaults = FaultWipe | FaultRollback | FaultFsyncLie | FaultBitflip

// Episode kinds of the store faults.
const (
	fWipe faultKind = iota + 40
	fRollback
	fFsyncLie
)

func init() {
	namedSpanKind[fWipe] = "wipe"
	namedSpanKind[fRollback] = "rollback"
	namedSpanKind[fFsyncLie] = "fsynclie"
}

// storeImage is a copy of a region's data directory with the simulator's
// models of it.
type storeImage struct {
	kind FaultSet
	mem  *vfs.MemFS // nil: an empty directory
	dur  *durable
	// The oracle's durable state of the region, by SKU.
	orcDur  []counters
	orcSent [][]escrow.Transfer
	orcLed  []ledger
}

// storeBack is a region's state of these faults.
type storeBack struct {
	pending  *storeImage // restored once a peer saw beyond it (restoreWhenSeen)
	regress  *storeImage // the next boot restarts from it
	copy     *storeImage // rollback: the copy taken
	lie      *storeImage // fsynclie: the image of the window's start
	wentBack bool        // the store went back at least once
	// bitflip: flip is set while an episode waits to flip the tables;
	// flipped, between the flip and the open of the flipped store;
	// flippedOnce, from the flip on (a flip the open did not read may be
	// found later, by a compaction: storage_faults_bitflip.go).
	flip, flipped, flippedOnce bool
}

// storeBackVictim is the one region whose store these faults send back
// in a run: the fence rests on its peers' memory of its rows, so a run
// does not also take that memory away (with three regions, two stores
// lost is a majority; no fence can see past that).
func storeBackVictim(seed uint64, nReg int) int {
	return newRand(seed, streamNamedFaults+99).IntN(nReg)
}

// genStoreBackFault draws the one episode of fault f in a run (nil for
// any other fault), on region x.
func genStoreBackFault(f FaultSet, sec func(a, b float64) int64, x int, heal int64) []fault {
	h := float64(heal) / 1e9
	switch f {
	case FaultWipe:
		at := sec(h/5, h*3/4)
		return []fault{{at: at, end: at, kind: fWipe, node: x, desc: fmt.Sprintf("wipe r%d", x)}}
	case FaultRollback:
		at := sec(h/10, h/2)
		end := min(at+sec(20, 120), heal-int64(10*time.Second))
		return []fault{{at: at, end: end, kind: fRollback, node: x, desc: fmt.Sprintf("rollback r%d", x)}}
	case FaultFsyncLie:
		at := sec(h/10, h*3/4)
		return []fault{{at: at, end: at + sec(1, 10), kind: fFsyncLie, node: x, desc: fmt.Sprintf("fsync lies r%d", x)}}
	case FaultBitflip:
		return genBitflip(sec, x, heal)
	}
	return nil
}

// applyStoreBackFault starts or ends an episode.
func (w *world) applyStoreBackFault(f *fault, end bool) {
	ep := w.eps[f.node]
	if ep.rt == nil {
		return
	}
	sb := &ep.rt.sb
	if w.leaveUnderWay() && (f.kind == fWipe || f.kind == fBitflip || end) {
		// The store would go back while a region is being removed: not
		// simulated (leaveUnderWay). A rollback's or lying fsync's window
		// ends without its loss.
		sb.copy, sb.lie = nil, nil
		w.res.StoreBackSkipped++
		return
	}
	switch f.kind {
	case fWipe:
		if end {
			return
		}
		S := w.orc.S
		w.pendRegress(ep, &storeImage{kind: FaultWipe, dur: newDurable(), orcDur: make([]counters, S),
			orcSent: make([][]escrow.Transfer, S), orcLed: make([]ledger, S)})
		w.restoreWhenSeen(ep)
	case fRollback:
		if !end {
			sb.copy = w.takeImage(ep, FaultRollback)
			return
		}
		w.pendRegress(ep, sb.copy)
		sb.copy = nil
		w.restoreWhenSeen(ep)
	case fBitflip:
		if !end {
			sb.flip = true
			w.bitflipCrash(ep)
		}
	case fFsyncLie:
		if !end {
			sb.lie = w.takeImage(ep, FaultFsyncLie)
			return
		}
		if sb.lie != nil {
			// The window ends with a crash: the disk's lie comes out.
			w.pendRegress(ep, sb.lie)
			sb.lie = nil
			w.restoreWhenSeen(ep)
		}
	}
}

// restoreWhenSeen crashes the region so that it restarts from its pending
// image, once a peer has seen its rows beyond the image (a loss no peer
// saw is out of the fence's reach); it retries every half second, and at
// heal gives up (the image is dropped).
func (w *world) restoreWhenSeen(ep *endpoint) {
	sb := &ep.rt.sb
	if sb.pending == nil {
		return
	}
	if w.now >= w.healAt {
		sb.pending = nil
		w.res.StoreBackSkipped++
		return
	}
	if ep.down || !w.peerSawBeyond(ep, sb.pending.dur.seq) {
		w.q.push(event{at: w.at(500 * time.Millisecond), kind: evStoreBack, node: int32(ep.idx)})
		return
	}
	w.setRegress(ep, sb.pending)
	sb.pending = nil
	w.crash(ep)
	w.q.push(event{at: w.at(time.Second), kind: evRestart, node: int32(ep.idx), inc: ep.inc})
}

// peerSawBeyond reports whether a peer has a row of ep's with a sequence
// above seq in its store (what it holds in memory only would be forgotten
// by a crash of its own).
func (w *world) peerSawBeyond(ep *endpoint, seq uint64) bool {
	for _, p := range w.eps[:w.nReg] {
		if p == ep || p.dur == nil {
			continue
		}
		for _, sku := range w.setup.SKUs {
			if r, ok := p.dur.rows[[2]string{sku, ep.name}]; ok && r.Seq > seq {
				return true
			}
		}
	}
	return false
}

// pendRegress makes img the image ep restarts from once a peer saw beyond
// it; one still pending is overtaken (counted as skipped: the later fault
// wins).
func (w *world) pendRegress(ep *endpoint, img *storeImage) {
	sb := &ep.rt.sb
	if sb.pending != nil {
		w.res.StoreBackSkipped++
	}
	sb.pending = img
}

// setRegress makes img the image ep's next boot restarts from (one not yet
// booted is overtaken, counted as skipped).
func (w *world) setRegress(ep *endpoint, img *storeImage) {
	sb := &ep.rt.sb
	if sb.regress != nil {
		w.res.StoreBackSkipped++
	}
	sb.regress = img
}

// crashStoreBack: a crash inside an fsynclie window restarts from the
// window's start, if a peer saw beyond it.
func (w *world) crashStoreBack(ep *endpoint) {
	sb := &ep.rt.sb
	if sb.lie == nil {
		return
	}
	if w.peerSawBeyond(ep, sb.lie.dur.seq) {
		w.setRegress(ep, sb.lie)
	} else {
		// No peer saw what the lie loses: out of the fence's reach (see
		// restoreWhenSeen); the window's syncs are taken as kept.
		w.res.StoreBackSkipped++
	}
	sb.lie = nil
}

// takeImage copies ep's data directory as synced now, with the models.
func (w *world) takeImage(ep *endpoint, kind FaultSet) *storeImage {
	o := w.orc
	img := &storeImage{kind: kind, mem: ep.rt.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0}),
		dur: ep.dur.clone(), orcDur: make([]counters, o.S), orcSent: make([][]escrow.Transfer, o.S),
		orcLed: make([]ledger, o.S)}
	for s := 0; s < o.S; s++ {
		k := ep.idx*o.S + s
		img.orcDur[s] = o.dur[k]
		img.orcSent[s] = append([]escrow.Transfer(nil), o.durSent[k].Sent...)
		img.orcLed[s] = o.led[k]
	}
	return img
}

// clone copies a durable model.
func (d *durable) clone() *durable {
	c := *d
	c.rows = maps.Clone(d.rows)
	for k, r := range c.rows {
		c.rows[k] = r.Clone()
	}
	c.holds = maps.Clone(d.holds)
	c.idem = maps.Clone(d.idem)
	c.peerSeq = maps.Clone(d.peerSeq)
	c.waits = maps.Clone(d.waits)
	c.writers = slices.Clone(d.writers)
	return &c
}

// regressStore swaps ep's store for its pending image before a boot.
func (w *world) regressStore(ep *endpoint) {
	rt := ep.rt
	img := rt.sb.regress
	if img == nil {
		return
	}
	rt.sb.regress = nil
	rt.sb.wentBack = true
	if img.mem == nil {
		rt.mem = vfs.NewCrashableMem()
	} else {
		rt.mem = img.mem
	}
	w.orc.regress(ep, img)
	ep.dur = img.dur
	if img.kind != 0 {
		w.countFault(img.kind, 1)
	}
}

// storeBackConfig sets the probations of a restart in a run with these
// faults (the first boot is the cluster's creation: no probation).
func (w *world) storeBackConfig(ep *endpoint, cfg *region.Config) {
	if ep.restarts == 0 || w.fs&storeBackFaults == 0 {
		return
	}
	cfg.FreshProbation = 3 * time.Second / 2 // 1.5 digest intervals
	cfg.FreshProbationMax = -1
	cfg.RestartProbation = w.fs&(FaultRollback|FaultFsyncLie) != 0 && !w.o.Hooks.NoRestartProbation
}

// regress moves the oracle's view of ep's store to img. What the lost
// store had given out stays counted (ghost); acknowledged holds it does
// not have are lost by physics (wiped_lost).
func (o *oracle) regress(ep *endpoint, img *storeImage) {
	if o.ghost == nil {
		o.ghost = make([]counters, len(o.mem))
		o.ghostSent = make([]uint64, len(o.mem))
		o.ghostSentTo = make([]uint64, len(o.mem)*o.w.nReg)
	}
	for s := 0; s < o.S; s++ {
		k := ep.idx*o.S + s
		// After the crash, mem is dur: the loss moves from mem to ghost
		// (agg, their sum, does not change). A restore after an earlier
		// regression may bring back more than the store had: the loss is
		// then negative (uint64 arithmetic wraps; ghostAvail reads it
		// signed), and ghost + mem stays what the stores ever gave out.
		loss := o.mem[k]
		loss.sub(img.orcDur[s])
		o.ghost[k].add(loss)
		o.mem[k], o.dur[k] = img.orcDur[s], img.orcDur[s]
		// Units lent stay with the borrowers.
		lost := map[string]uint64{}
		for _, t := range o.memSent[k].Sent {
			lost[t.To] = t.Qty
		}
		for _, t := range img.orcSent[s] {
			lost[t.To] -= t.Qty
		}
		o.setSent(k, s, img.orcSent[s])
		o.durSent[k].Sent = append(o.durSent[k].Sent[:0], img.orcSent[s]...)
		for to, q := range lost {
			if i, ok := o.w.byName[to]; ok && i < o.w.nReg {
				o.recv[i*o.S+s] += q
				o.ghostSentTo[k*o.w.nReg+i] += q
			}
			o.ghostSent[k] += q
		}
		o.led[k] = img.orcLed[s]
	}
	for id := range o.holds {
		if owner, err := escrow.OwnerOf(id); err == nil && owner == ep.name {
			if _, ok := img.dur.holds[id]; !ok {
				delete(o.holds, id)
			}
		}
	}
	for id, h := range img.dur.holds {
		o.holds[id] = h.State
	}
	if o.evSeqs != nil {
		o.evSeqs[ep.idx] = img.dur.evSeq
	}
	for _, id := range o.ackedBy[ep.idx] {
		a := o.acked[id]
		if a.lost {
			continue
		}
		h, ok := img.dur.holds[id]
		if (!ok && !o.deleted[id]) || (ok && (!legal(a.state, h.State) || !sameLines(a.lines, h.Lines))) {
			a.lost = true
			o.w.res.WipedLost++
		}
	}
}

// ghostAvail is what the lost stores of region k had given out beyond
// their rows: subtracted from the region's available.
func (o *oracle) ghostAvail(k int) int64 {
	if o.ghost == nil {
		return 0
	}
	g := &o.ghost[k]
	return int64(g.minted) - int64(g.reserved) + int64(g.released) - int64(g.shrunk) - int64(o.ghostSent[k])
}

// writesRefused reports whether region i refuses writes because its store
// went back (fenced, or on a probation that will not end).
func (w *world) writesRefused(i int) bool {
	ep := w.eps[i]
	return ep.rt != nil && ep.rt.sb.wentBack && !ep.down && ep.node.Fence().Fenced
}

// strandedAt is the units of SKU s that regions refusing writes hold:
// nobody can sell them until an operator replaces the region.
func (w *world) strandedAt(s int) int64 {
	o := w.orc
	if o.ghost == nil {
		return 0 // no store went back
	}
	var n int64
	for i := range w.eps[:w.nReg] {
		if w.writesRefused(i) {
			n += max(0, o.availOf(i, s)+o.ghostAvail(i*o.S+s))
			n += w.lentUnseen(i, s)
		}
	}
	return n
}

// lentUnseen is the units of SKU s that region f, refusing writes because
// its store went back, lent to regions that can sell (up, not refusing
// writes themselves) and that they do not know of: the transfer is in row
// versions of f they never received (lost on the way, or never sent: f
// crashed first), and f, which lost them with its store and serves no
// repair, will never send them again. The oracle counts them as the
// borrower's (regress: units lent stay with the borrowers), but nobody can
// sell them: they are stranded like f's own, until an operator re-seeds.
func (w *world) lentUnseen(f, s int) int64 {
	var n int64
	for i, ep := range w.eps[:w.nReg] {
		if i == f || ep.down || w.writesRefused(i) {
			continue
		}
		n += w.lentUnseenBy(f, i, s)
	}
	return n
}

// lentUnseenBy is the units of SKU s that region f lent region i (in
// truth, its ghost transfers included) beyond what i's view of f's row
// shows.
func (w *world) lentUnseenBy(f, i, s int) int64 {
	o := w.orc
	k := f*o.S + s
	ep := w.eps[i]
	lent := int64(o.memSent[k].SentTo(ep.name)) + int64(o.ghostSentTo[k*w.nReg+i])
	return max(0, lent-int64(ep.node.SentTo(w.setup.SKUs[s], w.eps[f].name, ep.name)))
}

// ownerRowForChecks is the row of region ep the post-run checkers take as
// its own: its node's, or, when it refuses writes because its store went
// back, every copy merged (pointwise max: its node's is behind its peers'
// copies, which may differ, as it serves no repair any more).
//
// The copies are those of the regions up, and (fault membership) the one
// the removed region kept in its store, as of the rows the checkers take
// as its own (retiredRow: the same store). A region that lent units to
// the removed region in row versions only that region received, and then
// lost them with its store, has no other copy of them anywhere: without
// it the units the removed region received (and then held, sold or wrote
// off) would be missing from its received, its available below zero. The
// copy is one the fenced region did write (pointwise max only adds what
// it gave out), so a region that grants beyond its units is still caught.
func (w *world) ownerRowForChecks(ep *endpoint, sku string) *escrow.Row {
	own := ep.node.View(sku)[ep.name]
	if !w.writesRefused(ep.idx) {
		return own
	}
	var m *escrow.Row
	merge := func(r *escrow.Row) {
		if r == nil {
			return
		} else if m == nil {
			c := r.Clone()
			m = &c
		} else {
			m.Merge(r)
		}
	}
	for i, p := range w.eps[:w.nReg] {
		if p.down {
			merge(w.retiredCopy(i, sku, ep.name))
			continue
		}
		merge(p.node.View(sku)[ep.name])
	}
	return m
}

// viewForChecks is region ep's view of SKU sku for the end-of-run
// conservation check, the rows of regions refusing writes because their
// store went back replaced by ownerRowForChecks: a region's copy of such a
// row may lag for good (its last changes reached some peers only, and it
// serves no repair), which says nothing of the region whose view it is.
func (w *world) viewForChecks(ep *endpoint, sku string) escrow.View {
	v := ep.node.View(sku)
	if w.orc.ghost == nil {
		return v
	}
	c := make(escrow.View, len(v))
	for r, row := range v {
		c[r] = row
		if i, ok := w.byName[r]; ok && i < w.nReg && w.writesRefused(i) {
			c[r] = w.ownerRowForChecks(w.eps[i], sku)
		}
	}
	// A region that joined (fault membership) after such a region was
	// fenced may never have had a copy of its row.
	for i, p := range w.eps[:w.nReg] {
		if _, ok := c[p.name]; !ok && w.writesRefused(i) {
			if m := w.ownerRowForChecks(p, sku); m != nil {
				c[p.name] = m
			}
		}
	}
	return c
}
