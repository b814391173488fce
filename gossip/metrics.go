package gossip

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the transport's Prometheus series. Every series carries a
// constant region label so several transports can share one registry.
type metrics struct {
	msgsIn, msgsOut   *prometheus.CounterVec // {type}
	bytesIn, bytesOut *prometheus.CounterVec // {type}
	msgSize           *prometheus.HistogramVec
	decodeErrs        *prometheus.CounterVec // {reason}
	rejected          *prometheus.CounterVec // {reason}
	dropped           *prometheus.CounterVec // {reason}
	coalesced         prometheus.Counter
	borrowUnitsIn     prometheus.Counter
	borrowUnitsOut    prometheus.Counter
	forwards          *prometheus.CounterVec // {result}
	forwardSeconds    prometheus.Histogram
	forwardsServed    *prometheus.CounterVec // {result}
	reconnects        prometheus.Counter
	disconnects       prometheus.Counter
	asyncErrs         prometheus.Counter
	queueLen          prometheus.GaugeFunc
	connected         prometheus.GaugeFunc
	lag               *lagCollector
	wireOut           *prometheus.CounterVec // {version}
	peerWire          *prometheus.GaugeVec   // {peer}
}

// The reasons the error counters are labelled with. Their series are
// created at zero when the transport starts, so that dashboards and alerts
// (rate, increase) have a series before the first error instead of none.
var (
	decodeErrorReasons = []string{"corrupt", "truncated", "oversized", "version"}
	rejectReasons      = []string{"subject", "self", "non_member", "type", "replay", "signature", "rate_limit"}
	dropReasons        = []string{"queue_full", "disconnected", "encode", "publish", "closed", "answer_budget", "location_version"}
)

func newMetrics(region string, queueLen, connected func() float64, lag *lagCollector) *metrics {
	cl := prometheus.Labels{"region": region}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "holdfast", Subsystem: "gossip",
			Name: name, Help: help, ConstLabels: cl}, labels)
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "holdfast", Subsystem: "gossip",
			Name: name, Help: help, ConstLabels: cl})
	}
	m := &metrics{
		msgsIn:   cv("messages_in_total", "Peer messages received and accepted, by type.", "type"),
		msgsOut:  cv("messages_out_total", "Peer messages published, by type (borrow = urgent, topup = background).", "type"),
		bytesIn:  cv("bytes_in_total", "Bytes of accepted peer messages, by type.", "type"),
		bytesOut: cv("bytes_out_total", "Bytes of published peer messages, by type.", "type"),
		msgSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "holdfast", Subsystem: "gossip",
			Name: "message_bytes", Help: "Size of peer messages.", ConstLabels: cl,
			Buckets: prometheus.ExponentialBuckets(64, 4, 8)}, []string{"direction"}),
		decodeErrs: cv("decode_errors_total", "Inbound messages that failed to decode, by reason (corrupt, truncated, oversized, version).", "reason"),
		rejected:   cv("rejected_total", "Decoded inbound messages dropped, by reason (subject, self, non_member, type, replay, signature, rate_limit).", "reason"),
		dropped:    cv("dropped_total", "Outbound messages dropped, by reason (queue_full, disconnected, encode, publish, closed, answer_budget).", "reason"),
		coalesced:  c("rows_coalesced_total", "Row-delta messages merged into a following one before publishing."),
		borrowUnitsIn: c("borrow_units_in_total",
			"Units granted to this region in borrow answers seen on the wire."),
		borrowUnitsOut: c("borrow_units_out_total",
			"Units this region granted in borrow answers it published."),
		forwards: cv("forwards_total", "Hold operations forwarded to their owner, by result (ok, unreachable, failure, error).", "result"),
		forwardSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "holdfast", Subsystem: "gossip",
			Name: "forward_seconds", Help: "Latency of forwarded hold operations.", ConstLabels: cl,
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		forwardsServed: cv("forwards_served_total", "Forwarded hold operations served for other regions, by result.", "result"),
		reconnects:     c("reconnects_total", "Reconnections to NATS."),
		disconnects:    c("disconnects_total", "Disconnections from NATS."),
		asyncErrs:      c("async_errors_total", "Asynchronous NATS errors (slow consumer, permissions)."),
		queueLen: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "holdfast", Subsystem: "gossip",
			Name: "send_queue_length", Help: "Messages waiting to be published.", ConstLabels: cl}, queueLen),
		connected: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "holdfast", Subsystem: "gossip",
			Name: "connected", Help: "1 while connected to NATS.", ConstLabels: cl}, connected),
		lag:     lag,
		wireOut: cv("wire_version_out_total", "Peer messages published, by wire version (rolling upgrades: see docs/operations.md).", "version"),
		peerWire: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "holdfast", Subsystem: "gossip",
			Name: "peer_wire_version", Help: "The highest wire version each peer is known to speak (1 until it says more).", ConstLabels: cl}, []string{"peer"}),
	}
	for _, vr := range []struct {
		vec     *prometheus.CounterVec
		reasons []string
	}{{m.decodeErrs, decodeErrorReasons}, {m.rejected, rejectReasons}, {m.dropped, dropReasons}} {
		for _, r := range vr.reasons {
			vr.vec.WithLabelValues(r)
		}
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.msgsIn, m.msgsOut, m.bytesIn, m.bytesOut, m.msgSize, m.decodeErrs,
		m.rejected, m.dropped, m.coalesced, m.borrowUnitsIn, m.borrowUnitsOut, m.forwards, m.forwardSeconds,
		m.forwardsServed, m.reconnects, m.disconnects, m.asyncErrs, m.queueLen, m.connected, m.lag,
		m.wireOut, m.peerWire}
}

// maxLagHistory bounds the digests remembered per peer for lag in seconds.
const maxLagHistory = 64

// maxPeers bounds the peers the transport keeps state for; messages from
// further regions are still delivered, only their lag is not tracked.
const maxPeers = 256

type digestSeen struct {
	seq uint64
	at  time.Time
}

type peerLag struct {
	digests  []digestSeen // ascending seq, at most maxLagHistory
	lastMsg  time.Time
	rowsSeen uint64 // highest Seq of a rows message seen (fallback for PeerSeqs)
}

// lagCollector reports replication lag per peer at scrape time: how far the
// node's contiguous sequence of a peer (PeerSeqs) is behind the peer's last
// digest, in sequence numbers and in seconds since the first digest that
// showed the node behind.
type lagCollector struct {
	mu       sync.Mutex
	peers    map[string]*peerLag
	peerSeqs func() map[string]uint64
	now      func() time.Time
	seqDesc  *prometheus.Desc
	secDesc  *prometheus.Desc
	lastDesc *prometheus.Desc
}

func newLagCollector(region string, peerSeqs func() map[string]uint64) *lagCollector {
	cl := prometheus.Labels{"region": region}
	return &lagCollector{
		peers:    make(map[string]*peerLag),
		peerSeqs: peerSeqs,
		now:      time.Now,
		seqDesc: prometheus.NewDesc("holdfast_gossip_replication_lag_seq",
			"Sequence numbers the peer's digest is ahead of the rows this region has applied.", []string{"peer"}, cl),
		secDesc: prometheus.NewDesc("holdfast_gossip_replication_lag_seconds",
			"Seconds since the first digest showing this region behind the peer (0 when caught up).", []string{"peer"}, cl),
		lastDesc: prometheus.NewDesc("holdfast_gossip_peer_last_message_age_seconds",
			"Seconds since the last message from the peer.", []string{"peer"}, cl),
	}
}

func (c *lagCollector) peer(r string) *peerLag {
	p := c.peers[r]
	if p == nil {
		if len(c.peers) >= maxPeers {
			return nil
		}
		p = &peerLag{}
		c.peers[r] = p
	}
	return p
}

func (c *lagCollector) noteMessage(from string, at time.Time) {
	c.mu.Lock()
	if p := c.peer(from); p != nil {
		p.lastMsg = at
	}
	c.mu.Unlock()
}

func (c *lagCollector) noteRows(from string, seq uint64) {
	c.mu.Lock()
	if p := c.peer(from); p != nil && seq > p.rowsSeen {
		p.rowsSeen = seq
	}
	c.mu.Unlock()
}

func (c *lagCollector) noteDigest(from string, seq uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peer(from)
	if p == nil {
		return
	}
	if n := len(p.digests); n > 0 && p.digests[n-1].seq >= seq {
		return // only a higher sequence starts a new lag interval
	}
	if len(p.digests) >= maxLagHistory {
		copy(p.digests, p.digests[1:])
		p.digests = p.digests[:len(p.digests)-1]
	}
	p.digests = append(p.digests, digestSeen{seq: seq, at: at})
}

// Lag returns the replication lag of peer as the collector computes it.
func (c *lagCollector) lagOf(peer string, applied uint64, now time.Time) (seqLag uint64, secs float64) {
	p := c.peers[peer]
	if p == nil || len(p.digests) == 0 {
		return 0, 0
	}
	last := p.digests[len(p.digests)-1]
	if last.seq <= applied {
		p.digests = p.digests[:0] // caught up: forget the history
		return 0, 0
	}
	for i, d := range p.digests {
		if d.seq > applied {
			p.digests = p.digests[i:]
			return last.seq - applied, now.Sub(d.at).Seconds()
		}
	}
	return 0, 0
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.seqDesc
	ch <- c.secDesc
	ch <- c.lastDesc
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	var applied map[string]uint64
	if c.peerSeqs != nil {
		applied = c.peerSeqs() // may block briefly on the region's apply loop: call it unlocked
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, p := range c.peers {
		a, ok := applied[name]
		if !ok && c.peerSeqs == nil {
			a = p.rowsSeen
		}
		seqLag, secs := c.lagOf(name, a, now)
		ch <- prometheus.MustNewConstMetric(c.seqDesc, prometheus.GaugeValue, float64(seqLag), name)
		ch <- prometheus.MustNewConstMetric(c.secDesc, prometheus.GaugeValue, secs, name)
		if !p.lastMsg.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.lastDesc, prometheus.GaugeValue, now.Sub(p.lastMsg).Seconds(), name)
		}
	}
}

// Lag is the replication lag of one peer, as Transport.Lag reports it.
type Lag struct {
	Peer    string
	Seq     uint64        // sequence numbers behind the peer's last digest
	Behind  time.Duration // since the first digest showing this region behind
	LastMsg time.Time     // last message received from the peer
}
