package region

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// registerStaleBorrowMetrics registers the counters of stale borrow
// requests (escrow/borrow_stale.go): those this region refused as a donor,
// and the refusals it received as a requester.
func registerStaleBorrowMetrics(reg *prometheus.Registry, stat func(func(*escrow.Stats) uint64) func() float64) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_borrow_stale_total",
		Help: "Borrow requests refused because their requester had certainly given up on them (stamped more than a borrow deadline below its latest clock reading), since start.",
	}, stat(func(s *escrow.Stats) uint64 { return s.BorrowStaleRefused })), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_borrow_stale_answers_total",
		Help: "Refusals of this region's own borrow requests as stale received from donors, since start (a request still awaited is asked again when its hold still needs the units and its deadline allows).",
	}, stat(func(s *escrow.Stats) uint64 { return s.BorrowStaleAnswers })))
}
