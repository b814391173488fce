package escrow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Wire format: every encoded value starts with a two-byte magic and a
// version byte, then uvarint numbers and length-prefixed strings. Decoders
// check every length against the limits below before allocating, reject
// trailing bytes and unknown versions, and validate what they decode, so
// that garbage is an error and never a panic or a huge allocation.
const (
	WireVersion     = 1
	MaxMessageBytes = 1 << 20 // one encoded message
	MaxWireRows     = 4096    // rows per message
	MaxWireDigest   = 4096    // SKU digests per message
	MaxWireMoves    = 4096    // advice moves per message
	MaxRegions      = 64      // Sent entries per row
	// maxCounter bounds every counter so that available() cannot overflow
	// int64 even when MaxRegions peers each claim to have sent the maximum
	// (64 × 2^56 = 2^62): a bad peer row cannot wrap a region negative.
	maxCounter = 1 << 56
)

const (
	magic0, magic1 = 'h', 'f'
	kindMsg        = 'M'
	kindRow        = 'R'
	kindHold       = 'H'
	flagMore       = 1
	flagUrgent     = 2
)

// ErrWire is wrapped by every decoding error.
var ErrWire = errors.New("escrow: bad wire data")

// ErrWireVersion is wrapped when data comes from a newer version.
var ErrWireVersion = errors.New("escrow: unsupported wire version")

type encoder struct{ b []byte }

func (e *encoder) u(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) s(v string)  { e.u(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) byte(v byte) { e.b = append(e.b, v) }
func (e *encoder) t(v time.Time) {
	if v.IsZero() {
		e.b = binary.AppendVarint(e.b, 0)
		return
	}
	e.b = binary.AppendVarint(e.b, v.UnixNano())
}

func (e *encoder) header(kind byte) {
	e.b = append(e.b, magic0, magic1, WireVersion, kind)
}

func (e *encoder) row(r *Row) {
	e.s(r.SKU)
	e.s(r.Region)
	e.u(r.Seq)
	e.u(r.Minted)
	e.u(r.Reserved)
	e.u(r.Released)
	e.u(r.Sold)
	e.u(r.Shrunk)
	e.u(uint64(len(r.Sent)))
	for _, t := range r.Sent {
		e.s(t.To)
		e.u(t.Qty)
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrWire}, args...)...)
	}
}

func (d *decoder) u() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated or overlong number")
		return 0
	}
	// Only the shortest encoding is accepted, so that every value has one
	// encoding and encode(decode(b)) == b.
	if n > 1 && d.b[n-1] == 0 {
		d.fail("non-minimal number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) counter(what string) uint64 {
	v := d.u()
	if v >= maxCounter {
		d.fail("%s %d out of range", what, v)
	}
	return v
}

func (d *decoder) s(limit int) string {
	n := d.u()
	if d.err != nil {
		return ""
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail("string of %d bytes (limit %d, %d left)", n, limit, len(d.b))
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) t() time.Time {
	if d.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("truncated time")
		return time.Time{}
	}
	if n > 1 && d.b[n-1] == 0 {
		d.fail("non-minimal time")
		return time.Time{}
	}
	d.b = d.b[n:]
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

func (d *decoder) count(what string, limit int) int {
	n := d.u()
	if n > uint64(limit) {
		d.fail("%d %s (limit %d)", n, what, limit)
		return 0
	}
	// Every element takes at least one byte: refuse counts the data cannot hold.
	if n > uint64(len(d.b)) {
		d.fail("%d %s in %d bytes", n, what, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) header(kind byte) {
	if len(d.b) < 4 || d.b[0] != magic0 || d.b[1] != magic1 {
		d.fail("missing magic")
		return
	}
	if d.b[2] != WireVersion {
		d.err = fmt.Errorf("%w %d (this build speaks %d)", ErrWireVersion, d.b[2], WireVersion)
		return
	}
	if d.b[3] != kind {
		d.fail("kind %q, want %q", d.b[3], kind)
		return
	}
	d.b = d.b[4:]
}

func (d *decoder) end() {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
}

func (d *decoder) row() Row {
	var r Row
	r.SKU = d.s(MaxSKULen)
	r.Region = d.s(MaxRegionLen)
	r.Seq = d.counter("seq")
	r.Minted = d.counter("minted")
	r.Reserved = d.counter("reserved")
	r.Released = d.counter("released")
	r.Sold = d.counter("sold")
	r.Shrunk = d.counter("shrunk")
	n := d.count("sent entries", MaxRegions)
	if n > 0 {
		r.Sent = make([]Transfer, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		t := Transfer{To: d.s(MaxRegionLen), Qty: d.counter("sent")}
		if d.err != nil {
			break
		}
		if ValidRegion(t.To) != nil || t.Qty == 0 || t.To == r.Region {
			d.fail("bad sent entry %q=%d in row %s/%s", t.To, t.Qty, r.Region, r.SKU)
		}
		if i > 0 && r.Sent[i-1].To >= t.To {
			d.fail("sent entries of row %s/%s not sorted", r.Region, r.SKU)
		}
		r.Sent = append(r.Sent, t)
	}
	if d.err != nil {
		return Row{}
	}
	if err := ValidSKU(r.SKU); err != nil {
		d.fail("%v", err)
	} else if err := ValidRegion(r.Region); err != nil {
		d.fail("%v", err)
	} else if r.Released+r.Sold > r.Reserved {
		d.fail("row %s/%s returns more than it reserved", r.Region, r.SKU)
	}
	return r
}

// EncodeMessage appends the binary form of m to dst. It fails if m breaks
// a wire limit, so an oversized message is never sent.
func EncodeMessage(dst []byte, m *Message) ([]byte, error) {
	if len(m.Rows) > MaxWireRows || len(m.Digest) > MaxWireDigest || len(m.Moves) > MaxWireMoves {
		return dst, fmt.Errorf("escrow: message %s over limits: %d rows, %d digests, %d moves",
			m.Type, len(m.Rows), len(m.Digest), len(m.Moves))
	}
	e := encoder{b: dst}
	start := len(dst)
	e.header(kindMsg)
	e.byte(byte(m.Type))
	e.s(m.From)
	e.s(m.To)
	e.u(m.ID)
	e.u(m.Seq)
	e.u(m.PrevSeq)
	var flags byte
	if m.More {
		flags |= flagMore
	}
	if m.Urgent {
		flags |= flagUrgent
	}
	e.byte(flags)
	e.s(m.SKU)
	e.u(m.Qty)
	e.u(m.Epoch)
	e.u(uint64(len(m.Rows)))
	for i := range m.Rows {
		e.row(&m.Rows[i])
	}
	e.u(uint64(len(m.Digest)))
	for _, g := range m.Digest {
		e.s(g.SKU)
		e.u(g.Available)
		e.u(g.Held)
		e.u(g.DemandMilli)
		e.u(g.Rejected)
	}
	e.u(uint64(len(m.Moves)))
	for _, mv := range m.Moves {
		e.s(mv.SKU)
		e.s(mv.From)
		e.s(mv.To)
		e.u(mv.Qty)
	}
	if len(e.b)-start > MaxMessageBytes {
		return dst, fmt.Errorf("escrow: message %s is %d bytes, over the %d-byte limit", m.Type, len(e.b)-start, MaxMessageBytes)
	}
	return e.b, nil
}

// DecodeMessage parses one message. Any malformed, truncated, oversized or
// future-version input returns an error wrapping ErrWire or ErrWireVersion.
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	if len(b) > MaxMessageBytes {
		return m, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrWire, len(b), MaxMessageBytes)
	}
	d := decoder{b: b}
	d.header(kindMsg)
	m.Type = MsgType(d.byte())
	m.From = d.s(MaxRegionLen)
	m.To = d.s(MaxRegionLen)
	m.ID = d.u()
	m.Seq = d.counter("seq")
	m.PrevSeq = d.counter("prev seq")
	flags := d.byte()
	m.More = flags&flagMore != 0
	m.Urgent = flags&flagUrgent != 0
	if flags&^(flagMore|flagUrgent) != 0 {
		d.fail("unknown flags %#x", flags)
	}
	m.SKU = d.s(MaxSKULen)
	m.Qty = d.counter("qty")
	m.Epoch = d.u()
	if n := d.count("rows", MaxWireRows); n > 0 {
		m.Rows = make([]Row, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			m.Rows = append(m.Rows, d.row())
		}
	}
	if n := d.count("digests", MaxWireDigest); n > 0 {
		m.Digest = make([]SKUDigest, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			m.Digest = append(m.Digest, SKUDigest{SKU: d.s(MaxSKULen), Available: d.counter("available"),
				Held: d.counter("held"), DemandMilli: d.counter("demand"), Rejected: d.counter("rejected")})
		}
	}
	if n := d.count("moves", MaxWireMoves); n > 0 {
		m.Moves = make([]Move, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			m.Moves = append(m.Moves, Move{SKU: d.s(MaxSKULen), From: d.s(MaxRegionLen), To: d.s(MaxRegionLen),
				Qty: d.counter("move qty")})
		}
	}
	d.end()
	if d.err != nil {
		return Message{}, d.err
	}
	if m.Type < MsgRows || m.Type > MsgAdvice {
		return Message{}, fmt.Errorf("%w: unknown message type %d", ErrWire, m.Type)
	}
	if err := ValidRegion(m.From); err != nil {
		return Message{}, fmt.Errorf("%w: from: %v", ErrWire, err)
	}
	if m.To != "" {
		if err := ValidRegion(m.To); err != nil {
			return Message{}, fmt.Errorf("%w: to: %v", ErrWire, err)
		}
	}
	if m.SKU != "" {
		if err := ValidSKU(m.SKU); err != nil {
			return Message{}, fmt.Errorf("%w: %v", ErrWire, err)
		}
	}
	return m, nil
}

// EncodeRow appends the storage form of r to dst.
func EncodeRow(dst []byte, r *Row) []byte {
	e := encoder{b: dst}
	e.header(kindRow)
	e.row(r)
	return e.b
}

// DecodeRow parses a row written by EncodeRow.
func DecodeRow(b []byte) (Row, error) {
	d := decoder{b: b}
	d.header(kindRow)
	r := d.row()
	d.end()
	return r, d.err
}

// EncodeHold appends the storage form of h to dst.
func EncodeHold(dst []byte, h *Hold) []byte {
	e := encoder{b: dst}
	e.header(kindHold)
	e.s(h.ID)
	e.byte(byte(h.State))
	e.t(h.Created)
	e.t(h.Expires)
	e.t(h.MaxExpires)
	e.t(h.Updated)
	e.s(h.IdemKey)
	e.s(h.Meta)
	e.u(uint64(len(h.Lines)))
	for _, l := range h.Lines {
		e.s(l.SKU)
		e.u(l.Qty)
	}
	return e.b
}

// DecodeHold parses a hold written by EncodeHold.
func DecodeHold(b []byte) (Hold, error) {
	var h Hold
	d := decoder{b: b}
	d.header(kindHold)
	h.ID = d.s(MaxHoldIDLen)
	h.State = HoldState(d.byte())
	h.Created = d.t()
	h.Expires = d.t()
	h.MaxExpires = d.t()
	h.Updated = d.t()
	h.IdemKey = d.s(MaxIdemKeyLen)
	h.Meta = d.s(MaxMetaLen)
	n := d.count("lines", MaxLines)
	for i := 0; i < n && d.err == nil; i++ {
		h.Lines = append(h.Lines, Line{SKU: d.s(MaxSKULen), Qty: d.u()})
	}
	d.end()
	if d.err != nil {
		return Hold{}, d.err
	}
	if h.State < Held || h.State > Expired {
		return Hold{}, fmt.Errorf("%w: hold %s has state %d", ErrWire, h.ID, h.State)
	}
	if _, err := OwnerOf(h.ID); err != nil {
		return Hold{}, fmt.Errorf("%w: %v", ErrWire, err)
	}
	lines, err := NormalizeLines(h.Lines)
	if err != nil {
		return Hold{}, fmt.Errorf("%w: hold %s lines: %v", ErrWire, h.ID, err)
	}
	// Stored lines are already normalized: sorted by SKU, no duplicates.
	if len(lines) != len(h.Lines) {
		return Hold{}, fmt.Errorf("%w: hold %s has duplicate lines", ErrWire, h.ID)
	}
	for i := range lines {
		if lines[i] != h.Lines[i] {
			return Hold{}, fmt.Errorf("%w: hold %s lines are not sorted", ErrWire, h.ID)
		}
	}
	return h, nil
}
