package sim

import (
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/escrow/escrowtest"
)

// baseTime is virtual time zero. Fixed, so that hold ids and traces do not
// depend on when the simulator runs.
var baseTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var regionNames = []string{"us_east", "eu_west", "ap_south", "sa_east", "us_west", "eu_north", "ap_east", "af_south"}

// RegionNames returns the names of the first n simulated regions.
func RegionNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		if i < len(regionNames) {
			out[i] = regionNames[i]
		} else {
			out[i] = fmt.Sprintf("r%d", i)
		}
	}
	return out
}

// Independent random streams: the workload and the fault schedule do not
// depend on what the network or the strategy did, so that strategies and
// bug hooks can be compared on the same seed.
const (
	streamTopology = iota + 1
	streamFaults
	streamWorkload
	streamRestock
	streamNet
	streamNode
)

func newRand(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15*stream))
}

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

	// Daemon.
	d Daemon
}

// request is one attempt of one client command on its way.
type request struct {
	cl      *client // nil for an admin command (restock): the reply is dropped
	attempt int
	cmd     escrow.Command
	gateway int // region the client talks to
	server  int // region whose node executes the command
	reply   escrow.Reply
	replyAt int64 // when the server's node produced reply
	// The oracle's view when a refusal was produced: could the cart have
	// been granted somewhere, and the units of the refused SKU anywhere.
	couldGrant bool
	availAt    int64
	// unreachable: a routed hold run at its gateway because the home was
	// down; the gateway's node is told (escrow.Input.Unreachable).
	unreachable string
}

type world struct {
	o     Options
	setup Setup
	strat Strategy
	wl    *workload
	q     queue
	now   int64

	nReg   int
	eps    []*endpoint
	byName map[string]int
	skuIdx map[string]int

	lat         []int64  // [a*E+b] base one-way latency, ns
	lastAt      []int64  // [a*E+b] FIFO delivery horizon
	spike       []int64  // [a*E+b] extra delay during a spike
	blocked     []bool   // [a*N+b] regions cut apart
	maxBorrowID []uint64 // [a*N+b] highest borrow id a sent to b
	dropP       float64
	dupP        float64
	reorder     float64

	faults []fault
	netRng *rand.Rand
	wlRng  *rand.Rand
	rsRng  *rand.Rand
	nodeRn *rand.Rand

	orc *oracle
	res Result

	nextReq    uint64
	nextClient uint64
	active     int  // clients not done (workload and probes)
	arrivals   bool // the workload still sends carts
	healAt     int64
	stopAt     int64
	done       bool
	phaseStart int64
	probes     []*client
	convTarget []convTarget
	hash       uint64
	tr         io.Writer // nil: no trace
	series     *Series
	lastSample struct{ granted, rejected uint64 }
}

// Run simulates one seed and returns its result. It is deterministic: the
// same options give the same result, byte for byte.
func Run(o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	w, err := newWorld(o.withDefaults())
	if err != nil {
		return nil, err
	}
	w.runChecked()
	return &w.res, nil
}

// runChecked runs and finishes the world; a panic (of escrow or of the
// simulator) is a failure of this seed, reported with it, not a crash of
// the whole sweep.
func (w *world) runChecked() {
	defer func() {
		if p := recover(); p != nil {
			w.res.Panics++
			w.fail("panic: %v", p)
		}
	}()
	w.run()
	w.finish()
}

func newWorld(o Options) (*world, error) {
	strat, err := newStrategy(o.Strategy)
	if err != nil {
		return nil, err
	}
	w := &world{
		o:      o,
		strat:  strat,
		byName: map[string]int{},
		skuIdx: map[string]int{},
		netRng: newRand(o.Seed, streamNet),
		wlRng:  newRand(o.Seed, streamWorkload),
		rsRng:  newRand(o.Seed, streamRestock),
		nodeRn: newRand(o.Seed, streamNode),
		hash:   14695981039346656037,
	}
	w.setup = Setup{Opts: o, Regions: RegionNames(o.Regions)}
	for i := 0; i < o.SKUs; i++ {
		s := fmt.Sprintf("sku%04d", i)
		w.setup.SKUs = append(w.setup.SKUs, s)
		w.skuIdx[s] = i
	}
	w.nReg = o.Regions
	w.res.Seed = o.Seed
	w.res.ConvergeMs = -1
	for i, name := range w.setup.Regions {
		ep := &endpoint{idx: i, name: name, site: i, waiting: map[uint64]*request{}, dur: newDurable()}
		w.eps = append(w.eps, ep)
		w.byName[name] = i
	}
	for _, d := range strat.Daemons(&w.setup) {
		if err := escrow.ValidRegion(d.Name()); err != nil {
			return nil, fmt.Errorf("sim: daemon name: %w", err)
		}
		if _, dup := w.byName[d.Name()]; dup {
			return nil, fmt.Errorf("sim: daemon %s has the name of another endpoint", d.Name())
		}
		if d.Site() < 0 || d.Site() >= w.nReg || d.TickEvery() <= 0 {
			return nil, fmt.Errorf("sim: daemon %s: bad site or tick period", d.Name())
		}
		ep := &endpoint{idx: len(w.eps), name: d.Name(), site: d.Site(), d: d}
		w.byName[d.Name()] = ep.idx
		w.eps = append(w.eps, ep)
	}
	w.topology(newRand(o.Seed, streamTopology))
	w.faults = genFaults(newRand(o.Seed, streamFaults), &o, w.nReg, len(w.eps))
	if o.Faults == FaultsAll {
		skewRng := newRand(o.Seed, streamFaults+100)
		for i := 0; i < w.nReg; i++ {
			w.eps[i].skew = time.Duration(skewRng.Int64N(int64(2*time.Second))) - time.Second
		}
	}
	w.wl = newWorkload(&o, w.setup.SKUs, newRand(o.Seed, streamWorkload+100))
	w.orc = newOracle(w)
	if o.Series {
		w.series = &Series{Regions: w.setup.Regions}
	}
	for _, ep := range w.eps[:w.nReg] {
		if err := w.boot(ep); err != nil {
			return nil, err
		}
	}
	return w, nil
}

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

func (w *world) regionConfig(ep *endpoint) escrow.Config {
	cfg := escrow.Config{
		Region:        ep.name,
		DefaultTTL:    w.o.TTL,
		MaxLifetime:   max(w.o.TTL, time.Hour),
		BorrowTimeout: w.o.BorrowTimeout,
	}
	cfg = escrowtest.WithBugs(cfg, w.o.Bugs)
	w.strat.Config(&w.setup, ep.idx, &cfg)
	// Hold ids of every incarnation come from their own stream.
	r := rand.New(rand.NewPCG(w.o.Seed, uint64(ep.idx)<<32|uint64(ep.inc)+1))
	cfg.Rand = r.Uint64
	return cfg
}

// boot builds (or rebuilds, from durable state) the node of a region.
func (w *world) boot(ep *endpoint) error {
	ep.cfg = w.regionConfig(ep)
	var st *escrow.State
	if ep.restarts > 0 {
		st = ep.dur.state()
	}
	n, err := escrow.NewNode(ep.cfg, st)
	if err != nil {
		return fmt.Errorf("sim: region %s: restore: %w", ep.name, err)
	}
	ep.node = n
	ep.down = false
	return nil
}

func (w *world) nodeNow(ep *endpoint) time.Time {
	return baseTime.Add(time.Duration(w.now) + ep.skew)
}

func (w *world) at(d time.Duration) int64 { return w.now + int64(d) }

func (w *world) mix(v uint64) {
	w.hash ^= v
	w.hash *= 1099511628211
}

// fail records a checker failure message (the first few of a run).
func (w *world) fail(format string, args ...any) {
	if len(w.res.Failures) < 10 {
		w.res.Failures = append(w.res.Failures, fmt.Sprintf("t=%s ", fmtT(w.now))+fmt.Sprintf(format, args...))
	}
}

func fmtT(ns int64) string {
	return fmt.Sprintf("%.3fs", float64(ns)/1e9)
}

const (
	phHeal = iota + 1
	phConvPoll
	phStop
	phSettle
	phFinalPoll
	phProbePoll
	phFinal
	phSample
)

const (
	convergeBound  = 60 * time.Second // after heal: every row version of heal time seen everywhere
	finalBound     = 30 * time.Second // after quiescence: every view equal to its owner's row
	pollEvery      = 100 * time.Millisecond
	probeBound     = 20 * time.Second
	probeTries     = 5
	maxAttempts    = 3
	restartMinimum = 500 * time.Millisecond
)

func (w *world) run() {
	o := &w.o
	D := int64(o.Duration)
	w.stopAt = D
	w.healAt = healTime(o)
	// Initial stock, split over the regions, minted where the strategy
	// keeps it.
	for i := 0; i < w.nReg; i++ {
		for s, sku := range w.setup.SKUs {
			_ = s
			q := split(o.Stock, w.nReg, i)
			if q == 0 {
				continue
			}
			w.admin(w.strat.Server(&w.setup, i), escrow.Command{Kind: escrow.CmdRestock, SKU: sku, Qty: q}, false)
		}
	}
	for i, ep := range w.eps {
		period := o.Tick
		if ep.d != nil {
			period = ep.d.TickEvery()
		}
		// Stagger ticks so regions do not all step at the same instant.
		w.q.push(event{at: int64(period) * int64(i+1) / int64(len(w.eps)+1), kind: evTick, node: int32(i)})
	}
	for i := range w.faults {
		f := &w.faults[i]
		w.q.push(event{at: f.at, kind: evFault, n: int32(i), inc: 0})
		w.q.push(event{at: f.end, kind: evFault, n: int32(i), inc: 1})
	}
	if o.Faults == FaultsAll {
		w.dropP, w.dupP, w.reorder = 0.02, 0.01, 0.05
	}
	w.arrivals = true
	w.q.push(event{at: w.wl.nextArrival(w.wlRng, 0), kind: evCartArrive})
	w.q.push(event{at: w.wl.nextRestock(w.rsRng, 0), kind: evRestock})
	w.q.push(event{at: w.healAt, kind: evPhase, n: phHeal})
	w.q.push(event{at: D, kind: evPhase, n: phStop})
	if w.series != nil {
		w.q.push(event{at: 0, kind: evPhase, n: phSample})
	}
	budget := maxEvents(o)
	for w.q.len() > 0 && !w.done {
		if w.res.Events >= budget {
			w.res.Panics++
			w.fail("event budget of %d exhausted: the run does not settle", budget)
			return
		}
		e := w.q.pop()
		w.now = e.at
		if e.kind == evPhase && e.n == phSample {
			// Observation only: not an event of the simulated world, so
			// that recording series changes neither counts nor trace.
			w.phase(phSample)
			continue
		}
		w.res.Events++
		w.mix(uint64(e.at))
		w.mix(uint64(e.kind)<<40 | uint64(e.node)<<8 | uint64(e.n))
		if w.tr != nil {
			w.traceEvent(&e)
		}
		w.dispatch(&e)
	}
}

// maxEvents bounds a run: far above what the workload needs (about 1,000
// events per virtual second at the default rate), so that a message storm
// is reported instead of running forever.
func maxEvents(o *Options) uint64 {
	secs := (o.Duration + 3*o.TTL + 5*time.Minute).Seconds()
	return uint64(secs * (20_000 + 500*o.Rate) * float64(o.Regions))
}

// healTime is when every fault has ended: the last 20% of the workload
// runs fault-free so that the post-heal checkers have something to check.
func healTime(o *Options) int64 { return int64(o.Duration) * 8 / 10 }

func split(total uint64, n, i int) uint64 {
	q := total / uint64(n)
	if uint64(i) < total%uint64(n) {
		q++
	}
	return q
}

func (w *world) dispatch(e *event) {
	switch e.kind {
	case evTick:
		ep := w.eps[e.node]
		if ep.d != nil {
			w.q.push(event{at: w.at(ep.d.TickEvery()), kind: evTick, node: e.node})
			if !ep.down {
				w.daemonSend(ep, ep.d.Tick(w.nodeNow(ep)))
			}
			return
		}
		w.q.push(event{at: w.at(w.o.Tick), kind: evTick, node: e.node})
		if !ep.down {
			w.step(ep, escrow.Input{})
		}
	case evFsync:
		ep := w.eps[e.node]
		if ep.down || ep.inc != e.inc || !ep.fsyncBusy {
			return // the write died with the process
		}
		rd := ep.inflight
		ep.inflight = escrow.Ready{}
		ep.fsyncBusy = false
		w.complete(ep, &rd, true)
		w.pump(ep)
	case evMsg:
		ep := w.eps[e.node]
		if ep.down {
			return
		}
		w.mix(uint64(e.msg.Type) | e.msg.Seq<<8)
		if ep.d != nil {
			w.daemonSend(ep, ep.d.Receive(w.nodeNow(ep), e.msg))
			return
		}
		m := *e.msg
		w.step(ep, escrow.Input{Msg: &m})
	case evReqArrive:
		w.reqArrive(int(e.node), e.req)
	case evReplyArrive:
		if w.eps[e.node].down {
			return
		}
		if e.req.cl != nil {
			w.q.push(event{at: w.at(w.clientDelay()), kind: evClientReply, req: e.req})
		}
	case evClientReply:
		w.clientReply(e.req)
	case evClientTimeout:
		w.clientTimeout(e.cl, int(e.n))
	case evCartArrive:
		if !w.arrivals {
			return
		}
		w.q.push(event{at: w.wl.nextArrival(w.wlRng, w.now), kind: evCartArrive})
		if cl := w.wl.cart(w.wlRng, w.now, w.nReg); cl != nil {
			w.nextClient++
			cl.id = w.nextClient
			w.startCart(cl)
		}
	case evThink:
		w.clientThink(e.cl)
	case evRestock:
		if !w.arrivals {
			return
		}
		w.q.push(event{at: w.wl.nextRestock(w.rsRng, w.now), kind: evRestock})
		for _, rs := range w.wl.restock(w.rsRng, w.now, w.nReg) {
			w.res.Restocks++
			w.admin(rs.region, escrow.Command{Kind: escrow.CmdRestock, SKU: rs.sku, Qty: rs.qty}, true)
		}
	case evFault:
		w.applyFault(int(e.n), e.inc == 1)
	case evCrash:
		ep := w.eps[e.node]
		if !ep.down && ep.inc == e.inc {
			w.crash(ep)
			w.q.push(event{at: w.at(time.Second), kind: evRestart, node: e.node, inc: ep.inc})
		}
	case evRestart:
		if ep := w.eps[e.node]; ep.down && ep.inc == e.inc {
			w.restart(ep)
		}
	case evPhase:
		w.phase(int(e.n))
	}
}

// admin sends an admin command (restock) from a client of region home; with
// net false it is applied at once (initial stock).
func (w *world) admin(home int, cmd escrow.Command, net bool) {
	w.nextReq++
	cmd.ReqID = w.nextReq
	srv := w.strat.Server(&w.setup, home)
	req := &request{cmd: cmd, gateway: home, server: srv}
	if !net {
		ep := w.eps[srv]
		c := req.cmd
		w.step(ep, escrow.Input{Cmd: &c})
		return
	}
	w.q.push(event{at: w.at(w.clientDelay()), kind: evReqArrive, node: int32(home), req: req})
}

// step feeds one input to a region's node and runs the durability loop.
func (w *world) step(ep *endpoint, in escrow.Input) {
	in.Now = w.nodeNow(ep)
	if err := ep.node.Step(in); err != nil {
		w.res.MsgErrors++
	}
	w.pump(ep)
}

// pump takes a Ready whenever no write is in flight: group commit, one
// synced write at a time, Readies persisted in the order returned.
func (w *world) pump(ep *endpoint) {
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
		ep.dur.apply(&rd.Persist)
		w.orc.onDurable(ep, &rd.Persist)
	}
	for i := range rd.Send {
		w.send(ep.idx, &rd.Send[i], 0)
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

func (w *world) clientDelay() time.Duration {
	return w.o.ClientLatency + time.Duration(w.netRng.Int64N(int64(w.o.ClientLatency)/5+1))
}

func (w *world) deliverReply(ep *endpoint, r *escrow.Reply) {
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
	req.replyAt = w.now
	if r.Err != nil && r.Kind == escrow.CmdHold {
		req.couldGrant = w.orc.couldGrant(req.cmd.Lines)
		if s, ok := w.skuIdx[r.Err.SKU]; ok {
			req.availAt = w.orc.globalAvail(s)
		}
	}
	if req.server != req.gateway {
		w.rpc(req.server, req.gateway, evReplyArrive, req)
		return
	}
	w.q.push(event{at: w.at(w.clientDelay()), kind: evClientReply, req: req})
}

// route sends a hold the node answered with CodeRouted on to the region
// it named, as the region runtime does: from the gateway, with Routed set.
// When that region is down the gateway runs it itself (the runtime's
// forward fails at once: no responders); a request lost to a partition is
// retried by the client like any other.
func (w *world) route(ep *endpoint, req *request, to string) {
	t, ok := w.byName[to]
	req.cmd.Routed = true
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
	c := req.cmd
	w.step(ep, escrow.Input{Cmd: &c, Unreachable: req.unreachable})
}

// ---- network ----

func (w *world) isBlocked(a, b int) bool {
	return w.blocked[w.eps[a].site*w.nReg+w.eps[b].site]
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
	if w.o.Wire {
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
	if w.isBlocked(src, dst) {
		return
	}
	if w.dropP > 0 && w.netRng.Float64() < w.dropP {
		return
	}
	at := w.now + extra + w.linkDelay(src, dst)
	k := src*len(w.eps) + dst
	if w.reorder > 0 && w.netRng.Float64() < w.reorder {
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

// ---- crashes ----

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
	ep.node = nil
	ep.fsyncBusy = false
	ep.inflight = escrow.Ready{}
	clear(ep.waiting)
	w.orc.onCrash(ep)
}

func (w *world) restart(ep *endpoint) {
	if !ep.down {
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
	w.orc.checkAcked(ep, true)
	w.pump(ep)
}

// ---- phases ----

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
	w.dropP, w.dupP, w.reorder = 0, 0, 0
	for _, ep := range w.eps {
		w.restart(ep)
	}
}

// rowsOf returns a region's rows by (sku, writer).
func rowsOf(ep *endpoint) map[[2]string]*escrow.Row {
	rows := ep.node.Rows()
	m := make(map[[2]string]*escrow.Row, len(rows))
	for i := range rows {
		m[[2]string{rows[i].SKU, rows[i].Region}] = &rows[i]
	}
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

func (w *world) targetReached() bool {
	views := w.liveViews()
	for _, t := range w.convTarget {
		name := w.eps[t.owner].name
		for v := range views {
			if v == t.owner || views[v] == nil {
				continue
			}
			r := views[v][[2]string{t.sku, name}]
			if r == nil || r.Seq < t.seq {
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
		if views[o] == nil {
			continue
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
		if w.orc.globalAvail(s) < 1 {
			continue
		}
		local := make([]uint64, w.nReg)
		for i, ep := range w.eps[:w.nReg] {
			if !ep.down {
				local[i] = ep.node.Available(sku)
			}
		}
		home := w.strat.ProbeRegion(&w.setup, local)
		if home < 0 {
			continue
		}
		w.nextClient++
		cl := &client{id: w.nextClient, home: home, lines: []escrow.Line{{SKU: sku, Qty: 1}},
			plan: planRelease, think: time.Second, probe: true}
		w.probes = append(w.probes, cl)
		w.startCart(cl)
	}
}

func (w *world) sample() {
	s := w.series
	p := Point{T: float64(w.now) / 1e9, Avail: make([]int64, w.nReg)}
	for i, ep := range w.eps[:w.nReg] {
		if ep.down {
			p.Avail[i] = -1
			continue
		}
		var a uint64
		for _, sku := range w.setup.SKUs {
			a += ep.node.Available(sku)
		}
		p.Avail[i] = int64(a)
	}
	p.Granted = w.res.Granted - w.lastSample.granted
	p.Rejected = w.res.Rejected + w.res.Unavailable - w.lastSample.rejected
	w.lastSample.granted = w.res.Granted
	w.lastSample.rejected = w.res.Rejected + w.res.Unavailable
	s.Points = append(s.Points, p)
}

// finish runs the end-of-run checkers and computes the metrics.
func (w *world) finish() {
	w.orc.final()
	for _, ep := range w.eps[:w.nReg] {
		if !ep.down {
			w.addStats(ep.node.Stats())
		}
	}
	w.res.P50HoldMs = w.res.latency.quantileMs(0.50)
	w.res.P99HoldMs = w.res.latency.quantileMs(0.99)
	w.res.TraceHash = w.hash
	if w.series != nil {
		w.series.Faults = w.faultSpans()
		w.res.Series = w.series
	}
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
}
