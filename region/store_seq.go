package region

// The own rows' sequences, in memory (store format 3 has no change index on
// disk; see keys.go). ownSeq (SKU → Seq of the own row) is what Apply checks
// a batch's own rows against; Load builds it from the rows it reads, and the
// first Apply or OwnRowsSince of a store that was not loaded scans the rows
// for it. bySeq (Seq → SKU) serves OwnRowsSince in sequence order; it is
// built by the first OwnRowsSince and from then on kept by Apply, so a
// region that never asks for it pays nothing per hold.

import (
	"cmp"
	"slices"

	"github.com/RaduBerinde/btreemap"

	"github.com/holdfast-io/holdfast/escrow"
)

// seqSKU is an own row's sequence and SKU.
type seqSKU struct {
	seq uint64
	sku string
}

func cmpSeq(a, b seqSKU) int { return cmp.Compare(a.seq, b.seq) }

// setOwnSeqLocked makes own (every own row of the store, any order) the
// in-memory map and drops bySeq (the next OwnRowsSince rebuilds it). Two own
// rows at one sequence is corruption: the node gives every change a fresh
// sequence. Callers hold applyMu.
func (s *Store) setOwnSeqLocked(own []seqSKU) error {
	slices.SortFunc(own, cmpSeq)
	for i := 1; i < len(own); i++ {
		if own[i].seq == own[i-1].seq {
			return corrupt(appendRowKey(nil, own[i].sku, s.region), "own row at seq %d, as is the own row of SKU %q", own[i].seq, own[i-1].sku)
		}
	}
	m := make(map[string]uint64, len(own))
	for _, o := range own {
		m[o.sku] = o.seq
	}
	s.ownSeq = m
	s.ownSeqPartial = false
	s.setBySeqLocked(nil)
	return nil
}

// setBySeqLocked replaces bySeq. Callers hold applyMu.
func (s *Store) setBySeqLocked(t *btreemap.BTreeMap[uint64, string]) {
	s.idxMu.Lock()
	s.bySeq = t
	s.idxMu.Unlock()
}

// resetSeqIndexLocked forgets both maps (open: the store may have changed).
func (s *Store) resetSeqIndexLocked() {
	s.ownSeq = nil
	s.ownSeqPartial = false
	s.setBySeqLocked(nil)
}

// ensureOwnSeqLocked builds ownSeq by scanning the own rows when no Load
// did. Callers hold applyMu.
func (s *Store) ensureOwnSeqLocked() error {
	if s.ownSeq != nil {
		return nil
	}
	var own []seqSKU
	err := s.scan(pfxRow, func(k, v []byte) error {
		sku, region, ok := splitRowKey(k)
		if !ok {
			return corrupt(k, "row key without region separator")
		}
		if region != s.region {
			return nil
		}
		r, err := escrow.DecodeRowValue(v, sku, region)
		if err != nil {
			return corrupt(k, "undecodable row: %v", err)
		}
		if r.Seq > s.seq {
			return corrupt(k, "own row has seq %d beyond the stored sequence %d", r.Seq, s.seq)
		}
		own = append(own, seqSKU{r.Seq, sku})
		return nil
	})
	if err != nil {
		return err
	}
	return s.setOwnSeqLocked(own)
}

// bySeqDegree is the B-tree's degree (nodes of up to 63 entries).
const bySeqDegree = 32

// ensureBySeqLocked builds bySeq from ownSeq. Callers hold applyMu.
func (s *Store) ensureBySeqLocked() error {
	if s.ownSeqPartial {
		s.ownSeq = nil // the full map, built by a scan
	}
	if err := s.ensureOwnSeqLocked(); err != nil {
		return err
	}
	if s.bySeq != nil {
		return nil
	}
	own := make([]seqSKU, 0, len(s.ownSeq))
	for sku, seq := range s.ownSeq {
		own = append(own, seqSKU{seq, sku})
	}
	slices.SortFunc(own, cmpSeq)
	t := btreemap.New[uint64, string](bySeqDegree, cmp.Compare[uint64])
	for _, o := range own { // ascending: each insert goes to the rightmost leaf
		t.ReplaceOrInsert(o.seq, o.sku)
	}
	s.setBySeqLocked(t)
	return nil
}

// moveSeqsLocked records the own rows of p that validate found changed (in
// s.changed) in ownSeq, and in bySeq when it is kept. Callers hold applyMu.
func (s *Store) moveSeqsLocked(p *escrow.Persist) {
	if s.ownSeqPartial && len(s.ownSeq)+len(s.changed) > maxPartialOwnSeq {
		clear(s.ownSeq) // only a cache of the stored rows' sequences
	}
	for _, c := range s.changed {
		r := &p.Rows[c.row]
		s.ownSeq[r.SKU] = r.Seq
	}
	if s.bySeq == nil {
		return
	}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	for _, c := range s.changed {
		if c.had {
			s.bySeq.Delete(c.old)
		}
		r := &p.Rows[c.row]
		s.bySeq.ReplaceOrInsert(r.Seq, r.SKU)
	}
}

// ownSeqsBetween returns up to limit own rows' (seq, SKU) with from < seq
// <= to, in sequence order, as bySeq has them now (nil: not built).
func (s *Store) ownSeqsBetween(from, to uint64, limit int) ([]seqSKU, bool) {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if s.bySeq == nil {
		return nil, false
	}
	var out []seqSKU
	for seq, sku := range s.bySeq.Ascend(btreemap.GT(from), btreemap.LE(to)) {
		if len(out) == limit {
			break
		}
		out = append(out, seqSKU{seq, sku})
	}
	return out, true
}
