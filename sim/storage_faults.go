package sim

// Storage faults only the region runtime has (it has a disk of its own):
//
//   - mid-sync crash: the process dies between a batch's write and its
//     fsync; the crash image keeps what was synced before. Nothing a
//     client was told about may be lost (lost_acked), and the restarted
//     store must hold exactly what was synced (store_mismatch).

import (
	"fmt"
	"io"
	"strconv"
)

// midSyncEvery: one commit in this many schedules a crash before its
// fsync completes (faults all, before heal, at most midSyncMax per run).
const (
	midSyncEvery = 2000
	midSyncMax   = 4
)

func (w *world) storageFaults() bool {
	return w.o.Faults == FaultsAll && w.now < w.healAt
}

// maybeCrashMidSync may schedule a crash of ep while its last written
// batch waits for its fsync.
func (w *world) maybeCrashMidSync(ep *endpoint) {
	rt := ep.rt
	if !w.storageFaults() || w.res.MidSyncCrashes >= midSyncMax || rt.rng.IntN(midSyncEvery) != 0 {
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
	return []string{"runtime=" + s.Runtime, "view_regressions=" + u(s.ViewRegressions),
		"store_mismatches=" + u(s.StoreMismatches), "mid_sync_crashes=" + u(s.MidSyncCrashes),
		"torn_crashes=" + u(s.TornCrashes), "disk_full=" + u(s.DiskFull), "storage_errors=" + u(s.StorageErrors)}
}

// writeRuntime names the runtime in the text report (region only).
func writeRuntime(w io.Writer, o Options) {
	if o.Runtime == RuntimeRegion {
		fmt.Fprintf(w, "runtime=region: the real region runtime (region.Stepper, Pebble on a crashable in-memory vfs, wire codec on every message)\n")
	}
}
