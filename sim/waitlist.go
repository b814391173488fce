package sim

import (
	"math/rand/v2"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/internal/hist"
)

// The waitlist workload (--workload waitlist): a flash sale of the hot SKU
// (sku0000). It sells out; units come back from carts released or
// abandoned (expired), and once, at 60% of the run, a small restock
// (a quarter of the initial stock) lands in one region, more than that
// region's own waiters need, so that the others' waiters must get it over
// the network. Most shoppers turned away during the sale wait
// (Command.Wait), in every region; some of them give up and cancel. Every region's waiters poll
// their entry and, once promoted, use the hold like any other shopper.
//
// Checkers (all on what the regions make durable, or on the nodes' state):
//   - escrow.WaitChecker: FIFO under the head-of-line policy, and every entry
//     ends in exactly one terminal state (a terminal entry never changes);
//   - a promotion is durable together with its hold (same lines), so the
//     oversell and unit checkers of every workload count promoted holds;
//   - no waiting entry outlives its deadline (the sweeper expires it);
//   - across regions: while regions A and B are connected (both up, no
//     partition or delay spike between them, neither refusing writes), units of the hot SKU do not
//     stay available in A beyond what A's own waiters need for longer than
//     waitCrossBound while B's waiters lack units (docs/architecture.md,
//     "The guarantee across regions").

const (
	waitPollEvery  = 5 * time.Second // a waiter polls its entry
	waitCheckEvery = 100 * time.Millisecond
	// waitCrossBound: one row broadcast and one re-ask period (250 ms) and
	// one borrow round trip (≤ 4 × InterMax with reordering) and up to three
	// repair timeouts (1 s) for lost messages (2% drop).
	waitCrossBound = 5 * time.Second
)

// waitFor draws whether a cart waits (and how long) and when its shopper
// gives up: a hot-SKU cart of the sale waits with probability 0.9 (other
// carts never do); one waiter in ten cancels after a while.
func (wl *workload) waitFor(r *rand.Rand, hot bool) (wait, cancel time.Duration) {
	p, d, c, ca := r.Float64(), r.Float64(), r.Float64(), r.Float64()
	if !hot || p >= 0.9 {
		return 0, 0
	}
	wait = time.Minute + time.Duration(d*float64(3*time.Minute))
	if c < 0.1 {
		cancel = time.Duration(ca * float64(wait))
	}
	return wait.Round(time.Millisecond), cancel.Round(time.Millisecond)
}

// waitStats are the waitlist figures of one run.
type waitStats struct {
	checker  *escrow.WaitChecker
	lat      hist.Histogram // wait time of promoted entries (node clock)
	returned uint64         // units of the hot SKU returned by holds or restocked, once waiters joined
	promoted uint64         // units of the hot SKU promoted to waiters
	since    []int64        // [a*N+b] cross-region condition true since (0: not)
	flagged  []bool         // [a*N+b] cross-region violation reported
}

func newWaitStats(n int) *waitStats {
	return &waitStats{checker: escrow.NewWaitChecker(), lat: hist.New(hist.Compact),
		since: make([]int64, n*n), flagged: make([]bool, n*n)}
}

// onDurableWaits follows the entries of one durable write (after its
// holds were applied to the oracle).
func (o *oracle) onDurableWaits(ep *endpoint, p *escrow.Persist) {
	ws := o.w.waits
	if ws == nil || (len(p.Waits) == 0 && len(p.DeletedWaits) == 0) {
		return
	}
	before := len(ws.checker.Violations)
	prev := make(map[string]escrow.WaitState, len(p.Waits))
	for _, e := range p.Waits {
		if old, ok := ws.checker.Entry(e.ID); ok {
			prev[e.ID] = old.State
		}
	}
	ws.checker.Observe(p)
	for _, v := range ws.checker.Violations[before:] {
		o.w.res.WaitViolations++
		o.w.fail("waitlist: %s", v)
	}
	for _, e := range p.Waits {
		if e.State != escrow.Promoted || prev[e.ID] == escrow.Promoted {
			continue
		}
		o.w.res.WaitPromoted++
		if e.HoldID == "" || !holdIn(p, e.HoldID, e.Lines) {
			o.w.res.WaitViolations++
			o.w.fail("waitlist: entry %s promoted to hold %q that is not written with it", e.ID, e.HoldID)
		}
		ws.lat.Record(e.Updated.Sub(e.Created))
		for _, l := range e.Lines {
			if l.SKU == o.w.setup.SKUs[0] {
				ws.promoted += l.Qty
			}
		}
	}
	ws.checker.Forget(p.DeletedWaits)
}

func holdIn(p *escrow.Persist, id string, lines []escrow.Line) bool {
	for i := range p.Holds {
		if p.Holds[i].ID == id {
			return sameLines(p.Holds[i].Lines, lines)
		}
	}
	return false
}

// noteReturned counts units of the hot SKU a hold gave back, or a restock
// added, after the first waiter joined.
func (o *oracle) noteReturned(s int, qty uint64) {
	if o.w.waits != nil && s == 0 && o.w.res.WaitJoined > 0 {
		o.w.waits.returned += qty
	}
}

// checkCrossRegion runs every waitCheckEvery during the waitlist workload.
func (w *world) checkCrossRegion() {
	ws := w.waits
	sku := w.setup.SKUs[0]
	E := len(w.eps)
	N := w.nReg
	for a := 0; a < N; a++ {
		for b := 0; b < N; b++ {
			if a == b {
				continue
			}
			k := a*N + b
			A, B := w.eps[a], w.eps[b]
			// (A region that refuses writes, fenced or on probation
			// (storage_faults_fence.go), lends nothing and borrows nothing.)
			ok := !A.down && !B.down && !w.blocked[a*N+b] && w.spike[a*E+b] == 0 && w.spike[b*E+a] == 0 &&
				!A.node.Fence().Fenced && !B.node.Fence().Fenced
			if ok {
				_, needA := A.node.Waiting(sku)
				_, needB := B.node.Waiting(sku)
				ok = A.node.Available(sku) > needA && needB > B.node.Available(sku)
			}
			if !ok {
				ws.since[k] = 0
				continue
			}
			if ws.since[k] == 0 {
				ws.since[k] = w.now
				continue
			}
			w.res.WaitCrossMaxMs = max(w.res.WaitCrossMaxMs, (w.now-ws.since[k])/int64(time.Millisecond))
			if w.now-ws.since[k] > int64(waitCrossBound) && !ws.flagged[k] {
				ws.flagged[k] = true
				w.res.WaitStranded++
				w.fail("waitlist: %s kept %d units of %s beyond its own waiters' need for %v while connected %s's waiters lacked units",
					A.name, A.node.Available(sku), sku, time.Duration(w.now-ws.since[k]), B.name)
			}
		}
	}
	if !w.done {
		w.q.push(event{at: w.at(waitCheckEvery), kind: evWaitCheck})
	}
}

// finishWaits runs the end-of-run waitlist checks and computes its figures.
func (w *world) finishWaits() {
	ws := w.waits
	if ws == nil {
		return
	}
	for _, ep := range w.eps[:w.nReg] {
		if ep.down {
			continue
		}
		now := w.nodeNow(ep)
		stale := 0
		for _, e := range ep.dur.waits {
			if e.State == escrow.Waiting && !now.Before(e.Deadline.Add(time.Second)) {
				stale++
			}
		}
		if stale > 0 {
			w.res.WaitViolations += uint64(stale)
			w.fail("waitlist: %s: %d entries past their deadline were never expired", ep.name, stale)
		}
	}
	r := &w.res
	r.waitLat = ws.lat
	r.waitReturned, r.waitPromoted = ws.returned, ws.promoted
	r.WaitP50Ms = holdMs(ws.lat.QuantileMid(0.50))
	r.WaitP99Ms = holdMs(ws.lat.QuantileMid(0.99))
	if ws.returned > 0 {
		r.ReturnedToWaiters = float64(min(ws.promoted, ws.returned)) / float64(ws.returned)
	}
}

// Waiter side of the client (phase clWaiting).

// waitJoined: the hold of cl joined the waitlist as entry e.
func (w *world) waitJoined(cl *client, e *escrow.WaitEntry) {
	owner, _ := escrow.OwnerOf(e.ID)
	cl.waitID, cl.owner = e.ID, w.byName[owner]
	cl.phase = clWaiting
	w.res.WaitJoined++
	cl.waitStart = w.now
	w.q.push(event{at: w.at(waitPollEvery), kind: evWaitPoll, cl: cl})
}

// waitPoll asks the owner for the entry (or cancels it, when the shopper
// gives up); polls are fire-and-forget, the next one covers a lost answer.
func (w *world) waitPoll(cl *client) {
	if cl.phase != clWaiting {
		return
	}
	if w.now-cl.waitStart > int64(cl.wait+time.Minute) {
		// Never told the end of its entry (its answers lost, or the entry
		// retired first): the shopper gives up.
		w.res.WaitGaveUp++
		w.clientDone(cl)
		return
	}
	kind := escrow.CmdWaitGet
	if cl.cancelAfter > 0 && w.now-cl.waitStart >= int64(cl.cancelAfter) {
		kind = escrow.CmdWaitCancel
	}
	w.nextReq++
	req := &request{cl: cl, attempt: -1, gateway: cl.home, server: cl.owner,
		cmd: escrow.Command{Kind: kind, ReqID: w.nextReq, HoldID: cl.waitID}}
	w.q.push(event{at: w.at(w.clientDelay()), kind: evReqArrive, node: int32(cl.home), req: req})
	w.q.push(event{at: w.at(waitPollEvery), kind: evWaitPoll, cl: cl})
}

// waitReply handles the answer to a poll or cancel.
func (w *world) waitReply(cl *client, r *escrow.Reply) {
	if r.Err != nil && r.Err.Code == escrow.CodeNotFound {
		w.res.WaitGaveUp++ // retired before the shopper heard how it ended
		w.clientDone(cl)
		return
	}
	if r.Wait == nil || r.Wait.ID != cl.waitID {
		return
	}
	switch r.Wait.State {
	case escrow.Promoted:
		owner, _ := escrow.OwnerOf(r.Wait.HoldID)
		cl.holdID, cl.owner = r.Wait.HoldID, w.byName[owner]
		w.res.Granted++
		if cl.plan == planAbandon {
			w.res.Abandoned++
			w.clientDone(cl)
			return
		}
		cl.phase = clThink
		cl.until = w.at(cl.think)
		w.q.push(event{at: min(cl.until, w.at(w.o.TTL/2)), kind: evThink, cl: cl})
	case escrow.Cancelled:
		w.res.WaitCancelled++
		w.clientDone(cl)
	case escrow.WaitExpired:
		w.res.WaitExpired++
		w.clientDone(cl)
	}
}
