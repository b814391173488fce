package gossip

import (
	"sync"
	"time"
)

// nonceCache remembers, per signer, the nonces of the forwarded commands
// accepted within the window, so that a recorded request cannot be played
// again: a request older or newer than the window is refused by its
// timestamp, one within it by its nonce. Each signer's memory is bounded
// (perPeer entries); when it is full of live entries, new requests from
// that signer are refused until some expire (a flood from one peer cannot
// grow memory, nor evict the nonces that keep its old requests out).
type nonceCache struct {
	mu      sync.Mutex
	window  time.Duration
	perPeer int
	peers   map[string]*peerNonces
}

type peerNonces struct {
	set  map[uint64]time.Time // nonce -> envelope time
	ring []nonceAt            // in acceptance order, for expiry
	head int
}

type nonceAt struct {
	nonce uint64
	at    time.Time
}

func newNonceCache(window time.Duration, perPeer int) *nonceCache {
	return &nonceCache{window: window, perPeer: perPeer, peers: map[string]*peerNonces{}}
}

// Result of nonceCache.check.
const (
	nonceOK     = ""
	nonceStale  = "stale"  // timestamp outside the window
	nonceReplay = "replay" // seen before
	nonceFull   = "full"   // too many live requests from this signer
)

// check accepts (and remembers) the nonce of a request signed at `at`, or
// says why not.
func (c *nonceCache) check(signer string, nonce uint64, at, now time.Time) string {
	if at.Before(now.Add(-c.window)) || at.After(now.Add(c.window)) {
		return nonceStale
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[signer]
	if p == nil {
		p = &peerNonces{set: map[uint64]time.Time{}}
		c.peers[signer] = p
	}
	// Expire from the oldest accepted: an entry can go once its time is
	// out of the window (a copy would be refused as stale). Entries are in
	// acceptance order, which is near time order; the small disorder only
	// keeps an entry a little longer.
	cut := now.Add(-c.window)
	for p.head < len(p.ring) && !p.ring[p.head].at.After(cut) {
		delete(p.set, p.ring[p.head].nonce)
		p.head++
	}
	if p.head > 0 && p.head*2 >= len(p.ring) {
		p.ring = append(p.ring[:0], p.ring[p.head:]...)
		p.head = 0
	}
	if _, ok := p.set[nonce]; ok {
		return nonceReplay
	}
	if len(p.set) >= c.perPeer {
		return nonceFull
	}
	p.set[nonce] = at
	p.ring = append(p.ring, nonceAt{nonce, at})
	return nonceOK
}
