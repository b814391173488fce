package httpapi

import (
	"fmt"
	"net/http"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
)

// lineLocations checks the items' SKUs and copies their eligible locations
// and split flags into cmd.Locations; it returns the problem's detail, or
// "" when the items are fine. An item SKU must be a plain SKU (a stock key
// is the core's, never a client's), and a SKU restricted to locations may
// appear on one item only.
func (s *Server) lineLocations(cmd *escrow.Command, items []api.Item) string {
	for i, it := range items {
		if err := escrow.ValidSKU(it.SKU); err != nil {
			return fmt.Sprintf("items[%d]: %s", i, err.Detail)
		}
		if len(it.Locations) == 0 && !it.Split {
			continue
		}
		if len(it.Locations) > escrow.MaxLineLocations {
			return fmt.Sprintf("items[%d]: at most %d locations, got %d", i, escrow.MaxLineLocations, len(it.Locations))
		}
		for _, l := range it.Locations {
			if err := escrow.ValidLocation(l); err != nil {
				return fmt.Sprintf("items[%d]: %s", i, err.Detail)
			}
		}
		for j, o := range items {
			if j != i && o.SKU == it.SKU {
				return fmt.Sprintf("items[%d]: sku %q is on another item too; a line with locations must be its only line", i, it.SKU)
			}
		}
		cmd.Locations = append(cmd.Locations, escrow.LineLocations{SKU: it.SKU, Locations: it.Locations, Split: it.Split})
	}
	return ""
}

// stockKey is the stock key of sku at the location of a query (?location=)
// or body; ok is false after a 400 was written.
func (s *Server) stockKey(w http.ResponseWriter, req *http.Request, sku, loc string) (string, bool) {
	if loc == "" {
		return sku, true
	}
	if err := escrow.ValidLocation(loc); err != nil {
		s.badRequest(exch(w, req), "location: "+err.Detail)
		return "", false
	}
	return escrow.StockKey(sku, loc), true
}

// locationStock maps the core's per-location views.
func locationStock(ls []escrow.LocationStock) map[string]api.LocationStock {
	if len(ls) == 0 {
		return nil
	}
	out := make(map[string]api.LocationStock, len(ls))
	for _, l := range ls {
		out[l.Location] = api.LocationStock{Available: l.Available, Held: l.Held, Sold: l.Sold,
			GlobalAvailable: l.Global, Regions: regionStock(l.Regions)}
	}
	return out
}
