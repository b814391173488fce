package sim

// Storage faults only the region runtime has (it has a disk of its own):
//
//   - mid-sync crash: the process dies between a batch's write and its
//     fsync; the crash image keeps what was synced before.
//   - torn: half of the crashes with an unsynced write keep a torn part of
//     it at the end of the WAL (region.TearImage); pebble's recovery must
//     drop the torn record.
//   - recovery: one restart in recoveryCrashEvery dies again right after
//     the store's recovery, its crash image keeping a random share of what
//     recovery wrote without syncing; the next restart recovers from that.
//   - diskfull: in one region per run, for a few seconds, every write
//     fails with ENOSPC (pebble's errorfs): the region fails
//     the batch (no reply), discards its node and rebuilds it from the
//     store once the disk takes writes again, meanwhile granting nothing.
//
// The checkers' expectations are those of any crash: nothing a client was
// told about is lost (lost_acked), the restarted store holds exactly what
// was synced (store_mismatch), views only grow (view_regressions), and
// after heal the usual conservation, convergence and liveness.

import (
	"fmt"
	"io"
	"strconv"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

const recoveryCrashEvery = 4

// fs is the region's filesystem: its disk, through the disk-full injector.
func (rt *regionRT) fs() vfs.FS {
	return errorfs.Wrap(rt.mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !rt.full.Load() {
			return nil
		}
		switch op.Kind {
		case errorfs.OpCreate, errorfs.OpReuseForWrite, errorfs.OpFileWrite, errorfs.OpFileWriteAt,
			errorfs.OpFilePreallocate:
			// (Not fsync: a sync that fails after its write succeeded
			// leaves the outcome unknown, which the model cannot
			// follow; a write refused leaves nothing behind.)
			return syscall.ENOSPC
		}
		return nil
	}))
}

// planDiskFull picks the run's disk-full window (faults all: one region,
// a few seconds, before heal).
func (w *world) planDiskFull(ep *endpoint) {
	if !w.fs.Has(FaultDiskFull) {
		return
	}
	pick := newRand(w.o.Seed, streamRuntime-1)
	if pick.IntN(w.nReg) != ep.idx {
		return
	}
	heal := healTime(&w.o)
	rt := ep.rt
	rt.fullFrom = heal/10 + pick.Int64N(heal/2)
	rt.fullTo = rt.fullFrom + int64(2*time.Second) + pick.Int64N(int64(8*time.Second))
	w.res.DiskFull++
}

// diskState sets the disk full or not for the current time.
func (w *world) diskState(ep *endpoint) {
	rt := ep.rt
	rt.full.Store(w.now >= rt.fullFrom && w.now < rt.fullTo)
}

// midSyncEvery: one commit in this many schedules a crash before its
// fsync completes (faults all, before heal, at most midSyncMax per run).
const (
	midSyncEvery = 2000
	midSyncMax   = 4
)

// storageFault reports whether fault f is on now (named in --faults, and
// before heal).
func (w *world) storageFault(f FaultSet) bool {
	return w.fs.Has(f) && w.now < w.healAt
}

// maybeCrashMidSync may schedule a crash of ep while its last written
// batch waits for its fsync.
func (w *world) maybeCrashMidSync(ep *endpoint) {
	rt := ep.rt
	if !w.storageFault(FaultMidSync) || w.res.MidSyncCrashes >= midSyncMax || rt.rng.IntN(midSyncEvery) != 0 {
		return
	}
	w.res.MidSyncCrashes++
	at := w.now + rt.rng.Int64N(int64(w.o.Fsync)/2+1)
	w.q.push(event{at: at, kind: evCrash, node: int32(ep.idx), inc: ep.inc})
}

// runtimeKV: the runtime's part of the KV line (nothing for the escrow
// runtime, whose line stays as it was).
func (s Summary) runtimeKV() []string {
	if s.Runtime != RuntimeRegion {
		return nil
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	kv := []string{"runtime=" + s.Runtime, "view_regressions=" + u(s.ViewRegressions),
		"store_mismatches=" + u(s.StoreMismatches), "mid_sync_crashes=" + u(s.MidSyncCrashes),
		"torn_crashes=" + u(s.TornCrashes), "recovery_crashes=" + u(s.RecoveryCrashes), "disk_full=" + u(s.DiskFull), "storage_errors=" + u(s.StorageErrors)}
	if s.WipedLost+s.FencedRegions+s.StoreBackSkipped > 0 {
		kv = append(kv, "wiped_lost="+u(s.WipedLost), "fenced_regions="+u(s.FencedRegions),
			"store_back_skipped="+u(s.StoreBackSkipped))
	}
	if s.BitflipRefused+s.BitflipUnread > 0 {
		kv = append(kv, "bitflip_refused="+u(s.BitflipRefused), "bitflip_unread="+u(s.BitflipUnread),
			"bitflip_late="+u(s.BitflipLate))
	}
	return kv
}

// writeRuntime names the runtime in the text report (region only).
func writeRuntime(w io.Writer, o Options) {
	if o.Runtime == RuntimeRegion {
		fmt.Fprintf(w, "runtime=region: the real region runtime (region.Stepper, Pebble on a crashable in-memory vfs, wire codec on every message)\n")
	}
}
