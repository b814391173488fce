package region

// Inline commit (on unless Config.NoInlineCommit): a lone caller's command is stepped,
// written, fsynced and answered on the caller's own goroutine, with no
// hand-off to the stepper and back.
//
// Over HTTP a lone hold's two goroutine hand-offs (handler → stepper,
// stepper or syncer → handler) each make the Go scheduler wake a sleeping
// thread for an idle P (futex, ~10–20 µs on this VM each; docs/
// benchmarks.md, "A lone shopper over HTTP"). The lone commit (commitLone)
// removed the hand-offs inside the apply loop but not these two. Here the
// caller does what the stepper would: step, cut, write, wait for the fsync,
// deliver, Advance (the same calls as commitLone), then returns its reply.
//
// Who may touch the node: whoever holds inlineState.mu. The stepper holds it
// all the time, except while it blocks in its select with nothing to do
// (nothing stepped, nothing in flight or being written, not failing, not
// lingering, the last batch answered one caller at most: the conditions of
// commitLone); then it sets idle and releases mu. A caller that sees idle
// and gets mu by TryLock commits inline; any other caller queues as before.
// The stepper, woken by anything (a request, a peer message, a tick, an
// inspect, Close), clears idle and takes mu back before it touches the
// node, so it waits for an inline commit under way; what arrived meanwhile
// it steps afterwards, as before. Group commit is unchanged: under load
// the stepper is rarely idle and callers find it busy and queue.
//
// The durability rule holds as on the other paths: the caller's reply is
// delivered after waitSticky returns (its fsync). A failed write is
// delivered as a failure (ErrStorage) and fails the node: the caller
// marks it failed, clears idle and wakes the stepper, which rebuilds the
// node as after a failed pipeline batch.
//
// A deadline (DoWithin) or a cancelled context does not interrupt an
// inline commit: the caller waits for its own fsync, and gets its reply
// late rather than DeadlineExceeded while its hold may still commit.

import (
	"sync"
	"sync/atomic"
)

// testNoInlineCommit turns the inline commit off in every region this
// package's tests open (HOLDFAST_TEST_INLINE=0, export_test.go), so that
// the crash and failing-disk tests can check the loop's own path too.
var testNoInlineCommit = false

// inlineState is the region's side of the inline commit.
type inlineState struct {
	mu   sync.Mutex  // the node's owner (see above)
	idle atomic.Bool // the stepper is idle in its select and released mu
	// Set by an inline caller under mu, read and cleared by the stepper
	// when it takes mu back.
	failed bool // the inline batch failed: rebuild the node
	many   bool // the inline batch answered more than one caller: no longer lone
	// kick wakes the stepper after an inline commit that left it
	// something to do (a failure).
	kick    chan struct{}
	commits atomic.Uint64 // inline commits, for holdfast_inline_commits_total
}

// inlineOn reports whether callers may commit inline: the setting is on,
// the storage can report a write and wait for its fsync apart (a Store),
// and no read-ahead stage sits between callers and the stepper.
func (r *Region) inlineOn() bool {
	return !r.cfg.NoInlineCommit && r.writeAhead() && r.ahead.q == nil
}

// commitInline steps req into the node and, if it made a Ready, commits
// it and delivers its replies on the calling goroutine. It returns false,
// having done nothing, when the stepper is not idle or a concurrent caller
// got there first: req is then queued as usual. On true, req is stepped
// and the caller waits for req.done as after queueing it (already
// signalled, unless its reply waits for something else, e.g. a borrow,
// or the node failed).
func (r *Region) commitInline(req *request) bool {
	in := &r.inline
	if !in.mu.TryLock() {
		return false
	}
	// idle is set only by the stepper holding mu: still set now, the
	// stepper is in its idle select (or just woke from it and waits for
	// mu), with nothing stepped and nothing in flight.
	if !in.idle.Load() || r.closed.Load() || r.node == nil {
		in.mu.Unlock()
		return false
	}
	r.stepRequest(req, r.cfg.Now())
	if r.node.Err() != nil {
		// The row source failed: the stepper sees it, fails the node,
		// and req with it.
		in.idle.Store(false)
		in.mu.Unlock()
		r.kickStepper()
		return true
	}
	if !r.node.HasReady() {
		in.mu.Unlock()
		return true
	}
	b := r.cutBatch(1, true)
	r.write(b)
	r.written(b)
	if b.replied {
		// (planted bug ReplyBeforeSync) the caller goes with its reply
		// while the fsync is still pending.
		go r.syncInline(b)
		return true
	}
	r.syncInline(b)
	return true
}

// syncInline waits for the inline batch b's fsync, delivers it, and gives
// the node back.
func (r *Region) syncInline(b *batch) {
	r.syncDeliver(b, &r.inline.commits)
	r.node.Advance()
	ok, many := b.err == nil, b.answered > 1
	r.recycle(b)
	r.endInline(ok, many)
}

// endInline releases the node after an inline step or commit; ok false:
// the node must be rebuilt (the stepper is woken for it), many: the batch
// answered more than one caller.
func (r *Region) endInline(ok, many bool) {
	in := &r.inline
	if !ok || many {
		in.idle.Store(false) // nobody else commits inline until the stepper looked
		in.failed = in.failed || !ok
		in.many = in.many || many
	}
	in.mu.Unlock()
	if !ok || many {
		r.kickStepper()
	}
}

// kickStepper wakes the stepper from its idle select.
func (r *Region) kickStepper() {
	select {
	case r.inline.kick <- struct{}{}:
	default:
	}
}

// stepperIdle releases the node to inline callers while the stepper blocks
// in its select.
func (r *Region) stepperIdle() {
	r.inline.idle.Store(true)
	r.inline.mu.Unlock()
}

// stepperWake takes the node back after stepperIdle, once any inline
// commit under way is done, and reports what inline commits left for the
// stepper: a failed batch, one that answered several callers.
func (r *Region) stepperWake() (failed, many bool) {
	in := &r.inline
	in.idle.Store(false) // no new inline commit: the stepper has work
	in.mu.Lock()
	failed, many = in.failed, in.many
	in.failed, in.many = false, false
	return failed, many
}
