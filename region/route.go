package region

// Where a command runs: here, at the region owning its hold (forward), or
// at the home of a scarce SKU (route), and commands forwarded here by peers
// (Execute).

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	var start, deadline time.Time
	if timeout > 0 {
		start = time.Now()
		deadline = start.Add(timeout)
	}
	if owner := r.foreignOwner(&cmd); owner != "" {
		return r.forwardBy(ctx, owner, cmd, deadline)
	}
	rep, err := r.submitNoting(ctx, &cmd, "", deadline, start)
	if err != nil || rep.Err == nil {
		return rep, err
	}
	if rep = r.getFromStore(&cmd, rep); rep.Err == nil {
		return rep, nil
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
	rep, err := r.submitNoting(ctx, &cmd, gone, deadline, time.Time{})
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
	case escrow.CmdGet, escrow.CmdConfirm, escrow.CmdRelease, escrow.CmdExtend, escrow.CmdWaitGet, escrow.CmdWaitCancel:
	case escrow.CmdHold:
		if !cmd.Routed {
			return escrow.Reply{Kind: cmd.Kind, Err: &escrow.Error{Code: escrow.CodeInvalid,
				Detail: "a hold is forwarded only when routed to the home of a scarce SKU"}}, nil
		}
	default:
		return escrow.Reply{Kind: cmd.Kind, Err: &escrow.Error{Code: escrow.CodeInvalid,
			Detail: "only get, confirm, release, extend, waitlist get and cancel, and routed holds may be forwarded, not " + cmd.Kind.String()}}, nil
	}
	if r.closed.Load() {
		return escrow.Reply{}, fmt.Errorf("%w: %w", ErrNotRun, ErrClosed)
	}
	rep, err := r.submit(ctx, &cmd, time.Time{})
	if err == nil {
		rep = r.getFromStore(&cmd, rep)
	}
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
	case escrow.CmdGet, escrow.CmdConfirm, escrow.CmdRelease, escrow.CmdExtend, escrow.CmdWaitGet, escrow.CmdWaitCancel:
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
