package sim

import (
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

const (
	phHeal = iota + 1
	phConvPoll
	phStop
	phSettle
	phFinalPoll
	phProbePoll
	phFinal
	phSample
	phSoak // a soak's sample (soak.go), observation only
)

// convTarget is one row version that existed at heal time: it must reach
// every other region within convergeBound.
type convTarget struct {
	owner int
	sku   string
	seq   uint64
}

func (w *world) phase(p int) {
	switch p {
	case phHeal:
		w.healAll()
		// Every row version that exists now must reach every region.
		w.convTarget = w.convTarget[:0]
		for _, ep := range w.eps[:w.nReg] {
			if ep.down {
				continue
			}
			for _, r := range ep.node.Rows() {
				if r.Region == ep.name {
					w.convTarget = append(w.convTarget, convTarget{owner: ep.idx, sku: r.SKU, seq: r.Seq})
				}
			}
		}
		w.phaseStart = w.now
		w.q.push(event{at: w.now, kind: evPhase, n: phConvPoll})
	case phConvPoll:
		if w.targetReached() {
			w.res.ConvergeMs = (w.now - w.healAt) / int64(time.Millisecond)
			return
		}
		if w.now-w.healAt > int64(convergeBound) {
			w.res.Unconverged++
			w.fail("row versions of heal time not everywhere %v after heal", convergeBound)
			return
		}
		w.q.push(event{at: w.at(pollEvery), kind: evPhase, n: phConvPoll})
	case phStop:
		w.arrivals = false
		w.phaseStart = w.now
		w.q.push(event{at: w.now, kind: evPhase, n: phSettle})
	case phSettle:
		// Wait until every client is done and every hold has expired.
		quiet := w.active == 0 && w.now >= w.stopAt+int64(w.o.TTL)+int64(2*time.Second)
		if quiet || w.now-w.phaseStart > int64(3*w.o.TTL+time.Minute) {
			w.phaseStart = w.now
			w.q.push(event{at: w.now, kind: evPhase, n: phFinalPoll})
			return
		}
		w.q.push(event{at: w.at(time.Second), kind: evPhase, n: phSettle})
	case phFinalPoll:
		mis := w.mismatches()
		if mis == 0 || w.now-w.phaseStart > int64(finalBound) {
			if mis > 0 {
				w.res.Unconverged += uint64(mis)
				w.fail("%d row copies differ from their owner's row %v after quiescence", mis, finalBound)
			}
			w.startProbes()
			w.phaseStart = w.now
			w.q.push(event{at: w.now, kind: evPhase, n: phProbePoll})
			return
		}
		w.q.push(event{at: w.at(pollEvery), kind: evPhase, n: phFinalPoll})
	case phProbePoll:
		if w.active == 0 || w.now-w.phaseStart > int64(probeBound) {
			w.q.push(event{at: w.now, kind: evPhase, n: phFinal})
			return
		}
		w.q.push(event{at: w.at(pollEvery), kind: evPhase, n: phProbePoll})
	case phFinal:
		for _, cl := range w.probes {
			if cl.phase != clDone || !cl.granted {
				w.res.LivenessFailures++
				w.fail("liveness: probe hold of %s at %s not granted after heal (global available %d)",
					cl.lines[0].SKU, w.eps[cl.home].name, w.orc.globalAvail(w.skuIdx[cl.lines[0].SKU]))
			}
		}
		w.done = true
	case phSoak:
		w.soakSample()
		if !w.done {
			w.q.push(event{at: w.at(soakEvery(&w.o)), kind: evPhase, n: phSoak})
		}
	case phSample:
		w.sample()
		if !w.done {
			w.q.push(event{at: w.at(w.o.Duration / 300), kind: evPhase, n: phSample})
		}
	}
}

func (w *world) healAll() {
	clear(w.blocked)
	clear(w.spike)
	w.healNamed()
	w.dropP, w.dupP, w.reorder = 0, 0, 0
	for _, ep := range w.eps {
		w.restart(ep)
	}
}

// rowsOf returns a region's rows by (sku, writer).
func rowsOf(ep *endpoint) map[[2]string]*escrow.Row {
	m := make(map[[2]string]*escrow.Row)
	ep.node.ForEachRow(func(r *escrow.Row) {
		c := r.Clone()
		m[[2]string{c.SKU, c.Region}] = &c
	})
	return m
}

// liveViews returns rowsOf every region that is up, nil for those down.
func (w *world) liveViews() []map[[2]string]*escrow.Row {
	views := make([]map[[2]string]*escrow.Row, w.nReg)
	for i, ep := range w.eps[:w.nReg] {
		if !ep.down {
			views[i] = rowsOf(ep)
		}
	}
	return views
}

// targetReached: every heal-time row version is in every live region. It
// looks rows up one by one (no copy of every view per poll), stopping at
// the first one missing.
func (w *world) targetReached() bool {
	for _, t := range w.convTarget {
		if w.writesRefused(t.owner) {
			continue // fenced: it serves no repair of its rows (behind its peers' copies)
		}
		name := w.eps[t.owner].name
		for v, ep := range w.eps[:w.nReg] {
			if v == t.owner || ep.down {
				continue
			}
			if seq, ok := ep.node.RowSeq(t.sku, name); !ok || seq < t.seq {
				return false
			}
		}
	}
	return true
}

// mismatches counts row copies that differ from their owner's row.
func (w *world) mismatches() int {
	views := w.liveViews()
	n := 0
	for o, ep := range w.eps[:w.nReg] {
		if views[o] == nil || w.writesRefused(o) {
			continue // (a fenced region's own rows are behind its peers' copies)
		}
		keys := make([][2]string, 0, len(views[o]))
		for k, r := range views[o] {
			if r.Region == ep.name {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			own := views[o][k]
			for v := range views {
				if v == o || views[v] == nil {
					continue
				}
				if r := views[v][k]; r == nil || !r.Equal(own) {
					n++
				}
			}
		}
	}
	return n
}

func (w *world) startProbes() {
	for s, sku := range w.setup.SKUs {
		if s >= 16 {
			break // bounded: the first SKUs are the busiest
		}
		if w.orc.globalAvail(s)-w.strandedAt(s) < 1 {
			continue
		}
		// Probes are issued only where the SKU's location may be sold.
		var local []uint64
		var sellers []int
		for i, ep := range w.eps[:w.nReg] {
			if !w.maySell(i, sku) || w.writesRefused(i) {
				continue
			}
			sellers = append(sellers, i)
			if ep.down {
				local = append(local, 0)
			} else {
				local = append(local, ep.node.Available(sku))
			}
		}
		home := w.strat.ProbeRegion(&w.setup, local)
		if home < 0 {
			continue
		}
		home = sellers[home]
		w.nextClient++
		cl := &client{id: w.nextClient, home: home, lines: []escrow.Line{{SKU: sku, Qty: 1}},
			plan: planRelease, think: time.Second, probe: true}
		w.probes = append(w.probes, cl)
		w.startCart(cl)
	}
}
