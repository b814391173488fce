package escrow

import "time"

// Units sent to a region it cannot hear of are lost to shoppers until the
// fault ends: a region's Sent change is durable at once, but the receiver
// sells the units only once the donor's row reaches it, and a row sent
// into a partition is dropped (anti-entropy repairs it after heal). A
// region therefore moves units on its own initiative — to the home of a
// scarce SKU (pushHomes, route) or as the rebalancer advises
// (onAdvice) — only to peers it is in touch with: heard from within
// inTouchWindow, a digest and a half. PeerSilence (3 digests), which
// decides whom a hold waits for, is too long for this: a region kept
// pushing its units into a fresh partition for three seconds, and a
// region that gave everything to its home had nothing left for its own
// shoppers while the home could not see what it got. Borrow answers need
// no such check: the borrower asked, so it was in touch a round trip ago.

// inTouchWindow is how recently a peer must have been heard from for this
// region to send it units unasked: a digest interval and a half, at most
// PeerSilence; PeerSilence when digests are off; negative (never out of
// touch for silence) when PeerSilence is.
func (n *Node) inTouchWindow() time.Duration {
	w := n.cfg.PeerSilence
	if w < 0 {
		return w
	}
	if d := n.cfg.DigestInterval; d > 0 {
		w = min(w, d+d/2)
	}
	return w
}

// outOfTouch reports whether units sent to peer r unasked would likely sit
// unseen: it is fenced, or found gone and silent since, or last heard from
// more than inTouchWindow ago. A peer never heard from gets the benefit of
// the doubt, as in worthAsking (the daemon that advises a move to it heard
// its digest); homeOf asks more of a home.
func (n *Node) outOfTouch(r string) bool {
	p := n.peers[r]
	if p == nil {
		return false
	}
	if p.fenced || !p.gone.IsZero() && !p.heard.After(p.gone) {
		return true
	}
	w := n.inTouchWindow()
	return w >= 0 && !p.heard.IsZero() && n.now.Sub(p.heard) > w
}

// pushFreshWindow is how recently a home must have been heard from for
// this region to push it units (pushHomes): the fresh-push rule. A home
// heard from within inTouchWindow (1.5 s by default) but not lately may
// already be behind a partition that began since, or crashed: the units
// pushed meanwhile sit unseen there until heal or repair, while shoppers
// here are refused or routed. 300 ms is about the longest inter-region
// round trip; a home that sells hears from and replicates to its peers
// far more often than that, and a quiet one is heard at each digest, so
// a push waits at most a digest interval. Routing (homeOf) keeps the
// in-touch window: a routed hold that finds no home falls back or is
// retried, whereas pushed units cannot be taken back.
const pushFreshWindow = 300 * time.Millisecond

// freshForPush reports whether peer r was heard from within
// pushFreshWindow (at most inTouchWindow; always, when silence is not
// watched). A peer never heard from is not fresh.
func (n *Node) freshForPush(r string) bool {
	p := n.peers[r]
	if p == nil || p.heard.IsZero() {
		return false
	}
	w := n.inTouchWindow()
	if w < 0 {
		return true
	}
	return n.now.Sub(p.heard) <= min(w, pushFreshWindow)
}
