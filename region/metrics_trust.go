package region

import (
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/prometheus/client_golang/prometheus"
)

// Peer rejection reasons of holdfast_peer_rejected_total (see escrow/trust.go).
var peerRejectReasons = []struct {
	reason string
	get    func(s *escrow.Stats) uint64
}{
	{"non_member", func(s *escrow.Stats) uint64 { return s.NonMember }},
	{"out_of_bounds", func(s *escrow.Stats) uint64 { return s.OutOfBounds }},
	{"seq_window", func(s *escrow.Stats) uint64 { return s.SeqWindow }},
	{"sku_limit", func(s *escrow.Stats) uint64 { return s.PeerSKUsRefused }},
}

// trustCollector exports what the node refused of its peers' input.
type trustCollector struct {
	r        *Region
	rejected *prometheus.Desc
}

func (c trustCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.rejected }

func (c trustCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Stats()
	for _, x := range peerRejectReasons {
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(x.get(&s)), x.reason)
	}
}

// trustCollectors are the metrics of zero trust between regions.
func (r *Region) trustCollectors() []prometheus.Collector {
	stat := func(f func(s *escrow.Stats) uint64) func() float64 {
		return func() float64 { s := r.Stats(); return float64(f(&s)) }
	}
	return []prometheus.Collector{
		trustCollector{r: r, rejected: prometheus.NewDesc("holdfast_peer_rejected_total",
			"Peer input the node refused, by reason: non_member (from, about or moving units to a region outside "+
				"the membership), out_of_bounds (a row or sum past the plausible maximum, or too many peers), "+
				"seq_window (a sequence jump past the plausible window), sku_limit (a new SKU over max_peer_skus).",
			[]string{"reason"}, nil)},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_peer_skus",
			Help: "SKUs this region learned from peers; at max_peer_skus new ones are refused (alert before).",
		}, stat(func(s *escrow.Stats) uint64 { return s.PeerSKUs })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_peer_skus_limit", Help: "The max_peer_skus bound of this region.",
		}, func() float64 { return float64(r.maxPeerSKUs()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_fence_claims",
			Help: "Peers that report having seen more of this region's rows than its store holds, without the " +
				"majority of other members that fences it: a lone voice (a broken or hostile peer, or a store " +
				"restored from a backup in a two-region cluster) worth an alert.",
		}, stat(func(s *escrow.Stats) uint64 { return s.FenceClaims })),
	}
}

func (r *Region) maxPeerSKUs() int {
	if n := r.cfg.Escrow.MaxPeerSKUs; n > 0 {
		return n
	}
	return escrow.DefaultMaxPeerSKUs
}

// trustLog remembers what was logged, so that each condition is logged once
// per process and not per message (the counters carry the rest).
type trustLog struct {
	skuLimit, claims bool
}

// syncTrust logs, once, that the SKU limit refused a peer's SKU and that a
// lone peer claimed to have seen more of our rows than our store has. It
// runs on the stepper after every tick.
func (r *Region) syncTrust(n *escrow.Node) {
	s := n.Stats()
	if s.PeerSKUsRefused > 0 && !r.trust.skuLimit {
		r.trust.skuLimit = true
		r.log.Error("peer SKU limit reached: new SKUs from peers are refused (holdfast_peer_rejected_total{reason=\"sku_limit\"}); "+
			"raise escrow.max_peer_skus if the catalogue is really this large, else look for a misbehaving peer",
			"limit", r.maxPeerSKUs(), "learned", s.PeerSKUs)
	}
	if s.FenceClaims > 0 && !r.trust.claims {
		r.trust.claims = true
		r.log.Warn("a peer reports having seen more of this region's rows than its store holds; one voice does not "+
			"fence a region (a majority of the other members does): check that peer, and this store (see "+
			"docs/operations.md, \"A wiped or lost region\")", "claims", s.FenceClaims, "voices_needed", n.FenceVoicesNeeded())
	}
}
