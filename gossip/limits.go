package gossip

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// inboxPrefix is the NATS inbox prefix of the transport: the configured
// one, or _INBOX.<cluster>.<region>, so that NATS permissions can give each
// region its own replies (see configs/nats-supercluster.conf).
func (c *Config) inboxPrefix() string {
	if c.InboxPrefix != "" {
		return c.InboxPrefix
	}
	return DefaultInboxPrefix(c.Cluster, c.Region)
}

// DefaultInboxPrefix is the inbox prefix of region in cluster when none is
// configured.
func DefaultInboxPrefix(cluster, region string) string {
	return "_INBOX." + cluster + "." + region
}

func validInboxPrefix(p string) error {
	if len(p) > 128 || strings.ContainsAny(p, "*> \t\r\n") || strings.HasPrefix(p, ".") ||
		strings.HasSuffix(p, ".") || strings.Contains(p, "..") {
		return fmt.Errorf("gossip: inbox prefix %q must be a NATS subject of at most 128 bytes without wildcards", p)
	}
	return nil
}

// maxLimitedPeers bounds the peers that have rate limiters; beyond it, new
// senders' repair requests are refused (a membership is far smaller).
const maxLimitedPeers = 1024

// peerLimits holds per-peer token buckets: repair requests a peer may send
// us, and bytes of repair answers we send it. A peer that asks too often
// is dropped (counted), as is an answer over its byte budget: the peer
// asks again after its repair timeout, and anti-entropy completes the
// repair at the rate allowed.
type peerLimits struct {
	mu                   sync.Mutex
	reqRate, bytesRate   rate.Limit
	reqBurst, bytesBurst int
	req                  map[string]*rate.Limiter
	bytes                map[string]*rate.Limiter
}

func newPeerLimits(reqRate float64, reqBurst int, bytesRate float64, bytesBurst int) *peerLimits {
	return &peerLimits{reqRate: rate.Limit(reqRate), reqBurst: reqBurst,
		bytesRate: rate.Limit(bytesRate), bytesBurst: bytesBurst,
		req: map[string]*rate.Limiter{}, bytes: map[string]*rate.Limiter{}}
}

func (l *peerLimits) limiter(m map[string]*rate.Limiter, peer string, r rate.Limit, b int) *rate.Limiter {
	lim := m[peer]
	if lim == nil {
		if len(m) >= maxLimitedPeers {
			return nil
		}
		lim = rate.NewLimiter(r, b)
		m[peer] = lim
	}
	return lim
}

// allowRepair reports whether peer may have a repair request served now.
func (l *peerLimits) allowRepair(peer string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.limiter(l.req, peer, l.reqRate, l.reqBurst)
	return lim != nil && lim.AllowN(now, 1)
}

// allowAnswer reports whether n more bytes of repair answer may go to peer
// now.
func (l *peerLimits) allowAnswer(peer string, n int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.limiter(l.bytes, peer, l.bytesRate, l.bytesBurst)
	return lim != nil && lim.AllowN(now, n)
}

// membership is the set of regions whose messages and forwarded requests
// are accepted (Config.Members); nil when the membership is open.
func (c *Config) membership() map[string]bool {
	names := c.Members
	if len(names) == 0 {
		for name := range c.MemberKeys {
			names = append(names, name)
		}
	}
	if len(names) == 0 && len(c.AllowPeers) > 0 {
		names = append([]string{c.Region}, c.AllowPeers...)
	}
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// isMember reports whether region r is in the membership.
func (t *Transport) isMember(r string) bool {
	return t.member == nil || t.member[r]
}
