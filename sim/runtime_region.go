package sim

// RuntimeRegion: every region is the real region runtime (region.Stepper)
// over Pebble on a crashable in-memory vfs, its pipeline stages (cut,
// commit, fsync, deliver) scheduled as events with delays drawn from a
// seeded stream of its own, every peer message through the wire codec.
// A crash keeps only what was synced (vfs.MemFS.CrashClone) and the
// restart recovers through the region's open path.

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
	"github.com/holdfast-io/holdfast/region/regiontest"
)

// Runtimes.
const (
	RuntimeEscrow = "escrow"
	RuntimeRegion = "region"
)

// Runtimes lists the runtimes `--runtime` accepts.
var Runtimes = []string{RuntimeEscrow, RuntimeRegion}

// Stages of a region's pipeline, as evFsync's n (0 is the escrow runtime's
// synced write).
const (
	stageCommit  = 1 + iota // write the oldest cut batch (no fsync)
	stageSync               // fsync every written batch
	stageDeliver            // send and reply for the synced batches
	stageRecover            // rebuild the node after a storage failure
)

const streamRuntime = 64 // + region index: a region runtime's stage delays

var discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func (o *Options) validateRuntime() error {
	switch o.Runtime {
	case RuntimeEscrow:
		if o.RegionBugs != (regiontest.Bugs{}) {
			return fmt.Errorf("sim: region runtime bugs need --runtime %s", RuntimeRegion)
		}
		for _, name := range strings.Split(o.Faults, ",") {
			for _, f := range faultNames {
				if f.name == strings.TrimSpace(name) && storageFaults.Has(f.f) {
					return fmt.Errorf("sim: fault %q is a storage fault of the region runtime: it needs --runtime %s",
						f.name, RuntimeRegion)
				}
			}
		}
	case RuntimeRegion:
		if o.Hooks.ReplyBeforePersist {
			return fmt.Errorf("sim: bug %s is of the escrow runtime; the region runtime's is %s",
				BugReplyBeforePersist, BugReplyBeforeSync)
		}
	default:
		return fmt.Errorf("sim: runtime must be %s or %s, got %q", RuntimeEscrow, RuntimeRegion, o.Runtime)
	}
	return nil
}

// regionRT is the region runtime of one endpoint, across incarnations.
type regionRT struct {
	mem *vfs.MemFS // the disk; replaced by its crash image on a crash
	st  *region.Stepper
	rng *rand.Rand

	cutBusy  bool // a batch is cut and its commit scheduled
	syncBusy bool // an fsync is scheduled
	// Persists of the batches cut and not yet durable, oldest first.
	pend    []escrow.Persist
	written int // of which written (committed), not yet synced
	// views: the last copy of each peer row this incarnation's node
	// persisted, for the view_regressions checker.
	views map[[2]string]escrow.Row
	// failed: the store failed a batch; the node is rebuilt (Recover).
	failed bool
	// Disk-full window (storage_faults.go): writes fail with ENOSPC while
	// full is set, between fullFrom and fullTo.
	full             atomic.Bool
	fullFrom, fullTo int64
	// Faults that send the store back (storage_faults_fence.go).
	sb storeBack
}

func (w *world) bootRegion(ep *endpoint) error {
	if ep.rt == nil {
		ep.rt = &regionRT{mem: vfs.NewCrashableMem(), rng: newRand(w.o.Seed, streamRuntime+uint64(ep.idx))}
		w.res.Runtime = RuntimeRegion
		w.planDiskFull(ep)
	}
	rt := ep.rt
	w.regressStore(ep)
	w.flipStore(ep)
	cfg := region.Config{
		Name:           ep.name,
		DataDir:        "db",
		FS:             rt.fs(),
		FreshProbation: -1,
		HoldRetain:     -1,
		Logger:         discardLog,
		Escrow:         ep.cfg,
		Now:            func() time.Time { return w.nodeNow(ep) },
		SKUCache:       w.o.SKUCache,
		HoldCache:      w.o.HoldCache,
	}
	if cfg.HoldCache > 0 {
		// The hold cache needs a store that keeps terminal holds (its
		// pruner, not the node, deletes them).
		cfg.HoldRetain = 0
	}
	cfg = regiontest.WithBugs(cfg, w.o.RegionBugs)
	w.memberRegionConfig(ep, &cfg)
	w.storeBackConfig(ep, &cfg)
	w.diskState(ep)
	if rt.full.Load() {
		// The disk is full: the process does not start (pebble's open
		// flushes the replayed log) and is restarted a little later.
		w.q.push(event{at: w.at(500 * time.Millisecond), kind: evRestart, node: int32(ep.idx), inc: ep.inc})
		return nil
	}
	st, err := region.OpenStepper(cfg)
	if err == nil && ep.restarts > 0 && w.storageFault(FaultRecovery) && rt.rng.IntN(recoveryCrashEvery) == 0 {
		// Crash during recovery: the process dies right after the
		// store's recovery, keeping part of what it wrote unsynced.
		w.res.RecoveryCrashes++
		img := rt.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rt.rng.IntN(100),
			RNG: rand.New(rand.NewPCG(rt.rng.Uint64(), 1))})
		st.Abandon()
		rt.mem = img
		cfg.FS = rt.fs()
		st, err = region.OpenStepper(cfg)
	}
	if w.bitflipOpened(ep, err) {
		return nil // refused to start on a corrupt store
	}
	if err != nil {
		return fmt.Errorf("sim: region %s: open: %w", ep.name, err)
	}
	rt.st = st
	rt.cutBusy, rt.syncBusy, rt.written, rt.failed = false, false, 0, false
	rt.pend = rt.pend[:0]
	rt.views = map[[2]string]escrow.Row{}
	ep.node = st.Node()
	ep.down = false
	w.memberBooted(ep)
	if ep.restarts > 0 {
		w.checkStore(ep)
	}
	return nil
}

// stepRegion steps one input into the region runtime.
func (w *world) stepRegion(ep *endpoint, in escrow.Input) {
	st := ep.rt.st
	switch {
	case st.Down():
		// Rebuilding after a storage failure: the runtime refuses
		// (a client retries, anti-entropy repairs a dropped message).
	case in.Cmd != nil:
		_ = st.Submit(*in.Cmd, in.Unreachable)
	case in.Msg != nil:
		if err := st.Message(*in.Msg); err != nil {
			w.res.MsgErrors++
		}
	default:
		st.Tick()
	}
	w.pumpRegion(ep)
}

// pumpRegion cuts a batch when the committer is free, as the stepLoop does
// (at most one batch between cut and written; several written batches may
// wait for one fsync).
func (w *world) pumpRegion(ep *endpoint) {
	rt := ep.rt
	if ep.down || rt.cutBusy || rt.st.InFlight() >= 8 {
		return
	}
	rd := rt.st.CutReady()
	if rd == nil {
		return
	}
	w.orc.onReady(ep, rd)
	w.checkViews(ep, &rd.Persist)
	rt.pend = append(rt.pend, rd.Persist)
	rt.cutBusy = true
	w.q.push(event{at: w.now + rt.rng.Int64N(int64(50*time.Microsecond)+1), kind: evFsync,
		node: int32(ep.idx), inc: ep.inc, n: stageCommit})
}

// regionStage runs one scheduled stage of a region's pipeline.
func (w *world) regionStage(ep *endpoint, stage int) {
	rt := ep.rt
	st := rt.st
	switch stage {
	case stageCommit:
		rt.cutBusy = false
		w.diskState(ep)
		if !st.Commit() {
			return
		}
		rt.written++
		w.regionReplies(ep) // none, unless a planted bug answers early
		w.maybeCrashMidSync(ep)
		if !rt.syncBusy {
			rt.syncBusy = true
			w.q.push(event{at: w.now + w.regionSyncDelay(ep), kind: evFsync, node: int32(ep.idx), inc: ep.inc, n: stageSync})
		}
		w.pumpRegion(ep)
	case stageSync:
		rt.syncBusy = false
		w.diskState(ep)
		if !st.SyncDurable() {
			return
		}
		// Durable now (each batch whose write and fsync succeeded): the
		// model of the disk and the oracle follow.
		for i, ok := range st.SyncedOK(rt.written) {
			if !ok {
				break // it and every batch after it failed
			}
			p := &rt.pend[i]
			w.orc.onEvents(ep, p)
			ep.dur.apply(p)
			w.orc.onDurable(ep, p)
		}
		rt.pend = append(rt.pend[:0], rt.pend[rt.written:]...)
		rt.written = 0
		w.q.push(event{at: w.now + rt.rng.Int64N(int64(20*time.Microsecond)+1), kind: evFsync,
			node: int32(ep.idx), inc: ep.inc, n: stageDeliver})
	case stageRecover:
		w.recoverRegion(ep)
	case stageDeliver:
		st.Deliver(nil)
		w.regionReplies(ep)
		if st.Down() {
			w.storageDown(ep)
			return
		}
		if st.Written() > 0 && !rt.syncBusy {
			rt.syncBusy = true
			w.q.push(event{at: w.now + w.regionSyncDelay(ep), kind: evFsync, node: int32(ep.idx), inc: ep.inc, n: stageSync})
		}
		w.pumpRegion(ep)
	}
}

// regionSyncDelay is the latency of an fsync: --fsync, plus the long tail
// and stalls of the stall fault; a stall of seconds makes the process's
// watchdog kill it now and then, before heal (as for the escrow runtime).
func (w *world) regionSyncDelay(ep *endpoint) int64 {
	d := w.fsyncDelay()
	if s := w.stallDelay(ep); s > 0 {
		d += s
		if d > int64(time.Second) && w.now+d < w.healAt && w.nf.rng.Float64() < 0.3 {
			w.q.push(event{at: w.now + d/2, kind: evCrash, node: int32(ep.idx), inc: ep.inc})
		}
	}
	return d
}

// regionReplies sends the messages and delivers the replies the runtime
// released.
func (w *world) regionReplies(ep *endpoint) {
	st := ep.rt.st
	for _, m := range st.TakeMessages() {
		w.send(ep.idx, &m, 0)
	}
	for _, r := range st.TakeReplies() {
		w.deliverReply(ep, &r)
	}
}

// storageDown: the store failed a batch and the runtime discarded its
// node (its callers got no reply). Until the node is rebuilt from the
// store (stageRecover, with backoff, as the runtime's recover loop) the
// region answers nothing, like a crashed one.
func (w *world) storageDown(ep *endpoint) {
	rt := ep.rt
	w.res.StorageErrors++
	w.addStats(ep.node.Stats())
	ep.down = true
	ep.inc++
	clear(ep.waiting)
	w.orc.onCrash(ep)
	rt.failed = true
	rt.pend = rt.pend[:0]
	rt.written, rt.cutBusy, rt.syncBusy = 0, false, false
	w.q.push(event{at: w.at(100 * time.Millisecond), kind: evFsync, node: int32(ep.idx), inc: ep.inc, n: stageRecover})
}

// recoverRegion rebuilds a region's node after a storage failure, as the
// runtime's recover loop does (region.Stepper.Recover: reopen the store,
// reload the node).
func (w *world) recoverRegion(ep *endpoint) {
	rt := ep.rt
	w.diskState(ep)
	if rt.full.Load() {
		// Reopening would block in pebble's open (it flushes the
		// replayed log): the runtime's retries fail until the disk
		// takes writes again.
		w.q.push(event{at: w.at(200 * time.Millisecond), kind: evFsync, node: int32(ep.idx), inc: ep.inc, n: stageRecover})
		return
	}
	if err := rt.st.Recover(); err != nil {
		if rt.sb.flippedOnce && pebble.IsCorruptionError(err) {
			// A flip found late (storage_faults_bitflip.go): the store
			// does not reload; the process gives up and is brought
			// back on an empty directory.
			w.res.BitflipLate++
			rt.st.Abandon()
			rt.st, rt.failed = nil, false
			ep.node = nil
			ep.inc++
			w.corruptStart(ep)
			return
		}
		// The disk still fails: retried later.
		w.q.push(event{at: w.at(200 * time.Millisecond), kind: evFsync, node: int32(ep.idx), inc: ep.inc, n: stageRecover})
		return
	}
	rt.failed = false
	rt.views = map[[2]string]escrow.Row{}
	ep.node = rt.st.Node()
	ep.down = false
	w.checkStore(ep)
	w.orc.checkAcked(ep, true)
	w.pumpRegion(ep)
}

// crashRegion is a crash of the process: the disk keeps what was synced,
// and with storage faults sometimes a torn part of the first unsynced
// write (pebble's recovery must drop it).
func (w *world) crashRegion(ep *endpoint) {
	rt := ep.rt
	img := rt.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	if tt, ok := rt.st.TornTail(); ok && w.storageFault(FaultTorn) && tt.FirstEnd-tt.Synced >= 2 && rt.rng.IntN(2) == 0 {
		keep := 1 + rt.rng.Int64N(tt.FirstEnd-tt.Synced-1)
		if torn, err := region.TearImage(rt.mem, tt, keep); err == nil {
			img = torn
			w.res.TornCrashes++
		} else {
			w.fail("torn crash image of %s: %v", ep.name, err)
		}
	}
	rt.st.Abandon()
	rt.st = nil
	rt.mem = img
	w.crashStoreBack(ep)
	rt.pend = rt.pend[:0]
	rt.written = 0
}

// checkViews is the view_regressions checker: a node's copy of a peer's
// row only grows (rows merge by pointwise max), within an incarnation and
// across a restart from what it synced.
func (w *world) checkViews(ep *endpoint, p *escrow.Persist) {
	rt := ep.rt
	for i := range p.Rows {
		r := &p.Rows[i]
		if r.Region == ep.name {
			continue
		}
		k := [2]string{r.SKU, r.Region}
		prev, ok := rt.views[k]
		if !ok {
			prev, ok = ep.dur.rows[k]
		}
		if ok {
			if f := regressed(&prev, r); f != "" {
				w.res.ViewRegressions++
				w.fail("view_regressions: %s's copy of %s's row of %s went back: %s", ep.name, r.Region, r.SKU, f)
			}
		}
		rt.views[k] = *r
	}
}

func regressed(a, b *escrow.Row) string {
	switch {
	case b.Seq < a.Seq:
		return fmt.Sprintf("seq %d -> %d", a.Seq, b.Seq)
	case b.Minted < a.Minted:
		return fmt.Sprintf("minted %d -> %d", a.Minted, b.Minted)
	case b.Reserved < a.Reserved:
		return fmt.Sprintf("reserved %d -> %d", a.Reserved, b.Reserved)
	case b.Released < a.Released:
		return fmt.Sprintf("released %d -> %d", a.Released, b.Released)
	case b.Sold < a.Sold:
		return fmt.Sprintf("sold %d -> %d", a.Sold, b.Sold)
	case b.Shrunk < a.Shrunk:
		return fmt.Sprintf("shrunk %d -> %d", a.Shrunk, b.Shrunk)
	}
	for _, t := range a.Sent {
		if b.SentTo(t.To) < t.Qty {
			return fmt.Sprintf("sent to %s %d -> %d", t.To, t.Qty, b.SentTo(t.To))
		}
	}
	return ""
}

// checkStore compares the state a restarted region loaded from its store
// with the simulator's model of what it synced: the same own sequence,
// rows and holds.
func (w *world) checkStore(ep *endpoint) {
	n := ep.node
	d := ep.dur
	bad := func(format string, args ...any) {
		w.res.StoreMismatches++
		w.fail("store_mismatch: %s restarted with %s", ep.name, fmt.Sprintf(format, args...))
	}
	if n.Seq() != d.seq {
		bad("seq %d, synced %d", n.Seq(), d.seq)
		return
	}
	for k, r := range d.rows {
		if k[1] != ep.name {
			continue
		}
		got := n.View(k[0])[ep.name]
		if got == nil || got.Seq != r.Seq || got.Reserved != r.Reserved || got.Minted != r.Minted {
			bad("own row of %s other than synced", k[0])
			return
		}
	}
	for id, h := range d.holds {
		got, ok := n.Hold(id)
		if ok && got.State != h.State {
			bad("hold %s as %s, synced as %s", id, got.State, h.State)
			return
		}
	}
}
