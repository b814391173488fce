// Package view builds the API representation (package api) of the core's
// types (package escrow). It is the one place that does, so the HTTP API
// and the event log show a hold the same way.
package view

import (
	"encoding/json"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
)

// Hold is the API representation of h. A partial hold lists its items as
// asked, each with the units granted.
func Hold(h *escrow.Hold) api.Hold {
	region, _ := escrow.OwnerOf(h.ID)
	out := api.Hold{
		ID: h.ID, Region: region, State: h.State.String(), Items: Items(h.Lines, nil),
		CreatedAt: h.Created.UTC(), ExpiresAt: h.Expires.UTC(), MaxExpiresAt: h.MaxExpires.UTC(), UpdatedAt: h.Updated.UTC(),
		Cart: h.Cart,
	}
	if h.Partial() {
		out.Partial = true
		out.Items = Items(h.Asked, h)
	}
	if h.Meta != "" {
		// Metadata is stored as the client sent it; anything that is not
		// JSON is carried as a JSON string so the answer stays valid JSON.
		if json.Valid([]byte(h.Meta)) {
			out.Metadata = json.RawMessage(h.Meta)
		} else {
			b, _ := json.Marshal(h.Meta)
			out.Metadata = b
		}
	}
	return out
}

// Items groups lines of stock keys into one item per SKU (lines are sorted
// by key, so the locations of a SKU are adjacent): its quantity summed and,
// when the units come from locations, one allocation per location. With
// partial set, lines are the asked ones and each item carries what partial
// granted (allocations: the granted units).
func Items(lines []escrow.Line, partial *escrow.Hold) []api.Item {
	out := make([]api.Item, 0, len(lines))
	for _, l := range lines {
		sku, loc := escrow.SplitStockKey(l.SKU)
		if n := len(out); n == 0 || out[n-1].SKU != sku {
			out = append(out, api.Item{SKU: sku})
		}
		it := &out[len(out)-1]
		it.Qty += l.Qty
		q := l.Qty
		if partial != nil {
			g := partial.GrantedOf(l.SKU)
			if it.Granted == nil {
				it.Granted = new(uint64)
			}
			*it.Granted += g
			q = g
		}
		if loc != "" && q > 0 {
			it.Allocations = append(it.Allocations, api.Allocation{Location: loc, Qty: q})
		}
	}
	return out
}

// WaitItems is the items of a waitlist entry: one per line, in order (so
// that a line's position stays at its index), each at most one allocation.
func WaitItems(lines []escrow.Line) []api.Item {
	out := make([]api.Item, len(lines))
	for i, l := range lines {
		sku, loc := escrow.SplitStockKey(l.SKU)
		out[i] = api.Item{SKU: sku, Qty: l.Qty}
		if loc != "" {
			out[i].Allocations = []api.Allocation{{Location: loc, Qty: l.Qty}}
		}
	}
	return out
}
