package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/holdfast-io/holdfast/eventlog/jsrelay"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/region"
)

// eventRelay runs the JetStream relay of one region's event log on a NATS
// connection of its own (publish acks must not queue behind gossip).
type eventRelay struct {
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startRelay connects to cfg.NATSURL and publishes r's event log to the
// stream cfg.Events.Stream until Close. The relay retries until NATS and
// the stream are there; it stops only on a storage error, which it logs.
func startRelay(cfg region.Config, r *region.Region, auth gossip.Auth) (*eventRelay, error) {
	log := cfg.Logger.With("region", cfg.Name, "component", "event-relay")
	nc, err := nats.Connect(cfg.NATSURL, gossip.DialOptions("holdfast-relay-"+cfg.Name, 250*time.Millisecond, auth)...)
	if err != nil {
		return nil, fmt.Errorf("event relay: connect %s: %w", cfg.NATSURL, err)
	}
	l := r.Events()
	rel, err := jsrelay.NewRelay(jsrelay.RelayConfig{Cluster: l.Cluster(), Region: cfg.Name, Conn: nc,
		Source: l, Cursor: l, Stream: cfg.Events.Stream, Registerer: r.Registry(), Log: log})
	if err != nil {
		nc.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	er := &eventRelay{nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := rel.Run(ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Error("event relay stopped: events are kept and published after a restart", "err", err)
		}
		er.done <- err
	}()
	return er, nil
}

// Close stops the relay and its connection; it is safe to call twice.
func (e *eventRelay) Close() error {
	e.once.Do(func() {
		e.cancel()
		err := <-e.done
		e.nc.Close()
		if !errors.Is(err, context.Canceled) {
			e.err = err
		}
	})
	return e.err
}
