package region

// Staging a Persist into a pebble batch: validation against what Load
// accepts, and the upkeep of the x/ and j/ indexes and of the in-memory
// sequences of the own rows (store_seq.go).

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

// validate rejects a Persist that would store something Load refuses. It
// leaves the rows' key order in s.rowIdx and the own rows whose sequence
// moves in s.changed (sorted by their new sequence) for stage, so that a
// batch of many SKUs looks each one up in ownSeq once.
func (s *Store) validate(p *escrow.Persist) error {
	order := s.rowOrder(p.Rows)
	changed := s.changed[:0]
	var prev *escrow.Row // the previous own row in key order
	for _, i := range order {
		r := &p.Rows[i]
		if r.SKU == "" || r.Region == "" {
			return fmt.Errorf("region store: row without SKU or region (%q/%q)", r.Region, r.SKU)
		}
		if r.Region != s.region {
			continue
		}
		// stage moves each own row's sequence once per batch. In key order
		// two own rows of one SKU are next to each other.
		if prev != nil && prev.SKU == r.SKU {
			return fmt.Errorf("region store: two own rows for SKU %q in one batch", r.SKU)
		}
		prev = r
		// One own row per seq (Load refuses two): a changed own row must
		// carry a sequence number no other row has (the node gives every
		// change a fresh one, above the stored sequence).
		old, had := s.ownSeq[r.SKU]
		if !had && s.ownSeqPartial && r.Seq <= s.seq {
			// Only a row at a stored sequence may be the stored row
			// again; one above it is a change whatever it was (a stored
			// row is at or below s.seq), and the previous sequence is
			// not needed while bySeq is not kept (partial ownSeq).
			var err error
			if old, had, err = s.storedOwnSeqLocked(r.SKU); err != nil {
				return err
			}
		}
		if had && old == r.Seq {
			continue
		}
		if r.Seq <= s.seq || r.Seq > p.Seq {
			return fmt.Errorf("region store: own row %s changed at seq %d, outside (%d, %d]", r.SKU, r.Seq, s.seq, p.Seq)
		}
		changed = append(changed, seqChange{old: old, had: had, row: i})
	}
	slices.SortFunc(changed, func(a, b seqChange) int { return cmp.Compare(p.Rows[a.row].Seq, p.Rows[b.row].Seq) })
	s.changed = changed
	for j := 1; j < len(changed); j++ {
		if seq := p.Rows[changed[j].row].Seq; seq == p.Rows[changed[j-1].row].Seq {
			return fmt.Errorf("region store: two own rows changed at seq %d", seq)
		}
	}
	for i := range p.HoldsUnindexed {
		if !s.ownHoldID(p.HoldsUnindexed[i].Name) {
			return fmt.Errorf("region store: expiry entry of hold %q, which does not belong to region %s", p.HoldsUnindexed[i].Name, s.region)
		}
	}
	for i := range p.Holds {
		h := p.Holds[i]
		id := h.ID
		if !s.ownHoldID(id) {
			return fmt.Errorf("region store: hold %q does not belong to region %s", id, s.region)
		}
		// The cheap part of what DecodeHold will insist on at Load.
		if h.State < escrow.Held || h.State > escrow.Expired || len(h.Lines) == 0 || len(h.Lines) > escrow.MaxLines {
			return fmt.Errorf("region store: hold %s has state %d and %d lines", id, h.State, len(h.Lines))
		}
		for j := range h.Lines {
			if h.Lines[j].Qty == 0 || h.Lines[j].Qty > escrow.MaxQty || (j > 0 && h.Lines[j-1].SKU >= h.Lines[j].SKU) {
				return fmt.Errorf("region store: hold %s lines are not sorted, distinct, with quantities in 1..%d", id, escrow.MaxQty)
			}
		}
	}
	if err := s.validateWaits(p); err != nil {
		return err
	}
	for r := range p.PeerSeq {
		if r == s.region || r == "" {
			return fmt.Errorf("region store: peer sequence for region %q", r)
		}
	}
	for _, m := range p.Recounts {
		if escrow.ValidStockKey(m.SKU) != nil || m.AsOf.IsZero() {
			return fmt.Errorf("region store: recount mark %q at %v", m.SKU, m.AsOf)
		}
	}
	return nil
}

// ownHoldID reports whether id has the form of a hold id of this region.
func (s *Store) ownHoldID(id string) bool {
	return len(id) > len(s.region)+1 && id[:len(s.region)] == s.region && id[len(s.region)] == '-'
}

// seqChange is an own row whose sequence moves from old (had: the row
// existed) to the row's Seq.
type seqChange struct {
	old uint64
	had bool
	row int32
}

// rowOrder returns the indexes of rows in key order (in s.rowIdx).
func (s *Store) rowOrder(rows []escrow.Row) []int32 {
	o := s.rowIdx[:0]
	for i := range rows {
		o = append(o, int32(i))
	}
	// Stable: a peer row sent twice in one batch keeps its last version.
	slices.SortStableFunc(o, func(a, b int32) int {
		if c := strings.Compare(rows[a].SKU, rows[b].SKU); c != 0 {
			return c
		}
		return strings.Compare(rows[a].Region, rows[b].Region)
	})
	s.rowIdx = o
	return o
}

// holdOrder returns the indexes of holds sorted by cmp (in s.order).
func (s *Store) holdOrder(holds []*escrow.Hold, cmp func(a, b *escrow.Hold) int) []int32 {
	o := s.order[:0]
	for i := range holds {
		o = append(o, int32(i))
	}
	slices.SortFunc(o, func(a, b int32) int { return cmp(holds[a], holds[b]) })
	s.order = o
	return o
}

// stage writes p into b and updates the in-memory sequences of own rows.
func (s *Store) stage(b *pebble.Batch, p *escrow.Persist, forceSeq bool) error {
	k, v := s.kbuf[:0], s.vbuf[:0]
	defer func() { s.kbuf, s.vbuf = k, v }()
	w := batchWriter{b: b}
	// Keys are written grouped by prefix (rows, then holds, then expiry
	// index), not interleaved per item: pebble inserts a batch into the
	// memtable in batch order with a splice hint from the previous key, and
	// the keys of one group are near each other (hold ids and expiries
	// start with the time), so most inserts skip the search. Rows in key
	// order (validate left it): a batch of many SKUs then inserts like one
	// of few.
	for _, i := range s.rowIdx {
		r := &p.Rows[i]
		k = appendRowKey(k[:0], r.SKU, r.Region)
		v = escrow.EncodeRowValue(v[:0], r)
		w.set(k, v)
	}
	// The rows lead the batch: with the own log, the memtable skips them
	// (store_rowlog.go).
	s.stageRows = rowSpan{}
	if s.ov != nil {
		s.stageRows = rowSpan{n: uint32(len(s.rowIdx)), end: b.Len()}
	}
	// Before the batch is visible: OwnRowsSince reads the snapshot first
	// and bySeq after it (store_query.go).
	s.moveSeqsLocked(p)
	// In key order: the splice hint only helps when each key is after the
	// previous one (ids of one millisecond come in random order).
	order := s.holdOrder(p.Holds, func(a, b *escrow.Hold) int { return strings.Compare(a.ID, b.ID) })
	for _, i := range order {
		h := p.Holds[i]
		k = appendHoldKey(k[:0], h.ID)
		v = escrow.EncodeHold(v[:0], h)
		w.set(k, v)
	}
	for _, i := range order {
		k = stageListIndexes(&w, k, p.Holds[i])
	}
	if !s.opts.RetainTerminal {
		// Without a retention window a retired hold goes at once, with its
		// listing index entries (read back: retire only names the hold).
		for _, id := range p.DeletedHolds {
			k = appendHoldKey(k[:0], id)
			if old, ok, err := s.get(k); err != nil {
				w.err = err
			} else if ok {
				if h, err := escrow.DecodeHold(old); err == nil {
					k = unstageListIndexes(&w, k, &h)
					k = appendHoldKey(k[:0], id)
				}
			}
			w.del(k)
		}
	}
	// With RetainTerminal a retired hold leaves the node's memory but stays
	// in the store, listable, until the pruner drops it (store_list.go).
	//
	// The x/ and j/ indexes: the node names the entries earlier batches
	// wrote that this one ends (a hold left HELD or moved its deadline, a
	// key was deleted or replaced); they go first, so that an entry ended
	// and written again in one batch stays. A retired hold is terminal,
	// so it has no x/ entry left to delete.
	for i := range p.HoldsUnindexed {
		d := &p.HoldsUnindexed[i]
		k = appendExpiryKey(k[:0], timeOrd(d.At), d.Name)
		w.del(k)
	}
	order = s.holdOrder(p.Holds, func(a, b *escrow.Hold) int {
		if c := a.Expires.Compare(b.Expires); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, i := range order {
		if h := p.Holds[i]; h.State == escrow.Held {
			k = appendExpiryKey(k[:0], timeOrd(h.Expires), h.ID)
			w.set(k, nil)
		}
	}
	for i := range p.IdemUnindexed {
		d := &p.IdemUnindexed[i]
		k = appendIdemExpiryKey(k[:0], timeOrd(d.At), d.Name)
		w.del(k)
	}
	for i := range p.Idem {
		e := &p.Idem[i]
		k = appendIdemKey(k[:0], e.Key)
		v = appendIdemValue(v[:0], e)
		w.set(k, v)
		k = appendIdemExpiryKey(k[:0], timeOrd(e.Expires), e.Key)
		w.set(k, nil)
	}
	for _, key := range p.DeletedIdem {
		k = appendIdemKey(k[:0], key)
		w.del(k)
	}
	k, v = stageWaits(&w, p, k, v)
	for r, seq := range p.PeerSeq {
		k = appendPeerKey(k[:0], r)
		v = appendU64(v[:0], seq)
		w.set(k, v)
	}
	for _, m := range p.Recounts {
		k = appendRecountKey(k[:0], m.SKU)
		v = appendU64(v[:0], timeOrd(m.AsOf))
		w.set(k, v)
	}
	if p.Seq != s.seq || forceSeq {
		v = appendU64(v[:0], p.Seq)
		w.set(keyMetaSeq, v)
	}
	return w.err
}

// batchWriter writes keys into a pebble batch and keeps the first error, so
// that stage can write every key and check once at the end.
type batchWriter struct {
	b   *pebble.Batch
	err error
}

func (w *batchWriter) set(key, val []byte) {
	if err := w.b.Set(key, val, nil); err != nil && w.err == nil {
		w.err = err
	}
}

func (w *batchWriter) del(key []byte) {
	if err := w.b.Delete(key, nil); err != nil && w.err == nil {
		w.err = err
	}
}
