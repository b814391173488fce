package sim

import (
	"hash/fnv"
	"strconv"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

const (
	planConfirm uint8 = iota + 1
	planRelease
	planAbandon
)

const (
	clHold   uint8 = iota + 1 // waiting for the hold
	clThink                   // holding, deciding
	clFinish                  // waiting for confirm / release
	clRetry                   // probe: waiting to try again
	clDone
	clWaiting // on the waitlist: polling the entry (waitlist.go)
)

// client is one shopper with one cart (or one liveness probe).
type client struct {
	id      uint64
	home    int
	lines   []escrow.Line
	idem    string
	hash    uint64
	plan    uint8
	think   time.Duration
	until   int64 // end of thinking; heartbeats (extend) until then
	phase   uint8
	attempt int
	start   int64
	holdID  string
	partial bool // asks for a partial hold
	owner   int
	probe   bool
	tries   int
	granted bool
	homeInc uint32 // incarnation of the shopper's region when the cart began
	routed  bool   // an attempt was routed to a home (falsereject.go)
	// Waitlist: how long the cart may wait, when its shopper cancels (0:
	// never), the entry and when it joined.
	wait        time.Duration
	cancelAfter time.Duration
	waitID      string
	waitStart   int64
	// locs: the eligible locations of the lines (workload locations).
	locs []escrow.LineLocations
}

func hashLines(lines []escrow.Line, locs []escrow.LineLocations) uint64 {
	h := fnv.New64a()
	for _, l := range lines {
		h.Write([]byte(l.SKU))
		var b [8]byte
		for i := range b {
			b[i] = byte(l.Qty >> (8 * i))
		}
		h.Write(b[:])
	}
	for _, ll := range locs { // none: the hash is as before locations
		h.Write([]byte(ll.SKU))
		for _, l := range ll.Locations {
			h.Write([]byte{0})
			h.Write([]byte(l))
		}
		if ll.Split {
			h.Write([]byte{1})
		}
	}
	return h.Sum64()
}

func (w *world) clientTimeoutAfter() time.Duration {
	bt := w.o.BorrowTimeout
	if bt == 0 {
		bt = escrow.DefaultBorrowTO
	}
	return 2*time.Second + 2*w.o.maxOneWay() + bt
}

func (w *world) startCart(cl *client) {
	w.active++
	if !cl.probe {
		w.res.Holds++
	}
	cl.start = w.now
	cl.homeInc = w.eps[cl.home].inc
	cl.hash = hashLines(cl.lines, cl.locs)
	w.beginHold(cl)
}

func (w *world) beginHold(cl *client) {
	cl.phase = clHold
	cl.attempt = 0
	cl.idem = "c" + strconv.FormatUint(cl.id, 10) + "-" + strconv.Itoa(cl.tries)
	w.sendHold(cl)
}

func (w *world) sendHold(cl *client) {
	cl.attempt++
	w.nextReq++
	req := &request{cl: cl, attempt: cl.attempt, gateway: cl.home, server: w.strat.Server(&w.setup, cl.home),
		cmd: escrow.Command{Kind: escrow.CmdHold, ReqID: w.nextReq, Lines: cl.lines, TTL: w.o.TTL,
			IdemKey: cl.idem, IdemHash: cl.hash, Partial: cl.partial, Wait: cl.wait, Locations: cl.locs}}
	w.clientSend(req)
	w.q.push(event{at: w.at(w.clientTimeoutAfter()), kind: evClientTimeout, cl: cl, n: int32(cl.attempt)})
}

func (w *world) sendFinish(cl *client) {
	cl.attempt++
	w.nextReq++
	kind := escrow.CmdConfirm
	if cl.plan == planRelease {
		kind = escrow.CmdRelease
	}
	req := &request{cl: cl, attempt: cl.attempt, gateway: cl.home, server: cl.owner,
		cmd: escrow.Command{Kind: kind, ReqID: w.nextReq, HoldID: cl.holdID}}
	w.clientSend(req)
	w.q.push(event{at: w.at(w.clientTimeoutAfter()), kind: evClientTimeout, cl: cl, n: int32(cl.attempt)})
}

// sendExtend is fire-and-forget: a lost heartbeat is covered by the next.
func (w *world) sendExtend(cl *client) {
	w.nextReq++
	w.res.Extends++
	req := &request{cl: cl, attempt: -1, gateway: cl.home, server: cl.owner,
		cmd: escrow.Command{Kind: escrow.CmdExtend, ReqID: w.nextReq, HoldID: cl.holdID, TTL: w.o.TTL}}
	w.clientSend(req)
}

func (w *world) clientDone(cl *client) {
	cl.phase = clDone
	w.active--
}

func (w *world) recordLatency(cl *client) {
	if !cl.probe {
		w.res.latency.Record(time.Duration(w.now - cl.start))
	}
}

// clientReply handles a reply that reached its client. Replies to an
// attempt the client no longer waits for still go to the checkers.
func (w *world) clientReply(req *request) {
	cl := req.cl
	r := &req.reply
	w.orc.observe(req)
	if req.cmd.Kind == escrow.CmdHold && r.Hold != nil && cl.holdID != "" && r.Hold.ID != cl.holdID {
		// A retry with the same idempotency key must return the hold the
		// client already has, never a second one.
		w.res.LostAcked++
		w.fail("idempotency key %s answered with hold %s after hold %s", cl.idem, r.Hold.ID, cl.holdID)
	}
	switch {
	case cl.phase == clHold && req.cmd.Kind == escrow.CmdHold:
		w.recordLatency(cl) // answered holds only: unanswered ones count as unavailable
		if r.Err == nil && r.Hold != nil {
			w.checkLocations(cl, r.Hold)
			owner, _ := escrow.OwnerOf(r.Hold.ID)
			cl.holdID, cl.owner = r.Hold.ID, w.byName[owner]
			if cl.probe {
				cl.granted = true
			} else {
				w.res.Granted++
			}
			if cl.plan == planAbandon {
				w.res.Abandoned++
				w.clientDone(cl)
				return
			}
			cl.phase = clThink
			cl.until = w.at(cl.think)
			w.q.push(event{at: min(cl.until, w.at(w.o.TTL/2)), kind: evThink, cl: cl})
			return
		}
		if r.Err == nil && r.Wait != nil {
			w.waitJoined(cl, r.Wait)
			return
		}
		if r.Err != nil && r.Err.Code == escrow.CodeHomeUnreachable && cl.attempt < maxAttempts && req.attempt == cl.attempt {
			// 503 with Retry-After: the shopper retries with the same key.
			w.res.Retries++
			w.q.push(event{at: w.at(time.Second), kind: evClientTimeout, cl: cl, n: int32(cl.attempt)})
			return
		}
		w.holdFailed(cl, req)
	case cl.phase == clWaiting && (req.cmd.Kind == escrow.CmdWaitGet || req.cmd.Kind == escrow.CmdWaitCancel):
		w.waitReply(cl, r)
	case cl.phase == clFinish && (req.cmd.Kind == escrow.CmdConfirm || req.cmd.Kind == escrow.CmdRelease):
		switch {
		case r.Err == nil && req.cmd.Kind == escrow.CmdConfirm:
			w.res.Confirmed++
		case r.Err == nil:
			w.res.Released++
		default:
			w.res.Conflicts++ // confirm after expiry, typically
		}
		w.clientDone(cl)
	}
}

// holdFailed ends a cart that got no hold: refused by req, or given up
// (req nil).
func (w *world) holdFailed(cl *client, req *request) {
	if cl.probe {
		if cl.tries+1 < probeTries {
			cl.tries++
			cl.phase = clRetry
			w.q.push(event{at: w.at(time.Second), kind: evThink, cl: cl})
			return
		}
		w.clientDone(cl)
		return
	}
	could := false
	if req == nil {
		w.res.Unavailable++
		could = w.orc.couldGrant(cl.lines, cl.locs)
	} else {
		w.res.Rejected++
		could = req.couldGrant
		if err := req.reply.Err; err.Code == escrow.CodeInsufficientStock {
			w.res.StockRejects++
			if s, ok := w.skuIdx[err.SKU]; ok {
				w.orc.noteStockReject(cl.home, s, req.availAt)
			}
		}
	}
	if could {
		w.res.FalseRejects++
		if req == nil {
			w.noteFalseReject(w.unansweredCause(cl))
		} else {
			w.noteFalseReject(req.cause)
		}
	}
	w.clientDone(cl)
}

func (w *world) clientTimeout(cl *client, attempt int) {
	if cl.attempt != attempt {
		return
	}
	switch cl.phase {
	case clHold:
		if cl.attempt < maxAttempts {
			w.res.Retries++
			w.sendHold(cl) // same idempotency key
			return
		}
		w.holdFailed(cl, nil)
	case clFinish:
		if cl.attempt < maxAttempts {
			w.res.Retries++
			w.sendFinish(cl)
			return
		}
		w.res.GaveUp++
		w.clientDone(cl)
	}
}

func (w *world) clientThink(cl *client) {
	switch cl.phase {
	case clThink:
		if w.now < cl.until {
			// A live shopper keeps the hold alive with a heartbeat.
			w.sendExtend(cl)
			w.q.push(event{at: min(cl.until, w.at(w.o.TTL/2)), kind: evThink, cl: cl})
			return
		}
		cl.phase = clFinish
		cl.attempt = 0
		w.sendFinish(cl)
	case clRetry:
		w.beginHold(cl)
	}
}
