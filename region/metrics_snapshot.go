package region

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// snapshotCollectors are the metrics of snapshots in SKU order
// (escrow/snapshot_sku.go): what this region receives from peers (a wiped
// or new region catching up), and what it sends as the owner.
func (r *Region) snapshotCollectors() []prometheus.Collector {
	stat := func(f func(s *escrow.Stats) uint64) func() float64 {
		return func() float64 { s := r.Stats(); return float64(f(&s)) }
	}
	counter := func(name, help string, f func(s *escrow.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, stat(f))
	}
	return []prometheus.Collector{
		counter("holdfast_snapshot_rows_received_total", "Peer rows received in snapshots in SKU order, in order, since start.",
			func(s *escrow.Stats) uint64 { return s.SnapshotRowsReceived }),
		counter("holdfast_snapshot_bytes_received_total", "Encoded bytes of the peer rows received in snapshots in SKU order, since start.",
			func(s *escrow.Stats) uint64 { return s.SnapshotBytesReceived }),
		counter("holdfast_snapshot_chunks_received_total", "Answers (chunks) of snapshots in SKU order received whole, since start.",
			func(s *escrow.Stats) uint64 { return s.SnapshotChunksReceived }),
		counter("holdfast_snapshots_done_total", "Snapshots in SKU order received to the end, since start.",
			func(s *escrow.Stats) uint64 { return s.SnapshotsDone }),
		counter("holdfast_snapshot_parts_out_of_order_total", "Snapshot parts merged without moving the cursor (out of order, after a lost part, or of an old request), since start.",
			func(s *escrow.Stats) uint64 { return s.SnapshotPartsOutOfOrder }),
		counter("holdfast_snapshot_rows_sent_total", "Own rows sent in snapshot answers in SKU order, since start.",
			func(s *escrow.Stats) uint64 { return s.SnapshotRowsSent }),
		counter("holdfast_snapshot_bytes_sent_total", "Encoded bytes of the own rows sent in snapshot answers in SKU order, since start.",
			func(s *escrow.Stats) uint64 { return s.SnapshotBytesSent }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_snapshots_in_progress", Help: "Peers a snapshot in SKU order is coming from now.",
		}, stat(func(s *escrow.Stats) uint64 { return s.SnapshotsInProgress })),
	}
}
