package region

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// stockOpsCollectors are the metrics of the daily stock operations:
// partial holds and recounts (their HTTP answers, 412s and 503s included,
// are counted by route and code in holdfast_http_requests_total).
func (r *Region) stockOpsCollectors() []prometheus.Collector {
	stat := func(f func(s *escrow.Stats) uint64) func() float64 {
		return func() float64 { s := r.Stats(); return float64(f(&s)) }
	}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_partial_holds_short_total",
			Help: "Partial holds granted less than they asked for, since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.Partial })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_recounts_total", Help: "ERP recounts applied since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.Recounts })),
	}
}
