package sim

// The membership fault: a region is added and another removed under load,
// by the operator procedure of docs/operations.md ("Adding or removing a
// region"), deterministically by seed, on either runtime. With the region
// runtime (membership_region.go) a region takes a new member list as a
// real one does: its process restarts with a new config (region.Config
// Members), the new region starts with fresh_probation on.
//
// The run has one region more than --regions: the last, the joiner, is not
// a member and is down until it joins. Every region runs with an explicit
// membership (escrow.Config.Members), read from its configuration at every
// boot (conf below), as the real region reads its config file.
//
//   - Join, at a seeded time: the operator lists the joiner in every
//     member's configuration and restarts the members one at a time (a
//     stop keeps what is durable, as a crash does; the region is down
//     mbRestartDown, then the operator waits mbRestartSettle); then starts
//     the joiner with an empty store, on probation (escrow.BeginProbation,
//     the waits of the region runtime's defaults); once its probation is
//     over, shoppers go to it too (a share of every region's new carts) and
//     borrows, top-ups and advice move units to it.
//   - Leave, at a later seeded time (after the join): one of the original
//     regions is drained (membership_drain.go): restarted with top-up off
//     (so it stops pulling units in), new carts and restocks go elsewhere,
//     its holds end or expire, and each second the operator writes off what
//     it has available and restocks the same number elsewhere (keyed
//     restocks, retried until durable). When nothing is held or available
//     there, nothing is in flight to it and every other member has its
//     last rows, it is stopped for good and the others restart one at a
//     time without it. Its name is never used again.
//   - Zombie, when there is time before heal: the removed region's old
//     process comes back by mistake for a while, from its store, with its
//     configuration from before the drain, and still gets shoppers.
//
// The membership checker (Result.MembershipErrors, membership_check.go)
// adds to every other:
//   - probation: the joiner changes its own row (grants, takes units)
//     before its probation may end: mbProbationMin after its empty start,
//     and either a digest heard from every other member or mbProbationMax;
//   - non-members: a member whose members no longer list the removed
//     region sends it units, or, at the end, a member's copy of its rows is
//     not the row it had when it stopped (units sent to it by members that
//     still listed it are stranded: counted, not an error);
//   - drained units: the units written off at the removed region differ
//     from those restocked elsewhere; conservation (oracle.final) counts
//     its last rows, so a unit lost anywhere is caught there too;
//   - the procedure did not complete before the run settled.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// Episode kinds of the membership fault.
const (
	fJoin faultKind = iota + 30
	fLeave
)

const (
	mbRestartDown   = time.Second     // a region of a rolling restart is down this long
	mbRestartSettle = 2 * time.Second // then the operator waits this long before the next
	mbPoll          = 500 * time.Millisecond
	mbDrainPoll     = time.Second
	// The probation of a region that starts empty, as the region runtime
	// sets it by default: 1.5 digest intervals, at most 30s.
	mbProbationMin = 1500 * time.Millisecond
	mbProbationMax = region.DefaultFreshProbationMax
)

// Random streams of the membership fault: its schedule and its draws
// while the run goes (rolling restart order, shoppers sent to the new
// region), fixed whatever the fault's place in faultNames.
const (
	streamMembership    = streamNamedFaults + 400
	streamMembershipRun = streamNamedFaults + 300
)

func init() {
	namedSpanKind[fJoin] = "join"
	namedSpanKind[fLeave] = "leave"
}

// membershipOn reports whether a run of o simulates a membership change
// (it then has one region more than o.Regions: the joiner).
func membershipOn(o *Options) bool {
	return o.faultSet().Has(FaultMembership)
}

// extraRegions is the number of regions a run of o has beyond o.Regions.
func extraRegions(o *Options) int {
	if membershipOn(o) {
		return 1
	}
	return 0
}

// genMembership draws the join and the leave of a run. The region removed
// is not victim, the one whose store the store faults send back (-1:
// none): a region fenced for good cannot be drained (it refuses the
// write-offs); the operator replaces it instead (docs/operations.md, "A
// wiped or lost region").
func genMembership(r *rand.Rand, o *Options, victim int) []fault {
	D := float64(o.Duration)
	joiner := o.Regions
	first := 0
	if o.Strategy == "central" {
		first = 1 // the authority holds every unit: it is not the one removed
	}
	x := first + r.IntN(o.Regions-first)
	if x == victim {
		x = first + (x-first+1)%(o.Regions-first)
	}
	join := int64(D * (0.08 + 0.08*r.Float64()))
	leave := int64(D * (0.25 + 0.10*r.Float64()))
	return []fault{
		{at: join, end: join + 1, kind: fJoin, node: joiner, desc: fmt.Sprintf("join r%d", joiner)},
		{at: leave, end: leave + 1, kind: fLeave, node: x, desc: fmt.Sprintf("leave r%d", x)},
	}
}

// membership is the runtime state of the membership fault.
type membership struct {
	rng    *rand.Rand
	joiner int
	x      int        // the region removed (its leave's node)
	conf   [][]string // [region] the members its configuration lists

	started, serving, joined bool // joiner: started; probation over; join procedure done
	draining, stopped, left  bool // removed: drain begun; stopped for good; leave procedure done
	// leaveSkipped: the leave was not made, a region's store having gone
	// back before it began (anyStoreBack).
	leaveSkipped bool
	// zombie: the removed region's old process runs again, by mistake,
	// until zombieEnd: its messages must change nothing.
	zombie    bool
	zombieEnd int64

	// Rolling restart in progress.
	roll        []int
	rollStopped int // region the operator stopped and restarts next, -1 none
	rollNext    int64
	joinStep    int
	leaveStep   int

	// Probation checker of the joiner.
	probeStart time.Time // node clock at its empty start
	heard      map[string]bool
	wrote      bool

	// Drain of the removed region.
	base      []uint64 // [sku] its durable Shrunk when the drain began
	restocked []uint64 // [sku] units restocked elsewhere, durable
	// owedFenced: [sku] units written off whose stock key belongs to a
	// location owned by a region whose store went back (it refuses every
	// write): they cannot go home until an operator replaces that region,
	// and restocking them anywhere else would create units where none are.
	owedFenced []uint64
	pend       []mbRestock
	keys       int
	final      map[string]escrow.Row // its own rows when it stopped, by SKU: what members keep
	last       map[string]escrow.Row // its last durable own rows (after the zombie's), for conservation

	joins, leaves, restarts, drained, zombies uint64
	stranded                                  uint64 // units sent to the removed region after it stopped
}

// mbRestock is a keyed restock of drained units, until it is durable.
type mbRestock struct {
	key string
	at  int    // the region restocked
	inc uint32 // its incarnation then
	s   int    // the drained SKU (stock key)
	qty uint64
	req uint64 // its request
	// refused: the region answered it with an error (a region on
	// probation refuses writes, "retry shortly"): nothing was applied, so
	// it is issued again, as an operator retries.
	refused bool
}

// drainRestockRefused marks the drain restock of request req refused.
func (w *world) drainRestockRefused(req uint64) {
	if w.mb == nil {
		return
	}
	for i := range w.mb.pend {
		if w.mb.pend[i].req == req {
			w.mb.pend[i].refused = true
		}
	}
}

func (w *world) initMembership() {
	if !membershipOn(&w.o) {
		return
	}
	mb := &membership{rng: newRand(w.o.Seed, streamMembershipRun), joiner: w.nReg - 1, rollStopped: -1,
		heard: map[string]bool{}, x: -1}
	initial := w.setup.Regions[:w.nReg-1]
	mb.conf = make([][]string, w.nReg)
	for i := range initial {
		mb.conf[i] = slices.Clone(initial)
	}
	for _, f := range w.faults {
		if f.kind == fLeave {
			mb.x = f.node
		}
	}
	w.mb = mb
}

// mayRun reports whether region ep may be started (by a restart or a heal):
// not the joiner before it joins, not the removed region once stopped.
func (w *world) mayRun(ep *endpoint) bool {
	mb := w.mb
	if mb == nil || ep.idx >= w.nReg {
		return true
	}
	return !(ep.idx == mb.joiner && !mb.started) && !(ep.idx == mb.x && mb.stopped && !mb.zombie)
}

// retired reports whether region i takes no part in the run's end: the
// joiner that never started, the removed region.
func (w *world) retired(i int) bool { return !w.mayRun(w.eps[i]) }

// memberConfig sets the membership of a region's configuration.
func (w *world) memberConfig(ep *endpoint, cfg *escrow.Config) {
	mb := w.mb
	if mb == nil || ep.idx >= w.nReg {
		return
	}
	cfg.Members = slices.Clone(mb.conf[ep.idx])
	if ep.idx == mb.x && mb.draining && !mb.zombie {
		// Drain mode: no top-up, so it stops pulling units in.
		cfg.LowWater, cfg.TopUpHorizon = 0, -1
	}
}

// memberBooted: a region's node was just built. The joiner, when its store
// is empty, starts on probation, as the region runtime starts it.
func (w *world) memberBooted(ep *endpoint) {
	mb := w.mb
	if mb == nil || ep.idx != mb.joiner || ep.node.Seq() != 0 {
		return
	}
	if !w.o.Hooks.SkipProbation && ep.rt == nil {
		// (The region runtime begins it itself: memberRegionConfig.)
		ep.node.BeginProbation(mbProbationMin, mbProbationMax)
	}
	mb.probeStart = w.nodeNow(ep)
	clear(mb.heard)
	mb.wrote = false
}

// shopHome is the region a new cart of region slot goes to: the removed
// region's go to the joiner (or the next member) from its drain on, and
// once the joiner serves, it takes its share of every region's carts.
func (w *world) shopHome(slot int) int {
	mb := w.mb
	if mb == nil {
		return slot
	}
	if slot == mb.x && mb.draining {
		if mb.serving {
			return mb.joiner
		}
		return (slot + 1) % (w.nReg - 1)
	}
	if mb.serving && mb.rng.IntN(w.nReg-1) == 0 {
		return mb.joiner
	}
	if mb.zombie && mb.rng.IntN(w.nReg-1) == 0 {
		return mb.x // its old process still gets shoppers
	}
	return slot
}

// rehome moves a new cart to the region shopHome picks (with the
// locations its new region may sell, workload locations).
func (w *world) rehome(cl *client) {
	h := w.shopHome(cl.home)
	if h == cl.home {
		return
	}
	cl.home = h
	if cl.locs != nil {
		cl.locs = w.wl.lineLocations(w.mb.rng, cl.lines, h)
	}
}

// restockHome is where a workload restock of region i goes: not to the
// removed region once its drain began (-1: dropped, for a location only
// it may mint).
func (w *world) restockHome(i int, key string) int {
	mb := w.mb
	if mb == nil || i != mb.x || !mb.draining {
		return i
	}
	if w.ownerOf(key) == i {
		return -1
	}
	if mb.serving {
		return mb.joiner
	}
	return (i + 1) % (w.nReg - 1)
}

// membershipSettled reports whether the membership change is over (the
// run's settling waits for it).
func (w *world) membershipSettled() bool {
	return w.mb == nil || (w.mb.joined && w.mb.left)
}

// applyMembership runs one step of the operator's procedure.
func (w *world) applyMembership(f *fault, end bool) {
	if end || w.mb == nil {
		return
	}
	idx := 0
	for i := range w.faults {
		if &w.faults[i] == f {
			idx = i
		}
	}
	var again time.Duration
	if f.kind == fJoin {
		again = w.joinStep(f)
	} else {
		again = w.leaveStep(f)
	}
	if again > 0 {
		w.q.push(event{at: w.at(again), kind: evFault, n: int32(idx)})
	}
}

// members lists the regions of the cluster now, in index order.
func (w *world) members() []string {
	mb := w.mb
	var out []string
	for i := 0; i < w.nReg; i++ {
		if (i == mb.joiner && !mb.started) || (i == mb.x && mb.stopped) {
			continue
		}
		out = append(out, w.eps[i].name)
	}
	return out
}

// beginRoll starts a rolling restart of every region of list (a seeded
// order) with its configuration as it is now.
func (w *world) beginRoll(list []int) {
	mb := w.mb
	mb.roll = mb.roll[:0]
	for _, p := range mb.rng.Perm(len(list)) {
		mb.roll = append(mb.roll, list[p])
	}
	mb.rollStopped = -1
	mb.rollNext = w.now
}

// rollStep advances the rolling restart; it reports whether it is over.
func (w *world) rollStep() bool {
	mb := w.mb
	if mb.rollStopped >= 0 {
		if w.now < mb.rollNext {
			return false
		}
		ep := w.eps[mb.rollStopped]
		mb.rollStopped = -1
		if ep.down {
			w.restart(ep)
			mb.restarts++
		}
		mb.rollNext = w.at(mbRestartSettle)
		return false
	}
	if w.now < mb.rollNext {
		return false
	}
	if len(mb.roll) == 0 {
		return true
	}
	i := mb.roll[0]
	mb.roll = mb.roll[1:]
	if ep := w.eps[i]; !ep.down {
		w.stopRegion(ep)
		mb.rollStopped = i
		mb.rollNext = w.at(mbRestartDown)
	}
	// A region down (a crash) boots with its new configuration when it
	// comes back.
	return false
}

// stopRegion stops a region as an operator does: what is durable stays,
// as in a crash, but it is not counted as one.
func (w *world) stopRegion(ep *endpoint) {
	w.crash(ep)
	w.res.Crashes--
}

func indexes(names []string, byName map[string]int) []int {
	out := make([]int, len(names))
	for i, n := range names {
		out[i] = byName[n]
	}
	return out
}

// joinStep: list the joiner everywhere, restart the members one at a time,
// start the joiner, wait for its probation to end.
func (w *world) joinStep(f *fault) time.Duration {
	mb := w.mb
	switch mb.joinStep {
	case 0:
		old := w.members()
		list := append(slices.Clone(old), w.eps[mb.joiner].name)
		for _, i := range indexes(old, w.byName) {
			mb.conf[i] = list
		}
		mb.conf[mb.joiner] = list
		w.beginRoll(indexes(old, w.byName))
		mb.joinStep = 1
		return mbPoll
	case 1:
		if !w.rollStep() {
			return mbPoll
		}
		ep := w.eps[mb.joiner]
		mb.started = true
		if err := w.boot(ep); err != nil {
			w.membershipError("new region %s does not start: %v", ep.name, err)
			mb.joined = true
			return 0
		}
		w.pump(ep)
		mb.joinStep = 2
		return mbPoll
	default:
		ep := w.eps[mb.joiner]
		if ep.down || ep.node.Fence().Fenced {
			return mbPoll
		}
		mb.serving, mb.joined = true, true
		mb.joins++
		f.end = w.now
		return 0
	}
}

// leaveStep: drain the removed region, stop it, restart the others one at
// a time without it.
func (w *world) leaveStep(f *fault) time.Duration {
	mb := w.mb
	ep := w.eps[mb.x]
	switch mb.leaveStep {
	case 0:
		if !mb.joined {
			return mbDrainPoll
		}
		if w.anyStoreBack() {
			// docs/operations.md: do not change the membership while a
			// region is fenced after a store loss; replace it first. The
			// simulator never replaces one, so the leave is not made: the
			// region removed may be the only one that saw the lost rows
			// (the fence of the region that lost them would forget them).
			mb.leaveSkipped, mb.left = true, true
			f.end = w.now
			return 0
		}
		mb.draining = true
		mb.base = make([]uint64, len(w.setup.SKUs))
		mb.restocked = make([]uint64, len(w.setup.SKUs))
		mb.owedFenced = make([]uint64, len(w.setup.SKUs))
		for s := range w.setup.SKUs {
			mb.base[s] = w.orc.dur[mb.x*w.orc.S+s].shrunk
		}
		// Restart it in drain mode (top-up off).
		w.beginRoll([]int{mb.x})
		mb.leaveStep = 1
		return mbPoll
	case 1:
		if !w.rollStep() {
			return mbPoll
		}
		mb.leaveStep = 2
		return mbDrainPoll
	case 2:
		w.drainRestocks()
		if ep.down {
			return mbDrainPoll
		}
		if !ep.node.Fence().Fenced {
			for _, sku := range w.setup.SKUs {
				if a := ep.node.Available(sku); a > 0 {
					w.nextReq++
					c := escrow.Command{Kind: escrow.CmdWriteOff, ReqID: w.nextReq, SKU: sku, Qty: min(a, escrow.MaxQty)}
					w.step(ep, escrow.Input{Cmd: &c})
				}
			}
		}
		if !w.drained() {
			return mbDrainPoll
		}
		w.orc.checkAcked(ep, false)
		mb.final = w.ownDurable(ep)
		mb.last = mb.final
		w.stopRegion(ep)
		mb.stopped = true
		mb.leaves++
		rest := w.members()
		for _, i := range indexes(rest, w.byName) {
			mb.conf[i] = rest
		}
		w.beginRoll(indexes(rest, w.byName))
		mb.leaveStep = 3
		return mbPoll
	case 3:
		if !w.rollStep() {
			return mbPoll
		}
		mb.left = true
		f.end = w.now
		// The zombie: when there is time before heal, the removed
		// region's old process comes back for a while.
		start := w.at(time.Duration(5+mb.rng.IntN(15)) * time.Second)
		mb.zombieEnd = start + int64(time.Duration(10+mb.rng.IntN(20))*time.Second)
		if mb.zombieEnd+int64(10*time.Second) >= w.healAt {
			return 0
		}
		mb.leaveStep = 4
		return time.Duration(start - w.now)
	case 4:
		// It boots from its store with the configuration it had before
		// its drain: its old membership, top-up on.
		mb.zombie = true
		mb.zombies++
		w.restart(ep)
		mb.leaveStep = 5
		return time.Duration(mb.zombieEnd - w.now)
	default:
		// (It may have sold units sent to it after its stop: they were
		// its own. Members must not have merged any of it.)
		if !ep.down {
			w.orc.checkAcked(ep, false)
		}
		w.stopRegion(ep)
		mb.zombie = false
		mb.last = w.ownDurable(ep)
		return 0
	}
}

// anyStoreBack reports whether some region's store went back in time, or is
// about to (an image waits to be restored).
func (w *world) anyStoreBack() bool {
	for _, ep := range w.eps[:w.nReg] {
		if ep.rt != nil && (ep.rt.sb.wentBack || ep.rt.sb.pending != nil) {
			return true
		}
	}
	return false
}

// leaveUnderWay reports whether the removed region's drain has begun and
// its leave is not over: a store going back then is not simulated (the
// operator's procedure assumes none meanwhile; see anyStoreBack).
func (w *world) leaveUnderWay() bool {
	return w.mb != nil && w.mb.draining && !w.mb.left
}
