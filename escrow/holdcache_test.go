package escrow

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// memStore as a HoldSource: holds and keys decoded from what the node
// persisted, the expiry indexes as the store keeps them from the entries
// the node ends (storeIndex.got), so that a node with the hold cache finds
// its expired holds through the index the Persists built.
func (s *memStore) StoredHold(id string) (Hold, bool, error) {
	b, ok := s.holds[id]
	if !ok {
		return Hold{}, false, nil
	}
	h, err := DecodeHold(b)
	return h, err == nil, err
}

// newestHold is State.NewestHold of the store.
func (s *memStore) newestHold() string { return NewestIn(s.holds) }

func (s *memStore) StoredIdem(key string) (IdemEntry, bool, error) {
	e, ok := s.idem[key]
	return e, ok, nil
}

func (s *memStore) DueHolds(t time.Time, max int, dst []Deadline) ([]Deadline, time.Time, error) {
	d, next := dueOfIndex(s.index.got.holds, t, max, dst)
	return d, next, nil
}

func (s *memStore) DueIdem(t time.Time, max int, dst []Deadline) ([]Deadline, time.Time, error) {
	d, next := dueOfIndex(s.index.got.idem, t, max, dst)
	return d, next, nil
}

// dueOfIndex answers a Due call from an index of deadlines by name.
func dueOfIndex(index map[string]time.Time, t time.Time, max int, dst []Deadline) ([]Deadline, time.Time) {
	all := make([]Deadline, 0, len(index))
	for name, at := range index {
		all = append(all, Deadline{Name: name, At: at})
	}
	return DueOf(all, t, max, dst)
}

// TestHoldCacheProperty runs the property test (3–7 regions, lossy
// reordering network, crashes and restarts, holds confirmed, released,
// extended and expired, idempotent retries) with every node keeping at
// most 1 hold and key resident, then 2 holds and keys and 2 SKUs: the
// same safety, model, convergence and liveness checks, and
// checkHoldResidency after every step.
func TestHoldCacheProperty(t *testing.T) {
	steps, seeds := 1500, propSeeds
	if testing.Short() {
		steps, seeds = 400, propSeeds[:6]
	}
	for _, b := range []struct{ skus, holds int }{{0, 1}, {2, 2}} {
		var miss, evict uint64
		for _, seed := range seeds {
			w := newPWorldHolds(seed, plantedbugs.Bugs{}, b.skus, b.holds)
			if err := w.run(steps); err != nil {
				t.Fatalf("bound %d (skus %d), seed %d: %v\nlast events:\n%s", b.holds, b.skus, seed, err, w.trace())
			}
			for _, pn := range w.nodes {
				cs := pn.n.HoldCacheStats()
				miss += cs.Misses
				evict += cs.Evictions
			}
		}
		t.Logf("bound %d (skus %d): %d seeds, %d misses, %d evictions", b.holds, b.skus, len(seeds), miss, evict)
		if miss == 0 || evict == 0 {
			t.Fatalf("bound %d: misses %d, evictions %d: the cache never worked", b.holds, miss, evict)
		}
	}
}

// TestHoldCachePlantedBugs: the property test catches a hold cache that
// drops unsaved holds (EvictDirtyHold: a granted hold never reaches the
// store) and one that never scans the source's expiry index
// (SkipSourceExpiry: evicted holds never expire).
func TestHoldCachePlantedBugs(t *testing.T) {
	for _, bug := range []struct {
		name string
		b    plantedbugs.Bugs
	}{{"EvictDirtyHold", plantedbugs.Bugs{EvictDirtyHold: true}}, {"SkipSourceExpiry", plantedbugs.Bugs{SkipSourceExpiry: true}}} {
		caught := false
		for _, seed := range propSeeds[:8] {
			w := newPWorldHolds(seed, bug.b, 0, 1)
			if err := w.run(400); err != nil {
				t.Logf("%s: caught on seed %d: %v", bug.name, seed, firstLine(err.Error()))
				caught = true
				break
			}
		}
		if !caught {
			t.Errorf("%s not caught on seeds 1-8", bug.name)
		}
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// holdRig drives one node with the hold cache over a MemHolds (Readies
// persisted and advanced after each step unless hold is set).
type holdRig struct {
	t       *testing.T
	n       *Node
	src     *MemHolds
	now     time.Time
	hold    bool
	pending []Ready
	replies []Reply
	cfg     Config
}

func newHoldRig(t *testing.T, bound int, bugs plantedbugs.Bugs) *holdRig {
	src := NewMemHolds()
	cfg := Config{Region: "eu", DigestInterval: -1, TopUpHorizon: -1, MaxLifetime: time.Hour,
		DefaultTTL: 10 * time.Second, HoldRetain: 20 * time.Second, IdemTTL: 30 * time.Second}
	cfg.Rand = rand.New(rand.NewPCG(7, 1)).Uint64
	cfg.Holds, cfg.MaxResidentHolds = src, bound
	n := newNodeWithBugs(t, cfg, bugs)
	return &holdRig{t: t, n: n, src: src, now: t0, cfg: cfg}
}

func (r *holdRig) step(c *Command) Reply {
	r.t.Helper()
	if c != nil && c.ReqID == 0 {
		c.ReqID = uint64(len(r.replies) + 1000)
	}
	if err := r.n.Step(Input{Now: r.now, Cmd: c}); err != nil {
		r.t.Fatalf("step: %v", err)
	}
	var got Reply
	for r.n.HasReady() {
		rd := r.n.Ready()
		for _, rep := range rd.Reply {
			if c != nil && rep.ReqID == c.ReqID {
				got = rep
			}
			r.replies = append(r.replies, rep)
		}
		if r.hold {
			r.pending = append(r.pending, rd)
			continue
		}
		r.src.Apply(&rd.Persist)
		r.n.Advance()
	}
	if err := r.n.checkHoldResidency(); err != nil {
		r.t.Fatalf("hold residency: %v", err)
	}
	return got
}

// flush persists and advances the Readies held back.
func (r *holdRig) flush() {
	for _, rd := range r.pending {
		r.src.Apply(&rd.Persist)
		r.n.Advance()
	}
	r.pending = nil
	r.hold = false
}

func (r *holdRig) restock(sku string, qty uint64) {
	r.t.Helper()
	if rep := r.step(&Command{Kind: CmdRestock, SKU: sku, Qty: qty}); rep.Err != nil {
		r.t.Fatalf("restock: %v", rep.Err)
	}
}

func (r *holdRig) hold1(sku, key string, ttl time.Duration) *Hold {
	r.t.Helper()
	rep := r.step(&Command{Kind: CmdHold, Lines: []Line{{SKU: sku, Qty: 1}}, IdemKey: key, IdemHash: 1, TTL: ttl})
	if rep.Err != nil || rep.Hold == nil {
		r.t.Fatalf("hold: %+v", rep.Err)
	}
	h := *rep.Hold
	return &h
}

// TestHoldCacheBound: with a bound of 4, a node that granted 50 holds keeps
// at most 4 holds and 4 keys resident once its Readies are advanced, the
// rest are read back on demand (get, confirm, an idempotent retry), and
// every hold expires at its deadline through the source's index: the
// units all come back.
func TestHoldCacheBound(t *testing.T) {
	r := newHoldRig(t, 4, plantedbugs.Bugs{})
	r.restock("A", 100)
	var ids []string
	for i := range 50 {
		h := r.hold1("A", fmt.Sprintf("k%d", i), time.Duration(10+i)*time.Second)
		ids = append(ids, h.ID)
	}
	cs := r.n.HoldCacheStats()
	if cs.Holds > 4 || cs.Keys > 4 || cs.Evictions == 0 {
		t.Fatalf("resident %d holds, %d keys, %d evictions; want at most 4 each", cs.Holds, cs.Keys, cs.Evictions)
	}
	if got := r.n.Stats().ActiveHolds; got != 50 {
		t.Fatalf("active holds %d, want 50", got)
	}
	// A retry of the first hold's key replays it from the source.
	rep := r.step(&Command{Kind: CmdHold, Lines: []Line{{SKU: "A", Qty: 1}}, IdemKey: "k0", IdemHash: 1, TTL: 10 * time.Second})
	if rep.Err != nil || !rep.Replayed || rep.Hold.ID != ids[0] {
		t.Fatalf("retry of k0: %+v replayed=%v", rep.Err, rep.Replayed)
	}
	// Confirm a non-resident hold; get another.
	if rep := r.step(&Command{Kind: CmdConfirm, HoldID: ids[1]}); rep.Err != nil || rep.Hold.State != Confirmed {
		t.Fatalf("confirm: %+v", rep)
	}
	if rep := r.step(&Command{Kind: CmdGet, HoldID: ids[2]}); rep.Err != nil || rep.Hold.State != Held {
		t.Fatalf("get: %+v", rep)
	}
	if h, ok := r.n.Hold(ids[3]); !ok || h.State != Held {
		t.Fatalf("Hold(%s) = %v, %v", ids[3], h.State, ok)
	}
	if got := r.n.Available("A"); got != 50 {
		t.Fatalf("available %d, want 50", got)
	}
	// Step through the deadlines: every held hold expires on time.
	for i := 0; i < 70; i++ {
		r.now = r.now.Add(time.Second)
		r.step(nil)
		for j, id := range ids {
			h, ok := r.n.Hold(id)
			deadline := t0.Add(time.Duration(10+j) * time.Second)
			if ok && h.State == Held && !r.now.Before(deadline) {
				t.Fatalf("at +%v hold %d (%s) is still HELD past its deadline %v", r.now.Sub(t0), j, id, deadline)
			}
		}
	}
	if got := r.n.Available("A"); got != 99 {
		t.Fatalf("available %d after every hold ended, want 99 (one confirmed)", got)
	}
	if got := r.n.Stats().ActiveHolds; got != 0 {
		t.Fatalf("active holds %d, want 0", got)
	}
	st := r.n.Stats()
	if st.ExpiredHolds != 49 {
		t.Fatalf("expired %d, want 49", st.ExpiredHolds)
	}
	// Keys expire through the index too (idem_ttl 30 s).
	r.now = r.now.Add(time.Minute)
	r.step(nil)
	if len(r.src.idem) != 0 {
		t.Fatalf("%d keys left in the source past their expiry", len(r.src.idem))
	}
	// A terminal hold past its retention is gone for commands.
	if rep := r.step(&Command{Kind: CmdGet, HoldID: ids[1]}); rep.Err == nil || rep.Err.Code != CodeNotFound {
		t.Fatalf("get of a hold past retention: %+v", rep)
	}
}

// TestHoldCacheUnsavedStays: while its Ready is not advanced a hold is
// not dropped, whatever the bound; Advance drops it.
func TestHoldCacheUnsavedStays(t *testing.T) {
	r := newHoldRig(t, 1, plantedbugs.Bugs{})
	r.restock("A", 10)
	r.hold = true
	for i := range 5 {
		r.hold1("A", fmt.Sprintf("k%d", i), 0)
	}
	if cs := r.n.HoldCacheStats(); cs.Holds != 5 || cs.Evictions != 0 {
		t.Fatalf("unadvanced: %d resident, %d evictions; want 5, 0", cs.Holds, cs.Evictions)
	}
	r.flush()
	if cs := r.n.HoldCacheStats(); cs.Holds != 1 || cs.Keys != 1 {
		t.Fatalf("advanced: %d holds, %d keys resident; want 1", cs.Holds, cs.Keys)
	}
	if r.src.Len() != 5 {
		t.Fatalf("source has %d holds, want 5", r.src.Len())
	}
}

// TestHoldCacheDropPanics: dropping a hold whose change is not saved is
// refused by a panic (the production guard).
func TestHoldCacheDropPanics(t *testing.T) {
	r := newHoldRig(t, 10, plantedbugs.Bugs{})
	r.restock("A", 10)
	r.hold = true
	h := r.hold1("A", "", 0)
	rec := r.n.holds.get(h.ID)
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "not saved") {
			t.Fatalf("recovered %v, want the not-saved panic", p)
		}
	}()
	r.n.dropHold(&ringItem[*holdRec]{p: rec, ready: r.n.cache.readyNo, gen: rec.gen})
}

// TestHoldCacheSourceError: a failing source stops the node with
// ErrRowSource, and its Ready carries nothing.
func TestHoldCacheSourceError(t *testing.T) {
	r := newHoldRig(t, 1, plantedbugs.Bugs{})
	r.restock("A", 10)
	r.hold1("A", "k1", 0)
	r.hold1("A", "k2", 0)
	r.src.Fail = errors.New("disk on fire")
	err := r.n.Step(Input{Now: r.now, Cmd: &Command{ReqID: 9, Kind: CmdHold, Lines: []Line{{SKU: "A", Qty: 1}}, IdemKey: "k1", IdemHash: 1}})
	if !errors.Is(err, ErrRowSource) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("step: %v, want ErrRowSource", err)
	}
	if r.n.HasReady() || r.n.Err() == nil {
		t.Fatalf("stopped node has a Ready (%v) or no Err", r.n.HasReady())
	}
}

// TestHoldCacheRestart: a node restarted from its source (no holds nor
// keys in the State) answers retries and expires the holds it never
// loaded.
func TestHoldCacheRestart(t *testing.T) {
	r := newHoldRig(t, 2, plantedbugs.Bugs{})
	r.restock("A", 10)
	var ids []string
	for i := range 6 {
		ids = append(ids, r.hold1("A", fmt.Sprintf("k%d", i), 0).ID)
	}
	st := &State{Seq: r.n.Seq(), HeldHolds: r.src.Held(), NewestHold: r.src.Newest(), NewestHoldKnown: true}
	for _, s := range r.n.SKUs() {
		sv := r.n.peek(s)
		for _, rec := range sv.list {
			st.Rows = append(st.Rows, rec.Row.Clone())
		}
	}
	n, err := NewNode(r.cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	r.n = n
	if cs := n.HoldCacheStats(); cs.Holds != 0 || n.Stats().ActiveHolds != 6 {
		t.Fatalf("restarted with %d resident holds and %d active; want 0 and 6", cs.Holds, n.Stats().ActiveHolds)
	}
	rep := r.step(&Command{Kind: CmdHold, Lines: []Line{{SKU: "A", Qty: 1}}, IdemKey: "k3", IdemHash: 1})
	if rep.Err != nil || !rep.Replayed || rep.Hold.ID != ids[3] {
		t.Fatalf("retry after restart: %+v", rep)
	}
	r.now = r.now.Add(11 * time.Second)
	r.step(nil)
	if got := n.Available("A"); got != 10 || n.Stats().ActiveHolds != 0 {
		t.Fatalf("after the deadline: available %d, active %d; want 10, 0", got, n.Stats().ActiveHolds)
	}
}

// TestHoldCacheOffUnchanged: with MaxResidentHolds 0 the source is never
// read.
func TestHoldCacheOffUnchanged(t *testing.T) {
	r := newHoldRig(t, 0, plantedbugs.Bugs{})
	r.restock("A", 10)
	h := r.hold1("A", "k", 0)
	r.step(&Command{Kind: CmdConfirm, HoldID: h.ID})
	r.now = r.now.Add(time.Hour)
	r.step(nil)
	if r.src.Reads+r.src.Scans != 0 || r.n.hc.on {
		t.Fatalf("cache off read the source %d times", r.src.Reads+r.src.Scans)
	}
}

// TestHoldCacheIDCollision: a new hold whose id (same millisecond, same
// random bits) is a stored hold's that is not resident gets another id,
// within one run (the hold was dropped) and after a restart whose random
// stream starts again; the stored hold is untouched. A floor that skipped
// the source read for such ids would overwrite the stored hold.
func TestHoldCacheIDCollision(t *testing.T) {
	seq := []uint64{5, 6, 5, 7, 5, 6, 7, 8}
	next := 0
	r := newHoldRig(t, 1, plantedbugs.Bugs{})
	rnd := func() uint64 { v := seq[next%len(seq)]; next++; return v }
	r.cfg.Rand = rnd
	n, err := NewNode(r.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.n = n
	r.restock("A", 10)
	h1 := r.hold1("A", "", time.Minute) // rnd 5
	h2 := r.hold1("A", "", time.Minute) // rnd 6: h1 is dropped
	if resident := r.n.holds.get(h1.ID) != nil; resident {
		t.Fatal("h1 still resident: the test needs it dropped")
	}
	h3 := r.hold1("A", "", time.Minute) // rnd 5 again, same millisecond: taken, then 7
	if h3.ID == h1.ID || h3.ID == h2.ID {
		t.Fatalf("new hold took the id of a stored one: %s", h3.ID)
	}
	if got, ok := r.n.Hold(h1.ID); !ok || got.Expires != h1.Expires || got.State != Held {
		t.Fatalf("stored hold %s changed: %+v", h1.ID, got)
	}
	// A restart at the same millisecond with the random stream from its
	// start: the first id (rnd 5) is h1's.
	next = 0
	st := &State{Seq: r.n.Seq(), HeldHolds: r.src.Held(), NewestHold: r.src.Newest(), NewestHoldKnown: true}
	for _, s := range r.n.SKUs() {
		for _, rec := range r.n.peek(s).list {
			st.Rows = append(st.Rows, rec.Row.Clone())
		}
	}
	if r.n, err = NewNode(r.cfg, st); err != nil {
		t.Fatal(err)
	}
	h4 := r.hold1("A", "", time.Minute)
	if h4.ID == h1.ID || h4.ID == h2.ID || h4.ID == h3.ID {
		t.Fatalf("after a restart a new hold took the id of a stored one: %s", h4.ID)
	}
	if r.src.Len() != 4 {
		t.Fatalf("source has %d holds, want 4", r.src.Len())
	}
}

// discardHolds is a HoldSource that keeps nothing (a store elsewhere): the
// footprint test measures the node's memory alone.
type discardHolds struct{}

func (discardHolds) StoredHold(string) (Hold, bool, error)      { return Hold{}, false, nil }
func (discardHolds) StoredIdem(string) (IdemEntry, bool, error) { return IdemEntry{}, false, nil }
func (discardHolds) DueHolds(_ time.Time, _ int, dst []Deadline) ([]Deadline, time.Time, error) {
	return dst, time.Time{}, nil
}
func (discardHolds) DueIdem(_ time.Time, _ int, dst []Deadline) ([]Deadline, time.Time, error) {
	return dst, time.Time{}, nil
}

// TestHoldCacheFootprint: with the hold cache at 1,000, 50,000 live holds
// with idempotency keys cost the node at most maxBytesPerCachedHold each
// (the 64 B per active hold outside the cache); without the cache
// the same holds cost about 340 B each (TestMemoryFootprint).
func TestHoldCacheFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("places 50k holds")
	}
	const holds = 50_000
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1, Holds: discardHolds{}, MaxResidentHolds: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	step := func(c *Command) {
		if err := n.Step(Input{Now: now, Cmd: c}); err != nil {
			t.Fatal(err)
		}
		rd := advanced(n)
		if len(rd.Reply) != 1 || rd.Reply[0].Err != nil {
			t.Fatalf("%s: %+v", c.Kind, rd.Reply)
		}
	}
	step(&Command{Kind: CmdRestock, SKU: "A", Qty: MaxQty})
	// The first holds fill the cache and its ring to their steady size.
	i := 0
	hold := func() {
		i++
		now = now.Add(time.Microsecond)
		step(&Command{Kind: CmdHold, ReqID: uint64(i), TTL: time.Hour, Lines: []Line{{SKU: "A", Qty: 1}},
			IdemKey: fmt.Sprintf("cart-%010d", i), IdemHash: uint64(i)})
	}
	for range 5000 {
		hold()
	}
	before := liveHeap()
	for range holds {
		hold()
	}
	after := liveHeap()
	runtime.KeepAlive(n)
	per := (float64(after) - float64(before)) / holds
	t.Logf("%d more live holds with keys, cache 1,000: %.1f B per hold (%d resident, %d active)", holds, per,
		n.HoldCacheStats().Holds, n.Stats().ActiveHolds)
	if per > maxBytesPerCachedHold {
		t.Errorf("%.1f B per live hold with the hold cache, over the bound of %d", per, maxBytesPerCachedHold)
	}
}

// maxBytesPerCachedHold bounds the node's memory per live hold that is not
// resident (the goal: 64 B).
const maxBytesPerCachedHold = 64
