package escrow

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Bounded SKU residency (issue 23, DESIGN.md "Catalogue scale").
//
// With Config.Rows set and Config.MaxResidentSKUs > 0 the node keeps only
// a working set of SKUs in memory: the stored rows of every other SKU stay
// in the runtime's store, and the node reads them through Config.Rows on
// first touch (a miss), as etcd-raft's core reads its log through
// raft.Storage. A SKU leaves memory (least recently used first) only when
// dropping it loses nothing the store does not have and nothing in flight
// refers to it (evictable): its rows are saved (not dirty, not waiting to
// be broadcast, and the Ready that carried them was Advanced), and it is in
// no pending hold, top-up, top-up candidate set or waitlist.
// What a SKU keeps outside its rows (its demand EWMA, rejection count and
// digest turn) is forgotten with it: an idle SKU's demand has decayed.
//
// Evictions happen only between inputs (the end of Step, Advance), never
// while a command holds *skuState pointers of its lines, so the bound is
// soft: within a step, and while more SKUs than the bound are busy, the
// resident count may exceed it.
//
// Zero MaxResidentSKUs (the default) or a nil Rows: every SKU stays
// resident for the node's life, as before.

// ErrRowSource: the row source failed (or returned rows that fail the
// node's checks). The node stops: every later Step returns this error and
// Ready returns nothing, so a runtime rebuilds from storage rather than
// serve from a partial state.
var ErrRowSource = errors.New("escrow: row source failed")

// RowSource reads the stored rows of the node's region: the ones the
// runtime persisted from Ready.Persist.Rows (own rows and peers' rows).
// Implementations must return rows as of the last Persist applied.
type RowSource interface {
	// SKURows appends to dst the stored rows of sku (any order, at most
	// one per region) and returns it; none when the store has no row of it.
	SKURows(sku string, dst []Row) ([]Row, error)
	// ScanRows calls f with every stored row, in SKU order, until f
	// returns an error (returned as is). f must not keep r. A full scan:
	// used for repairs and whole-catalogue accessors only.
	ScanRows(f func(r *Row) error) error
	// ScanRowsFrom calls f with every stored row of the SKUs after `after`
	// (of every SKU when after is ""), in SKU order, until f returns an
	// error (returned as is). f must not keep r. A range scan: a snapshot
	// in SKU order (snapshot_sku.go) reads one chunk's range per answer
	// and stops it through f.
	ScanRowsFrom(after string, f func(r *Row) error) error
}

// lruLink is one slot's place in the LRU list, and the last Ready that
// carried a row of its SKU (it may be dropped once that Ready is Advanced).
type lruLink struct {
	prev, next int32
	readyNo    uint64
}

const noSlot int32 = -1

// sourceFailure carries a row source error from deep in a step to Step's
// recover: a step that cannot read a SKU cannot finish, and its partial
// changes must never reach a Ready.
type sourceFailure struct{ err error }

type skuCache struct {
	on  bool
	src RowSource
	max int
	// links[i] links the SKU in skuTab slot i into the LRU list of
	// resident SKUs (most recent first, from head); noSlot ends it. Kept
	// beside the slabs so that a node without the cache pays nothing.
	links      []lruLink
	head, tail int32
	free       []*skuState
	resident   int
	readyNo    uint64 // Readies handed out
	advanced   uint64 // Readies advanced
	failed     error
	buf        []Row
	added      int // SKUs made resident since the last eviction pass
	hits, miss uint64
	evictions  uint64
	// onResidency, when set, is told of every SKU made resident or
	// dropped (SetResidencyHook).
	onResidency func(sku string, resident bool)
}

// SetResidencyHook makes the bounded cache call f (on the stepping
// goroutine, inside Step or Advance: keep it cheap, and never call the
// node from it) whenever a SKU becomes resident (true) or is dropped
// (false). A runtime uses it to skip reading ahead the rows of SKUs the
// node holds; the node's state never depends on it. Nothing is called
// while the cache is off.
func (n *Node) SetResidencyHook(f func(sku string, resident bool)) { n.cache.onResidency = f }

// CacheStats are the counters of the bounded SKU cache (zero when off).
type CacheStats struct {
	Hits, Misses, Evictions uint64
	Resident                uint64
}

// CacheStats returns the SKU cache's counters.
func (n *Node) CacheStats() CacheStats {
	if !n.cache.on {
		return CacheStats{Resident: uint64(len(n.skus))}
	}
	return CacheStats{Hits: n.cache.hits, Misses: n.cache.miss, Evictions: n.cache.evictions, Resident: uint64(n.cache.resident)}
}

// Err returns the error that stopped the node (wrapping ErrRowSource), nil
// while it runs.
func (n *Node) Err() error { return n.cache.failed }

func (n *Node) initCache() {
	c := &n.cache
	c.on = n.cfg.Rows != nil && n.cfg.MaxResidentSKUs > 0
	c.src, c.max = n.cfg.Rows, n.cfg.MaxResidentSKUs
	c.head, c.tail = noSlot, noSlot
}

func (n *Node) link(i int32) *lruLink { return &n.cache.links[i] }

// lookup returns the state of sku: resident (a hit), loaded from the row
// source (a miss), or nil when neither has it.
func (n *Node) lookup(name string) *skuState {
	s := n.lastSKU
	if s == nil || (s.sku != name && !n.cfg.bugs.LookupMemoAnyName) {
		s = n.skus[name]
	}
	if s != nil {
		setRef(&n.lastSKU, s) // mostly the same SKU again: no write barrier
	}
	if !n.cache.on {
		return s
	}
	if s != nil {
		n.cache.hits++
		n.touch(s)
		return s
	}
	return n.load(name)
}

// load reads sku's rows from the source and makes it resident; nil when
// the source has none. A failure panics with sourceFailure (see Step).
func (n *Node) load(name string) *skuState {
	c := &n.cache
	rows := n.readRows(name)
	if len(rows) == 0 {
		return nil
	}
	if err := n.checkLoaded(name, rows); err != nil {
		panic(sourceFailure{fmt.Errorf("%w: rows of %q: %w", ErrRowSource, name, err)})
	}
	c.miss++
	s := n.newSKU(name)
	for i := range rows {
		r := rows[i].Clone()
		rec := s.rec(r.Region)
		rec.Row = r
		if r.Region == n.cfg.Region {
			s.own = rec
		} else {
			p := n.peer(r.Region)
			p.maxRow = max(p.maxRow, r.Seq)
		}
	}
	if a := s.availableOf(n.cfg.Region); a < 0 {
		panic(sourceFailure{fmt.Errorf("%w: stored state has available(%s, %s) = %d", ErrRowSource, n.cfg.Region, name, a)})
	}
	return s
}

// checkLoaded holds the checks a restore made of every stored row, made
// at read time instead.
func (n *Node) checkLoaded(name string, rows []Row) error {
	if err := ValidStockKey(name); err != nil {
		return err
	}
	for i := range rows {
		r := &rows[i]
		if r.SKU != name {
			return fmt.Errorf("asked for %q, got a row of %q", name, r.SKU)
		}
		if err := ValidRegion(r.Region); err != nil {
			return err
		}
		for j := range i {
			if rows[j].Region == r.Region {
				return fmt.Errorf("two rows of region %s", r.Region)
			}
		}
		if r.Region == n.cfg.Region && r.Seq > n.seq {
			return errorf(CodeInvariant, "own row %s has seq %d beyond the stored sequence %d", r.SKU, r.Seq, n.seq)
		}
	}
	return nil
}

// newSKU allocates a resident state for name (a free slot first).
func (n *Node) newSKU(name string) *skuState {
	var s *skuState
	c := &n.cache
	if k := len(c.free); k > 0 {
		s = c.free[k-1]
		c.free = c.free[:k-1]
	} else {
		s = n.skuTab.alloc()
	}
	if err := ValidStockKey(name); err != nil {
		// Every caller checked the name; a one-line hold of a resident SKU
		// relies on it (residentOne).
		panic("escrow: invariant: state for an invalid stock key: " + err.Detail)
	}
	s.sku = name
	n.skus[name] = s
	if c.on {
		for int(s.slot) >= len(c.links) {
			c.links = append(c.links, lruLink{prev: noSlot, next: noSlot})
		}
		*n.link(s.slot) = lruLink{prev: noSlot, next: noSlot}
		c.resident++
		c.added++
		n.touch(s)
		if c.onResidency != nil {
			c.onResidency(name, true)
		}
	}
	return s
}

// touch moves s to the front of the LRU list (linking it if new).
func (n *Node) touch(s *skuState) {
	c := &n.cache
	if c.head == s.slot {
		return
	}
	n.unlink(s.slot)
	l := n.link(s.slot)
	l.next = c.head
	if c.head != noSlot {
		n.link(c.head).prev = s.slot
	}
	c.head = s.slot
	if c.tail == noSlot {
		c.tail = s.slot
	}
}

func (n *Node) unlink(i int32) {
	c := &n.cache
	l := n.link(i)
	if l.prev != noSlot {
		n.link(l.prev).next = l.next
	} else if c.head == i {
		c.head = l.next
	}
	if l.next != noSlot {
		n.link(l.next).prev = l.prev
	} else if c.tail == i {
		c.tail = l.prev
	}
	l.prev, l.next = noSlot, noSlot
}

// evictable reports whether dropping s loses nothing: see the file comment.
func (n *Node) evictable(s *skuState) bool {
	if n.link(s.slot).readyNo > n.cache.advanced && !n.cfg.bugs.EvictDirty {
		return false // its rows are in a Ready not yet persisted
	}
	for _, r := range s.list {
		if (r.dirty || r.bcast) && !n.cfg.bugs.EvictDirty {
			return false
		}
	}
	// s.hot (a digest queue) does not pin s: a queue entry of a dropped
	// SKU is skipped (its slot is empty) or names the slot's next SKU,
	// which a digest then carries once (digest_hot.go); a change of a
	// dropped SKU misses its digest, not its rows broadcast.
	if s.topUp != 0 || s.waiting > 0 {
		return false
	}
	if _, low := n.lowSKUs[s.sku]; low {
		return false
	}
	if w := n.wait.perSKU[s.sku]; w != nil && w.entries > 0 {
		return false
	}
	return true
}

// evict drops least recently used evictable SKUs while more than the
// bound are resident. A SKU it finds busy goes to the front of the list,
// so the next pass starts past it; a pass looks at evictBudget SKUs plus
// two per SKU made resident since the last one, so a working set of busy SKUs larger than the bound
// costs each step a few looks, not a walk of the whole list.
func (n *Node) evict() {
	c := &n.cache
	if !c.on || c.failed != nil || c.resident <= c.max {
		return
	}
	budget := evictBudget + 2*c.added
	c.added = 0
	for i := c.tail; i != noSlot && c.resident > c.max && budget > 0; budget-- {
		s := n.skuTab.at(int(i))
		prev := n.link(i).prev
		if n.evictable(s) {
			n.drop(s)
		} else {
			n.touch(s)
		}
		i = prev
	}
}

// evictBudget is the fewest SKUs one eviction pass looks at.
const evictBudget = 16

// drop frees s's slot. It panics if s is not evictable: dropping a SKU
// with unsaved rows or in-flight references loses units.
func (n *Node) drop(s *skuState) {
	if !n.evictable(s) {
		panic("escrow: drop of a SKU that is not evictable: " + s.sku)
	}
	c := &n.cache
	if s.own == nil && len(s.list) == 0 && n.trust.learned > 0 {
		// Learned from a digest and never given a row: the store has
		// nothing of it, so it no longer counts against MaxPeerSKUs.
		n.trust.learned--
		n.stats.PeerSKUs = n.trust.learned
	}
	if n.cfg.bugs.EvictDirty {
		// The planted bug drops the unsaved changes with the SKU.
		keep := func(r *rowRec) bool { return r.sku == s }
		n.dirtyRows = slices.DeleteFunc(n.dirtyRows, keep)
		n.ownChanged = slices.DeleteFunc(n.ownChanged, keep)
	}
	n.unlink(s.slot)
	*n.link(s.slot) = lruLink{prev: noSlot, next: noSlot}
	delete(n.skus, s.sku)
	if n.lastSKU == s {
		n.lastSKU = nil
	}
	if c.onResidency != nil {
		c.onResidency(s.sku, false)
	}
	*s = skuState{slot: s.slot}
	c.free = append(c.free, s)
	c.resident--
	c.evictions++
}

// stored reports whether the source has rows of sku (a digest naming a
// SKU that is not resident must not learn it as new).
func (n *Node) stored(name string) bool { return len(n.readRows(name)) > 0 }

// readRows reads sku's stored rows into the cache's reused buffer (valid
// until the next read). A failure panics with sourceFailure (see Step).
func (n *Node) readRows(name string) []Row {
	c := &n.cache
	rows, err := c.src.SKURows(name, c.buf[:0])
	if err != nil {
		panic(sourceFailure{fmt.Errorf("%w: reading the rows of %q: %w", ErrRowSource, name, err)})
	}
	c.buf = rows[:0]
	return rows
}

// recoverSource turns a sourceFailure panic into the node's stop error.
func (n *Node) recoverSource(err *error) {
	r := recover()
	if r == nil {
		return
	}
	f, ok := r.(sourceFailure)
	if !ok {
		panic(r)
	}
	n.stopOn(f.err)
	*err = f.err
}

func (n *Node) stopOn(err error) {
	if n.cache.failed == nil {
		n.cache.failed = err
	}
}

// peekRows returns the rows of a SKU for a read-only accessor without
// making it resident: the resident rows, or the source's (nil on a
// failure, which stops the node).
func (n *Node) peekRows(name string) (*skuState, []Row) {
	if s := n.skus[name]; s != nil || !n.cache.on {
		return s, nil
	}
	rows, err := n.cache.src.SKURows(name, nil)
	if err != nil {
		n.stopOn(fmt.Errorf("%w: reading the rows of %q: %w", ErrRowSource, name, err))
		return nil, nil
	}
	return nil, rows
}

// scanCold calls f for the stored rows of every SKU that is not resident
// (a full scan of the source); errors stop the node.
func (n *Node) scanCold(f func(r *Row)) {
	if !n.cache.on {
		return
	}
	err := n.cache.src.ScanRows(func(r *Row) error {
		if n.skus[r.SKU] == nil {
			f(r)
		}
		return nil
	})
	if err != nil {
		n.stopOn(fmt.Errorf("%w: scanning rows: %w", ErrRowSource, err))
	}
}

// checkResidency checks the cache's bookkeeping (tests): the LRU list and
// the map hold the same SKUs, the count matches, free slots are empty,
// and after an eviction pass no evictable SKU is left over the bound.
func (n *Node) checkResidency() error {
	c := &n.cache
	if !c.on {
		return nil
	}
	seen := 0
	prev := noSlot
	for i := c.head; i != noSlot; i = n.link(i).next {
		s := n.skuTab.at(int(i))
		if n.skus[s.sku] != s || s.slot != i {
			return fmt.Errorf("LRU entry %q (slot %d) is not the map's", s.sku, i)
		}
		if n.link(i).prev != prev {
			return fmt.Errorf("LRU links broken at %q", s.sku)
		}
		prev = i
		if seen++; seen > len(n.skus) {
			return fmt.Errorf("LRU list longer than the map (%d)", len(n.skus))
		}
	}
	if prev != c.tail {
		return fmt.Errorf("LRU tail is not the last entry")
	}
	if seen != len(n.skus) || seen != c.resident {
		return fmt.Errorf("resident %d, map %d, LRU %d", c.resident, len(n.skus), seen)
	}
	for _, s := range c.free {
		if s.sku != "" || s.list != nil {
			return fmt.Errorf("free slot holds %q", s.sku)
		}
	}
	if c.resident+len(c.free) != n.skuTab.len() {
		return fmt.Errorf("resident %d + free %d != slots %d", c.resident, len(c.free), n.skuTab.len())
	}
	if c.resident > c.max && c.resident <= evictBudget {
		// A pass looked at every SKU: none left over the bound may be
		// evictable (with more resident, a pass is bounded).
		for i := c.head; i != noSlot; i = n.link(i).next {
			if s := n.skuTab.at(int(i)); n.evictable(s) && c.readyNo == c.advanced {
				return fmt.Errorf("%d resident over a bound of %d while %q is evictable (LRU from head: %s)", c.resident, c.max, s.sku, n.lruNames())
			}
		}
	}
	return nil
}

// MemRows is an in-memory RowSource for tests and the simulator: the
// runtime applies each persisted batch's rows to it (Put).
type MemRows struct {
	m map[string][]Row
	// Fail, when set, is returned by every read (tests of a failing store).
	Fail error
	// Reads counts SKURows calls.
	Reads uint64
}

// NewMemRows returns an empty MemRows holding a copy of rows.
func NewMemRows(rows ...Row) *MemRows {
	m := &MemRows{m: make(map[string][]Row)}
	m.Put(rows...)
	return m
}

// Put stores copies of rows, replacing the stored row of each (SKU, region).
func (m *MemRows) Put(rows ...Row) {
	for i := range rows {
		r := rows[i].Clone()
		list := m.m[r.SKU]
		j := slices.IndexFunc(list, func(x Row) bool { return x.Region == r.Region })
		if j >= 0 {
			list[j] = r
		} else {
			m.m[r.SKU] = append(list, r)
		}
	}
}

// Len returns the number of SKUs stored.
func (m *MemRows) Len() int { return len(m.m) }

// SKURows implements RowSource.
func (m *MemRows) SKURows(sku string, dst []Row) ([]Row, error) {
	m.Reads++
	if m.Fail != nil {
		return dst, m.Fail
	}
	for _, r := range m.m[sku] {
		dst = append(dst, r.Clone())
	}
	return dst, nil
}

// ScanRows implements RowSource.
func (m *MemRows) ScanRows(f func(r *Row) error) error { return m.ScanRowsFrom("", f) }

// ScanRowsFrom implements RowSource (a sort of the SKUs per call: for
// tests and the simulator).
func (m *MemRows) ScanRowsFrom(after string, f func(r *Row) error) error {
	if m.Fail != nil {
		return m.Fail
	}
	skus := make([]string, 0, len(m.m))
	for k := range m.m {
		if k > after {
			skus = append(skus, k)
		}
	}
	slices.Sort(skus)
	for _, k := range skus {
		list := slices.Clone(m.m[k])
		slices.SortFunc(list, func(a, b Row) int { return strings.Compare(a.Region, b.Region) })
		for i := range list {
			if err := f(&list[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// MaxResidentSKUsLimit bounds Config.MaxResidentSKUs (a larger cache is
// the unbounded node: use 0).
const MaxResidentSKUsLimit = 100_000_000

// peek returns the state of sku for a read-only accessor called outside
// Step: the resident one, or a throwaway one built from the source and
// not made resident (nil if none, or on a failure, which stops the node).
func (n *Node) peek(name string) *skuState {
	s, cold := n.peekRows(name)
	if s != nil || len(cold) == 0 {
		return s
	}
	t := &skuState{sku: name}
	for i := range cold {
		rec := t.rec(cold[i].Region)
		rec.Row = cold[i]
		if cold[i].Region == n.cfg.Region {
			t.own = rec
		}
	}
	return t
}

func (n *Node) lruNames() string {
	var b []string
	for i := n.cache.head; i != noSlot; i = n.link(i).next {
		s := n.skuTab.at(int(i))
		b = append(b, fmt.Sprintf("%s(ev=%v hot=%d top=%d wait=%d)", s.sku, n.evictable(s), s.hot, s.topUp, s.waiting))
	}
	return strings.Join(b, " ")
}
