package sim

import (
	"math/rand/v2"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// topology draws the one-way latency of every pair of regions.
func (w *world) topology(r *rand.Rand) {
	E := len(w.eps)
	w.lat = make([]int64, E*E)
	w.lastAt = make([]int64, E*E)
	w.spike = make([]int64, E*E)
	w.blocked = make([]bool, w.nReg*w.nReg)
	w.maxBorrowID = make([]uint64, w.nReg*w.nReg)
	span := int64(w.o.InterMax - w.o.InterMin)
	for a := 0; a < w.nReg; a++ {
		for b := a + 1; b < w.nReg; b++ {
			l := int64(w.o.InterMin)
			if span > 0 {
				l += r.Int64N(span + 1)
			}
			w.lat[a*E+b], w.lat[b*E+a] = l, l
		}
	}
	if m, _ := parseRTT(w.o.RTT); len(m) > 0 {
		for a := 0; a < w.nReg; a++ {
			for b := a + 1; b < w.nReg; b++ {
				if d, ok := rttOf(m, w.eps[a].name, w.eps[b].name); ok {
					w.lat[a*E+b], w.lat[b*E+a] = int64(d/2), int64(d/2)
				}
			}
		}
	}
	for a := 0; a < E; a++ {
		for b := 0; b < E; b++ {
			sa, sb := w.eps[a].site, w.eps[b].site
			switch {
			case a == b:
			case sa == sb:
				w.lat[a*E+b] = int64(time.Millisecond)
			case a >= w.nReg || b >= w.nReg:
				w.lat[a*E+b] = w.lat[sa*E+sb]
			}
		}
	}
}

func (w *world) clientDelay() time.Duration {
	return w.o.ClientLatency + time.Duration(w.netRng.Int64N(int64(w.o.ClientLatency)/5+1))
}

func (w *world) isBlocked(a, b int) bool {
	k := w.eps[a].site*w.nReg + w.eps[b].site
	return w.blocked[k] || w.nf.oneway[k]
}

func (w *world) linkDelay(a, b int) int64 {
	k := a*len(w.eps) + b
	base := w.lat[k]
	return base + w.netRng.Int64N(base/10+1) + w.spike[k]
}

// send puts a peer message on the network: to every other endpoint for a
// broadcast, else to its addressee.
func (w *world) send(src int, m *escrow.Message, extra int64) {
	if !w.strat.Allow(&w.setup, m) {
		w.res.Filtered++
		return
	}
	if w.o.Wire || w.o.Runtime == RuntimeRegion {
		if m.Speaks == 0 && escrow.MessageHasLocationKeys(m) {
			// Every simulated region speaks this build's version: location
			// keys travel in version 3 (gossip stamps them the same way).
			sm := *m
			sm.Speaks = escrow.WireVersion
			m = &sm
		}
		b, err := escrow.EncodeMessage(nil, m)
		if err != nil {
			w.res.MsgErrors++
			w.fail("encode %s from %s: %v", m.Type, m.From, err)
			return
		}
		dm, err := escrow.DecodeMessage(b)
		if err != nil {
			w.res.MsgErrors++
			w.fail("decode %s from %s: %v", m.Type, m.From, err)
			return
		}
		m = &dm
	}
	w.noteStaleSend(src, m)
	if m.To == "" {
		for dst := range w.eps {
			if dst != src {
				w.transmit(src, dst, m, extra)
			}
		}
		return
	}
	dst, ok := w.byName[m.To]
	if !ok || dst == src {
		w.res.MsgErrors++
		return
	}
	w.transmit(src, dst, m, extra)
}

func (w *world) transmit(src, dst int, m *escrow.Message, extra int64) {
	w.res.Msgs++
	w.keepForReplay(src, dst, m)
	if w.isBlocked(src, dst) {
		return
	}
	if w.dropP > 0 && w.netRng.Float64() < w.dropP {
		w.countFault(FaultLossy, 1)
		return
	}
	if w.nf.corrupting && w.nf.rng.Float64() < 0.05 {
		if m = w.corrupt(src, dst, m); m == nil {
			return // refused by the receiver: lost
		}
	}
	at := w.now + extra + w.linkDelay(src, dst)
	k := src*len(w.eps) + dst
	if w.reorder > 0 && w.netRng.Float64() < w.reorder {
		w.countFault(FaultLossy, 1)
		at += w.netRng.Int64N(int64(100 * time.Millisecond))
	} else {
		// Links are FIFO (as a NATS subscription is) unless reordered.
		if at < w.lastAt[k] {
			at = w.lastAt[k]
		}
		w.lastAt[k] = at
	}
	if m.Type == escrow.MsgBorrowReq && dst < w.nReg {
		// A borrow id a donor has seen from this borrower before is
		// answered from its dedupe memory, not with new units.
		if m.ID <= w.maxBorrowID[src*w.nReg+dst] {
			w.res.BorrowIDReuse++
		}
		w.maxBorrowID[src*w.nReg+dst] = max(w.maxBorrowID[src*w.nReg+dst], m.ID)
	}
	w.q.push(event{at: at, kind: evMsg, node: int32(dst), msg: m})
	if w.dupP > 0 && w.netRng.Float64() < w.dupP {
		w.countFault(FaultLossy, 1)
		w.q.push(event{at: at + w.netRng.Int64N(int64(50*time.Millisecond)), kind: evMsg, node: int32(dst), msg: m})
	}
}

// rpc carries a forwarded command or its reply between two regions.
func (w *world) rpc(src, dst int, kind evKind, req *request) {
	w.res.Msgs++
	if w.isBlocked(src, dst) {
		return
	}
	if w.dropP > 0 && w.netRng.Float64() < w.dropP {
		return
	}
	w.q.push(event{at: w.now + w.linkDelay(src, dst), kind: kind, node: int32(dst), req: req})
}

func (w *world) daemonSend(ep *endpoint, msgs []escrow.Message) {
	extra := int64(ep.d.Delay())
	for i := range msgs {
		m := msgs[i]
		m.From = ep.name
		w.send(ep.idx, &m, extra)
	}
}
