package httpapi

import (
	"net/http"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
)

func (s *Server) stock(w http.ResponseWriter, req *http.Request) {
	sku := req.PathValue("sku")
	if err := escrow.ValidSKU(sku); err != nil {
		s.escrowProblem(w, req, err)
		return
	}
	rep, ok := s.do(w, req, escrow.Command{Kind: escrow.CmdStock, SKU: sku})
	if !ok {
		return
	}
	setETag(w, rep.Stock)
	s.writeJSON(w, http.StatusOK, stockJSON(rep.Stock, nil))
}

// adjust serves restock and write-off.
func (s *Server) adjust(kind escrow.CommandKind) func(w http.ResponseWriter, req *http.Request) {
	return func(w http.ResponseWriter, req *http.Request) {
		sku, ifMatch, ok := s.stockTarget(w, req)
		if !ok {
			return
		}
		var body api.QtyRequest
		if !s.decodeBody(w, req, &body, false) {
			return
		}
		if err := escrow.ValidQty("qty", body.Qty); err != nil {
			s.escrowProblem(w, req, err)
			return
		}
		rep, ok := s.do(w, req, escrow.Command{Kind: kind, SKU: sku, Qty: body.Qty, IfMatch: ifMatch})
		if !ok {
			return
		}
		setETag(w, rep.Stock)
		applied := rep.Applied
		s.writeJSON(w, http.StatusOK, stockJSON(rep.Stock, &applied))
	}
}

func stockJSON(v *escrow.StockView, applied *uint64) *api.Stock {
	out := &api.Stock{SKU: v.SKU, Region: v.Region, Available: v.Available, Held: v.Held, Sold: v.Sold,
		GlobalAvailable: v.Global, Regions: make(map[string]api.RegionStock, len(v.Regions)), Applied: applied}
	for _, rs := range v.Regions {
		out.Regions[rs.Region] = api.RegionStock{Available: rs.Available, Held: rs.Held, Sold: rs.Sold,
			Seq: rs.Seq, AgeMs: rs.Age.Milliseconds()}
	}
	out.Version = v.Version
	if !v.LastRecount.IsZero() {
		t := v.LastRecount.UTC()
		out.LastRecountAsOf = &t
	}
	return out
}
