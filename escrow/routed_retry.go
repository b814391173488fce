package escrow

import "time"

// Bounds of homes.fresh: when it holds maxFresh keys, those decided more
// than freshFor ago are dropped (their fallback, if it ever comes, is
// refused: safe).
const (
	maxFresh = 1024
	freshFor = time.Minute
)

// routedRetry handles a hold whose idempotency key this region routed
// before to a scarce SKU's home. It answers and returns true unless the
// hold may run here.
//
// A retry (not Routed) goes where the first attempt went, even if the home
// changed: that region dedupes it. When that region cannot be reached now
// the retry is refused with CodeHomeUnreachable rather than run here: the
// home may have granted the first attempt and only its answer been lost,
// and a hold granted here too would be a second hold for one key.
//
// A routed hold run here (Routed, at the gateway: the runtime found the
// home gone, escrow.Input.Unreachable) may run only as the attempt that
// made the routing decision, right after it: the home certainly never saw
// that one. A later attempt's fallback is refused the same way, and so is
// every fallback after a restart (the decisions of an earlier incarnation
// are not fresh).
func (n *Node) routedRetry(c *Command) bool {
	if c.IdemKey == "" {
		return false
	}
	e := n.idemOf(c.IdemKey)
	if e == nil || e.RoutedTo == "" || e.RoutedTo == n.cfg.Region || !e.liveAt(n.now) || e.Hash != c.IdemHash {
		return false
	}
	if !c.Routed {
		delete(n.homes.fresh, c.IdemKey)
		if n.worthAsking(e.RoutedTo) {
			n.replyRouted(c, e.RoutedTo, "retry of a routed hold")
			return true
		}
	} else if _, ok := n.homes.fresh[c.IdemKey]; ok {
		delete(n.homes.fresh, c.IdemKey)
		return false
	}
	n.stats.RoutedRetryRefused++
	n.fail(c, &Error{Code: CodeHomeUnreachable, Owner: e.RoutedTo,
		Detail: "an earlier attempt of this hold (idempotency key " + c.IdemKey + ") was routed to region " + e.RoutedTo +
			", which cannot be reached now and may hold it; retry later with the same key"})
	return true
}
