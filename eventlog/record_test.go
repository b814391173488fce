package eventlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

// The compact record rebuilds exactly the CloudEvent that encoding the
// event at Append time gave, for every kind, times in any zone included.
func TestCompactRecordRebuildsIdenticalEvents(t *testing.T) {
	evs := nodeEvents(t)
	// A time in another zone, and a partial hold in a cart.
	paris := time.FixedZone("CET", 3600)
	evs = append(evs, escrow.Event{Kind: escrow.EvStockWrittenOff, At: t0.In(paris), SKU: "pear", Qty: 1, Available: 0},
		partialHoldEvent(t, evs))
	db := memDB(t)
	o, err := OpenOutbox(db, "prod", "eu")
	if err != nil {
		t.Fatal(err)
	}
	commit(t, db, o, evs)
	recs, err := o.Read(0, len(evs)+1)
	if err != nil || len(recs) != len(evs) {
		t.Fatalf("read %d of %d records: %v", len(recs), len(evs), err)
	}
	for i := range evs {
		want, err := Encode("prod", "eu", uint64(i+1), &evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(recs[i].Data, want) {
			t.Errorf("event %d (%s):\n got %s\nwant %s", i+1, evs[i].Kind, recs[i].Data, want)
		}
		if recs[i].Kind != evs[i].Kind || !recs[i].Time.Equal(evs[i].At) {
			t.Errorf("event %d: kind %s time %v, want %s %v", i+1, recs[i].Kind, recs[i].Time, evs[i].Kind, evs[i].At)
		}
	}
}

func partialHoldEvent(t *testing.T, evs []escrow.Event) escrow.Event {
	t.Helper()
	for _, e := range evs {
		if e.Kind == escrow.EvHoldCreated {
			h := *e.Hold
			h.Cart = "cart-7"
			h.Asked = []escrow.Line{{SKU: h.Lines[0].SKU, Qty: h.Lines[0].Qty + 3}, {SKU: "zucchini", Qty: 1}}
			return escrow.Event{Kind: escrow.EvHoldCreated, At: e.At, HoldID: h.ID, Hold: &h}
		}
	}
	t.Fatal("no hold created")
	return escrow.Event{}
}

// Stores written before the compact record keep their JSON records: they
// are served as they are, next to compact ones.
func TestVersion1RecordsStillRead(t *testing.T) {
	db := memDB(t)
	ev := stockEvents(1, 1)[0]
	ce, err := Encode("prod", "eu", 1, &ev)
	if err != nil {
		t.Fatal(err)
	}
	v1 := append([]byte{recordJSON, byte(ev.Kind)}, binary.BigEndian.AppendUint64(nil, uint64(ev.At.UnixNano()))...)
	if err := db.Set(recordKey(1), append(v1, ce...), nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Set(keyHead, be64(1), nil); err != nil {
		t.Fatal(err)
	}
	o, err := OpenOutbox(db, "prod", "eu")
	if err != nil {
		t.Fatal(err)
	}
	commit(t, db, o, stockEvents(2, 1))
	recs, err := o.Read(0, 10)
	if err != nil || len(recs) != 2 || !bytes.Equal(recs[0].Data, ce) {
		t.Fatalf("read %+v, %v", recs, err)
	}
	if got, err := Decode(recs[1].Data); err != nil || got.Seq != 2 {
		t.Fatalf("compact record after a v1 one: %+v, %v", got, err)
	}
}

// Records that do not parse are reported, not served or skipped.
func TestBadRecordsRefused(t *testing.T) {
	for name, v := range map[string][]byte{
		"version 9":       append([]byte{9, byte(escrow.EvStockRestocked)}, make([]byte, 9)...),
		"short":           {recordCompact, 1},
		"unknown kind":    append([]byte{recordCompact, 99}, make([]byte, 9)...),
		"truncated hold":  append([]byte{recordCompact, byte(escrow.EvHoldCreated)}, make([]byte, 12)...),
		"stock trailing":  append(append([]byte{recordCompact, byte(escrow.EvStockRestocked)}, make([]byte, 8)...), 1, 'a', 1, 1, 7),
		"stock truncated": append(append([]byte{recordCompact, byte(escrow.EvStockRestocked)}, make([]byte, 8)...), 5, 'a'),
	} {
		db := memDB(t)
		if err := db.Set(recordKey(1), v, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadRange(db, "prod", "eu", 0, 1, 10); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
	if _, err := appendRecord(nil, &escrow.Event{Kind: 99}); err == nil {
		t.Error("appendRecord took an unknown kind")
	}
}

// The largest hold the core accepts (every limit at its maximum, every
// character one that JSON escapes) still makes an event under
// MaxEventBytes: rebuilding the JSON at read time can never fail on size.
func TestLargestHoldFitsAnEvent(t *testing.T) {
	h := escrow.Hold{ID: "eu-" + strings.Repeat("0", 26), State: escrow.Held, Created: t0, Expires: t0, MaxExpires: t0, Updated: t0,
		IdemKey: strings.Repeat("k", escrow.MaxIdemKeyLen), Meta: strings.Repeat("\x01", escrow.MaxMetaLen), Cart: strings.Repeat("c", escrow.MaxCartLen)}
	for i := 0; i < escrow.MaxLines; i++ {
		sku := fmt.Sprintf("%03d", i) + strings.Repeat("<", escrow.MaxSKULen-3)
		h.Lines = append(h.Lines, escrow.Line{SKU: sku, Qty: escrow.MaxQty - 1})
		h.Asked = append(h.Asked, escrow.Line{SKU: sku, Qty: escrow.MaxQty})
	}
	ev := escrow.Event{Kind: escrow.EvHoldConfirmed, At: t0, HoldID: h.ID, Hold: &h}
	b, err := Encode("prod", "eu", 1<<63, &ev)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("largest event: %d bytes (limit %d)", len(b), MaxEventBytes)
	rec, err := appendRecord(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := parseRecord(1, rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.event(); err != nil {
		t.Fatalf("largest hold does not round-trip: %v", err)
	}
}

// OpenOutbox refuses a log whose head key and records disagree, and
// accepts every state a crash or a prune can leave.
func TestOpenOutboxCrossChecksHead(t *testing.T) {
	setup := func(t *testing.T, n int, pruneBelow uint64) *Outbox {
		db := memDB(t)
		o, err := OpenOutbox(db, "prod", "eu")
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			commit(t, db, o, stockEvents(1, n))
		}
		if err := o.Prune(pruneBelow); err != nil {
			t.Fatal(err)
		}
		return o
	}
	reopen := func(o *Outbox) error {
		_, err := OpenOutbox(o.db, "prod", "eu")
		return err
	}
	for _, c := range []struct {
		n     int
		prune uint64
	}{{0, 0}, {5, 0}, {5, 3}, {5, 6}} {
		if err := reopen(setup(t, c.n, c.prune)); err != nil {
			t.Errorf("%d events pruned below %d: %v", c.n, c.prune, err)
		}
	}
	if err := setup(t, 5, 0).Prune(7); err == nil {
		t.Error("pruned past the head")
	}
	for name, c := range map[string]struct {
		prune uint64
		edit  func(db *pebble.DB) error
	}{
		"head past the last record": {0, func(db *pebble.DB) error { return db.Set(keyHead, be64(7), nil) }},
		"record past the head":      {0, func(db *pebble.DB) error { return db.Set(keyHead, be64(4), nil) }},
		"last record lost":          {0, func(db *pebble.DB) error { return db.Delete(recordKey(5), nil) }},
		"all records lost":          {2, func(db *pebble.DB) error { return db.DeleteRange(recordKey(0), recordKey(9), nil) }},
		"first record lost":         {2, func(db *pebble.DB) error { return db.Delete(recordKey(2), nil) }},
	} {
		o := setup(t, 5, c.prune)
		if err := c.edit(o.db); err != nil {
			t.Fatal(err)
		}
		if err := reopen(o); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: reopen gave %v, want ErrCorrupt", name, err)
		}
	}
}
