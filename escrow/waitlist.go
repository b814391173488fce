package escrow

import (
	"time"
)

// The waitlist: a hold that cannot be granted (after the usual borrow
// attempt) may wait, when the shopper asks for it (Command.Wait), instead of
// being refused. The entry queues in this region; units that become
// available here later — a release, an expiry, a restock, borrowed or
// topped-up quota arriving — go to the waiting entries in placement order.
//
// Policy (head-of-line blocking per SKU): entries are scanned in placement
// order; an entry is promoted when every one of its lines is covered and no
// earlier entry that still waits shares a SKU with it. An entry that cannot
// be met blocks every SKU it names for every later entry. So a later entry is
// never served a unit of a SKU while an earlier entry for that SKU waits,
// whatever the quantities: strict FIFO per SKU within a region. The price is
// that a large or multi-line entry at the head of a line holds back smaller
// ones behind it until it is met, cancelled or expires (its deadline bounds
// that). New holds (with or without wait) for a SKU that has waiters are not
// granted ahead of them either.
//
// Each entry ends in exactly one of promoted, cancelled, expired. A promoted
// entry becomes an ordinary hold (HoldID) with the entry's TTL.
//
// Waiters are demand: a region with waiters asks peers for the units its
// queue lacks (urgently: donors may go to their own queue's need), donors and
// advice keep the units their own queue needs, and the digest reports the
// waiting units to the rebalancer.

// WaitState is the lifecycle state of a waitlist entry.
type WaitState uint8

const (
	Waiting WaitState = iota + 1
	Promoted
	Cancelled
	WaitExpired
)

var waitStateNames = [...]string{Waiting: "waiting", Promoted: "promoted", Cancelled: "cancelled", WaitExpired: "expired"}

func (s WaitState) String() string { return enumName(waitStateNames[:], s) }

// Terminal reports whether no further transition can leave s.
func (s WaitState) Terminal() bool { return s != Waiting }

// Limits of the waitlist (Config overrides the defaults).
const (
	DefaultMaxWait          = 30 * time.Minute
	DefaultMaxWaitersPerSKU = 10_000
	DefaultMaxWaiters       = 100_000
	// waitAskEvery bounds how often a region re-asks peers for the units its
	// waiters lack while no ask is in flight.
	waitAskEvery = 250 * time.Millisecond
)

// WaitEntry is a shopper waiting for units, in the region that queued it
// (the prefix of its ID).
type WaitEntry struct {
	ID       string
	Seq      uint64 // placement order in this region (1, 2, ...)
	Lines    []Line // sorted by SKU, no duplicates; shared, never written
	State    WaitState
	Created  time.Time     // placement time
	Deadline time.Time     // at or after it a waiting entry is expired
	Updated  time.Time     // time of the last state change
	TTL      time.Duration // TTL of the hold it becomes
	HoldID   string        // promoted: the hold
	IdemKey  string
	Meta     string
	// Position (replies only, while waiting): per line, 1 + the number of
	// earlier waiting entries of this region for that line's SKU.
	Position []uint64
}

// StateAt returns the state of e as of now: past its deadline a waiting
// entry is expired even before the sweeper has run.
func (e *WaitEntry) StateAt(now time.Time) WaitState {
	if e.State == Waiting && !now.Before(e.Deadline) {
		return WaitExpired
	}
	return e.State
}

type waitRec struct {
	WaitEntry
	dirty bool
	// kept: the planted bug PromotedKeepsPlace left it in the queue.
	kept bool
}

// skuWait counts the waiting entries and units of one SKU.
type skuWait struct {
	entries int
	units   uint64
	asks    []uint64  // borrow ids in flight for the waiters
	askedAt time.Time // last ask
}

// waitlist is the node's waitlist state.
type waitlist struct {
	entries    map[string]*waitRec
	queue      []*waitRec // waiting entries in placement order (with garbage)
	garbage    int        // entries of queue no longer waiting
	seq        uint64     // last placement sequence
	perSKU     map[string]*skuWait
	expiry     dlHeap[waitID]
	retire     dlHeap[waitID]
	dirty      []*waitRec
	promoteDue bool
	demandDue  bool
	lastDemand time.Time
	waiting    int
}

func newWaitlist() waitlist {
	return waitlist{entries: make(map[string]*waitRec), perSKU: make(map[string]*skuWait)}
}

// waitUnits returns the units waiting entries of this region ask of sku.
func (n *Node) waitUnits(sku string) uint64 {
	if w := n.wait.perSKU[sku]; w != nil {
		return w.units
	}
	return 0
}

// queuedFor reports whether some line's SKU has waiters here: a new grant
// of that SKU would pass them.
func (n *Node) queuedFor(lines []Line) bool {
	if n.wait.waiting == 0 {
		return false
	}
	for i := range lines {
		if w := n.wait.perSKU[lines[i].SKU]; w != nil && w.entries > 0 {
			return true
		}
	}
	return false
}

// noteWaitBump is called by bump: units of sku may have come back.
func (n *Node) noteWaitBump(sku string) {
	if w := n.wait.perSKU[sku]; w != nil && w.entries > 0 {
		n.wait.promoteDue = true
	}
}

// validWait checks Command.Wait of a hold; a bad one fails c.
func (n *Node) validWait(c *Command) bool {
	if c.Wait == 0 {
		return true
	}
	if c.Wait < MinTTL || c.Wait > n.cfg.MaxWait {
		n.fail(c, errorf(CodeInvalid, "wait must be between %v and %v, got %v", MinTTL, n.cfg.MaxWait, c.Wait))
		return false
	}
	return true
}

// waitOrReject queues the hold when it asked to wait, and rejects it
// otherwise.
func (n *Node) waitOrReject(c *Command, lines []Line, waiters []uint64) {
	if c.Wait <= 0 {
		if n.queuedFor(lines) {
			n.failAll(c, waiters, n.queuedErr(lines))
			return
		}
		n.reject(c, lines, waiters)
		return
	}
	for i := range lines {
		if s := n.lookup(lines[i].SKU); s == nil || len(s.list) == 0 {
			n.reject(c, lines, waiters) // unknown SKU: nothing to wait for
			return
		}
	}
	w := &n.wait
	if len(w.entries) >= n.cfg.MaxWaiters {
		n.failAll(c, waiters, errorf(CodeWaitlistFull, "region %s keeps its maximum of %d waitlist entries", n.cfg.Region, n.cfg.MaxWaiters))
		return
	}
	for i := range lines {
		if sw := w.perSKU[lines[i].SKU]; sw != nil && sw.entries >= n.cfg.MaxWaitersPerSKU {
			n.failAll(c, waiters, errorf(CodeWaitlistFull, "the waitlist of %s in region %s is full (%d entries)",
				lines[i].SKU, n.cfg.Region, n.cfg.MaxWaitersPerSKU))
			return
		}
	}
	e := &waitRec{WaitEntry: WaitEntry{
		Lines:    lines,
		State:    Waiting,
		Created:  n.now,
		Deadline: n.now.Add(c.Wait),
		Updated:  n.now,
		TTL:      c.TTL,
		IdemKey:  c.IdemKey,
		Meta:     c.Meta,
	}}
	for {
		e.ID = newHoldID(n.cfg.Region, n.now.UnixMilli(), n.rnd())
		if w.entries[e.ID] == nil && !n.holdIDTaken(e.ID, n.now.UnixMilli()) {
			break
		}
	}
	w.seq++
	e.Seq = w.seq
	w.entries[e.ID] = e
	w.queue = append(w.queue, e)
	w.expiry.push(nanos(e.Deadline), waitID(e.ID))
	n.countWaiting(e, +1)
	n.markWait(e)
	if c.IdemKey != "" {
		n.addIdem(c.IdemKey, e.ID, c.IdemHash)
	}
	w.demandDue = true
	n.stats.WaitJoined++
	n.waitEvent(EvWaitJoined, e)
	v := n.viewWait(e)
	n.reply(Reply{ReqID: c.ReqID, Kind: CmdHold, Wait: &v})
	for _, r := range waiters {
		vw := v
		n.reply(Reply{ReqID: r, Kind: CmdHold, Wait: &vw, Replayed: true})
	}
}

// queuedErr refuses a hold whose SKU has waiters ahead of it.
func (n *Node) queuedErr(lines []Line) *Error {
	for i := range lines {
		if sw := n.wait.perSKU[lines[i].SKU]; sw != nil && sw.entries > 0 {
			s := n.lookup(lines[i].SKU)
			err := errorf(CodeInsufficientStock, "not enough units of %s in region %s: %d shoppers wait for them already",
				lines[i].SKU, n.cfg.Region, sw.entries)
			err.SKU = lines[i].SKU
			if s != nil {
				err.Available = n.available(s)
				s.reject++
			}
			n.stats.Rejected++
			return err
		}
	}
	return errorf(CodeInvariant, "no waiters")
}

func (n *Node) failAll(c *Command, waiters []uint64, err *Error) {
	n.fail(c, err)
	for _, r := range waiters {
		n.reply(Reply{ReqID: r, Kind: c.Kind, Err: err})
	}
}

func (n *Node) countWaiting(e *waitRec, d int) {
	w := &n.wait
	w.waiting += d
	for _, l := range e.Lines {
		sw := w.perSKU[l.SKU]
		if sw == nil {
			sw = &skuWait{}
			w.perSKU[l.SKU] = sw
		}
		sw.entries += d
		if d > 0 {
			sw.units += l.Qty
		} else {
			sw.units -= l.Qty
		}
		if sw.entries < 0 {
			panic("escrow: waitlist count of " + l.SKU + " below zero")
		}
		if sw.entries == 0 && len(sw.asks) == 0 {
			delete(w.perSKU, l.SKU)
		}
	}
}

func (n *Node) markWait(e *waitRec) {
	if !e.dirty {
		e.dirty = true
		n.wait.dirty = append(n.wait.dirty, e)
	}
}

// viewWait returns a copy of e as of now, with positions while waiting.
func (n *Node) viewWait(e *waitRec) WaitEntry {
	v := e.WaitEntry
	v.State = e.StateAt(n.now)
	if v.State != Waiting {
		return v
	}
	v.Position = make([]uint64, len(e.Lines))
	for i := range v.Position {
		v.Position[i] = 1
	}
	for _, o := range n.wait.queue {
		if o == e {
			break
		}
		if o.State != Waiting || !n.now.Before(o.Deadline) {
			continue
		}
		for i, l := range e.Lines {
			for _, ol := range o.Lines {
				if ol.SKU == l.SKU {
					v.Position[i]++
				}
			}
		}
	}
	return v
}

// waitCommand serves CmdWaitGet and CmdWaitCancel.
func (n *Node) waitCommand(c *Command) {
	owner, err := OwnerOf(c.HoldID)
	if err != nil {
		n.fail(c, errorf(CodeInvalid, "malformed waitlist entry id %q", truncate(c.HoldID, 80)))
		return
	}
	if owner != n.cfg.Region {
		e := errorf(CodeNotOwner, "waitlist entry %s belongs to region %s", c.HoldID, owner)
		e.Owner = owner
		n.fail(c, e)
		return
	}
	e := n.wait.entries[c.HoldID]
	if e == nil {
		n.fail(c, errorf(CodeNotFound, "no waitlist entry %s", c.HoldID))
		return
	}
	if e.State == Waiting && !n.now.Before(e.Deadline) {
		n.endWait(e, WaitExpired)
	}
	if c.Kind == CmdWaitCancel {
		switch e.State {
		case Waiting:
			n.endWait(e, Cancelled)
		case Promoted:
			n.fail(c, errorf(CodeConflict, "cannot cancel waitlist entry %s: it was promoted to hold %s (release the hold instead)", e.ID, e.HoldID))
			return
		}
	}
	v := n.viewWait(e)
	n.reply(Reply{ReqID: c.ReqID, Kind: c.Kind, Wait: &v})
}

// endWait moves a waiting entry to a terminal state.
func (n *Node) endWait(e *waitRec, to WaitState) {
	if e.State != Waiting {
		panic("escrow: end of a " + e.State.String() + " waitlist entry")
	}
	e.State = to
	e.Updated = n.now
	n.countWaiting(e, -1)
	n.markWait(e)
	if n.cfg.bugs.PromotedKeepsPlace && to == Promoted {
		e.kept = true // the bug: it stays in the queue
	} else {
		n.wait.garbage++
	}
	n.wait.retire.push(nanos(n.now.Add(n.cfg.HoldRetain)), waitID(e.ID))
	switch to {
	case Promoted:
		n.stats.WaitPromoted++
		n.waitEvent(EvWaitPromoted, e)
	case Cancelled:
		n.stats.WaitCancelled++
		n.waitEvent(EvWaitCancelled, e)
	case WaitExpired:
		n.stats.WaitExpired++
		n.waitEvent(EvWaitExpired, e)
	}
	// The units this entry blocked may now go to the next in line.
	n.wait.promoteDue = true
}

// waitEvent states a change of e; call it after the change (a promotion:
// once e.HoldID is set).
func (n *Node) waitEvent(k EventKind, e *waitRec) {
	v := e.WaitEntry
	v.Position = nil
	if n.out.Persist.Events == nil {
		n.out.Persist.Events = n.takeEvents()
	}
	n.out.Persist.Events = append(growTo(n.out.Persist.Events, n.lastEvents), Event{Kind: k, At: n.now, Wait: &v})
}

// promote turns e into a hold; its lines are covered (checked by caller).
func (n *Node) promote(e *waitRec) {
	h := n.grant(&Command{TTL: e.TTL, Meta: e.Meta}, e.Lines)
	e.HoldID = h.ID()
	if e.State == Waiting {
		n.endWait(e, Promoted)
	} else { // the planted bug PromotedKeepsPlace: promoted again
		e.Updated = n.now
		n.markWait(e)
		n.stats.WaitPromoted++
	}
}

// promoteWaiters hands available units to waiting entries in placement
// order under the head-of-line policy (see the top of this file).
func (n *Node) promoteWaiters() {
	w := &n.wait
	if !w.promoteDue || len(w.queue) == 0 {
		return
	}
	w.promoteDue = false
	var blocked map[string]bool
	isBlocked := func(e *waitRec) bool {
		for _, l := range e.Lines {
			if blocked[l.SKU] {
				return true
			}
		}
		return false
	}
	covered := func(e *waitRec) bool {
		for _, l := range e.Lines {
			s := n.lookup(l.SKU)
			if s == nil || n.available(s) < l.Qty {
				return false
			}
		}
		return true
	}
	visit := func(e *waitRec) {
		if e.State != Waiting && !e.kept {
			return
		}
		if e.State == Waiting && !n.now.Before(e.Deadline) {
			n.endWait(e, WaitExpired)
			return
		}
		if !isBlocked(e) && covered(e) {
			n.promote(e)
			return
		}
		if n.cfg.bugs.PromoteOutOfOrder {
			return // the bug: a waiting entry blocks nobody
		}
		if blocked == nil {
			blocked = make(map[string]bool, 4)
		}
		for _, l := range e.Lines {
			blocked[l.SKU] = true
		}
	}
	if n.cfg.bugs.PromoteOutOfOrder {
		for i := len(w.queue) - 1; i >= 0; i-- { // the bug: newest first
			visit(w.queue[i])
		}
	} else {
		for _, e := range w.queue {
			visit(e)
		}
	}
	// One scan in placement order is complete: an entry that ended during
	// it blocked nothing (only entries that stay waiting block).
	w.promoteDue = false
	n.compactWaitQueue()
}

func (n *Node) compactWaitQueue() {
	w := &n.wait
	if w.garbage == 0 {
		return
	}
	k := 0
	for _, e := range w.queue {
		if e.State == Waiting || e.kept {
			w.queue[k] = e
			k++
		}
	}
	clear(w.queue[k:])
	w.queue = w.queue[:k]
	w.garbage = 0
}

// waitTick expires entries past their deadline, forgets terminal entries
// past retention, promotes waiters and asks peers for what they lack.
func (n *Node) waitTick() {
	w := &n.wait
	if len(w.entries) == 0 {
		return
	}
	for budget := n.cfg.MaxSweepPerTick; budget > 0 && w.expiry.Len() > 0 && w.expiry[0].at <= nanos(n.now); budget-- {
		id := string(w.expiry.pop().p)
		if e := w.entries[id]; e != nil && e.State == Waiting {
			n.endWait(e, WaitExpired)
		}
	}
	for budget := n.cfg.MaxSweepPerTick; budget > 0 && w.retire.Len() > 0 && w.retire[0].at <= nanos(n.now); budget-- {
		id := string(w.retire.pop().p)
		if e := w.entries[id]; e != nil && e.State.Terminal() && !e.kept {
			delete(w.entries, id)
			n.out.Persist.DeletedWaits = append(n.out.Persist.DeletedWaits, id)
		}
	}
	n.promoteWaiters()
	if w.garbage > len(w.queue)/2 {
		n.compactWaitQueue()
	}
	if w.waiting > 0 && (w.demandDue || n.now.Sub(w.lastDemand) >= waitAskEvery) {
		w.demandDue = false
		w.lastDemand = n.now
		n.askForWaiters()
	}
}
