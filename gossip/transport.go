package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// ErrClosed is returned by Forward after Close.
var ErrClosed = errors.New("gossip: transport closed")

// Inbox is what the transport delivers into. It has the methods of
// region.Inbox, declared here so that gossip never imports region.
type Inbox interface {
	// Deliver enqueues a peer message; it must not block.
	Deliver(m escrow.Message)
	// Execute runs a forwarded hold command and waits for its durable reply.
	Execute(ctx context.Context, cmd escrow.Command) (escrow.Reply, error)
}

// Resyncer is an Inbox that wants to know when the connection to NATS is
// back after a loss (or up for the first time after starting without it):
// messages were dropped meanwhile, and it can ask for them at once
// (region.Region calls escrow.Input.Resync). Optional.
type Resyncer interface {
	Resync()
}

// Config configures a Transport. Zero values take the defaults noted.
type Config struct {
	URL     string // NATS server URL(s), comma-separated
	Cluster string // subject namespace shared by the regions of one inventory
	Region  string // this region

	CredsFile string // NATS credentials (JWT + nkey) file
	TLSCert   string // client certificate and key for mutual TLS
	TLSKey    string
	TLSCA     string // CA bundle to verify the server

	// Signing (see sign.go). Keys, when set, is used as is (tests);
	// otherwise it is built from SigningKeyFile (an nkeys user seed written
	// by `holdfast keys`), MemberKeys (region -> public key) and
	// RebalancerKey. No key anywhere: an unsigned cluster (quick start).
	Keys           *Keyring
	SigningKeyFile string
	MemberKeys     map[string]string
	RebalancerKey  string
	// ForwardWindow: a signed forwarded command is accepted only if its
	// timestamp is within this of our clock, and only once (30s).
	ForwardWindow time.Duration

	// InboxPrefix is the NATS inbox prefix of this region's request/reply
	// (forwarded commands' answers arrive under it); the production NATS
	// config lets each region subscribe only to its own. Empty: nats.go's
	// default _INBOX.
	InboxPrefix string

	// Limits on what a peer may ask this region to send (see limits.go):
	// repair requests per peer per second and burst (2, 5), and bytes of
	// repair answers per peer per second and burst (4 MiB, 64 MiB).
	RepairRate       float64
	RepairBurst      int
	AnswerBytesRate  float64
	AnswerBytesBurst int

	// Members lists every region of the cluster, this one included (the
	// membership of region.Config / escrow.Config). A message from a region
	// outside it, and a forwarded request from one, is dropped and counted
	// (holdfast_gossip_rejected_total{reason="non_member"}); no command is
	// forwarded to one. Advice is the rebalancer's and is not checked here
	// (the node checks each move). Empty: MemberKeys' regions when they
	// are given, else AllowPeers, else every well-formed name (quick local
	// setups).
	Members []string
	// AllowPeers is the deprecated name of Members (without this region):
	// read only when Members and MemberKeys are empty.
	AllowPeers []string

	// WireVersion is the highest peer-message version this region speaks
	// (0: escrow.WireVersion). 1 pins it to the previous release's format:
	// it then writes and reads version 1 only, as an old region does (a
	// rollback, or a mixed-version test). See gossip/version.go.
	WireVersion int

	SendQueueLen        int           // outbound messages waiting to be published (8192)
	InboundQueueLen     int           // inbound messages waiting to be delivered (8192)
	ForwardTimeout      time.Duration // forwarded hold operation round trip (1s)
	MaxForwardsInFlight int           // forwarded operations served at once (256)
	ReconnectWait       time.Duration // pause between reconnect attempts (250ms)
	PingInterval        time.Duration // NATS ping period; two missed pings drop the link (5s)
	LogInterval         time.Duration // at most one log line per kind of bad input per interval (10s)

	// PeerSeqs, when set, returns the node's last contiguous sequence per
	// peer (escrow.Node.PeerSeq); it is called at metrics scrape time to
	// compute replication lag. Without it the lag is measured against the
	// rows messages seen on the wire.
	PeerSeqs func() map[string]uint64

	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.SendQueueLen <= 0 {
		d.SendQueueLen = 8192
	}
	if d.InboundQueueLen <= 0 {
		d.InboundQueueLen = 8192
	}
	if d.ForwardTimeout <= 0 {
		d.ForwardTimeout = time.Second
	}
	if d.MaxForwardsInFlight <= 0 {
		d.MaxForwardsInFlight = 256
	}
	if d.ReconnectWait <= 0 {
		d.ReconnectWait = 250 * time.Millisecond
	}
	if d.PingInterval <= 0 {
		d.PingInterval = 5 * time.Second
	}
	if d.LogInterval <= 0 {
		d.LogInterval = 10 * time.Second
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.ForwardWindow <= 0 {
		d.ForwardWindow = 30 * time.Second
	}
	if d.RepairRate <= 0 {
		d.RepairRate = 2
	}
	if d.RepairBurst <= 0 {
		d.RepairBurst = 5
	}
	if d.AnswerBytesRate <= 0 {
		d.AnswerBytesRate = 4 << 20
	}
	if d.AnswerBytesBurst <= 0 {
		d.AnswerBytesBurst = 64 << 20
	}
	return d
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.URL) == "" {
		return errors.New("gossip: NATS URL is required")
	}
	if err := ValidCluster(c.Cluster); err != nil {
		return err
	}
	if err := escrow.ValidRegion(c.Region); err != nil {
		return fmt.Errorf("gossip: region: %w", err)
	}
	for _, p := range c.Members {
		if err := escrow.ValidRegion(p); err != nil {
			return fmt.Errorf("gossip: members: %w", err)
		}
	}
	for _, p := range c.AllowPeers {
		if err := escrow.ValidRegion(p); err != nil {
			return fmt.Errorf("gossip: allow-list: %w", err)
		}
	}
	if c.ForwardWindow < 0 || c.RepairRate < 0 || c.RepairBurst < 0 || c.AnswerBytesRate < 0 || c.AnswerBytesBurst < 0 {
		return errors.New("gossip: forward window and repair limits must not be negative (0: default)")
	}
	if c.ForwardWindow > 10*time.Minute {
		return fmt.Errorf("gossip: forward window %v is over 10m (a recorded forwarded command could be played that long after)", c.ForwardWindow)
	}
	if c.InboxPrefix != "" {
		if err := validInboxPrefix(c.InboxPrefix); err != nil {
			return err
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("gossip: TLS certificate and key must be given together")
	}
	if c.WireVersion != 0 && (c.WireVersion < escrow.MinWireVersion || c.WireVersion > escrow.WireVersion) {
		return fmt.Errorf("gossip: wire version %d: this build speaks %d..%d", c.WireVersion, escrow.MinWireVersion, escrow.WireVersion)
	}
	if c.SendQueueLen > 1<<20 || c.InboundQueueLen > 1<<20 {
		return errors.New("gossip: queue lengths are limited to 1048576")
	}
	return nil
}

// Transport connects one region to its peers over NATS. It implements
// region.Transport.
type Transport struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	conn   atomic.Pointer[nats.Conn] // nc, for readers that may run before Connect returns (metrics)
	inbox  Inbox
	m      *metrics
	member map[string]bool // nil: open membership
	limit  *logLimiter
	replay *replayFilter
	reg    prometheus.Registerer
	keys   *Keyring
	nonces *nonceCache
	lim    *peerLimits
	seal   []byte // publisher's envelope buffer
	ver    *wireVersions

	mu     sync.Mutex
	queue  []outItem
	closed bool
	wake   chan struct{}
	done   chan struct{}
	inCh   chan *nats.Msg
	fwdSem chan struct{}
	subs   []*nats.Subscription
	wg     sync.WaitGroup
	fwdWG  sync.WaitGroup
	ctx    context.Context // cancelled by Close: bounds forwarded executions
	cancel context.CancelFunc
}

// Connect dials NATS (retrying forever in the background if it is not
// reachable yet), subscribes to this region's subjects and starts the
// publisher. ctx bounds only the initial subscription flush.
func Connect(ctx context.Context, cfg Config, inbox Inbox) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if inbox == nil {
		return nil, errors.New("gossip: nil inbox")
	}
	t, err := newTransport(cfg, inbox)
	if err != nil {
		return nil, err
	}
	c := t.cfg
	// No buffering while disconnected (DialOptions): a message published
	// into a dead link is dropped and counted; anti-entropy repairs after
	// reconnect.
	auth := Auth{CredsFile: c.CredsFile, TLSCert: c.TLSCert, TLSKey: c.TLSKey, TLSCA: c.TLSCA}
	opts := append(DialOptions("holdfast-"+c.Cluster+"-"+c.Region, c.ReconnectWait, auth),
		nats.ReconnectJitter(c.ReconnectWait/4, c.ReconnectWait/2),
		nats.NoEcho(),
		nats.CustomInboxPrefix(c.inboxPrefix()),
		nats.PingInterval(c.PingInterval),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			t.m.disconnects.Inc()
			if err == nil {
				return // our own Close
			}
			t.log.Warn("disconnected from NATS; granting from the local slice only", "err", err)
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			// Only called when the first connection succeeded in the
			// background (RetryOnFailedConnect).
			t.log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
			t.resync()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			t.m.reconnects.Inc()
			t.log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
			t.resync()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			t.m.asyncErrs.Inc()
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			t.limit.warn(t.log, "nats-async", "asynchronous NATS error", "subject", subject, "err", err)
		}),
	)
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		t.unregister()
		return nil, fmt.Errorf("gossip: connect to %s: %w", c.URL, err)
	}
	t.nc = nc
	t.conn.Store(nc)
	for _, s := range []string{RowsWildcard(c.Cluster), DigestWildcard(c.Cluster),
		BorrowInbox(c.Cluster, c.Region), AdviceSubject(c.Cluster)} {
		// One channel for every peer subject: the connection's read loop
		// feeds it in arrival order, so rows, repair answers and borrow
		// answers reach the node in the order the server delivered them.
		sub, err := nc.ChanSubscribe(s, t.inCh)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("gossip: subscribe %s: %w", s, err)
		}
		t.subs = append(t.subs, sub)
	}
	hs, err := nc.Subscribe(HoldSubject(c.Cluster, c.Region), t.serveForward)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("gossip: subscribe %s: %w", HoldSubject(c.Cluster, c.Region), err)
	}
	_ = hs.SetPendingLimits(4*c.MaxForwardsInFlight, 4*c.MaxForwardsInFlight*MaxForwardBytes)
	t.subs = append(t.subs, hs)

	t.wg.Add(2)
	go t.publisher()
	go t.dispatcher()

	if nc.IsConnected() {
		fctx := ctx
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			fctx, cancel = context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
		}
		if err := nc.FlushWithContext(fctx); err != nil {
			t.log.Warn("NATS flush after subscribe failed; continuing", "err", err)
		}
	} else {
		t.log.Warn("NATS not reachable yet; retrying in the background", "url", c.URL)
	}
	return t, nil
}

// newTransport builds a Transport without a connection (tests drive handle
// and coalesce directly).
func newTransport(cfg Config, inbox Inbox) (*Transport, error) {
	c := cfg.withDefaults()
	t := &Transport{
		cfg:    c,
		log:    c.Logger.With("component", "gossip", "region", c.Region),
		inbox:  inbox,
		limit:  newLogLimiter(c.LogInterval),
		replay: newReplayFilter(4096),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		inCh:   make(chan *nats.Msg, c.InboundQueueLen),
		fwdSem: make(chan struct{}, c.MaxForwardsInFlight),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	keys, err := c.keyring()
	if err != nil {
		return nil, err
	}
	t.keys = keys
	t.nonces = newNonceCache(c.ForwardWindow, maxNoncesPerPeer)
	t.lim = newPeerLimits(c.RepairRate, c.RepairBurst, c.AnswerBytesRate, c.AnswerBytesBurst)
	t.member = c.membership()
	lag := newLagCollector(c.Region, c.PeerSeqs)
	t.m = newMetrics(c.Region, func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		return float64(len(t.queue))
	}, func() float64 {
		if t.Connected() {
			return 1
		}
		return 0
	}, lag)
	self := byte(escrow.WireVersion)
	if c.WireVersion != 0 {
		self = byte(c.WireVersion)
	}
	members := append([]string(nil), c.AllowPeers...)
	for m := range c.MemberKeys {
		if m != c.Region {
			members = append(members, m)
		}
	}
	t.ver = newWireVersions(self, members, t.m.peerWire)
	if c.Registerer != nil {
		for _, col := range t.m.collectors() {
			if err := c.Registerer.Register(col); err != nil {
				t.reg = c.Registerer
				t.unregister()
				return nil, fmt.Errorf("gossip: register metrics: %w", err)
			}
		}
		t.reg = c.Registerer
	}

	return t, nil
}

func (t *Transport) unregister() {
	if t.reg == nil {
		return
	}
	for _, col := range t.m.collectors() {
		t.reg.Unregister(col)
	}
}

// Connected reports whether the transport is connected to NATS now.
func (t *Transport) Connected() bool {
	nc := t.conn.Load()
	return nc != nil && nc.IsConnected()
}

// Region returns the region this transport speaks for.
func (t *Transport) Region() string { return t.cfg.Region }

// Close stops publishing and receiving. Queued messages are published if
// the connection is up (best effort); forwarded operations in progress are
// cancelled.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	close(t.done)
	t.cancel()
	for _, s := range t.subs {
		_ = s.Unsubscribe()
	}
	t.wg.Wait()
	t.fwdWG.Wait()
	if t.nc != nil {
		if t.nc.IsConnected() {
			_ = t.nc.FlushTimeout(time.Second)
		}
		t.nc.Close()
	}
	t.unregister()
	return nil
}
