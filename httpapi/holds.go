package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/api/view"
	"github.com/holdfast-io/holdfast/escrow"
)

// parseTTL parses a Go duration within [MinTTL, the max hold lifetime].
func (s *Server) parseTTL(v string) (time.Duration, error) {
	return parseDuration("ttl", "10m", v, s.maxTTL())
}

func (s *Server) maxTTL() time.Duration {
	if s.maxLifetime == 0 {
		return escrow.DefaultMaxLife
	}
	return s.maxLifetime
}

// parseBodyTTL is parseTTL for a pooled create body: when v is the ttl
// the body parsed last (clients send the same one again and again), the
// duration parsed then is checked again instead of parsed again
// (time.ParseDuration is a pure function of v; the range, the server's,
// is checked every time).
func (s *Server) parseBodyTTL(cb *createBody, v string) (time.Duration, error) {
	if cb.ttlParsed && v == cb.ttlText {
		return checkDuration("ttl", cb.ttlDur, s.maxTTL())
	}
	d, err := time.ParseDuration(v)
	if err != nil || v[0] == '+' || v[0] == '-' {
		cb.ttlParsed = false
		return parseDuration("ttl", "10m", v, s.maxTTL()) // its error
	}
	cb.ttlText, cb.ttlDur, cb.ttlParsed = v, d, true
	return checkDuration("ttl", d, s.maxTTL())
}

// parseDuration parses the duration field of a request within [MinTTL,
// max]. A duration is written without a sign (time.ParseDuration takes one).
func parseDuration(field, example, v string, max time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || v[0] == '+' || v[0] == '-' {
		return 0, fmt.Errorf("%s %q is not a duration like %q", field, v, example)
	}
	return checkDuration(field, d, max)
}

// checkDuration is parseDuration's range check of d.
func checkDuration(field string, d, max time.Duration) (time.Duration, error) {
	if d < escrow.MinTTL || d > max {
		return 0, fmt.Errorf("%s must be between %v and %v, got %v", field, escrow.MinTTL, max, d)
	}
	return d, nil
}

func (s *Server) effectiveDefaultTTL() time.Duration {
	if d := s.defaultTTL; d > 0 {
		return d
	}
	return escrow.DefaultTTL
}

func (s *Server) createHold(w http.ResponseWriter, req *http.Request) {
	s.createHoldX(exch(w, req))
}

// createHoldX serves POST /v1/holds on either server.
func (s *Server) createHoldX(x exchange) {
	key, n := x.headerN("Idempotency-Key")
	if n > 1 {
		s.badRequest(x, "at most one Idempotency-Key header")
		return
	}
	if key != "" {
		if err := escrow.ValidIdemKey(key); err != nil {
			s.badRequest(x, err.Detail)
			return
		}
	}
	cb := acquireCreateBody()
	defer releaseCreateBody(cb)
	if !s.decodeBody(x, cb, false) {
		return
	}
	body := &cb.req
	if len(body.Items) == 0 {
		s.badRequest(x, "items: a hold needs at least one item")
		return
	}
	if len(body.Items) > escrow.MaxLines {
		s.badRequest(x, fmt.Sprintf("items: at most %d lines, got %d", escrow.MaxLines, len(body.Items)))
		return
	}
	if err := escrow.ValidCart(body.Cart); err != nil {
		s.badRequest(x, err.Detail)
		return
	}
	cmd := escrow.Command{Kind: escrow.CmdHold, IdemKey: key, Lines: make([]escrow.Line, len(body.Items)),
		Partial: body.Partial, Cart: body.Cart}
	for i, it := range body.Items {
		cmd.Lines[i] = escrow.Line{SKU: it.SKU, Qty: it.Qty}
	}
	if msg := s.lineLocations(&cmd, body.Items); msg != "" {
		s.badRequest(x, msg)
		return
	}
	if body.TTL != "" {
		d, err := s.parseBodyTTL(cb, body.TTL)
		if err != nil {
			s.badRequest(x, err.Error())
			return
		}
		cmd.TTL = d
	}
	if len(body.Metadata) > 0 && !bytes.Equal(body.Metadata, []byte("null")) {
		var c bytes.Buffer
		if err := json.Compact(&c, body.Metadata); err != nil {
			s.badRequest(x, "metadata: "+err.Error())
			return
		}
		if c.Len() > escrow.MaxMetaLen {
			s.badRequest(x, fmt.Sprintf("metadata must be at most %d bytes of compact JSON, got %d", escrow.MaxMetaLen, c.Len()))
			return
		}
		cmd.Meta = c.String()
	}
	if body.Wait != "" {
		d, err := s.parseWait(body.Wait)
		if err != nil {
			s.badRequest(x, err.Error())
			return
		}
		cmd.Wait = d
	}
	if key != "" {
		cmd.IdemHash = s.idemHash(&cmd)
	}
	rep, ok := s.do(x, cmd)
	if !ok {
		return
	}
	if rep.Wait != nil {
		s.writeWaitJoined(x, &rep)
		return
	}
	status := http.StatusCreated
	if rep.Replayed {
		status = http.StatusOK
		x.setHeader("Idempotent-Replayed", "true")
	}
	x.setHeaderJoined("Location", "/v1/holds/", rep.Hold.ID)
	s.writeHold(x, status, rep.Hold)
}

// idemHash fingerprints the normalized request: the cart as the core
// normalizes it (sorted, merged), the effective TTL and the metadata. Two
// bodies that mean the same hold hash the same, whatever their spelling.
func (s *Server) idemHash(cmd *escrow.Command) uint64 {
	h := fnv.New64a()
	lines := cmd.Lines
	if norm, err := escrow.NormalizeLines(cmd.Lines); err == nil {
		lines = norm
	}
	var b []byte
	for _, l := range lines {
		b = strconv.AppendQuote(b, l.SKU)
		b = append(b, ':')
		b = strconv.AppendUint(b, l.Qty, 10)
		b = append(b, ',')
	}
	ttl := cmd.TTL
	if ttl == 0 {
		ttl = s.effectiveDefaultTTL()
	}
	b = append(b, "|ttl="...)
	b = strconv.AppendInt(b, int64(ttl), 10)
	if cmd.Partial {
		b = append(b, "|partial"...)
	}
	if cmd.Cart != "" {
		b = append(b, "|cart="...)
		b = append(b, cmd.Cart...)
	}
	b = append(b, "|meta="...)
	b = append(b, cmd.Meta...)
	for _, ll := range cmd.Locations { // without locations the hash is as before them
		b = append(b, "|loc="...)
		b = strconv.AppendQuote(b, ll.SKU)
		for _, l := range ll.Locations {
			b = append(b, ':')
			b = append(b, l...)
		}
		if ll.Split {
			b = append(b, ":split"...)
		}
	}
	if cmd.Wait > 0 { // without wait the hash is as before the waitlist
		b = append(b, "|wait="...)
		b = strconv.AppendInt(b, int64(cmd.Wait), 10)
	}
	h.Write(b)
	return h.Sum64()
}

// holdCmd serves the commands on one hold: get, confirm, release, extend.
func (s *Server) holdCmd(kind escrow.CommandKind) func(w http.ResponseWriter, req *http.Request) {
	return func(w http.ResponseWriter, req *http.Request) {
		s.holdCmdX(exch(w, req), kind, req.PathValue("id"))
	}
}

// holdCmdX serves a command on hold id on either server.
func (s *Server) holdCmdX(x exchange, kind escrow.CommandKind, id string) {
	cmd := escrow.Command{Kind: kind, HoldID: id}
	if _, err := escrow.OwnerOf(cmd.HoldID); err != nil {
		s.escrowProblem(x, err)
		return
	}
	switch kind {
	case escrow.CmdExtend:
		var body api.ExtendRequest
		if !s.decodeBody(x, &body, false) {
			return
		}
		if body.TTL == "" {
			s.badRequest(x, "ttl is required")
			return
		}
		d, err := s.parseTTL(body.TTL)
		if err != nil {
			s.badRequest(x, err.Error())
			return
		}
		cmd.TTL = d
	case escrow.CmdConfirm, escrow.CmdRelease:
		var body struct{}
		if !s.decodeBody(x, &body, true) {
			return
		}
	}
	rep, ok := s.do(x, cmd)
	if !ok {
		return
	}
	s.writeHold(x, http.StatusOK, rep.Hold)
}

// holdJSON is the API representation of a hold (writeHold's fallback and
// the reference of its hand-written encoding).
func holdJSON(h *escrow.Hold) *api.Hold {
	v := view.Hold(h)
	return &v
}
