package region

import "errors"

// Runtime errors of Do and Execute. Escrow errors (insufficient stock, not
// found, ...) are not errors here: they come back in Reply.Err.
var (
	// ErrOverloaded: the request queue is full; retry after a short wait.
	ErrOverloaded = errors.New("region: overloaded, request queue full")
	// ErrStorage: the write of the request's batch failed (nothing of it was
	// acknowledged), or the region is rebuilding its state from storage.
	ErrStorage = errors.New("region: storage unavailable")
	// ErrClosed: the region is shutting down.
	ErrClosed = errors.New("region: closed")
	// ErrOwnerUnreachable: the hold belongs to another region that cannot be
	// reached now (no transport, or the transport gave up).
	ErrOwnerUnreachable = errors.New("region: owner region unreachable")
)

// Errors of the Transport contract. A Transport (gossip.Transport) wraps
// them so the runtime can tell "certainly not run there" from "unknown";
// they are region's because the runtime is what acts on them.
var (
	// ErrUnreachable is wrapped by Forward when the owning region cannot be
	// reached in time (no responders, timeout, not connected, owner failing).
	// The region runtime maps it to 503 with Retry-After.
	ErrUnreachable = errors.New("region: region unreachable")
	// ErrNoResponders is wrapped by Forward, with ErrUnreachable, when no
	// region serves the target's subject: NATS knows of no subscriber, so the
	// region is not there (stopped, or cut off from NATS) rather than slow.
	// The region runtime tells its node (escrow.Input.Unreachable), which then
	// stops routing holds to it until it is heard from again.
	ErrNoResponders = errors.New("region: no responders")
	// ErrNotConnected is wrapped by Forward, with ErrUnreachable, when this
	// region is not connected to NATS: the command was not sent.
	ErrNotConnected = errors.New("region: not connected to NATS")
	// ErrRefused is wrapped by Forward, with ErrUnreachable, when the target
	// region answered that it did not run the command (busy, not allowed, bad
	// request, or its Inbox said ErrNotRun). Together with ErrNoResponders and
	// ErrNotConnected it tells a caller that the command was certainly not
	// applied there, so it may run it elsewhere; any other failure (a timeout,
	// the target's store failing) leaves that unknown.
	ErrRefused = errors.New("region: refused")
	// ErrNotRun is what an Inbox's Execute wraps when it did not run the
	// command at all (its queue was full, it is closing): the transport then
	// answers Refused, and the caller may run the command elsewhere.
	ErrNotRun = errors.New("region: command not run")
)
