package sim

import (
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// endpoint is a region (index < number of regions) or a daemon.
type endpoint struct {
	idx  int
	name string
	site int
	down bool
	inc  uint32 // incarnation: bumps on every crash

	// Region runtime.
	cfg       escrow.Config
	node      *escrow.Node
	fsyncBusy bool
	inflight  escrow.Ready
	replied   bool // hook: replies of inflight already delivered
	waiting   map[uint64]*request
	dur       *durable
	skew      time.Duration
	restarts  int

	// The real region runtime (RuntimeRegion; runtime_region.go), nil
	// for the escrow runtime.
	rt *regionRT

	// Daemon.
	d Daemon
}

// boot builds (or rebuilds, from durable state) the node of a region.
func (w *world) boot(ep *endpoint) error {
	ep.cfg = w.regionConfig(ep)
	if w.o.Runtime == RuntimeRegion {
		return w.bootRegion(ep)
	}
	var st *escrow.State
	if ep.restarts > 0 {
		st = ep.dur.state()
	}
	if w.o.SKUCache > 0 {
		// The node reads its rows from its simulated disk on first touch.
		ep.cfg.Rows, ep.cfg.MaxResidentSKUs = ep.dur, w.o.SKUCache
		if st != nil {
			st.Rows = nil
		}
	}
	if w.o.HoldCache > 0 {
		// Holds and keys are read from the simulated disk on demand.
		ep.cfg.Holds, ep.cfg.MaxResidentHolds = ep.dur, w.o.HoldCache
		if st != nil {
			st.Holds, st.Idem = nil, nil
			st.HeldHolds = ep.dur.held()
			st.NewestHold, st.NewestHoldKnown = ep.dur.newestHold(), true
		}
	}
	n, err := escrow.NewNode(ep.cfg, st)
	if err != nil {
		return fmt.Errorf("sim: region %s: restore: %w", ep.name, err)
	}
	ep.node = n
	ep.down = false
	w.memberBooted(ep)
	return nil
}

func (w *world) nodeNow(ep *endpoint) time.Time {
	return baseTime.Add(time.Duration(w.now) + ep.skew)
}

// step feeds one input to a region's node and runs the durability loop.
func (w *world) step(ep *endpoint, in escrow.Input) {
	in.Now = w.nodeNow(ep)
	if w.mb != nil {
		w.memberInput(ep, &in)
	}
	if ep.rt != nil {
		w.stepRegion(ep, in)
		return
	}
	if err := ep.node.Step(in); err != nil {
		w.res.MsgErrors++
	}
	w.pump(ep)
}

// pump takes a Ready whenever no write is in flight: group commit, one
// synced write at a time, Readies persisted in the order returned.
func (w *world) pump(ep *endpoint) {
	if ep.rt != nil {
		w.pumpRegion(ep)
		return
	}
	for !ep.down && !ep.fsyncBusy && ep.node.HasReady() {
		rd := ep.node.Ready()
		w.orc.onReady(ep, &rd)
		if rd.Persist.Empty() {
			// Nothing to write: send and reply at once.
			w.complete(ep, &rd, false)
			continue
		}
		ep.inflight = rd
		ep.fsyncBusy = true
		ep.replied = false
		d := w.fsyncDelay()
		if s := w.stallDelay(ep); s > 0 {
			d += s
			w.stalledSync(ep, &rd, d)
		}
		if w.o.Hooks.ReplyBeforePersist {
			// The bug: answer before the write is durable...
			acked := false
			for i := range rd.Reply {
				r := &rd.Reply[i]
				acked = acked || (r.Kind == escrow.CmdHold && r.Err == nil && !r.Replayed)
				w.deliverReply(ep, r)
			}
			ep.replied = true
			// ...and sometimes die before it is.
			if acked && w.netRng.Float64() < 0.1 {
				w.q.push(event{at: w.now + d/2, kind: evCrash, node: int32(ep.idx), inc: ep.inc})
			}
		}
		w.q.push(event{at: w.now + d, kind: evFsync, node: int32(ep.idx), inc: ep.inc})
	}
}

// complete runs the rest of the durability rule once rd is durable: send,
// then reply, then Advance.
func (w *world) complete(ep *endpoint, rd *escrow.Ready, wrote bool) {
	if wrote {
		w.orc.onEvents(ep, &rd.Persist)
		ep.dur.apply(&rd.Persist)
		w.orc.onDurable(ep, &rd.Persist)
	}
	for i := range rd.Send {
		// A copy: the network keeps it in flight, and the node reuses
		// the Ready's Send slice once Advanced.
		m := rd.Send[i]
		w.send(ep.idx, &m, 0)
	}
	if !(wrote && ep.replied) {
		for i := range rd.Reply {
			w.deliverReply(ep, &rd.Reply[i])
		}
	}
	ep.node.Advance()
}

func (w *world) fsyncDelay() int64 {
	return int64(w.o.Fsync)/2 + w.netRng.Int64N(int64(w.o.Fsync)+1)
}

func (w *world) deliverReply(ep *endpoint, r *escrow.Reply) {
	if r.Err != nil && r.Kind == escrow.CmdRestock {
		// The drain's restocks are stepped in directly, not waited on.
		w.drainRestockRefused(r.ReqID)
	}
	req := ep.waiting[r.ReqID]
	if req == nil {
		return
	}
	delete(ep.waiting, r.ReqID)
	w.mix(r.ReqID)
	if req.cl == nil {
		return // admin command: nobody waits
	}
	if r.Err != nil && r.Err.Code == escrow.CodeRouted && r.Kind == escrow.CmdHold && !req.cmd.Routed {
		w.route(ep, req, r.Err.Owner)
		return
	}
	req.reply = *r
	w.nextReply++
	req.replySeq = w.nextReply
	if r.Err != nil && r.Kind == escrow.CmdHold {
		req.couldGrant = w.orc.couldGrant(req.cmd.Lines, req.cmd.Locations)
		if req.couldGrant {
			req.cause = w.refusalCause(ep.idx, &req.cmd, r.Err, w.now-req.arriveAt)
		}
		if s, ok := w.skuIdx[r.Err.SKU]; ok {
			req.availAt = w.orc.globalAvail(s)
		}
	}
	if req.server != req.gateway {
		w.rpc(req.server, req.gateway, evReplyArrive, req)
		return
	}
	if !w.clientLinkLost(req.gateway) {
		w.q.push(event{at: w.at(w.clientDelay()), kind: evClientReply, req: req})
	}
}

// route sends a hold the node answered with CodeRouted on to the region
// it named, as the region runtime does: from the gateway, with Routed set.
// When that region is down the gateway runs it itself (the runtime's
// forward fails at once: no responders); a request lost to a partition is
// retried by the client like any other.
func (w *world) route(ep *endpoint, req *request, to string) {
	t, ok := w.byName[to]
	req.cmd.Routed = true
	req.cl.routed = true
	w.res.Routed++
	if !ok || t >= w.nReg || w.eps[t].down {
		req.server = req.gateway
		req.unreachable = to
		w.q.push(event{at: w.now, kind: evReqArrive, node: int32(req.gateway), req: req})
		return
	}
	req.server = t
	w.rpc(ep.idx, t, evReqArrive, req)
}

func (w *world) reqArrive(i int, req *request) {
	ep := w.eps[i]
	if ep.down {
		return
	}
	if i != req.server {
		w.rpc(i, req.server, evReqArrive, req)
		return
	}
	ep.waiting[req.cmd.ReqID] = req
	req.arriveAt = w.now
	c := req.cmd
	w.step(ep, escrow.Input{Cmd: &c, Unreachable: req.unreachable})
}

func (w *world) crash(ep *endpoint) {
	if ep.down {
		return
	}
	w.res.Crashes++
	ep.down = true
	ep.inc++
	if ep.d != nil {
		ep.d.Reset()
		return
	}
	w.addStats(ep.node.Stats())
	if ep.rt != nil {
		w.crashRegion(ep)
	}
	ep.node = nil
	ep.fsyncBusy = false
	ep.inflight = escrow.Ready{}
	clear(ep.waiting)
	w.orc.onCrash(ep)
}

func (w *world) restart(ep *endpoint) {
	if !ep.down || !w.mayRun(ep) {
		return
	}
	if ep.d != nil {
		ep.down = false
		return
	}
	ep.restarts++
	if err := w.boot(ep); err != nil {
		// Stored state that does not load is a broken invariant.
		w.res.ConservationErrors++
		w.fail("%v", err)
		return
	}
	if ep.down {
		return // it did not start (region runtime: disk full); restarted later
	}
	w.orc.checkAcked(ep, true)
	w.pump(ep)
}

func (w *world) addStats(s escrow.Stats) {
	r := &w.res
	r.BorrowsSent += s.BorrowsSent
	r.BorrowTimeouts += s.BorrowTimeouts
	r.BorrowUnitsIn += s.BorrowUnitsIn
	r.TopUps += s.TopUps
	r.AdviceApplied += s.AdviceApplied
	r.RepairsSent += s.RepairsSent
	r.FenceRefused += s.FenceRefused
	r.LocationSplitLines += s.LocationSplitLines
	r.LocationRefused += s.LocationRefused
	r.StaleBorrowsRefused += s.BorrowStaleRefused
	r.DonationCopiesRefused += s.DonationCopiesRefused
	r.SKUCacheMisses += s.SKUCacheMisses
	r.SKUCacheEvictions += s.SKUCacheEvictions
	r.HoldCacheMisses += s.HoldCacheMisses
	r.HoldCacheEvictions += s.HoldCacheEvictions
}
