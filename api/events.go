package api

import "encoding/json"

// EventsPage is one page of a region's event feed (GET /v1/events): the
// events after the cursor, in sequence order, each a CloudEvents 1.0 JSON
// object (docs/events.md).
type EventsPage struct {
	Events []json.RawMessage `json:"events"`
	// NextAfter is the cursor of the next page: the sequence of the last
	// event of this one, or the request's cursor when the page is empty.
	NextAfter uint64 `json:"next_after"`
	// Head is the sequence of the region's last durable event.
	Head uint64 `json:"head"`
}

// Limits of the event feed.
const (
	EventsDefaultLimit = 100
	EventsMaxLimit     = 1000
	EventsMaxWaitSecs  = 60 // long-poll wait at most, in seconds
)
