package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/holdfast-io/holdfast/api"
)

// WaitlistEntry is a waitlist entry as the region reports it, with the
// response body as received.
type WaitlistEntry struct {
	api.WaitlistEntry
	// Replayed: an idempotent retry found this entry (200 instead of 202).
	Replayed bool            `json:"-"`
	Raw      json.RawMessage `json:"-"`
}

// CreateHoldOrWait asks for a hold that may wait (req.Wait > 0): it
// returns the hold when granted now, or the waitlist entry it joined (202)
// when the SKU is sold out here. Exactly one of the two is non-nil.
func (c *Client) CreateHoldOrWait(ctx context.Context, req HoldRequest) (*Hold, *WaitlistEntry, error) {
	if req.Wait <= 0 {
		return nil, nil, errors.New("client: CreateHoldOrWait needs a positive wait")
	}
	body := api.CreateHoldRequest{Items: req.Items, Metadata: req.Metadata, Wait: req.Wait.String()}
	if len(body.Metadata) > 0 && !json.Valid(body.Metadata) {
		return nil, nil, errors.New("client: metadata is not valid JSON")
	}
	if req.TTL < 0 {
		return nil, nil, errors.New("client: negative ttl")
	}
	if req.TTL > 0 {
		body.TTL = req.TTL.String()
	}
	hdr := http.Header{}
	if req.IdempotencyKey != "" {
		if strings.ContainsAny(req.IdempotencyKey, "\r\n") {
			return nil, nil, errors.New("client: idempotency key contains a line break")
		}
		hdr.Set("Idempotency-Key", req.IdempotencyKey)
	}
	resp, err := c.Do(ctx, http.MethodPost, "/v1/holds", hdr, body, nil)
	if err != nil {
		return nil, nil, err
	}
	replayed := resp.Header.Get("Idempotent-Replayed") == "true"
	if resp.Status == http.StatusAccepted || strings.HasPrefix(resp.Header.Get("Location"), "/v1/waitlist/") {
		e := &WaitlistEntry{Raw: resp.Body, Replayed: replayed}
		if err := json.Unmarshal(resp.Body, &e.WaitlistEntry); err != nil {
			return nil, nil, fmt.Errorf("client: decode waitlist entry: %w", err)
		}
		return nil, e, nil
	}
	h := &Hold{Raw: resp.Body, Replayed: replayed || resp.Status == http.StatusOK}
	if err := json.Unmarshal(resp.Body, &h.Hold); err != nil {
		return nil, nil, fmt.Errorf("client: decode hold: %w", err)
	}
	return h, nil, nil
}

// GetWaitlistEntry reads a waitlist entry (served by the region that
// queued it).
func (c *Client) GetWaitlistEntry(ctx context.Context, id string) (*WaitlistEntry, error) {
	return c.waitOp(ctx, http.MethodGet, id)
}

// CancelWaitlistEntry leaves the waitlist (idempotent; a promoted entry is
// a conflict: release its hold instead).
func (c *Client) CancelWaitlistEntry(ctx context.Context, id string) (*WaitlistEntry, error) {
	return c.waitOp(ctx, http.MethodDelete, id)
}

func (c *Client) waitOp(ctx context.Context, method, id string) (*WaitlistEntry, error) {
	if id == "" {
		return nil, errors.New("client: empty waitlist entry id")
	}
	var e WaitlistEntry
	resp, err := c.Do(ctx, method, "/v1/waitlist/"+url.PathEscape(id), nil, nil, &e.WaitlistEntry)
	if err != nil {
		return nil, err
	}
	e.Raw = resp.Body
	return &e, nil
}
