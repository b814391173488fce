package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/holdfast-io/holdfast/api"
)

// Stock by location: the same operations as Stock, Restock, WriteOff and
// Recount on one location's stock of a SKU (location "" is the SKU's
// default location, as the plain methods use).

// StockAt reads the region's view of sku at location.
func (c *Client) StockAt(ctx context.Context, sku, location string) (*Stock, error) {
	if location == "" {
		return c.Stock(ctx, sku)
	}
	return c.skuOp(ctx, http.MethodGet, sku, "?location="+url.QueryEscape(location), nil)
}

// RestockAt adds qty units of sku at location (admin scope; the region must
// own or sell from the location).
func (c *Client) RestockAt(ctx context.Context, sku, location string, qty uint64) (*Stock, error) {
	return c.skuOp(ctx, http.MethodPost, sku, "/restock", api.QtyRequest{Qty: qty, Location: location})
}

// WriteOffAt removes up to qty available units of sku at location (admin
// scope); Stock.Applied says how many were removed.
func (c *Client) WriteOffAt(ctx context.Context, sku, location string, qty uint64) (*Stock, error) {
	return c.skuOp(ctx, http.MethodPost, sku, "/write-off", api.QtyRequest{Qty: qty, Location: location})
}

// RecountAt is Recount of sku's stock at location.
func (c *Client) RecountAt(ctx context.Context, sku, location string, req RecountRequest) (*Stock, error) {
	if req.AsOf.IsZero() {
		return nil, errors.New("client: a recount needs AsOf")
	}
	on, at := req.OnHand, req.AsOf.UTC()
	return c.skuOpIf(ctx, http.MethodPut, sku, "/stock", req.IfMatch,
		api.RecountRequest{Location: location, OnHand: &on, AsOf: &at, Force: req.Force})
}

// RestockAtIfMatch is RestockAt applied only if the location's version is
// still ifMatch (412 precondition-failed otherwise).
func (c *Client) RestockAtIfMatch(ctx context.Context, sku, location string, qty uint64, ifMatch string) (*Stock, error) {
	return c.skuOpIf(ctx, http.MethodPost, sku, "/restock", ifMatch, api.QtyRequest{Qty: qty, Location: location})
}

// WriteOffAtIfMatch is WriteOffAt applied only if the location's version is
// still ifMatch.
func (c *Client) WriteOffAtIfMatch(ctx context.Context, sku, location string, qty uint64, ifMatch string) (*Stock, error) {
	return c.skuOpIf(ctx, http.MethodPost, sku, "/write-off", ifMatch, api.QtyRequest{Qty: qty, Location: location})
}
