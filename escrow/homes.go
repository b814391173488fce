package escrow

import (
	"sort"
	"time"
)

// Homes of scarce SKUs.
//
// When a SKU is nearly sold out everywhere, its last units sit a few at a
// time in some region while shoppers arrive in all of them. A region that
// is out cannot borrow them in time (a borrow takes an inter-region round
// trip, often longer than the borrow deadline), so it refuses shoppers while
// the units exist elsewhere, and the units it borrows late chase the next
// shopper from region to region. The rebalancer therefore names a home for
// such a SKU (MsgAdvice.Homes): every other region sends the home its units
// of the SKU as they become available (pushHomes), does not top up or
// borrow the SKU itself, and answers a hold it cannot cover with CodeRouted,
// naming the home; the runtime sends the same hold there (Command.Routed),
// where it is granted from the home's own slice like any local hold.
//
// Safety does not depend on homes: every region still grants only from its
// own slice, and units move through the same durable Sent change as a
// borrow. Homes only change where units sit and where a hold is served.
// They lapse HomeTTL after the latest advice, and a home not heard from
// within a digest and a half (outOfTouch, in_touch.go) is ignored, so a
// dead daemon or a cut-off home leaves plain escrow. Units are pushed to a
// home only if it was heard from within 300 ms (freshForPush, the
// fresh-push rule).

// homes is the node's view of the latest advice's homes. The idempotency
// keys of the holds it routed are IdemEntry values with RoutedTo set, kept
// and persisted with the other keys (n.idem), so that a client's retry goes
// to the same region even if the home changed or this region restarted
// meanwhile; routedLog bounds how many it keeps (MaxRouted).
type homes struct {
	list  []Home            // sorted by SKU
	bySKU map[string]string // SKU → home region
	until time.Time
	// rx: units of each homed SKU this region had received from others
	// when the latest advice came. Units received since are not pushed on
	// until the next advice (see pushHomes).
	rx map[string]uint64
	// pushAt: pushHomes scans the homes again at or after this time.
	pushAt time.Time

	routedLog []string // FIFO of routed keys, for the MaxRouted bound
	maxRouted int
	// fresh: keys routed by this incarnation whose first attempt has not
	// come back yet, with the time of the decision (routedRetry).
	fresh map[string]time.Time
}

// homePushEvery is the least time between two scans of pushHomes.
const homePushEvery = 10 * time.Millisecond

func newHomes(maxRouted int) homes {
	return homes{bySKU: map[string]string{}, rx: map[string]uint64{}, maxRouted: maxRouted, fresh: map[string]time.Time{}}
}

// setHomes replaces the homes with those of an advice received now. Homes
// naming invalid or disallowed regions or SKUs are skipped; a SKU named
// twice keeps its first home.
func (n *Node) setHomes(hs []Home) {
	h := &n.homes
	h.list = h.list[:0]
	clear(h.bySKU)
	clear(h.rx)
	h.pushAt = time.Time{} // new homes: send at once
	if n.cfg.HomeTTL < 0 {
		return
	}
	for _, x := range hs {
		if ValidStockKey(x.SKU) != nil || ValidRegion(x.Region) != nil {
			continue
		}
		if !n.adviceTarget(x.Region) {
			continue // a home outside the cluster would strand the units sent to it
		}
		if !n.keyMaySell(x.SKU, x.Region) {
			n.refuseLocation()
			continue // a home that may not sell the location would strand its units
		}
		if _, dup := h.bySKU[x.SKU]; dup || len(h.list) >= MaxWireHomes {
			continue
		}
		h.bySKU[x.SKU] = x.Region
		h.list = append(h.list, x)
		if s := n.lookup(x.SKU); s != nil {
			h.rx[x.SKU] = n.received(s)
		}
	}
	sort.Slice(h.list, func(i, j int) bool { return h.list[i].SKU < h.list[j].SKU })
	h.until = n.now.Add(n.cfg.HomeTTL)
}

// homeOf returns the home of sku when it is another region that is in
// force and in touch: the region this node routes holds to and sends
// its units of sku to.
func (n *Node) homeOf(sku string) (string, bool) {
	h := &n.homes
	if len(h.list) == 0 || n.now.After(h.until) {
		return "", false
	}
	r, ok := h.bySKU[sku]
	if !ok || r == n.cfg.Region || n.outOfTouch(r) {
		// Not heard from lately (in_touch.go): units pushed there and
		// holds routed there would be lost to shoppers for as long as
		// it is cut off; meanwhile this region sells as plain escrow.
		return "", false
	}
	if p := n.peers[r]; p == nil || p.heard.IsZero() {
		return "", false // never heard from: it may not exist
	}
	return r, true
}

// Homes returns the homes in force (sorted by SKU), for metrics and tests.
func (n *Node) Homes() []Home {
	if n.HomesInForce() == 0 {
		return nil
	}
	return append([]Home(nil), n.homes.list...)
}

// HomesInForce returns how many homes are in force, without copying them
// (a gauge reads it every tick).
func (n *Node) HomesInForce() int {
	if n.now.After(n.homes.until) {
		return 0
	}
	return len(n.homes.list)
}

// route decides whether a hold that this region cannot cover goes to the
// home of one of its short lines. It answers CodeRouted and returns true
// when it does.
func (n *Node) route(c *Command, lines []Line) bool {
	if c.Routed {
		return false
	}
	to := ""
	for i := range lines {
		s := n.lookup(lines[i].SKU)
		if s == nil || n.available(s) >= lines[i].Qty {
			continue
		}
		if r, ok := n.homeOf(lines[i].SKU); ok {
			to = r
			break
		}
	}
	if to == "" {
		return false
	}
	n.rememberRoute(c, to)
	n.replyRouted(c, to, "home of a scarce SKU")
	return true
}

// replyRouted answers hold c with CodeRouted naming region to; nothing
// else changes here.
func (n *Node) replyRouted(c *Command, to, why string) {
	n.stats.Routed++
	n.reply(Reply{ReqID: c.ReqID, Kind: CmdHold,
		Err: &Error{Code: CodeRouted, Owner: to, Detail: "hold is served by region " + to + " (" + why + ")"}})
}

// rememberRoute records that the hold c (with an idempotency key) was
// routed to region to. The entry is persisted in the same batch as the
// CodeRouted answer, so the runtime forwards the hold only once the
// decision is durable: a retry after a crash of this region still goes to
// to, which replays the hold it granted instead of a second one being
// granted here or at another home.
func (n *Node) rememberRoute(c *Command, to string) {
	h := &n.homes
	if c.IdemKey == "" || h.maxRouted <= 0 {
		return
	}
	if e := n.idemOf(c.IdemKey); e != nil && e.RoutedTo == to && e.Hash == c.IdemHash && e.liveAt(n.now) {
		return // already durable (a retry); its expiry stays that of the first
	}
	for len(h.routedLog) >= h.maxRouted {
		k := h.routedLog[0]
		h.routedLog = h.routedLog[1:]
		if e := n.idemOf(k); e != nil && e.RoutedTo != "" {
			n.dropIdem(e)
			break
		}
	}
	h.routedLog = append(h.routedLog, c.IdemKey)
	if len(h.fresh) >= maxFresh {
		for k, t := range h.fresh {
			if n.now.Sub(t) > freshFor {
				delete(h.fresh, k)
			}
		}
	}
	h.fresh[c.IdemKey] = n.now
	n.putIdem(&IdemEntry{Key: c.IdemKey, RoutedTo: to, Hash: c.IdemHash, Expires: n.now.Add(n.cfg.IdemTTL)})
}

// homed reports whether sku has a home elsewhere: this region then does
// not top it up (it would pull back units it sends to the home). It still
// answers borrow requests as usual: only regions without a home in force
// send them, and they give up their units to a shopper waiting there.
func (n *Node) homed(sku string) bool {
	_, ok := n.homeOf(sku)
	return ok
}

// pushHomes sends the home of every scarce SKU the units this region has
// of it, beyond what holds waiting here on a borrow need. It runs at most
// every homePushEvery (10ms), and at once after an advice, so units
// released or restocked here reach the home within 10ms.
//
// Units received from other regions since the latest advice are not sent
// on before the next one: regions whose views of the homes differ (one
// missed the latest advice) would otherwise pass the same units round a
// cycle at message speed, a durable write per hop, until the views agree.
// So a unit makes at most one hop per advice; meanwhile it sells here, and
// a home short of units borrows it like any region.
//
// A scan costs O(homes) and every Step ticks, so with thousands of homes
// scanning on each command would cost more than the holds themselves: a
// scan runs at most every homePushEvery (the runtime ticks every 10–50 ms).
func (n *Node) pushHomes() {
	if len(n.homes.list) == 0 || n.now.Before(n.homes.pushAt) {
		return
	}
	n.homes.pushAt = n.now.Add(homePushEvery)
	for _, x := range n.homes.list {
		to, ok := n.homeOf(x.SKU)
		if !ok || !n.freshForPush(to) {
			continue // not heard from lately: pushed units may be stranded (in_touch.go)
		}
		s := n.lookup(x.SKU)
		if s == nil || s.own == nil {
			continue
		}
		give := n.available(s)
		if give > 0 {
			give = subFloor(give, n.pendingNeed(x.SKU))
		}
		if give > 0 {
			// available without what was received since the advice.
			r := &s.own.Row
			give = min(give, subFloor(r.Minted+r.Released+n.homes.rx[x.SKU], r.Shrunk+r.Reserved+r.SentTotal()))
		}
		if give == 0 {
			continue
		}
		s.own.addSent(to, give)
		n.touchOwn(s.own)
		n.stats.DonatedUnits += give
		n.stats.HomeUnitsSent += give
	}
}

// received returns the units of s that other regions have sent this one,
// as far as this region has heard.
func (n *Node) received(s *skuState) uint64 {
	var q uint64
	for _, rec := range s.list {
		if rec.Region != n.cfg.Region {
			q += rec.SentTo(n.cfg.Region)
		}
	}
	return q
}
