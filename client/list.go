package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/holdfast-io/holdfast/api"
)

// ListOptions filters GET /v1/holds. Zero fields do not filter.
type ListOptions struct {
	Cart          string
	State         string // held, confirmed, released, expired
	SKU           string
	ExpiresBefore time.Time
	Limit         int // page size, 1..1000; 0: the region's default (100)
}

func (o ListOptions) query(cursor string) string {
	q := url.Values{}
	if o.Cart != "" {
		q.Set("cart", o.Cart)
	}
	if o.State != "" {
		q.Set("state", o.State)
	}
	if o.SKU != "" {
		q.Set("sku", o.SKU)
	}
	if !o.ExpiresBefore.IsZero() {
		q.Set("expires_before", o.ExpiresBefore.UTC().Format(time.RFC3339Nano))
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return q.Encode()
}

// ListHoldsPage reads one page of the holds the region owns; pass the
// returned NextCursor back (with the same options) for the next page.
func (c *Client) ListHoldsPage(ctx context.Context, opts ListOptions, cursor string) (*api.HoldList, error) {
	var l api.HoldList
	if _, err := c.Do(ctx, http.MethodGet, "/v1/holds?"+opts.query(cursor), nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// ListHolds iterates over every hold matching opts, page by page:
//
//	for h, err := range c.ListHolds(ctx, client.ListOptions{Cart: "c-1"}) {
//		if err != nil { ... }
//	}
//
// An error ends the iteration (after being yielded once).
func (c *Client) ListHolds(ctx context.Context, opts ListOptions) iter.Seq2[api.Hold, error] {
	return func(yield func(api.Hold, error) bool) {
		cursor := ""
		for {
			page, err := c.ListHoldsPage(ctx, opts, cursor)
			if err != nil {
				yield(api.Hold{}, err)
				return
			}
			for _, h := range page.Holds {
				if !yield(h, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			cursor = page.NextCursor
		}
	}
}
