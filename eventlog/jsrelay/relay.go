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
	MinBackoff      time.Duration // default 50ms
	MaxBackoff      time.Duration // default 5s
	Registerer      prometheus.Registerer
	Log             *slog.Logger
}

// Relay publishes a region's events to JetStream in order, each with
// Nats-Msg-Id = its event id, and advances its cursor only past events the
// stream acknowledged. A publish that fails is retried (with backoff) until
// it is acknowledged; nothing is skipped. Events are published one at a
// time: a later event is sent only once the earlier is stored, so the
// stream holds them in order even when the server refuses one.
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
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	js, err := jetstream.New(cfg.Conn)
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
		recs, err := r.cfg.Source.Read(r.cursor, r.cfg.Page)
		if err != nil {
			return fmt.Errorf("eventlog: relay: %w", err)
		}
		r.noteLag(recs)
		if len(recs) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-r.cfg.Source.Notify():
			}
			continue
		}
		if recs[0].Seq != r.cursor+1 {
			return fmt.Errorf("eventlog: relay at %d: the outbox continues at %d (pruned before it was published)", r.cursor, recs[0].Seq)
		}
		done, err := r.publish(ctx, recs)
		if done > r.cursor {
			if serr := r.cfg.Cursor.SaveCursor(done); serr != nil {
				return fmt.Errorf("eventlog: relay: %w", serr)
			}
			r.cursor = done
			backoff = r.cfg.MinBackoff
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.m.retries.Inc()
			r.cfg.Log.Warn("publishing event", "region", r.cfg.Region, "seq", r.cursor+1, "err", err)
			if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) {
				streamReady = false
			}
			if !sleep(ctx, &backoff, r.cfg.MaxBackoff) {
				return ctx.Err()
			}
		}
	}
}

// Published is the last sequence JetStream acknowledged (the cursor).
// Valid while Run runs on the same goroutine; for tests and logs.
func (r *Relay) Published() uint64 { return r.cursor }

// publish sends recs in order and returns the last acknowledged sequence.
func (r *Relay) publish(ctx context.Context, recs []eventlog.Record) (uint64, error) {
	done := r.cursor
	for i := range recs {
		rec := &recs[i]
		msg := &nats.Msg{Subject: eventlog.Subject(r.cfg.Cluster, r.cfg.Region, rec.Kind), Data: rec.Data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, rec.ID(r.cfg.Region))
		pctx, cancel := context.WithTimeout(ctx, r.cfg.AckTimeout)
		_, err := r.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(r.cfg.Stream))
		cancel()
		if err != nil {
			return done, fmt.Errorf("event %d: %w", rec.Seq, err)
		}
		done = rec.Seq
		r.m.published.Inc()
	}
	return done, nil
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

// noteLag sets the lag gauges from the head and the oldest unpublished
// record (recs[0], when there is one).
func (r *Relay) noteLag(recs []eventlog.Record) {
	head := r.cfg.Source.Head()
	lag := uint64(0)
	if head > r.cursor {
		lag = head - r.cursor
	}
	r.m.lagEvents.Set(float64(lag))
	if len(recs) == 0 || lag == 0 {
		r.m.lagSeconds.Set(0)
		return
	}
	r.m.lagSeconds.Set(max(0, time.Since(recs[0].Time).Seconds()))
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
