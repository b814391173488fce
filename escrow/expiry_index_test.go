package escrow

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// expiryIndexModel is a store's expiry indexes kept the way the region
// store keeps them: from the Persists alone, ending the entries a Persist
// names (HoldsUnindexed, IdemUnindexed) before writing its own.
type expiryIndexModel struct {
	holds, idem map[string]time.Time
}

// apply applies p; an ended entry that the index does not have at that
// deadline is an error (the store would leave the real one behind).
func (m *expiryIndexModel) apply(p *Persist) error {
	end := func(idx map[string]time.Time, what string, ds []Deadline) error {
		for _, d := range ds {
			if at, ok := idx[d.Name]; !ok || !at.Equal(d.At) {
				return fmt.Errorf("%s %s: ended at %v, indexed at %v (present %v)", what, d.Name, d.At, at, ok)
			}
			delete(idx, d.Name)
		}
		return nil
	}
	if err := end(m.holds, "hold", p.HoldsUnindexed); err != nil {
		return err
	}
	if err := end(m.idem, "idempotency key", p.IdemUnindexed); err != nil {
		return err
	}
	for i := range p.Holds {
		if h := p.Holds[i]; h.State == Held {
			m.holds[h.ID] = h.Expires
		}
	}
	for _, e := range p.Idem {
		m.idem[e.Key] = e.Expires
	}
	return nil
}

// check compares the indexes with the node: one entry per HELD hold at its
// deadline, one per remembered idempotency key at its expiry, no other.
func (m *expiryIndexModel) check(n *Node) error {
	held := 0
	for id, h := range n.holds.all() {
		if h.State != Held {
			continue
		}
		held++
		if at, ok := m.holds[id]; !ok || !at.Equal(h.Expires()) {
			return fmt.Errorf("held hold %s expires at %v, index has %v (present %v)", id, h.Expires(), at, ok)
		}
	}
	if held != len(m.holds) {
		return fmt.Errorf("index has %d hold entries for %d held holds", len(m.holds), held)
	}
	for k, e := range n.idem {
		if at, ok := m.idem[k]; !ok || !at.Equal(e.Expires()) {
			return fmt.Errorf("idempotency key %s expires at %v, index has %v (present %v)", k, e.Expires(), at, ok)
		}
	}
	if len(n.idem) != len(m.idem) {
		return fmt.Errorf("index has %d idempotency entries for %d keys", len(m.idem), len(n.idem))
	}
	return nil
}

// indexError is a disagreement between the index model and the node.
type indexError struct{ error }

// runExpiryIndex drives a node with random holds (some with reused
// idempotency keys), extends, confirms, releases, and clock jumps that
// expire holds and keys, several commands per Ready, and checks the index
// model after every Ready. tamper, if set, may change each Persist first.
func runExpiryIndex(seed uint64, steps int, tamper func(*Persist)) error {
	rng := rand.New(rand.NewPCG(seed, 0xe8))
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1, IdemTTL: 3 * time.Second, DefaultTTL: 4 * time.Second,
		HoldRetain: 2 * time.Second, MaxLifetime: 8 * time.Second}, nil)
	if err != nil {
		return err
	}
	m := &expiryIndexModel{holds: map[string]time.Time{}, idem: map[string]time.Time{}}
	now := t0
	var ids []string
	var req uint64
	step := func(c *Command) error {
		req++
		if c != nil {
			c.ReqID = req
		}
		return n.Step(Input{Now: now, Cmd: c})
	}
	if err := step(&Command{Kind: CmdRestock, SKU: "A", Qty: MaxQty}); err != nil {
		return err
	}
	for i := 0; i < steps; i++ {
		now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
		for k := rng.IntN(4); k >= 0; k-- {
			var c *Command
			switch r := rng.IntN(10); {
			case r < 4 || len(ids) == 0:
				c = &Command{Kind: CmdHold, Lines: []Line{{SKU: "A", Qty: 1}},
					TTL: time.Duration(1+rng.IntN(4)) * time.Second}
				if rng.IntN(2) == 0 {
					c.IdemKey, c.IdemHash = "k"+strconv.Itoa(rng.IntN(6)), 1
				}
			case r < 7:
				c = &Command{Kind: CmdExtend, HoldID: ids[rng.IntN(len(ids))], TTL: time.Duration(1+rng.IntN(6)) * time.Second}
			case r < 8:
				c = &Command{Kind: CmdConfirm, HoldID: ids[rng.IntN(len(ids))]}
			case r < 9:
				c = &Command{Kind: CmdRelease, HoldID: ids[rng.IntN(len(ids))]}
			default:
				now = now.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
			}
			if err := step(c); err != nil {
				return err
			}
		}
		rd := n.Ready()
		for _, r := range rd.Reply {
			if r.Hold != nil && r.Kind == CmdHold && !r.Replayed {
				ids = append(ids, r.Hold.ID)
			}
		}
		if tamper != nil {
			tamper(&rd.Persist)
		}
		if err := m.apply(&rd.Persist); err != nil {
			return &indexError{fmt.Errorf("step %d: %w", i, err)}
		}
		n.Advance()
		if err := m.check(n); err != nil {
			return &indexError{fmt.Errorf("step %d: %w", i, err)}
		}
	}
	if n.stats.ExpiredHolds == 0 || n.stats.Confirmed == 0 || n.stats.Replayed == 0 {
		return fmt.Errorf("the run shows little: %d expired, %d confirmed, %d replayed",
			n.stats.ExpiredHolds, n.stats.Confirmed, n.stats.Replayed)
	}
	return nil
}

// TestExpiryIndexFromPersists: a store that keeps its expiry indexes from
// the Persists alone (no map of its own) has exactly the node's HELD holds
// and idempotency keys, each at its deadline, after every Ready.
func TestExpiryIndexFromPersists(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		if err := runExpiryIndex(seed, 400, nil); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// TestExpiryIndexFromPersistsMapped: the same with endIdem finding keys
// of the Ready through its map from the first key on.
func TestExpiryIndexFromPersistsMapped(t *testing.T) {
	defer func(v int) { idemScanMax = v }(idemScanMax)
	idemScanMax = 0
	for seed := uint64(1); seed <= 8; seed++ {
		if err := runExpiryIndex(seed, 400, nil); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// TestExpiryIndexPlantedBugs: the check above catches a Persist that
// forgets to end an entry, or ends one at the wrong deadline.
func TestExpiryIndexPlantedBugs(t *testing.T) {
	for _, bug := range []struct {
		name   string
		tamper func(*Persist)
	}{
		{"hold entry not ended", func(p *Persist) {
			if len(p.HoldsUnindexed) > 0 {
				p.HoldsUnindexed = p.HoldsUnindexed[1:]
			}
		}},
		{"idempotency entry not ended", func(p *Persist) {
			if len(p.IdemUnindexed) > 0 {
				p.IdemUnindexed = p.IdemUnindexed[1:]
			}
		}},
		{"hold entry ended at the new deadline", func(p *Persist) {
			for i := range p.HoldsUnindexed {
				p.HoldsUnindexed[i].At = p.HoldsUnindexed[i].At.Add(time.Second)
			}
		}},
	} {
		var ie *indexError
		if err := runExpiryIndex(1, 400, bug.tamper); !errors.As(err, &ie) {
			t.Errorf("%s: not caught (%v)", bug.name, err)
		} else {
			t.Logf("%s: caught: %v", bug.name, err)
		}
	}
}

// storeIndex is the expiry index check of memStore: the index as a store
// keeps it from the Persists, against the index the stored holds and keys
// call for (every HELD hold at its deadline, every key at its expiry), so
// that every test that persists through memStore checks the entries the
// node ends.
type storeIndex struct {
	got, want expiryIndexModel
}

func newStoreIndex() *storeIndex {
	return &storeIndex{got: expiryIndexModel{holds: map[string]time.Time{}, idem: map[string]time.Time{}},
		want: expiryIndexModel{holds: map[string]time.Time{}, idem: map[string]time.Time{}}}
}

func (x *storeIndex) apply(p *Persist) error {
	if err := x.got.apply(p); err != nil {
		return err
	}
	for i := range p.Holds {
		h := p.Holds[i]
		if h.State == Held {
			x.want.holds[h.ID] = h.Expires
		} else {
			delete(x.want.holds, h.ID)
		}
	}
	for _, id := range p.DeletedHolds {
		delete(x.want.holds, id)
	}
	for _, e := range p.Idem {
		x.want.idem[e.Key] = e.Expires
	}
	for _, k := range p.DeletedIdem {
		delete(x.want.idem, k)
	}
	same := func(what string, got, want map[string]time.Time, touched func(yield func(string))) error {
		if len(got) != len(want) {
			return fmt.Errorf("%s index has %d entries, the stored data calls for %d", what, len(got), len(want))
		}
		var err error
		touched(func(name string) {
			g, gok := got[name]
			w, wok := want[name]
			if err == nil && (gok != wok || !g.Equal(w)) {
				err = fmt.Errorf("%s %s: index has %v (%v), the stored data calls for %v (%v)", what, name, g, gok, w, wok)
			}
		})
		return err
	}
	if err := same("hold", x.got.holds, x.want.holds, func(yield func(string)) {
		for i := range p.Holds {
			yield(p.Holds[i].ID)
		}
		for _, d := range p.HoldsUnindexed {
			yield(d.Name)
		}
	}); err != nil {
		return err
	}
	return same("idempotency key", x.got.idem, x.want.idem, func(yield func(string)) {
		for _, e := range p.Idem {
			yield(e.Key)
		}
		for _, d := range p.IdemUnindexed {
			yield(d.Name)
		}
	})
}

// BenchmarkKeyedSweep: 1,024 holds with idempotency keys per Ready, the
// clock 1 ms apart, keys remembered 1 s: every step ends the key of the
// hold a second before while the Ready fills with new ones (a region at
// steady state, idem_ttl after its start). endIdem finds each ended key
// among the Ready's new ones by a scan ("scan", as before) or by the
// Ready's map ("map"). ns/op is per hold.
func BenchmarkKeyedSweep(b *testing.B) {
	for _, v := range []struct {
		name string
		max  int
	}{{"scan", 1 << 30}, {"map", 32}} {
		b.Run(v.name, func(b *testing.B) {
			defer func(m int) { idemScanMax = m }(idemScanMax)
			idemScanMax = v.max
			const batch = 1024
			n, err := NewNode(Config{Region: "eu", DigestInterval: -1, IdemTTL: time.Second, HoldRetain: time.Second,
				MaxSweepPerTick: 1 << 20}, nil)
			if err != nil {
				b.Fatal(err)
			}
			now := t0
			if err := n.Step(Input{Now: now, Cmd: &Command{Kind: CmdRestock, SKU: "A", Qty: MaxQty}}); err != nil {
				b.Fatal(err)
			}
			n.Ready()
			n.Advance()
			cmd := Command{Kind: CmdHold, Lines: []Line{{SKU: "A", Qty: 1}}, TTL: time.Second}
			keys := make([]string, 4*batch)
			for i := range keys {
				keys[i] = "key-" + strconv.Itoa(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			defer cpuTimer(b)()
			for i := 0; i < b.N; i++ {
				if i%batch == 0 {
					n.Ready()
					n.Advance()
				}
				now = now.Add(time.Millisecond)
				cmd.ReqID = uint64(i + 1)
				cmd.IdemKey, cmd.IdemHash = keys[i%len(keys)], uint64(i)
				if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
