// Package api holds the JSON types of holdfast's HTTP API, shared by the
// server (httpapi), the Go client, the CLI and the load generator, so that
// they cannot drift apart. docs/openapi.yaml is their specification.
package api

import (
	"encoding/json"
	"time"
)

// Problem is an RFC 9457 problem document: the body of every error.
type Problem struct {
	Type      string  `json:"type"`   // stable problem type URI, e.g. ".../insufficient-stock"
	Title     string  `json:"title"`  // short summary of the type
	Status    int     `json:"status"` // the HTTP status
	Detail    string  `json:"detail"` // what went wrong with this request
	Instance  string  `json:"instance,omitempty"`
	SKU       string  `json:"sku,omitempty"`        // insufficient-stock: the SKU that ran out
	Location  string  `json:"location,omitempty"`   // insufficient-stock: the location of it that ran out
	Available *uint64 `json:"available,omitempty"`  // insufficient-stock: units of it left here
	Owner     string  `json:"owner,omitempty"`      // owner-unreachable: the region that was asked
	Region    string  `json:"region,omitempty"`     // the region that answered
	OldestSeq *uint64 `json:"oldest_seq,omitempty"` // events-gone: the oldest event sequence still held
}

// Item is one cart line.
type Item struct {
	SKU string `json:"sku"`
	Qty uint64 `json:"qty"` // units asked for
	// Granted is set in the holds of partial requests: the units of the
	// line actually held (0 to qty).
	Granted *uint64 `json:"granted,omitempty"`
	// Locations (request): the eligible locations of the line, in
	// preference order; absent: the region's fulfilment order.
	Locations []string `json:"locations,omitempty"`
	// Split (request): the line may be split over several locations.
	Split bool `json:"split,omitempty"`
	// Allocations (reply): where the line's granted units ship from.
	Allocations []Allocation `json:"allocations,omitempty"`
}

// Allocation is the part of a hold line granted from one location.
type Allocation struct {
	Location string `json:"location"`
	Qty      uint64 `json:"qty"`
}

// Hold is the representation of a hold.
type Hold struct {
	ID           string          `json:"id"`
	Region       string          `json:"region"` // the owner region (the id's prefix)
	State        string          `json:"state"`  // held, confirmed, released, expired
	Items        []Item          `json:"items"`
	CreatedAt    time.Time       `json:"created_at"`
	ExpiresAt    time.Time       `json:"expires_at"`
	MaxExpiresAt time.Time       `json:"max_expires_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
	Metadata     json.RawMessage `json:"metadata,omitempty"`
	Partial      bool            `json:"partial,omitempty"` // created by a partial request: items carry granted
	Cart         string          `json:"cart,omitempty"`    // the client's cart reference
}

// CreateHoldRequest is the body of POST /v1/holds.
type CreateHoldRequest struct {
	Items    []Item          `json:"items"`
	TTL      string          `json:"ttl,omitempty"` // Go duration, e.g. "10m"; default: the region's
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// Wait (Go duration): when the hold cannot be granted now, join the
	// waitlist for up to this long (202 + a WaitlistEntry) instead of 409.
	Wait string `json:"wait,omitempty"`
	// Partial: grant each line what the region can give (default: all
	// lines in full or nothing). Nothing at all is still a 409.
	Partial bool `json:"partial,omitempty"`
	// Cart: an opaque reference (1-128 printable ASCII bytes, no spaces)
	// stored on the hold and usable to list holds (GET /v1/holds?cart=).
	Cart string `json:"cart,omitempty"`
}

// WaitlistEntry is a shopper waiting for units (POST /v1/holds with wait,
// GET and DELETE /v1/waitlist/{id}).
type WaitlistEntry struct {
	ID     string `json:"id"`
	Region string `json:"region"` // the region that queued it (the id's prefix)
	State  string `json:"state"`  // waiting, promoted, cancelled, expired
	Items  []Item `json:"items"`
	// Position, while waiting: per item, 1 = next in line for that SKU.
	Position  []uint64        `json:"position,omitempty"`
	CreatedAt time.Time       `json:"created_at"` // placement time
	ExpiresAt time.Time       `json:"expires"`    // the wait deadline
	UpdatedAt time.Time       `json:"updated_at"`
	HoldID    string          `json:"hold_id,omitempty"` // promoted: the hold it became
	HoldTTL   string          `json:"hold_ttl"`          // TTL of the hold it becomes
	Metadata  json.RawMessage `json:"metadata,omitempty"`
}

// ExtendRequest is the body of POST /v1/holds/{id}/extend.
type ExtendRequest struct {
	TTL string `json:"ttl"`
}

// QtyRequest is the body of restock and write-off.
type QtyRequest struct {
	Qty      uint64 `json:"qty"`
	Location string `json:"location,omitempty"` // the location's stock; absent: the default location
}

// Stock is one region's view of one SKU.
type Stock struct {
	SKU             string                 `json:"sku"`
	Region          string                 `json:"region"`
	Available       uint64                 `json:"available"`
	Held            uint64                 `json:"held"`
	Sold            uint64                 `json:"sold"`
	GlobalAvailable int64                  `json:"global_available"`
	Regions         map[string]RegionStock `json:"regions"`
	Applied         *uint64                `json:"applied,omitempty"` // restock, write-off, recount: units changed
	Version         string                 `json:"version,omitempty"` // the ETag's value (without quotes)
	LastRecountAsOf *time.Time             `json:"last_recount_as_of,omitempty"`
	Recount         *RecountResult         `json:"recount,omitempty"` // PUT /v1/skus/{sku}/stock only
	// Location: the location this view is of (?location= or a body's
	// location); absent: the default location.
	Location string `json:"location,omitempty"`
	// Locations: per configured location with stock of the SKU, its view
	// (GET /v1/skus/{sku} without ?location=).
	Locations map[string]LocationStock `json:"locations,omitempty"`
}

// LocationStock is one location's stock of a SKU: here, globally (an
// estimate) and per region.
type LocationStock struct {
	Available       uint64                 `json:"available"`
	Held            uint64                 `json:"held"`
	Sold            uint64                 `json:"sold"`
	GlobalAvailable int64                  `json:"global_available"`
	Regions         map[string]RegionStock `json:"regions"`
}

// RecountRequest is the body of PUT /v1/skus/{sku}/stock: the warehouse's
// count of the SKU's units on hand (available + held over every region;
// sold units have left the shelf) as of a time.
type RecountRequest struct {
	Location string     `json:"location,omitempty"` // absent: the default location
	OnHand   *uint64    `json:"on_hand"`
	AsOf     *time.Time `json:"as_of"`
	Force    bool       `json:"force,omitempty"`
}

// RecountResult says what a recount did.
type RecountResult struct {
	Before     uint64   `json:"before"`     // available + held in this region's view, before
	Delta      int64    `json:"delta"`      // on_hand − before
	Unresolved uint64   `json:"unresolved"` // part of a negative delta not written off here
	Forced     bool     `json:"forced,omitempty"`
	Stale      []string `json:"stale,omitempty"` // peers whose view was stale (forced)
}

// RegionStock is one region's row as seen by the answering region.
type RegionStock struct {
	Available int64  `json:"available"`
	Held      uint64 `json:"held"`
	Sold      uint64 `json:"sold"`
	Seq       uint64 `json:"seq"`
	AgeMs     int64  `json:"age_ms"` // how long ago the answering region heard of this row
}

// HoldList is a page of GET /v1/holds. NextCursor is empty on the last
// page; pass it back as ?cursor= (with the same filters) for the next one.
type HoldList struct {
	Holds      []Hold `json:"holds"`
	NextCursor string `json:"next_cursor,omitempty"`
}
