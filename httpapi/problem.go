package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// ProblemTypeBase prefixes every problem type URI; the slug after it is
// stable (escrow.Code.String() for core errors, the constants below for
// runtime ones).
const ProblemTypeBase = "https://holdfast.dev/problems/"

// Problem slugs of the runtime (core errors use escrow.Code.String()).
const (
	ProblemOverloaded       = "overloaded"
	ProblemStorage          = "storage-unavailable"
	ProblemOwnerUnreachable = "owner-unreachable"
	ProblemUnavailable      = "unavailable" // shutting down
	ProblemTimeout          = "timeout"
	ProblemUnauthorized     = "unauthorized"
	ProblemForbidden        = "forbidden"
	ProblemTooLarge         = "payload-too-large"
	ProblemMediaType        = "unsupported-media-type"
	ProblemMethod           = "method-not-allowed"
	ProblemRoute            = "route-not-found"
	ProblemNotReady         = "not-ready"
)

var problemTitles = map[string]string{
	escrow.CodeInvalid.String():            "Invalid request",
	escrow.CodeInsufficientStock.String():  "Insufficient stock",
	escrow.CodeUnknownSKU.String():         "Unknown SKU",
	escrow.CodeNotFound.String():           "Hold not found",
	escrow.CodeConflict.String():           "Conflict with the hold's state",
	escrow.CodeIdempotencyReuse.String():   "Idempotency key reused with a different request",
	escrow.CodeNotOwner.String():           "Hold belongs to another region",
	escrow.CodeInvariant.String():          "Internal invariant violated",
	escrow.CodeFenced.String():             "Region fenced: it refuses writes",
	escrow.CodeHoldCapacity.String():       "Region keeps its maximum of holds",
	escrow.CodePreconditionFailed.String(): "The SKU's stock moved since the version given in If-Match",
	escrow.CodeStaleView.String():          "This region's view of a peer is too old for a recount",
	escrow.CodeHomeUnreachable.String():    "The region an earlier attempt of this hold went to cannot be reached",
	escrow.CodeWaitlistFull.String():       "Waitlist full",
	ProblemOverloaded:                      "Region overloaded",
	ProblemStorage:                         "Storage unavailable",
	ProblemOwnerUnreachable:                "Owning region unreachable",
	ProblemUnavailable:                     "Region shutting down",
	ProblemTimeout:                         "Request timed out",
	ProblemUnauthorized:                    "Unauthorized",
	ProblemForbidden:                       "Forbidden",
	ProblemTooLarge:                        "Payload too large",
	ProblemMediaType:                       "Unsupported media type",
	ProblemMethod:                          "Method not allowed",
	ProblemRoute:                           "No such route",
	ProblemNotReady:                        "Not ready",
}

// codeStatus maps each escrow.Code to its HTTP status.
var codeStatus = map[escrow.Code]int{
	escrow.CodeInvalid:            http.StatusBadRequest,
	escrow.CodeInsufficientStock:  http.StatusConflict,
	escrow.CodeUnknownSKU:         http.StatusNotFound,
	escrow.CodeNotFound:           http.StatusNotFound,
	escrow.CodeConflict:           http.StatusConflict,
	escrow.CodeIdempotencyReuse:   http.StatusUnprocessableEntity,
	escrow.CodeNotOwner:           http.StatusServiceUnavailable,
	escrow.CodeInvariant:          http.StatusInternalServerError,
	escrow.CodeFenced:             http.StatusServiceUnavailable,
	escrow.CodeHoldCapacity:       http.StatusServiceUnavailable,
	escrow.CodeWaitlistFull:       http.StatusTooManyRequests,
	escrow.CodePreconditionFailed: http.StatusPreconditionFailed,
	escrow.CodeStaleView:          http.StatusServiceUnavailable,
	escrow.CodeHomeUnreachable:    http.StatusServiceUnavailable,
}

// problem writes an RFC 9457 problem document.
func (s *Server) problem(x exchange, status int, slug, detail string, extra func(p *api.Problem)) {
	p := api.Problem{Type: ProblemTypeBase + slug, Title: problemTitles[slug], Status: status, Detail: detail,
		Instance: x.path(), Region: s.name}
	if p.Title == "" {
		p.Title = http.StatusText(status)
	}
	if extra != nil {
		extra(&p)
	}
	switch status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		if x.respHeader("Retry-After") == "" {
			x.setHeader("Retry-After", "1")
		}
	}
	b, _ := json.Marshal(&p) // a Problem always marshals
	x.send(status, contentTypeProblem[0], append(b, '\n'))
}

// fenceRetryAfter is the Retry-After of a fenced answer: a probation ends
// within seconds; a fence lasts until the region is replaced. The runtime
// publishes a fence that is not a probation only once it is sticky.
func (s *Server) fenceRetryAfter() string {
	if st := s.rt.Fence(); st.Fenced && !st.Probation {
		return "60"
	}
	return "1"
}

// escrowProblem writes the problem of an escrow error.
func (s *Server) escrowProblem(x exchange, e *escrow.Error) {
	if e.Code == escrow.CodeRouted {
		// DoWithin sends a routed hold to its home or runs it here: a
		// routed answer reaching a client is a runtime bug, not a state
		// of the hold the client could act on.
		s.rt.NoteRoutedBug()
		s.log.Error("a routed hold answer reached the HTTP API", "owner", e.Owner, "detail", e.Detail)
		s.problem(x, http.StatusInternalServerError, escrow.CodeInvariant.String(), "internal error: a routed hold was not served", nil)
		return
	}
	status, ok := codeStatus[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	switch e.Code {
	case escrow.CodeFenced:
		x.setHeader("Retry-After", s.fenceRetryAfter())
	case escrow.CodeHoldCapacity, escrow.CodeStaleView, escrow.CodeHomeUnreachable:
		x.setHeader("Retry-After", "1")
	case escrow.CodeWaitlistFull:
		x.setHeader("Retry-After", "5")
	}
	s.problem(x, status, e.Code.String(), e.Detail, func(p *api.Problem) {
		switch e.Code {
		case escrow.CodeInsufficientStock:
			p.SKU, p.Location = escrow.SplitStockKey(e.SKU)
			avail := e.Available
			p.Available = &avail
		case escrow.CodeUnknownSKU:
			p.SKU, p.Location = escrow.SplitStockKey(e.SKU)
		case escrow.CodeNotOwner:
			p.Owner = e.Owner
		}
	})
}

// runtimeProblem writes the problem of an error returned by DoWithin.
func (s *Server) runtimeProblem(x exchange, err error) {
	switch {
	case errors.Is(err, region.ErrOverloaded):
		s.problem(x, http.StatusServiceUnavailable, ProblemOverloaded, "the region's request queue is full; retry shortly", nil)
	case errors.Is(err, region.ErrStorage):
		s.problem(x, http.StatusServiceUnavailable, ProblemStorage, "the request was not acknowledged (it may or may not have been stored); retry shortly, with the same Idempotency-Key for holds: "+err.Error(), nil)
	case errors.Is(err, region.ErrOwnerUnreachable):
		var ou *region.OwnerUnreachableError
		owner := ""
		if errors.As(err, &ou) {
			owner = ou.Owner
		}
		s.problem(x, http.StatusServiceUnavailable, ProblemOwnerUnreachable, err.Error()+"; retry shortly",
			func(p *api.Problem) { p.Owner = owner })
	case errors.Is(err, region.ErrClosed):
		s.problem(x, http.StatusServiceUnavailable, ProblemUnavailable, "the region is shutting down", nil)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		s.problem(x, http.StatusServiceUnavailable, ProblemTimeout,
			"no durable answer in time; the request may or may not have taken effect (retry with the same Idempotency-Key)", nil)
	default:
		s.log.Error("unexpected runtime error", "err", err)
		s.problem(x, http.StatusInternalServerError, escrow.CodeInvariant.String(), "internal error", nil)
	}
}

// badRequest writes a 400 invalid problem.
func (s *Server) badRequest(x exchange, detail string) {
	s.problem(x, http.StatusBadRequest, escrow.CodeInvalid.String(), detail, nil)
}

// bodyTooLarge answers a request body over max_body_bytes (both servers:
// decodeBody on net/http, fasthttp's own read limit), 413.
func (s *Server) bodyTooLarge(x exchange) {
	s.problem(x, http.StatusRequestEntityTooLarge, ProblemTooLarge,
		fmt.Sprintf("body must be at most %d bytes", s.maxBodyBytes), nil)
}

// importTooLarge answers an import over import_max_bytes (both servers), 413.
func (s *Server) importTooLarge(x exchange) {
	s.problem(x, http.StatusRequestEntityTooLarge, ProblemTooLarge,
		fmt.Sprintf("an import must be at most %d bytes (import_max_bytes); split the file", s.imp.maxBytes), nil)
}
