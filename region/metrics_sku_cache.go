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

// registerPrefetchMetrics registers the counters of the rows read ahead of
// the stepper (Config.SKUPrefetch, prefetch_rows.go); all zero while off.
func registerPrefetchMetrics(reg *prometheus.Registry, r *Region) {
	c := func(name, help string, f func(PrefetchStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(r.PrefetchStats())) })
	}
	reg.MustRegister(
		c("holdfast_sku_prefetch_reads_total", "SKUs whose rows were read ahead of the stepper (sku_prefetch on), since the store opened.",
			func(s PrefetchStats) uint64 { return s.Reads }),
		c("holdfast_sku_prefetch_passes_total", "Passes that read rows ahead (one Pebble iterator each; sku_prefetch on).",
			func(s PrefetchStats) uint64 { return s.Passes }),
		c("holdfast_sku_prefetch_served_total", "SKU cache misses answered from rows read ahead (sku_prefetch on).",
			func(s PrefetchStats) uint64 { return s.Served }),
		c("holdfast_sku_prefetch_stale_total", "Rows read ahead thrown away when taken: a batch wrote the SKU after the read began, or the store was reopened.",
			func(s PrefetchStats) uint64 { return s.Stale }),
		c("holdfast_sku_prefetch_dropped_total", "Rows read ahead never taken, pushed out by newer ones past the bound (8,192).",
			func(s PrefetchStats) uint64 { return s.Dropped }))
}
