package gossip

import (
	"math"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// A waitlist entry in a forward reply (replyFlagWait): id, placement
// sequence, state, lines, created, deadline and updated (Unix ns), the TTL
// of the hold it becomes, its hold id (promoted), metadata and, while
// waiting, one position per line. The idempotency key stays with the owner.

func encodeWaitEntry(e *escrow.WireEncoder, w *escrow.WaitEntry) {
	e.String(w.ID)
	e.Uvarint(w.Seq)
	e.Byte(byte(w.State))
	e.Uvarint(uint64(len(w.Lines)))
	for _, l := range w.Lines {
		e.String(l.SKU)
		e.Uvarint(l.Qty)
	}
	for _, t := range []time.Time{w.Created, w.Deadline, w.Updated} {
		e.Uvarint(uint64(max(0, t.UnixNano())))
	}
	e.Uvarint(uint64(max(0, w.TTL)))
	e.String(w.HoldID)
	e.String(w.Meta)
	e.Uvarint(uint64(len(w.Position)))
	for _, p := range w.Position {
		e.Uvarint(p)
	}
}

// maxPosition bounds a decoded position far above any waitlist limit.
const maxPosition = 1 << 32

func decodeWaitEntry(d *escrow.WireDecoder) escrow.WaitEntry {
	var w escrow.WaitEntry
	w.ID = d.String(escrow.MaxHoldIDLen)
	w.Seq = d.Uvarint()
	w.State = escrow.WaitState(d.Byte())
	if d.Err() == nil && (w.State < escrow.Waiting || w.State > escrow.WaitExpired) {
		d.Fail("waitlist entry state %d", w.State)
	}
	if d.Err() == nil {
		if _, err := escrow.OwnerOf(w.ID); err != nil {
			d.Fail("waitlist entry id: %v", err)
		}
	}
	n := d.Uvarint()
	if d.Err() == nil && (n == 0 || n > escrow.MaxLines) {
		d.Fail("waitlist entry of %d lines (1 to %d)", n, escrow.MaxLines)
	}
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		l := escrow.Line{SKU: d.String(escrow.MaxStockKeyLen)}
		l.Qty = d.Uvarint()
		w.Lines = append(w.Lines, l)
	}
	if d.Err() == nil {
		if _, err := escrow.NormalizeLines(w.Lines); err != nil {
			d.Fail("waitlist entry lines: %v", err)
		}
	}
	var ts [3]time.Time
	for i := range ts {
		v := d.Uvarint()
		if d.Err() == nil && v > math.MaxInt64 {
			d.Fail("waitlist entry time out of range")
		}
		ts[i] = time.Unix(0, int64(v)).UTC()
	}
	w.Created, w.Deadline, w.Updated = ts[0], ts[1], ts[2]
	ttl := d.Uvarint()
	if d.Err() == nil && ttl > uint64(maxForwardTTL) {
		d.Fail("waitlist entry ttl out of range")
	}
	w.TTL = time.Duration(ttl)
	w.HoldID = d.String(escrow.MaxHoldIDLen)
	w.Meta = d.String(escrow.MaxMetaLen)
	np := d.Uvarint()
	if d.Err() == nil && np != 0 && np != n {
		d.Fail("waitlist entry with %d positions for %d lines", np, n)
	}
	for i := uint64(0); i < np && d.Err() == nil; i++ {
		p := d.Uvarint()
		if d.Err() == nil && (p == 0 || p > maxPosition) {
			d.Fail("waitlist position %d out of range", p)
		}
		w.Position = append(w.Position, p)
	}
	return w
}
