package region

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// registerStockHintMetrics registers the counters of stock hints
// (escrow/stock_hints.go): peers a borrow asked, or asked for more,
// because their digest showed more stock than this region's view while a
// peer was fenced, and hints not kept because the table was full.
func registerStockHintMetrics(reg *prometheus.Registry, stat func(func(*escrow.Stats) uint64) func() float64) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_stock_hints_used_total",
		Help: "Peers added to (or raised in) a borrow's candidates from their digests while a fenced peer's rows may lag here, since start.",
	}, stat(func(s *escrow.Stats) uint64 { return s.StockHintsUsed })), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_stock_hints_dropped_total",
		Help: "Stock hints not kept because the hint table was full (4,096 entries), since start.",
	}, stat(func(s *escrow.Stats) uint64 { return s.StockHintsDropped })))
}
