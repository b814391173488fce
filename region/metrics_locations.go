package region

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// locationCollectors are the metrics of stock by location. They carry no
// location label: a per-location series would be bounded (at most
// escrow.MaxLocations = 64 configured locations), but the core keeps no
// per-location counters; the per-location figures are in the stock view
// (GET /v1/skus/{sku}).
func (r *Region) locationCollectors() []prometheus.Collector {
	stat := func(f func(s *escrow.Stats) uint64) func() float64 {
		return func() float64 { s := r.Stats(); return float64(f(&s)) }
	}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_location_refused_total",
			Help: "Requests, peer borrows, advice moves and homes refused because they name an unknown location or one the region concerned may not sell from, since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.LocationRefused })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_location_split_lines_total",
			Help: "Hold lines split over more than one location, since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.LocationSplitLines })),
	}
}
