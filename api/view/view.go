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
		ID: h.ID, Region: region, State: h.State.String(), Items: make([]api.Item, len(h.Lines)),
		CreatedAt: h.Created.UTC(), ExpiresAt: h.Expires.UTC(), MaxExpiresAt: h.MaxExpires.UTC(), UpdatedAt: h.Updated.UTC(),
		Cart: h.Cart,
	}
	for i, l := range h.Lines {
		out.Items[i] = api.Item{SKU: l.SKU, Qty: l.Qty}
	}
	if h.Partial() {
		out.Partial = true
		out.Items = make([]api.Item, len(h.Asked))
		for i, l := range h.Asked {
			g := h.GrantedOf(l.SKU)
			out.Items[i] = api.Item{SKU: l.SKU, Qty: l.Qty, Granted: &g}
		}
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
