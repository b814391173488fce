package escrow

import (
	"time"
)

func (n *Node) command(c *Command) {
	if n.fence.st.Fenced && n.fenceRefuses(c) {
		return
	}
	switch c.Kind {
	case CmdHold:
		n.hold(c)
	case CmdGet, CmdConfirm, CmdRelease, CmdExtend:
		n.transition(c)
	case CmdRestock:
		n.restock(c)
	case CmdWriteOff:
		n.writeOff(c)
	case CmdStock:
		n.stock(c)
	case CmdWaitGet, CmdWaitCancel:
		n.waitCommand(c)
	case CmdRecount:
		n.recount(c)
	default:
		n.reply(Reply{ReqID: c.ReqID, Kind: c.Kind, Err: errorf(CodeInvalid, "unknown command %d", c.Kind)})
	}
}

func (n *Node) fail(c *Command, err *Error) {
	n.reply(Reply{ReqID: c.ReqID, Kind: c.Kind, Err: err})
}

func (n *Node) hold(c *Command) {
	lines, err := n.ownLines(c.Lines)
	if err != nil {
		n.fail(c, err)
		return
	}
	ttl := c.TTL
	if ttl == 0 {
		ttl = n.cfg.DefaultTTL
	}
	if ttl < MinTTL || ttl > n.cfg.MaxLifetime {
		n.fail(c, errorf(CodeInvalid, "ttl must be between %v and %v, got %v", MinTTL, n.cfg.MaxLifetime, ttl))
		return
	}
	if len(c.Meta) > MaxMetaLen {
		n.fail(c, errorf(CodeInvalid, "metadata must be at most %d bytes, got %d", MaxMetaLen, len(c.Meta)))
		return
	}
	if err := ValidCart(c.Cart); err != nil {
		n.fail(c, err)
		return
	}
	if !n.validWait(c) {
		return
	}
	if c.IdemKey != "" && !n.cfg.bugs.IgnoreIdemKey {
		if err := ValidIdemKey(c.IdemKey); err != nil {
			n.fail(c, err)
			return
		}
		e := n.idemOf(c.IdemKey)
		if e != nil && e.liveAt(n.now) {
			if e.Hash != c.IdemHash || n.isStockIdem(e) {
				n.fail(c, errorf(CodeIdempotencyReuse, "idempotency key %q was used for a different request", c.IdemKey))
				return
			}
		}
		if e != nil && e.liveAt(n.now) && e.RoutedTo == "" {
			h := n.liveHold(e.HoldID)
			if w := n.wait.entries[e.HoldID]; h == nil && w != nil {
				n.stats.Replayed++
				v := n.viewWait(w)
				n.reply(Reply{ReqID: c.ReqID, Kind: CmdHold, Wait: &v, Replayed: true})
				return
			}
			if h == nil {
				n.fail(c, errorf(CodeNotFound, "hold %s of idempotency key %q is no longer kept", e.HoldID, c.IdemKey))
				return
			}
			n.stats.Replayed++
			n.reply(Reply{ReqID: c.ReqID, Kind: CmdHold, Hold: n.viewHold(h), Replayed: true})
			return
		}
		if p := n.pendingIdem[c.IdemKey]; p != nil && !p.done {
			if p.cmd.IdemHash != c.IdemHash {
				n.fail(c, errorf(CodeIdempotencyReuse, "idempotency key %q was used for a different request", c.IdemKey))
				return
			}
			p.waiters = append(p.waiters, c.ReqID)
			return
		}
	}
	// Lines restricted to locations are given theirs (locations.go).
	lines, err = n.allocate(c, lines)
	if err != nil {
		n.fail(c, err)
		return
	}
	if n.holdCount() >= n.cfg.MaxHolds {
		n.fail(c, errorf(CodeHoldCapacity, "region %s keeps its maximum of %d holds; retry when some have finished", n.cfg.Region, n.cfg.MaxHolds))
		return
	}
	// Demand is noted only for SKUs known here: a client naming random
	// SKUs must not grow the node's state (an unknown SKU is rejected).
	for i := range lines {
		if s := n.lookup(lines[i].SKU); s != nil {
			n.noteDemand(s, lines[i].Qty)
		}
	}
	cc := *c
	cc.TTL = ttl
	cc.Lines, cc.Locations = lines, nil
	if n.routedRetry(&cc) {
		n.noteLowLines(lines)
		return
	}
	queued := n.queuedFor(lines)
	if !queued {
		if short := n.tryGrant(&cc, lines, nil); short == nil {
			return // grant noted each line's SKU if low (noteLowLines)
		}
	}
	n.noteLowLines(lines)
	if n.route(&cc, lines) {
		return
	}
	if queued {
		// Earlier shoppers wait for these units: join them, or be refused.
		n.waitOrReject(&cc, lines, nil)
		return
	}
	// Not enough here: borrow from peers with known surplus, or reject now.
	p := &pendingHold{cmd: cc, lines: lines, deadline: n.now.Add(n.cfg.BorrowTimeout)}
	if len(n.pending) < n.cfg.MaxPending && n.borrowFor(p) {
		for i := range lines {
			s := n.lookup(lines[i].SKU)
			if s == nil {
				continue // a partial hold's unknown line
			}
			s.waiting++
			p.skus = append(p.skus, s)
		}
		p.gen = p.genSum()
		n.pending = append(n.pending, p)
		if cc.IdemKey != "" {
			n.pendingIdem[cc.IdemKey] = p
		}
		return
	}
	n.grantOrReject(&cc, lines, nil)
}

// noteLowLines notes the SKUs of lines that are low here (noteLow) when
// a hold of them is not granted at once: a dry slice asks for a top-up
// when shoppers come, not only after a grant, or an empty region stays
// empty. A SKU homed elsewhere is not pulled back here. A hold granted at
// once needs no call: grant notes every line's SKU after reserving, when
// fewer units are available than before, under the same demand (one
// instant), so it notes every SKU this would, and more. The SKUs are
// resident: hold looked them up in this step, and the SKU cache evicts
// only at its end (the resident map is read, so the cache's hits and its
// LRU order stay as they were).
func (n *Node) noteLowLines(lines []Line) {
	for i := range lines {
		if s := n.skus[lines[i].SKU]; s != nil && !n.homed(s.sku) {
			n.noteLow(s)
		}
	}
}

// tryGrant grants the hold if every line is covered here and returns nil;
// otherwise it returns the first uncovered line and changes nothing.
func (n *Node) tryGrant(c *Command, lines []Line, waiters []uint64) *Line {
	if !n.cfg.bugs.GrantWithoutCheck {
		for i := range lines {
			s := n.lookup(lines[i].SKU)
			if s == nil || n.available(s) < lines[i].Qty {
				return &lines[i]
			}
		}
	}
	n.granted(c, n.grant(c, lines), waiters)
	return nil
}

// grant reserves lines (the caller checked that they are covered) and
// creates the hold, without idempotency key or reply.
func (n *Node) grant(c *Command, lines []Line) *holdRec {
	n.checkHoldLocations(lines)
	for i := range lines {
		s := n.lookup(lines[i].SKU)
		if s == nil { // only with the planted bug GrantWithoutCheck
			s = n.sku(lines[i].SKU)
		}
		lines[i].SKU = s.sku // the hold keeps the table's string, not the request's
		own := n.ownRow(s)
		own.Reserved += lines[i].Qty
		n.touchOwn(own)
		if !n.cfg.bugs.GrantWithoutCheck && s.availableOf(n.cfg.Region) < 0 {
			panic("escrow: grant drove available below zero")
		}
		n.noteLow(s)
	}
	var asked []Line
	if c.Partial {
		asked = lines // a partial hold granted in full
	}
	return n.newHold(c, lines, asked)
}

// newHold records a hold of the lines just reserved (asked: the cart as
// requested, partial holds only), without idempotency key or reply.
func (n *Node) newHold(c *Command, lines, asked []Line) *holdRec {
	now := nanos(n.now)
	h := &holdRec{IdemKey: c.IdemKey, Lines: lines, State: Held, created: now, expires: nanos(n.now.Add(c.TTL)),
		maxExpires: nanos(n.now.Add(n.cfg.MaxLifetime)), updated: now}
	if c.Meta != "" || c.Cart != "" || asked != nil {
		h.more = &holdMore{Meta: c.Meta, Cart: c.Cart, Asked: asked}
	}
	for {
		h.newID(n.cfg.Region, n.now.UnixMilli(), n.rnd())
		// holdIDTaken, with the holds map probed once for the check and
		// the insert (holdMap.probe).
		id := h.ID()
		taken, slot := n.holds.probe(id)
		if taken == nil && !n.storedIDTaken(id, n.now.UnixMilli()) {
			n.holds.putAt(slot, h)
			break
		}
	}
	n.markHold(h)
	n.created, n.createdCopy = h, n.holdEvent(EvHoldCreated, h, true)
	if !n.hc.on {
		n.expiry.push(h.expires, h) // with the hold cache: the store's index (holdcache.go)
	}
	n.stats.Granted++
	n.stats.ActiveHolds++
	return h
}

// granted remembers c's idempotency key for the new hold h and answers c
// and the requests waiting on the same key.
func (n *Node) granted(c *Command, h *holdRec, waiters []uint64) {
	if c.IdemKey != "" {
		n.addIdem(c.IdemKey, h.ID(), c.IdemHash)
	}
	// The lines of a hold never change after it is created, so the reply
	// shares them (see Reply.Hold) instead of copying them; and the hold
	// has not changed since newHold stated its creation, so the reply
	// shares that event's copy of the whole hold (both are read only).
	hc := n.createdCopy
	if n.created != h {
		hc = n.holdCopy(h)
	}
	n.created, n.createdCopy = nil, nil
	n.reply(Reply{ReqID: c.ReqID, Kind: CmdHold, Hold: hc})
	for _, w := range waiters {
		hw := *hc
		n.reply(Reply{ReqID: w, Kind: CmdHold, Hold: &hw, Replayed: true})
	}
}

// addIdem remembers key for the hold or waitlist entry id.
func (n *Node) addIdem(key, id string, hash uint64) {
	n.putIdem(&IdemEntry{Key: key, HoldID: id, Hash: hash, Expires: n.now.Add(n.cfg.IdemTTL)})
}

func (n *Node) reject(c *Command, lines []Line, waiters []uint64) {
	err := &Error{Code: CodeInsufficientStock}
	known := false
	for i := range lines {
		s := n.lookup(lines[i].SKU)
		if s == nil || len(s.list) == 0 {
			continue
		}
		known = true
		if a := n.available(s); a < lines[i].Qty {
			err.SKU, err.Available = lines[i].SKU, a
			s.reject++
			break
		}
	}
	if !known || err.SKU == "" {
		// Every SKU of the cart is unknown to every region this one knows,
		// or the shortfall moved: name the first unknown line.
		for i := range lines {
			if s := n.lookup(lines[i].SKU); s == nil || len(s.list) == 0 {
				err = errorf(CodeUnknownSKU, "sku %q is not stocked in any region known to %s", KeyName(lines[i].SKU), n.cfg.Region)
				err.SKU = lines[i].SKU
				break
			}
		}
	}
	if err.Code == CodeInsufficientStock {
		if err.SKU == "" {
			err.SKU = lines[0].SKU
		}
		err.Detail = "not enough units of " + KeyName(err.SKU) + " in region " + n.cfg.Region + ": " +
			utoa(err.Available) + " available here"
	}
	n.stats.Rejected++
	n.reply(Reply{ReqID: c.ReqID, Kind: CmdHold, Err: err})
	for _, w := range waiters {
		n.reply(Reply{ReqID: w, Kind: CmdHold, Err: err})
	}
}

// viewHold returns a copy of h with the state as of now, for a reply (from
// the hold arena; its lines are shared, as Ready allows).
func (n *Node) viewHold(h *holdRec) *Hold {
	c := n.holdCopy(h)
	c.State = h.stateAt(n.now)
	return c
}

// holdCount is what MaxHolds bounds: every hold kept (any state), or with
// the hold cache the HELD ones (terminal holds are the store's to prune).
func (n *Node) holdCount() int {
	if n.hc.on {
		return int(n.stats.ActiveHolds)
	}
	return n.holds.len()
}

func (n *Node) transition(c *Command) {
	owner, err := OwnerOf(c.HoldID)
	if err != nil {
		n.fail(c, err)
		return
	}
	if owner != n.cfg.Region {
		e := errorf(CodeNotOwner, "hold %s belongs to region %s", c.HoldID, owner)
		e.Owner = owner
		n.fail(c, e)
		return
	}
	h := n.liveHold(c.HoldID)
	if h == nil {
		n.fail(c, errorf(CodeNotFound, "no hold %s", c.HoldID))
		return
	}
	// The deadline is the contract: past it, the hold is expired for every
	// operation, whether or not the sweeper has run.
	if h.expiredAt(n.now) {
		n.expire(h)
	}
	// ok answers with h as it is now: changed, the event's copy, which
	// states h as it is now (nothing changes h between the event and the
	// reply; both are read only), else a copy of its own. Lines never
	// change once a hold exists: the reply shares them.
	ok := func(changed *Hold) {
		if changed == nil {
			changed = n.holdCopy(h)
		}
		n.reply(Reply{ReqID: c.ReqID, Kind: c.Kind, Hold: changed})
	}
	conflict := func(what string) {
		n.fail(c, errorf(CodeConflict, "cannot %s hold %s: it is %s", what, h.ID(), h.State))
	}
	switch c.Kind {
	case CmdGet:
		ok(nil)
	case CmdConfirm:
		switch h.State {
		case Confirmed:
			ok(nil)
		case Held:
			hc := n.finish(h, Confirmed, true)
			n.stats.Confirmed++
			ok(hc)
		default:
			conflict("confirm")
		}
	case CmdRelease:
		switch h.State {
		case Released, Expired:
			ok(nil) // the units are back either way
		case Held:
			hc := n.finish(h, Released, true)
			n.stats.ReleasedHolds++
			ok(hc)
		default:
			conflict("release")
		}
	case CmdExtend:
		if h.State != Held {
			conflict("extend")
			return
		}
		if c.TTL < MinTTL || c.TTL > n.cfg.MaxLifetime {
			n.fail(c, errorf(CodeInvalid, "ttl must be between %v and %v, got %v", MinTTL, n.cfg.MaxLifetime, c.TTL))
			return
		}
		exp := min(nanos(n.now.Add(c.TTL)), h.maxExpires)
		var hc *Hold
		if exp > h.expires {
			// The expiry index keeps its entry at the old deadline; the
			// sweeper moves it when it comes. Pushing one per extend would
			// let a client that heartbeats fast grow the index without bound.
			n.touchHold(h)
			h.expires = exp
			h.updated = nanos(n.now)
			n.markHold(h)
			hc = n.holdEvent(EvHoldExtended, h, true)
		}
		ok(hc)
	}
}

var finishEvents = [...]EventKind{Confirmed: EvHoldConfirmed, Released: EvHoldReleased, Expired: EvHoldExpired}

// finish moves a HELD hold to a terminal state and books its units. It
// returns the event's copy of h, which a reply that follows at once may
// share (transition) when replied; else (an expiry) the copy is reused
// once the Ready is Advanced (holdout.go), and nothing may keep it.
func (n *Node) finish(h *holdRec, to HoldState, replied bool) *Hold {
	if h.State != Held {
		panic("escrow: finish of a " + h.State.String() + " hold")
	}
	var stale *Hold
	if n.cfg.bugs.FinishReplyStale {
		stale = n.holdCopy(h) // the planted bug: a copy from before the change
	}
	n.touchHold(h)
	for _, l := range h.Lines {
		s := n.lookup(l.SKU)
		own := n.ownRow(s)
		switch to {
		case Confirmed:
			own.Sold += l.Qty
		case Released, Expired:
			if to == Expired && n.cfg.bugs.KeepExpiredUnits {
				own.Sold += l.Qty // the bug: units vanish into "sold"
			} else {
				own.Released += l.Qty
			}
			n.bump(s)
		}
		n.touchOwn(own)
	}
	h.State = to
	h.updated = nanos(n.now)
	n.markHold(h)
	hc := n.holdEvent(finishEvents[to], h, replied)
	if n.cfg.bugs.DuplicateEvent {
		n.holdEvent(finishEvents[to], h, replied)
	}
	n.stats.ActiveHolds--
	if !n.hc.on {
		n.retire.push(nanos(n.now.Add(n.cfg.HoldRetain)), h) // with the hold cache: the store prunes (holdcache.go)
	}
	n.retryPending()
	if stale != nil {
		return stale
	}
	return hc
}

func (n *Node) expire(h *holdRec) {
	n.finish(h, Expired, false) // no reply shares an expiry's copy
	n.stats.ExpiredHolds++
}

// validSKUQty checks the SKU and quantity of a restock or write-off; when
// one is bad it fails c and returns false.
func (n *Node) validSKUQty(c *Command) bool {
	err := n.checkStockKey(c.SKU, c.Kind == CmdRestock)
	if err == nil {
		err = ValidQty("qty", c.Qty)
	}
	if err != nil {
		n.fail(c, err)
		return false
	}
	return true
}

func (n *Node) restock(c *Command) {
	if !n.validSKUQty(c) || n.stockReplay(c) || !n.ifMatch(c) {
		return
	}
	s := n.lookup(c.SKU)
	if s != nil && n.skuSums(s, nil).minted+c.Qty >= MaxSKUUnits {
		n.fail(c, errorf(CodeInvalid, "restock of %d units of %s would take the units minted over all regions past %d",
			c.Qty, c.SKU, uint64(MaxSKUUnits)))
		return
	}
	if s == nil {
		// Not n.sku: with the SKU cache that would read the source a
		// second time for a SKU it just said it does not have (a
		// catalogue import is all such SKUs).
		s = n.newSKU(c.SKU)
	}
	own := n.ownRow(s)
	own.Minted += c.Qty
	n.touchOwn(own)
	n.bump(s)
	n.stockEvent(EvStockRestocked, s, c.Qty)
	n.stockApplied(c)
	n.reply(Reply{ReqID: c.ReqID, Kind: c.Kind, Applied: c.Qty, Stock: n.stockView(s)})
	n.retryPending()
}

func (n *Node) writeOff(c *Command) {
	if !n.validSKUQty(c) || n.stockReplay(c) || !n.ifMatch(c) {
		return
	}
	s := n.lookup(c.SKU)
	if s == nil {
		n.fail(c, errorf(CodeUnknownSKU, "sku %q is not known in region %s", c.SKU, n.cfg.Region))
		return
	}
	take := min(c.Qty, n.available(s))
	if take > 0 {
		own := n.ownRow(s)
		own.Shrunk += take
		n.touchOwn(own)
		n.stockEvent(EvStockWrittenOff, s, take)
	}
	n.stockApplied(c)
	n.reply(Reply{ReqID: c.ReqID, Kind: c.Kind, Applied: take, Stock: n.stockView(s)})
}

func (n *Node) stock(c *Command) {
	if err := n.checkStockKey(c.SKU, false); err != nil {
		n.fail(c, err)
		return
	}
	s := n.lookup(c.SKU)
	locs := n.locationStock(c.SKU)
	if (s == nil || len(s.list) == 0) && len(locs) == 0 {
		n.fail(c, errorf(CodeUnknownSKU, "sku %q is not known in region %s", c.SKU, n.cfg.Region))
		return
	}
	var v *StockView
	if s != nil {
		v = n.stockView(s)
	} else {
		v = &StockView{SKU: c.SKU, Region: n.cfg.Region, Version: "0"}
	}
	v.Locations = locs
	n.reply(Reply{ReqID: c.ReqID, Kind: c.Kind, Stock: v})
}

func (n *Node) stockView(s *skuState) *StockView {
	v := &StockView{SKU: s.sku, Region: n.cfg.Region, Available: n.available(s)}
	if s.own != nil {
		v.Held, v.Sold = s.own.Held(), s.own.Sold
	}
	for _, rec := range s.list {
		a := s.availableOf(rec.Region)
		rs := RegionStock{Region: rec.Region, Available: a, Held: rec.Held(), Sold: rec.Sold, Seq: rec.Seq}
		if rec.updated != 0 {
			rs.Age = time.Duration(n.clockNs - rec.updated)
		}
		if a > 0 {
			v.Global += a
		}
		v.Regions = append(v.Regions, rs)
	}
	sortRegionStock(v.Regions)
	v.Version = n.stockVersion(s)
	v.LastRecount = n.recounts[s.sku]
	return v
}

func sortRegionStock(rs []RegionStock) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].Region < rs[j-1].Region; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

func utoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// putIdem records e (replacing an entry of the same key) and asks the
// runtime to write it in this Ready's batch.
func (n *Node) putIdem(e *IdemEntry) {
	// With the hold cache the stored entry is read: its index entry ends.
	if old := n.idemOf(e.Key); old != nil {
		n.endIdem(old)
	}
	r := newIdemRec(e)
	n.idem[e.Key] = r
	if n.hc.on {
		n.noteIdemPut(r)
	} else {
		n.idemExpiry.push(r.expires, r)
	}
	// A key deleted earlier in this Ready is re-added: drop the delete so
	// that the batch means the same in any order of puts and deletes.
	n.out.Persist.DeletedIdem = removeString(n.out.Persist.DeletedIdem, e.Key)
	n.out.Persist.Idem = append(n.out.Persist.Idem, *e)
	n.notePutIdem()
}

func removeString(xs []string, x string) []string {
	for i := range xs {
		if xs[i] == x {
			return append(xs[:i], xs[i+1:]...)
		}
	}
	return xs
}

var _ = time.Second
