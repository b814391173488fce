// Package region is the runtime of one holdfast region: it drives an
// escrow.Node from an apply loop with group commit into durable Storage,
// ticks it for expiry and borrow deadlines, and serves the HTTP API.
package region

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

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
	ahead     readAhead                  // reading rows ahead of the stepper (prefetch_rows.go)
	tr        atomic.Pointer[transportBox]
	metrics   *metrics
	trust     trustLog // what was logged of refused peer input (metrics_trust.go)

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
	// back counts the callers of the last cohort that are back (linger.go).
	back returning
	// drained: the requests the stepper took from its queue at once
	// (stepDrained), reused.
	drained []*request
	// cuts counts final batches cut by the stepper, by why (linger.go).
	cuts [len(cutReasons)]atomic.Uint64
	// testBeforeDone (tests only) runs on the syncer after a final batch's
	// callers were answered, before the stepper is told.
	testBeforeDone atomic.Pointer[func(b *batch)]

	statsMu sync.Mutex
	stats   escrow.Stats
	homes   atomic.Int64 // homes in force at the node, as of the last tick
	// resync: the transport reconnected; the next tick tells the node
	// (escrow.Input.Resync).
	resync atomic.Bool

	// aheadWritten: a write-ahead batch awaits a final one. Owned by the
	// committer, and by the stepper while nothing is in flight (commitLone).
	aheadWritten bool
	// batchErr: a batch failed; every batch after it fails too until the
	// node is rebuilt (waitSticky; cleared by failNode).
	batchErr atomic.Pointer[error]

	// Committer totals, for benchmarks and logs.
	commits    atomic.Int64
	commitCmds atomic.Int64
	applyNanos atomic.Int64
	applyEWMA  atomic.Int64 // recent Apply duration in ns, for the linger
	// deliveries counts the cohorts whose callers the syncer began to
	// answer; a request carries the count it saw (request.gen), which tells
	// the stepper whether its caller was answered already (linger.go).
	deliveries atomic.Uint64
	// loneCommits: batches the stepper committed itself (commitLone).
	loneCommits atomic.Uint64
	// inline: callers committing on their own goroutine (inline_commit.go).
	inline inlineState

	fence regionFence // see fence.go

	// The event log (events.go); nil events: the storage keeps none.
	events   *EventLog
	evPruned prometheus.Counter
	evOldest atomic.Uint64
	evBytes  atomic.Uint64

	// deadlineTick is closed and replaced every deadlineTickEvery, so that
	// callers of DoWithin notice their deadline without a timer each;
	// deadlineSlowTick every deadlineSlowEvery, for the callers whose
	// deadline is further than deadlineSlowFor (see submitNoting).
	deadlineTick     atomic.Pointer[chan struct{}]
	deadlineSlowTick atomic.Pointer[chan struct{}]
}

// Open opens the region's storage, restores the node from it and starts the
// apply loop. A store that cannot be loaded (corrupt, or an invariant of
// the stored state broken) is refused with an error saying why.
func Open(ctx context.Context, cfg Config) (*Region, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := newRegion(cfg)
	if err != nil {
		return nil, err
	}
	r.startEvents()
	tick, slow := make(chan struct{}), make(chan struct{})
	r.deadlineTick.Store(&tick)
	r.deadlineSlowTick.Store(&slow)
	r.startPrefetch()
	go r.syncLoop()
	go r.commitLoop()
	go r.stepLoop()
	go r.deadlineClock()
	go r.pruneHolds()
	return r, nil
}

// newRegion opens the region's storage and restores the node from it,
// without starting any goroutine: Open starts the apply loop on it, a
// Stepper drives its stages by hand.
func newRegion(cfg Config) (*Region, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if testNoInlineCommit {
		cfg.NoInlineCommit = true
	}
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
	r.inline.kick = make(chan struct{}, 1)
	r.warnDeprecated()
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
	r.metrics.reg.MustRegister(r.trustCollectors()...)
	r.metrics.reg.MustRegister(r.stockOpsCollectors()...)
	r.metrics.reg.MustRegister(r.loneCollectors()...)
	r.metrics.reg.MustRegister(r.lingerCollectors()...)
	r.metrics.reg.MustRegister(r.digestCollectors()...)
	r.metrics.reg.MustRegister(r.snapshotCollectors()...)
	r.metrics.reg.MustRegister(r.locationCollectors()...)
	r.metrics.reg.MustRegister(r.waitlistCollectors()...)
	r.registerEvents()
	r.metrics.reg.MustRegister(r.listCollectors()...)
	r.ready.Store(true)
	// Log before the loop owns the node.
	// The resident SKUs, not node.SKUs(): with the SKU cache that scans every
	// row in the store (10 s at 10 M SKUs) for a log line.
	r.log.Info("region open", "seq", node.Seq(), "active_holds", r.stats.ActiveHolds, "resident_skus", node.CacheStats().Resident)
	return r, nil
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
