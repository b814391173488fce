package region

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// digestCollectors are the metrics of what a large catalogue costs in
// replication: the digests this region broadcasts (their SKUs chosen by
// demand and change, escrow/digest_hot.go, so per interval these counters
// are bounded by MaxDigestSKUs whatever the catalogue's size), and the
// repair answers (snapshots) it serves in chunks of MaxRepairRows.
func (r *Region) digestCollectors() []prometheus.Collector {
	stat := func(f func(s *escrow.Stats) uint64) func() float64 {
		return func() float64 { s := r.Stats(); return float64(f(&s)) }
	}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_digests_total", Help: "Digests built for peers and the rebalancer, since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.Digests })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_digest_skus_total", Help: "SKU entries carried by digests, since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.DigestSKUs })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_digest_hot_skus_total", Help: "SKU entries of digests taken for demand or change (the rest are the round robin over the catalogue), since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.DigestHotSKUs })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_repair_rows_served_total", Help: "Own rows sent to peers in repair answers (snapshots), since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.RepairRowsServed })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_repair_chunks_total", Help: "Repair answers cut at max_repair_rows: the peer asks again for the rest, since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.RepairChunks })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_digest_bytes_total", Help: "Encoded bytes of the SKU entries of digests, since start.",
		}, stat(func(s *escrow.Stats) uint64 { return s.DigestBytes })),
	}
}
