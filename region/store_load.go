package region

import (
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

// Load rebuilds the region's durable state from the whole store. Anything
// that does not decode, a key that does not match its value, an own row
// beyond the stored sequence, two own rows at one sequence, a hold or
// idempotency key of another region, or an index entry without its data
// (or data without its index entry) is a *CorruptStoreError naming the key:
// the region must refuse to start. Load rebuilds the in-memory sequences of
// the own rows (store_seq.go) from the rows it reads.
func (s *Store) Load() (*escrow.State, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.usableLocked(); err != nil {
		// A failed store's memtable may hold a batch that never became durable.
		return nil, err
	}
	if s.opts.LazyHolds {
		return s.loadLazyHolds()
	}
	heldExp, idemExp, err := s.scanExpiryIndexes()
	if err != nil {
		return nil, err
	}
	// Sized from the expiry index (every held hold has an entry; ended
	// holds come on top) and, when known, the own rows (peer rows on top).
	l := loader{s: s, st: &escrow.State{Seq: s.seq}, holdIdx: make(map[string]int, len(heldExp)), heldExp: heldExp, idemExp: idemExp}
	if n := len(s.ownSeq); n > 0 {
		l.st.Rows = make([]escrow.Row, 0, n)
		l.own = make([]seqSKU, 0, n)
	}
	if n := len(heldExp); n > 0 {
		l.st.Holds = make([]escrow.Hold, 0, n)
	}
	if s.opts.RetainTerminal {
		l.forgetBefore = time.Now().Add(-s.opts.MemRetain)
	}
	if err := l.scan(false); err != nil {
		return nil, err
	}
	if err := l.finish(); err != nil {
		return nil, err
	}
	if err := s.setOwnSeqLocked(l.own); err != nil {
		return nil, err
	}
	s.ownSeqPartial = s.opts.LazyRows
	return l.st, nil
}

// loadLazyHolds is Load with LazyHolds: holds, idempotency keys and their
// indexes stay in Pebble (store_holds.go); the x/ index is counted.
func (s *Store) loadLazyHolds() (*escrow.State, error) {
	held, err := s.countHeld()
	if err != nil {
		return nil, err
	}
	newest, err := s.newestHold()
	if err != nil {
		return nil, err
	}
	l := loader{s: s, st: &escrow.State{Seq: s.seq, HeldHolds: held, NewestHold: newest, NewestHoldKnown: true}}
	if n := len(s.ownSeq); n > 0 {
		l.st.Rows = make([]escrow.Row, 0, n)
		l.own = make([]seqSKU, 0, n)
	}
	if err := l.scan(true); err != nil {
		return nil, err
	}
	if err := s.setOwnSeqLocked(l.own); err != nil {
		return nil, err
	}
	s.ownSeqPartial = s.opts.LazyRows
	return l.st, nil
}

type loader struct {
	s        *Store
	st       *escrow.State
	holdIdx  map[string]int    // hold id → index in st.Holds
	heldExp  map[string]uint64 // x/ index read before the scan: hold id → timeOrd
	idemExp  map[string]uint64 // j/ index read before the scan: key → timeOrd
	own      []seqSKU          // the own rows' sequences, for ownSeq
	held     int
	expiries int // x/ entries seen
	idemX    int // j/ entries seen
	list     listCounts
	// forgetBefore: terminal holds that ended before it stay in the store
	// (listable) but not in the node's memory. Zero: load every hold.
	forgetBefore time.Time
}

// scan feeds every key of the store to entry. It skips whole the ranges
// Load does not read: the event log (not state; it may be long), the rows
// with LazyRows (read on demand through SKURows, store_rows.go) and, with
// lazyHolds, the holds, idempotency keys and their indexes
// (store_holds.go).
func (l *loader) scan(lazyHolds bool) error {
	var skus []string // every overlay row (store_rowlog.go)
	if l.s.opts.LazyRows {
		skus = []string{} // none: the rows are skipped
	}
	it, err := l.s.newRowIter(&pebble.IterOptions{}, skus)
	if err != nil {
		return fmt.Errorf("region store: load: %w", err)
	}
	evEnd := prefixEnd(pfxEvents)
	rowEnd := prefixEnd(pfxRow)
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		for len(k) >= 2 {
			p := string(k[:2])
			var end []byte
			switch {
			case l.s.opts.LazyRows && p == pfxRow:
				end = rowEnd
			case p == pfxEvents:
				end = evEnd
			case lazyHolds && lazyHoldPrefix(p):
				end = prefixEnd(p)
			}
			if end == nil {
				break
			}
			if !it.SeekGE(end) {
				k = nil
				break
			}
			k = it.Key()
		}
		if k == nil {
			break
		}
		v, err := it.ValueAndErr()
		if err == nil {
			err = l.entry(k, v)
		} else {
			err = fmt.Errorf("region store: read %s: %w", fmtKey(k), err)
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("region store: load: %w", err)
	}
	return nil
}

func (l *loader) entry(k, v []byte) error {
	s := l.s
	if len(k) < 2 || k[1] != '/' {
		return corrupt(k, "unknown key prefix")
	}
	switch string(k[:2]) {
	case pfxMeta:
		switch string(k) {
		case string(keyMetaVersion), string(keyMetaRegion), string(keyMetaSeq), string(keyMetaWALPos), string(keyMetaRowPos):
			return nil // checked by open
		}
		return corrupt(k, "unknown meta key")
	case pfxRow:
		sku, region, ok := splitRowKey(k)
		if !ok {
			return corrupt(k, "row key without region separator")
		}
		r, err := escrow.DecodeRowValue(v, sku, region)
		if err != nil {
			return corrupt(k, "undecodable row: %v", err)
		}
		if region == s.region {
			if r.Seq > s.seq {
				return corrupt(k, "own row has seq %d beyond the stored sequence %d", r.Seq, s.seq)
			}
			// Share the key's bytes with the row (one allocation per row).
			l.own = append(l.own, seqSKU{r.Seq, r.SKU})
		}
		l.st.Rows = append(l.st.Rows, r)
	case pfxHold:
		id := string(k[len(pfxHold):])
		h, err := escrow.DecodeHold(v)
		if err != nil {
			return corrupt(k, "undecodable hold: %v", err)
		}
		if h.ID != id {
			return corrupt(k, "holds hold %s", h.ID)
		}
		if owner, _ := escrow.OwnerOf(id); owner != s.region {
			return corrupt(k, "hold of region %q in the store of %q", owner, s.region)
		}
		ord, indexed := l.heldExp[id]
		switch {
		case h.State == escrow.Held && !indexed:
			return corrupt(k, "held hold has no expiry index entry")
		case h.State == escrow.Held && ord != timeOrd(h.Expires):
			return corrupt(k, "held hold expires at %s but its expiry index entry says %s",
				h.Expires.Format("2006-01-02T15:04:05.999999999Z07:00"), ordTime(ord).Format("2006-01-02T15:04:05.999999999Z07:00"))
		case h.State != escrow.Held && indexed:
			return corrupt(k, "%s hold still has an expiry index entry", h.State)
		}
		if h.State == escrow.Held {
			l.held++
		}
		l.list.noteHold(&h)
		if h.State.Terminal() && h.Updated.Before(l.forgetBefore) {
			return nil // retired: listable from the store only
		}
		l.holdIdx[id] = len(l.st.Holds)
		l.st.Holds = append(l.st.Holds, h)
	case pfxExpiry:
		ord, id, ok := splitOrdKey(k)
		if !ok || len(v) != 0 {
			return corrupt(k, "malformed expiry index entry")
		}
		if l.heldExp[id] != ord {
			return corrupt(k, "expiry index entry not in the index read before the scan")
		}
		l.expiries++
	case pfxIdem:
		key := string(k[len(pfxIdem):])
		if key == "" || escrow.ValidIdemKey(key) != nil {
			return corrupt(k, "invalid idempotency key")
		}
		e, err := decodeIdemValue(key, v)
		if err != nil {
			return corrupt(k, "%v", err)
		}
		if e.RoutedTo != "" {
			if escrow.ValidRegion(e.RoutedTo) != nil || e.RoutedTo == s.region {
				return corrupt(k, "idempotency key of a hold routed to invalid region %q", e.RoutedTo)
			}
		} else if owner, oerr := escrow.OwnerOf(e.HoldID); oerr != nil || owner != s.region {
			return corrupt(k, "idempotency key points to hold %q of another region", e.HoldID)
		}
		if ord, ok := l.idemExp[key]; !ok || ord != timeOrd(e.Expires) {
			return corrupt(k, "idempotency key has no matching expiry entry")
		}
		l.st.Idem = append(l.st.Idem, e)
	case pfxIdemX:
		ord, key, ok := splitOrdKey(k)
		if !ok || len(v) != 0 {
			return corrupt(k, "malformed idempotency expiry entry")
		}
		if l.idemExp[key] != ord {
			return corrupt(k, "idempotency expiry entry not in the index read before the scan")
		}
		l.idemX++
	case pfxChange:
		// Formats 1 and 2 only: the upgrade to format 3 deleted the range.
		return corrupt(k, "change index entry in a format-%d store", storeFormatVersion)
	case pfxPeer:
		region := string(k[len(pfxPeer):])
		if escrow.ValidRegion(region) != nil || region == s.region {
			return corrupt(k, "peer sequence of invalid region %q", region)
		}
		if len(v) != seqLen {
			return corrupt(k, "peer sequence is %d bytes, want %d", len(v), seqLen)
		}
		if l.st.PeerSeq == nil {
			l.st.PeerSeq = make(map[string]uint64)
		}
		l.st.PeerSeq[region] = beU64(v)
	case pfxWait:
		e, err := decodeWaitEntry(string(k[len(pfxWait):]), v)
		if err != nil {
			return corrupt(k, "%v", err)
		}
		if owner, _ := escrow.OwnerOf(e.ID); owner != s.region {
			return corrupt(k, "waitlist entry of region %q in the store of %q", owner, s.region)
		}
		l.st.Waits = append(l.st.Waits, e)
	case pfxRecount:
		sku := string(k[len(pfxRecount):])
		if escrow.ValidStockKey(sku) != nil || len(v) != seqLen {
			return corrupt(k, "malformed recount mark")
		}
		l.st.Recounts = append(l.st.Recounts, escrow.RecountMark{SKU: sku, AsOf: ordTime(beU64(v))})
	case pfxCart, pfxEnded, pfxUpdated:
		return l.list.noteIndex(k, v)
	default:
		return corrupt(k, "unknown key prefix")
	}
	return nil
}

// finish finds index entries whose data is missing.
func (l *loader) finish() error {
	if l.expiries != len(l.heldExp) || l.held != len(l.heldExp) {
		for _, id := range sortedKeys(l.heldExp) {
			if _, ok := l.holdIdx[id]; !ok {
				return corrupt(appendExpiryKey(nil, l.heldExp[id], id), "expiry index entry without its hold")
			}
		}
		return fmt.Errorf("region store: expiry index has %d entries (%d read first) for %d held holds",
			l.expiries, len(l.heldExp), l.held)
	}
	if err := l.list.check(); err != nil {
		return err
	}
	if l.idemX != len(l.idemExp) || len(l.st.Idem) != len(l.idemExp) {
		seen := make(map[string]bool, len(l.st.Idem))
		for i := range l.st.Idem {
			seen[l.st.Idem[i].Key] = true
		}
		for _, key := range sortedKeys(l.idemExp) {
			if !seen[key] {
				return corrupt(appendIdemExpiryKey(nil, l.idemExp[key], key), "idempotency expiry entry without its key")
			}
		}
		return fmt.Errorf("region store: idempotency expiry index has %d entries (%d read first) for %d keys",
			l.idemX, len(l.idemExp), len(l.st.Idem))
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
