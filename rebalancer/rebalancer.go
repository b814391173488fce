// Package rebalancer runs the global rebalancer daemon: it listens to the
// regions' digests over NATS, runs the escrow rebalance policy every
// interval and publishes the advice on holdfast.<cluster>.advice.
//
// The daemon is advisory. Regions follow advice only from their own
// surplus (escrow.Node), so safety never depends on it: if it is down,
// borrowing and top-up still move stock. Several daemons may run: the one
// with the smallest ID publishes, the others watch its advice and take
// over when it goes quiet; epochs only grow, across daemons and restarts.
//
// Each advice also names the homes of scarce SKUs (escrow.ChooseHomes):
// the other regions send a home their units of its SKU and route the holds
// they cannot cover to it. Advice is published every round, moves or not,
// because regions drop homes escrow.Config.HomeTTL after the latest advice:
// a stopped daemon leaves plain escrow within seconds.
package rebalancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/gossip"
)

// DefaultInterval is the time between rounds when Config.Interval is 0.
const DefaultInterval = time.Second

// DefaultID is the From of the advice when Config.ID is empty.
const DefaultID = "rebalancer"

// Config configures Run. Zero values take the defaults noted.
type Config struct {
	NATSURL string // NATS server URL(s), comma-separated (required)
	Cluster string // subject namespace of the regions (required)
	ID      string // advice sender, [a-z0-9_]{1,32} ("rebalancer"); the smallest active ID leads

	Interval time.Duration          // one round per interval (1s)
	Policy   escrow.RebalancePolicy // see escrow.RebalancePolicy
	// StaleAfter: regions silent this long leave the plan (5 × Interval,
	// at least 3s). Settle: a SKU is not planned again until both regions
	// of its last move sent a digest this long after it (1s; see
	// escrow.RebalancerConfig).
	// StandbyAfter: how long a smaller-ID daemon's advice keeps this one on
	// standby (3 × Interval).
	StaleAfter   time.Duration
	Settle       time.Duration
	StandbyAfter time.Duration
	// Locations: the cluster's locations (the regions' `locations:`); no
	// move or home gives a location's units to a region that may not sell
	// them.
	Locations []escrow.Location

	HTTPAddr string // /metrics and /healthz ("" disables; use a loopback address)

	CredsFile string // NATS credentials (JWT + nkey)
	TLSCert   string // client certificate and key for mutual TLS
	TLSKey    string
	TLSCA     string

	// SigningKeyFile is the rebalancer's nkeys seed (`holdfast keys`; the
	// regions list its public key as rebalancer_public_key; standby daemons
	// share it). MemberKeys maps each region to its public key: digests are
	// accepted only when signed by the region they speak for. Neither set:
	// an unsigned cluster.
	SigningKeyFile string
	MemberKeys     map[string]string

	InboundQueueLen int           // digests waiting to be folded in (4096)
	ReconnectWait   time.Duration // between reconnect attempts (250ms)

	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: a private registry served on /metrics

	// Now is the clock (time.Now). Tests may replace it.
	Now func() time.Time
	// OnListen, if set, is called with the HTTP address once it listens.
	OnListen func(addr string)
	// OnRound, if set, is called with each advice after it is published
	// (or failed to be); for tests and tools.
	OnRound func(adv escrow.Message, published bool)
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.ID == "" {
		d.ID = DefaultID
	}
	if d.Interval <= 0 {
		d.Interval = DefaultInterval
	}
	if d.StaleAfter <= 0 {
		d.StaleAfter = max(5*d.Interval, 3*time.Second)
	}
	if d.StandbyAfter <= 0 {
		d.StandbyAfter = 3 * d.Interval
	}
	if d.InboundQueueLen <= 0 {
		d.InboundQueueLen = 4096
	}
	if d.ReconnectWait <= 0 {
		d.ReconnectWait = 250 * time.Millisecond
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.NATSURL) == "" {
		return errors.New("rebalancer: NATS URL is required")
	}
	if err := gossip.ValidCluster(c.Cluster); err != nil {
		return fmt.Errorf("rebalancer: %w", err)
	}
	if c.ID != "" {
		if err := escrow.ValidRegion(c.ID); err != nil {
			return fmt.Errorf("rebalancer: id: %w", err)
		}
	}
	if c.Interval < 0 || c.StaleAfter < 0 || c.Settle < 0 || c.StandbyAfter < 0 {
		return errors.New("rebalancer: negative duration in config")
	}
	if c.Interval > 0 && c.Interval < 10*time.Millisecond {
		return fmt.Errorf("rebalancer: interval %v is below 10ms", c.Interval)
	}
	if c.InboundQueueLen > 1<<20 {
		return errors.New("rebalancer: inbound queue length is limited to 1048576")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("rebalancer: TLS certificate and key must be given together")
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("rebalancer: %w", err)
	}
	return nil
}

type metrics struct {
	rounds, standbyRounds, moves, units prometheus.Counter
	digests, dropped, publishErrs       prometheus.Counter
	rejected                            *prometheus.CounterVec
	regions, inflight, epoch, standby   prometheus.Gauge
	homes                               prometheus.Gauge
	implausible                         prometheus.Gauge
	connected, lastRound, reconnects    prometheus.Gauge
	roundSeconds                        prometheus.Histogram
	all                                 []prometheus.Collector
}

func newMetrics() *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "holdfast", Subsystem: "rebalancer", Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "holdfast", Subsystem: "rebalancer", Name: name, Help: help})
	}
	m := &metrics{
		rounds:        c("rounds_total", "Rounds that published advice."),
		standbyRounds: c("standby_rounds_total", "Rounds skipped because a daemon with a smaller id is active."),
		moves:         c("moves_advised_total", "Moves advised."),
		units:         c("units_advised_total", "Units advised to move (regions give at most this, from surplus)."),
		digests:       c("digests_total", "Digests folded in."),
		dropped:       c("inbound_dropped_total", "Inbound messages dropped because the queue was full."),
		publishErrs:   c("publish_errors_total", "Advice that could not be published."),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "holdfast", Subsystem: "rebalancer",
			Name: "messages_rejected_total", Help: "Inbound messages rejected, by reason."}, []string{"reason"}),
		regions:     g("regions", "Regions with a recent digest."),
		inflight:    g("moves_in_flight", "Advised moves not yet reflected in digests."),
		epoch:       g("epoch", "Epoch of the last advice issued or seen."),
		standby:     g("standby", "1 while another daemon leads."),
		homes:       g("homes", "Scarce SKUs with a home in the last advice (regions route their holds there)."),
		implausible: g("implausible_skus", "SKUs not planned at the last round: the units their digests claim sum past the plausible maximum (a lying or broken region)."),
		connected:   g("nats_connected", "1 while connected to NATS."),
		lastRound:   g("last_round_timestamp_seconds", "Unix time of the last round."),
		reconnects:  g("nats_reconnects", "NATS reconnects since start."),
		roundSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "holdfast", Subsystem: "rebalancer",
			Name: "round_seconds", Help: "Time to compute one round.", Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10)}),
	}
	m.all = []prometheus.Collector{m.rounds, m.standbyRounds, m.moves, m.units, m.digests, m.dropped, m.publishErrs,
		m.rejected, m.regions, m.inflight, m.epoch, m.standby, m.homes, m.implausible, m.connected, m.lastRound, m.reconnects, m.roundSeconds}
	return m
}

type inbound struct {
	subject string
	data    []byte
	at      time.Time
}

// Run runs the daemon until ctx is cancelled. It returns nil on
// cancellation and an error if it cannot start. A NATS server that is down
// at start or later is retried forever; rounds are skipped while the
// connection is down (advice computed from stale digests is not queued).
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c := cfg.withDefaults()
	log := c.Logger.With("component", "rebalancer", "id", c.ID, "cluster", c.Cluster)
	rb, err := escrow.NewRebalancer(escrow.RebalancerConfig{ID: c.ID, Policy: c.Policy, StaleAfter: c.StaleAfter,
		Settle: c.Settle, StandbyAfter: c.StandbyAfter, Locations: c.Locations})
	if err != nil {
		return fmt.Errorf("rebalancer: %w", err)
	}
	m := newMetrics()
	reg := c.Registerer
	var gatherer prometheus.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	}
	for _, col := range m.all {
		if err := reg.Register(col); err != nil {
			return fmt.Errorf("rebalancer: register metrics: %w", err)
		}
	}
	defer func() {
		for _, col := range m.all {
			reg.Unregister(col)
		}
	}()

	var lastRoundNs atomic.Int64
	lastRoundNs.Store(c.Now().UnixNano()) // healthy until the first rounds are due
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if c.HTTPAddr != "" {
		ln, err := net.Listen("tcp", c.HTTPAddr)
		if err != nil {
			return fmt.Errorf("rebalancer: listen on %s: %w", c.HTTPAddr, err)
		}
		mux := http.NewServeMux()
		if gatherer != nil {
			mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
		}
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			age := c.Now().Sub(time.Unix(0, lastRoundNs.Load()))
			if age > 3*c.Interval+time.Second {
				http.Error(w, fmt.Sprintf("no round for %v\n", age.Round(time.Millisecond)), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintf(w, "ok\n")
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "err", err)
			}
		}()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("serving metrics and health", "addr", ln.Addr().String())
		if c.OnListen != nil {
			c.OnListen(ln.Addr().String())
		}
	}

	in := make(chan inbound, c.InboundQueueLen)
	// Advice computed before a disconnect is stale after it: the channel
	// fails the publish instead of buffering it.
	enqueue := func(subject string, data []byte) {
		if len(data) > escrow.MaxMessageBytes {
			m.rejected.WithLabelValues("oversized").Inc()
			return
		}
		select {
		case in <- inbound{subject: subject, data: data, at: c.Now()}:
		default:
			m.dropped.Inc()
		}
	}
	keys, err := c.keyring()
	if err != nil {
		return fmt.Errorf("rebalancer: %w", err)
	}
	ch, err := gossip.DialAdvice(ctx, gossip.AdviceConfig{
		Keys: keys,
		OnReject: func(reason, subject string, err error) {
			m.rejected.WithLabelValues(reason).Inc()
			log.Debug("dropping inbound message", "reason", reason, "subject", subject, "err", err)
		},
		URL:           c.NATSURL,
		Cluster:       c.Cluster,
		Name:          "holdfast-rebalancer-" + c.ID,
		Auth:          gossip.Auth{CredsFile: c.CredsFile, TLSCert: c.TLSCert, TLSKey: c.TLSKey, TLSCA: c.TLSCA},
		ReconnectWait: c.ReconnectWait,
		PendingLimit:  c.InboundQueueLen,
		OnConnect:     func() { m.connected.Set(1) },
		OnDisconnect: func(err error) {
			m.connected.Set(0)
			log.Warn("nats disconnected", "err", err)
		},
		OnReconnect: func(url string, reconnects uint64) {
			m.connected.Set(1)
			m.reconnects.Set(float64(reconnects))
			log.Info("nats reconnected", "url", url)
		},
		OnFlushError: func(err error) { log.Warn("nats flush after subscribe", "err", err) },
	}, enqueue)
	if err != nil {
		return fmt.Errorf("rebalancer: %w", err)
	}
	defer ch.Close()
	if ch.Connected() {
		m.connected.Set(1)
	}
	log.Info("rebalancer started", "nats", c.NATSURL, "interval", c.Interval)

	ticker := time.NewTicker(c.Interval)
	defer ticker.Stop()
	var buf []byte
	warnAt := map[string]time.Time{}
	warn := func(key, msg string, args ...any) {
		now := c.Now()
		if now.Sub(warnAt[key]) < 10*time.Second {
			return
		}
		warnAt[key] = now
		log.Warn(msg, args...)
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("rebalancer stopping")
			return nil
		case msg := <-in:
			reason, err := fold(rb, msg, c.Cluster)
			if err != nil {
				m.rejected.WithLabelValues(reason).Inc()
				warn("reject-"+reason, "dropping inbound message", "subject", msg.subject, "err", err)
				continue
			}
			if reason == "digest" {
				m.digests.Inc()
			}
		case <-ticker.C:
			now := c.Now()
			start := time.Now()
			adv, ok := rb.Round(now)
			m.roundSeconds.Observe(time.Since(start).Seconds())
			lastRoundNs.Store(now.UnixNano())
			m.lastRound.Set(float64(now.UnixNano()) / 1e9)
			st := rb.Stats()
			m.regions.Set(float64(st.Regions))
			m.inflight.Set(float64(st.InFlight))
			m.epoch.Set(float64(st.Epoch))
			m.homes.Set(float64(st.Homes))
			m.implausible.Set(float64(st.ImplausibleSKUs))
			if !ok {
				m.standby.Set(1)
				m.standbyRounds.Inc()
				continue
			}
			m.standby.Set(0)
			m.rounds.Inc()
			if len(adv.Homes) > escrow.MaxWireHomes {
				// One advice cannot carry more; dropping the rest beats
				// an advice that never encodes (no moves, no homes).
				warn("homes", "more scarce SKUs than one advice carries: dropping the rest",
					"homes", len(adv.Homes), "limit", escrow.MaxWireHomes)
				adv.Homes = adv.Homes[:escrow.MaxWireHomes]
			}
			// Advice is published every round, with or without moves:
			// regions keep homes only HomeTTL after the latest advice,
			// and standby daemons watch it to stay on standby.
			published := false
			if !ch.Connected() {
				m.publishErrs.Inc()
				warn("publish", "not connected to NATS: skipping advice")
			} else {
				var trimmed int
				buf, trimmed, err = encodeAdvice(buf[:0], &adv)
				if trimmed > 0 {
					warn("trim", "advice over the message size limit: moves left for later rounds",
						"moves_dropped", trimmed, "moves_sent", len(adv.Moves), "homes", len(adv.Homes))
				}
				if err == nil {
					err = ch.Publish(buf)
				}
				if err != nil {
					m.publishErrs.Inc()
					warn("publish", "publish advice", "err", err)
				} else {
					published = true
					m.moves.Add(float64(len(adv.Moves)))
					var units uint64
					for _, mv := range adv.Moves {
						units += mv.Qty
					}
					m.units.Add(float64(units))
					if len(adv.Moves) > 0 || len(adv.Homes) > 0 {
						log.Debug("advice", "epoch", adv.Epoch, "moves", len(adv.Moves), "units", units, "homes", len(adv.Homes))
					}
				}
			}
			if c.OnRound != nil {
				c.OnRound(adv, published)
			}
		}
	}
}

// fold checks one inbound message against its subject and feeds it to rb.
// It returns "digest" or "advice" when accepted, else a reason.
func fold(rb *escrow.Rebalancer, msg inbound, cluster string) (string, error) {
	s, err := gossip.ParseSubject(msg.subject)
	if err != nil || s.Cluster != cluster {
		return "subject", fmt.Errorf("unexpected subject %q", msg.subject)
	}
	m, err := escrow.DecodeMessage(msg.data)
	if err != nil {
		return "decode", err
	}
	switch s.Kind {
	case gossip.KindDigest:
		if m.Type != escrow.MsgDigest || m.From != s.Region || m.To != "" {
			return "subject", fmt.Errorf("%s message from %q on the digest subject of %s", m.Type, m.From, s.Region)
		}
	case gossip.KindAdvice:
		if m.Type != escrow.MsgAdvice || m.To != "" {
			return "subject", fmt.Errorf("%s message on the advice subject", m.Type)
		}
	default:
		return "subject", fmt.Errorf("unexpected subject kind %q", s.Kind)
	}
	if err := rb.Step(msg.at, &m); err != nil {
		return "invalid", err
	}
	if m.Type == escrow.MsgDigest {
		return "digest", nil
	}
	return "advice", nil
}

// encodeAdvice encodes adv, dropping moves from its end (halving them) while
// it is over the message size limit: homes must reach the regions every
// round or they lapse, while a move left out is advised again in a later
// round. It returns how many moves it dropped; adv.Moves is cut to what was
// encoded.
func encodeAdvice(dst []byte, adv *escrow.Message) ([]byte, int, error) {
	all := len(adv.Moves)
	for {
		b, err := escrow.EncodeMessage(dst, adv)
		if err == nil || len(adv.Moves) == 0 {
			return b, all - len(adv.Moves), err
		}
		adv.Moves = adv.Moves[:len(adv.Moves)/2]
	}
}
