package region

// Stepper: the region runtime with its pipeline stages as calls, for the
// deterministic simulator. Production's stepLoop, commitLoop and syncLoop
// are goroutines that call the same functions (stepRequest, stepMessage,
// tick, cutBatch, write, written, wait, deliver); a Stepper calls them in
// the order its driver chooses, on the driver's goroutine, with the clock
// the driver gives (Config.Now).

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// Stepper is one region whose apply loop is driven by hand:
//
//	Submit / Message / Tick   step an input into the node
//	CutReady                  cut the node's Ready into a batch
//	Commit                    write the oldest cut batch (WAL and memtable, no fsync)
//	SyncDurable               fsync every written batch
//	Deliver                   send the messages and release the replies of synced batches
//	TakeReplies / TakeMessages
//
// A Stepper is not safe for concurrent use, and starts no goroutine of
// its own (pebble's remain).
type Stepper struct {
	r    *Region
	gate *syncGate

	stepped int        // inputs stepped since the last cut
	cut     []*batch   // cut, not yet written
	written []*batch   // written, not yet durable
	synced  []*batch   // durable (or failed), not yet delivered
	waiting []*request // submitted, not yet answered
	replies []escrow.Reply
	msgs    []escrow.Message
	failed  bool // a batch failed: the node is rebuilt once none is in flight
	// ends: the WAL file and its length after each batch written since
	// the last SyncDurable (for TornTail).
	ends []walEnd
}

type walEnd struct {
	f   *gatedFile
	end int64
}

// ErrStepperDown is returned by a Stepper whose node is gone (a failed
// batch, until Recover).
var ErrStepperDown = errors.New("region stepper: node down after a storage failure (Recover)")

// OpenStepper opens cfg's region (its Store in cfg.DataDir on cfg.FS,
// which must be set) without starting its apply loop.
func OpenStepper(cfg Config) (*Stepper, error) {
	if cfg.FS == nil {
		return nil, fmt.Errorf("region stepper: Config.FS must be set")
	}
	if cfg.Storage != nil {
		return nil, fmt.Errorf("region stepper: Config.Storage must not be set")
	}
	g := &syncGate{FS: cfg.FS}
	cfg.FS = g
	if cfg.Name == "" {
		return nil, fmt.Errorf("region stepper: Config.Name must be set")
	}
	st, err := OpenStore(cfg.DataDir, StoreOptions{Region: cfg.Name, FS: g, Logger: cfg.Logger,
		Cluster: cfg.Cluster, NoEvents: cfg.Events.Disabled, CacheBytes: 1 << 20, LazyRows: cfg.SKUCache > 0, LazyHolds: cfg.HoldCache > 0,
		// The gate holds pebble's WAL syncs: the stepper drives pebble's WAL.
		WAL: WALPebble})
	if err != nil {
		return nil, fmt.Errorf("region %s: open store in %s: %w", cfg.Name, cfg.DataDir, err)
	}
	cfg.Storage = st
	r, err := newRegion(cfg)
	if err != nil {
		return nil, err
	}
	r.ownStore = true
	s := &Stepper{r: r, gate: g}
	r.AttachTransport(stepperTransport{s})
	return s, nil
}

// Node returns the node (nil while down). The caller may read it between
// calls and must not change it.
func (s *Stepper) Node() *escrow.Node { return s.r.node }

// Region returns the region (for its metrics and storage).
func (s *Stepper) Region() *Region { return s.r }

// Down reports whether the node is gone after a storage failure.
func (s *Stepper) Down() bool { return s.r.node == nil }

// Submit steps a client command into the node. Its reply, once released,
// carries cmd.ReqID and unreachable is stepped as escrow.Input.Unreachable.
func (s *Stepper) Submit(cmd escrow.Command, unreachable string) error {
	if s.r.node == nil {
		return ErrStepperDown
	}
	req := &request{cmd: cmd, unreachable: unreachable, done: make(chan struct{}, 1), callerID: cmd.ReqID}
	s.r.stepRequest(req, s.r.cfg.Now())
	s.waiting = append(s.waiting, req)
	s.stepped++
	s.checkSource()
	return nil
}

// checkSource takes a node whose row source failed (escrow.ErrRowSource)
// down like a failed write: once no batch is in flight it is discarded,
// and Recover rebuilds it from storage.
func (s *Stepper) checkSource() {
	if s.r.node == nil || s.r.node.Err() == nil {
		return
	}
	s.failed = true
	if s.InFlight() == 0 {
		s.r.failNode(ErrStorage)
		s.stepped = 0
	}
}

// Message steps a peer message into the node; an error is a refused one.
func (s *Stepper) Message(m escrow.Message) error {
	if s.r.node == nil {
		return ErrStepperDown
	}
	s.stepped++
	err := s.r.stepMessage(&m, s.r.cfg.Now())
	s.checkSource()
	return err
}

// Tick steps the node's clock.
func (s *Stepper) Tick() {
	if s.r.node != nil {
		s.r.tick(s.r.cfg.Now())
		s.checkSource()
	}
}

// HasReady reports whether CutReady would cut a batch.
func (s *Stepper) HasReady() bool { return s.r.node != nil && s.r.node.HasReady() }

// InFlight is the number of batches cut and not yet delivered.
func (s *Stepper) InFlight() int { return len(s.cut) + len(s.written) + len(s.synced) }

// Written is the number of batches written and not yet synced.
func (s *Stepper) Written() int { return len(s.written) }

// CutReady cuts the node's Ready into a batch (one synced write) and
// returns it for observers, who must not change it; nil when there is none.
func (s *Stepper) CutReady() *escrow.Ready {
	if !s.HasReady() {
		return nil
	}
	b := s.r.cutBatch(s.stepped, true)
	s.stepped = 0
	s.cut = append(s.cut, b)
	return &b.rd
}

// Commit writes the oldest cut batch to the WAL and the memtable without
// its fsync (SyncDurable does it), as the committer does. It reports
// whether there was one.
func (s *Stepper) Commit() bool {
	if len(s.cut) == 0 {
		return false
	}
	b := s.cut[0]
	s.cut = s.cut[1:]
	// The store asks for the fsync and waits for it: held by the gate,
	// the write is complete in the file and not yet durable.
	s.gate.setHold(true)
	s.r.write(b)
	if err := s.r.waitSticky(b); err != nil && b.err == nil {
		b.err = err
	}
	s.gate.setHold(false)
	if f, end := s.gate.walEnd(); f != nil {
		s.ends = append(s.ends, walEnd{f, end})
	}
	s.r.written(b)
	s.written = append(s.written, b)
	s.collect()
	return true
}

// SyncDurable makes every written batch durable (one fsync), as the
// syncer's wait does. It reports whether there was one.
func (s *Stepper) SyncDurable() bool {
	if len(s.written) == 0 {
		return false
	}
	if err := s.gate.flush(); err != nil {
		ferr := fmt.Errorf("%w: fsync: %w", ErrStoreFailed, err)
		s.r.batchErr.CompareAndSwap(nil, &ferr)
		for _, b := range s.written {
			if b.err == nil {
				b.err = ferr
			}
		}
	}
	s.ends = s.ends[:0]
	s.synced = append(s.synced, s.written...)
	clear(s.written)
	s.written = s.written[:0]
	return true
}

// SyncedOK reports, for each of the last n batches made durable by
// SyncDurable and not yet delivered (oldest first), whether it is durable:
// a batch whose write or fsync failed is not, while those before it are.
func (s *Stepper) SyncedOK(n int) []bool {
	n = min(n, len(s.synced))
	out := make([]bool, n)
	for i, b := range s.synced[len(s.synced)-n:] {
		out[i] = b.err == nil
	}
	return out
}

// SyncFailed reports whether a batch synced and not yet delivered failed
// (its write or its fsync): Deliver will fail it and discard the node.
func (s *Stepper) SyncFailed() bool {
	for _, b := range s.synced {
		if b.err != nil {
			return true
		}
	}
	return false
}

// Deliver sends the messages and releases the replies of every synced
// batch, in order, as the syncer does; onDurable (may be nil) sees each
// durable batch's Persist first. After a failed batch, once none is in
// flight, the node is discarded (Down) until Recover.
func (s *Stepper) Deliver(onDurable func(p *escrow.Persist)) int {
	n := len(s.synced)
	for _, b := range s.synced {
		if b.err == nil && onDurable != nil {
			onDurable(&b.rd.Persist)
		}
		s.r.deliver(b, b.err)
		if s.r.node != nil {
			s.r.node.Advance()
		}
		s.failed = s.failed || b.err != nil
		s.r.recycle(b)
	}
	clear(s.synced)
	s.synced = s.synced[:0]
	if s.failed && s.InFlight() == 0 && s.r.node != nil {
		s.r.failNode(ErrStorage)
		s.stepped = 0
	}
	s.collect()
	return n
}

// Recover rebuilds a node that is down from what is durable, reopening the
// store (the runtime's recovery path). It fails while the store cannot be
// reopened.
func (s *Stepper) Recover() error {
	if s.r.node != nil {
		return nil
	}
	for _, b := range s.cut {
		s.r.recycle(b)
	}
	s.cut = s.cut[:0]
	if err := s.r.reload(); err != nil {
		return err
	}
	s.failed = false
	s.r.ready.Store(true)
	return nil
}

// Abandon is a crash: the process dies with every batch in flight and
// every reply not yet released; the store is closed without a word. The
// caller keeps (a crash image of) the filesystem and opens a new Stepper
// on it.
func (s *Stepper) Abandon() {
	s.waiting, s.replies, s.msgs = nil, nil, nil
	s.cut, s.written, s.synced, s.ends = nil, nil, nil, nil
	s.r.node = nil
	clear(s.r.pending)
	s.r.closed.Store(true)
	if s.r.storage != nil {
		_ = s.r.storage.Close()
	}
}

// TornTail describes the write-ahead log's unsynced tail: in File, the
// bytes from Synced to FirstEnd are the first batch written since the last
// fsync (FirstEnd > Synced). A crash image keeping a part of them has a
// torn last record, which recovery must drop.
type TornTail struct {
	File     string
	Synced   int64
	FirstEnd int64
}

// TornTail returns the tail a crash now could tear, if a batch written
// since the last fsync has bytes in the WAL file written last.
func (s *Stepper) TornTail() (TornTail, bool) {
	f, _ := s.gate.walEnd()
	if f == nil {
		return TornTail{}, false
	}
	s.gate.mu.Lock()
	synced := f.synced
	s.gate.mu.Unlock()
	for _, e := range s.ends {
		if e.f == f && e.end > synced {
			return TornTail{File: f.name, Synced: synced, FirstEnd: e.end}, true
		}
	}
	return TornTail{}, false
}

// TakeReplies returns the replies released since the last call, each with
// the ReqID its command was submitted with. A request whose batch failed
// gets no reply (its caller times out, as over HTTP it gets a 503).
func (s *Stepper) TakeReplies() []escrow.Reply {
	out := s.replies
	s.replies = nil
	return out
}

// TakeMessages returns the messages sent since the last call.
func (s *Stepper) TakeMessages() []escrow.Message {
	out := s.msgs
	s.msgs = nil
	return out
}

// collect moves answered requests' replies to s.replies.
func (s *Stepper) collect() {
	keep := s.waiting[:0]
	for _, req := range s.waiting {
		select {
		case <-req.done:
			if req.err == nil {
				rep := req.reply
				rep.ReqID = req.callerID
				s.replies = append(s.replies, rep)
			}
		default:
			keep = append(keep, req)
		}
	}
	clear(s.waiting[len(keep):])
	s.waiting = keep
}

// FS returns the filesystem the store was opened on (without the gate).
func (s *Stepper) FS() vfs.FS { return s.gate.FS }

type stepperTransport struct{ s *Stepper }

func (t stepperTransport) Send(msgs []escrow.Message) { t.s.msgs = append(t.s.msgs, msgs...) }

func (t stepperTransport) Forward(context.Context, string, escrow.Command) (escrow.Reply, error) {
	return escrow.Reply{}, fmt.Errorf("%w: a stepper forwards nothing", ErrUnreachable)
}
