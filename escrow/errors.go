package escrow

import (
	"errors"
	"fmt"
)

// Code classifies an Error. Codes are stable: runtimes map them to HTTP
// statuses and problem types, so never renumber or rename them.
type Code uint8

const (
	CodeInvalid           Code = iota + 1 // malformed or out-of-range input
	CodeInsufficientStock                 // not enough units here (after borrowing)
	CodeUnknownSKU                        // no region is known to stock the SKU
	CodeNotFound                          // no such hold
	CodeConflict                          // transition impossible from the hold's state
	CodeIdempotencyReuse                  // idempotency key reused with a different request
	CodeNotOwner                          // the hold belongs to another region
	CodeInvariant                         // an invariant check failed (a bug)
	// CodeRouted: the hold is for a scarce SKU homed at region Owner; the
	// runtime sends the same command there with Routed set. Nothing
	// changed here.
	CodeRouted
	// CodeFenced: the region refuses every write because its store went
	// back in time (a peer has seen more of its rows than it has), or it
	// started with an empty store and peers have not yet confirmed that it
	// is new (probation). See fence.go and docs/operations.md.
	CodeFenced
	// CodeHoldCapacity: the region keeps its maximum of live holds
	// (Config.MaxHolds); a new hold can be granted once some finish or
	// expire. Not a statement about stock.
	CodeHoldCapacity
	// CodeWaitlistFull: the waitlist of a SKU (or the region's) keeps its
	// maximum of entries; retry later. Not a statement about stock.
	CodeWaitlistFull
	// CodePreconditionFailed: Command.IfMatch names another version of the
	// SKU's stock than the current one (it moved); nothing changed.
	CodePreconditionFailed
	// CodeStaleView: a recount needs a recent view of every peer's row of
	// the SKU and some peer's is older than Config.RecountMaxLag (or has a
	// gap); nothing changed. Command.Force overrides.
	CodeStaleView
	// CodeHomeUnreachable: a retry of a hold this region routed to a scarce
	// SKU's home (region Owner), which cannot be reached now. The home may
	// have granted the earlier attempt, so the hold is not run here too (a
	// second hold for one idempotency key); nothing changed, retry later.
	CodeHomeUnreachable
)

var codeNames = [...]string{
	CodeInvalid:            "invalid",
	CodeInsufficientStock:  "insufficient-stock",
	CodeUnknownSKU:         "unknown-sku",
	CodeNotFound:           "not-found",
	CodeConflict:           "conflict",
	CodeIdempotencyReuse:   "idempotency-key-reuse",
	CodeNotOwner:           "not-owner",
	CodeInvariant:          "invariant",
	CodeRouted:             "routed",
	CodeFenced:             "fenced",
	CodeHoldCapacity:       "hold-capacity",
	CodeWaitlistFull:       "waitlist-full",
	CodePreconditionFailed: "precondition-failed",
	CodeStaleView:          "stale-view",
	CodeHomeUnreachable:    "home-unreachable",
}

// String returns the stable slug of the code, as used in problem types.
func (c Code) String() string {
	if int(c) < len(codeNames) && codeNames[c] != "" {
		return codeNames[c]
	}
	return fmt.Sprintf("code-%d", uint8(c))
}

// Error is the typed error every escrow operation returns.
type Error struct {
	Code   Code
	Detail string
	// SKU and Available are set for CodeInsufficientStock: the first SKU that
	// could not be covered and the units available for it at this region.
	SKU       string
	Available uint64
	// Owner is set for CodeNotOwner (the region that owns the hold),
	// CodeRouted (the region to send the hold to) and CodeHomeUnreachable
	// (the region an earlier attempt was routed to).
	Owner string
}

func (e *Error) Error() string { return e.Code.String() + ": " + e.Detail }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err if it is an *Error, and 0 otherwise.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}
