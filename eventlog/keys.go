package eventlog

// Pebble key layout of the outbox, inside a region store. Every key starts
// with the prefix "e/", unused by the region's own keys (region/keys.go
// lists them all and registers this one):
//
//	e/head             → 8 bytes BE: seq of the last event written (0: none)
//	e/relay            → 8 bytes BE: relay cursor, the last seq JetStream acknowledged
//	e/s/<seq 8B BE>    → record: recordVersion, kind, time (UnixNano, 8B BE), CloudEvent JSON
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
	recordVersion = 1
	recordHdrLen  = 1 + 1 + 8
)

var (
	keyHead   = []byte(Prefix + "head")
	keyCursor = []byte(Prefix + "relay")
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

func appendRecord(dst []byte, k escrow.EventKind, at time.Time, ce []byte) []byte {
	dst = append(dst, recordVersion, byte(k))
	dst = binary.BigEndian.AppendUint64(dst, uint64(at.UnixNano()))
	return append(dst, ce...)
}

func decodeRecord(seq uint64, v []byte) (Record, error) {
	if len(v) <= recordHdrLen || v[0] != recordVersion {
		return Record{}, fmt.Errorf("eventlog: record %d: unknown version or too short (%d bytes)", seq, len(v))
	}
	return Record{Seq: seq, Kind: escrow.EventKind(v[1]),
		Time: time.Unix(0, int64(binary.BigEndian.Uint64(v[2:recordHdrLen]))).UTC(),
		Data: append([]byte(nil), v[recordHdrLen:]...)}, nil
}

func u64(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("eventlog: %d-byte counter, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
