package gossip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// EventVersion is the schema version of Event; consumers refuse newer ones.
const EventVersion = 1

// MaxEventBytes bounds one encoded event (a cart of MaxLines long SKUs with
// full metadata fits well inside).
const MaxEventBytes = 64 << 10

// Event types published on events.<region>.
const (
	EventHeld      = "hold.held"
	EventExtended  = "hold.extended"
	EventConfirmed = "hold.confirmed"
	EventReleased  = "hold.released"
	EventExpired   = "hold.expired"
)

// Event is one hold lifecycle change, for downstream systems (order
// pipelines, analytics). It is published after the change is durable.
// Delivery is at most once (core NATS): consumers that need every event
// should read the hold from its owner when they see a gap in time.
type Event struct {
	V       int         `json:"v"`
	Type    string      `json:"type"`
	Region  string      `json:"region"`
	HoldID  string      `json:"hold_id"`
	State   string      `json:"state"`
	Lines   []EventLine `json:"lines"`
	Created time.Time   `json:"created"`
	Expires time.Time   `json:"expires"`
	Updated time.Time   `json:"updated"`
	IdemKey string      `json:"idempotency_key,omitempty"`
	Meta    string      `json:"meta,omitempty"`
}

// EventLine is one cart line of an Event.
type EventLine struct {
	SKU string `json:"sku"`
	Qty uint64 `json:"qty"`
}

// EventOf describes the current state of h as an Event. A held hold whose
// Updated differs from Created has been extended.
func EventOf(h *escrow.Hold) (Event, error) {
	owner, err := escrow.OwnerOf(h.ID)
	if err != nil {
		return Event{}, err
	}
	ev := Event{V: EventVersion, Region: owner, HoldID: h.ID, State: h.State.String(),
		Created: h.Created, Expires: h.Expires, Updated: h.Updated, IdemKey: h.IdemKey, Meta: h.Meta}
	switch h.State {
	case escrow.Held:
		ev.Type = EventHeld
		if !h.Updated.Equal(h.Created) {
			ev.Type = EventExtended
		}
	case escrow.Confirmed:
		ev.Type = EventConfirmed
	case escrow.Released:
		ev.Type = EventReleased
	case escrow.Expired:
		ev.Type = EventExpired
	default:
		return Event{}, fmt.Errorf("gossip: hold %s has unknown state %d", h.ID, h.State)
	}
	ev.Lines = make([]EventLine, len(h.Lines))
	for i, l := range h.Lines {
		ev.Lines[i] = EventLine{SKU: l.SKU, Qty: l.Qty}
	}
	return ev, nil
}

// EncodeEvent returns the JSON form of ev.
func EncodeEvent(ev *Event) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("gossip: encode event: %w", err)
	}
	if len(b) > MaxEventBytes {
		return nil, fmt.Errorf("gossip: event for %s is %d bytes, over %d", ev.HoldID, len(b), MaxEventBytes)
	}
	return b, nil
}

var eventStates = map[string]string{
	EventHeld: "held", EventExtended: "held", EventConfirmed: "confirmed",
	EventReleased: "released", EventExpired: "expired",
}

// DecodeEvent parses and validates an event. Unknown fields are allowed (a
// newer producer may add some); a newer version is refused.
func DecodeEvent(b []byte) (Event, error) {
	var ev Event
	if len(b) > MaxEventBytes {
		return ev, fmt.Errorf("%w: event of %d bytes, over %d", ErrCodec, len(b), MaxEventBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&ev); err != nil {
		return Event{}, fmt.Errorf("%w: event: %v", ErrCodec, err)
	}
	if dec.More() {
		return Event{}, fmt.Errorf("%w: trailing data after event", ErrCodec)
	}
	if ev.V != EventVersion {
		return Event{}, fmt.Errorf("%w: event version %d (this build reads %d)", escrow.ErrWireVersion, ev.V, EventVersion)
	}
	state, ok := eventStates[ev.Type]
	if !ok || ev.State != state {
		return Event{}, fmt.Errorf("%w: event type %q with state %q", ErrCodec, ev.Type, ev.State)
	}
	owner, err := escrow.OwnerOf(ev.HoldID)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrCodec, err)
	}
	if owner != ev.Region {
		return Event{}, fmt.Errorf("%w: hold %s in an event of region %q", ErrCodec, ev.HoldID, ev.Region)
	}
	if len(ev.Lines) == 0 || len(ev.Lines) > escrow.MaxLines {
		return Event{}, fmt.Errorf("%w: %d lines", ErrCodec, len(ev.Lines))
	}
	for _, l := range ev.Lines {
		if err := escrow.ValidSKU(l.SKU); err != nil {
			return Event{}, fmt.Errorf("%w: %v", ErrCodec, err)
		}
		if err := escrow.ValidQty("qty", l.Qty); err != nil {
			return Event{}, fmt.Errorf("%w: %v", ErrCodec, err)
		}
	}
	if len(ev.IdemKey) > escrow.MaxIdemKeyLen || len(ev.Meta) > escrow.MaxMetaLen {
		return Event{}, fmt.Errorf("%w: idempotency key or metadata too long", ErrCodec)
	}
	return ev, nil
}
