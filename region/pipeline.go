package region

// The apply loop: callers and peer messages enter through queues, the
// stepper steps them into the node and cuts Readies, the committer writes
// them to storage and the syncer waits for their fsync before anything is
// answered or sent (group commit, with write-ahead batches and a linger);
// a lone caller's batch the stepper commits itself (commitLone).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

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
	callerID    uint64 // the ReqID the command came with (Stepper)
	// gen: Region.deliveries when it was submitted (the linger's count).
	gen uint64
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
	gen      uint64    // final: Region.deliveries once the syncer began to answer its cohort
	replied  bool      // its callers were answered already (a planted bug only)
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

// deadlineTickEvery is the granularity of DoWithin's timeout.
//
// A caller waits on the tick only when its deadline is less than
// deadlineSlowFor away, and else on the slow tick, closed every
// deadlineSlowEvery: a hold takes milliseconds and the HTTP timeout is
// seconds, so the every-25-ms tick would wake every parked caller, for
// nothing, about once per ten holds at 64 clients (a wake-up, a select
// and a clock read each). A caller woken by the slow tick with its
// deadline then less than deadlineSlowFor away (twice the slow period:
// the next slow tick could come too late) waits on the fast one; a late
// slow tick is a late ticker, which would make the fast tick late too.
const (
	deadlineTickEvery      = 25 * time.Millisecond
	deadlineSlowEveryTicks = 40
	deadlineSlowEvery      = deadlineSlowEveryTicks * deadlineTickEvery
	deadlineSlowFor        = 2 * deadlineSlowEvery
)

func (r *Region) deadlineClock() {
	t := time.NewTicker(deadlineTickEvery)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-t.C:
			ch := make(chan struct{})
			close(*r.deadlineTick.Swap(&ch))
			if n%deadlineSlowEveryTicks == 0 {
				ch := make(chan struct{})
				close(*r.deadlineSlowTick.Swap(&ch))
			}
		case <-r.loopDone:
			return
		}
	}
}

// deadlineTickFor is the tick a caller whose deadline (not zero) is at
// deadline waits on at now: the slow one while it is far.
func (r *Region) deadlineTickFor(now, deadline time.Time) <-chan struct{} {
	if deadline.Sub(now) > deadlineSlowFor {
		return *r.deadlineSlowTick.Load()
	}
	return *r.deadlineTick.Load()
}

func (r *Region) submit(ctx context.Context, cmd *escrow.Command, deadline time.Time) (escrow.Reply, error) {
	return r.submitNoting(ctx, cmd, "", deadline, time.Time{})
}

// submitNoting is submit that also tells the node that region unreachable
// was just found gone (escrow.Input.Unreachable; "" for none). start is
// when the call began, for the hold latency and the first deadline check
// (zero: now): DoWithin passes the time it read for the deadline, so that
// a hold reads the clock once less.
func (r *Region) submitNoting(ctx context.Context, cmd *escrow.Command, unreachable string, deadline, start time.Time) (escrow.Reply, error) {
	if r.closed.Load() {
		return escrow.Reply{}, ErrClosed
	}
	if !r.ready.Load() {
		return escrow.Reply{}, fmt.Errorf("%w: rebuilding state from storage", ErrStorage)
	}
	if err := ctx.Err(); err != nil {
		return escrow.Reply{}, err
	}
	if start.IsZero() {
		start = time.Now()
	}
	req := requestPool.Get().(*request)
	req.cmd = *cmd
	req.unreachable = unreachable
	req.gen = r.deliveries.Load()
	if !r.inline.idle.Load() || !r.commitInline(req) {
		select {
		case r.intake() <- req:
		default:
			req.cmd, req.unreachable = escrow.Command{}, ""
			requestPool.Put(req)
			r.metrics.overloaded.Inc()
			return escrow.Reply{}, ErrOverloaded
		}
	}
	now := start
wait:
	for {
		var tick <-chan struct{}
		if !deadline.IsZero() {
			tick = r.deadlineTickFor(now, deadline)
		}
		select {
		case <-req.done:
			break wait
		case <-ctx.Done():
			return escrow.Reply{}, ctx.Err() // req is abandoned to the loop
		case <-tick:
			if now = time.Now(); !now.Before(deadline) {
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
	ahead := 0       // write-ahead batches cut since the last final cut
	answered := 0    // requests answered by the batches done since the last final one
	failing := false // a batch failed: wait for the others, then rebuild
	// Linger: when a final batch completes, its callers usually come back
	// at once with their next request. Waiting for them a little (until
	// every caller the cohort answered is back, at most half a recent write
	// time: linger.go) merges the two cohorts that a plain "cut when the
	// committer is idle" pipeline settles into, so each fsync carries about
	// all concurrent callers instead of half of them. A lone caller is
	// never delayed: there is no linger after a batch that answered one
	// caller (lingerFor), and its batch is cut as soon as it is back.
	var lingerUntil time.Time
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	var lingerC <-chan time.Time
	lone := true // the last final batch answered one caller at most
	// finish takes back a batch that is durable (or failed) and answered.
	finish := func(b *batch) {
		r.node.Advance()
		if b.err != nil {
			failing = true
		}
		answered += b.answered
		if b.final {
			syncing = false
			lone = answered <= 1
			d := r.lingerFor(answered)
			r.back.expect(b.gen, answered)
			answered = 0
			lingerUntil = time.Time{}
			if d > 0 {
				lingerUntil = time.Now().Add(d)
			}
		}
		r.recycle(b)
	}
	// Inline commit (inline_commit.go): the stepper owns the node through
	// r.inline.mu, released only while it waits idle in its select; each
	// case first takes it back (wake), which waits for an inline commit
	// under way. It is never released once the loop ends.
	r.inline.mu.Lock()
	released := false
	wake := func() {
		if released {
			released = false
			failed, many := r.stepperWake()
			failing = failing || failed
			lone = lone && !many
		}
	}
	for {
		if r.node == nil {
			if !r.recover(ticker) {
				r.shutdown(0, 0, false, false)
				return
			}
			stepped, ahead, answered = 0, 0, 0
			r.back = returning{earlyTwice: r.back.earlyTwice}
		}
		if !failing && r.node.Err() != nil {
			// The node could not read a SKU's rows (the bounded cache):
			// like a failed write, wait for the batches in flight, then
			// rebuild from storage.
			r.log.Error("row source failed: rebuilding from storage", "err", r.node.Err())
			failing = true
		}
		if failing && inflight == 0 && applying == 0 {
			failing, syncing = false, false
			r.failNode(ErrStorage)
			continue
		}
		if applying == 0 && !failing {
			if !syncing && (ahead > 0 || r.node.HasReady()) {
				if inflight == 0 && lone && stepped == 1 && r.loneCommit() {
					// A lone caller, nothing in flight: commit here.
					b := r.commitLone(stepped)
					stepped = 0
					lingerC = nil
					finish(b)
					continue
				}
				if why, cut := r.cutWhy(stepped, lingerUntil); cut {
					r.cuts[why].Add(1)
					r.cut(stepped, true)
					inflight++
					applying++
					syncing = true
					stepped, ahead = 0, 0
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
		if lone && !failing && inflight == 0 && applying == 0 && ahead == 0 && lingerC == nil && queue != nil &&
			r.inlineOn() && !r.node.HasReady() && r.node.Err() == nil && len(r.queue) == 0 {
			// commitLone's conditions, before the caller is stepped: nothing
			// to cut (inputs stepped without a Ready, a refused message or a
			// borrow's wait, count in the stepper's next batch as before).
			r.stepperIdle()
			released = true
		}
		select {
		case req := <-queue:
			wake()
			now := r.cfg.Now()
			if r.ahead.inline {
				stepped = r.stepQueuedAhead(req, now, stepped)
				break
			}
			stepped = r.stepDrained(req, now, stepped)
		case m := <-r.msgs:
			wake()
			r.stepMessage(&m, r.cfg.Now())
			stepped++
		case <-r.appliedCh:
			wake()
			applying--
		case b := <-r.doneCh:
			wake()
			inflight--
			finish(b)
		case <-lingerC:
			wake()
			lingerC = nil
		case <-ticker.C:
			wake()
			r.tick(r.cfg.Now())
		case <-r.inline.kick:
			wake() // an inline commit left the stepper work (a failed batch: rebuild)
		case q := <-r.inspect:
			wake()
			if err := r.node.Err(); err != nil {
				// Stopped half-way through a step (its row source
				// failed): nothing is read from it.
				q.err = fmt.Errorf("%w: rebuilding state from storage: %w", ErrStorage, err)
			} else if q.f(r.node); r.node.Err() != nil {
				// The read itself hit a failing row source.
				q.err = fmt.Errorf("%w: %w", ErrStorage, r.node.Err())
			}
			close(q.done)
		case <-r.stop:
			wake()
			r.shutdown(inflight, applying, ahead == 0, failing)
			return
		}
	}
}

// Lone commit: a lone caller's batch goes through the stepper, the
// committer, pebble's flush loop and the syncer, each a goroutine hand-off
// on the way to and back from the one fsync it waits for. When nothing is in flight and the last batch
// answered one caller at most (no linger, nobody expected to share the
// fsync), the stepper writes a batch of a single input itself, waits for
// its fsync and answers it, as the committer and the syncer would (the same
// write, written, waitSticky and deliver: the reply still follows the
// fsync). Meanwhile it steps nothing: inputs that arrive during that fsync
// wait for it, then are cut together; a cohort of two or more, or one after
// a batch that answered several, takes the pipeline, so group commit under
// load is unchanged. Only a Store (asyncStorage) is committed this way:
// another Storage's Apply may block on anything.

// loneCommit reports whether the stepper may commit a lone batch itself.
func (r *Region) loneCommit() bool {
	return r.cfg.LoneCommit && r.writeAhead()
}

// commitLone writes the node's Ready (stepped inputs) as one final batch
// on the stepper's goroutine, waits for its fsync and answers its callers:
// the committer and the syncer are idle (nothing is in flight). It returns
// the batch for the stepper to take back.
func (r *Region) commitLone(stepped int) *batch {
	b := r.cutBatch(stepped, true)
	r.write(b)
	r.written(b)
	r.syncDeliver(b, &r.loneCommits)
	return b
}

// syncDeliver waits for the fsync of b, a batch its caller wrote itself
// (commitLone, commitInline), counts it in commits and delivers it: the
// count comes first, so that it is final once b's callers are answered.
func (r *Region) syncDeliver(b *batch, commits *atomic.Uint64) {
	err := r.waitSticky(b)
	commits.Add(1)
	r.deliver(b, err)
}

// writeAhead reports whether the storage can write batches without fsync.
func (r *Region) writeAhead() bool {
	_, ok := r.storage.(asyncStorage)
	return ok
}

// tick steps the node's clock.
func (r *Region) tick(now time.Time) {
	r.node.Step(escrow.Input{Now: now, Resync: r.resync.Swap(false)})
	// Homes change with advice and lapse with time: once a tick is often
	// enough for a gauge, and keeps the copy off the per-batch path.
	r.homes.Store(int64(r.node.HomesInForce()))
	r.metrics.rtt.sync(r.node, now)
	r.syncFence(r.node)
}

// stepDrained steps first and whatever else waits in the queue, up to
// MaxBatch inputs in all (stepped so far), and returns the new count. It
// takes them all from the queue first and has the node prefetch the SKUs
// they name (escrow.Node.Prefetch): with a large catalogue their cache
// misses then overlap instead of stalling one step each.
func (r *Region) stepDrained(first *request, now time.Time, stepped int) int {
	reqs := r.drainQueue(r.drained, first, stepped)
	if len(reqs) > 1 {
		for _, req := range reqs {
			r.node.Prefetch(req.cmd.Lines)
		}
	}
	for _, req := range reqs {
		r.stepRequest(req, now)
	}
	clear(reqs)
	r.drained = reqs[:0]
	return stepped + len(reqs)
}

// drainQueue returns first and whatever waits in the stepper's queue, up
// to MaxBatch inputs since the cut (stepped so far), in buf's array.
func (r *Region) drainQueue(buf []*request, first *request, stepped int) []*request {
	reqs := append(buf[:0], first)
	for stepped+len(reqs) < r.cfg.MaxBatch {
		select {
		case req := <-r.queue:
			reqs = append(reqs, req)
		default:
			return reqs
		}
	}
	return reqs
}

func (r *Region) stepRequest(req *request, now time.Time) {
	r.back.stepped(req.gen)
	r.nextReq++
	req.cmd.ReqID = r.nextReq
	r.pending[r.nextReq] = req
	r.node.Step(escrow.Input{Now: now, Cmd: &req.cmd, Unreachable: req.unreachable})
}

func (r *Region) stepMessage(m *escrow.Message, now time.Time) error {
	err := r.node.Step(escrow.Input{Now: now, Msg: m})
	if err != nil {
		r.metrics.msgsRejected.Inc()
		r.log.Debug("peer message rejected", "type", m.Type.String(), "from", m.From, "err", err)
	}
	return err
}

// cut takes the node's Ready and hands it to the committer, with the
// requests waiting for its replies.
func (r *Region) cut(stepped int, final bool) {
	r.commitCh <- r.cutBatch(stepped, final) // the committer is idle (applying == 0), except in shutdown
}

// cutBatch takes the node's Ready, with the requests waiting for its
// replies.
func (r *Region) cutBatch(stepped int, final bool) *batch {
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
	return b
}

func (r *Region) recycle(b *batch) {
	clear(b.reqs)
	b.reqs = b.reqs[:0]
	b.rd = escrow.Ready{}
	b.err = nil
	b.pc = nil
	b.start = time.Time{}
	b.final = false
	b.gen = 0
	b.replied = false
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
		r.written(b)
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
		err := r.waitSticky(b)
		if err == nil && !b.final {
			held = append(held, b)
			continue
		}
		// Before any caller of the cohort is answered: a request submitted
		// from now on carries the new count (linger.go).
		b.gen = r.deliveries.Add(1)
		for _, h := range held {
			r.deliver(h, err)
			r.doneCh <- h // never blocks: at most maxInflight batches are cut
		}
		clear(held)
		held = held[:0]
		r.deliver(b, err)
		if f := r.testBeforeDone.Load(); f != nil {
			(*f)(b)
		}
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
	case ok && b.final && !r.cfg.PlantedBugs.SkipFsync:
		b.pc, b.err = as.ApplyNoWait(&b.rd.Persist)
		r.aheadWritten = false
	case ok:
		b.pc, b.err = as.WriteAhead(&b.rd.Persist)
		r.aheadWritten = true
	default:
		b.err = r.storage.Apply(&b.rd.Persist)
	}
}

// written runs once b is written, before its fsync: correct code does
// nothing there. The planted bug ReplyBeforeSync (tests only) answers b's
// callers already, breaking the durability rule.
func (r *Region) written(b *batch) {
	if !r.cfg.PlantedBugs.ReplyBeforeSync || b.err != nil {
		return
	}
	for i, req := range b.reqs {
		if req != nil {
			req.reply = b.rd.Reply[i]
			req.done <- struct{}{}
		}
	}
	b.replied = true
}

// waitSticky is wait, and fails every batch after a failed one until the
// node is rebuilt (failNode): a batch cut from a node whose earlier write
// failed may answer from state that was never stored — an idempotent
// retry of the failed change writes nothing and would be answered as a
// success (found by the simulator's region runtime under diskfull).
func (r *Region) waitSticky(b *batch) error {
	err := r.wait(b)
	if err != nil {
		r.batchErr.CompareAndSwap(nil, &err)
		return err
	}
	if p := r.batchErr.Load(); p != nil {
		return *p
	}
	return nil
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
	if err != nil && r.cfg.PlantedBugs.AckFailedWrite && !errors.Is(err, ErrClosed) {
		// (planted bug) the failure is not told to the callers.
		m.storageErrors.Inc()
		b.err = err
		r.ready.Store(false)
		for i, req := range b.reqs {
			if req != nil && !b.replied {
				req.reply = b.rd.Reply[i]
				req.done <- struct{}{}
			}
		}
		return
	}
	if err != nil && b.replied {
		// (planted bug) the callers were told it succeeded already.
		m.storageErrors.Inc()
		b.err = err
		r.ready.Store(false)
		return
	}
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
	if t := r.transport(); t != nil && len(b.rd.Send) > 0 {
		t.Send(b.rd.Send)
	}
	if len(b.rd.Snapshots) > 0 {
		r.logSnapshots(b.rd.Snapshots)
	}
	m.countHolds(b.rd.Reply, false)
	m.observeWaits(&b.rd.Persist)
	for i, req := range b.reqs {
		if req != nil && !b.replied {
			req.reply = b.rd.Reply[i]
			req.done <- struct{}{}
		}
	}
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
		now := r.cfg.Now()
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
