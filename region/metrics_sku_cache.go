package region

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// registerSKUCacheMetrics registers the bounded SKU cache's counters
// (Config.SKUCache, escrow/skucache.go); all zero while it is off.
func registerSKUCacheMetrics(reg *prometheus.Registry, stat func(func(*escrow.Stats) uint64) func() float64) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_sku_cache_hits_total",
		Help: "SKU lookups served by the SKUs resident in memory (sku_cache on), since the node started.",
	}, stat(func(s *escrow.Stats) uint64 { return s.SKUCacheHits })), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_sku_cache_misses_total",
		Help: "SKUs read from the store on first touch (sku_cache on), since the node started.",
	}, stat(func(s *escrow.Stats) uint64 { return s.SKUCacheMisses })), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_sku_cache_evictions_total",
		Help: "Idle SKUs dropped from memory past the sku_cache bound, since the node started.",
	}, stat(func(s *escrow.Stats) uint64 { return s.SKUCacheEvictions })), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "holdfast_sku_cache_resident",
		Help: "SKUs in memory now (sku_cache on; may exceed the bound while more SKUs are busy).",
	}, stat(func(s *escrow.Stats) uint64 { return s.SKUResident })))
}
