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
	Available *uint64 `json:"available,omitempty"`  // insufficient-stock: units of it left here
	Owner     string  `json:"owner,omitempty"`      // owner-unreachable: the region that was asked
	Region    string  `json:"region,omitempty"`     // the region that answered
	OldestSeq *uint64 `json:"oldest_seq,omitempty"` // events-gone: the oldest event sequence still held
}

// Item is one cart line.
type Item struct {
	SKU string `json:"sku"`
	Qty uint64 `json:"qty"`
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
}

// CreateHoldRequest is the body of POST /v1/holds.
type CreateHoldRequest struct {
	Items    []Item          `json:"items"`
	TTL      string          `json:"ttl,omitempty"` // Go duration, e.g. "10m"; default: the region's
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// ExtendRequest is the body of POST /v1/holds/{id}/extend.
type ExtendRequest struct {
	TTL string `json:"ttl"`
}

// QtyRequest is the body of restock and write-off.
type QtyRequest struct {
	Qty uint64 `json:"qty"`
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
	Applied         *uint64                `json:"applied,omitempty"` // restock, write-off: units changed
}

// RegionStock is one region's row as seen by the answering region.
type RegionStock struct {
	Available int64  `json:"available"`
	Held      uint64 `json:"held"`
	Sold      uint64 `json:"sold"`
	Seq       uint64 `json:"seq"`
	AgeMs     int64  `json:"age_ms"` // how long ago the answering region heard of this row
}
