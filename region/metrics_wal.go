package region

// Metrics of the store's own write-ahead log (StoreOptions.WAL = WALOwn),
// read at scrape time; absent with pebble's WAL (its holdfast_pebble_wal_*
// metrics are then the ones that move).

import "github.com/prometheus/client_golang/prometheus"

type walStatser interface{ WALStats() WALStats }

type walCollector struct{ r *Region }

var walDescs = struct {
	syncs, syncSeconds, bytes, truncations, forced, deferred, early, files *prometheus.Desc
	rowCheckpoints, checkpointRows, overlayRows                            *prometheus.Desc
}{
	syncs:       prometheus.NewDesc("holdfast_wal_syncs_total", "Group commits of the store's own WAL (one write and fdatasync each).", nil, nil),
	syncSeconds: prometheus.NewDesc("holdfast_wal_sync_seconds_total", "Time the own WAL spent writing and fdatasyncing.", nil, nil),
	bytes:       prometheus.NewDesc("holdfast_wal_bytes_total", "Bytes written to the own WAL (records with their headers).", nil, nil),
	truncations: prometheus.NewDesc("holdfast_wal_truncations_total", "Truncations that dropped own-WAL files whose batches pebble had flushed.", nil, nil),
	forced:      prometheus.NewDesc("holdfast_wal_forced_flushes_total", "Pebble flushes forced by the own WAL because its live files exceeded 4.", nil, nil),
	deferred: prometheus.NewDesc("holdfast_wal_deferred_flushes_total",
		"Flushes the own WAL would have forced but put off because pebble had a flush of its own queued or running (forcing one then stalls every commit).", nil, nil),
	early: prometheus.NewDesc("holdfast_wal_early_syncs_total", "Own-WAL writes and fdatasyncs started before a large batch's memtable apply had finished.", nil, nil),
	files: prometheus.NewDesc("holdfast_wal_files", "Live files of the own WAL.", nil, nil),
	rowCheckpoints: prometheus.NewDesc("holdfast_wal_row_checkpoints_total",
		"Row checkpoints completed: the rows kept out of pebble's memtable (the row overlay) written into pebble, so that own-WAL files may be dropped.", nil, nil),
	checkpointRows: prometheus.NewDesc("holdfast_wal_checkpoint_rows_total", "Rows written into pebble by row checkpoints.", nil, nil),
	overlayRows:    prometheus.NewDesc("holdfast_wal_overlay_rows", "Rows in the row overlay: in the own WAL, not yet in pebble.", nil, nil),
}

func (c *walCollector) Describe(ch chan<- *prometheus.Desc) {
	d := &walDescs
	for _, x := range []*prometheus.Desc{d.syncs, d.syncSeconds, d.bytes, d.truncations, d.forced, d.deferred, d.early, d.files, d.rowCheckpoints, d.checkpointRows, d.overlayRows} {
		ch <- x
	}
}

func (c *walCollector) Collect(ch chan<- prometheus.Metric) {
	ws, ok := c.r.currentStorage().(walStatser)
	if !ok {
		return
	}
	st := ws.WALStats()
	if st.Files == 0 {
		return // pebble's WAL
	}
	d := &walDescs
	k := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v)
	}
	k(d.syncs, float64(st.Syncs))
	k(d.syncSeconds, st.SyncTime.Seconds())
	k(d.bytes, float64(st.Bytes))
	k(d.truncations, float64(st.Truncations))
	k(d.forced, float64(st.Forced))
	k(d.deferred, float64(st.Deferred))
	k(d.early, float64(st.EarlySyncs))
	ch <- prometheus.MustNewConstMetric(d.files, prometheus.GaugeValue, float64(st.Files))
	k(d.rowCheckpoints, float64(st.RowCheckpoints))
	k(d.checkpointRows, float64(st.CheckpointRows))
	ch <- prometheus.MustNewConstMetric(d.overlayRows, prometheus.GaugeValue, float64(st.OverlayRows))
}
