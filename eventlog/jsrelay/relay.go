// Package jsrelay publishes a region's event outbox (package eventlog) to a
// JetStream stream, in order and at least once, with Nats-Msg-Id = event id
// so that the stream's duplicate window drops re-sends. It lives apart from
// eventlog so that the region runtime (and the simulator above it) can
// write the outbox without linking the NATS client.
package jsrelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/eventlog"
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	Cluster, Region string
	Conn            *nats.Conn
	Source          eventlog.Source
	Cursor          eventlog.CursorStore
	// Stream is the stream name (eventlog.DefaultStream if empty). A stream that is
	// missing is created with file storage, subjects SubjectPrefix+">" and
	// DuplicateWindow; an existing one is used as it is (production
	// streams are configured by operators, see docs/events.md).
	Stream          string
	DuplicateWindow time.Duration // default eventlog.DefaultDuplicateWindow
	Page            int           // records read at once, default 256
	AckTimeout      time.Duration // per publish, default 5s
	// Window is the number of events published ahead of their acks
	// (default 1: one at a time). A larger window keeps up with a busy
	// region, but gives up strict order in one failure: an event lost with
	// a cut connection (or refused while JetStream restarts) while a later
	// one of the same window is stored is re-sent after it. Each event is
	// still stored exactly once. Strict order is the default.
	Window int
	// CursorInterval is how often at most the cursor is saved while events
	// are in flight (default 20ms); it is always saved when the relay
	// catches up.
	CursorInterval time.Duration
	MinBackoff     time.Duration // default 50ms
	MaxBackoff     time.Duration // default 5s
	Registerer     prometheus.Registerer
	Log            *slog.Logger
}

// Relay publishes a region's events to JetStream in order, each with
// Nats-Msg-Id = its event id, and advances its cursor only past events the
// stream acknowledged. It keeps a window of events in flight (published
// asynchronously on one connection, so the server stores them in the
// order sent) and collects their acks in order. A publish that fails or
// times out stops the window; the relay waits for the acks still in
// flight and re-publishes from the first unacknowledged event (with
// backoff) until it is acknowledged; nothing is skipped, and the duplicate
// window drops the re-sends of events the stream had stored.
type Relay struct {
	cfg    RelayConfig
	js     jetstream.JetStream
	cursor uint64
	m      relayMetrics
}

type relayMetrics struct {
	lagEvents  prometheus.Gauge
	lagSeconds prometheus.Gauge
	published  prometheus.Counter
	retries    prometheus.Counter
}

// NewRelay checks cfg and registers the relay's metrics.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.Conn == nil || cfg.Source == nil || cfg.Cursor == nil {
		return nil, errors.New("eventlog: relay needs a connection, a source and a cursor store")
	}
	if err := escrow.ValidRegion(cfg.Region); err != nil {
		return nil, fmt.Errorf("eventlog: relay: %w", err)
	}
	if cfg.Cluster == "" {
		return nil, errors.New("eventlog: relay: empty cluster name")
	}
	if cfg.Stream == "" {
		cfg.Stream = eventlog.DefaultStream
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = eventlog.DefaultDuplicateWindow
	}
	if cfg.Page <= 0 {
		cfg.Page = 256
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = 1
	}
	if cfg.CursorInterval <= 0 {
		cfg.CursorInterval = 20 * time.Millisecond
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	js, err := jetstream.New(cfg.Conn, jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(2*cfg.Window))
	if err != nil {
		return nil, fmt.Errorf("eventlog: relay: %w", err)
	}
	r := &Relay{cfg: cfg, js: js}
	labels := prometheus.Labels{"region": cfg.Region}
	r.m = relayMetrics{
		lagEvents: prometheus.NewGauge(prometheus.GaugeOpts{Name: "holdfast_events_relay_lag_events",
			Help: "Committed events not yet acknowledged by JetStream.", ConstLabels: labels}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "holdfast_events_relay_lag_seconds",
			Help: "Age of the oldest committed event not yet acknowledged by JetStream.", ConstLabels: labels}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "holdfast_events_published_total",
			Help: "Events acknowledged by JetStream (re-sends the stream dropped as duplicates included).", ConstLabels: labels}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "holdfast_events_relay_retries_total",
			Help: "Publishes of events that failed and were retried.", ConstLabels: labels}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.m.lagEvents, r.m.lagSeconds, r.m.published, r.m.retries} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("eventlog: relay metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Run publishes until ctx ends; it returns ctx's error, or an error
// reading the source or saving the cursor (which a runtime treats as a
// storage failure).
func (r *Relay) Run(ctx context.Context) error {
	cur, err := r.cfg.Cursor.Cursor()
	if err != nil {
		return fmt.Errorf("eventlog: relay: %w", err)
	}
	r.cursor = cur
	backoff := r.cfg.MinBackoff
	streamReady := false
	for {
		if !streamReady {
			if err := r.ensureStream(ctx); err != nil {
				r.cfg.Log.Warn("event stream not ready", "stream", r.cfg.Stream, "err", err)
				if !sleep(ctx, &backoff, r.cfg.MaxBackoff) {
					return ctx.Err()
				}
				continue
			}
			streamReady = true
		}
		progressed, err := r.pipeline(ctx)
		if progressed {
			backoff = r.cfg.MinBackoff
		}
		if err == nil {
			continue
		}
		var fatal *storageError
		if errors.As(err, &fatal) {
			return fmt.Errorf("eventlog: relay: %w", fatal.err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.m.retries.Inc()
		r.cfg.Log.Warn("publishing event", "region", r.cfg.Region, "seq", r.cursor+1, "err", err)
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) ||
			errors.Is(err, nats.ErrNoResponders) {
			streamReady = false
		}
		if !sleep(ctx, &backoff, r.cfg.MaxBackoff) {
			return ctx.Err()
		}
	}
}

// Published is the last sequence JetStream acknowledged (the cursor).
// Valid while Run runs on the same goroutine; for tests and logs.
func (r *Relay) Published() uint64 { return r.cursor }

// storageError wraps a failure of the source or the cursor store: Run
// returns it instead of retrying.
type storageError struct{ err error }

func (e *storageError) Error() string { return e.err.Error() }

// inflight is a published event whose ack has not been collected yet.
type inflight struct {
	seq uint64
	at  time.Time // the event's commit time, for the lag gauge
	paf jetstream.PubAckFuture
}

// pipeline publishes from the cursor on, keeping up to Window events in
// flight, and collects their acks in order: acked is the highest sequence
// whose ack and all earlier acks arrived, and the cursor is saved up to it
// at most every CursorInterval (and whenever the pipeline drains). On the
// first failed or timed-out ack it waits for the other outstanding acks
// and returns the error; Run then re-publishes from the first
// unacknowledged event (the duplicate window drops the re-sends of events
// the stream had stored). progressed reports whether any ack arrived.
func (r *Relay) pipeline(ctx context.Context) (progressed bool, err error) {
	acked := r.cursor
	sent := r.cursor
	var q []inflight
	lastSave := time.Now()
	save := func(force bool) error {
		if acked <= r.cursor || (!force && time.Since(lastSave) < r.cfg.CursorInterval) {
			return nil
		}
		if err := r.cfg.Cursor.SaveCursor(acked); err != nil {
			return &storageError{err}
		}
		r.cursor = acked
		lastSave = time.Now()
		return nil
	}
	defer func() {
		if serr := save(true); serr != nil && err == nil {
			err = serr
		}
	}()
	for {
		// Fill the window.
		var recs []eventlog.Record
		if room := r.cfg.Window - len(q); room > 0 {
			recs, err = r.cfg.Source.Read(sent, min(room, r.cfg.Page))
			if err != nil {
				return progressed, &storageError{err}
			}
			if len(recs) > 0 && recs[0].Seq != sent+1 {
				return progressed, &storageError{fmt.Errorf("relay at %d: the outbox continues at %d (pruned before it was published)", sent, recs[0].Seq)}
			}
			for i := range recs {
				rec := &recs[i]
				msg := &nats.Msg{Subject: eventlog.Subject(r.cfg.Cluster, r.cfg.Region, rec.Kind), Data: rec.Data, Header: nats.Header{}}
				paf, perr := r.js.PublishMsgAsync(msg, jetstream.WithMsgID(rec.ID(r.cfg.Region)),
					jetstream.WithExpectStream(r.cfg.Stream), jetstream.WithRetryAttempts(0),
					jetstream.WithStallWait(r.cfg.AckTimeout))
				if perr != nil {
					r.abandon(q, 0)
					return progressed, fmt.Errorf("event %d: %w", rec.Seq, perr)
				}
				q = append(q, inflight{seq: rec.Seq, at: rec.Time, paf: paf})
				sent = rec.Seq
			}
		}
		r.noteLag(acked, q, recs)
		if len(q) == 0 {
			if err := save(true); err != nil {
				return progressed, err
			}
			select {
			case <-ctx.Done():
				return progressed, ctx.Err()
			case <-r.cfg.Source.Notify():
			}
			continue
		}
		// Collect the ack of the oldest event in flight, then every later
		// one that has already arrived.
		head := q[0]
		select {
		case <-ctx.Done():
			return progressed, ctx.Err() // the acks still in flight time out on their own
		case <-head.paf.Ok():
		case perr := <-head.paf.Err():
			r.abandon(q, 1)
			return progressed, fmt.Errorf("event %d: %w", head.seq, perr)
		}
		n := 1
		for ; n < len(q); n++ {
			select {
			case <-q[n].paf.Ok():
				continue
			case perr := <-q[n].paf.Err():
				acked = q[n-1].seq
				r.m.published.Add(float64(n))
				r.abandon(q, n+1)
				return true, fmt.Errorf("event %d: %w", q[n].seq, perr)
			default:
			}
			break
		}
		acked = q[n-1].seq
		r.m.published.Add(float64(n))
		progressed = true
		q = q[n:]
		if err := save(false); err != nil {
			return progressed, err
		}
	}
}

// abandon waits for the acks of q[from:] to arrive or fail (each is
// bounded by AckTimeout), so that a re-publish does not race the events
// still in flight. An event acknowledged after an earlier one failed was
// stored ahead of it unless the failed one's ack was merely lost: that is
// logged, since the re-send of the earlier one lands after it.
func (r *Relay) abandon(q []inflight, from int) {
	for _, f := range q[from:] {
		select {
		case ack := <-f.paf.Ok():
			if from > 0 && !ack.Duplicate {
				r.cfg.Log.Warn("event stored after an earlier one failed: the stream may hold them out of order",
					"region", r.cfg.Region, "seq", f.seq, "failed", q[from-1].seq)
				from = 0 // once per failure
			}
		case <-f.paf.Err():
		}
	}
}

func (r *Relay) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.AckTimeout)
	defer cancel()
	_, err := r.js.Stream(ctx, r.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = r.js.CreateStream(ctx, jetstream.StreamConfig{Name: r.cfg.Stream,
			Subjects: []string{eventlog.SubjectPrefix(r.cfg.Cluster) + ">"}, Storage: jetstream.FileStorage,
			Duplicates: r.cfg.DuplicateWindow})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // another region created it first
		}
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.Stream, err)
	}
	return nil
}

// noteLag sets the lag gauges from the head, the acknowledged sequence
// and the oldest unacknowledged event (in flight, or just read).
func (r *Relay) noteLag(acked uint64, q []inflight, recs []eventlog.Record) {
	head := r.cfg.Source.Head()
	lag := uint64(0)
	if head > acked {
		lag = head - acked
	}
	r.m.lagEvents.Set(float64(lag))
	var oldest time.Time
	switch {
	case len(q) > 0:
		oldest = q[0].at
	case len(recs) > 0:
		oldest = recs[0].Time
	}
	if lag == 0 || oldest.IsZero() {
		r.m.lagSeconds.Set(0)
		return
	}
	r.m.lagSeconds.Set(max(0, time.Since(oldest).Seconds()))
}

// sleep waits *d (doubled for next time up to maxD); false if ctx ended.
func sleep(ctx context.Context, d *time.Duration, maxD time.Duration) bool {
	t := time.NewTimer(*d)
	defer t.Stop()
	*d = min(2**d, maxD)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
