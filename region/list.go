package region

// Listing holds (GET /v1/holds) and the retention of terminal holds.
//
// Memory and retention. The node keeps a terminal hold in memory for
// Escrow.HoldRetain (default 24 h, the idempotency window: a retried
// request finds its hold), then retires it. A retired hold stays in the
// store, listable, until Config.HoldRetain (default 7 days) after it ended;
// the pruner then deletes it with its index entries. So the memory cost is
// bounded by the node's window (about 200-350 bytes per hold, with its
// idempotency key: escrow's TestMemoryFootprint; at 100 holds/s, 24 h is
// ~8.6 M holds, ~2-3 GB — lower Escrow.HoldRetain, e.g. to
// 1 h, on a busy region: listing does not need it), and the 7 days cost
// only disk (~200 bytes per hold and ~100 per index entry before
// compression). After a restart terminal holds older than the node's
// window are not loaded at all.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// DefaultHoldRetain is how long terminal holds stay listable by default.
const DefaultHoldRetain = 7 * 24 * time.Hour

const (
	defaultPruneInterval = time.Minute
	pruneBatch           = 4096
)

// ErrListUnsupported: the region's storage cannot list holds (a test
// storage without the listing indexes).
var ErrListUnsupported = errors.New("region: this storage cannot list holds")

// holdLister is implemented by storages with the listing indexes (Store).
type holdLister interface {
	ListHolds(ctx context.Context, q HoldQuery) (HoldPage, error)
	PruneEnded(cutoff time.Time, max int) (int, error)
}

func (c Config) memRetain() time.Duration {
	if c.Escrow.HoldRetain > 0 {
		return c.Escrow.HoldRetain
	}
	return escrow.DefaultIdemTTL
}

func (c Config) retainDefaults() Config {
	if c.HoldRetain == 0 {
		c.HoldRetain = max(DefaultHoldRetain, c.memRetain())
	}
	if c.PruneInterval <= 0 {
		c.PruneInterval = defaultPruneInterval
	}
	return c
}

func (c Config) validateRetain() error {
	if c.HoldRetain > 0 && c.HoldRetain < c.memRetain() {
		return fmt.Errorf("region: hold_retain %v is shorter than the node's memory window %v (escrow hold_memory_retain): holds would leave the store before the node", c.HoldRetain, c.memRetain())
	}
	if c.HoldRetain > 400*24*time.Hour {
		return fmt.Errorf("region: hold_retain %v is over 400 days", c.HoldRetain)
	}
	return nil
}

// ListHolds returns one page of this region's holds matching q, read from
// a store snapshot beside the apply loop (it never enters it).
func (r *Region) ListHolds(ctx context.Context, q HoldQuery) (HoldPage, error) {
	l, ok := r.currentStorage().(holdLister)
	if !ok {
		if r.currentStorage() == nil {
			return HoldPage{}, ErrClosed
		}
		return HoldPage{}, ErrListUnsupported
	}
	start := time.Now()
	p, err := l.ListHolds(ctx, q)
	r.metrics.list.pages.Inc()
	r.metrics.list.examined.Add(float64(p.Examined))
	r.metrics.list.returned.Add(float64(len(p.Holds)))
	r.metrics.list.seconds.Observe(time.Since(start).Seconds())
	return p, err
}

// pruneHolds drops terminal holds past Config.HoldRetain, every
// PruneInterval, until Close.
func (r *Region) pruneHolds() {
	if r.cfg.HoldRetain <= 0 {
		return
	}
	r.every(r.cfg.PruneInterval, func(now time.Time) { r.pruneOnce(now) })
}

// pruneOnce prunes what ended before now − HoldRetain, in batches.
func (r *Region) pruneOnce(now time.Time) int {
	l, ok := r.currentStorage().(holdLister)
	if !ok {
		return 0
	}
	total := 0
	for {
		n, err := l.PruneEnded(now.Add(-r.cfg.HoldRetain), pruneBatch)
		total += n
		r.metrics.list.pruned.Add(float64(n))
		if err != nil {
			if !errors.Is(err, ErrStoreClosed) {
				r.log.Warn("pruning ended holds", "err", err)
			}
			return total
		}
		if n < pruneBatch {
			return total
		}
		select {
		case <-r.stop:
			return total
		default:
		}
	}
}

type listMetrics struct {
	pages, examined, returned, pruned prometheus.Counter
	seconds                           prometheus.Histogram
}

func (r *Region) listCollectors() []prometheus.Collector {
	m := &r.metrics.list
	m.pages = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "holdfast_hold_list_pages_total", Help: "Pages of GET /v1/holds served from the store."})
	m.examined = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "holdfast_hold_list_examined_total", Help: "Index entries examined by hold listings."})
	m.returned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "holdfast_hold_list_returned_total", Help: "Holds returned by hold listings."})
	m.pruned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "holdfast_holds_pruned_total", Help: "Terminal holds deleted from the store after the retention window (hold_retain)."})
	m.seconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "holdfast_hold_list_seconds", Help: "Time to read one page of a hold listing.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)})
	return []prometheus.Collector{m.pages, m.examined, m.returned, m.pruned, m.seconds}
}
