package region

// The runtime side of the event log: configuration, retention (pruning)
// and metrics. The log itself is in the store (store_events.go); the HTTP
// feed (httpapi/events.go) and the JetStream relay (eventlog/jsrelay, wired
// by the command that has a NATS connection) read it through EventLog.

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of EventsConfig.
const (
	DefaultEventsRetention     = 24 * time.Hour
	DefaultEventsMaxBytes      = 1 << 30 // 1 GiB
	DefaultEventsPruneInterval = time.Minute
)

// EventsConfig configures a region's event log.
type EventsConfig struct {
	// Disabled keeps no event log (no HTTP feed, no relay). For benchmarks
	// that measure the log's cost; production regions keep it.
	Disabled bool
	// Relayed: a relay publishes the log to JetStream, so events are
	// pruned only once it has passed them (its cursor). False: no relay
	// runs, and retention alone decides.
	Relayed bool
	// Stream is the JetStream stream the relay publishes to; "":
	// HOLDFAST_EVENTS. The relay itself is started by the command that
	// has the NATS connection (cmd/holdfast, demo).
	Stream string
	// Retention: events older than this (and passed by the relay) are
	// pruned. 0: DefaultEventsRetention.
	Retention time.Duration
	// MaxBytes caps the log's size on disk: beyond it the oldest events
	// (passed by the relay) are pruned even inside Retention. 0:
	// DefaultEventsMaxBytes.
	MaxBytes int64
	// PruneInterval is how often retention is applied. 0:
	// DefaultEventsPruneInterval.
	PruneInterval time.Duration
}

func (c EventsConfig) withDefaults() EventsConfig {
	if c.Retention <= 0 {
		c.Retention = DefaultEventsRetention
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultEventsMaxBytes
	}
	if c.PruneInterval <= 0 {
		c.PruneInterval = DefaultEventsPruneInterval
	}
	return c
}

func (c EventsConfig) validate() error {
	if c.Retention < 0 || c.MaxBytes < 0 || c.PruneInterval < 0 {
		return fmt.Errorf("region: events: retention, max bytes and prune interval must not be negative")
	}
	if c.Retention > 0 && c.Retention < time.Second {
		return fmt.Errorf("region: events: retention %v is below 1s", c.Retention)
	}
	if len(c.Stream) > 255 || strings.ContainsAny(c.Stream, ".*> \t\r\n/\\") {
		return fmt.Errorf("region: events_stream %q must be a JetStream stream name (no dots, wildcards, spaces or slashes; at most 255 bytes)", c.Stream)
	}
	if c.PruneInterval > 0 && c.PruneInterval < 10*time.Millisecond {
		return fmt.Errorf("region: events: prune interval %v is below 10ms", c.PruneInterval)
	}
	return nil
}

// Events returns the region's event log, or nil when its storage keeps
// none (Config.Events.Disabled, or a test storage).
func (r *Region) Events() *EventLog { return r.events }

// registerEvents registers the log's metrics (startEvents starts its
// pruner).
func (r *Region) registerEvents() {
	es, ok := r.storage.(interface{ Events() *EventLog })
	if !ok || es.Events() == nil {
		return
	}
	l := es.Events()
	r.events = l
	labels := prometheus.Labels{"region": r.name}
	r.evPruned = prometheus.NewCounter(prometheus.CounterOpts{Name: "holdfast_events_pruned_total",
		Help: "Events deleted from the region's log by retention.", ConstLabels: labels})
	r.metrics.reg.MustRegister(r.evPruned,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "holdfast_events_head_seq",
			Help: "Sequence of the region's last durable event.", ConstLabels: labels},
			func() float64 { return float64(l.Head()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "holdfast_events_oldest_seq",
			Help: "First sequence still kept in the region's event log (head+1 when empty).", ConstLabels: labels},
			func() float64 { return float64(r.evOldest.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "holdfast_events_pending_bytes",
			Help: "Estimated disk bytes of the events kept in the region's log (as of the last retention pass).", ConstLabels: labels},
			func() float64 { return float64(r.evBytes.Load()) }),
	)
}

// startEvents starts the log's pruner (Open only: a Stepper prunes nothing).
func (r *Region) startEvents() {
	if r.events == nil {
		return
	}
	cfg := r.cfg.Events.withDefaults()
	r.pruneEvents(cfg, time.Now())
	go r.every(cfg.PruneInterval, func(now time.Time) { r.pruneEvents(cfg, now) })
}

// every runs f every interval, on its own goroutine's ticker, until Close.
func (r *Region) every(interval time.Duration, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			f(now)
		}
	}
}

// pruneEvents applies retention once: it deletes the events that the relay
// has passed (every durable one when there is no relay) and that are older
// than cfg.Retention or, oldest first, beyond cfg.MaxBytes.
func (r *Region) pruneEvents(cfg EventsConfig, now time.Time) {
	l := r.events
	below, err := l.pruneBound(cfg, now)
	if err == nil && below > 0 {
		var oldest uint64
		if oldest, err = l.Oldest(); err == nil && below > oldest {
			if err = l.Prune(below); err == nil {
				r.evPruned.Add(float64(below - oldest))
				r.log.Debug("pruned events", "from", oldest, "below", below)
			}
		}
	}
	if err != nil {
		r.log.Warn("event log retention", "err", err)
	}
	if o, err := l.Oldest(); err == nil {
		r.evOldest.Store(o)
		if n, err := l.DiskBytes(o); err == nil {
			r.evBytes.Store(n)
		}
	}
}

// pruneBound returns the sequence below which events may be deleted (0:
// none).
func (l *EventLog) pruneBound(cfg EventsConfig, now time.Time) (uint64, error) {
	passed := l.Head()
	if cfg.Relayed {
		c, err := l.Cursor()
		if err != nil {
			return 0, err
		}
		passed = min(passed, c)
	}
	oldest, err := l.Oldest()
	if err != nil || passed < oldest {
		return 0, err
	}
	// The first event in [oldest, passed] younger than the window: events
	// are numbered in the node's clock order, so a binary search finds it
	// (a clock that stepped back only keeps a few events longer).
	cutoff := now.Add(-cfg.Retention)
	lo, hi := oldest, passed+1 // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		recs, err := l.Read(mid-1, 1)
		if err != nil {
			return 0, err
		}
		if len(recs) == 0 || recs[0].Time.After(cutoff) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	below := lo
	// The size cap: drop the oldest share of the log that is over it.
	if total, err := l.DiskBytes(oldest); err == nil && total > uint64(cfg.MaxBytes) {
		head := l.Head()
		over := float64(total-uint64(cfg.MaxBytes)) / float64(total)
		byCap := oldest + uint64(over*float64(head-oldest+1)) + 1
		below = max(below, min(byCap, passed+1))
	} else if err != nil {
		return 0, err
	}
	return below, nil
}
