package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// HoldLister is the optional part of a Runtime that lists holds
// (*region.Region implements it); without it GET /v1/holds is 501.
type HoldLister interface {
	ListHolds(ctx context.Context, q region.HoldQuery) (region.HoldPage, error)
}

// cursorVersion is the first byte of every cursor; a cursor of another
// version is refused (400) rather than misread.
const (
	cursorVersion = 1
	maxCursorLen  = 512 // base64 of 1 + a key (cart 128 + 8 + hold id)
)

var stateByName = map[string]escrow.HoldState{
	"held": escrow.Held, "confirmed": escrow.Confirmed, "released": escrow.Released, "expired": escrow.Expired,
}

// EncodeCursor and DecodeCursor are the opaque cursor of GET /v1/holds:
// base64url (no padding) of a version byte and the store key the page
// ended at. It names a position in the store's index, not a snapshot, so
// it survives restarts.
func EncodeCursor(key []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{cursorVersion}, key...))
}

func DecodeCursor(c string) ([]byte, error) {
	if len(c) > maxCursorLen {
		return nil, errors.New("cursor too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 3 || b[0] != cursorVersion {
		return nil, errors.New("not a cursor of this API (pass next_cursor back unchanged)")
	}
	return b[1:], nil
}

// parseHoldQuery reads the query string of GET /v1/holds; a non-empty
// detail is a 400.
func parseHoldQuery(req *http.Request, now time.Time) (region.HoldQuery, string) {
	var q region.HoldQuery
	vals := req.URL.Query()
	for k, v := range vals {
		switch k {
		case "cart", "state", "sku", "expires_before", "limit", "cursor":
			if len(v) > 1 {
				return q, k + ": give it once"
			}
		default:
			return q, "unknown query parameter " + strconv.Quote(k) + " (cart, state, sku, expires_before, limit, cursor)"
		}
	}
	if c := vals.Get("cart"); vals.Has("cart") {
		if err := escrow.ValidCart(c); err != nil || c == "" {
			return q, "cart: 1-128 bytes of printable ASCII without spaces"
		}
		q.Cart = c
	}
	if st := vals.Get("state"); vals.Has("state") {
		s, ok := stateByName[st]
		if !ok {
			return q, "state: one of held, confirmed, released, expired; got " + strconv.Quote(st)
		}
		q.State = s
	}
	if sku := vals.Get("sku"); vals.Has("sku") {
		if err := escrow.ValidSKU(sku); err != nil {
			return q, "sku: " + err.Error()
		}
		q.SKU = sku
	}
	if eb := vals.Get("expires_before"); vals.Has("expires_before") {
		t, err := time.Parse(time.RFC3339Nano, eb)
		if err != nil {
			return q, "expires_before: an RFC 3339 time, e.g. 2025-01-02T15:04:05Z"
		}
		q.ExpiresBefore = t
	}
	q.Limit = region.DefaultListLimit
	if l := vals.Get("limit"); vals.Has("limit") {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > region.MaxListLimit {
			return q, "limit: an integer from 1 to " + strconv.Itoa(region.MaxListLimit)
		}
		q.Limit = n
	}
	if c := vals.Get("cursor"); vals.Has("cursor") {
		k, err := DecodeCursor(c)
		if err != nil {
			return q, "cursor: " + err.Error()
		}
		q.After = k
	}
	_ = now
	return q, ""
}

// listHolds serves GET /v1/holds: the holds this region owns, one page.
func (s *Server) listHolds(w http.ResponseWriter, req *http.Request) {
	l, ok := s.rt.(HoldLister)
	if !ok {
		s.problem(exch(w, req), http.StatusNotImplemented, escrow.CodeInvalid.String(), "this region cannot list holds", nil)
		return
	}
	now := time.Now()
	q, bad := parseHoldQuery(req, now)
	if bad != "" {
		s.badRequest(exch(w, req), bad)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), s.requestTimeout)
	defer cancel()
	page, err := l.ListHolds(ctx, q)
	switch {
	case errors.Is(err, region.ErrBadCursor):
		s.badRequest(exch(w, req), "cursor: "+err.Error())
		return
	case errors.Is(err, region.ErrListUnsupported):
		s.problem(exch(w, req), http.StatusNotImplemented, escrow.CodeInvalid.String(), err.Error(), nil)
		return
	case err != nil:
		s.runtimeProblem(exch(w, req), err)
		return
	}
	out := api.HoldList{Holds: make([]api.Hold, len(page.Holds))}
	for i := range page.Holds {
		h := holdJSON(&page.Holds[i])
		h.State = page.Holds[i].StateAt(now).String()
		out.Holds[i] = *h
	}
	if page.Next != nil {
		out.NextCursor = EncodeCursor(page.Next)
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, http.StatusOK, &out)
}
