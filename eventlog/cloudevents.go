package eventlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/holdfast-io/holdfast/api/view"
	"strconv"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
)

// Version is the version of the data of every event this build writes; it
// is in dataschema. A change that removes or retypes a field raises it (and
// the schema URIs); adding a field does not, so consumers ignore unknown ones.
const Version = 1

// TypePrefix starts every event type: "dev.holdfast." + kind, e.g.
// "dev.holdfast.hold.confirmed".
const TypePrefix = "dev.holdfast."

// Schemas of the data, one per subject kind (see Version).
const (
	HoldSchema  = "https://holdfast.dev/schemas/events/v1/hold.json"
	StockSchema = "https://holdfast.dev/schemas/events/v1/stock.json"
	// WaitlistSchema: the data of waitlist.* events (api.WaitlistEntry).
	WaitlistSchema = "https://holdfast.dev/schemas/events/v1/waitlist.json"
)

// MaxEventBytes bounds one encoded event. The largest hold the core accepts
// (escrow.MaxLines lines of escrow.MaxSKULen-byte SKUs that JSON escapes,
// asked and granted, full metadata) encodes to about 89 KiB
// (TestLargestHoldFitsAnEvent), so every event the core can state fits:
// the outbox builds the JSON when a reader asks, and must never refuse it.
const MaxEventBytes = 128 << 10

// ErrFormat marks an event that does not decode.
var ErrFormat = errors.New("eventlog: bad event")

// CloudEvent is the CloudEvents 1.0 JSON form of one event. Region and Seq
// are extension attributes (the id also carries them) so that a consumer
// can order and dedupe events without parsing the id.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`     // "<region>:<seq>"
	Source          string          `json:"source"` // "holdfast/<cluster>/<region>"
	Type            string          `json:"type"`   // TypePrefix + kind
	Time            time.Time       `json:"time"`
	Subject         string          `json:"subject"` // hold id or SKU
	DataContentType string          `json:"datacontenttype"`
	DataSchema      string          `json:"dataschema"`
	Region          string          `json:"region"`
	Seq             uint64          `json:"seq"`
	Data            json.RawMessage `json:"data"`
}

// StockChange is the data of a stock event.
type StockChange struct {
	SKU       string `json:"sku"`
	Location  string `json:"location,omitempty"` // absent: the SKU's default location
	Region    string `json:"region"`
	Qty       uint64 `json:"qty"`       // units restocked or written off
	Available uint64 `json:"available"` // units available in the region after the change
}

// EventID is the identity of event seq of region: also its Nats-Msg-Id.
func EventID(region string, seq uint64) string { return region + ":" + strconv.FormatUint(seq, 10) }

// SourceOf is the CloudEvents source of a region's events.
func SourceOf(cluster, region string) string { return "holdfast/" + cluster + "/" + region }

// TypeOf is the CloudEvents type of a kind.
func TypeOf(k escrow.EventKind) string { return TypePrefix + k.String() }

// KindOf is the kind of a CloudEvents type, or false for a type this
// build does not know.
func KindOf(typ string) (escrow.EventKind, bool) {
	name, ok := strings.CutPrefix(typ, TypePrefix)
	if !ok {
		return 0, false
	}
	for _, k := range escrow.EventKinds() {
		if k.String() == name {
			return k, true
		}
	}
	return 0, false
}

// HoldView is the API representation of h, the same as the HTTP API's
// (package api/view).
func HoldView(h *escrow.Hold) api.Hold { return view.Hold(h) }

// WaitView is the API representation of a waitlist entry, the same as the
// HTTP API's (without the position, which changes without events).
func WaitView(e *escrow.WaitEntry) api.WaitlistEntry {
	region, _ := escrow.OwnerOf(e.ID)
	out := api.WaitlistEntry{ID: e.ID, Region: region, State: e.State.String(), Items: view.WaitItems(e.Lines),
		CreatedAt: e.Created.UTC(), ExpiresAt: e.Deadline.UTC(), UpdatedAt: e.Updated.UTC(), HoldID: e.HoldID,
		HoldTTL: e.TTL.String()}
	if e.Meta != "" && json.Valid([]byte(e.Meta)) {
		out.Metadata = json.RawMessage(e.Meta)
	}
	return out
}

// schemaOf is the dataschema of the events of kind k.
func schemaOf(k escrow.EventKind) string {
	switch {
	case k.IsHold():
		return HoldSchema
	case k.IsWait():
		return WaitlistSchema
	}
	return StockSchema
}

// Encode returns the CloudEvents JSON of event seq of region in cluster.
func Encode(cluster, region string, seq uint64, e *escrow.Event) ([]byte, error) {
	ce := CloudEvent{SpecVersion: "1.0", ID: EventID(region, seq), Source: SourceOf(cluster, region),
		Type: TypeOf(e.Kind), Time: e.At.UTC(), Subject: e.Subject(), DataContentType: "application/json",
		Region: region, Seq: seq}
	var data any
	switch {
	case e.Kind.IsHold():
		ce.DataSchema = HoldSchema
		data = HoldView(e.Hold)
	case e.Kind.IsWait():
		ce.DataSchema = WaitlistSchema
		data = WaitView(e.Wait)
	case e.Kind == escrow.EvStockRestocked || e.Kind == escrow.EvStockWrittenOff:
		ce.DataSchema = StockSchema
		sku, loc := escrow.SplitStockKey(e.SKU)
		ce.Subject = sku
		data = StockChange{SKU: sku, Location: loc, Region: region, Qty: e.Qty, Available: e.Available}
	default:
		return nil, fmt.Errorf("eventlog: encode event %d of %s: unknown kind %d", seq, region, e.Kind)
	}
	var err error
	if ce.Data, err = json.Marshal(data); err != nil {
		return nil, fmt.Errorf("eventlog: encode data of event %s: %w", ce.ID, err)
	}
	b, err := json.Marshal(&ce)
	if err != nil {
		return nil, fmt.Errorf("eventlog: encode event %s: %w", ce.ID, err)
	}
	if len(b) > MaxEventBytes {
		return nil, fmt.Errorf("eventlog: event %s is %d bytes, over %d", ce.ID, len(b), MaxEventBytes)
	}
	return b, nil
}

// Decode parses and checks an event. Unknown attributes and data fields are
// allowed (a newer producer may add some); an unknown type or schema is not.
func Decode(b []byte) (CloudEvent, error) {
	var ce CloudEvent
	if len(b) > MaxEventBytes {
		return ce, fmt.Errorf("%w: %d bytes, over %d", ErrFormat, len(b), MaxEventBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&ce); err != nil {
		return CloudEvent{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if dec.More() {
		return CloudEvent{}, fmt.Errorf("%w: trailing data", ErrFormat)
	}
	if ce.SpecVersion != "1.0" {
		return CloudEvent{}, fmt.Errorf("%w: specversion %q", ErrFormat, ce.SpecVersion)
	}
	k, ok := KindOf(ce.Type)
	if !ok {
		return CloudEvent{}, fmt.Errorf("%w: unknown type %q", ErrFormat, ce.Type)
	}
	want := schemaOf(k)
	if ce.DataSchema != want {
		return CloudEvent{}, fmt.Errorf("%w: %s with dataschema %q (this build reads %q)", ErrFormat, ce.Type, ce.DataSchema, want)
	}
	if ce.Region == "" || ce.Seq == 0 || ce.ID != EventID(ce.Region, ce.Seq) {
		return CloudEvent{}, fmt.Errorf("%w: id %q does not match region %q and seq %d", ErrFormat, ce.ID, ce.Region, ce.Seq)
	}
	return ce, nil
}

// Kind is the kind of a decoded event.
func (ce *CloudEvent) Kind() escrow.EventKind {
	k, _ := KindOf(ce.Type)
	return k
}

// Hold decodes the data of a hold event.
func (ce *CloudEvent) Hold() (api.Hold, error) {
	var h api.Hold
	if !ce.Kind().IsHold() {
		return h, fmt.Errorf("%w: %s is not a hold event", ErrFormat, ce.Type)
	}
	if err := json.Unmarshal(ce.Data, &h); err != nil {
		return h, fmt.Errorf("%w: data of %s: %v", ErrFormat, ce.ID, err)
	}
	return h, nil
}

// Waitlist decodes the data of a waitlist event.
func (ce *CloudEvent) Waitlist() (api.WaitlistEntry, error) {
	var w api.WaitlistEntry
	if !ce.Kind().IsWait() {
		return w, fmt.Errorf("%w: %s is not a waitlist event", ErrFormat, ce.Type)
	}
	if err := json.Unmarshal(ce.Data, &w); err != nil {
		return w, fmt.Errorf("%w: data of %s: %v", ErrFormat, ce.ID, err)
	}
	return w, nil
}

// Stock decodes the data of a stock event.
func (ce *CloudEvent) Stock() (StockChange, error) {
	var s StockChange
	if ce.Kind().IsHold() || ce.Kind().IsWait() {
		return s, fmt.Errorf("%w: %s is not a stock event", ErrFormat, ce.Type)
	}
	if err := json.Unmarshal(ce.Data, &s); err != nil {
		return s, fmt.Errorf("%w: data of %s: %v", ErrFormat, ce.ID, err)
	}
	return s, nil
}
