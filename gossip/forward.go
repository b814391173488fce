package gossip

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// Forward runs a command at another region over NATS request/reply and
// returns its reply with cmd.ReqID: an operation on a hold (get, confirm,
// release, extend) at the region that owns the hold, or a routed hold
// (cmd.Routed) at the home of a scarce SKU, which serves it like a local
// hold. A plain hold is refused (see EncodeForwardRequest). When the region
// cannot answer within ForwardTimeout (no subscriber, link down, region
// overloaded or failing) the error wraps region.ErrUnreachable (the region
// runtime's Transport contract owns these errors); a cancelled ctx returns
// ctx's error.
func (t *Transport) Forward(ctx context.Context, owner string, cmd escrow.Command) (escrow.Reply, error) {
	start := time.Now()
	rp, result, err := t.forward(ctx, owner, cmd)
	t.m.forwards.WithLabelValues(result).Inc()
	if result == "ok" {
		t.m.forwardSeconds.Observe(time.Since(start).Seconds())
	}
	return rp, err
}

func (t *Transport) forward(ctx context.Context, owner string, cmd escrow.Command) (escrow.Reply, string, error) {
	if err := escrow.ValidRegion(owner); err != nil {
		return escrow.Reply{}, "error", fmt.Errorf("gossip: forward: owner: %w", err)
	}
	if owner == t.cfg.Region {
		return escrow.Reply{}, "error", fmt.Errorf("gossip: forward of a %s command to %s, this region", cmd.Kind, owner)
	}
	if !t.isMember(owner) {
		// Whoever answers on a non-member's subject is nobody this region
		// trusts: its reply would be dropped, so the request is not sent.
		t.m.rejected.WithLabelValues("non_member").Inc()
		return escrow.Reply{}, "error", fmt.Errorf("%w: %w: %s is not a member of the cluster", region.ErrUnreachable, region.ErrRefused, owner)
	}
	data, err := EncodeForwardRequest(nil, &ForwardRequest{From: t.cfg.Region, Cmd: cmd})
	if err != nil {
		return escrow.Reply{}, "error", err
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return escrow.Reply{}, "error", ErrClosed
	}
	if !t.Connected() {
		return escrow.Reply{}, "unreachable", fmt.Errorf("%w: %w: %s", region.ErrUnreachable, region.ErrNotConnected, owner)
	}
	rctx, cancel := context.WithTimeout(ctx, t.cfg.ForwardTimeout)
	defer cancel()
	subject := HoldSubject(t.cfg.Cluster, owner)
	data = t.keys.Seal(nil, subject, data, time.Now())
	msg, err := t.nc.RequestWithContext(rctx, subject, data)
	if err != nil {
		if ctx.Err() != nil {
			return escrow.Reply{}, "error", fmt.Errorf("gossip: forward to %s: %w", owner, ctx.Err())
		}
		if errors.Is(err, nats.ErrNoResponders) {
			// Nobody serves the region's subject: it is not there now
			// (stopped, or its transport is down), not merely slow.
			return escrow.Reply{}, "unreachable", fmt.Errorf("%w: %w: %s", region.ErrUnreachable, region.ErrNoResponders, owner)
		}
		// Our timeout, a link that dropped mid-request: the owner is not
		// reachable from here now.
		return escrow.Reply{}, "unreachable", fmt.Errorf("%w: %s: %v", region.ErrUnreachable, owner, err)
	}
	env, err := t.keys.Open(replyContext(data), msg.Data)
	if err == nil {
		err = t.keys.speaksFor(&env, owner, false)
	}
	if err != nil {
		t.reject("signature", subject, fmt.Errorf("forward reply: %w", err))
		return escrow.Reply{}, "error", fmt.Errorf("gossip: forward reply from %s: %w", owner, err)
	}
	fr, err := DecodeForwardReply(env.Payload)
	if err != nil {
		t.m.decodeErrs.WithLabelValues(decodeReason(err)).Inc()
		return escrow.Reply{}, "error", fmt.Errorf("gossip: forward reply from %s: %w", owner, err)
	}
	if fr.Failure != "" && fr.Refused {
		return escrow.Reply{}, "failure", fmt.Errorf("%w: %w: %s: %s", region.ErrUnreachable, region.ErrRefused, owner, fr.Failure)
	}
	if fr.Failure != "" {
		return escrow.Reply{}, "failure", fmt.Errorf("%w: %s: %s", region.ErrUnreachable, owner, fr.Failure)
	}
	rp := fr.Reply
	rp.ReqID = cmd.ReqID
	if rp.Kind != cmd.Kind {
		return escrow.Reply{}, "error", fmt.Errorf("gossip: forward to %s: %s reply to a %s command", owner, rp.Kind, cmd.Kind)
	}
	return rp, "ok", nil
}

// serveForward answers a command forwarded by another region (an operation
// on a hold of this region, or a hold routed here). It runs
// on the subscription's goroutine, so the work goes to a bounded set of
// goroutines; beyond that the caller gets a failure (→ 503) at once.
func (t *Transport) serveForward(msg *nats.Msg) {
	if msg.Reply == "" {
		t.m.forwardsServed.WithLabelValues("no_reply").Inc()
		return
	}
	select {
	case t.fwdSem <- struct{}{}:
	default:
		t.m.forwardsServed.WithLabelValues("busy").Inc()
		t.respond(msg, &ForwardReply{Failure: "owner " + t.cfg.Region + " is busy", Refused: true})
		return
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		<-t.fwdSem
		return
	}
	t.fwdWG.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.fwdWG.Done()
		defer func() { <-t.fwdSem }()
		t.runForward(msg)
	}()
}

func (t *Transport) runForward(msg *nats.Msg) {
	subject := HoldSubject(t.cfg.Cluster, t.cfg.Region)
	env, err := t.keys.Open(subject, msg.Data)
	if err != nil {
		t.reject("signature", subject, fmt.Errorf("forwarded command: %w", err))
		t.m.forwardsServed.WithLabelValues("signature").Inc()
		t.respond(msg, &ForwardReply{Failure: "refused: " + err.Error(), Refused: true})
		return
	}
	if t.keys.Signed() {
		switch r := t.nonces.check(env.Signer, env.Nonce, env.Time, time.Now()); r {
		case nonceOK:
		case nonceFull:
			t.m.forwardsServed.WithLabelValues("busy").Inc()
			t.respond(msg, &ForwardReply{Failure: "owner " + t.cfg.Region + " is busy (too many recent commands from " + env.Signer + ")", Refused: true})
			return
		default:
			t.reject("replay", subject, fmt.Errorf("forwarded command from %s: %s (nonce %d, signed at %v)", env.Signer, r, env.Nonce, env.Time))
			t.m.forwardsServed.WithLabelValues("replay").Inc()
			t.respond(msg, &ForwardReply{Failure: "refused: " + r + " forwarded command", Refused: true})
			return
		}
	}
	req, err := DecodeForwardRequest(env.Payload)
	if err == nil {
		if serr := t.keys.speaksFor(&env, req.From, false); serr != nil {
			t.reject("signature", subject, serr)
			t.m.forwardsServed.WithLabelValues("signature").Inc()
			t.respond(msg, &ForwardReply{Failure: "refused: " + serr.Error(), Refused: true})
			return
		}
	}
	if err != nil {
		reason := decodeReason(err)
		t.m.decodeErrs.WithLabelValues(reason).Inc()
		t.limit.warn(t.log, "decode-forward", "dropping undecodable forwarded command", "err", err)
		t.m.forwardsServed.WithLabelValues("bad_request").Inc()
		t.respond(msg, &ForwardReply{Failure: "bad request: " + err.Error(), Refused: true})
		return
	}
	if !t.isMember(req.From) {
		t.reject("non_member", subject, fmt.Errorf("forwarded %s command from %s, which is not a member of the cluster", req.Cmd.Kind, req.From))
		t.m.forwardsServed.WithLabelValues("non_member").Inc()
		t.respond(msg, &ForwardReply{Failure: "refused: region " + req.From + " is not a member of the cluster " + t.cfg.Cluster, Refused: true})
		return
	}
	// A hold id of another region is answered by the node itself
	// (CodeNotOwner), so it is not checked here; a routed hold is served
	// from this region's slice like a local one (the Inbox accepts only
	// routed holds, and never routes them again).
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.ForwardTimeout)
	defer cancel()
	rp, err := t.inbox.Execute(ctx, req.Cmd)
	if err != nil {
		result := "failure"
		if errors.Is(err, context.DeadlineExceeded) {
			result = "timeout"
		}
		t.m.forwardsServed.WithLabelValues(result).Inc()
		t.respond(msg, &ForwardReply{Failure: err.Error(), Refused: errors.Is(err, region.ErrNotRun)})
		return
	}
	t.m.forwardsServed.WithLabelValues("ok").Inc()
	t.respond(msg, &ForwardReply{Reply: rp})
}

func (t *Transport) respond(msg *nats.Msg, fr *ForwardReply) {
	data, err := EncodeForwardReply(nil, fr)
	if err != nil {
		t.limit.warn(t.log, "encode-forward", "cannot encode forward reply", "err", err)
		data, _ = EncodeForwardReply(nil, &ForwardReply{Failure: "owner cannot encode its reply"})
	}
	data = t.keys.Seal(nil, replyContext(msg.Data), data, time.Now())
	if err := msg.Respond(data); err != nil {
		t.limit.warn(t.log, "respond-forward", "cannot answer forwarded command", "err", err)
	}
}

// replyContext is what a forward reply's signature is bound to: the
// signature of the request it answers, so that a reply recorded for one
// request cannot answer another. Unsigned requests have none.
func replyContext(request []byte) string {
	if !IsEnvelope(request) || len(request) < sigLen {
		return "reply"
	}
	return "reply:" + string(request[len(request)-sigLen:])
}
