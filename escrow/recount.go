package escrow

import "time"

// ERP recount: the warehouse system states how many units of a SKU it has
// on hand as of some time, and the region turns that absolute count into
// the restock or write-off of the difference.
//
// On hand means the units not yet sold: available + held, summed over
// every region's row of the SKU in this region's view. Sold units (of
// confirmed holds) have left the shelf for holdfast and are not part of
// it. So after a recount to N, Σ available + Σ held = N in this region's
// view, and it stays so as holds come and go (a hold moves units from
// available to held, a confirm from held to sold: N then counts the units
// sold since the recount too, i.e. available + held + sold since = N).
//
// The difference is applied to this region's own slice: a positive one is
// minted here (restock), a negative one is written off from what is
// available here; units held, or in other regions' slices, cannot be
// written off here and are reported as Unresolved (recount again later,
// or at the region that has them).
//
// Peers' rows are lower bounds that may lag, so the count is refused
// (CodeStaleView) unless every peer with a row of the SKU was heard from
// within RecountMaxLag and shows no gap; Force overrides (the runtime logs
// it). An as_of not after the last recount applied is refused
// (CodeConflict): replays and out-of-order recounts change nothing.

// MaxOnHand bounds a recount's on-hand count.
const MaxOnHand = MaxQty * 1000

// MaxRecountAhead bounds how far a recount's as_of may be ahead of the
// region's clock.
const MaxRecountAhead = 5 * time.Minute

// RecountMark is the as_of of the last recount of one SKU (Persist, State).
type RecountMark struct {
	SKU  string
	AsOf time.Time
}

// RecountResult is what a recount did.
type RecountResult struct {
	// Before is available + held over every row in this region's view
	// before the recount; Delta = OnHand − Before.
	Before uint64
	Delta  int64
	// Unresolved is the part of a negative delta that could not be
	// written off here (held units, or units in other regions' slices).
	Unresolved uint64
	// Forced: the view was stale and Force overrode the check.
	Forced bool
	// Stale names the peers whose view was stale (with Forced).
	Stale []string
}

func (n *Node) recount(c *Command) {
	if err := n.checkStockKey(c.SKU, true); err != nil {
		n.fail(c, err)
		return
	}
	if c.OnHand > MaxOnHand {
		n.fail(c, errorf(CodeInvalid, "on_hand must be at most %d, got %d", MaxOnHand, c.OnHand))
		return
	}
	if c.AsOf.IsZero() {
		n.fail(c, errorf(CodeInvalid, "a recount needs as_of"))
		return
	}
	if c.AsOf.After(n.now.Add(MaxRecountAhead)) {
		// A count from the future would block every later one.
		n.fail(c, errorf(CodeInvalid, "as_of %s is more than %v ahead of region %s's clock",
			c.AsOf.UTC().Format(time.RFC3339), MaxRecountAhead, n.cfg.Region))
		return
	}
	if !n.ifMatch(c) {
		return
	}
	if last := n.recounts[c.SKU]; !c.AsOf.After(last) {
		n.fail(c, errorf(CodeConflict, "recount of %s as of %s is not after the last one applied here (%s)",
			c.SKU, c.AsOf.UTC().Format(time.RFC3339Nano), last.UTC().Format(time.RFC3339Nano)))
		return
	}
	// A refused recount must not grow the node's state: the SKU is
	// created only once the recount is accepted.
	var stale []string
	s := n.lookup(c.SKU)
	if s != nil {
		stale = n.staleViews(s)
	}
	if len(stale) > 0 && !c.Force {
		n.fail(c, errorf(CodeStaleView, "region %s's view of %s's rows of %s is older than %v; retry, or force",
			n.cfg.Region, stale[0], c.SKU, n.cfg.RecountMaxLag))
		return
	}
	if s == nil { // not n.sku: one source read per miss (see restock)
		s = n.newSKU(c.SKU)
	}
	var before int64
	for _, rec := range s.list {
		if a := s.availableOf(rec.Region); a > 0 {
			before += a
		}
		before += int64(rec.Held())
	}
	res := &RecountResult{Before: uint64(before), Delta: int64(c.OnHand) - before, Forced: len(stale) > 0, Stale: stale}
	var applied uint64
	switch {
	case res.Delta > 0:
		applied = uint64(res.Delta)
		own := n.ownRow(s)
		own.Minted += applied
		n.touchOwn(own)
		n.bump(s)
		n.stockEvent(EvStockRestocked, s, applied)
	case res.Delta < 0:
		want := uint64(-res.Delta)
		applied = min(want, n.available(s))
		res.Unresolved = want - applied
		if applied > 0 {
			own := n.ownRow(s)
			own.Shrunk += applied
			n.touchOwn(own)
			n.stockEvent(EvStockWrittenOff, s, applied)
		}
	}
	n.recounts[c.SKU] = c.AsOf
	n.out.Persist.Recounts = append(n.out.Persist.Recounts, RecountMark{SKU: c.SKU, AsOf: c.AsOf})
	n.stats.Recounts++
	n.reply(Reply{ReqID: c.ReqID, Kind: c.Kind, Applied: applied, Recount: res, Stock: n.stockView(s)})
	n.retryPending()
}

// staleViews returns the peers with a row of s whose view here may lag:
// not heard from within RecountMaxLag, or with a known gap in their rows.
func (n *Node) staleViews(s *skuState) []string {
	if n.cfg.RecountMaxLag < 0 {
		return nil
	}
	var out []string
	for _, rec := range s.list {
		if rec.Region == n.cfg.Region {
			continue
		}
		p := n.peers[rec.Region]
		if p == nil || p.heard.IsZero() || n.now.Sub(p.heard) > n.cfg.RecountMaxLag || p.suspect || p.repairAt != (time.Time{}) {
			out = append(out, rec.Region)
		}
	}
	return out
}

// stockVersion is the version of s as this region sees its own stock:
// its own row's Seq and the units it received from peers. Both only grow,
// and every change of available, held or sold here moves one of them.
func (n *Node) stockVersion(s *skuState) string {
	var seq uint64
	if s.own != nil {
		seq = s.own.Seq
	}
	var recv uint64
	for _, rec := range s.list {
		if rec.Region != n.cfg.Region {
			recv += rec.SentTo(n.cfg.Region)
		}
	}
	return "s" + utoa(seq) + "r" + utoa(recv)
}

// ifMatch checks c.IfMatch against the SKU's version; when it differs it
// fails c and returns false.
func (n *Node) ifMatch(c *Command) bool {
	if c.IfMatch == "" {
		return true
	}
	v := "s0r0"
	if s := n.lookup(c.SKU); s != nil {
		v = n.stockVersion(s)
	}
	if v != c.IfMatch {
		n.fail(c, errorf(CodePreconditionFailed, "the stock of %s moved: version %s, If-Match %s", c.SKU, v, c.IfMatch))
		return false
	}
	return true
}
