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
//
// Compatibility rule for peer messages (rolling upgrades): a build reads
// and writes every message version from MinWireVersion to WireVersion, and
// MinWireVersion is the previous release's WireVersion, so a region of
// release N+1 and a region of release N understand each other. A region
// writes to a peer the highest version both speak: every version-2
// message carries Message.Speaks, the highest version its sender reads,
// and a peer not (yet) heard speaking a version is written MinWireVersion
// (gossip/version.go). Storage records (rows, holds) have their own
// version, storeVersion, which this rule does not touch.
//
// Version 2 = version 1 with one byte after the kind: Speaks (>= 2).
// Version 3 = version 2 whose SKU fields may be stock keys of a location
// (locations.go). It is written only for messages that carry at least one
// such key, and only such messages are version 3, so every message about
// default-location SKUs keeps its version-2 form and a version-2 peer
// keeps reading it; a version-2 peer is never sent location keys
// (WithoutLocationKeys).
const (
	WireVersion     = 3
	MinWireVersion  = 1
	storeVersion    = 1
	MaxMessageBytes = 1 << 20 // one encoded message
	MaxWireRows     = 4096    // rows per message
	MaxWireDigest   = 4096    // SKU digests per message
	MaxWireMoves    = 4096    // advice moves per message
	MaxWireHomes    = 4096    // advice homes per message
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
	kindRowValue   = 'r' // a stored row without the SKU and region its key names
	kindHold       = 'H'
	flagMore       = 1
	flagUrgent     = 2
	// flagHomes: a homes section follows the moves. Messages without homes
	// encode exactly as before homes existed.
	flagHomes = 4
	// flagSeen: a Seen list follows the homes (digests only). A flag
	// rather than a new version: messages without it keep their exact
	// encoding, and a decoder that predates it refuses the digest cleanly
	// (unknown flag) instead of misreading it.
	flagSeen = 8
	// flagFenced: Message.Fenced (digests only), added like flagSeen.
	flagFenced = 16
	// flagWaiting: a waiting section follows the seen list (digests only):
	// SKUDigest.Waiting of every digest entry, in order. Added like flagSeen.
	flagWaiting = 32
)

// ErrWire is wrapped by every decoding error.
var ErrWire = errors.New("escrow: bad wire data")

// ErrWireVersion is wrapped when data comes from a version this build does
// not read (newer than WireVersion, or older than MinWireVersion).
var ErrWireVersion = errors.New("escrow: unsupported wire version")

// WireEncoder appends the primitives of holdfast's binary formats to B:
// uvarints, length-prefixed strings, single bytes and the magic + version +
// kind header. It is exported so that other holdfast formats (the gossip
// forward codec) are written with exactly the same conventions.
type WireEncoder struct{ B []byte }

// Uvarint appends v in its shortest uvarint form.
func (e *WireEncoder) Uvarint(v uint64) { e.B = binary.AppendUvarint(e.B, v) }

// String appends v as a uvarint length followed by its bytes.
func (e *WireEncoder) String(v string) { e.Uvarint(uint64(len(v))); e.B = append(e.B, v...) }

// Byte appends one byte.
func (e *WireEncoder) Byte(v byte) { e.B = append(e.B, v) }

// Header appends the two-byte magic, the format version and the kind byte.
func (e *WireEncoder) Header(version, kind byte) {
	e.B = append(e.B, magic0, magic1, version, kind)
}

func (e *WireEncoder) t(v time.Time) {
	if v.IsZero() {
		e.B = binary.AppendVarint(e.B, 0)
		return
	}
	e.B = binary.AppendVarint(e.B, v.UnixNano())
}

func (e *WireEncoder) row(r *Row) {
	e.String(r.SKU)
	e.String(r.Region)
	e.rowBody(r)
}

// rowBody writes what a row holds besides its SKU and region.
func (e *WireEncoder) rowBody(r *Row) {
	e.Uvarint(r.Seq)
	e.Uvarint(r.Minted)
	e.Uvarint(r.Reserved)
	e.Uvarint(r.Released)
	e.Uvarint(r.Sold)
	e.Uvarint(r.Shrunk)
	e.Uvarint(uint64(len(r.Sent)))
	for _, t := range r.Sent {
		e.String(t.To)
		e.Uvarint(t.Qty)
	}
}

// WireDecoder reads what a WireEncoder wrote. The first failure sticks:
// later reads return zero values, and Err reports it, so a decode function
// reads every field and checks once. Every length is checked against its
// limit and against the bytes left before anything is allocated, and only
// the shortest encoding of a number is accepted, so that every value has
// one encoding and encode(decode(b)) == b.
type WireDecoder struct {
	b   []byte
	err error
	bad error // wrapped by every failure but a version mismatch
}

// NewWireDecoder returns a decoder of b whose errors wrap bad (ErrWire when
// bad is nil).
func NewWireDecoder(b []byte, bad error) WireDecoder {
	if bad == nil {
		bad = ErrWire
	}
	return WireDecoder{b: b, bad: bad}
}

// Err is the first failure, or nil.
func (d *WireDecoder) Err() error { return d.err }

// Fail records a failure (if none is recorded yet) wrapping the decoder's
// error; decode functions use it for the checks of what they decoded.
func (d *WireDecoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{d.bad}, args...)...)
	}
}

// Uvarint reads one number in its shortest form.
func (d *WireDecoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.Fail("truncated or overlong number")
		return 0
	}
	if n > 1 && d.b[n-1] == 0 {
		d.Fail("non-minimal number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Bytes reads a length-prefixed field of at most limit bytes. The result
// aliases the input.
func (d *WireDecoder) Bytes(limit int) []byte {
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.Fail("field of %d bytes (limit %d, %d left)", n, limit, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// String reads a length-prefixed string of at most limit bytes.
func (d *WireDecoder) String(limit int) string { return string(d.Bytes(limit)) }

// Byte reads one byte.
func (d *WireDecoder) Byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.Fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// Header checks the magic, the version (a mismatch wraps ErrWireVersion)
// and the kind byte written by WireEncoder.Header.
func (d *WireDecoder) Header(version, kind byte) {
	if d.err != nil {
		return
	}
	if len(d.b) < 4 || d.b[0] != magic0 || d.b[1] != magic1 {
		d.Fail("missing magic")
		return
	}
	if d.b[2] != version {
		d.err = fmt.Errorf("%w %d (this build speaks %d)", ErrWireVersion, d.b[2], version)
		return
	}
	if d.b[3] != kind {
		d.Fail("kind %q, want %q", d.b[3], kind)
		return
	}
	d.b = d.b[4:]
}

// HeaderRange is Header for a format whose versions lo..hi this build
// reads; it returns the version found (0 after a failure).
func (d *WireDecoder) HeaderRange(lo, hi, kind byte) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) >= 4 && d.b[0] == magic0 && d.b[1] == magic1 && d.b[2] >= lo && d.b[2] <= hi {
		v := d.b[2]
		d.Header(v, kind)
		if d.err != nil {
			return 0
		}
		return v
	}
	d.Header(hi, kind)
	return 0
}

// End fails if any bytes are left.
func (d *WireDecoder) End() {
	if d.err == nil && len(d.b) != 0 {
		d.Fail("%d trailing bytes", len(d.b))
	}
}

func (d *WireDecoder) counter(what string) uint64 {
	v := d.Uvarint()
	if v >= maxCounter {
		d.Fail("%s %d out of range", what, v)
	}
	return v
}

func (d *WireDecoder) t() time.Time {
	if d.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.Fail("truncated time")
		return time.Time{}
	}
	if n > 1 && d.b[n-1] == 0 {
		d.Fail("non-minimal time")
		return time.Time{}
	}
	d.b = d.b[n:]
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

func (d *WireDecoder) count(what string, limit int) int {
	n := d.Uvarint()
	if n > uint64(limit) {
		d.Fail("%d %s (limit %d)", n, what, limit)
		return 0
	}
	// Every element takes at least one byte: refuse counts the data cannot hold.
	if n > uint64(len(d.b)) {
		d.Fail("%d %s in %d bytes", n, what, len(d.b))
		return 0
	}
	return int(n)
}

func (d *WireDecoder) row() Row {
	var r Row
	r.SKU = d.String(MaxStockKeyLen)
	r.Region = d.String(MaxRegionLen)
	return d.rowBody(r)
}

// rowBody reads what WireEncoder.rowBody wrote into r, whose SKU and region are set,
// and checks the whole row.
func (d *WireDecoder) rowBody(r Row) Row {
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
		t := Transfer{To: d.String(MaxRegionLen), Qty: d.counter("sent")}
		if d.err != nil {
			break
		}
		if ValidRegion(t.To) != nil || t.Qty == 0 || t.To == r.Region {
			d.Fail("bad sent entry %q=%d in row %s/%s", t.To, t.Qty, r.Region, r.SKU)
		}
		if i > 0 && r.Sent[i-1].To >= t.To {
			d.Fail("sent entries of row %s/%s not sorted", r.Region, r.SKU)
		}
		r.Sent = append(r.Sent, t)
	}
	if d.err != nil {
		return Row{}
	}
	if err := ValidStockKey(r.SKU); err != nil {
		d.Fail("%v", err)
	} else if err := ValidRegion(r.Region); err != nil {
		d.Fail("%v", err)
	} else if r.Released+r.Sold > r.Reserved {
		d.Fail("row %s/%s returns more than it reserved", r.Region, r.SKU)
	}
	return r
}

// EncodeMessage appends the binary form of m to dst: version 2 when
// m.Speaks is set (>= 2), else version 1, which every release since the
// first reads. It fails if m breaks a wire limit, so an oversized message
// is never sent.
func EncodeMessage(dst []byte, m *Message) ([]byte, error) {
	if m.Speaks == 1 || m.Speaks > WireVersion {
		return dst, fmt.Errorf("escrow: message %s claims wire version %d (this build speaks %d..%d)", m.Type, m.Speaks, MinWireVersion, WireVersion)
	}
	if len(m.Rows) > MaxWireRows || len(m.Digest) > MaxWireDigest || len(m.Moves) > MaxWireMoves || len(m.Homes) > MaxWireHomes ||
		len(m.Seen) > MaxRegions {
		return dst, fmt.Errorf("escrow: message %s over limits: %d rows, %d digests, %d moves, %d homes, %d seen",
			m.Type, len(m.Rows), len(m.Digest), len(m.Moves), len(m.Homes), len(m.Seen))
	}
	loc := MessageHasLocationKeys(m)
	if loc && m.Speaks < 3 {
		return dst, fmt.Errorf("escrow: message %s carries location keys, which need wire version 3 (speaks %d)", m.Type, m.Speaks)
	}
	e := WireEncoder{B: dst}
	start := len(dst)
	if loc {
		e.Header(3, kindMsg)
		e.Byte(m.Speaks)
	} else if m.Speaks >= 2 {
		e.Header(2, kindMsg)
		e.Byte(m.Speaks)
	} else {
		e.Header(1, kindMsg)
	}
	e.Byte(byte(m.Type))
	e.String(m.From)
	e.String(m.To)
	e.Uvarint(m.ID)
	e.Uvarint(m.Seq)
	e.Uvarint(m.PrevSeq)
	var flags byte
	if m.More {
		flags |= flagMore
	}
	if m.Urgent {
		flags |= flagUrgent
	}
	if len(m.Homes) > 0 {
		flags |= flagHomes
	}
	if len(m.Seen) > 0 {
		flags |= flagSeen
	}
	if m.Fenced {
		flags |= flagFenced
	}
	if digestsWait(m.Digest) {
		flags |= flagWaiting
	}
	e.Byte(flags)
	e.String(m.SKU)
	e.Uvarint(m.Qty)
	e.Uvarint(m.Epoch)
	e.Uvarint(uint64(len(m.Rows)))
	for i := range m.Rows {
		e.row(&m.Rows[i])
	}
	e.Uvarint(uint64(len(m.Digest)))
	for _, g := range m.Digest {
		e.String(g.SKU)
		e.Uvarint(g.Available)
		e.Uvarint(g.Held)
		e.Uvarint(g.DemandMilli)
		e.Uvarint(g.Rejected)
	}
	e.Uvarint(uint64(len(m.Moves)))
	for _, mv := range m.Moves {
		e.String(mv.SKU)
		e.String(mv.From)
		e.String(mv.To)
		e.Uvarint(mv.Qty)
	}
	if len(m.Homes) > 0 {
		e.Uvarint(uint64(len(m.Homes)))
		for _, h := range m.Homes {
			e.String(h.SKU)
			e.String(h.Region)
		}
	}
	if len(m.Seen) > 0 {
		e.Uvarint(uint64(len(m.Seen)))
		for _, rs := range m.Seen {
			e.String(rs.Region)
			e.Uvarint(rs.Seq)
		}
	}
	if flags&flagWaiting != 0 {
		for _, g := range m.Digest {
			e.Uvarint(g.Waiting)
		}
	}
	if len(e.B)-start > MaxMessageBytes {
		return dst, fmt.Errorf("escrow: message %s is %d bytes, over the %d-byte limit", m.Type, len(e.B)-start, MaxMessageBytes)
	}
	return e.B, nil
}

// DecodeMessage parses one message. Any malformed, truncated, oversized or
// future-version input returns an error wrapping ErrWire or ErrWireVersion.
func DecodeMessage(b []byte) (Message, error) { return DecodeMessageUpTo(b, WireVersion) }

// DecodeMessageUpTo is DecodeMessage reading versions MinWireVersion..max
// only: max 1 decodes exactly as the release before version 2 did (a
// region pinned to the old version, and tests of mixed clusters).
func DecodeMessageUpTo(b []byte, max byte) (Message, error) {
	var m Message
	if len(b) > MaxMessageBytes {
		return m, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrWire, len(b), MaxMessageBytes)
	}
	d := NewWireDecoder(b, ErrWire)
	ver := d.HeaderRange(MinWireVersion, min(max, WireVersion), kindMsg)
	if ver >= 2 {
		// Canonical: version 2 carries a Speaks of at least 2, version 3
		// one of at least 3.
		if m.Speaks = d.Byte(); d.err == nil && m.Speaks < ver {
			d.Fail("version %d message speaking %d", ver, m.Speaks)
		}
	}
	m.Type = MsgType(d.Byte())
	m.From = d.String(MaxRegionLen)
	m.To = d.String(MaxRegionLen)
	m.ID = d.Uvarint()
	m.Seq = d.counter("seq")
	m.PrevSeq = d.counter("prev seq")
	flags := d.Byte()
	m.More = flags&flagMore != 0
	m.Urgent = flags&flagUrgent != 0
	m.Fenced = flags&flagFenced != 0
	if flags&^(flagMore|flagUrgent|flagHomes|flagSeen|flagFenced|flagWaiting) != 0 {
		d.Fail("unknown flags %#x", flags)
	}
	m.SKU = d.String(MaxStockKeyLen)
	m.Qty = d.counter("qty")
	m.Epoch = d.Uvarint()
	if n := d.count("rows", MaxWireRows); n > 0 {
		m.Rows = make([]Row, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			m.Rows = append(m.Rows, d.row())
		}
	}
	if n := d.count("digests", MaxWireDigest); n > 0 {
		m.Digest = make([]SKUDigest, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			m.Digest = append(m.Digest, SKUDigest{SKU: d.String(MaxStockKeyLen), Available: d.counter("available"),
				Held: d.counter("held"), DemandMilli: d.counter("demand"), Rejected: d.counter("rejected")})
		}
	}
	if n := d.count("moves", MaxWireMoves); n > 0 {
		m.Moves = make([]Move, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			m.Moves = append(m.Moves, Move{SKU: d.String(MaxStockKeyLen), From: d.String(MaxRegionLen), To: d.String(MaxRegionLen),
				Qty: d.counter("move qty")})
		}
	}
	if flags&flagHomes != 0 {
		// Canonical: the flag is set only when there is at least one home.
		n := d.count("homes", MaxWireHomes)
		if n == 0 && d.err == nil {
			d.Fail("homes flag without homes")
		}
		m.Homes = make([]Home, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			m.Homes = append(m.Homes, Home{SKU: d.String(MaxStockKeyLen), Region: d.String(MaxRegionLen)})
		}
	}
	if flags&flagSeen != 0 {
		m.Seen = d.seen()
	}
	if flags&flagWaiting != 0 {
		if len(m.Digest) == 0 {
			d.Fail("waiting flag without digests")
		}
		for i := range m.Digest {
			m.Digest[i].Waiting = d.counter("waiting")
		}
	}
	d.End()
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
		if err := ValidStockKey(m.SKU); err != nil {
			return Message{}, fmt.Errorf("%w: %v", ErrWire, err)
		}
	}
	// Canonical: location keys in version 3 only, and version 3 only with
	// location keys (what EncodeMessage writes).
	if loc := MessageHasLocationKeys(&m); loc != (ver >= 3) {
		return Message{}, fmt.Errorf("%w: version %d message with location keys %v", ErrWire, ver, loc)
	}
	if (len(m.Seen) > 0 || m.Fenced) && m.Type != MsgDigest {
		return Message{}, fmt.Errorf("%w: %s message with a seen list or the fenced flag", ErrWire, m.Type)
	}
	return m, nil
}

// seen reads a Seen list: at least one entry (the flag is set only for a
// non-empty list, so that every message has one encoding), valid region
// names in strictly ascending order, sequences within the counter bound.
func (d *WireDecoder) seen() []RegionSeq {
	n := d.count("seen entries", MaxRegions)
	if d.err == nil && n == 0 {
		d.Fail("empty seen list")
	}
	var out []RegionSeq
	if n > 0 {
		out = make([]RegionSeq, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		rs := RegionSeq{Region: d.String(MaxRegionLen), Seq: d.counter("seen seq")}
		if d.err != nil {
			break
		}
		if ValidRegion(rs.Region) != nil || (i > 0 && out[i-1].Region >= rs.Region) {
			d.Fail("bad or unsorted seen entry %q", rs.Region)
		}
		out = append(out, rs)
	}
	return out
}

// EncodeRow appends the storage form of r to dst.
func EncodeRow(dst []byte, r *Row) []byte {
	e := WireEncoder{B: dst}
	e.Header(storeVersion, kindRow)
	e.row(r)
	return e.B
}

// DecodeRow parses a row written by EncodeRow.
func DecodeRow(b []byte) (Row, error) {
	d := NewWireDecoder(b, ErrWire)
	d.Header(storeVersion, kindRow)
	r := d.row()
	d.End()
	return r, d.err
}

// EncodeRowValue appends the stored value of r under a key that names its
// SKU and region (region store format 4): EncodeRow without those two
// strings, which a row of a 1 M-SKU catalogue would otherwise write twice
// per change (about a third of its key and value).
func EncodeRowValue(dst []byte, r *Row) []byte {
	e := WireEncoder{B: dst}
	e.Header(storeVersion, kindRowValue)
	e.rowBody(r)
	return e.B
}

// DecodeRowValue parses the stored value of the row of sku and region (from
// its key): EncodeRowValue's form, or EncodeRow's, which a store written
// before format 4 holds until the row next changes. A value in EncodeRow's
// form must name the same SKU and region.
func DecodeRowValue(b []byte, sku, region string) (Row, error) {
	if len(b) >= 4 && b[3] == kindRow {
		r, err := DecodeRow(b)
		if err == nil && (r.SKU != sku || r.Region != region) {
			err = fmt.Errorf("%w: holds the row of %s/%s", ErrWire, r.Region, r.SKU)
		}
		return r, err
	}
	d := NewWireDecoder(b, ErrWire)
	d.Header(storeVersion, kindRowValue)
	if d.err != nil {
		return Row{}, d.err
	}
	r := d.rowBody(Row{SKU: sku, Region: region})
	d.End()
	return r, d.err
}

// EncodeHold appends the storage form of h to dst.
func EncodeHold(dst []byte, h *Hold) []byte {
	e := WireEncoder{B: dst}
	e.Header(storeVersion, kindHold)
	e.String(h.ID)
	e.Byte(byte(h.State))
	e.t(h.Created)
	e.t(h.Expires)
	e.t(h.MaxExpires)
	e.t(h.Updated)
	e.String(h.IdemKey)
	e.String(h.Meta)
	e.Uvarint(uint64(len(h.Lines)))
	for _, l := range h.Lines {
		e.String(l.SKU)
		e.Uvarint(l.Qty)
	}
	// The extension (cart, asked lines) follows only when the hold has
	// them, so every other hold encodes exactly as before; a decoder that
	// predates it refuses such a hold (trailing bytes) rather than misread.
	if h.Cart != "" || h.Asked != nil {
		var flags byte
		if h.Asked != nil {
			flags |= holdExtPartial
		}
		e.Byte(flags)
		e.String(h.Cart)
		if h.Asked != nil {
			e.Uvarint(uint64(len(h.Asked)))
			for _, l := range h.Asked {
				e.String(l.SKU)
				e.Uvarint(l.Qty)
			}
		}
	}
	return e.B
}

// holdExtPartial flags a hold extension that carries the asked lines.
const holdExtPartial = 1

// More reports whether bytes are left to decode.
func (d *WireDecoder) More() bool { return d.err == nil && len(d.b) > 0 }

// DecodeHold parses a hold written by EncodeHold.
func DecodeHold(b []byte) (Hold, error) {
	var h Hold
	d := NewWireDecoder(b, ErrWire)
	d.Header(storeVersion, kindHold)
	h.ID = d.String(MaxHoldIDLen)
	h.State = HoldState(d.Byte())
	h.Created = d.t()
	h.Expires = d.t()
	h.MaxExpires = d.t()
	h.Updated = d.t()
	h.IdemKey = d.String(MaxIdemKeyLen)
	h.Meta = d.String(MaxMetaLen)
	n := d.count("lines", MaxLines)
	for i := 0; i < n && d.err == nil; i++ {
		h.Lines = append(h.Lines, Line{SKU: d.String(MaxStockKeyLen), Qty: d.Uvarint()})
	}
	if d.More() {
		flags := d.Byte()
		if flags&^holdExtPartial != 0 {
			d.Fail("hold %s extension flags %#x", h.ID, flags)
		}
		h.Cart = d.String(MaxCartLen)
		if flags&holdExtPartial != 0 {
			n := d.count("asked lines", MaxLines)
			h.Asked = make([]Line, 0, n)
			for i := 0; i < n && d.err == nil; i++ {
				h.Asked = append(h.Asked, Line{SKU: d.String(MaxStockKeyLen), Qty: d.Uvarint()})
			}
		} else if h.Cart == "" {
			d.Fail("hold %s has an empty extension", h.ID)
		}
	}
	d.End()
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
	if err := ValidCart(h.Cart); err != nil {
		return Hold{}, fmt.Errorf("%w: hold %s: %v", ErrWire, h.ID, err)
	}
	if h.Asked != nil {
		if err := checkAsked(h.Lines, h.Asked); err != nil {
			return Hold{}, fmt.Errorf("%w: hold %s: %v", ErrWire, h.ID, err)
		}
	}
	return h, nil
}

// digestsWait reports whether some digest entry has waiters.
func digestsWait(ds []SKUDigest) bool {
	for i := range ds {
		if ds[i].Waiting > 0 {
			return true
		}
	}
	return false
}
