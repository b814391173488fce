package client

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/holdfast-io/holdfast/api"
)

// RestockIfMatch is Restock applied only if the SKU's version is still
// ifMatch (a Stock.ETag); otherwise the region answers 412
// precondition-failed and changes nothing.
func (c *Client) RestockIfMatch(ctx context.Context, sku string, qty uint64, ifMatch string) (*Stock, error) {
	return c.skuOpIf(ctx, http.MethodPost, sku, "/restock", ifMatch, api.QtyRequest{Qty: qty})
}

// WriteOffIfMatch is WriteOff applied only if the SKU's version is still
// ifMatch (412 precondition-failed otherwise).
func (c *Client) WriteOffIfMatch(ctx context.Context, sku string, qty uint64, ifMatch string) (*Stock, error) {
	return c.skuOpIf(ctx, http.MethodPost, sku, "/write-off", ifMatch, api.QtyRequest{Qty: qty})
}

// RecountRequest is an ERP recount of one SKU (PUT /v1/skus/{sku}/stock).
type RecountRequest struct {
	// OnHand is the warehouse's count of units not yet sold (available +
	// held over every region); AsOf when it was counted.
	OnHand uint64
	AsOf   time.Time
	// Force applies it even if the region's view of a peer is stale.
	Force bool
	// IfMatch, when set, applies it only if the SKU's version is still this.
	IfMatch string
}

// Recount sets the SKU's on-hand count (admin scope). The answer is the
// region's view afterwards, with Applied and Recount set. A replayed or
// older AsOf is a 409 conflict; a stale view of a peer a 503 stale-view.
func (c *Client) Recount(ctx context.Context, sku string, req RecountRequest) (*Stock, error) {
	if req.AsOf.IsZero() {
		return nil, errors.New("client: a recount needs AsOf")
	}
	on, at := req.OnHand, req.AsOf.UTC()
	return c.skuOpIf(ctx, http.MethodPut, sku, "/stock", req.IfMatch,
		api.RecountRequest{OnHand: &on, AsOf: &at, Force: req.Force})
}
