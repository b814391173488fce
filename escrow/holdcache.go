package escrow

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Bounded hold residency (issue 23: memory per active hold).
//
// With Config.Holds set and Config.MaxResidentHolds > 0 the node keeps
// only a working set of holds and idempotency keys in memory: the rest stay
// in the runtime's store, and the node reads one through Config.Holds when
// a command names it (a miss), as the SKU cache reads rows (skucache.go).
// The in-memory expiry heaps are not kept: a HELD hold or a key is found
// when its deadline comes through the store's own expiry indexes (the x/
// and j/ entries a region store keeps exact with Persist.HoldsUnindexed
// and IdemUnindexed), so a hold that is not resident costs no memory.
//
// Eviction: a hold (or key) leaves memory only when the store has it as
// the node does: not dirty, and the last Ready that carried it Advanced.
// Holds are kept in a FIFO ring in the order of their last write (a
// Ready carrying a hold appends it again; the older entry goes stale), so
// eviction drops the holds written longest ago first. Dropping a hold
// that is not evictable panics (dropHold): its change would be lost.
//
// Expiry: sweepHolds asks the source for stored HELD holds whose deadline
// has come (at most MaxSweepPerTick per tick) and expires each one that is
// still HELD and past its deadline as the node sees it (an entry the node
// already ended, or moved with an extend, waits for its Ready to reach
// the store and is skipped). The scan runs only when a deadline is due:
// the source says where the next stored deadline is, and each Advance
// lowers that mark to the earliest deadline the Ready it ends carried to
// the store. Keys go the same way (sweepIdem).
//
// Retention: terminal holds are not retired one by one (there is no
// in-memory retention heap either); the store keeps them and prunes them
// (a region store's hold_retain window), and the node treats a terminal
// hold past Config.HoldRetain as gone, as the unbounded node would have
// retired it: not found, for commands and idempotent retries alike.
// Persist.DeletedHolds is therefore always empty with the cache on.
//
// What stays exact only over resident holds, and why that is right:
//   - ForEachHold visits resident holds only (a test accessor);
//   - a new hold id (ms time + 40 random bits) is checked against the
//     resident holds, and against the source only when its millisecond
//     is not past every hold the source may have that is not resident
//     (idFloor: the newest stored id at start, State.NewestHold, then
//     each hold dropped), so that a new hold normally costs no read;
//   - MaxHolds counts HELD holds (Stats.ActiveHolds, from
//     State.HeldHolds at restart), not resident ones;
//   - the routed-key FIFO that bounds MaxRouted (homes.go) starts empty
//     after a restart: routed keys stored before it still expire by
//     IdemTTL, so the bound is soft across restarts;
//   - a restart does not move the node's clock to the latest stored hold
//     time (restore does that from every hold when the cache is off):
//     reading a hold moves it past that hold's times instead (holdOf), so
//     no hold's change is dated before its last one.
//
// A source error stops the node as a row source error does (ErrRowSource).

// HoldSource reads the stored holds and idempotency keys of the node's
// region: what the runtime persisted from Ready.Persist (Holds, Idem, the
// deletes and the expiry index ends). Implementations must answer as of
// the last Persist applied.
type HoldSource interface {
	// StoredHold returns the stored hold id; false when there is none.
	StoredHold(id string) (Hold, bool, error)
	// StoredIdem returns the stored entry of an idempotency key; false
	// when there is none.
	StoredIdem(key string) (IdemEntry, bool, error)
	// DueHolds appends to dst the expiry index entries of stored HELD
	// holds whose deadline is at or before t, in (deadline, id) order, at
	// most max of them, and returns it with the deadline of the first
	// entry it left out (zero when there is none).
	DueHolds(t time.Time, max int, dst []Deadline) ([]Deadline, time.Time, error)
	// DueIdem is DueHolds for the idempotency keys' expiry index.
	DueIdem(t time.Time, max int, dst []Deadline) ([]Deadline, time.Time, error)
}

// MaxResidentHoldsLimit bounds Config.MaxResidentHolds (0 is the
// unbounded node).
const MaxResidentHoldsLimit = 100_000_000

// ringItem is one entry of a residency ring: a record and the Ready that
// last carried it to the store (0: read from the store).
type ringItem[P any] struct {
	p     P
	ready uint64
	gen   uint32 // holds only: current while p.gen == gen
}

// ring is a FIFO of residency entries.
type ring[P any] struct {
	buf  []ringItem[P]
	head int
}

func (r *ring[P]) len() int               { return len(r.buf) - r.head }
func (r *ring[P]) front() *ringItem[P]    { return &r.buf[r.head] }
func (r *ring[P]) push(it ringItem[P])    { r.buf = append(r.buf, it) }
func (r *ring[P]) all() []ringItem[P]     { return r.buf[r.head:] }
func (r *ring[P]) at(i int) *ringItem[P]  { return &r.buf[r.head+i] }
func (r *ring[P]) setAll(s []ringItem[P]) { r.buf, r.head = s, 0 }

func (r *ring[P]) pop() {
	var zero ringItem[P]
	r.buf[r.head] = zero
	r.head++
	if r.head == len(r.buf) {
		r.buf, r.head = r.buf[:0], 0
	} else if r.head >= 1024 && r.head*2 >= len(r.buf) {
		r.buf = r.buf[:copy(r.buf, r.buf[r.head:])]
		r.head = 0
	}
}

type holdCache struct {
	on  bool
	src HoldSource
	max int
	// holds and keys: residency rings (see the file comment).
	holds ring[*holdRec]
	keys  ring[*idemRec]
	gen   uint32
	// holdScanAt, keyScanAt: Unix ns from which a scan of the source's
	// index is due; holdWait, keyWait: the last scan made no progress
	// (everything due waits for a Ready to reach the store): none until
	// the next Advance.
	holdScanAt, keyScanAt int64
	holdWait, keyWait     bool
	// dues: per Ready handed out and not yet Advanced, the earliest
	// deadline of a HELD hold and of a key it carries (math.MaxInt64: none).
	dues []readyDue
	buf  []Deadline
	// noHold, noKey: the last id and key the source said it does not
	// have (a new hold checks its id and key twice in one step).
	noHold, noKey string
	// idFloor: the millisecond (Unix) of the newest id of a hold that may
	// be in the source and not resident; a new id past it is new.
	idFloor int64

	hits, misses, evictions uint64
}

type readyDue struct{ hold, key int64 }

// HoldCacheStats are the counters of the bounded hold cache (zero when
// off): holds and keys found resident (hits), read from the source
// (misses), dropped (evictions), and resident now.
type HoldCacheStats struct {
	Hits, Misses, Evictions uint64
	Holds, Keys             uint64
}

// HoldCacheStats returns the hold cache's counters.
func (n *Node) HoldCacheStats() HoldCacheStats {
	c := &n.hc
	if !c.on {
		return HoldCacheStats{Holds: uint64(n.holds.len()), Keys: uint64(len(n.idem))}
	}
	return HoldCacheStats{Hits: c.hits, Misses: c.misses, Evictions: c.evictions, Holds: uint64(n.holds.len()), Keys: uint64(len(n.idem))}
}

func (n *Node) initHoldCache() {
	c := &n.hc
	c.on = n.cfg.Holds != nil && n.cfg.MaxResidentHolds > 0
	c.src, c.max = n.cfg.Holds, n.cfg.MaxResidentHolds
	c.holdScanAt, c.keyScanAt = math.MinInt64, math.MinInt64
	c.idFloor = math.MinInt64 // a new node: the source has nothing yet
}

// restoreHoldCache sets what the restored state says of the source.
func (n *Node) restoreHoldCache(st *State) {
	c := &n.hc
	switch {
	case !st.NewestHoldKnown:
		c.idFloor = math.MaxInt64
	case st.NewestHold == "":
		c.idFloor = math.MinInt64
	default:
		c.idFloor = holdIDMillis(st.NewestHold)
	}
}

// holdIDMillis is the Unix millisecond a hold id was made at
// (math.MaxInt64 when it does not have the form putHoldID writes).
func holdIDMillis(id string) int64 {
	i := strings.IndexByte(id, '-')
	if i < 0 || len(id) < i+19 {
		return math.MaxInt64
	}
	var ms int64
	for _, c := range []byte(id[i+1 : i+11]) {
		d := strings.IndexByte(base32Alphabet, c)
		if d < 0 {
			return math.MaxInt64
		}
		ms = ms<<5 | int64(d)
	}
	return ms
}

// sourceOn reports whether a step may read a source (and so needs
// recoverSource).
func (n *Node) sourceOn() bool { return n.cache.on || n.hc.on }

func holdSourceFailure(format string, args ...any) sourceFailure {
	return sourceFailure{fmt.Errorf("%w: hold source: %s", ErrRowSource, fmt.Sprintf(format, args...))}
}

// holdOf returns the hold id: resident, or read from the source and made
// resident; nil when neither has it. With the cache off, the resident one.
func (n *Node) holdOf(id string) *holdRec {
	h := n.holds.get(id)
	c := &n.hc
	if !c.on {
		return h
	}
	if h != nil {
		c.hits++
		return h
	}
	if id == c.noHold || !n.ownsHold(id) {
		return nil
	}
	hv, ok, err := c.src.StoredHold(id)
	if err != nil {
		panic(holdSourceFailure("reading hold %s: %v", id, err))
	}
	if !ok {
		c.noHold = id
		return nil
	}
	if hv.ID != id || len(hv.Lines) == 0 || hv.State < Held || hv.State > Expired {
		panic(holdSourceFailure("asked for hold %s, got %s (state %d, %d lines)", id, hv.ID, hv.State, len(hv.Lines)))
	}
	c.misses++
	// The node's clock never runs behind a hold it changes (restore moves
	// it past every stored hold when the cache is off): a runtime whose
	// clock jumped back while the region was down must not date a hold's
	// change before its last one.
	for _, t := range [...]time.Time{hv.Created, hv.Updated} {
		if t.After(n.now) {
			n.now = t
			n.syncClock()
		}
	}
	internLines(n, hv.Lines)
	h = newHoldRec(&hv)
	n.holds.put(h)
	n.pushHold(h, 0)
	return h
}

// ownsHold reports whether id is a valid hold id of this region.
func (n *Node) ownsHold(id string) bool {
	owner, err := OwnerOf(id)
	return err == nil && owner == n.cfg.Region
}

// liveHold is holdOf for commands: with the cache on, a terminal hold
// past HoldRetain is gone, as the unbounded node retires it.
func (n *Node) liveHold(id string) *holdRec {
	h := n.holdOf(id)
	if h != nil && n.hc.on && n.retiredAt(h) {
		return nil
	}
	return h
}

// retiredAt reports whether h is terminal and past its retention.
func (n *Node) retiredAt(h *holdRec) bool {
	return h.State.Terminal() && nanos(h.Updated().Add(n.cfg.HoldRetain)) <= nanos(n.now)
}

// Updated is when the hold last changed.
func (r *holdRec) Updated() time.Time { return unixTime(r.updated) }

// holdIDTaken reports whether a new hold or waitlist entry may not take
// id, made at Unix millisecond ms: a resident hold has it, or (cache on)
// the source has a hold of it, which is possible only when ms is not past
// idFloor.
func (n *Node) holdIDTaken(id string, ms int64) bool {
	return n.holds.get(id) != nil || n.storedIDTaken(id, ms)
}

// storedIDTaken reports whether id, of no resident hold, is a stored one's
// (see holdIDTaken).
func (n *Node) storedIDTaken(id string, ms int64) bool {
	if !n.hc.on || ms > n.hc.idFloor {
		return false
	}
	_, ok, err := n.hc.src.StoredHold(id)
	if err != nil {
		panic(holdSourceFailure("reading hold %s: %v", id, err))
	}
	return ok
}

// idemOf returns the entry of key: resident, or read from the source and
// made resident; nil when neither has it.
func (n *Node) idemOf(key string) *idemRec {
	e := n.idem[key]
	c := &n.hc
	if !c.on {
		return e
	}
	if e != nil {
		c.hits++
		return e
	}
	if key == c.noKey || key == "" {
		return nil
	}
	ev, ok, err := c.src.StoredIdem(key)
	if err != nil {
		panic(holdSourceFailure("reading idempotency key %q: %v", key, err))
	}
	if !ok {
		c.noKey = key
		return nil
	}
	if ev.Key != key || (ev.HoldID == "") == (ev.RoutedTo == "") {
		panic(holdSourceFailure("asked for idempotency key %q, got %q (hold %q, routed to %q)", key, ev.Key, ev.HoldID, ev.RoutedTo))
	}
	c.misses++
	e = newIdemRec(&ev)
	n.idem[key] = e
	c.keys.push(ringItem[*idemRec]{p: e})
	return e
}

// pushHold appends h to the ring as written by Ready ready (0: read).
func (n *Node) pushHold(h *holdRec, ready uint64) {
	c := &n.hc
	c.gen++
	h.gen = c.gen
	c.holds.push(ringItem[*holdRec]{p: h, ready: ready, gen: c.gen})
	if k := c.holds.len(); k > 2*n.holds.len()+1024 {
		c.compactHolds(n)
	}
}

// compactHolds drops stale ring entries (a ring of a node under its bound
// would otherwise grow by one entry per write).
func (c *holdCache) compactHolds(n *Node) {
	keep := c.holds.buf[:0]
	for _, it := range c.holds.all() {
		if n.holds.get(it.p.ID()) == it.p && it.p.gen == it.gen {
			keep = append(keep, it)
		}
	}
	clear(c.holds.buf[len(keep):])
	c.holds.setAll(keep)
}

func (c *holdCache) compactKeys(n *Node) {
	keep := c.keys.buf[:0]
	for _, it := range c.keys.all() {
		if n.idem[it.p.Key] == it.p {
			keep = append(keep, it)
		}
	}
	clear(c.keys.buf[len(keep):])
	c.keys.setAll(keep)
}

// noteIdemPut enters a key just put (carried by the next Ready).
func (n *Node) noteIdemPut(e *idemRec) {
	c := &n.hc
	if c.noKey == e.Key {
		c.noKey = ""
	}
	c.keys.push(ringItem[*idemRec]{p: e, ready: n.cache.readyNo + 1})
	if c.keys.len() > 2*len(n.idem)+1024 {
		c.compactKeys(n)
	}
}

// noteReady records, for Ready number ready, the holds it carries (they
// re-enter the ring) and the earliest deadlines it brings to the store.
func (n *Node) noteReady(rd *Ready) {
	c := &n.hc
	due := readyDue{hold: math.MaxInt64, key: math.MaxInt64}
	for i := range rd.Persist.Holds {
		if h := rd.Persist.Holds[i]; h.State == Held {
			due.hold = min(due.hold, nanos(h.Expires))
		}
	}
	for i := range rd.Persist.Idem {
		due.key = min(due.key, nanos(rd.Persist.Idem[i].Expires))
	}
	c.dues = append(c.dues, due)
}

// advanceHolds: the oldest Ready not yet advanced is in the store.
func (n *Node) advanceHolds() {
	c := &n.hc
	if len(c.dues) > 0 {
		d := c.dues[0]
		c.dues = c.dues[1:]
		if len(c.dues) == 0 {
			c.dues = c.dues[:0:0]
		}
		c.holdScanAt = min(c.holdScanAt, d.hold)
		c.keyScanAt = min(c.keyScanAt, d.key)
	}
	c.holdWait, c.keyWait = false, false
	n.evictHolds()
}

// evictable reports whether the ring entry it may drop its hold.
func (n *Node) holdEvictable(it *ringItem[*holdRec]) bool {
	if n.cfg.bugs.EvictDirtyHold {
		return true
	}
	return !it.p.dirty && it.ready <= n.cache.advanced
}

// evictHolds drops the holds and keys written longest ago while more than
// the bound of each are resident, stopping at the first one not yet in
// the store (every entry behind it was written later).
func (n *Node) evictHolds() {
	c := &n.hc
	if !c.on || n.cache.failed != nil {
		return
	}
	for n.holds.len() > c.max && c.holds.len() > 0 {
		it := c.holds.front()
		h := it.p
		if n.holds.get(h.ID()) != h || h.gen != it.gen || (h.dirty && !n.cfg.bugs.EvictDirtyHold) {
			c.holds.pop() // stale; a dirty hold re-enters with its Ready
			continue
		}
		if !n.holdEvictable(it) {
			break
		}
		n.dropHold(it)
		c.holds.pop()
	}
	for len(n.idem) > c.max && c.keys.len() > 0 {
		it := c.keys.front()
		e := it.p
		if n.idem[e.Key] != e {
			c.keys.pop()
			continue
		}
		if it.ready > n.cache.advanced && !n.cfg.bugs.EvictDirtyHold {
			break
		}
		delete(n.idem, e.Key)
		c.evictions++
		c.keys.pop()
	}
}

// dropHold forgets a resident hold the store has. It panics if the store
// may not have it yet: its change would be lost.
func (n *Node) dropHold(it *ringItem[*holdRec]) {
	h := it.p
	if !n.holdEvictable(it) {
		panic("escrow: drop of a hold that is not saved: " + h.ID())
	}
	id := h.ID()
	if n.cfg.bugs.EvictDirtyHold && h.dirty {
		// The planted bug: the unsaved change goes with the hold (Ready
		// skips a dirty hold that is no longer the map's).
		h.dirty = false
	}
	n.holds.del(id)
	h.gone = true
	n.unpinIdem(h)
	n.hc.idFloor = max(n.hc.idFloor, holdIDMillis(id))
	n.hc.evictions++
}

// sweepHolds expires the stored HELD holds whose deadline has come, and
// forgets the stored keys past their expiry, through the source's indexes
// (tick, with the cache on, in place of the heaps).
func (n *Node) sweepHolds() {
	c := &n.hc
	now := nanos(n.now)
	if !c.holdWait && now >= c.holdScanAt && !n.cfg.bugs.SkipSourceExpiry {
		due, next, err := c.src.DueHolds(n.now, n.cfg.MaxSweepPerTick, c.buf[:0])
		if err != nil {
			panic(holdSourceFailure("scanning the expiry index: %v", err))
		}
		done := 0
		for i := range due {
			resident := n.holds.get(due[i].Name) != nil
			h := n.holdOf(due[i].Name)
			if h == nil {
				panic(holdSourceFailure("expiry index entry of hold %s, which the source does not have", due[i].Name))
			}
			if !resident && (h.State != Held || h.expires != nanos(due[i].At)) {
				// A resident hold may differ (its change is on its way to
				// the store); a stored one must match its entry, or the
				// entry would be read again on every scan.
				panic(holdSourceFailure("expiry index entry of hold %s at %v, which the source has %s until %v",
					due[i].Name, due[i].At, h.State, h.Expires()))
			}
			if h.expiredAt(n.now) {
				n.expire(h)
				done++
			}
		}
		c.holdScanAt = scanNext(len(due), n.cfg.MaxSweepPerTick, now, next)
		c.holdWait = done == 0 && len(due) > 0
		clear(due)
		c.buf = due[:0]
	}
	if !c.keyWait && now >= c.keyScanAt {
		due, next, err := c.src.DueIdem(n.now, n.cfg.MaxSweepPerTick, c.buf[:0])
		if err != nil {
			panic(holdSourceFailure("scanning the idempotency expiry index: %v", err))
		}
		done := 0
		for i := range due {
			resident := n.idem[due[i].Name] != nil
			e := n.idemOf(due[i].Name)
			if e == nil {
				panic(holdSourceFailure("expiry index entry of idempotency key %q, which the source does not have", due[i].Name))
			}
			if !resident && e.expires != nanos(due[i].At) {
				panic(holdSourceFailure("expiry index entry of idempotency key %q at %v, which the source has until %v",
					due[i].Name, due[i].At, e.Expires()))
			}
			if !e.liveAt(n.now) {
				n.dropIdem(e)
				done++
			}
		}
		c.keyScanAt = scanNext(len(due), n.cfg.MaxSweepPerTick, now, next)
		c.keyWait = done == 0 && len(due) > 0
		clear(due)
		c.buf = due[:0]
	}
}

// scanNext is when the next scan is due: at once when the scan was cut
// at its budget, else at the next stored deadline (never, if none).
func scanNext(got, budget int, now int64, next time.Time) int64 {
	switch {
	case got >= budget:
		return now
	case next.IsZero():
		return math.MaxInt64
	}
	return nanos(next)
}

// peekHold returns a copy of hold id for a read-only accessor called
// outside Step: the resident one, or the source's, not made resident.
func (n *Node) peekHold(id string) (Hold, bool) {
	if h := n.holds.get(id); h != nil || !n.hc.on {
		if h == nil {
			return Hold{}, false
		}
		hv := h.hold()
		return hv.Clone(), true
	}
	if !n.ownsHold(id) {
		return Hold{}, false
	}
	hv, ok, err := n.hc.src.StoredHold(id)
	if err != nil {
		n.stopOn(fmt.Errorf("%w: hold source: reading hold %s: %w", ErrRowSource, id, err))
		return Hold{}, false
	}
	return hv, ok
}

// checkHoldResidency checks the hold cache's bookkeeping (tests): every
// resident hold and key has a current ring entry, no hold has two, and
// once every Ready is advanced no more than the bound are resident.
func (n *Node) checkHoldResidency() error {
	c := &n.hc
	if !c.on {
		return nil
	}
	cur := make(map[*holdRec]int, n.holds.len())
	for i := range c.holds.len() {
		it := c.holds.at(i)
		if n.holds.get(it.p.ID()) == it.p && it.p.gen == it.gen {
			cur[it.p]++
		}
	}
	for id, h := range n.holds.all() {
		if h.ID() != id {
			return fmt.Errorf("hold %s keyed as %s", h.ID(), id)
		}
		if cur[h] != 1 && !h.dirty {
			return fmt.Errorf("resident hold %s has %d current ring entries", id, cur[h])
		}
	}
	keys := make(map[*idemRec]bool, len(n.idem))
	for i := range c.keys.len() {
		if it := c.keys.at(i); n.idem[it.p.Key] == it.p {
			keys[it.p] = true
		}
	}
	for k, e := range n.idem {
		if !keys[e] {
			return fmt.Errorf("resident key %q has no ring entry", k)
		}
	}
	if n.cache.readyNo == n.cache.advanced && !n.HasReady() && (n.holds.len() > c.max || len(n.idem) > c.max) {
		return fmt.Errorf("%d holds and %d keys resident over a bound of %d with every Ready advanced", n.holds.len(), len(n.idem), c.max)
	}
	return nil
}
