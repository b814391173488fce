package api

import "time"

// Bulk stock import (POST /v1/stock/import): one line per operation, as
// NDJSON (application/x-ndjson, one ImportLine object per line) or CSV
// (text/csv, a header row naming the same columns).

// Import operations.
const (
	ImportRestock  = "restock"
	ImportWriteOff = "write-off"
	ImportRecount  = "recount"
)

// ImportLine is one line of an import. Restock and write-off need Qty and
// Key (the line's idempotency key: a re-run of the same file applies the
// line once); recount needs OnHand and AsOf (a recount not after the last
// one applied is skipped) and ignores Key.
type ImportLine struct {
	Op  string `json:"op"`
	SKU string `json:"sku"`
	// Location: the location whose stock the line changes; absent: the
	// SKU's default location.
	Location string     `json:"location,omitempty"`
	Qty      *uint64    `json:"qty,omitempty"`
	OnHand   *uint64    `json:"on_hand,omitempty"`
	AsOf     *time.Time `json:"as_of,omitempty"`
	Key      string     `json:"key,omitempty"`
}

// ImportResult answers an import: how many lines were applied, skipped
// (already applied: a replayed key, a recount not after the last one) and
// failed, and every failed line by number (1-based, as in the file; a CSV
// header is line 1).
type ImportResult struct {
	Applied int                `json:"applied"`
	Skipped int                `json:"skipped"`
	Failed  int                `json:"failed"`
	Results []ImportLineResult `json:"results"`
}

// ImportLineResult is one failed line.
type ImportLineResult struct {
	Line    int      `json:"line"`
	Problem *Problem `json:"problem"`
}
