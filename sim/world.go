package sim

import (
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/escrow/escrowtest"
	"github.com/holdfast-io/holdfast/internal/hist"
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

// request is one attempt of one client command on its way.
type request struct {
	cl      *client // nil for an admin command (restock): the reply is dropped
	attempt int
	cmd     escrow.Command
	gateway int // region the client talks to
	server  int // region whose node executes the command
	reply   escrow.Reply
	// replySeq orders the replies as the servers' nodes produced them
	// (two replies of one Ready share a time, not an order).
	replySeq uint64
	// The oracle's view when a refusal was produced: could the cart have
	// been granted somewhere, and the units of the refused SKU anywhere.
	couldGrant bool
	cause      string // of a refusal while the units existed (falsereject.go)
	arriveAt   int64  // when the server's node was given the command
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
	fs     FaultSet    // the faults of o.Faults
	nf     namedFaults // runtime state of the named faults
	mb     *membership // the membership fault (membership.go), nil without it
	netRng *rand.Rand
	wlRng  *rand.Rand
	rsRng  *rand.Rand
	nodeRn *rand.Rand

	orc   *oracle
	res   Result
	waits *waitStats // waitlist workload only

	frCause    map[string]uint64 // false rejections by cause
	nextReq    uint64
	nextReply  uint64
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
	w.setup = Setup{Opts: o, Regions: RegionNames(o.Regions + extraRegions(&o))}
	for i := 0; i < o.SKUs; i++ {
		s := fmt.Sprintf("sku%04d", i)
		w.setup.SKUs = append(w.setup.SKUs, s)
		w.skuIdx[s] = i
	}
	w.nReg = len(w.setup.Regions)
	w.res.Seed = o.Seed
	w.res.ConvergeMs = -1
	w.res.latency = hist.New(hist.Compact)
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
	w.fs = o.faultSet()
	w.faults = genFaults(newRand(o.Seed, streamFaults), &o, w.nReg, len(w.eps))
	w.faults = append(w.faults, genNamedFaults(o.Seed, w.fs, &o, w.nReg, len(w.eps))...)
	w.initNamedFaults()
	w.initMembership()
	if w.fs.Has(FaultSkew) {
		skewRng := newRand(o.Seed, streamFaults+100)
		for i := 0; i < w.nReg; i++ {
			w.eps[i].skew = time.Duration(skewRng.Int64N(int64(2*time.Second))) - time.Second
		}
		w.countFault(FaultSkew, uint64(w.nReg))
	}
	shopped := w.setup.SKUs
	if o.Workload == workloadLocations {
		shopped = w.setupLocations()
		w.res.locations = true
	}
	w.wl = newWorkload(&o, shopped, newRand(o.Seed, streamWorkload+100))
	w.wl.locs, w.wl.regions = w.setup.Locations, w.setup.Regions
	w.orc = newOracle(w)
	if o.Workload == "waitlist" {
		w.waits = newWaitStats(w.nReg)
	}
	if o.Series {
		w.series = &Series{Regions: w.setup.Regions}
	}
	for _, ep := range w.eps[:w.nReg] {
		if !w.mayRun(ep) {
			ep.down = true // the joiner of the membership fault
			continue
		}
		if err := w.boot(ep); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func (w *world) regionConfig(ep *endpoint) escrow.Config {
	cfg := escrow.Config{
		Region:           ep.name,
		DefaultTTL:       w.o.TTL,
		MaxLifetime:      max(w.o.TTL, time.Hour),
		BorrowTimeout:    w.o.BorrowTimeout,
		BorrowTimeoutMax: w.o.BorrowTimeoutMax,
		Locations:        w.setup.Locations,
	}
	if w.o.Soak {
		// Terminal holds, idempotency keys and donation answers cycle
		// within the soak.
		cfg.HoldRetain, cfg.IdemTTL = soakRetain, soakRetain
		cfg.MaxDonations = soakMaxDonations
	}
	cfg = escrowtest.WithBugs(cfg, w.o.Bugs)
	w.strat.Config(&w.setup, ep.idx, &cfg)
	w.memberConfig(ep, &cfg)
	// Hold ids of every incarnation come from their own stream.
	r := rand.New(rand.NewPCG(w.o.Seed, uint64(ep.idx)<<32|uint64(ep.inc)+1))
	cfg.Rand = r.Uint64
	return cfg
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
		if !w.mayRun(w.eps[i]) {
			continue
		}
		for s, sku := range w.setup.SKUs {
			_ = s
			q := w.initialStock(i, sku)
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
	if w.fs.Has(FaultLossy) {
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
	if w.waits != nil {
		w.q.push(event{at: int64(waitCheckEvery), kind: evWaitCheck})
	}
	if o.Soak {
		w.q.push(event{at: int64(soakEvery(o)), kind: evPhase, n: phSoak})
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
		if e.kind == evPhase && (e.n == phSample || e.n == phSoak) {
			// Observation only: not an event of the simulated world, so
			// that recording series changes neither counts nor trace.
			w.phase(int(e.n))
			continue
		}
		if e.kind == evWaitCheck {
			w.checkCrossRegion() // observation only, as above
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
	if w.paused(e) {
		return
	}
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
		if ep.rt != nil {
			if ep.inc == e.inc && (!ep.down || e.n == stageRecover) {
				w.regionStage(ep, int(e.n))
			}
			return
		}
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
		if w.fs.Has(FaultReplay) && len(m.Rows) > 0 {
			w.stepWatchingRows(ep, &m)
			return
		}
		if w.stepStale(ep, &m) {
			return
		}
		w.step(ep, escrow.Input{Msg: &m})
	case evReqArrive:
		w.reqArrive(int(e.node), e.req)
	case evReplyArrive:
		if w.eps[e.node].down {
			return
		}
		if e.req.cl != nil && !w.clientLinkLost(int(e.node)) {
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
		if cl := w.wl.cart(w.wlRng, w.now, w.o.Regions); cl != nil {
			w.rehome(cl)
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
		for _, rs := range w.wl.restock(w.rsRng, w.now, w.o.Regions) {
			r := w.restockHome(rs.region, rs.sku)
			if r < 0 {
				continue
			}
			w.res.Restocks++
			w.admin(r, escrow.Command{Kind: escrow.CmdRestock, SKU: rs.sku, Qty: rs.qty}, true)
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
	case evWaitPoll:
		w.waitPoll(e.cl)
	case evStoreBack:
		w.onStoreBackEvent(w.eps[e.node], e.n)
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
	w.finishMembership()
	w.finishWaits()
	for _, ep := range w.eps[:w.nReg] {
		if !ep.down {
			w.addStats(ep.node.Stats())
		}
	}
	w.res.P50HoldMs = holdMs(w.res.latency.QuantileMid(0.50))
	w.res.P99HoldMs = holdMs(w.res.latency.QuantileMid(0.99))
	w.res.TraceHash = w.hash
	w.res.FaultCounts = w.faultCounts()
	if !w.fs.legacy() {
		w.res.FalseRejectsByCause = w.frCause
		if w.res.FalseRejectsByCause == nil {
			w.res.FalseRejectsByCause = map[string]uint64{}
		}
	}
	if w.series != nil {
		w.series.Faults = w.faultSpans()
		w.res.Series = w.series
	}
}
