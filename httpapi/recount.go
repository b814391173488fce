package httpapi

import (
	"net/http"
	"strings"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
)

// setETag sets the ETag of a stock answer: the SKU's version, quoted.
func setETag(w http.ResponseWriter, v *escrow.StockView) {
	if v != nil && v.Version != "" {
		w.Header().Set("ETag", `"`+v.Version+`"`)
	}
}

// maxIfMatchLen bounds the If-Match header (a version is ~45 bytes).
const maxIfMatchLen = 128

// ifMatch parses an optional If-Match header: one strong entity tag, or
// "*" (any version: no check). It answers 400 and returns false for
// anything else (weak tags, lists, several headers).
func (s *Server) ifMatch(w http.ResponseWriter, req *http.Request) (string, bool) {
	vals := req.Header.Values("If-Match")
	if len(vals) == 0 {
		return "", true
	}
	v := strings.TrimSpace(vals[0])
	switch {
	case len(vals) > 1 || strings.Contains(v, ","):
		s.badRequest(exch(w, req), "If-Match: give one entity tag")
	case len(v) > maxIfMatchLen:
		s.badRequest(exch(w, req), "If-Match: too long")
	case v == "*":
		return "", true
	case strings.HasPrefix(v, "W/"):
		s.badRequest(exch(w, req), "If-Match: weak entity tags are not accepted; use the ETag of GET /v1/skus/{sku}")
	case len(v) < 3 || v[0] != '"' || v[len(v)-1] != '"' || strings.ContainsAny(v[1:len(v)-1], "\" "):
		s.badRequest(exch(w, req), `If-Match: not a quoted entity tag like "s12r0"`)
	default:
		return v[1 : len(v)-1], true
	}
	return "", false
}

// stockTarget reads what every write to a SKU's stock starts with: the
// SKU of the path and the If-Match version, answering the problem itself
// when either is bad.
func (s *Server) stockTarget(w http.ResponseWriter, req *http.Request) (sku, ifMatch string, ok bool) {
	sku = req.PathValue("sku")
	if err := escrow.ValidSKU(sku); err != nil {
		s.escrowProblem(exch(w, req), err)
		return "", "", false
	}
	ifMatch, ok = s.ifMatch(w, req)
	return sku, ifMatch, ok
}

// recount serves PUT /v1/skus/{sku}/stock.
func (s *Server) recount(w http.ResponseWriter, req *http.Request) {
	sku, ifMatch, ok := s.stockTarget(w, req)
	if !ok {
		return
	}
	var body api.RecountRequest
	if !s.decodeBody(exch(w, req), &body, false) {
		return
	}
	if body.OnHand == nil || body.AsOf == nil {
		s.badRequest(exch(w, req), "on_hand and as_of are required")
		return
	}
	if *body.OnHand > escrow.MaxOnHand {
		s.badRequest(exch(w, req), "on_hand must be at most 1000000000")
		return
	}
	key, ok := s.stockKey(w, req, sku, body.Location)
	if !ok {
		return
	}
	cmd := escrow.Command{Kind: escrow.CmdRecount, SKU: key, OnHand: *body.OnHand, AsOf: *body.AsOf,
		Force: body.Force, IfMatch: ifMatch}
	rep, ok := s.do(exch(w, req), cmd)
	if !ok {
		return
	}
	rc := rep.Recount
	if rc.Forced {
		s.log.Warn("recount forced over a stale view", "sku", sku, "stale", rc.Stale,
			"on_hand", cmd.OnHand, "as_of", cmd.AsOf, "delta", rc.Delta)
	}
	setETag(w, rep.Stock)
	applied := rep.Applied
	out := stockJSON(rep.Stock, &applied)
	out.Recount = &api.RecountResult{Before: rc.Before, Delta: rc.Delta, Unresolved: rc.Unresolved,
		Forced: rc.Forced, Stale: rc.Stale}
	s.writeJSON(w, http.StatusOK, out)
}
