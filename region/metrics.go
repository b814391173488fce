package region

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/holdfast-io/holdfast/escrow"
)

// metrics are the region's Prometheus metrics, in a registry of its own.
// No label carries a SKU or a hold id: cardinality stays fixed.
type metrics struct {
	reg           *prometheus.Registry
	list          listMetrics            // list.go
	holds         *prometheus.CounterVec // by result
	holdsByResult map[string]prometheus.Counter
	holdLatency   prometheus.Histogram
	batchSize     prometheus.Histogram
	fsync         prometheus.Histogram
	overloaded    prometheus.Counter
	storageErrors prometheus.Counter
	msgsDropped   prometheus.Counter
	msgsRejected  prometheus.Counter
	forwards      *prometheus.CounterVec
	storeLookups  *prometheus.CounterVec // get_retired.go
	routed        [4]prometheus.Counter  // by routedOK, routedFallback, routedUnreachable, routedBug
	rtt           *rttMetrics            // per-peer RTT (rtt_metrics.go)
	waitlist      waitlistMetrics        // metrics_waitlist.go
}

// Outcomes of a hold the node routed to the home of a scarce SKU, the
// values of holdfast_routed_holds_total's "result" label.
const (
	routedOK       = iota // the home answered (granted or refused)
	routedFallback        // the home certainly did not get it: the hold ran here
	// routedUnreachable: the home may have got it (a timeout): 503, and the
	// client's retry goes to the same home (the node remembers the key).
	routedUnreachable
	routedBug // a routed answer came back where none can: a bug
)

var routedResults = [...]string{routedOK: "ok", routedFallback: "fallback", routedUnreachable: "unreachable", routedBug: "bug"}

// Hold results, the values of the "result" label.
// "routed": the node sent the hold on to the home of a scarce SKU; its
// outcome is counted where it is served (and in holdfast_routed_holds_total).
// "fenced": refused because the region is fenced or on probation.
// "hold_capacity": refused because the region keeps its maximum of holds.
var holdResults = [...]string{"granted", "replayed", "insufficient_stock", "unknown_sku", "invalid", "storage_error", "routed", "fenced", "hold_capacity"}

func newMetrics(r *Region) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		holds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "holdfast_holds_total", Help: "Hold requests answered by the apply loop, by result.",
		}, []string{"result"}),
		holdLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "holdfast_hold_latency_seconds", Help: "Time from submitting a hold to its durable reply.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "holdfast_commit_batch_size", Help: "Inputs (commands, messages) stepped into one committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15),
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "holdfast_fsync_seconds", Help: "Duration of one durable batch write (Storage.Apply, synced).",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16),
		}),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "holdfast_overloaded_total", Help: "Requests refused because the apply queue was full.",
		}),
		storageErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "holdfast_storage_errors_total", Help: "Batch writes that failed.",
		}),
		msgsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "holdfast_peer_messages_dropped_total", Help: "Peer messages dropped because the message queue was full.",
		}),
		msgsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "holdfast_peer_messages_rejected_total", Help: "Peer messages the node rejected as invalid.",
		}),
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "holdfast_forwards_total", Help: "Hold commands forwarded to the owning region, by outcome.",
		}, []string{"outcome"}),
		storeLookups: newStoreLookups(),
	}
	routed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "holdfast_routed_holds_total",
		Help: "Holds this region sent on to the home of a scarce SKU, by result: ok (the home answered), " +
			"fallback (the home certainly did not get it: served here), unreachable (a forward failure after which " +
			"the home may have it: 503, the retry goes to the same home), bug (a routed answer to a routed hold).",
	}, []string{"result"})
	for i, res := range routedResults {
		m.routed[i] = routed.WithLabelValues(res)
	}
	m.holdsByResult = make(map[string]prometheus.Counter, len(holdResults))
	for _, res := range holdResults {
		m.holdsByResult[res] = m.holds.WithLabelValues(res)
	}
	stat := func(f func(s *escrow.Stats) uint64) func() float64 {
		return func() float64 { s := r.Stats(); return float64(f(&s)) }
	}
	reg.MustRegister(m.holds, m.holdLatency, m.batchSize, m.fsync, m.overloaded, m.storageErrors,
		m.msgsDropped, m.msgsRejected, m.forwards, m.storeLookups, routed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_queue_depth", Help: "Client requests waiting for the apply loop.",
		}, func() float64 { return float64(len(r.queue)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_peer_queue_depth", Help: "Peer messages waiting for the apply loop.",
		}, func() float64 { return float64(len(r.msgs)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_active_holds", Help: "Holds in state held.",
		}, stat(func(s *escrow.Stats) uint64 { return s.ActiveHolds })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_pending_holds", Help: "Holds waiting for borrowed units.",
		}, stat(func(s *escrow.Stats) uint64 { return s.PendingHolds })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_expired_holds_total", Help: "Holds expired by their deadline since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.ExpiredHolds })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_confirmed_holds_total", Help: "Holds confirmed since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.Confirmed })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_released_holds_total", Help: "Holds released since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.ReleasedHolds })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_borrows_sent_total", Help: "Borrow requests sent to peers since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.BorrowsSent })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_borrow_timeouts_total", Help: "Borrow requests that timed out since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.BorrowTimeouts })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_routed_answers_total",
			Help: "Hold requests the node answered 'routed' (it could not cover them and a scarce SKU has a home elsewhere), since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.Routed })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_home_units_sent_total", Help: "Units sent to the homes of scarce SKUs since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.HomeUnitsSent })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_homes", Help: "Scarce SKUs with a home in force at this region (named by the latest rebalancer advice).",
		}, func() float64 { return float64(r.homes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_ready", Help: "1 when the region accepts requests.",
		}, func() float64 {
			if r.Ready() {
				return 1
			}
			return 0
		}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&pebbleCollector{r: r},
		&walCollector{r: r},
	)
	m.rtt = newRTTMetrics(reg, stat)
	registerStaleBorrowMetrics(reg, stat)
	registerStockHintMetrics(reg, stat)
	registerSKUCacheMetrics(reg, stat)
	registerPrefetchMetrics(reg, r)
	registerHoldCacheMetrics(reg, stat)
	return m
}

// NoteRoutedBug counts a routed answer that reached a caller of DoWithin
// (the HTTP API), which DoWithin never returns: a runtime bug, counted as
// holdfast_routed_holds_total{result="bug"}. (holdfast_http_requests_total
// belongs to the HTTP API, package httpapi, on this region's Registry.)
func (r *Region) NoteRoutedBug() { r.metrics.routed[routedBug].Inc() }

// countHolds adds one batch's hold results, one Add per result per batch
// rather than one per hold.
func (m *metrics) countHolds(replies []escrow.Reply, storageFailed bool) {
	var n [len(holdResults)]uint64
	for i := range replies {
		rp := &replies[i]
		if rp.Kind != escrow.CmdHold {
			continue
		}
		switch {
		case storageFailed:
			n[5]++
		case rp.Err == nil && rp.Replayed:
			n[1]++
		case rp.Err == nil:
			n[0]++
		case rp.Err.Code == escrow.CodeInsufficientStock:
			n[2]++
		case rp.Err.Code == escrow.CodeUnknownSKU:
			n[3]++
		case rp.Err.Code == escrow.CodeRouted:
			n[6]++
		case rp.Err.Code == escrow.CodeFenced:
			n[7]++
		case rp.Err.Code == escrow.CodeHoldCapacity:
			n[8]++
		default:
			n[4]++
		}
	}
	for i, c := range n {
		if c > 0 {
			m.holdsByResult[holdResults[i]].Add(float64(c))
		}
	}
}

// pebbleMetricser is implemented by Store.
type pebbleMetricser interface{ Metrics() *pebble.Metrics }

// pebbleCollector exports a few of Pebble's own metrics, read at scrape time.
type pebbleCollector struct{ r *Region }

var (
	pebbleDescs = struct {
		diskUsage, memtableSize, readAmp, compactions, compactDebt, flushes, walBytesIn, walBytesWritten,
		walFiles, tables, cacheHits, cacheMisses, cacheSize *prometheus.Desc
	}{
		diskUsage:       prometheus.NewDesc("holdfast_pebble_disk_usage_bytes", "Disk space used by the store.", nil, nil),
		memtableSize:    prometheus.NewDesc("holdfast_pebble_memtable_bytes", "Bytes in memtables.", nil, nil),
		readAmp:         prometheus.NewDesc("holdfast_pebble_read_amplification", "Read amplification of the LSM.", nil, nil),
		compactions:     prometheus.NewDesc("holdfast_pebble_compactions_total", "Compactions run.", nil, nil),
		compactDebt:     prometheus.NewDesc("holdfast_pebble_compaction_debt_bytes", "Estimated compaction debt.", nil, nil),
		flushes:         prometheus.NewDesc("holdfast_pebble_flushes_total", "Memtable flushes.", nil, nil),
		walBytesIn:      prometheus.NewDesc("holdfast_pebble_wal_bytes_in_total", "Logical bytes written to the WAL.", nil, nil),
		walBytesWritten: prometheus.NewDesc("holdfast_pebble_wal_bytes_written_total", "Physical bytes written to the WAL.", nil, nil),
		walFiles:        prometheus.NewDesc("holdfast_pebble_wal_files", "Live WAL files.", nil, nil),
		tables:          prometheus.NewDesc("holdfast_pebble_tables", "Live sstables.", nil, nil),
		cacheHits:       prometheus.NewDesc("holdfast_pebble_block_cache_hits_total", "Block cache hits.", nil, nil),
		cacheMisses:     prometheus.NewDesc("holdfast_pebble_block_cache_misses_total", "Block cache misses.", nil, nil),
		cacheSize:       prometheus.NewDesc("holdfast_pebble_block_cache_bytes", "Bytes in the block cache (at most its configured size, 64 MiB by default).", nil, nil),
	}
)

func (c *pebbleCollector) Describe(ch chan<- *prometheus.Desc) {
	d := &pebbleDescs
	for _, x := range []*prometheus.Desc{d.diskUsage, d.memtableSize, d.readAmp, d.compactions, d.compactDebt,
		d.flushes, d.walBytesIn, d.walBytesWritten, d.walFiles, d.tables, d.cacheHits, d.cacheMisses, d.cacheSize} {
		ch <- x
	}
}

func (c *pebbleCollector) Collect(ch chan<- prometheus.Metric) {
	pm, ok := c.r.currentStorage().(pebbleMetricser)
	if !ok {
		return
	}
	m := pm.Metrics()
	if m == nil {
		return
	}
	d := &pebbleDescs
	g := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v)
	}
	k := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v)
	}
	g(d.diskUsage, float64(m.DiskSpaceUsage()))
	g(d.memtableSize, float64(m.MemTable.Size))
	g(d.readAmp, float64(m.ReadAmp()))
	k(d.compactions, float64(m.Compact.Count))
	g(d.compactDebt, float64(m.Compact.EstimatedDebt))
	k(d.flushes, float64(m.Flush.Count))
	k(d.walBytesIn, float64(m.WAL.BytesIn))
	k(d.walBytesWritten, float64(m.WAL.BytesWritten))
	g(d.walFiles, float64(m.WAL.Files))
	g(d.tables, float64(m.Total().TablesCount))
	k(d.cacheHits, float64(m.BlockCache.Hits))
	k(d.cacheMisses, float64(m.BlockCache.Misses))
	g(d.cacheSize, float64(m.BlockCache.Size))
}
