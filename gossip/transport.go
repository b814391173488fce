package gossip

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
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

	// AllowPeers, when set, is the only regions whose messages are accepted
	// (advice from the rebalancer is always accepted).
	AllowPeers []string

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
	for _, p := range c.AllowPeers {
		if err := escrow.ValidRegion(p); err != nil {
			return fmt.Errorf("gossip: allow-list: %w", err)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("gossip: TLS certificate and key must be given together")
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
	allow  map[string]bool
	limit  *logLimiter
	replay *replayFilter
	reg    prometheus.Registerer

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

type outItem struct {
	msg     escrow.Message
	subject string // events: subject and payload; empty for messages
	data    []byte
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

// resync tells the inbox, if it wants to know, that messages may have been
// lost while the connection was down.
func (t *Transport) resync() {
	if rs, ok := t.inbox.(Resyncer); ok {
		rs.Resync()
	}
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
	if len(c.AllowPeers) > 0 {
		t.allow = make(map[string]bool, len(c.AllowPeers))
		for _, p := range c.AllowPeers {
			t.allow[p] = true
		}
	}
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

// Send hands messages to the publisher without blocking. Messages that do
// not fit the queue, or arrive while the connection is down, are dropped
// and counted: the escrow anti-entropy repairs the gap later.
func (t *Transport) Send(msgs []escrow.Message) {
	if len(msgs) == 0 {
		return
	}
	if !t.Connected() {
		t.m.dropped.WithLabelValues("disconnected").Add(float64(len(msgs)))
		return
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.m.dropped.WithLabelValues("closed").Add(float64(len(msgs)))
		return
	}
	room := t.cfg.SendQueueLen - len(t.queue)
	n := min(room, len(msgs))
	for i := 0; i < n; i++ {
		t.queue = append(t.queue, outItem{msg: msgs[i]})
	}
	t.mu.Unlock()
	if n < len(msgs) {
		t.m.dropped.WithLabelValues("queue_full").Add(float64(len(msgs) - n))
		t.limit.warn(t.log, "queue-full", "send queue full; dropping messages", "dropped", len(msgs)-n)
	}
	t.signal()
}

// HoldEvents publishes lifecycle events of holds of this region, without
// blocking (same queue and drop rules as Send).
func (t *Transport) HoldEvents(holds []escrow.Hold) {
	if len(holds) == 0 {
		return
	}
	if !t.Connected() {
		t.m.dropped.WithLabelValues("disconnected").Add(float64(len(holds)))
		return
	}
	subject := EventsSubject(t.cfg.Cluster, t.cfg.Region)
	items := make([]outItem, 0, len(holds))
	for i := range holds {
		ev, err := EventOf(&holds[i])
		if err == nil && ev.Region != t.cfg.Region {
			err = fmt.Errorf("hold %s is not owned by %s", holds[i].ID, t.cfg.Region)
		}
		var data []byte
		if err == nil {
			data, err = EncodeEvent(&ev)
		}
		if err != nil {
			t.m.dropped.WithLabelValues("encode").Inc()
			t.limit.warn(t.log, "event-encode", "cannot encode hold event", "err", err)
			continue
		}
		items = append(items, outItem{subject: subject, data: data})
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	room := t.cfg.SendQueueLen - len(t.queue)
	n := min(room, len(items))
	t.queue = append(t.queue, items[:n]...)
	t.mu.Unlock()
	if n < len(items) {
		t.m.dropped.WithLabelValues("queue_full").Add(float64(len(items) - n))
	}
	t.signal()
}

func (t *Transport) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// publisher drains the queue in batches, coalescing row deltas, until Close.
func (t *Transport) publisher() {
	defer t.wg.Done()
	var buf []byte
	for {
		closing := false
		select {
		case <-t.wake:
		case <-t.done:
			closing = true
		}
		t.mu.Lock()
		batch := t.queue
		t.queue = nil
		t.mu.Unlock()
		batch = t.coalesce(batch)
		for i := range batch {
			buf = t.publishItem(&batch[i], buf)
		}
		if closing {
			return
		}
	}
}

func (t *Transport) publishItem(it *outItem, buf []byte) []byte {
	if it.subject != "" {
		if err := t.nc.Publish(it.subject, it.data); err != nil {
			t.m.dropped.WithLabelValues("publish").Inc()
			return buf
		}
		t.m.events.Inc()
		return buf
	}
	return t.publishMsg(&it.msg, buf)
}

func (t *Transport) publishMsg(m *escrow.Message, buf []byte) []byte {
	if m.From != t.cfg.Region {
		t.m.dropped.WithLabelValues("encode").Inc()
		t.limit.warn(t.log, "foreign-from", "refusing to publish a message from another region", "from", m.From, "type", m.Type)
		return buf
	}
	subject, err := SubjectFor(t.cfg.Cluster, m)
	if err != nil {
		t.m.dropped.WithLabelValues("encode").Inc()
		t.limit.warn(t.log, "no-subject", "cannot route message", "err", err)
		return buf
	}
	buf, err = escrow.EncodeMessage(buf[:0], m)
	if err != nil {
		if m.Type == escrow.MsgRows && len(m.Rows) > 1 {
			// Too big for one message: publish it as a chain of parts.
			a, b := splitRows(m)
			buf = t.publishMsg(&a, buf)
			return t.publishMsg(&b, buf)
		}
		t.m.dropped.WithLabelValues("encode").Inc()
		t.limit.warn(t.log, "encode", "cannot encode message", "type", m.Type, "err", err)
		return buf
	}
	if err := t.nc.Publish(subject, buf); err != nil {
		t.m.dropped.WithLabelValues("publish").Inc()
		t.limit.warn(t.log, "publish", "publish failed; dropping", "subject", subject, "err", err)
		return buf
	}
	typ := msgLabel(m)
	t.m.msgsOut.WithLabelValues(typ).Inc()
	t.m.bytesOut.WithLabelValues(typ).Add(float64(len(buf)))
	t.m.msgSize.WithLabelValues("out").Observe(float64(len(buf)))
	if m.Type == escrow.MsgBorrowResp {
		t.m.borrowUnitsOut.Add(float64(m.Qty))
	}
	return buf
}

// msgLabel is the metrics label of a message: its type, with background
// borrow requests (low-water top-ups) apart from urgent ones.
func msgLabel(m *escrow.Message) string {
	if m.Type == escrow.MsgBorrowReq && !m.Urgent {
		return "topup"
	}
	return m.Type.String()
}

// splitRows cuts a rows message into two parts that form a chain (see
// escrow.Message.More): rows ordered by Seq, the first part marked More.
func splitRows(m *escrow.Message) (escrow.Message, escrow.Message) {
	rows := append([]escrow.Row(nil), m.Rows...)
	sort.Slice(rows, func(i, j int) bool { return rows[i].Seq < rows[j].Seq })
	k := len(rows) / 2
	a, b := *m, *m
	a.Rows, b.Rows = rows[:k], rows[k:]
	a.Seq, a.More = rows[k-1].Seq, true
	b.PrevSeq = a.Seq
	return a, b
}

// maxCoalesceRows bounds the rows of one coalesced message.
const maxCoalesceRows = 1024

// coalesce merges chains of broadcast row deltas (each one's PrevSeq is the
// previous one's Seq) into one message at the position of the first: every
// queued message is already durable, so publishing a later change earlier
// is safe, and a receiver sees one contiguous (PrevSeq, Seq] range.
func (t *Transport) coalesce(batch []outItem) []outItem {
	acc := -1
	var idx map[string]int // SKU -> position in batch[acc].msg.Rows
	w := 0
	for i := range batch {
		it := batch[i]
		m := &it.msg
		isDelta := it.subject == "" && m.Type == escrow.MsgRows && m.To == "" && !m.More
		if isDelta && acc >= 0 {
			a := &batch[acc].msg
			if a.Seq == m.PrevSeq && len(a.Rows)+len(m.Rows) <= maxCoalesceRows {
				if idx == nil {
					// First merge into this message: copy its rows, the
					// caller's slices are not ours to change.
					a.Rows = append(make([]escrow.Row, 0, len(a.Rows)+len(m.Rows)), a.Rows...)
					idx = make(map[string]int, len(a.Rows))
					for j := range a.Rows {
						idx[a.Rows[j].SKU] = j
					}
				}
				for _, r := range m.Rows {
					if j, ok := idx[r.SKU]; ok {
						if r.Seq > a.Rows[j].Seq {
							a.Rows[j] = r
						}
					} else {
						idx[r.SKU] = len(a.Rows)
						a.Rows = append(a.Rows, r)
					}
				}
				a.Seq = m.Seq
				t.m.coalesced.Inc()
				continue
			}
		}
		batch[w] = it
		if isDelta {
			acc, idx = w, nil
		}
		w++
	}
	clear(batch[w:])
	return batch[:w]
}

// dispatcher checks inbound peer messages and delivers them to the inbox.
func (t *Transport) dispatcher() {
	defer t.wg.Done()
	for {
		select {
		case <-t.done:
			return
		case msg := <-t.inCh:
			t.handle(msg.Subject, msg.Data, time.Now())
		}
	}
}

func decodeReason(err error) string {
	switch {
	case errors.Is(err, escrow.ErrWireVersion):
		return "version"
	case strings.Contains(err.Error(), "truncated"), strings.Contains(err.Error(), " left)"):
		// " left)": a length beyond the bytes that remain.
		return "truncated"
	case strings.Contains(err.Error(), "limit"):
		return "oversized"
	}
	return "corrupt"
}

// handle checks one inbound message and delivers it; it reports whether
// the message was delivered (for tests).
func (t *Transport) handle(subject string, data []byte, now time.Time) bool {
	if len(data) > escrow.MaxMessageBytes {
		t.m.decodeErrs.WithLabelValues("oversized").Inc()
		t.limit.warn(t.log, "decode-oversized", "dropping oversized message", "subject", subject, "bytes", len(data))
		return false
	}
	s, err := ParseSubject(subject)
	if err != nil || s.Cluster != t.cfg.Cluster {
		t.reject("subject", subject, fmt.Errorf("unexpected subject"))
		return false
	}
	m, err := escrow.DecodeMessage(data)
	if err != nil {
		reason := decodeReason(err)
		t.m.decodeErrs.WithLabelValues(reason).Inc()
		t.limit.warn(t.log, "decode-"+reason, "dropping undecodable message", "subject", subject, "bytes", len(data), "err", err)
		return false
	}
	if err := t.check(&s, &m); err != nil {
		reason := "subject"
		var re *rejection
		if errors.As(err, &re) {
			reason = re.reason
		}
		t.reject(reason, subject, err)
		return false
	}
	if replayable(&m) && t.replay.seen(subject, data) {
		t.reject("replay", subject, fmt.Errorf("%s message from %s seen before", m.Type, m.From))
		return false
	}
	typ := msgLabel(&m)
	t.m.msgsIn.WithLabelValues(typ).Inc()
	t.m.bytesIn.WithLabelValues(typ).Add(float64(len(data)))
	t.m.msgSize.WithLabelValues("in").Observe(float64(len(data)))
	if m.Type != escrow.MsgAdvice {
		t.m.lag.noteMessage(m.From, now)
	}
	switch m.Type {
	case escrow.MsgDigest:
		t.m.lag.noteDigest(m.From, m.Seq, now)
	case escrow.MsgRows:
		if !m.More {
			t.m.lag.noteRows(m.From, m.Seq)
		}
	case escrow.MsgBorrowResp:
		t.m.borrowUnitsIn.Add(float64(m.Qty))
	}
	t.inbox.Deliver(m)
	return true
}

type rejection struct {
	reason string
	err    error
}

func (r *rejection) Error() string { return r.err.Error() }

func rejectf(reason, format string, args ...any) error {
	return &rejection{reason: reason, err: fmt.Errorf(format, args...)}
}

// check enforces the subject rules: the region a subject names is the
// sender and the writer of every row; directed messages are for us.
func (t *Transport) check(s *Subject, m *escrow.Message) error {
	switch s.Kind {
	case KindRows:
		if m.Type != escrow.MsgRows || m.To != "" || m.From != s.Region {
			return rejectf("subject", "%s message from %q to %q on the rows subject of %s", m.Type, m.From, m.To, s.Region)
		}
	case KindDigest:
		if m.Type != escrow.MsgDigest || m.To != "" || m.From != s.Region {
			return rejectf("subject", "%s message from %q on the digest subject of %s", m.Type, m.From, s.Region)
		}
	case KindBorrow:
		switch m.Type {
		case escrow.MsgRows, escrow.MsgRepairReq, escrow.MsgBorrowReq, escrow.MsgBorrowResp:
		default:
			return rejectf("type", "%s message on a directed subject", m.Type)
		}
		if s.Region != t.cfg.Region || m.To != t.cfg.Region || m.From != s.From {
			return rejectf("subject", "%s message from %q to %q on the subject from %s to %s", m.Type, m.From, m.To, s.From, s.Region)
		}
	case KindAdvice:
		if m.Type != escrow.MsgAdvice || m.To != "" {
			return rejectf("type", "%s message on the advice subject", m.Type)
		}
		return nil // advice names rows of nobody; the node applies only moves from itself
	default:
		return rejectf("subject", "%s message on a %s subject", m.Type, s.Kind)
	}
	for i := range m.Rows {
		if m.Rows[i].Region != m.From {
			return rejectf("subject", "%s message from %s carries a row of %s", m.Type, m.From, m.Rows[i].Region)
		}
	}
	if m.From == t.cfg.Region {
		return rejectf("self", "%s message claims to come from this region", m.Type)
	}
	if t.allow != nil && !t.allow[m.From] {
		return rejectf("not_allowed", "region %s is not in the peer allow-list", m.From)
	}
	return nil
}

func (t *Transport) reject(reason, subject string, err error) {
	t.m.rejected.WithLabelValues(reason).Inc()
	t.limit.warn(t.log, "reject-"+reason, "dropping inbound message", "reason", reason, "subject", subject, "err", err)
}

// replayable reports whether an exact copy of m may be dropped. Digests and
// repair requests repeat legitimately (a repeated digest is how a node
// notices it is behind; a repair is re-asked after a timeout), and so may a
// repair answer (the same rows re-sent for a re-asked repair), so only
// broadcast row deltas and borrow traffic are filtered: an exact copy of
// those can change nothing the first copy did not.
func replayable(m *escrow.Message) bool {
	switch m.Type {
	case escrow.MsgRows:
		return m.To == ""
	case escrow.MsgBorrowReq, escrow.MsgBorrowResp:
		return true
	}
	return false
}

// replayFilter remembers hashes of the last n messages (subject and
// payload). A 64-bit collision only drops a message anti-entropy repairs.
type replayFilter struct {
	mu   sync.Mutex
	set  map[uint64]struct{}
	ring []uint64
	next int
}

func newReplayFilter(n int) *replayFilter {
	return &replayFilter{set: make(map[uint64]struct{}, n), ring: make([]uint64, 0, n)}
}

func (f *replayFilter) seen(subject string, data []byte) bool {
	h := fnv.New64a()
	_, _ = h.Write([]byte(subject))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write(data)
	k := h.Sum64()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.set[k]; ok {
		return true
	}
	if len(f.ring) < cap(f.ring) {
		f.ring = append(f.ring, k)
	} else {
		delete(f.set, f.ring[f.next])
		f.ring[f.next] = k
		f.next = (f.next + 1) % len(f.ring)
	}
	f.set[k] = struct{}{}
	return false
}

// logLimiter logs each kind of problem at most once per interval, with the
// number of occurrences suppressed since the last line.
type logLimiter struct {
	mu         sync.Mutex
	interval   time.Duration
	last       map[string]time.Time
	suppressed map[string]int
}

func newLogLimiter(interval time.Duration) *logLimiter {
	return &logLimiter{interval: interval, last: make(map[string]time.Time), suppressed: make(map[string]int)}
}

func (l *logLimiter) warn(log *slog.Logger, key, msg string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.interval {
		l.suppressed[key]++
		l.mu.Unlock()
		return
	}
	n := l.suppressed[key]
	l.last[key] = now
	l.suppressed[key] = 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}
