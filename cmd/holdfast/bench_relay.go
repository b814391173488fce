package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/eventlog/jsrelay"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/loadgen"
	"github.com/holdfast-io/holdfast/region"
)

// benchRelay runs, for `bench --relay`, an embedded NATS server with
// JetStream (file store in the bench's data dir) and the region's relay,
// and samples the relay's lag: the age of the oldest committed event not
// yet acknowledged by JetStream (holdfast_events_relay_lag_seconds), every
// 10 ms of the measured window.
type benchRelay struct {
	ns     *server.Server
	nc     *nats.Conn
	reg    *prometheus.Registry
	ev     *region.EventLog
	cancel context.CancelFunc
	done   chan error
	wg     sync.WaitGroup

	mu      sync.Mutex
	measure bool
	samples []float64
}

func startBenchRelay(r *region.Region, dir string) (*benchRelay, error) {
	ns, url, err := gossip.RunEmbedded(gossip.EmbeddedOptions{Host: "127.0.0.1", Port: -1, ServerName: "holdfast-bench",
		JetStream: true, StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		return nil, fmt.Errorf("bench: embedded NATS: %w", err)
	}
	nc, err := nats.Connect(url, gossip.DialOptions("holdfast-bench-relay", 250*time.Millisecond, gossip.Auth{})...)
	if err != nil {
		ns.Shutdown()
		return nil, fmt.Errorf("bench: connect relay: %w", err)
	}
	l := r.Events()
	b := &benchRelay{ns: ns, nc: nc, reg: prometheus.NewRegistry(), ev: l, done: make(chan error, 1)}
	rel, err := jsrelay.NewRelay(jsrelay.RelayConfig{Cluster: l.Cluster(), Region: l.Region(), Conn: nc, Source: l, Cursor: l,
		Registerer: b.reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.done <- rel.Run(ctx) }()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			b.mu.Lock()
			on := b.measure
			b.mu.Unlock()
			if !on {
				continue
			}
			if v, ok := b.lagSeconds(); ok {
				b.mu.Lock()
				b.samples = append(b.samples, v)
				b.mu.Unlock()
			}
		}
	}()
	return b, nil
}

func (b *benchRelay) lagSeconds() (float64, bool) {
	mfs, err := b.reg.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() == "holdfast_events_relay_lag_seconds" && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func (b *benchRelay) setMeasuring(on bool) {
	b.mu.Lock()
	b.measure = on
	b.mu.Unlock()
}

// labels stops sampling, waits (up to a minute) for the relay to publish
// every event, and returns the lag figures.
func (b *benchRelay) labels() []loadgen.Label {
	b.setMeasuring(false)
	b.mu.Lock()
	s := append([]float64(nil), b.samples...)
	b.mu.Unlock()
	sort.Float64s(s)
	q := func(p float64) string {
		if len(s) == 0 {
			return "-1"
		}
		return strconv.FormatFloat(s[min(len(s)-1, int(p*float64(len(s))))], 'f', 3, 64)
	}
	head := b.ev.Head()
	cur, _ := b.ev.Cursor()
	behind := head - min(head, cur)
	start := time.Now()
	for cur < head && time.Since(start) < time.Minute {
		select {
		case <-b.ev.Changed():
		case <-time.After(10 * time.Millisecond): // the cursor is polled: the relay does not signal it
		}
		cur, _ = b.ev.Cursor()
	}
	drain := "-1"
	if cur >= head {
		drain = strconv.FormatFloat(time.Since(start).Seconds(), 'f', 2, 64)
	}
	return []loadgen.Label{{Key: "relay_lag_p50_s", Value: q(0.5)}, {Key: "relay_lag_p99_s", Value: q(0.99)},
		{Key: "relay_lag_max_s", Value: q(1)}, {Key: "relay_behind_at_end", Value: strconv.FormatUint(behind, 10)},
		{Key: "relay_drain_s", Value: drain}}
}

func (b *benchRelay) close() {
	if b.cancel != nil {
		b.cancel()
		<-b.done
	}
	b.wg.Wait()
	b.nc.Close()
	b.ns.Shutdown()
}
