package escrow

import (
	"slices"
	"time"
)

// This file tells the runtime which expiry index entries a Ready ends
// (Persist.HoldsUnindexed and IdemUnindexed). The node knows the deadline
// each hold and idempotency key was last persisted with, so a store keeps
// its index of deadlines in step without a map of its own (which cost the
// region store a hashed insert and delete per hold).

// Deadline names one expiry index entry: a hold id or idempotency key and
// the deadline it was persisted with.
type Deadline struct {
	Name string
	At   time.Time
}

// touchHold is called before h changes state or deadline. A hold that is
// not dirty is as the store has it (a new hold is dirty from its creation
// until the Ready that writes it): if it is HELD, the store indexes it at
// h.Expires, and the change (a later deadline or a terminal state) ends
// that entry. A hold changed twice in one Ready is named once, at the
// deadline the store has.
func (n *Node) touchHold(h *holdRec) {
	if !h.dirty && h.State == Held {
		n.unindexHolds = append(n.unindexHolds, Deadline{Name: h.ID(), At: h.Expires()})
	}
}

// endIdem is called when the entry e of an idempotency key is deleted or
// replaced. If e was added in this Ready it is taken out of Persist.Idem
// (the store never had it, and the batch then holds one entry per key);
// otherwise the store has it, indexed at e.Expires, and that entry ends.
//
// Finding e in Persist.Idem: a scan while the Ready has few keys; past
// idemScanMax, a map from key to position, built on the first call of the
// Ready and kept up by putIdem, so that a sweep ending thousands of keys
// while thousands are added costs O(keys), not their product. An entry
// taken out becomes a tombstone (Key ""), compacted away by Ready.
func (n *Node) endIdem(e *idemRec) {
	p := &n.out.Persist
	i := -1
	if len(p.Idem) <= idemScanMax {
		for j := range p.Idem {
			if p.Idem[j].Key == e.Key {
				i = j
				break
			}
		}
	} else {
		if !n.idemPosBuilt {
			if n.idemPos == nil {
				n.idemPos = make(map[string]int32)
			}
			for j := range p.Idem {
				if k := p.Idem[j].Key; k != "" {
					n.idemPos[k] = int32(j)
				}
			}
			n.idemPosBuilt = true
		}
		if j, ok := n.idemPos[e.Key]; ok {
			i = int(j)
			delete(n.idemPos, e.Key)
		}
	}
	if i >= 0 {
		p.Idem[i] = IdemEntry{} // a tombstone: Ready drops it
		n.idemGone++
		return
	}
	n.unindexIdem = append(n.unindexIdem, Deadline{Name: e.Key, At: e.Expires()})
}

// idemScanMax is the number of keys in a Ready up to which endIdem scans
// Persist.Idem instead of using a map (a variable for tests).
var idemScanMax = 32

// notePutIdem keeps endIdem's map up to date with the entry just
// appended to Persist.Idem.
func (n *Node) notePutIdem() {
	if n.idemPosBuilt {
		p := &n.out.Persist
		n.idemPos[p.Idem[len(p.Idem)-1].Key] = int32(len(p.Idem) - 1)
	}
}

// dropIdem forgets the entry e of an idempotency key and asks the runtime
// to delete it.
func (n *Node) dropIdem(e *idemRec) {
	delete(n.idem, e.Key)
	n.endIdem(e)
	// Added and dropped within this Ready: the delete wins whatever order
	// the runtime applies the batch in.
	n.out.Persist.DeletedIdem = append(n.out.Persist.DeletedIdem, e.Key)
}

// drainExpiry moves the entries ended and the holds retired since the last
// Ready into rd, in slices from the node's arenas: the lists are gathered
// in reused buffers, so a Ready costs no allocation for them.
func (n *Node) drainExpiry(rd *Ready) {
	p := &rd.Persist
	if n.idemGone > 0 {
		p.Idem = slices.DeleteFunc(p.Idem, func(e IdemEntry) bool { return e.Key == "" })
		n.idemGone = 0
	}
	if n.idemPosBuilt {
		clear(n.idemPos)
		n.idemPosBuilt = false
	}
	if len(n.unindexHolds) > 0 {
		p.HoldsUnindexed = append(n.dlArena.take(len(n.unindexHolds)), n.unindexHolds...)
		clear(n.unindexHolds) // the ids point into hold records
		n.unindexHolds = n.unindexHolds[:0]
	}
	if len(n.unindexIdem) > 0 {
		p.IdemUnindexed = append(n.dlArena.take(len(n.unindexIdem)), n.unindexIdem...)
		clear(n.unindexIdem)
		n.unindexIdem = n.unindexIdem[:0]
	}
	if len(n.retired) > 0 {
		p.DeletedHolds = append(n.idArena.take(len(n.retired)), n.retired...)
		clear(n.retired)
		n.retired = n.retired[:0]
	}
}
