package main

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/loadgen"
)

// commitStats is what the bench reads of an in-process region's group
// commit, at the measured window's start and end (one Gather each).
type commitStats struct {
	syncs       uint64  // synced batches (holdfast_fsync_seconds' samples)
	syncSeconds float64 // their write to fsync, summed
	// The own WAL (zeros with pebble's): bytes written, group commits and
	// their write and fdatasync time (holdfast_wal_*).
	walBytes, walSyncs, walSyncSeconds float64
	cuts                               map[string]float64 // holdfast_commit_cuts_total by reason
}

func readCommitStats(reg prometheus.Gatherer) commitStats {
	c := commitStats{cuts: map[string]float64{}}
	mfs, err := reg.Gather()
	if err != nil {
		return c
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "holdfast_fsync_seconds":
				c.syncs += m.GetHistogram().GetSampleCount()
				c.syncSeconds += m.GetHistogram().GetSampleSum()
			case "holdfast_wal_bytes_total":
				c.walBytes += m.GetCounter().GetValue()
			case "holdfast_wal_syncs_total":
				c.walSyncs += m.GetCounter().GetValue()
			case "holdfast_wal_sync_seconds_total":
				c.walSyncSeconds += m.GetCounter().GetValue()
			case "holdfast_commit_cuts_total":
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "reason" {
						c.cuts[lp.GetValue()] += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return c
}

// minus is what c counted since start.
func (c commitStats) minus(start commitStats) commitStats {
	d := commitStats{
		syncs: c.syncs - start.syncs, syncSeconds: c.syncSeconds - start.syncSeconds,
		walBytes: c.walBytes - start.walBytes, walSyncs: c.walSyncs - start.walSyncs,
		walSyncSeconds: c.walSyncSeconds - start.walSyncSeconds,
		cuts:           maps.Clone(c.cuts),
	}
	for k, v := range start.cuts {
		d.cuts[k] -= v
	}
	return d
}

// labels are the group commit's shape over a window of elapsed that
// granted ok holds: synced batches per second, granted holds per synced
// batch, the mean time from a synced batch's write to its fsync; with the
// own WAL its bytes per hold and one group commit's write and fdatasync;
// and each reason's share of the synced batches cut. None without syncs.
func (c commitStats) labels(ok uint64, elapsed time.Duration) []loadgen.Label {
	if c.syncs == 0 || ok == 0 {
		return nil
	}
	f := strconv.FormatFloat
	ls := []loadgen.Label{
		{Key: "syncs_per_s", Value: f(float64(c.syncs)/elapsed.Seconds(), 'f', 0, 64)},
		{Key: "holds_per_sync", Value: f(float64(ok)/float64(c.syncs), 'f', 1, 64)},
		{Key: "sync_ms", Value: f(1000*c.syncSeconds/float64(c.syncs), 'f', 3, 64)},
	}
	if c.walSyncs > 0 {
		ls = append(ls,
			loadgen.Label{Key: "wal_bytes_per_hold", Value: f(c.walBytes/float64(ok), 'f', 0, 64)},
			loadgen.Label{Key: "wal_sync_ms", Value: f(1000*c.walSyncSeconds/c.walSyncs, 'f', 3, 64)})
	}
	var all float64
	for _, v := range c.cuts {
		all += v
	}
	if all > 0 {
		for _, k := range slices.Sorted(maps.Keys(c.cuts)) {
			ls = append(ls, loadgen.Label{Key: "cuts_" + k, Value: f(c.cuts[k]/all, 'f', 3, 64)})
		}
	}
	return ls
}
