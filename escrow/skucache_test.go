package escrow

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// memStore as a RowSource: the property test's nodes with a bounded cache
// read their rows back from what they persisted.
func (s *memStore) SKURows(sku string, dst []Row) ([]Row, error) {
	for k, b := range s.rows {
		if k[0] != sku {
			continue
		}
		r, err := DecodeRow(b)
		if err != nil {
			return dst, err
		}
		dst = append(dst, r)
	}
	return dst, nil
}

func (s *memStore) ScanRows(f func(r *Row) error) error { return s.ScanRowsFrom("", f) }

func (s *memStore) ScanRowsFrom(after string, f func(r *Row) error) error {
	keys := make([][2]string, 0, len(s.rows))
	for k := range s.rows {
		if k[0] > after {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	s.ranges = append(s.ranges, 0)
	for _, k := range keys {
		r, err := DecodeRow(s.rows[k])
		if err != nil {
			return err
		}
		s.ranges[len(s.ranges)-1]++
		if err := f(&r); err != nil {
			return err
		}
	}
	return nil
}

// TestSKUCacheProperty runs the property test (3–7 regions, lossy
// reordering network, crashes and restarts) with every node keeping at
// most 2, then 5, of the 5 SKUs resident: the same safety, model,
// convergence and liveness checks, and checkResidency after every step.
// Repairs go as snapshots in SKU order of two rows an answer (several
// chunks), which must happen.
func TestSKUCacheProperty(t *testing.T) {
	steps, seeds := 1500, propSeeds
	if testing.Short() {
		steps, seeds = 400, propSeeds[:6]
	}
	for _, bound := range []int{2, 5} {
		var miss, evict, chunks, snaps uint64
		for _, seed := range seeds {
			w := newPWorldCache(seed, plantedbugs.Bugs{}, bound)
			if err := w.run(steps); err != nil {
				t.Fatalf("bound %d, seed %d: %v\nlast events:\n%s", bound, seed, err, w.trace())
			}
			for _, pn := range w.nodes {
				cs := pn.n.CacheStats()
				miss += cs.Misses
				evict += cs.Evictions
				st := pn.n.Stats()
				chunks += st.SnapshotChunksReceived
				snaps += st.SnapshotsDone
			}
		}
		t.Logf("bound %d: %d seeds, %d misses, %d evictions, %d snapshots in SKU order done, %d chunks",
			bound, len(seeds), miss, evict, snaps, chunks)
		if snaps == 0 || chunks <= snaps {
			t.Fatalf("bound %d: %d snapshots in SKU order done in %d chunks: the path was not exercised", bound, snaps, chunks)
		}
		if bound == 2 && (miss == 0 || evict == 0) {
			t.Fatalf("bound %d: misses %d, evictions %d: the cache never worked", bound, miss, evict)
		}
	}
}

// TestSKUCachePlantedEvictDirty: dropping a SKU before its rows are saved
// (the planted EvictDirty) loses changes, and the property test catches it.
func TestSKUCachePlantedEvictDirty(t *testing.T) {
	for _, seed := range propSeeds[:8] {
		w := newPWorldCache(seed, plantedbugs.Bugs{EvictDirty: true}, 2)
		if err := w.run(400); err != nil {
			t.Logf("caught on seed %d: %v", seed, err)
			return
		}
	}
	t.Fatal("EvictDirty not caught on seeds 1-8")
}

// cacheRig drives one node whose Persist rows go to a MemRows (the row
// source when bounded), replies collected in order.
type cacheRig struct {
	t       *testing.T
	n       *Node
	rows    *MemRows
	now     time.Time
	replies []string
	hold    bool // keep Readies unadvanced
	noCheck bool // no checkResidency after each step
	pending []Ready
}

func newCacheRig(t *testing.T, bound int) *cacheRig {
	return newCacheRigBugs(t, bound, plantedbugs.Bugs{})
}

func newCacheRigBugs(t *testing.T, bound int, bugs plantedbugs.Bugs) *cacheRig {
	rows := NewMemRows()
	cfg := Config{Region: "eu", DigestInterval: -1, TopUpHorizon: -1, MaxLifetime: time.Minute,
		DefaultTTL: 10 * time.Second, HoldRetain: 20 * time.Second}
	cfg.Rand = rand.New(rand.NewPCG(7, 1)).Uint64
	if bound > 0 {
		cfg.Rows, cfg.MaxResidentSKUs = rows, bound
		cfg.bugs = bugs
	}
	n, err := NewNode(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &cacheRig{t: t, n: n, rows: rows, now: t0}
}

func (r *cacheRig) step(c *Command) error {
	if err := r.n.Step(Input{Now: r.now, Cmd: c}); err != nil {
		return err
	}
	if err := r.n.checkResidency(); err != nil && !r.hold && !r.noCheck {
		r.t.Fatalf("residency: %v", err)
	}
	for r.n.HasReady() {
		rd := r.n.Ready()
		if r.hold {
			r.pending = append(r.pending, rd)
			return nil
		}
		r.finish(rd)
	}
	return nil
}

func (r *cacheRig) finish(rd Ready) {
	r.rows.Put(rd.Persist.Rows...)
	for _, rep := range rd.Reply {
		r.replies = append(r.replies, replyString(rep))
	}
	r.n.Advance()
}

func replyString(rep Reply) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s applied=%d replayed=%v", rep.ReqID, rep.Kind, rep.Applied, rep.Replayed)
	if rep.Err != nil {
		fmt.Fprintf(&b, " err=%s", rep.Err.Code)
	}
	if rep.Hold != nil {
		fmt.Fprintf(&b, " hold=%s %s %v %v", rep.Hold.ID, rep.Hold.State, rep.Hold.Lines, rep.Hold.Expires.Unix())
	}
	if rep.Stock != nil {
		// A row's age is when this node last changed or merged it, not
		// stored: it reads 0 after a reload, as after a restart.
		fmt.Fprintf(&b, " stock=%+v", *rep.Stock)
	}
	return ageRE.ReplaceAllString(b.String(), "Age:-")
}

// cacheCommands returns a fixed random script over nsku SKUs.
func cacheCommands(seed uint64, nsku, k int) []Command {
	r := rand.New(rand.NewPCG(seed, 3))
	sku := func() string { return fmt.Sprintf("s%03d", r.IntN(nsku)) }
	var out []Command
	held := 0
	for i := range k {
		c := Command{ReqID: uint64(i + 1)}
		switch x := r.IntN(100); {
		case x < 20:
			c.Kind, c.SKU, c.Qty = CmdRestock, sku(), uint64(1+r.IntN(5))
		case x < 55:
			c.Kind = CmdHold
			for range 1 + r.IntN(3) {
				c.Lines = append(c.Lines, Line{SKU: sku(), Qty: uint64(1 + r.IntN(2))})
			}
			held++
		case x < 70:
			c.Kind, c.HoldID = CmdConfirm, fmt.Sprintf("eu-%d", r.IntN(held+1))
		case x < 82:
			c.Kind, c.HoldID = CmdRelease, fmt.Sprintf("eu-%d", r.IntN(held+1))
		case x < 88:
			c.Kind, c.SKU, c.Qty = CmdWriteOff, sku(), uint64(1+r.IntN(3))
		case x < 94:
			c.Kind, c.SKU = CmdStock, sku()
		default:
			c.Kind = 0 // time passes
		}
		out = append(out, c)
	}
	return out
}

// runScript runs cmds; hold ids in the script are indexes into the holds
// granted so far, so both rigs name the same holds.
func (r *cacheRig) runScript(cmds []Command) {
	var ids []string
	for i := range cmds {
		c := cmds[i]
		if c.Kind == 0 {
			r.now = r.now.Add(3 * time.Second)
			if err := r.step(nil); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if c.HoldID != "" {
			var k int
			fmt.Sscanf(c.HoldID, "eu-%d", &k)
			if k >= len(ids) {
				continue
			}
			c.HoldID = ids[k]
		}
		before := len(r.replies)
		if err := r.step(&c); err != nil {
			r.t.Fatal(err)
		}
		if c.Kind == CmdHold && len(r.replies) > before && strings.Contains(r.replies[len(r.replies)-1], " HELD ") {
			f := strings.Fields(r.replies[len(r.replies)-1])
			for _, x := range f {
				if strings.HasPrefix(x, "hold=") {
					ids = append(ids, strings.TrimPrefix(x, "hold="))
				}
			}
		}
		r.now = r.now.Add(100 * time.Millisecond)
	}
}

var ageRE = regexp.MustCompile(`Age:[^ }]*`)

// TestSKUCacheSameReplies: 200 SKUs behind a cache of 4 answer a random
// script exactly as the unbounded node does, reading and dropping SKUs all
// along (seed printed).
func TestSKUCacheSameReplies(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		cmds := cacheCommands(seed, 200, 3000)
		base, bounded := newCacheRig(t, 0), newCacheRig(t, 4)
		base.runScript(cmds)
		bounded.runScript(cmds)
		if !reflect.DeepEqual(base.replies, bounded.replies) {
			for i := range min(len(base.replies), len(bounded.replies)) {
				if base.replies[i] != bounded.replies[i] {
					t.Fatalf("seed %d: reply %d differs:\nunbounded %s\nbounded   %s", seed, i, base.replies[i], bounded.replies[i])
				}
			}
			t.Fatalf("seed %d: %d replies vs %d", seed, len(base.replies), len(bounded.replies))
		}
		cs := bounded.n.CacheStats()
		t.Logf("seed %d: %d replies; hits %d misses %d evictions %d resident %d", seed, len(base.replies), cs.Hits, cs.Misses, cs.Evictions, cs.Resident)
		if cs.Misses < 100 || cs.Evictions < 100 || cs.Resident > 4+MaxLines {
			t.Fatalf("seed %d: cache barely used or over its bound: %+v", seed, cs)
		}
		if !reflect.DeepEqual(base.n.Rows(), bounded.n.Rows()) {
			t.Fatalf("seed %d: rows differ", seed)
		}
	}
}

// TestSKUCacheSameRepliesSmall: 5 SKUs behind a cache of 2, then of 5,
// answer a random script exactly as the unbounded node does, with
// checkResidency after every step (seeds printed).
func TestSKUCacheSameRepliesSmall(t *testing.T) {
	for _, bound := range []int{2, 5} {
		for _, seed := range []uint64{11, 12, 13, 14} {
			cmds := cacheCommands(seed, 5, 1500)
			base, bounded := newCacheRig(t, 0), newCacheRig(t, bound)
			base.runScript(cmds)
			bounded.runScript(cmds)
			for i := range min(len(base.replies), len(bounded.replies)) {
				if base.replies[i] != bounded.replies[i] {
					t.Fatalf("bound %d seed %d: reply %d differs:\nunbounded %s\nbounded   %s", bound, seed, i, base.replies[i], bounded.replies[i])
				}
			}
			if len(base.replies) != len(bounded.replies) {
				t.Fatalf("bound %d seed %d: %d replies vs %d", bound, seed, len(base.replies), len(bounded.replies))
			}
			if cs := bounded.n.CacheStats(); bound == 2 && (cs.Misses == 0 || cs.Evictions == 0) {
				t.Fatalf("bound %d seed %d: the cache was not used: %+v", bound, seed, cs)
			}
		}
	}
}

// TestSKUCacheSameRepliesCatchesEvictDirty: the reply comparison fails
// when the planted EvictDirty drops SKUs with unsaved rows.
func TestSKUCacheSameRepliesCatchesEvictDirty(t *testing.T) {
	cmds := cacheCommands(11, 5, 1500)
	base, bounded := newCacheRig(t, 0), newCacheRigBugs(t, 2, plantedbugs.Bugs{EvictDirty: true})
	bounded.noCheck = true // compare replies only
	base.runScript(cmds)
	bounded.runScript(cmds)
	if reflect.DeepEqual(base.replies, bounded.replies) {
		t.Fatal("EvictDirty gave the unbounded node's replies")
	}
}

// TestSKUCacheSourceError: a failing source stops the node with
// ErrRowSource; nothing of the failed step is handed out, and later steps
// refuse too.
func TestSKUCacheSourceError(t *testing.T) {
	r := newCacheRig(t, 1)
	for _, s := range []string{"a", "b", "c"} {
		if err := r.step(&Command{Kind: CmdRestock, SKU: s, Qty: 5, ReqID: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if r.n.CacheStats().Resident != 1 {
		t.Fatalf("resident %d, want 1", r.n.CacheStats().Resident)
	}
	r.rows.Fail = errors.New("disk on fire")
	err := r.n.Step(Input{Now: r.now, Cmd: &Command{Kind: CmdHold, ReqID: 2, Lines: []Line{{SKU: "a", Qty: 1}}}})
	if !errors.Is(err, ErrRowSource) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("step with a failing source: %v, want ErrRowSource", err)
	}
	if r.n.HasReady() || !reflect.DeepEqual(r.n.Ready(), Ready{}) {
		t.Fatal("a failed step's output was handed out")
	}
	r.rows.Fail = nil
	if err := r.n.Step(Input{Now: r.now, Cmd: &Command{Kind: CmdStock, ReqID: 3, SKU: "c"}}); !errors.Is(err, ErrRowSource) {
		t.Fatalf("step after the failure: %v, want the stop error", err)
	}
	if !errors.Is(r.n.Err(), ErrRowSource) {
		t.Fatalf("Err() = %v", r.n.Err())
	}
}

// TestSKUCacheEvictionWaitsForAdvance: a SKU whose rows are in a Ready not
// yet Advanced stays resident (over the bound) until the Advance.
func TestSKUCacheEvictionWaitsForAdvance(t *testing.T) {
	r := newCacheRig(t, 1)
	r.hold = true
	for i, s := range []string{"a", "b", "c"} {
		if err := r.step(&Command{Kind: CmdRestock, SKU: s, Qty: 5, ReqID: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.n.CacheStats(); got.Resident != 3 || got.Evictions != 0 {
		t.Fatalf("before Advance: %+v, want 3 resident and no eviction", got)
	}
	for _, rd := range r.pending {
		r.rows.Put(rd.Persist.Rows...)
		r.n.Advance()
	}
	if got := r.n.CacheStats(); got.Resident != 1 || got.Evictions != 2 {
		t.Fatalf("after Advance: %+v, want 1 resident, 2 evictions", got)
	}
	if err := r.n.checkResidency(); err != nil {
		t.Fatal(err)
	}
	// The dropped SKUs read back with their units.
	for _, s := range []string{"a", "b", "c"} {
		if got := r.n.Available(s); got != 5 {
			t.Fatalf("available %s = %d after eviction, want 5", s, got)
		}
	}
}

// TestSKUCacheDropPanics: drop asserts that a SKU is evictable.
func TestSKUCacheDropPanics(t *testing.T) {
	r := newCacheRig(t, 1)
	r.hold = true
	if err := r.step(&Command{Kind: CmdRestock, SKU: "a", Qty: 5, ReqID: 1}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("drop of a SKU in an unadvanced Ready did not panic")
		}
	}()
	r.n.drop(r.n.skus["a"])
}

func TestSKUCacheConfig(t *testing.T) {
	if _, err := NewNode(Config{Region: "eu", MaxResidentSKUs: 4}, nil); err == nil {
		t.Fatal("a bound without a row source was accepted")
	}
	if _, err := NewNode(Config{Region: "eu", MaxResidentSKUs: -1, Rows: NewMemRows()}, nil); err == nil {
		t.Fatal("a negative bound was accepted")
	}
	st := &State{Rows: []Row{{SKU: "a", Region: "eu", Minted: 1, Seq: 1}}, Seq: 1}
	if _, err := NewNode(Config{Region: "eu", MaxResidentSKUs: 4, Rows: NewMemRows()}, st); err == nil {
		t.Fatal("a restored state with rows and a row source was accepted")
	}
}

// TestSKUCacheOneReadPerNewSKU: a restock or recount of a SKU the source
// does not have reads the source once, not once to check and again to
// create it (which doubled the cost of loading a catalogue with the cache
// on). Planted bug: restock or recount creating the SKU with n.sku after
// their lookup fails with 2 reads.
func TestSKUCacheOneReadPerNewSKU(t *testing.T) {
	r := newCacheRig(t, 4)
	for i, c := range []Command{
		{Kind: CmdRestock, SKU: "new-restock", Qty: 5},
		{Kind: CmdRecount, SKU: "new-recount", OnHand: 7, AsOf: t0.Add(-time.Hour)},
	} {
		c.ReqID = uint64(i + 1)
		before := r.rows.Reads
		if err := r.step(&c); err != nil {
			t.Fatal(err)
		}
		if got := r.rows.Reads - before; got != 1 {
			t.Errorf("%s of a new SKU read the source %d times, want 1 (replies %q)", c.Kind, got, r.replies)
		}
		if rows, _ := r.rows.SKURows(c.SKU, nil); len(rows) != 1 {
			t.Errorf("%s of a new SKU persisted %d rows, want 1 (replies %q)", c.Kind, len(rows), r.replies)
		}
	}
}

// TestSKUCacheOneReadPerPeerSKU: a SKU first named by a peer's rows is read
// from the source once (learnSKU creates it after its own lookup, not
// through a second one), and the peer's row is kept.
func TestSKUCacheOneReadPerPeerSKU(t *testing.T) {
	rows := NewMemRows()
	cfg := Config{Region: "eu", Members: []string{"eu", "us"}, DigestInterval: -1, TopUpHorizon: -1}
	cfg.Rand = rand.New(rand.NewPCG(7, 1)).Uint64
	cfg.Rows, cfg.MaxResidentSKUs = rows, 4
	n, err := NewNode(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := Message{Type: MsgRows, From: "us", PrevSeq: 0, Seq: 1,
		Rows: []Row{{SKU: "new-peer", Region: "us", Seq: 1, Minted: 5}}}
	before := rows.Reads
	if err := n.Step(Input{Now: t0, Msg: &msg}); err != nil {
		t.Fatal(err)
	}
	if got := rows.Reads - before; got != 1 {
		t.Errorf("a peer's row of a new SKU read the source %d times, want 1", got)
	}
	for n.HasReady() {
		rd := n.Ready()
		rows.Put(rd.Persist.Rows...)
		n.Advance()
	}
	if got, _ := rows.SKURows("new-peer", nil); len(got) != 1 || got[0].Region != "us" || got[0].Minted != 5 {
		t.Errorf("stored rows of new-peer: %+v, want the peer's row", got)
	}
}
