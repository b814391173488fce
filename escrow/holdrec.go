package escrow

import (
	"strings"
	"time"
	"unsafe"
)

// holdRec is a hold as the node keeps it in memory. It holds the fields of
// Hold in compact form: times as Unix nanoseconds (8 bytes, not 24), the
// fields most holds leave empty (metadata, cart, asked lines) behind one
// pointer, nil when all are empty. The idempotency key stays inline: most
// clients send one, and a second allocation per hold would cost more than
// its 16 bytes. It is 104 bytes (the 112-byte size class) where the Hold
// it replaced, with a flag, took 224; TestMemoryFootprint bounds the bytes
// per live hold. Hold values for replies, events and Persist are made from
// it on demand (hold).
type holdRec struct {
	// idBuf holds the id when it fits (idLen > 0; a region name of at
	// most 5 bytes), so that a hold costs no allocation of its own for
	// it; a longer id is in more.id. ID() reads either.
	idBuf   [holdIDInline]byte
	IdemKey string
	Lines   []Line // sorted by SKU; shared with every Hold made from the rec, never written
	// Unix nanoseconds (see nanos); made back into UTC times.
	created, expires, maxExpires, updated int64
	more                                  *holdMore
	idLen                                 uint8
	State                                 HoldState
	dirty                                 bool
	// gone: taken out of the holds map (retired or evicted); Ready skips
	// it if still dirty. A flag, not a map lookup per persisted hold.
	gone bool
	// gen: the hold cache's ring entry that is current (holdcache.go);
	// in the struct's padding, so it costs no byte.
	gen uint32
}

// holdIDInline is the longest hold id kept inside its record.
const holdIDInline = 24

// ID is the hold's id. When inline it points into r, whose bytes never
// change once the id is set, so that it may key the holds map and be
// handed out in Holds like any other string.
func (r *holdRec) ID() string {
	if r.idLen > 0 {
		return unsafe.String(&r.idBuf[0], int(r.idLen))
	}
	return r.more.id
}

// setID gives r the id (only while r is new: the holds map keys it).
func (r *holdRec) setID(id string) {
	if len(id) > 0 && len(id) <= holdIDInline {
		r.idLen = uint8(copy(r.idBuf[:], id))
		return
	}
	r.idLen = 0
	if r.more == nil {
		r.more = &holdMore{}
	}
	r.more.id = id
}

// newID gives r a fresh id of region for the time and random bits.
func (r *holdRec) newID(region string, unixMs int64, rnd uint64) {
	var buf [MaxHoldIDLen]byte
	k := putHoldID(&buf, region, unixMs, rnd)
	if k <= holdIDInline {
		r.idLen = uint8(copy(r.idBuf[:], buf[:k]))
		return
	}
	r.setID(string(buf[:k]))
}

// holdMore holds the fields of a hold that most holds leave empty.
type holdMore struct {
	id         string // an id longer than holdIDInline
	Meta, Cart string
	Asked      []Line
}

// newHoldRec returns the record of h (sharing its lines).
func newHoldRec(h *Hold) *holdRec {
	r := &holdRec{IdemKey: h.IdemKey, Lines: h.Lines, State: h.State, created: nanos(h.Created), expires: nanos(h.Expires),
		maxExpires: nanos(h.MaxExpires), updated: nanos(h.Updated)}
	if h.Meta != "" || h.Cart != "" || h.Asked != nil {
		r.more = &holdMore{Meta: h.Meta, Cart: h.Cart, Asked: h.Asked}
	}
	r.setID(h.ID)
	return r
}

// unixTime is the UTC time of Unix nanoseconds ns.
func unixTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// hold returns the Hold of r. Its Lines (and Asked) are shared with r:
// read them, never write them (Hold.Clone copies them).
func (r *holdRec) hold() Hold {
	var h Hold
	r.fillHold(&h)
	return h
}

// fillHold sets every field of *dst to r's, field by field. A copy made
// into the heap this way (outCopy) costs the write barrier of each field
// written while the collector runs, where assigning a whole Hold value
// (216 bytes, ten pointer words) went through the bulk barrier, which
// buffers every pointer word of the type, nil or not; that was about
// half of the hold copy's cost in BenchmarkNodeHold. Fields are written,
// never left as found, so dst may hold anything before.
func (r *holdRec) fillHold(dst *Hold) {
	dst.ID = r.ID()
	setRef(&dst.IdemKey, r.IdemKey) // mostly "" into "": no write barrier
	dst.Lines = r.Lines
	dst.State = r.State
	dst.Created = unixTime(r.created)
	if r.updated == r.created {
		dst.Updated = dst.Created // a new hold: one conversion for both
	} else {
		dst.Updated = unixTime(r.updated)
	}
	dst.Expires = unixTime(r.expires)
	dst.MaxExpires = unixTime(r.maxExpires)
	// The fields most holds leave empty are written only when they
	// differ: a fresh slot (zero) or a poisoned one (holdout.go) has them
	// empty already.
	if m := r.more; m != nil {
		setRef(&dst.Meta, m.Meta)
		setRef(&dst.Cart, m.Cart)
		dst.Asked = m.Asked
	} else {
		setRef(&dst.Meta, "")
		setRef(&dst.Cart, "")
		clearSlice(&dst.Asked)
	}
}

func (r *holdRec) name() string { return r.ID() }

// Expires is the hold's deadline.
func (r *holdRec) Expires() time.Time { return unixTime(r.expires) }

// expiredAt reports whether r is HELD with its deadline at or before now:
// expired for every operation, whether or not the sweeper has run.
func (r *holdRec) expiredAt(now time.Time) bool { return r.State == Held && nanos(now) >= r.expires }

// stateAt is the hold's state as of now (see Hold.StateAt).
func (r *holdRec) stateAt(now time.Time) HoldState {
	if r.expiredAt(now) {
		return Expired
	}
	return r.State
}

// internLines makes the lines of a hold share their SKU strings with the
// node's SKU table, so that a live hold does not keep the string its
// request (or the store) allocated for each line.
func internLines(n *Node, lines []Line) {
	for i := range lines {
		if s := n.skus[lines[i].SKU]; s != nil { // resident only: interning must not read the row source
			lines[i].SKU = s.sku
		}
	}
}

// idemRec is an idempotency key as the node keeps it in memory: IdemEntry
// with its expiry as Unix nanoseconds, 64 bytes where IdemEntry takes 80.
// HoldID shares the hold's id string.
type idemRec struct {
	Key, HoldID, RoutedTo string
	Hash                  uint64
	expires               int64
}

func newIdemRec(e *IdemEntry) *idemRec {
	return &idemRec{Key: e.Key, HoldID: e.HoldID, RoutedTo: e.RoutedTo, Hash: e.Hash, expires: nanos(e.Expires)}
}

func (r *idemRec) name() string { return r.Key }

// Expires is when the key is forgotten.
func (r *idemRec) Expires() time.Time { return unixTime(r.expires) }

// liveAt reports whether the key is still remembered at now.
func (r *idemRec) liveAt(now time.Time) bool { return nanos(now) < r.expires }

// unpinIdem is called when h leaves memory: its idempotency key may stay
// remembered longer (idem_ttl against the hold's retention), and its
// HoldID, taken from h.ID(), points into h when the id is inline; a copy
// lets h go instead of keeping all of it alive for the key.
func (n *Node) unpinIdem(h *holdRec) {
	if h.IdemKey == "" || h.idLen == 0 {
		return
	}
	if e := n.idem[h.IdemKey]; e != nil && e.HoldID == h.ID() {
		e.HoldID = strings.Clone(e.HoldID)
	}
}
