package region

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// registerHoldCacheMetrics registers the bounded hold cache's counters
// (Config.HoldCache, escrow/holdcache.go); all zero while it is off.
func registerHoldCacheMetrics(reg *prometheus.Registry, stat func(func(*escrow.Stats) uint64) func() float64) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_hold_cache_hits_total",
		Help: "Hold and idempotency key lookups served from memory (hold_cache on), since the node started.",
	}, stat(func(s *escrow.Stats) uint64 { return s.HoldCacheHits })), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_hold_cache_misses_total",
		Help: "Holds and idempotency keys read from the store (hold_cache on), since the node started.",
	}, stat(func(s *escrow.Stats) uint64 { return s.HoldCacheMisses })), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "holdfast_hold_cache_evictions_total",
		Help: "Saved holds and idempotency keys dropped from memory past the hold_cache bound, since the node started.",
	}, stat(func(s *escrow.Stats) uint64 { return s.HoldCacheEvictions })), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "holdfast_hold_cache_resident",
		Help: "Holds in memory now (hold_cache on; may exceed the bound while more are unsaved).",
	}, stat(func(s *escrow.Stats) uint64 { return s.HoldsResident })), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "holdfast_hold_cache_keys_resident",
		Help: "Idempotency keys in memory now (hold_cache on; may exceed the bound while more are unsaved).",
	}, stat(func(s *escrow.Stats) uint64 { return s.KeysResident })))
}
