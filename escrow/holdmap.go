package escrow

import (
	"hash/maphash"
	"iter"
)

// holdMap is the node's holds by id. Its main map is keyed by a 64-bit
// hash of the id instead of the id: growing a map rehashes every key, and
// a string key's bytes are in its hold record, one cache miss each, so a
// map of 65,536 holds growing cost more per hold than the rest of a grant
// (docs/benchmarks.md, "The hold path under 1 µs"). A uint64 key is
// rehashed in place. The id itself is checked on every hit (the record
// has it), and an id whose hash another resident hold's id has (about
// one pair in 2^64/n², never in practice, but possible) goes to the
// overflow map, keyed by the id, so no hold is ever lost or confused.
type holdMap struct {
	seed maphash.Seed
	mask uint64 // ^0; tests narrow it to force collisions
	m    map[uint64]*holdRec
	x    map[string]*holdRec // ids whose hash another id in m has
	// dropCollision: the planted bug HoldMapDropsCollision (an id whose
	// hash is taken replaces the hold of the other id).
	dropCollision bool
}

func newHoldMap(size int) holdMap {
	return holdMap{seed: maphash.MakeSeed(), mask: ^uint64(0), m: make(map[uint64]*holdRec, size)}
}

func (hm *holdMap) key(id string) uint64 { return maphash.String(hm.seed, id) & hm.mask }

// get returns the hold of id, nil if none.
func (hm *holdMap) get(id string) *holdRec {
	if h := hm.m[hm.key(id)]; h != nil && h.ID() == id {
		return h
	}
	if len(hm.x) > 0 {
		return hm.x[id]
	}
	return nil
}

// put makes h the hold of its id.
func (hm *holdMap) put(h *holdRec) {
	id := h.ID()
	k := hm.key(id)
	cur := hm.m[k]
	switch {
	case cur == nil && len(hm.x) > 0 && hm.x[id] != nil:
		hm.x[id] = h // m's holder of the hash went; id stays where it is
	case cur == nil, cur.ID() == id, hm.dropCollision:
		hm.m[k] = h
	case len(hm.x) > 0 && hm.x[id] != nil:
		hm.x[id] = h
	default: // a new id whose hash another hold has
		hm.putAt(holdSlot{k: k, cur: cur}, h)
	}
}

// holdSlot is where a new id goes in a holdMap, as probe found it: its
// key, and the hold that has the key (nil if none).
type holdSlot struct {
	k   uint64
	cur *holdRec
}

// probe returns the hold of id (nil if none) and, when there is none, the
// slot that putAt fills: a new hold's id is looked up once (hash and
// probe) where get then put took two of each, and put a third probe.
func (hm *holdMap) probe(id string) (*holdRec, holdSlot) {
	k := hm.key(id)
	cur := hm.m[k]
	if cur != nil && cur.ID() == id {
		return cur, holdSlot{}
	}
	if len(hm.x) > 0 {
		if h := hm.x[id]; h != nil {
			return h, holdSlot{}
		}
	}
	return nil, holdSlot{k: k, cur: cur}
}

// putAt makes h, whose id probe found in no hold, the hold of its id at
// the slot probe returned; the map must not have changed since. It is put
// for an id known to be new.
func (hm *holdMap) putAt(s holdSlot, h *holdRec) {
	if s.cur == nil || hm.dropCollision {
		hm.m[s.k] = h
		return
	}
	if hm.x == nil {
		hm.x = make(map[string]*holdRec)
	}
	hm.x[h.ID()] = h
}

// del forgets the hold of id.
func (hm *holdMap) del(id string) {
	k := hm.key(id)
	if h := hm.m[k]; h != nil && h.ID() == id {
		delete(hm.m, k)
		return
	}
	if len(hm.x) > 0 {
		delete(hm.x, id)
	}
}

func (hm *holdMap) len() int { return len(hm.m) + len(hm.x) }

// all yields every hold with its id, in no particular order.
func (hm *holdMap) all() iter.Seq2[string, *holdRec] {
	return func(yield func(string, *holdRec) bool) {
		for _, h := range hm.m {
			if !yield(h.ID(), h) {
				return
			}
		}
		for id, h := range hm.x {
			if !yield(id, h) {
				return
			}
		}
	}
}
