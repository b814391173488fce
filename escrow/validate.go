package escrow

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidRegion checks a region name: 1–32 bytes of [a-z0-9_]. Region names
// prefix hold ids and NATS subjects, so '-' and '.' are not allowed.
func ValidRegion(r string) *Error {
	if r == "" || len(r) > MaxRegionLen {
		return errorf(CodeInvalid, "region name %q must be 1 to %d bytes", r, MaxRegionLen)
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return errorf(CodeInvalid, "region name %q may contain only a-z, 0-9 and _", r)
		}
	}
	return nil
}

// ValidSKU checks a SKU id: 1–128 bytes of printable UTF-8, not starting
// or ending with a space (" A" and "A" would be two SKUs no one can tell
// apart; a blank SKU is no SKU).
func ValidSKU(s string) *Error {
	if s == "" || len(s) > MaxSKULen {
		return errorf(CodeInvalid, "sku must be 1 to %d bytes, got %d", MaxSKULen, len(s))
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return errorf(CodeInvalid, "sku %q starts or ends with a space", s)
	}
	// Fast path: printable ASCII (checked on every cart line).
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			ascii = false
			break
		}
	}
	if ascii {
		return nil
	}
	if !utf8.ValidString(s) {
		return errorf(CodeInvalid, "sku %q is not valid UTF-8", s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return errorf(CodeInvalid, "sku %q contains a non-printable character", s)
		}
	}
	return nil
}

// ValidQty checks a quantity: 1..MaxQty.
func ValidQty(what string, q uint64) *Error {
	if q == 0 || q > MaxQty {
		return errorf(CodeInvalid, "%s must be between 1 and %d, got %d", what, MaxQty, q)
	}
	return nil
}

// ValidIdemKey checks an idempotency key: 1–128 bytes of printable ASCII.
func ValidIdemKey(k string) *Error {
	if len(k) > MaxIdemKeyLen {
		return errorf(CodeInvalid, "idempotency key must be at most %d bytes, got %d", MaxIdemKeyLen, len(k))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return errorf(CodeInvalid, "idempotency key may contain only printable ASCII without spaces")
		}
	}
	return nil
}

// NormalizeLines validates a cart and returns its lines sorted by SKU, with
// lines of the same SKU merged into one (their quantities added). The merged
// quantity must still be within MaxQty.
func NormalizeLines(lines []Line) ([]Line, *Error) {
	return normalizeLinesInto(nil, lines, false)
}

// normalizeLinesInto is NormalizeLines writing the result into dst's
// spare capacity (a node's line arena), allocating only when it is short.
// known: lines[0].SKU is a valid stock key (the caller knows), not checked
// again.
func normalizeLinesInto(dst, lines []Line, known bool) ([]Line, *Error) {
	if len(lines) == 0 {
		return nil, errorf(CodeInvalid, "a hold needs at least one item")
	}
	if len(lines) > MaxLines {
		return nil, errorf(CodeInvalid, "a hold may have at most %d items, got %d", MaxLines, len(lines))
	}
	for i := range lines {
		if i > 0 || !known {
			if err := ValidStockKey(lines[i].SKU); err != nil {
				return nil, err
			}
		}
		if q := lines[i].Qty; q == 0 || q > MaxQty {
			return nil, ValidQty("qty of "+lines[i].SKU, q) // the label is built only on error
		}
	}
	out := append(dst[:0], lines...)
	if len(out) > 1 {
		slices.SortFunc(out, func(a, b Line) int { return strings.Compare(a.SKU, b.SKU) })
		w := 0
		for i := 1; i < len(out); i++ {
			if out[i].SKU == out[w].SKU {
				out[w].Qty += out[i].Qty
				if out[w].Qty > MaxQty {
					return nil, errorf(CodeInvalid, "qty of %s summed over its lines exceeds %d", out[w].SKU, MaxQty)
				}
				continue
			}
			w++
			out[w] = out[i]
		}
		out = out[:w+1]
	}
	return out, nil
}

// OwnerOf returns the region that granted the hold with this id.
func OwnerOf(holdID string) (string, *Error) {
	i := strings.IndexByte(holdID, '-')
	if i <= 0 || len(holdID) > MaxHoldIDLen || i == len(holdID)-1 {
		return "", errorf(CodeInvalid, "malformed hold id %q", truncate(holdID, 80))
	}
	region := holdID[:i]
	if err := ValidRegion(region); err != nil {
		return "", errorf(CodeInvalid, "malformed hold id %q", truncate(holdID, 80))
	}
	for j := i + 1; j < len(holdID); j++ {
		if !isBase32(holdID[j]) {
			return "", errorf(CodeInvalid, "malformed hold id %q", truncate(holdID, 80))
		}
	}
	return region, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Crockford base32, lower case: ids sort by time as strings.
const base32Alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

func isBase32(c byte) bool { return strings.IndexByte(base32Alphabet, c) >= 0 }

// newHoldID builds "<region>-<10 chars of unix ms><8 chars of randomness>".
// It builds the id in one buffer: one allocation per hold.
func newHoldID(region string, unixMs int64, rnd uint64) string {
	var buf [MaxHoldIDLen]byte
	return string(buf[:putHoldID(&buf, region, unixMs, rnd)])
}

// putHoldID writes the id newHoldID returns into buf and returns its length.
func putHoldID(buf *[MaxHoldIDLen]byte, region string, unixMs int64, rnd uint64) int {
	k := copy(buf[:MaxRegionLen], region)
	buf[k] = '-'
	b := buf[k+1 : k+19]
	ms := uint64(unixMs)
	for i := 9; i >= 0; i-- {
		b[i] = base32Alphabet[ms&31]
		ms >>= 5
	}
	for i := 17; i >= 10; i-- {
		b[i] = base32Alphabet[rnd&31]
		rnd >>= 5
	}
	return k + 19
}
