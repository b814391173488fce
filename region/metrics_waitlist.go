package region

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// waitlistMetrics are the waitlist's metrics (docs/operations.md). No SKU
// label: a catalogue is unbounded, so the waiting units are one total over
// SKUs (the per-SKU waiting units travel in the digests).
type waitlistMetrics struct {
	waitTime prometheus.Histogram
}

// waitlistCollectors registers the waitlist's gauges and counters (read
// from the node's Stats at scrape time) and its wait-time histogram.
func (r *Region) waitlistCollectors() []prometheus.Collector {
	stat := func(f func(s *escrow.Stats) uint64) func() float64 {
		return func() float64 { s := r.Stats(); return float64(f(&s)) }
	}
	r.metrics.waitlist.waitTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "holdfast_waitlist_wait_seconds",
		Help: "Time from joining the waitlist to promotion into a hold, of promoted entries (owner's clock).",
		// 100 ms .. ~55 min: waits are bounded by max_wait (30 min by default).
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 16),
	})
	return []prometheus.Collector{
		r.metrics.waitlist.waitTime,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_waitlist_waiting", Help: "Waitlist entries waiting in this region.",
		}, stat(func(s *escrow.Stats) uint64 { return s.Waiting })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_waitlist_waiting_units", Help: "Units the waiting entries of this region ask for, over all SKUs.",
		}, stat(func(s *escrow.Stats) uint64 { return s.WaitingUnits })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_waitlist_joined_total", Help: "Holds that joined the waitlist since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.WaitJoined })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_waitlist_asks_total", Help: "Borrow requests sent to peers for the units waiters lack, since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.WaitAsks })),
		endedCollector{r: r},
	}
}

// endedCollector exports the terminal-state counters from the node's
// Stats, with every label value present from the start.
type endedCollector struct{ r *Region }

var waitEndedDesc = prometheus.NewDesc("holdfast_waitlist_entries_ended_total",
	"Waitlist entries that reached a terminal state since start, by state: promoted, cancelled, expired.",
	[]string{"state"}, nil)

func (c endedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- waitEndedDesc }

func (c endedCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Stats()
	for _, v := range []struct {
		state string
		n     uint64
	}{{"promoted", s.WaitPromoted}, {"cancelled", s.WaitCancelled}, {"expired", s.WaitExpired}} {
		ch <- prometheus.MustNewConstMetric(waitEndedDesc, prometheus.CounterValue, float64(v.n), v.state)
	}
}

// observeWaits records the wait time of the entries a committed batch
// promoted.
func (m *metrics) observeWaits(p *escrow.Persist) {
	if len(p.Waits) == 0 || m.waitlist.waitTime == nil {
		return
	}
	p.PromotedWaits(func(d time.Duration) { m.waitlist.waitTime.Observe(d.Seconds()) })
}
