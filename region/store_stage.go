package region

// Staging a Persist into a pebble batch: validation against what Load
// accepts, and the upkeep of the c/, x/ and j/ indexes.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

// validate rejects a Persist that would store something Load refuses.
func (s *Store) validate(p *escrow.Persist) error {
	if s.seqSeen == nil {
		s.seqSeen = make(map[uint64]struct{})
	}
	clear(s.seqSeen)
	for i := range p.Rows {
		r := &p.Rows[i]
		if r.SKU == "" || r.Region == "" {
			return fmt.Errorf("region store: row without SKU or region (%q/%q)", r.Region, r.SKU)
		}
		if r.Region != s.region {
			continue
		}
		// The change index keeps one entry per seq: a changed own row must
		// carry a sequence number no other row has (the node gives every
		// change a fresh one, above the stored sequence).
		if old, ok := s.ownSeq[r.SKU]; ok && old == r.Seq {
			continue
		}
		if r.Seq <= s.seq || r.Seq > p.Seq {
			return fmt.Errorf("region store: own row %s changed at seq %d, outside (%d, %d]", r.SKU, r.Seq, s.seq, p.Seq)
		}
		if _, dup := s.seqSeen[r.Seq]; dup {
			return fmt.Errorf("region store: two own rows changed at seq %d", r.Seq)
		}
		s.seqSeen[r.Seq] = struct{}{}
	}
	for i := range p.Holds {
		h := &p.Holds[i]
		id := h.ID
		if len(id) <= len(s.region)+1 || id[:len(s.region)] != s.region || id[len(s.region)] != '-' {
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
	for r := range p.PeerSeq {
		if r == s.region || r == "" {
			return fmt.Errorf("region store: peer sequence for region %q", r)
		}
	}
	return nil
}

// holdOrder returns the indexes of holds sorted by cmp (in s.order).
func (s *Store) holdOrder(holds []escrow.Hold, cmp func(a, b *escrow.Hold) int) []int32 {
	o := s.order[:0]
	for i := range holds {
		o = append(o, int32(i))
	}
	slices.SortFunc(o, func(a, b int32) int { return cmp(&holds[a], &holds[b]) })
	s.order = o
	return o
}

// stage writes p into b and updates the index maps.
func (s *Store) stage(b *pebble.Batch, p *escrow.Persist, forceSeq bool) error {
	k, v := s.kbuf[:0], s.vbuf[:0]
	defer func() { s.kbuf, s.vbuf = k, v }()
	var errs error
	set := func(key, val []byte) {
		if err := b.Set(key, val, nil); err != nil && errs == nil {
			errs = err
		}
	}
	del := func(key []byte) {
		if err := b.Delete(key, nil); err != nil && errs == nil {
			errs = err
		}
	}
	// Keys are written grouped by prefix (rows, then change index, then
	// holds, then expiry index), not interleaved per item: pebble inserts a
	// batch into the memtable in batch order with a splice hint from the
	// previous key, and the keys of one group are near each other (hold ids
	// and expiries start with the time), so most inserts skip the search.
	for i := range p.Rows {
		r := &p.Rows[i]
		k = appendRowKey(k[:0], r.SKU, r.Region)
		v = escrow.EncodeRow(v[:0], r)
		set(k, v)
	}
	for i := range p.Rows {
		r := &p.Rows[i]
		if r.Region != s.region {
			continue
		}
		old, had := s.ownSeq[r.SKU]
		if had && old == r.Seq {
			continue
		}
		if had {
			k = appendChangeKey(k[:0], old)
			del(k)
		}
		k = appendChangeKey(k[:0], r.Seq)
		v = append(v[:0], r.SKU...)
		set(k, v)
		s.ownSeq[r.SKU] = r.Seq
	}
	// In key order: the splice hint only helps when each key is after the
	// previous one (ids of one millisecond come in random order).
	order := s.holdOrder(p.Holds, func(a, b *escrow.Hold) int { return strings.Compare(a.ID, b.ID) })
	for _, i := range order {
		h := &p.Holds[i]
		k = appendHoldKey(k[:0], h.ID)
		v = escrow.EncodeHold(v[:0], h)
		set(k, v)
	}
	for _, id := range p.DeletedHolds {
		k = appendHoldKey(k[:0], id)
		del(k)
	}
	order = s.holdOrder(p.Holds, func(a, b *escrow.Hold) int {
		if c := a.Expires.Compare(b.Expires); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, i := range order {
		h := &p.Holds[i]
		old, had := s.heldExp[h.ID]
		if h.State == escrow.Held {
			ord := timeOrd(h.Expires)
			if had && old == ord {
				continue
			}
			if had {
				k = appendExpiryKey(k[:0], old, h.ID)
				del(k)
			}
			k = appendExpiryKey(k[:0], ord, h.ID)
			set(k, nil)
			s.heldExp[h.ID] = ord
		} else if had {
			k = appendExpiryKey(k[:0], old, h.ID)
			del(k)
			delete(s.heldExp, h.ID)
		}
	}
	for _, id := range p.DeletedHolds {
		if old, had := s.heldExp[id]; had {
			k = appendExpiryKey(k[:0], old, id)
			del(k)
			delete(s.heldExp, id)
		}
	}
	for i := range p.Idem {
		e := &p.Idem[i]
		k = appendIdemKey(k[:0], e.Key)
		v = appendIdemValue(v[:0], e)
		set(k, v)
		ord := timeOrd(e.Expires)
		old, had := s.idemExp[e.Key]
		if had && old == ord {
			continue
		}
		if had {
			k = appendIdemExpiryKey(k[:0], old, e.Key)
			del(k)
		}
		k = appendIdemExpiryKey(k[:0], ord, e.Key)
		set(k, nil)
		s.idemExp[e.Key] = ord
	}
	for _, key := range p.DeletedIdem {
		k = appendIdemKey(k[:0], key)
		del(k)
		if old, had := s.idemExp[key]; had {
			k = appendIdemExpiryKey(k[:0], old, key)
			del(k)
			delete(s.idemExp, key)
		}
	}
	for r, seq := range p.PeerSeq {
		k = appendPeerKey(k[:0], r)
		v = appendU64(v[:0], seq)
		set(k, v)
	}
	if p.Seq != s.seq || forceSeq {
		v = appendU64(v[:0], p.Seq)
		set(keyMetaSeq, v)
	}
	return errs
}
