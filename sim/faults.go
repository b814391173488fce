package sim

import (
	"fmt"
	"math/rand/v2"
	"time"
)

type faultKind uint8

const (
	fPartition faultKind = iota + 1
	fCrash
	fSpike
)

// fault is one episode of the schedule, [at, end).
type fault struct {
	at, end int64
	kind    faultKind
	node    int      // crash: endpoint; spike: one end
	peer    int      // spike: the other end
	extra   int64    // spike: added one-way delay, ns
	cut     [][2]int // partition: region pairs that cannot talk
	desc    string
}

// genFaults draws the fault schedule of a run. Every episode ends before
// the heal time; partitions do not overlap each other, nor do two crashes
// of the same endpoint.
func genFaults(r *rand.Rand, o *Options, nReg, nEp int) []fault {
	fs := o.faultSet()
	if !fs.Has(FaultPartitions) && !fs.Has(FaultCrash) && !fs.Has(FaultSpike) {
		return nil
	}
	heal := healTime(o)
	start := int64(o.Duration) / 20
	var out []fault
	sec := func(a, b float64) int64 { return int64((a + (b-a)*r.Float64()) * 1e9) }
	// Partitions. (Without them the draws are made all the same, so that
	// crashes and spikes fall where they fall with them.)
	for t := start + sec(0, 30); t < heal; {
		end := min(heal, t+sec(5, 60))
		f := fault{at: t, end: end, kind: fPartition}
		switch k := r.IntN(3); {
		case k == 0 || nReg < 3:
			// Halves.
			side := make([]int, nReg)
			for i := range side {
				side[i] = r.IntN(2)
			}
			side[0], side[nReg-1] = 0, 1 // never a trivial split
			for a := 0; a < nReg; a++ {
				for b := a + 1; b < nReg; b++ {
					if side[a] != side[b] {
						f.cut = append(f.cut, [2]int{a, b})
					}
				}
			}
			f.desc = fmt.Sprintf("split %v", side)
		case k == 1:
			x := r.IntN(nReg)
			for b := 0; b < nReg; b++ {
				if b != x {
					f.cut = append(f.cut, [2]int{x, b})
				}
			}
			f.desc = fmt.Sprintf("isolate r%d", x)
		default:
			// Bridge: a and c cannot talk, b talks to both
			// (non-transitive reachability).
			p := r.Perm(nReg)
			f.cut = [][2]int{{p[0], p[2]}}
			f.desc = fmt.Sprintf("bridge r%d-r%d-r%d", p[0], p[1], p[2])
		}
		if fs.Has(FaultPartitions) {
			out = append(out, f)
		}
		t = end + sec(10, 60)
	}
	if !fs.Has(FaultCrash) && !fs.Has(FaultSpike) {
		return out
	}
	// Crashes and restarts, of regions and daemons.
	busyUntil := make([]int64, nEp)
	for t := start + sec(0, 20); t < heal; t += sec(10, 80) {
		x := r.IntN(nEp)
		down := sec(0.5, 20)
		if t < busyUntil[x] {
			continue
		}
		end := min(heal, t+down)
		busyUntil[x] = end + int64(time.Second)
		if !fs.Has(FaultCrash) {
			continue
		}
		out = append(out, fault{at: t, end: end, kind: fCrash, node: x, desc: fmt.Sprintf("crash %d", x)})
	}
	// Delay spikes on one link.
	for t := start + sec(0, 20); t < heal; {
		a := r.IntN(nReg)
		b := (a + 1 + r.IntN(nReg-1)) % nReg
		end := min(heal, t+sec(2, 15))
		extra := sec(0.2, 2)
		if !fs.Has(FaultSpike) {
			t = end + sec(5, 40)
			continue
		}
		out = append(out, fault{at: t, end: end, kind: fSpike, node: a, peer: b, extra: extra,
			desc: fmt.Sprintf("spike r%d-r%d +%v", a, b, time.Duration(extra).Round(time.Millisecond))})
		t = end + sec(5, 40)
	}
	return out
}

func (w *world) applyFault(i int, end bool) {
	f := &w.faults[i]
	switch f.kind {
	case fPartition:
		if !end {
			w.res.Partitions++
		}
		for _, c := range f.cut {
			w.blocked[c[0]*w.nReg+c[1]] = !end
			w.blocked[c[1]*w.nReg+c[0]] = !end
		}
	case fCrash:
		ep := w.eps[f.node]
		if end {
			w.restart(ep)
		} else {
			w.crash(ep)
		}
	case fSpike:
		E := len(w.eps)
		v := f.extra
		if end {
			v = 0
		} else {
			w.countFault(FaultSpike, 1)
		}
		w.spike[f.node*E+f.peer], w.spike[f.peer*E+f.node] = v, v
	default:
		w.applyNamedFault(f, end)
	}
}

// faultSpans lists the episodes for the report.
func (w *world) faultSpans() []Span {
	var out []Span
	for _, f := range w.faults {
		s := Span{From: float64(f.at) / 1e9, To: float64(f.end) / 1e9, Desc: f.desc, Region: -1}
		switch f.kind {
		case fPartition:
			s.Kind = "partition"
		case fCrash:
			s.Kind = "crash"
			s.Region = f.node
			s.Desc = "crash " + w.eps[f.node].name
		case fSpike:
			s.Kind = "spike"
		default:
			s.Kind = namedSpanKind[f.kind]
			if f.kind != fReplay && f.kind != fCorrupt {
				s.Region = f.node
			}
		}
		out = append(out, s)
	}
	return out
}
