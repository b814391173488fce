package httpapi

import (
	"net/http"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
)

func (s *Server) stock(w http.ResponseWriter, req *http.Request) {
	sku := req.PathValue("sku")
	if err := escrow.ValidSKU(sku); err != nil {
		s.escrowProblem(exch(w, req), err)
		return
	}
	key, ok := s.stockKey(w, req, sku, req.URL.Query().Get("location"))
	if !ok {
		return
	}
	rep, ok := s.do(exch(w, req), escrow.Command{Kind: escrow.CmdStock, SKU: key})
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
		if !s.decodeBody(exch(w, req), &body, false) {
			return
		}
		if err := escrow.ValidQty("qty", body.Qty); err != nil {
			s.escrowProblem(exch(w, req), err)
			return
		}
		key, ok := s.stockKey(w, req, sku, body.Location)
		if !ok {
			return
		}
		rep, ok := s.do(exch(w, req), escrow.Command{Kind: kind, SKU: key, Qty: body.Qty, IfMatch: ifMatch})
		if !ok {
			return
		}
		setETag(w, rep.Stock)
		applied := rep.Applied
		s.writeJSON(w, http.StatusOK, stockJSON(rep.Stock, &applied))
	}
}

func stockJSON(v *escrow.StockView, applied *uint64) *api.Stock {
	sku, loc := escrow.SplitStockKey(v.SKU)
	out := &api.Stock{SKU: sku, Location: loc, Region: v.Region, Available: v.Available, Held: v.Held, Sold: v.Sold,
		GlobalAvailable: v.Global, Regions: regionStock(v.Regions), Applied: applied,
		Locations: locationStock(v.Locations)}
	out.Version = v.Version
	if !v.LastRecount.IsZero() {
		t := v.LastRecount.UTC()
		out.LastRecountAsOf = &t
	}
	return out
}

func regionStock(rss []escrow.RegionStock) map[string]api.RegionStock {
	out := make(map[string]api.RegionStock, len(rss))
	for _, rs := range rss {
		out[rs.Region] = api.RegionStock{Available: rs.Available, Held: rs.Held, Sold: rs.Sold,
			Seq: rs.Seq, AgeMs: rs.Age.Milliseconds()}
	}
	return out
}
