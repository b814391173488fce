package escrow

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// TestHoldMapModel: holdMap against a plain map from id to hold, under
// random puts (new ids, by put or by probe and putAt, and replacements),
// deletes and gets, with the hash
// narrowed to 2 bits so that most ids collide (and with the full hash).
// The planted bug (a colliding id takes the other's slot) is caught.
func TestHoldMapModel(t *testing.T) {
	// 2 bits: most ids collide (the overflow map); 6 bits: some do;
	// full: none, and the map grows to a few thousand ids.
	for _, c := range []struct {
		mask uint64
		ids  int
	}{{3, 64}, {0x3f, 64}, {^uint64(0), 64}, {^uint64(0), 3000}} {
		for _, seed := range []uint64{1, 2, 3} {
			if err := holdMapModel(seed, c.mask, c.ids, false); err != nil {
				t.Fatalf("mask %#x, %d ids, seed %d: %v", c.mask, c.ids, seed, err)
			}
		}
	}
	if err := holdMapModel(1, 3, 64, true); err == nil {
		t.Fatal("planted bug HoldMapDropsCollision not caught (mask 3, seed 1)")
	} else {
		t.Logf("planted bug caught (mask 3, seed 1): %v", err)
	}
}

func holdMapModel(seed, mask uint64, nIDs int, bug bool) error {
	rnd := rand.New(rand.NewPCG(seed, 99))
	hm := newHoldMap(0)
	hm.mask, hm.dropCollision = mask, bug
	model := map[string]*holdRec{}
	ids := make([]string, nIDs)
	for i := range ids {
		ids[i] = fmt.Sprintf("eu-%018d", rnd.Uint64()%1e18)
	}
	for op := 0; op < 80*nIDs; op++ {
		if op%(4*nIDs) == 0 {
			// Every id, now and then: a slot moved back by a delete
			// must still be found, and a deleted id not at all.
			for _, id := range ids {
				if got := hm.get(id); got != model[id] {
					return fmt.Errorf("op %d: get(%s) = %p, want %p", op, id, got, model[id])
				}
			}
		}
		id := ids[rnd.IntN(len(ids))]
		// Puts (new ids and replacements) outnumber deletes while the map
		// is at most half full and the other way round after, so it
		// fills and empties around half its ids; one op in six is a get.
		kind := 2 // get only
		if r, fill := rnd.IntN(6), len(model) <= nIDs/2; r >= 1 && ((fill && r < 4) || (!fill && r < 3)) {
			kind = 0
		} else if r >= 1 {
			kind = 1
		}
		switch kind {
		case 0: // a new hold of id, or a replacement of its record
			h := &holdRec{}
			h.setID(id)
			// A new id goes in as newHold puts it (probe, then putAt
			// at its slot) half the time.
			if cur, slot := hm.probe(id); cur != model[id] {
				return fmt.Errorf("op %d: probe(%s) = %p, want %p", op, id, cur, model[id])
			} else if cur == nil && rnd.IntN(2) == 0 {
				hm.putAt(slot, h)
			} else {
				hm.put(h)
			}
			model[id] = h
		case 1:
			hm.del(id)
			delete(model, id)
		}
		if got := hm.get(id); got != model[id] {
			return fmt.Errorf("op %d: get(%s) = %p, want %p", op, id, got, model[id])
		}
		if hm.len() != len(model) {
			return fmt.Errorf("op %d: %d holds, want %d", op, hm.len(), len(model))
		}
	}
	seen := 0
	for id, h := range hm.all() {
		if model[id] != h || h.ID() != id {
			return fmt.Errorf("all yields %s → %p, want %p", id, h, model[id])
		}
		seen++
	}
	if seen != len(model) {
		return fmt.Errorf("all yields %d holds, want %d", seen, len(model))
	}
	return nil
}

// TestHoldMapCollisionsInNode: a node whose holds map's hash is narrowed
// to 2 bits (every hold collides with others) grants, reads, confirms and
// releases 200 holds as usual; with the planted bug HoldMapDropsCollision
// a granted hold is soon no longer found.
func TestHoldMapCollisionsInNode(t *testing.T) {
	if err := holdMapInNode(plantedbugs.Bugs{}); err != nil {
		t.Fatal(err)
	}
	if err := holdMapInNode(plantedbugs.Bugs{HoldMapDropsCollision: true}); err == nil {
		t.Fatal("planted bug HoldMapDropsCollision not caught")
	} else {
		t.Logf("planted bug caught: %v", err)
	}
}

func holdMapInNode(bugs plantedbugs.Bugs) error {
	cfg := Config{Region: "eu", DigestInterval: -1}
	cfg.bugs = bugs
	n, err := NewNode(cfg, nil)
	if err != nil {
		return err
	}
	n.holds.mask = 3
	now := t0
	req := uint64(0)
	do := func(c Command) (Reply, error) {
		req++
		c.ReqID = req
		if err := n.Step(Input{Now: now, Cmd: &c}); err != nil {
			return Reply{}, err
		}
		rd := advanced(n)
		if len(rd.Reply) != 1 {
			return Reply{}, fmt.Errorf("%d replies", len(rd.Reply))
		}
		if rd.Reply[0].Err != nil {
			return rd.Reply[0], fmt.Errorf("%s: %v", c.Kind, rd.Reply[0].Err)
		}
		return rd.Reply[0], nil
	}
	if _, err := do(Command{Kind: CmdRestock, SKU: "apple", Qty: 1000}); err != nil {
		return err
	}
	var ids []string
	for i := 0; i < 200; i++ {
		now = now.Add(time.Millisecond)
		r, err := do(Command{Kind: CmdHold, Lines: []Line{{SKU: "apple", Qty: 1}}})
		if err != nil {
			return err
		}
		ids = append(ids, r.Hold.ID)
	}
	for i, id := range ids {
		kind := CmdConfirm
		if i%2 == 1 {
			kind = CmdRelease
		}
		if _, err := do(Command{Kind: CmdGet, HoldID: id}); err != nil {
			return fmt.Errorf("hold %d: %w", i, err)
		}
		if _, err := do(Command{Kind: kind, HoldID: id}); err != nil {
			return fmt.Errorf("hold %d: %w", i, err)
		}
	}
	if got := n.holds.len(); got != len(ids) {
		return fmt.Errorf("%d holds kept, want %d", got, len(ids))
	}
	return nil
}
