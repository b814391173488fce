package region

import (
	"context"
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// DoBatch runs cmds, in order, through the apply loop and returns their
// replies (replies[i] answers cmds[i]). The commands enter the queue one
// after the other from this goroutine, so the node steps them in that
// order, and the stepper cuts them into as few batches as it can; each
// reply is returned only once the batch holding its change is durable (as
// for DoWithin). Unlike DoWithin it waits for room in a full queue instead
// of failing (a bulk import is background work and is paced by the loop),
// and it does not forward or route: it is for commands this region serves
// itself (restock, write-off, recount, stock). An error (closed, storage,
// timeout, ctx) is for the whole batch: some of its commands may have been
// applied, so a caller re-runs only commands that are safe to repeat.
func (r *Region) DoBatch(ctx context.Context, cmds []escrow.Command, timeout time.Duration) ([]escrow.Reply, error) {
	for i := range cmds {
		switch cmds[i].Kind {
		case escrow.CmdRestock, escrow.CmdWriteOff, escrow.CmdRecount, escrow.CmdStock:
		default:
			return nil, fmt.Errorf("region: DoBatch runs stock commands only, got %s", cmds[i].Kind)
		}
	}
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if !r.ready.Load() {
		return nil, fmt.Errorf("%w: rebuilding state from storage", ErrStorage)
	}
	timeout = r.awaitProbation(ctx, escrow.CmdRestock, timeout)
	if timeout <= 0 {
		timeout = r.cfg.RequestTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	reqs := make([]*request, 0, len(cmds))
	// abandon leaves the requests in flight to the loop (it may still
	// write to them); those already answered go back to the pool.
	abandon := func(err error) ([]escrow.Reply, error) {
		for _, q := range reqs {
			select {
			case <-q.done:
				q.cmd, q.reply, q.err = escrow.Command{}, escrow.Reply{}, nil
				requestPool.Put(q)
			default:
			}
		}
		return nil, err
	}
	for i := range cmds {
		q := requestPool.Get().(*request)
		q.cmd = cmds[i]
		select {
		case r.queue <- q:
			reqs = append(reqs, q)
		case <-ctx.Done():
			requestPool.Put(q)
			return abandon(ctx.Err())
		case <-timer.C:
			requestPool.Put(q)
			return abandon(context.DeadlineExceeded)
		case <-r.loopDone:
			requestPool.Put(q)
			return abandon(ErrClosed)
		}
	}
	out := make([]escrow.Reply, len(cmds))
	for i, q := range reqs {
		select {
		case <-q.done:
		case <-ctx.Done():
			return abandon(ctx.Err())
		case <-timer.C:
			return abandon(context.DeadlineExceeded)
		case <-r.loopDone:
			select {
			case <-q.done:
			default:
				return abandon(ErrClosed)
			}
		}
		if q.err != nil {
			return abandon(q.err)
		}
		out[i] = q.reply
	}
	for _, q := range reqs {
		q.cmd, q.reply, q.err = escrow.Command{}, escrow.Reply{}, nil
		requestPool.Put(q)
	}
	return out, nil
}
