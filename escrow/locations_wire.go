package escrow

// Wire version 3 carries location keys (see wire.go): which messages need
// it, and what a peer that reads only version 2 may be sent.

// MessageHasLocationKeys reports whether m names a stock key of a
// location other than the default in any SKU field.
func MessageHasLocationKeys(m *Message) bool {
	if HasLocation(m.SKU) {
		return true
	}
	for i := range m.Rows {
		if HasLocation(m.Rows[i].SKU) {
			return true
		}
	}
	for i := range m.Digest {
		if HasLocation(m.Digest[i].SKU) {
			return true
		}
	}
	for i := range m.Moves {
		if HasLocation(m.Moves[i].SKU) {
			return true
		}
	}
	for i := range m.Homes {
		if HasLocation(m.Homes[i].SKU) {
			return true
		}
	}
	return false
}

// WithoutLocationKeys returns m as it may be written to a peer that reads
// only wire versions below 3: the rows, digests, moves and homes of
// location keys left out (that peer knows no locations, so it could use
// none of them; sequences are unchanged, so it sees no gap). ok is false
// when nothing of m remains to send: a borrow request or answer about a
// location key.
func WithoutLocationKeys(m *Message) (out Message, ok bool) {
	if !MessageHasLocationKeys(m) {
		return *m, true
	}
	if HasLocation(m.SKU) {
		return Message{}, false
	}
	out = *m
	out.Rows = filterKeys(m.Rows, func(r *Row) string { return r.SKU })
	out.Digest = filterKeys(m.Digest, func(d *SKUDigest) string { return d.SKU })
	out.Moves = filterKeys(m.Moves, func(mv *Move) string { return mv.SKU })
	out.Homes = filterKeys(m.Homes, func(h *Home) string { return h.SKU })
	return out, true
}

func filterKeys[T any](xs []T, key func(*T) string) []T {
	if len(xs) == 0 {
		return xs
	}
	out := make([]T, 0, len(xs))
	for i := range xs {
		if !HasLocation(key(&xs[i])) {
			out = append(out, xs[i])
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
