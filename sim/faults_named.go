package sim

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// Episode kinds of the faults added with names (faultset.go); those of
// partitions, crash and spike are in faults.go.
const (
	fJump faultKind = iota + 10
	fStall
	fPause
	fAsym
	fReplay
	fCorrupt
	fLinkLoss
)

// Random streams of the named faults: each its own, so that adding one
// fault to a mix does not move the episodes of the others.
const streamNamedFaults = streamFaults + 200

// namedFaults is the runtime state of the named faults.
type namedFaults struct {
	rng         *rand.Rand // draws while the run goes (which message, which sync)
	count       [32]uint64 // by bit of FaultSet: episodes or events, see countOf
	oneway      []bool     // [a*N+b]: a's messages to b are lost (asym)
	pausedUntil []int64    // [endpoint]: its process is paused until then (pause)
	stalled     []bool     // [endpoint]: its syncs stall (stall)
	linkLoss    []bool     // [region]: its shoppers' requests and replies are lost (linkloss)
	corrupting  bool       // messages on the wire may be corrupted (corrupt)
	replays     []replayRec
	replayNext  int
	wire        *wireSigner   // corrupt: the signed envelope of the transport
	sb          *staleBorrows // the checker stale_borrows_honoured (stale_borrow.go)
}

// replayRec is a message kept for a late replay.
type replayRec struct {
	at       int64
	src, dst int
	msg      *escrow.Message
}

// genNamedFaults draws the episodes of the named faults in s (not those of
// legacyAll, drawn by genFaults as before).
func genNamedFaults(seed uint64, s FaultSet, o *Options, nReg, nEp int) []fault {
	heal := healTime(o)
	start := int64(o.Duration) / 20
	var out []fault
	for i, f := range faultNames {
		if !s.Has(f.f) || legacyAll.Has(f.f) {
			continue
		}
		r := newRand(seed, streamNamedFaults+uint64(i))
		sec := func(a, b float64) int64 { return int64((a + (b-a)*r.Float64()) * 1e9) }
		switch f.f {
		case FaultJump:
			for t := start + sec(0, 30); t < heal; t += sec(20, 90) {
				x := r.IntN(nReg)
				d := sec(10, 90)
				if r.IntN(2) == 0 {
					d = -d
				}
				// A backward jump freezes the node's clock for |d|: over
				// before heal, so the post-heal checkers see a live clock.
				if t+abs64(d)+int64(5*time.Second) >= heal {
					break
				}
				out = append(out, fault{at: t, end: t + abs64(d), kind: fJump, node: x, extra: d,
					desc: fmt.Sprintf("jump r%d %+v", x, time.Duration(d).Round(time.Second))})
			}
		case FaultStall:
			for t := start + sec(0, 20); t < heal; t += sec(10, 60) {
				x := r.IntN(nReg)
				end := min(heal, t+sec(2, 20))
				out = append(out, fault{at: t, end: end, kind: fStall, node: x, desc: fmt.Sprintf("stall r%d", x)})
				t = end
			}
		case FaultPause:
			busy := make([]int64, nReg)
			for t := start + sec(0, 20); t < heal; t += sec(15, 60) {
				x := r.IntN(nReg)
				end := min(heal, t+sec(1, 8))
				if t < busy[x] {
					continue
				}
				busy[x] = end
				out = append(out, fault{at: t, end: end, kind: fPause, node: x,
					desc: fmt.Sprintf("pause r%d %v", x, time.Duration(end-t).Round(time.Millisecond))})
			}
		case FaultAsym:
			for t := start + sec(0, 30); t < heal; {
				a := r.IntN(nReg)
				b := (a + 1 + r.IntN(nReg-1)) % nReg
				end := min(heal, t+sec(5, 40))
				out = append(out, fault{at: t, end: end, kind: fAsym, node: a, peer: b,
					desc: fmt.Sprintf("oneway r%d-x->r%d", a, b)})
				t = end + sec(5, 40)
			}
		case FaultReplay:
			// Bursts of replays of messages at least a minute old.
			for t := start + sec(60, 90); t < heal; t += sec(20, 60) {
				n := 20 + r.IntN(180)
				out = append(out, fault{at: t, end: t + int64(n)*int64(5*time.Millisecond), kind: fReplay, extra: int64(n),
					desc: fmt.Sprintf("replay %d old messages", n)})
			}
		case FaultCorrupt:
			for t := start + sec(0, 20); t < heal; {
				end := min(heal, t+sec(5, 30))
				out = append(out, fault{at: t, end: end, kind: fCorrupt, desc: "corrupt messages"})
				t = end + sec(10, 40)
			}
		case FaultMembership:
			// A stream of its own, whatever its place in faultNames.
			victim := -1 // (the region whose store the store faults send back, if any)
			if s&storeBackFaults != 0 {
				victim = storeBackVictim(seed, nReg)
			}
			out = append(out, genMembership(newRand(seed, streamMembership), o, victim)...)
		case FaultLinkLoss:
			for t := start + sec(0, 20); t < heal; t += sec(5, 30) {
				x := r.IntN(nReg)
				end := min(heal, t+sec(5, 30))
				out = append(out, fault{at: t, end: end, kind: fLinkLoss, node: x, desc: fmt.Sprintf("shopper link loss r%d", x)})
			}
		default:
			out = append(out, genStoreBackFault(f.f, sec, storeBackVictim(seed, nReg), heal)...)
		}
	}
	return out
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// bitOf is the index of a single fault in the counters.
func bitOf(f FaultSet) int { return bits.TrailingZeros32(uint32(f)) }

func (w *world) countFault(f FaultSet, n uint64) { w.nf.count[bitOf(f)] += n }

// initNamedFaults sets up the runtime state of the named faults.
func (w *world) initNamedFaults() {
	E := len(w.eps)
	w.nf.rng = newRand(w.o.Seed, streamNamedFaults+100)
	w.nf.oneway = make([]bool, w.nReg*w.nReg)
	w.nf.pausedUntil = make([]int64, E)
	w.nf.stalled = make([]bool, E)
	w.nf.linkLoss = make([]bool, w.nReg)
	if !w.fs.legacy() {
		w.nf.sb = newStaleBorrows(w.nReg)
	}
	if w.fs.Has(FaultCorrupt) {
		w.nf.wire = newWireSigner(w.o.Seed, w.eps)
	}
}

// applyNamedFault starts or ends an episode of a named fault.
func (w *world) applyNamedFault(f *fault, end bool) {
	switch f.kind {
	case fJump:
		if !end {
			w.eps[f.node].skew += time.Duration(f.extra)
			w.countFault(FaultJump, 1)
		}
	case fStall:
		w.nf.stalled[f.node] = !end
	case fPause:
		if !end {
			w.nf.pausedUntil[f.node] = f.end
			w.countFault(FaultPause, 1)
		}
	case fAsym:
		w.nf.oneway[f.node*w.nReg+f.peer] = !end
		if !end {
			w.countFault(FaultAsym, 1)
		}
	case fReplay:
		if !end {
			w.replayBurst(int(f.extra))
		}
	case fCorrupt:
		w.nf.corrupting = !end
	case fLinkLoss:
		w.nf.linkLoss[f.node] = !end
	case fWipe, fRollback, fFsyncLie, fBitflip:
		w.applyStoreBackFault(f, end)
	case fJoin, fLeave:
		w.applyMembership(f, end)
	}
}

// paused defers an event of a paused process to the end of its pause:
// the process does nothing meanwhile, then finds it all at once.
func (w *world) paused(e *event) bool {
	if w.nf.pausedUntil == nil {
		return false
	}
	switch e.kind {
	case evTick, evFsync, evMsg, evReqArrive, evReplyArrive:
	default:
		return false
	}
	if until := w.nf.pausedUntil[e.node]; w.now < until {
		d := *e
		d.at = until
		w.q.push(d)
		return true
	}
	return false
}

// stallDelay is the extra latency of a sync of a stalled region: a long
// tail, and now and then a stall of seconds.
func (w *world) stallDelay(ep *endpoint) int64 {
	if w.nf.stalled == nil || !w.nf.stalled[ep.idx] {
		return 0
	}
	switch p := w.nf.rng.Float64(); {
	case p < 0.05:
		w.countFault(FaultStall, 1)
		return int64(time.Second) + w.nf.rng.Int64N(int64(3*time.Second))
	case p < 0.35:
		return int64(10*time.Millisecond) + w.nf.rng.Int64N(int64(190*time.Millisecond))
	}
	return 0
}

// clientLinkLost reports whether a shopper's request to, or reply from,
// region r is lost.
func (w *world) clientLinkLost(r int) bool {
	if w.nf.linkLoss == nil || r >= w.nReg || !w.nf.linkLoss[r] || w.nf.rng.Float64() >= 0.3 {
		return false
	}
	w.countFault(FaultLinkLoss, 1)
	return true
}

// keepForReplay keeps a sample of the messages sent, for late replays.
func (w *world) keepForReplay(src, dst int, m *escrow.Message) {
	if !w.fs.Has(FaultReplay) || w.nf.rng.Float64() >= 0.02 {
		return
	}
	const keep = 1024
	// A copy of its own: the message's slices point into the node's
	// arenas, which a kept message would keep alive whole.
	c := *m
	c.Rows = make([]escrow.Row, len(m.Rows))
	for i := range m.Rows {
		c.Rows[i] = m.Rows[i].Clone()
	}
	rec := replayRec{at: w.now, src: src, dst: dst, msg: &c}
	if len(w.nf.replays) < keep {
		w.nf.replays = append(w.nf.replays, rec)
		return
	}
	w.nf.replays[w.nf.replayNext] = rec
	w.nf.replayNext = (w.nf.replayNext + 1) % keep
}

// faultCounts names the counters of the faults in the set.
func (w *world) faultCounts() map[string]uint64 {
	if w.fs.legacy() {
		return nil
	}
	m := map[string]uint64{}
	for _, f := range faultNames {
		if !w.fs.Has(f.f) || (storageFaults.Has(f.f) && w.o.Runtime != RuntimeRegion) {
			continue
		}
		switch f.f {
		case FaultMidSync:
			m[f.name] = w.res.MidSyncCrashes
		case FaultTorn:
			m[f.name] = w.res.TornCrashes
		case FaultRecovery:
			m[f.name] = w.res.RecoveryCrashes
		case FaultDiskFull:
			m[f.name] = w.res.DiskFull
		case FaultMembership:
			if w.mb == nil {
				continue // the region runtime: not simulated
			}
			m[f.name] = w.mb.joins + w.mb.leaves
			m["membership_restarts"] = w.mb.restarts
			m["membership_drained"] = w.mb.drained
			m["membership_stranded"] = w.mb.stranded
			m["membership_zombies"] = w.mb.zombies
			var owed uint64
			for _, n := range w.mb.owedFenced {
				owed += n
			}
			if owed > 0 {
				m["membership_owed_fenced"] = owed
			}
			if w.mb.leaveSkipped {
				m["membership_leave_skipped"] = 1
			}
		case FaultPartitions:
			m[f.name] = w.res.Partitions
		case FaultCrash:
			m[f.name] = w.res.Crashes
		default:
			m[f.name] = w.nf.count[bitOf(f.f)]
		}
	}
	return m
}

// namedSpanKind is the report's name of each named episode kind.
var namedSpanKind = map[faultKind]string{fJump: "jump", fStall: "stall", fPause: "pause", fAsym: "asym",
	fReplay: "replay", fCorrupt: "corrupt", fLinkLoss: "linkloss"}

// healNamed ends what the named faults still hold at heal time.
func (w *world) healNamed() {
	clear(w.nf.oneway)
	clear(w.nf.stalled)
	clear(w.nf.linkLoss)
	w.nf.corrupting = false
}

// stalledSync: a sync that stalls for seconds makes the process's
// watchdog kill it now and then (before heal only). With the planted bug
// ack-slow-fsync the runtime answers a slow sync's shoppers before it is
// durable.
func (w *world) stalledSync(ep *endpoint, rd *escrow.Ready, d int64) {
	if w.o.Hooks.AckSlowFsync && d > int64(100*time.Millisecond) && !ep.replied {
		for i := range rd.Reply {
			w.deliverReply(ep, &rd.Reply[i])
		}
		ep.replied = true
	}
	if d > int64(time.Second) && w.now+d < w.healAt && w.nf.rng.Float64() < 0.3 {
		w.q.push(event{at: w.now + d/2, kind: evCrash, node: int32(ep.idx), inc: ep.inc})
	}
}

// clientSend puts a shopper's request on its link to its region, which
// may lose it (linkloss): the shopper then times out and retries.
func (w *world) clientSend(req *request) {
	if w.clientLinkLost(req.gateway) {
		return
	}
	w.q.push(event{at: w.at(w.clientDelay()), kind: evReqArrive, node: int32(req.gateway), req: req})
}
