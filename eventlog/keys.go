package eventlog

// Pebble key layout of the outbox, inside a region store. Every key starts
// with the prefix "e/", unused by the region's own keys (region/keys.go
// lists them all and registers this one):
//
//	e/head             → 8 bytes BE: seq of the last event written (0: none)
//	e/relay            → 8 bytes BE: relay cursor, the last seq JetStream acknowledged
//	e/floor            → 8 bytes BE: retention floor, every record below it was pruned
//	                     (absent: never pruned by a build that writes it)
//	e/s/<seq 8B BE>    → record (below)
//
// A record is a header — version byte, kind byte, time (UnixNano, 8 bytes
// BE) — and a body that depends on the version:
//
//	version 1: the event's CloudEvents JSON (written by the first release of
//	           the log; still read).
//	version 2: what the CloudEvent is rebuilt from, in the escrow wire
//	           conventions (escrow.WireEncoder). Hold events: the hold as of
//	           the change, escrow.EncodeHold (its own magic, version and
//	           kind). Stock events: SKU (uvarint length + bytes), qty and
//	           available (uvarints). Nothing else: region, cluster and seq
//	           come from the outbox and the key.
//
// Version 2 is what Append writes: a compact record costs the batch and the
// compactions a fraction of the JSON, and the JSON is built only when a
// reader (the HTTP feed, the relay) asks for the event, by the same Encode
// as before, so the events served are byte-identical to version 1's.
//
// Sequences are gap-free: the batch that writes events head+1..head+n also
// sets e/head to head+n. Pruning deletes a range e/s/<1>..e/s/<below>.

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

const (
	// Prefix is the outbox's key prefix in a region store.
	Prefix        = "e/"
	recordJSON    = 1 // body: the CloudEvents JSON
	recordCompact = 2 // body: the escrow wire form of the change
	recordVersion = recordCompact
	recordHdrLen  = 1 + 1 + 8
)

var (
	keyHead   = []byte(Prefix + "head")
	keyCursor = []byte(Prefix + "relay")
	keyFloor  = []byte(Prefix + "floor")
	pfxRecord = Prefix + "s/"
)

func recordKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(pfxRecord), seq)
}

// RecordKey is the key of the record of seq (for range estimates).
func RecordKey(seq uint64) []byte { return recordKey(seq) }

func seqOfKey(k []byte) (uint64, error) {
	if len(k) != len(pfxRecord)+8 || string(k[:len(pfxRecord)]) != pfxRecord {
		return 0, fmt.Errorf("eventlog: bad record key %q", k)
	}
	return binary.BigEndian.Uint64(k[len(pfxRecord):]), nil
}

// appendRecord appends the version-2 record of e to dst.
func appendRecord(dst []byte, e *escrow.Event) ([]byte, error) {
	dst = append(dst, recordVersion, byte(e.Kind))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.At.UnixNano()))
	switch {
	case e.Kind.IsHold():
		return escrow.EncodeHold(dst, e.Hold), nil
	case e.Kind == escrow.EvStockRestocked || e.Kind == escrow.EvStockWrittenOff:
		w := escrow.WireEncoder{B: dst}
		w.String(e.SKU)
		w.Uvarint(e.Qty)
		w.Uvarint(e.Available)
		return w.B, nil
	}
	return nil, fmt.Errorf("eventlog: unknown event kind %d", e.Kind)
}

// appendJSONRecord appends the version-1 record of e, event seq of region
// in cluster: its CloudEvents JSON, built now.
func appendJSONRecord(dst []byte, cluster, region string, seq uint64, e *escrow.Event) ([]byte, error) {
	data, err := Encode(cluster, region, seq, e)
	if err != nil {
		return nil, err
	}
	dst = append(dst, recordJSON, byte(e.Kind))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.At.UnixNano()))
	return append(dst, data...), nil
}

// rawRecord is a record as stored, its body not yet decoded.
type rawRecord struct {
	seq     uint64
	version byte
	kind    escrow.EventKind
	at      time.Time
	body    []byte // only valid until the iterator moves
}

func parseRecord(seq uint64, v []byte) (rawRecord, error) {
	if len(v) <= recordHdrLen || (v[0] != recordJSON && v[0] != recordCompact) {
		return rawRecord{}, fmt.Errorf("eventlog: record %d: unknown version or too short (%d bytes)", seq, len(v))
	}
	return rawRecord{seq: seq, version: v[0], kind: escrow.EventKind(v[1]),
		at: time.Unix(0, int64(binary.BigEndian.Uint64(v[2:recordHdrLen]))).UTC(), body: v[recordHdrLen:]}, nil
}

// event rebuilds the change a version-2 record states.
func (r *rawRecord) event() (escrow.Event, error) {
	e := escrow.Event{Kind: r.kind, At: r.at}
	switch {
	case r.kind.IsHold():
		h, err := escrow.DecodeHold(r.body)
		if err != nil {
			return e, fmt.Errorf("eventlog: record %d: %w", r.seq, err)
		}
		e.HoldID, e.Hold = h.ID, &h
	case r.kind == escrow.EvStockRestocked || r.kind == escrow.EvStockWrittenOff:
		d := escrow.NewWireDecoder(r.body, ErrFormat)
		e.SKU = d.String(escrow.MaxStockKeyLen)
		e.Qty = d.Uvarint()
		e.Available = d.Uvarint()
		d.End()
		if err := d.Err(); err != nil {
			return e, fmt.Errorf("eventlog: record %d: %w", r.seq, err)
		}
	default:
		return e, fmt.Errorf("eventlog: record %d: unknown event kind %d", r.seq, r.kind)
	}
	return e, nil
}

// record is the Record of r: the CloudEvents JSON of an event of region in
// cluster, built now for a version-2 record, copied for a version-1 one.
func (r *rawRecord) record(cluster, region string) (Record, error) {
	rec := Record{Seq: r.seq, Kind: r.kind, Time: r.at}
	if r.version == recordJSON {
		rec.Data = append([]byte(nil), r.body...)
		return rec, nil
	}
	e, err := r.event()
	if err != nil {
		return rec, err
	}
	rec.Data, err = Encode(cluster, region, r.seq, &e)
	return rec, err
}

func u64(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("eventlog: %d-byte counter, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
