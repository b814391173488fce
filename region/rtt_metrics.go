package region

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// Per-peer round-trip times measured by the node from borrow round trips
// (escrow/rtt.go), and the borrows skipped because a peer is too far to
// answer within a hold's deadline.

// rttEvery is how often the per-peer RTT gauges are refreshed (from a
// tick of the stepper, which owns the node).
const rttEvery = time.Second

type rttMetrics struct {
	peerRTT *prometheus.GaugeVec
	at      time.Time // last refresh (stepper only)
}

func newRTTMetrics(reg *prometheus.Registry, stat func(func(*escrow.Stats) uint64) func() float64) *rttMetrics {
	m := &rttMetrics{peerRTT: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "holdfast_peer_rtt_seconds",
		Help: "Smoothed round-trip time of borrows to each peer region (absent until measured).",
	}, []string{"peer"})}
	reg.MustRegister(m.peerRTT, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_borrows_skipped_far_total",
		Help: "Peers with surplus not asked for a waiting hold because their RTT exceeds the time left before its deadline.",
	}, stat(func(s *escrow.Stats) uint64 { return s.BorrowsSkippedFar })), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_borrow_deadlines_stretched_total",
		Help: "Holds whose borrow deadline was stretched past borrow_timeout to the nearest donor's RTT (at most borrow_timeout_max).",
	}, stat(func(s *escrow.Stats) uint64 { return s.BorrowDeadlinesStretched })))
	return m
}

// sync refreshes the gauges from n at most every rttEvery; it runs on the
// stepper goroutine.
func (m *rttMetrics) sync(n *escrow.Node, now time.Time) {
	if now.Sub(m.at) < rttEvery {
		return
	}
	m.at = now
	for peer, d := range n.PeerRTTs() {
		m.peerRTT.WithLabelValues(peer).Set(d.Seconds())
	}
}
