// Package region is the runtime of one holdfast region: it drives an
// escrow.Node from an apply loop with group commit into durable Storage,
// ticks it for expiry and borrow deadlines, and serves the HTTP API.
package region

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// OwnerUnreachableError is the ErrOwnerUnreachable of one forward: which
// region could not be reached, and why, in words a client can act on.
type OwnerUnreachableError struct {
	Owner string
	Why   string // "it has no responders (stopped, or cut off from NATS)", ...
	Err   error  // the transport's error, if any
}

func (e *OwnerUnreachableError) Error() string {
	return "region " + e.Owner + " cannot be reached now: " + e.Why
}

func (e *OwnerUnreachableError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrOwnerUnreachable}
	}
	return []error{ErrOwnerUnreachable, e.Err}
}

// unreachableWhy says in a few words why a forward failed.
func unreachableWhy(err error) string {
	switch {
	case errors.Is(err, ErrNoResponders):
		return "it has no responders (stopped, or cut off from NATS)"
	case errors.Is(err, ErrNotConnected):
		return "this region is not connected to NATS"
	case errors.Is(err, ErrRefused):
		return "it refused the request (busy or failing)"
	case errors.Is(err, ErrUnreachable):
		return "no answer within the forward timeout"
	default:
		return err.Error()
	}
}

// request is one command waiting for its durable reply. Requests are pooled:
// the caller puts one back only after it received the reply, never after it
// gave up waiting (the loop may still write to it).
type request struct {
	cmd   escrow.Command
	reply escrow.Reply
	err   error
	done  chan struct{} // capacity 1: the loop never blocks on it
	// unreachable: a region the caller just found gone (no responders),
	// stepped with cmd as escrow.Input.Unreachable.
	unreachable string
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

// batch is one Ready on its way through the committer.
type batch struct {
	rd       escrow.Ready
	reqs     []*request // reqs[i] waits for rd.Reply[i]; nil when nobody waits
	cmds     int        // inputs stepped into it
	answered int        // requests answered by it (non-nil reqs)
	err      error      // set by the committer when the write failed
	pc       *PendingCommit
	start    time.Time // of its write, for the fsync histogram and the linger
	final    bool      // synced; false: written ahead, durable with the next final batch
}

// Write-ahead: while the callers of the last fsync come back (the linger
// below), the stepper cuts what it has stepped into write-ahead batches of
// at least writeAheadMin inputs, which the committer writes to the WAL and
// memtable without fsync, on the other core, while the stepper steps the
// next callers. The final batch of the cohort is synced, which makes every
// batch written before it durable; only then are the write-ahead batches
// answered. So each fsync still carries about all concurrent callers, and
// most of the store's CPU work overlaps the stepping.
const (
	writeAheadMin = 48
	maxInflight   = 16 // batches cut and not yet answered (bounds write-ahead)
)

// asyncStorage is a Storage that can write a batch without waiting for its
// fsync (Store); others are written with Apply, one at a time.
type asyncStorage interface {
	ApplyNoWait(p *escrow.Persist) (*PendingCommit, error)
	WriteAhead(p *escrow.Persist) (*PendingCommit, error)
}

var batchPool = sync.Pool{New: func() any { return &batch{} }}

type inspectReq struct {
	f    func(n *escrow.Node)
	err  error
	done chan struct{}
}

type transportBox struct{ t Transport }

type storageBox struct{ s Storage }

func (r *Region) currentStorage() Storage {
	if b := r.storeView.Load(); b != nil {
		return b.s
	}
	return nil
}

// Region is one running region node.
type Region struct {
	cfg  Config
	name string
	log  *slog.Logger

	storage  Storage // replaced by the stepper during recovery, read by the committer after a handoff
	ownStore bool    // opened from DataDir by Open: reopened on failure

	storeView atomic.Pointer[storageBox] // for metric scrapes; nil while the store is reopened
	tr        atomic.Pointer[transportBox]
	metrics   *metrics

	queue     chan *request
	msgs      chan escrow.Message
	inspect   chan *inspectReq
	commitCh  chan *batch   // stepper → committer: at most one batch being written
	appliedCh chan struct{} // committer → stepper: the batch is written, cut the next one
	syncCh    chan *batch   // committer → syncer: written batches waiting for their fsync, in order
	doneCh    chan *batch   // syncer → stepper: durable (or failed) and answered

	stop       chan struct{} // closed by Close
	loopDone   chan struct{} // closed when the stepper exits
	commitDone chan struct{} // closed when the committer exits
	closed     atomic.Bool
	ready      atomic.Bool
	fatal      chan struct{} // closed when the region cannot continue (see Fatal)
	fatalErr   atomic.Pointer[error]
	closeOnce  sync.Once
	closeErr   error

	// Owned by the stepper goroutine.
	node    *escrow.Node
	pending map[uint64]*request
	nextReq uint64

	statsMu sync.Mutex
	stats   escrow.Stats
	homes   atomic.Int64 // homes in force at the node, as of the last tick
	// resync: the transport reconnected; the next tick tells the node
	// (escrow.Input.Resync).
	resync atomic.Bool

	aheadWritten bool // owned by the committer: a write-ahead batch awaits a final one

	// Committer totals, for benchmarks and logs.
	commits    atomic.Int64
	commitCmds atomic.Int64
	applyNanos atomic.Int64
	applyEWMA  atomic.Int64 // recent Apply duration in ns, for the linger

	fence regionFence // see fence.go

	// deadlineTick is closed and replaced every deadlineTickEvery, so that
	// callers of DoWithin notice their deadline without a timer each.
	deadlineTick atomic.Pointer[chan struct{}]
}

// deadlineTickEvery is the granularity of DoWithin's timeout.
const deadlineTickEvery = 25 * time.Millisecond

func (r *Region) deadlineClock() {
	t := time.NewTicker(deadlineTickEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ch := make(chan struct{})
			close(*r.deadlineTick.Swap(&ch))
		case <-r.loopDone:
			return
		}
	}
}

// Open opens the region's storage, restores the node from it and starts the
// apply loop. A store that cannot be loaded (corrupt, or an invariant of
// the stored state broken) is refused with an error saying why.
func Open(ctx context.Context, cfg Config) (*Region, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &Region{
		cfg:        cfg,
		name:       cfg.Name,
		log:        cfg.Logger.With("region", cfg.Name),
		queue:      make(chan *request, cfg.QueueLen),
		msgs:       make(chan escrow.Message, cfg.MsgQueueLen),
		inspect:    make(chan *inspectReq),
		commitCh:   make(chan *batch, 1),
		appliedCh:  make(chan struct{}, maxInflight),
		syncCh:     make(chan *batch, maxInflight),
		doneCh:     make(chan *batch, maxInflight),
		stop:       make(chan struct{}),
		loopDone:   make(chan struct{}),
		commitDone: make(chan struct{}),
		fatal:      make(chan struct{}),
		pending:    make(map[uint64]*request, 1024),
	}
	r.storage = cfg.Storage
	if r.storage == nil {
		st, err := openStore(cfg)
		if err != nil {
			return nil, fmt.Errorf("region %s: open store in %s: %w", cfg.Name, cfg.DataDir, err)
		}
		r.storage, r.ownStore = st, true
	}
	node, err := r.loadNode()
	if err != nil {
		r.storage.Close()
		return nil, fmt.Errorf("region %s: refusing to start: %w", cfg.Name, err)
	}
	r.node = node
	r.storeView.Store(&storageBox{s: r.storage})
	r.stats = node.Stats()
	r.metrics = newMetrics(r)
	r.metrics.reg.MustRegister(r.fenceCollectors()...)
	r.ready.Store(true)
	// Log before the loop owns the node.
	r.log.Info("region open", "seq", node.Seq(), "active_holds", r.stats.ActiveHolds, "skus", len(node.SKUs()))
	tick := make(chan struct{})
	r.deadlineTick.Store(&tick)
	go r.syncLoop()
	go r.commitLoop()
	go r.stepLoop()
	go r.deadlineClock()
	return r, nil
}

func (r *Region) loadNode() (*escrow.Node, error) {
	st, err := r.storage.Load()
	if err != nil {
		return nil, fmt.Errorf("load stored state: %w", err)
	}
	n, err := escrow.NewNode(r.cfg.Escrow, st)
	if err != nil {
		return nil, fmt.Errorf("restore node from stored state: %w", err)
	}
	r.fenceNode(n)
	return n, nil
}

// Name returns the region's name.
func (r *Region) Name() string { return r.name }

// Registry returns the region's own Prometheus registry (one per Region, so
// that several regions can live in one process).
func (r *Region) Registry() *prometheus.Registry { return r.metrics.reg }

// Ready reports whether the region accepts requests (false while it
// rebuilds its state after a storage failure, and after Close).
func (r *Region) Ready() bool { return r.ready.Load() && !r.closed.Load() }

// AttachTransport connects the region to its peers. Call it once, before
// serving; nil leaves the region on its own.
func (r *Region) AttachTransport(t Transport) {
	if t == nil {
		r.tr.Store(nil)
		return
	}
	r.tr.Store(&transportBox{t: t})
}

func (r *Region) transport() Transport {
	if b := r.tr.Load(); b != nil {
		return b.t
	}
	return nil
}

// Do runs a command through the apply loop and waits for its durable reply.
// The runtime assigns cmd.ReqID. A hold command on a hold of another region
// is forwarded to its owner; a hold the node routes to the home of a scarce
// SKU is sent there (or run here when the home cannot be reached). The
// error is a runtime failure (ErrOverloaded, ErrStorage, ErrClosed,
// ErrOwnerUnreachable, ctx errors); the command's own outcome, success or
// escrow error, is in the Reply.
func (r *Region) Do(ctx context.Context, cmd escrow.Command) (escrow.Reply, error) {
	return r.DoWithin(ctx, cmd, 0)
}

// DoWithin is Do with a timeout (0: none) that costs no timer or context
// per call: a caller still waiting after it gets context.DeadlineExceeded
// (within deadlineTickEvery), as with a context deadline. The HTTP API
// uses it with Config.RequestTimeout. A forward to another region runs
// within what is left of the same timeout.
func (r *Region) DoWithin(ctx context.Context, cmd escrow.Command, timeout time.Duration) (escrow.Reply, error) {
	if r.foreignOwner(&cmd) == "" {
		timeout = r.awaitProbation(ctx, cmd.Kind, timeout)
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	if owner := r.foreignOwner(&cmd); owner != "" {
		return r.forwardBy(ctx, owner, cmd, deadline)
	}
	rep, err := r.submit(ctx, &cmd, deadline)
	if err != nil || rep.Err == nil {
		return rep, err
	}
	switch {
	case rep.Err.Code == escrow.CodeNotOwner && rep.Err.Owner != "" && rep.Err.Owner != r.name:
		return r.forwardBy(ctx, rep.Err.Owner, cmd, deadline)
	case rep.Err.Code == escrow.CodeRouted:
		return r.route(ctx, cmd, rep.Err.Owner, deadline)
	}
	return rep, nil
}

// forwardBy forwards cmd to owner, giving up at deadline (zero: none).
func (r *Region) forwardBy(ctx context.Context, owner string, cmd escrow.Command, deadline time.Time) (escrow.Reply, error) {
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	return r.forward(ctx, owner, cmd)
}

// route serves a hold the node answered with CodeRouted: it sends the same
// command, marked Routed, to the home the node named, and the home's reply
// is the caller's. When the home cannot be reached (no transport, no
// responders, its timeout, a failure at the home) the hold runs here with
// Routed set, so the node serves it from its own slice or borrows as plain
// escrow: routing never costs the client an error. When the home has no
// responders at all, the node is told (escrow.Input.Unreachable) and stops
// routing there until it hears from the home again. A home that received
// the hold but answered too late may still grant it; that hold lapses at
// its TTL unconfirmed (units unavailable meanwhile, never oversold).
//
// The reply of route is never CodeRouted: a node does not route a Routed
// hold, and a routed answer from the home is refused by the forward codec;
// should one come anyway it is turned into CodeInvariant and counted.
func (r *Region) route(ctx context.Context, cmd escrow.Command, home string, deadline time.Time) (escrow.Reply, error) {
	cmd.Routed = true
	gone := ""
	if cmd.Kind == escrow.CmdHold && home != "" && home != r.name && r.transport() != nil {
		rep, err := r.forwardBy(ctx, home, cmd, deadline)
		if err == nil && rep.Err != nil && rep.Err.Code == escrow.CodeFenced {
			// A fenced home sells nothing and refused the hold before
			// changing anything (see fence.go): serve it here.
			err = fmt.Errorf("%w: home %s is fenced", ErrRefused, home)
		}
		if err == nil && !isRouted(&rep) {
			r.metrics.routed[routedOK].Inc()
			return rep, nil
		}
		if ctx.Err() != nil {
			return escrow.Reply{}, ctx.Err()
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return escrow.Reply{}, context.DeadlineExceeded
		}
		if err == nil {
			err = errors.New("the home answered routed")
			r.metrics.routed[routedBug].Inc()
		} else if !notApplied(err) {
			// A timeout: the home may have granted the hold and its answer
			// been lost. Running it here too could give this shopper a
			// second hold, so the client gets 503 and retries; the node
			// sends the retry (same idempotency key) to the same home,
			// which replays it, and stops routing there once the home has
			// been silent for peer_silence.
			r.metrics.routed[routedUnreachable].Inc()
			return escrow.Reply{}, err // wraps ErrOwnerUnreachable: 503 with Retry-After
		}
		if errors.Is(err, ErrNoResponders) {
			// The home is not there: the node stops routing to it (and
			// sending it units) until it is heard from again, so the next
			// shoppers do not each pay a failed forward.
			gone = home
		}
		r.log.Debug("routed hold runs here: its home cannot serve it", "home", home, "err", err)
	}
	r.metrics.routed[routedFallback].Inc()
	rep, err := r.submitNoting(ctx, &cmd, gone, deadline)
	if err == nil && isRouted(&rep) {
		r.metrics.routed[routedBug].Inc()
		r.log.Error("the node routed a hold marked routed", "home", rep.Err.Owner)
		rep = escrow.Reply{Kind: rep.Kind, Err: &escrow.Error{Code: escrow.CodeInvariant,
			Detail: "a routed hold was routed again (region " + rep.Err.Owner + ")"}}
	}
	return rep, err
}

// notApplied reports whether a forward error proves that the target did
// not apply the command: nobody serves its subject, this region is not
// connected, or the target answered that it could not run it.
func notApplied(err error) bool {
	return errors.Is(err, ErrNoResponders) || errors.Is(err, ErrNotConnected) || errors.Is(err, ErrRefused)
}

func isRouted(rep *escrow.Reply) bool { return rep.Err != nil && rep.Err.Code == escrow.CodeRouted }

// Execute runs a command forwarded by another region: an operation on a
// hold of this region, or a hold routed here (cmd.Routed) as the home of a
// scarce SKU. It never forwards again, so that two regions cannot bounce a
// command between them (a node does not route a Routed hold).
func (r *Region) Execute(ctx context.Context, cmd escrow.Command) (escrow.Reply, error) {
	switch cmd.Kind {
	case escrow.CmdGet, escrow.CmdConfirm, escrow.CmdRelease, escrow.CmdExtend:
	case escrow.CmdHold:
		if !cmd.Routed {
			return escrow.Reply{Kind: cmd.Kind, Err: &escrow.Error{Code: escrow.CodeInvalid,
				Detail: "a hold is forwarded only when routed to the home of a scarce SKU"}}, nil
		}
	default:
		return escrow.Reply{Kind: cmd.Kind, Err: &escrow.Error{Code: escrow.CodeInvalid,
			Detail: "only get, confirm, release, extend and routed holds may be forwarded, not " + cmd.Kind.String()}}, nil
	}
	if r.closed.Load() {
		return escrow.Reply{}, fmt.Errorf("%w: %w", ErrNotRun, ErrClosed)
	}
	rep, err := r.submit(ctx, &cmd, time.Time{})
	if errors.Is(err, ErrOverloaded) {
		// Not queued: the caller may run a routed hold where it came in.
		// Other errors (storage, timeout, closing with it queued) leave
		// open whether it was applied.
		err = fmt.Errorf("%w: %w", ErrNotRun, err)
	}
	if err == nil && isRouted(&rep) {
		r.metrics.routed[routedBug].Inc()
		rep = escrow.Reply{Kind: rep.Kind, Err: &escrow.Error{Code: escrow.CodeInvariant,
			Detail: "a routed hold was routed again (region " + rep.Err.Owner + ")"}}
	}
	return rep, err
}

func (r *Region) foreignOwner(cmd *escrow.Command) string {
	switch cmd.Kind {
	case escrow.CmdGet, escrow.CmdConfirm, escrow.CmdRelease, escrow.CmdExtend:
		if owner, err := escrow.OwnerOf(cmd.HoldID); err == nil && owner != r.name {
			return owner
		}
	}
	return ""
}

func (r *Region) forward(ctx context.Context, owner string, cmd escrow.Command) (escrow.Reply, error) {
	t := r.transport()
	if t == nil {
		r.metrics.forwards.WithLabelValues("unreachable").Inc()
		return escrow.Reply{}, &OwnerUnreachableError{Owner: owner, Why: "this region has no peers"}
	}
	cmd.ReqID = 0
	rep, err := t.Forward(ctx, owner, cmd)
	if err != nil {
		if ctx.Err() != nil {
			return escrow.Reply{}, ctx.Err()
		}
		r.metrics.forwards.WithLabelValues("unreachable").Inc()
		// Every Forward failure is an unreachable owner: the client
		// retries later. The cause stays wrapped (ErrNoResponders).
		return escrow.Reply{}, &OwnerUnreachableError{Owner: owner, Why: unreachableWhy(err), Err: err}
	}
	r.metrics.forwards.WithLabelValues("ok").Inc()
	return rep, nil
}

func (r *Region) submit(ctx context.Context, cmd *escrow.Command, deadline time.Time) (escrow.Reply, error) {
	return r.submitNoting(ctx, cmd, "", deadline)
}

// submitNoting is submit that also tells the node that region unreachable
// was just found gone (escrow.Input.Unreachable; "" for none).
func (r *Region) submitNoting(ctx context.Context, cmd *escrow.Command, unreachable string, deadline time.Time) (escrow.Reply, error) {
	if r.closed.Load() {
		return escrow.Reply{}, ErrClosed
	}
	if !r.ready.Load() {
		return escrow.Reply{}, fmt.Errorf("%w: rebuilding state from storage", ErrStorage)
	}
	if err := ctx.Err(); err != nil {
		return escrow.Reply{}, err
	}
	start := time.Now()
	req := requestPool.Get().(*request)
	req.cmd = *cmd
	req.unreachable = unreachable
	select {
	case r.queue <- req:
	default:
		req.cmd, req.unreachable = escrow.Command{}, ""
		requestPool.Put(req)
		r.metrics.overloaded.Inc()
		return escrow.Reply{}, ErrOverloaded
	}
wait:
	for {
		var tick <-chan struct{}
		if !deadline.IsZero() {
			tick = *r.deadlineTick.Load()
		}
		select {
		case <-req.done:
			break wait
		case <-ctx.Done():
			return escrow.Reply{}, ctx.Err() // req is abandoned to the loop
		case <-tick:
			if !time.Now().Before(deadline) {
				return escrow.Reply{}, context.DeadlineExceeded // req is abandoned to the loop
			}
		case <-r.loopDone:
			select {
			case <-req.done:
				break wait
			default:
				return escrow.Reply{}, ErrClosed
			}
		}
	}
	rep, err := req.reply, req.err
	req.cmd, req.reply, req.err, req.unreachable = escrow.Command{}, escrow.Reply{}, nil, ""
	requestPool.Put(req)
	if cmd.Kind == escrow.CmdHold {
		r.metrics.holdLatency.Observe(time.Since(start).Seconds())
	}
	return rep, err
}

// Deliver enqueues a peer message for the apply loop. It never blocks: when
// the queue is full the message is dropped (anti-entropy repairs) and counted.
func (r *Region) Deliver(m escrow.Message) {
	if r.closed.Load() {
		return
	}
	select {
	case r.msgs <- m:
	default:
		r.metrics.msgsDropped.Inc()
	}
}

// Resync tells the region that its transport has just reconnected, so
// messages were lost both ways: on its next tick the node asks every peer
// for the rows it missed and sends an urgent digest (escrow.Input.Resync),
// instead of waiting for two digests to show the gap.
func (r *Region) Resync() { r.resync.Store(true) }

// Inspect runs f on the apply loop goroutine, between two inputs. f may read
// the node (which may hold changes not yet durable) and must not change it.
func (r *Region) Inspect(ctx context.Context, f func(n *escrow.Node)) error {
	q := &inspectReq{f: f, done: make(chan struct{})}
	select {
	case r.inspect <- q:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.loopDone:
		return ErrClosed
	}
	select {
	case <-q.done:
		return q.err
	case <-r.loopDone:
		select {
		case <-q.done:
			return q.err
		default:
			return ErrClosed
		}
	}
}

// Fatal is closed when the region cannot continue in this process (Pebble
// panicked during a commit and its DB cannot be reopened): the process
// should exit and be restarted. FatalErr says why.
func (r *Region) Fatal() <-chan struct{} { return r.fatal }

// FatalErr returns the reason Fatal was closed, or nil.
func (r *Region) FatalErr() error {
	if p := r.fatalErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (r *Region) setFatal(err error) {
	if r.fatalErr.CompareAndSwap(nil, &err) {
		r.log.Error("region cannot continue in this process: restart it", "err", err)
		close(r.fatal)
	}
}

// Stats returns the node's counters as of the last batch.
func (r *Region) Stats() escrow.Stats {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	return r.stats
}

// Close stops accepting requests, drains the queue, waits for the last
// batch to be durable, and closes the storage. It is safe to call twice.
func (r *Region) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		close(r.stop)
		<-r.loopDone
		<-r.commitDone
		r.ready.Store(false)
		r.storeView.Store(nil)
		if r.storage != nil {
			if err := r.storage.Close(); err != nil {
				r.closeErr = fmt.Errorf("region %s: close storage: %w", r.name, err)
			}
		}
		r.log.Info("region closed")
	})
	return r.closeErr
}

// stepLoop is the first stage of the apply loop: it steps inputs into the
// node and cuts a Ready whenever the committer is idle, so that the inputs
// that arrive while one batch is being written share the next one. Written
// batches wait for their fsync in the syncer while the next ones are cut
// and written (pebble groups their fsyncs); at most maxInflight batches are
// between cut and done.
func (r *Region) stepLoop() {
	defer close(r.loopDone)
	ticker := time.NewTicker(r.cfg.TickInterval)
	defer ticker.Stop()
	inflight := 0    // batches cut and not yet back on doneCh
	applying := 0    // batches cut and not yet reported written on appliedCh
	syncing := false // a final (synced) batch is in flight
	stepped := 0     // inputs stepped since the last cut
	cohort := 0      // inputs stepped since the last final cut
	ahead := 0       // write-ahead batches cut since the last final cut
	answered := 0    // requests answered by the batches done since the last final one
	failing := false // a batch failed: wait for the others, then rebuild
	// Linger: when a final batch completes, its callers usually come back
	// at once with their next request. Waiting for them a little (until as
	// many inputs as the batch answered are stepped, at most half a recent
	// write time) merges the two cohorts that a plain "cut when the
	// committer is idle" pipeline settles into, so each fsync carries about
	// all concurrent callers instead of half of them. A lone caller is
	// never delayed: its batch is cut as soon as it is back.
	target := 0
	var lingerUntil time.Time
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	var lingerC <-chan time.Time
	for {
		if r.node == nil {
			if !r.recover(ticker) {
				r.shutdown(0, 0, false, false)
				return
			}
			stepped, cohort, ahead, answered, target = 0, 0, 0, 0, 0
		}
		if failing && inflight == 0 && applying == 0 {
			failing, syncing = false, false
			r.failNode(ErrStorage)
			continue
		}
		if applying == 0 && !failing {
			if !syncing && (ahead > 0 || r.node.HasReady()) {
				if cohort >= target || stepped >= r.cfg.MaxBatch || !time.Now().Before(lingerUntil) {
					r.cut(stepped, true)
					inflight++
					applying++
					syncing = true
					stepped, cohort, ahead = 0, 0, 0
					lingerC = nil
				} else if lingerC == nil {
					linger.Reset(time.Until(lingerUntil))
					lingerC = linger.C
				}
			}
			if applying == 0 && stepped >= writeAheadMin && inflight < maxInflight-1 && r.writeAhead() && r.node.HasReady() {
				r.cut(stepped, false)
				inflight++
				applying++
				ahead++
				stepped = 0
			}
		}
		queue := r.queue
		if stepped >= r.cfg.MaxBatch || failing {
			queue = nil // back-pressure: the queue fills up and callers get ErrOverloaded
		}
		select {
		case req := <-queue:
			now := time.Now()
			n := stepped
			r.stepRequest(req, now)
			stepped++
		drain:
			for stepped < r.cfg.MaxBatch {
				select {
				case req = <-r.queue:
					r.stepRequest(req, now)
					stepped++
				default:
					break drain
				}
			}
			cohort += stepped - n
		case m := <-r.msgs:
			r.stepMessage(&m, time.Now())
			stepped++
			cohort++
		case <-r.appliedCh:
			applying--
		case b := <-r.doneCh:
			inflight--
			r.node.Advance()
			if b.err != nil {
				failing = true
			}
			answered += b.answered
			if b.final {
				syncing = false
				target, lingerUntil = cohort+answered, time.Time{}
				answered = 0
				if d := r.lingerFor(); d > 0 {
					lingerUntil = time.Now().Add(d)
				}
			}
			r.recycle(b)
		case <-lingerC:
			lingerC = nil
		case <-ticker.C:
			r.node.Step(escrow.Input{Now: time.Now(), Resync: r.resync.Swap(false)})
			// Homes change with advice and lapse with time: once a tick
			// is often enough for a gauge, and keeps the copy off the
			// per-batch path.
			r.homes.Store(int64(r.node.HomesInForce()))
			r.syncFence(r.node)
		case q := <-r.inspect:
			q.f(r.node)
			close(q.done)
		case <-r.stop:
			r.shutdown(inflight, applying, ahead == 0, failing)
			return
		}
	}
}

// writeAhead reports whether the storage can write batches without fsync.
func (r *Region) writeAhead() bool {
	_, ok := r.storage.(asyncStorage)
	return ok
}

// lingerFor is how long the stepper may wait for returning callers before
// it cuts the next batch: half a recent write, at most Config.MaxLinger.
func (r *Region) lingerFor() time.Duration {
	if r.cfg.MaxLinger < 0 {
		return 0
	}
	return min(time.Duration(r.applyEWMA.Load())/2, r.cfg.MaxLinger)
}

func (r *Region) stepRequest(req *request, now time.Time) {
	r.nextReq++
	req.cmd.ReqID = r.nextReq
	r.pending[r.nextReq] = req
	r.node.Step(escrow.Input{Now: now, Cmd: &req.cmd, Unreachable: req.unreachable})
}

func (r *Region) stepMessage(m *escrow.Message, now time.Time) {
	if err := r.node.Step(escrow.Input{Now: now, Msg: m}); err != nil {
		r.metrics.msgsRejected.Inc()
		r.log.Debug("peer message rejected", "type", m.Type.String(), "from", m.From, "err", err)
	}
}

// cut takes the node's Ready and hands it to the committer, with the
// requests waiting for its replies.
func (r *Region) cut(stepped int, final bool) {
	b := batchPool.Get().(*batch)
	b.rd = r.node.Ready()
	b.cmds = stepped
	b.final = final
	if cap(b.reqs) < len(b.rd.Reply) {
		b.reqs = make([]*request, len(b.rd.Reply), len(b.rd.Reply)+len(b.rd.Reply)/2)
	} else {
		b.reqs = b.reqs[:len(b.rd.Reply)]
	}
	b.answered = 0
	for i := range b.rd.Reply {
		id := b.rd.Reply[i].ReqID
		if req, ok := r.pending[id]; ok {
			delete(r.pending, id)
			b.reqs[i] = req
			b.answered++
		} else {
			b.reqs[i] = nil
		}
	}
	st := r.node.Stats()
	r.statsMu.Lock()
	r.stats = st
	r.statsMu.Unlock()
	r.commitCh <- b // the committer is idle (applying == 0), except in shutdown
}

func (r *Region) recycle(b *batch) {
	clear(b.reqs)
	b.reqs = b.reqs[:0]
	b.rd = escrow.Ready{}
	b.err = nil
	b.pc = nil
	b.start = time.Time{}
	b.final = false
	b.cmds = 0
	batchPool.Put(b)
}

// commitLoop is the second stage: it writes one batch with one Storage
// write (not waiting for its fsync when the storage allows it), tells the
// stepper that it may cut the next one, and passes it on to the syncer.
func (r *Region) commitLoop() {
	defer close(r.syncCh)
	for b := range r.commitCh {
		r.write(b)
		r.appliedCh <- struct{}{} // never blocks: at most maxInflight batches are cut
		r.syncCh <- b             // never blocks: at most maxInflight batches are cut
	}
}

// syncLoop is the third stage: in the order the batches were written, it
// waits until each final batch is durable, then sends the messages and
// delivers the replies of the write-ahead batches before it and of itself,
// and hands them back to the stepper. A failure fails every batch held.
func (r *Region) syncLoop() {
	defer close(r.commitDone)
	var held []*batch // write-ahead batches waiting for the next final one
	for b := range r.syncCh {
		err := r.wait(b)
		if err == nil && !b.final {
			held = append(held, b)
			continue
		}
		for _, h := range held {
			r.deliver(h, err)
			r.doneCh <- h // never blocks: at most maxInflight batches are cut
		}
		clear(held)
		held = held[:0]
		r.deliver(b, err)
		r.doneCh <- b
	}
	for _, h := range held { // closing without a final batch: nothing was acknowledged
		r.deliver(h, ErrClosed)
		r.doneCh <- h
	}
}

func (r *Region) write(b *batch) {
	r.metrics.batchSize.Observe(float64(b.cmds))
	if b.rd.Persist.Empty() && (!b.final || !r.aheadWritten) {
		return // (a final batch after write-ahead ones syncs them, even when empty)
	}
	b.start = time.Now()
	switch as, ok := r.storage.(asyncStorage); {
	case ok && b.final:
		b.pc, b.err = as.ApplyNoWait(&b.rd.Persist)
		r.aheadWritten = false
	case ok:
		b.pc, b.err = as.WriteAhead(&b.rd.Persist)
		r.aheadWritten = true
	default:
		b.err = r.storage.Apply(&b.rd.Persist)
	}
}

// wait waits for b's write (and, for a final batch, its fsync).
func (r *Region) wait(b *batch) error {
	err := b.err
	if b.pc != nil {
		err = b.pc.Wait()
		b.pc = nil
	}
	if b.start.IsZero() || !b.final {
		return err
	}
	d := time.Since(b.start)
	r.metrics.fsync.Observe(d.Seconds())
	r.applyNanos.Add(int64(d))
	if e := r.applyEWMA.Load(); e == 0 {
		r.applyEWMA.Store(int64(d))
	} else {
		r.applyEWMA.Store(e - e/8 + int64(d)/8)
	}
	r.commits.Add(1)
	return err
}

// deliver answers b's requests: with err when its batch (or one before
// it) failed, else with its replies, after sending its messages.
func (r *Region) deliver(b *batch, err error) {
	m := r.metrics
	r.commitCmds.Add(int64(b.cmds))
	if err != nil {
		m.storageErrors.Inc()
		r.log.Error("commit failed: failing its requests and rebuilding from storage", "err", err,
			"requests", len(b.reqs))
		b.err = err
		r.ready.Store(false) // before any reply: a caller that saw the failure sees not-ready
		werr := fmt.Errorf("%w: %v", ErrStorage, err)
		if errors.Is(err, ErrClosed) {
			werr = err
		}
		for _, req := range b.reqs {
			if req != nil {
				req.err = werr
				req.done <- struct{}{}
			}
		}
		m.countHolds(b.rd.Reply, true)
		return
	}
	if t := r.transport(); t != nil {
		if len(b.rd.Send) > 0 {
			t.Send(b.rd.Send)
		}
		if len(b.rd.Persist.Holds) > 0 {
			t.HoldEvents(b.rd.Persist.Holds)
		}
	}
	m.countHolds(b.rd.Reply, false)
	for i, req := range b.reqs {
		if req != nil {
			req.reply = b.rd.Reply[i]
			req.done <- struct{}{}
		}
	}
}

// failNode discards the node after a failed write: it has changes that were
// never persisted, so rebuilding it from storage is exactly a crash restart.
// Every request still waiting on it fails with err.
func (r *Region) failNode(err error) {
	r.ready.Store(false)
	for id, req := range r.pending {
		req.err = err
		req.done <- struct{}{}
		delete(r.pending, id)
	}
	r.node = nil
}

// recover reopens the storage and rebuilds the node, with backoff, while
// failing new requests fast. It returns false when the region is closing.
func (r *Region) recover(ticker *time.Ticker) bool {
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := r.reload()
		if err == nil {
			r.log.Warn("recovered from storage failure", "attempt", attempt, "seq", r.node.Seq())
			r.ready.Store(true)
			return true
		}
		r.log.Error("rebuilding state from storage failed", "attempt", attempt, "err", err, "retry_in", backoff)
		timer := time.NewTimer(backoff)
	wait:
		for {
			select {
			case req := <-r.queue:
				req.err = fmt.Errorf("%w: rebuilding state from storage", ErrStorage)
				req.done <- struct{}{}
			case <-r.msgs: // dropped: anti-entropy repairs after recovery
				r.metrics.msgsDropped.Inc()
			case q := <-r.inspect:
				q.err = fmt.Errorf("%w: rebuilding state from storage", ErrStorage)
				close(q.done)
			case <-ticker.C:
			case <-timer.C:
				break wait
			case <-r.stop:
				timer.Stop()
				return false
			}
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (r *Region) reload() error {
	if ro, ok := r.storage.(reopener); ok {
		if err := ro.Reopen(); err != nil {
			if errors.Is(err, ErrStoreWedged) {
				r.setFatal(err)
			}
			return fmt.Errorf("reopen store: %w", err)
		}
	} else if r.ownStore {
		r.storeView.Store(nil)
		if r.storage != nil {
			if err := r.storage.Close(); err != nil {
				r.log.Warn("closing failed store", "err", err)
			}
			r.storage = nil
		}
		st, err := openStore(r.cfg)
		if err != nil {
			return fmt.Errorf("reopen store: %w", err)
		}
		r.storage = st
		r.storeView.Store(&storageBox{s: st})
	}
	n, err := r.loadNode()
	if err != nil {
		return err
	}
	r.node = n
	return nil
}

// shutdown drains the queue into the node, commits what is left and stops
// the committer. Requests that wait on a borrow fail with ErrClosed.
func (r *Region) shutdown(inflight, applying int, finalCut, failed bool) {
	defer close(r.commitCh)
	if r.node != nil && !failed && !finalCut {
		// Write-ahead batches are answered with the next final batch.
		r.cut(0, true)
		inflight++
		applying++
	}
	for r.node != nil {
		for ; inflight > 0; inflight-- {
			b := <-r.doneCh
			r.node.Advance()
			failed = failed || b.err != nil
			r.recycle(b)
		}
		for ; applying > 0; applying-- {
			<-r.appliedCh
		}
		if failed {
			r.failNode(ErrStorage)
			break
		}
		stepped := 0
		now := time.Now()
	drain:
		for {
			select {
			case req := <-r.queue:
				r.stepRequest(req, now)
				stepped++
			default:
				break drain
			}
		}
		if !r.node.HasReady() {
			break
		}
		r.cut(stepped, true)
		inflight, applying = 1, 1
	}
	for {
		select {
		case req := <-r.queue:
			req.err = ErrClosed
			req.done <- struct{}{}
		default:
			for id, req := range r.pending {
				req.err = ErrClosed
				req.done <- struct{}{}
				delete(r.pending, id)
			}
			return
		}
	}
}
