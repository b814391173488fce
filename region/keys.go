package region

// Pebble key layout of a region store (format version 4).
//
// Every key starts with a one-letter prefix and '/'. Numbers inside keys are
// fixed-width big-endian so that byte order is numeric order; times are
// UnixNano with the sign bit flipped (also big-endian), so that the order of
// keys is the order of deadlines. SKUs are printable UTF-8 and never contain
// 0x00, which therefore separates a SKU from what follows it.
//
// Format 2 (stock by location) keys rows and recount marks by stock key:
// <sku> for the default location (exactly the bytes of format 1),
// <sku> 0x1f <location> for another (escrow.StockKey), so that every
// location of a SKU sorts right after the SKU itself. Format 3 drops the
// change index of formats 1 and 2 (c/<seq 8B> → sku, one entry per own row
// at its Seq): every own row carries its Seq, so the store keeps the map
// sku → seq in memory (built by Load, or by the first Apply or
// OwnRowsSince) and OwnRowsSince an ordered seq → sku index beside it.
// A hold no longer pays the delete and put of an index entry per changed
// row. Format 4 stores a row's value without the SKU and region its key
// names (escrow.EncodeRowValue; a third of a 1 M-SKU catalogue's row
// bytes) and still reads the long form (escrow.EncodeRow) that earlier
// formats wrote, so its upgrade rewrites nothing: a row takes the short
// form when it next changes. Earlier formats are upgraded in place when
// opened (store_upgrade.go: 1 → 2 checks the SKUs, 2 → 3 deletes the c/
// range, 3 → 4 records the version); a build that reads only an earlier
// format refuses a later one.
//
//	m/version                      → uvarint format version (storeFormatVersion)
//	m/region                       → region name; a store is opened only by its region
//	m/seq                          → own change sequence, 8 bytes BE (Persist.Seq)
//	r/<sku> 0x00 <region>          → escrow.EncodeRowValue (or, written before format 4,
//	                                 escrow.EncodeRow): own and peer rows, by SKU then region
//	h/<hold id>                    → escrow.EncodeHold: holds of this region, any state
//	x/<expires 8B> <hold id>       → empty: expiry index of HELD holds only; the sweeper
//	                                 scans it from the start up to "now"
//	i/<idempotency key>            → idem value (idemValueVersion, hold id, hash, expires)
//	                                  or (idemValueRouted, "", hash, expires, routed-to region)
//	j/<expires 8B> <key>           → empty: expiry index of idempotency keys
//	c/<seq 8B>                     → formats 1 and 2 only (the change index); the upgrade to
//	                                 format 3 deletes the range, and Load refuses an entry
//	p/<region>                     → 8 bytes BE: last contiguous sequence seen from that peer
//	w/<entry id>                   → waitlist entry (store_waits.go), any state; the
//	                                 placement order and deadline are inside
//	a/<sku>                        → 8 bytes BE: as_of (sign-flipped UnixNano) of the last
//	                                 recount applied to the SKU (escrow.RecountMark)
//	k/, t/, u/                     → the listing indexes of holds (keys_list.go)
//	e/...                          → the event log (outbox), laid out by package eventlog
//	                                 (eventlog/keys.go): e/head, e/relay, e/s/<seq 8B>.
//	                                 Written in the same batch as the change it states;
//	                                 Load skips it (the log is read by its own readers).
//
// The x/ and j/ indexes need no map: the node names the entries each batch
// ends, at the deadline it last persisted (escrow.Persist.HoldsUnindexed,
// IdemUnindexed), and Apply deletes those before it writes the batch's own. Load cross-checks
// every index entry against the primary key it points to (reading x/ and
// j/ first), so an entry a batch failed to end stops the region at start.

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/eventlog"
)

const (
	storeFormatVersion = 4
	idemValueVersion   = 1
	idemValueRouted    = 2 // an idempotency entry of a routed hold
	seqLen             = 8
)

var (
	keyMetaVersion = []byte("m/version")
	keyMetaRegion  = []byte("m/region")
	keyMetaSeq     = []byte("m/seq")
)

// Prefixes. Each has an upper bound: the prefix with '/' replaced by '0'
// (the next byte), used as the exclusive end of its range scan.
const (
	pfxMeta    = "m/"
	pfxRow     = "r/"
	pfxHold    = "h/"
	pfxExpiry  = "x/"
	pfxIdem    = "i/"
	pfxIdemX   = "j/"
	pfxChange  = "c/" // formats 1 and 2 only
	pfxPeer    = "p/"
	pfxWait    = "w/"
	pfxRecount = "a/"
	pfxEvents  = eventlog.Prefix // "e/"
)

// prefixEnd returns the exclusive upper bound of all keys starting with p.
func prefixEnd(p string) []byte {
	b := []byte(p)
	b[len(b)-1]++
	return b
}

func appendU64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }

// beU64 reads back an integer written by appendU64.
func beU64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// timeOrd maps a time to a uint64 whose order is the order of the times.
func timeOrd(t time.Time) uint64 { return uint64(t.UnixNano()) ^ (1 << 63) }

func ordTime(v uint64) time.Time { return time.Unix(0, int64(v^(1<<63))).UTC() }

func appendRowKey(dst []byte, sku, region string) []byte {
	dst = append(dst, pfxRow...)
	dst = append(dst, sku...)
	dst = append(dst, 0)
	return append(dst, region...)
}

func appendHoldKey(dst []byte, id string) []byte {
	dst = append(dst, pfxHold...)
	return append(dst, id...)
}

func appendExpiryKey(dst []byte, expiresOrd uint64, id string) []byte {
	dst = append(dst, pfxExpiry...)
	dst = appendU64(dst, expiresOrd)
	return append(dst, id...)
}

func appendIdemKey(dst []byte, key string) []byte {
	dst = append(dst, pfxIdem...)
	return append(dst, key...)
}

func appendIdemExpiryKey(dst []byte, expiresOrd uint64, key string) []byte {
	dst = append(dst, pfxIdemX...)
	dst = appendU64(dst, expiresOrd)
	return append(dst, key...)
}

func appendChangeKey(dst []byte, seq uint64) []byte {
	dst = append(dst, pfxChange...)
	return appendU64(dst, seq)
}

func appendPeerKey(dst []byte, region string) []byte {
	dst = append(dst, pfxPeer...)
	return append(dst, region...)
}

// splitRowKey returns the SKU and region of a row key (without checking
// that they are valid names).
func splitRowKey(k []byte) (sku, region string, ok bool) {
	body := k[len(pfxRow):]
	for i := len(body) - 1; i >= 0; i-- {
		if body[i] == 0 {
			return string(body[:i]), string(body[i+1:]), true
		}
	}
	return "", "", false
}

// splitOrdKey splits an x/ or j/ key into its time and name parts.
func splitOrdKey(k []byte) (ord uint64, name string, ok bool) {
	body := k[2:]
	if len(body) <= seqLen {
		return 0, "", false
	}
	return binary.BigEndian.Uint64(body[:seqLen]), string(body[seqLen:]), true
}

func splitChangeKey(k []byte) (uint64, bool) {
	body := k[len(pfxChange):]
	if len(body) != seqLen {
		return 0, false
	}
	return binary.BigEndian.Uint64(body), true
}

// appendIdemValue encodes an idempotency entry (the key is in the key):
// version 1 for a key of a hold granted here, version 2 (the hold id may
// be empty, then the region the hold was routed to) for a routed key.
func appendIdemValue(dst []byte, e *escrow.IdemEntry) []byte {
	v := byte(idemValueVersion)
	if e.RoutedTo != "" {
		v = idemValueRouted
	}
	dst = append(dst, v)
	dst = binary.AppendUvarint(dst, uint64(len(e.HoldID)))
	dst = append(dst, e.HoldID...)
	dst = appendU64(dst, e.Hash)
	dst = appendU64(dst, timeOrd(e.Expires))
	if v == idemValueRouted {
		dst = binary.AppendUvarint(dst, uint64(len(e.RoutedTo)))
		dst = append(dst, e.RoutedTo...)
	}
	return dst
}

func decodeIdemValue(key string, v []byte) (escrow.IdemEntry, error) {
	e := escrow.IdemEntry{Key: key}
	if len(v) == 0 || (v[0] != idemValueVersion && v[0] != idemValueRouted) {
		return e, fmt.Errorf("idempotency entry: unknown value version")
	}
	routed := v[0] == idemValueRouted
	n, w := binary.Uvarint(v[1:])
	bad := fmt.Errorf("idempotency entry: bad length (%d bytes)", len(v))
	if w <= 0 || n > escrow.MaxHoldIDLen || (n == 0) != routed || uint64(len(v)-1-w) < n+2*seqLen {
		return e, bad
	}
	rest := v[1+w:]
	e.HoldID = string(rest[:n])
	e.Hash = binary.BigEndian.Uint64(rest[n:])
	e.Expires = ordTime(binary.BigEndian.Uint64(rest[n+seqLen:]))
	rest = rest[n+2*seqLen:]
	if !routed {
		if len(rest) != 0 {
			return e, bad
		}
		return e, nil
	}
	m, w := binary.Uvarint(rest)
	if w <= 0 || m == 0 || m > escrow.MaxRegionLen || uint64(len(rest)-w) != m {
		return e, bad
	}
	e.RoutedTo = string(rest[w:])
	return e, nil
}

// fmtKey renders a store key for error messages: printable parts as they
// are, fixed-width numbers decoded.
func fmtKey(k []byte) string {
	if len(k) < 2 || k[1] != '/' {
		return strconv.Quote(string(k))
	}
	switch string(k[:2]) {
	case pfxRow:
		if sku, region, ok := splitRowKey(k); ok {
			return strconv.Quote(pfxRow + sku + "\x00" + region)
		}
	case pfxExpiry, pfxIdemX:
		if ord, name, ok := splitOrdKey(k); ok {
			return fmt.Sprintf("%s<%s>%s", k[:2], ordTime(ord).Format(time.RFC3339Nano), strconv.Quote(name))
		}
	case pfxChange:
		if seq, ok := splitChangeKey(k); ok {
			return fmt.Sprintf("c/<%d>", seq)
		}
	}
	return strconv.Quote(string(k))
}

func appendRecountKey(dst []byte, sku string) []byte {
	dst = append(dst, pfxRecount...)
	return append(dst, sku...)
}
