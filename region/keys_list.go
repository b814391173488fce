package region

// Key layout of the hold listing indexes (format version 1, added keys):
//
//	k/<cart> 0x00 <created 8B> <hold id>   → empty: holds by cart reference, any
//	                                          state, in creation order; written
//	                                          with the hold and never changed
//	                                          (cart and creation time are fixed)
//	t/<state 1B> <expires 8B> <hold id>    → empty: TERMINAL holds by state then
//	                                          deadline (held holds are the x/ index)
//	u/<updated 8B> <hold id>               → empty: terminal holds by the time
//	                                          they ended; the pruner scans it to
//	                                          drop holds past the retention window
//
// A terminal hold never changes again (escrow writes it once, when it ends),
// so the t/ and u/ entries are written once and deleted only by the pruner,
// together with the hold and its k/ entry. Carts are printable ASCII and
// never contain 0x00, which separates a cart from what follows it.

import (
	"github.com/holdfast-io/holdfast/escrow"
)

const (
	pfxCart    = "k/"
	pfxEnded   = "t/"
	pfxUpdated = "u/"
)

func appendCartPrefix(dst []byte, cart string) []byte {
	dst = append(dst, pfxCart...)
	dst = append(dst, cart...)
	return append(dst, 0)
}

func appendCartKey(dst []byte, cart string, created uint64, id string) []byte {
	dst = appendCartPrefix(dst, cart)
	dst = appendU64(dst, created)
	return append(dst, id...)
}

func appendEndedKey(dst []byte, st escrow.HoldState, expires uint64, id string) []byte {
	dst = append(dst, pfxEnded...)
	dst = append(dst, byte(st))
	dst = appendU64(dst, expires)
	return append(dst, id...)
}

func appendUpdatedKey(dst []byte, updated uint64, id string) []byte {
	dst = append(dst, pfxUpdated...)
	dst = appendU64(dst, updated)
	return append(dst, id...)
}

// holdIDOfIndexKey returns the hold id at the end of an index key of
// prefix pfx (k/, e/, u/ or x/), or false when the key is malformed.
func holdIDOfIndexKey(k []byte) (string, bool) {
	if len(k) < 2 {
		return "", false
	}
	switch string(k[:2]) {
	case pfxCart:
		body := k[len(pfxCart):]
		for i, c := range body {
			if c == 0 {
				rest := body[i+1:]
				if len(rest) <= seqLen {
					return "", false
				}
				return string(rest[seqLen:]), true
			}
		}
		return "", false
	case pfxEnded:
		body := k[len(pfxEnded):]
		if len(body) <= 1+seqLen {
			return "", false
		}
		return string(body[1+seqLen:]), true
	case pfxUpdated, pfxExpiry:
		body := k[2:]
		if len(body) <= seqLen {
			return "", false
		}
		return string(body[seqLen:]), true
	case pfxHold:
		if len(k) == len(pfxHold) {
			return "", false
		}
		return string(k[len(pfxHold):]), true
	}
	return "", false
}

// stageListIndexes writes the listing index entries of h (idempotent: the
// keys depend only on fields that never change once written).
func stageListIndexes(w *batchWriter, k []byte, h *escrow.Hold) []byte {
	if h.Cart != "" {
		k = appendCartKey(k[:0], h.Cart, timeOrd(h.Created), h.ID)
		w.set(k, nil)
	}
	if h.State.Terminal() {
		k = appendEndedKey(k[:0], h.State, timeOrd(h.Expires), h.ID)
		w.set(k, nil)
		k = appendUpdatedKey(k[:0], timeOrd(h.Updated), h.ID)
		w.set(k, nil)
	}
	return k
}

// unstageListIndexes deletes the listing index entries of h.
func unstageListIndexes(w *batchWriter, k []byte, h *escrow.Hold) []byte {
	if h.Cart != "" {
		k = appendCartKey(k[:0], h.Cart, timeOrd(h.Created), h.ID)
		w.del(k)
	}
	if h.State.Terminal() {
		k = appendEndedKey(k[:0], h.State, timeOrd(h.Expires), h.ID)
		w.del(k)
		k = appendUpdatedKey(k[:0], timeOrd(h.Updated), h.ID)
		w.del(k)
	}
	return k
}
