package escrow

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Zero trust between regions: the core's part.
//
// A node believes a peer only what the peer can speak for, and bounds
// everything it is told:
//
//   - Membership (Config.Members). A message from a region outside the
//     membership is dropped and counted (Stats.NonMember); so is each piece of
//     advice that would move units to, or make a home of, a region outside
//     it. A row is merged and stored only when its writer is a member (the
//     writer is the sender: a region sends only its own rows). A member's row
//     may still name a non-member in Sent (units sent to a region that was
//     removed later): those units count against the sender and credit no
//     member, so they change no member's available count. Empty Members:
//     every well-formed region name is a member (a quick local setup), and
//     the node keeps state for at most maxPeers regions.
//   - Bounded claims. Every row field is below 2^56 (the wire decoder and
//     checkRowBounds), and per SKU the sum over all writers of Minted,
//     Reserved, Shrunk and of the units sent stays below MaxSKUUnits: a peer
//     row that would break that is dropped, never stored, and counted
//     (Stats.OutOfBounds). So received, available and the conservation
//     totals are sums of a bounded number of bounded terms: none of them can
//     wrap, whatever peers say. A node learns at most MaxPeerSKUs SKUs from
//     peers (Stats.PeerSKUs); rows and digest entries of further new SKUs are
//     refused and counted (Stats.PeerSKUsRefused).
//   - Plausible sequences and epochs. A peer's sequence may not jump by
//     more than MaxSeqJump past the last one received from it
//     (Stats.SeqWindow); advice more than maxAdviceLead ahead of the node's
//     clock is ignored, and the epoch remembered is never ahead of the clock
//     by more than maxAdviceSkew, so a forged far-future epoch cannot shut
//     out genuine advice (borrow.go).
//   - Fencing needs more than one voice (fence.go).
//
// What a message may say in the name of its sender (a forged From) is the
// transport's to verify: signatures are checked before a message reaches
// the node.

const (
	// DefaultMaxPeerSKUs is the default of Config.MaxPeerSKUs.
	DefaultMaxPeerSKUs = 1_000_000
	// MaxSKUUnits bounds, per SKU, the sum over every writer's row of
	// Minted, of Reserved, of Shrunk and of the units sent. Real stock is
	// many orders of magnitude below it (7.2e16 units).
	MaxSKUUnits = maxCounter
	// MaxSeqJump bounds how far a peer's sequence may move past the last
	// sequence received from it in one rows message or digest: 2^40 changes
	// is more than a year of a region writing 30,000 changes a second.
	MaxSeqJump = 1 << 40
	// maxPeers bounds the regions a node without a membership keeps state
	// for (the transport keeps the same bound).
	maxPeers = 256
	// maxAdviceSkew: the advice epoch a node remembers is at most this far
	// ahead of its clock, so advice from a daemon whose clock is slightly
	// ahead still orders, and a forged epoch cannot block later advice.
	maxAdviceSkew = 10 * time.Second
)

type trustState struct {
	members map[string]bool // nil: every well-formed name is a member
	learned uint64          // SKUs first learned from a peer
	// claims: per peer, the highest sequence of this region's rows it said
	// it had seen (fence.go).
	claims map[string]uint64
}

// validMembers checks a membership list: valid, distinct names that
// include self. An empty list is valid (open membership).
func validMembers(self string, members []string) error {
	if len(members) == 0 {
		return nil
	}
	if len(members) > maxPeers {
		return fmt.Errorf("escrow: members lists %d regions (limit %d)", len(members), maxPeers)
	}
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		if err := ValidRegion(m); err != nil {
			return fmt.Errorf("escrow: members: %w", err)
		}
		if seen[m] {
			return fmt.Errorf("escrow: members: %s is listed twice", m)
		}
		seen[m] = true
	}
	if !seen[self] {
		return fmt.Errorf("escrow: members does not list this region (%s)", self)
	}
	return nil
}

func (n *Node) initTrust() {
	n.trust.claims = make(map[string]uint64)
	// cfg.Members is the membership (withDefaults filled it from the
	// deprecated Peers list when it was empty).
	if len(n.cfg.Members) > 0 {
		n.trust.members = make(map[string]bool, len(n.cfg.Members))
		for _, m := range n.cfg.Members {
			n.trust.members[m] = true
		}
	}
}

// member reports whether region r is in the membership.
func (n *Node) member(r string) bool {
	return n.trust.members == nil || n.trust.members[r] || n.cfg.bugs.TrustNonMembers
}

// Members returns the membership, sorted; nil when it is open.
func (n *Node) Members() []string {
	if n.trust.members == nil {
		return nil
	}
	out := make([]string, 0, len(n.trust.members))
	for m := range n.trust.members {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// admit checks a peer message's sender and sequence against the
// membership and the plausible window before anything in it is used.
func (n *Node) admit(m *Message) *Error {
	if m.Type == MsgAdvice {
		return nil // from the rebalancer; its moves and homes are checked one by one
	}
	if !n.member(m.From) {
		n.stats.NonMember++
		return errorf(CodeInvalid, "%s message from %s, which is not a member of the cluster", m.Type, m.From)
	}
	p := n.peers[m.From]
	if p == nil && n.trust.members == nil && len(n.peers) >= maxPeers {
		n.stats.OutOfBounds++
		return errorf(CodeInvalid, "%s message from %s: this region already knows its maximum of %d peers",
			m.Type, m.From, maxPeers)
	}
	if (m.Type == MsgRows || m.Type == MsgDigest) && p != nil && p.seen > 0 && m.Seq > p.seen+MaxSeqJump {
		n.stats.SeqWindow++
		return errorf(CodeInvalid, "%s message from %s jumps to sequence %d, more than %d past the %d received",
			m.Type, m.From, m.Seq, uint64(MaxSeqJump), p.seen)
	}
	return nil
}

// unitSums are the per-SKU sums over writers that MaxSKUUnits bounds.
type unitSums struct{ minted, reserved, shrunk, sent uint64 }

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}

func (u *unitSums) add(r *Row, sent uint64) {
	u.minted = satAdd(u.minted, r.Minted)
	u.reserved = satAdd(u.reserved, r.Reserved)
	u.shrunk = satAdd(u.shrunk, r.Shrunk)
	u.sent = satAdd(u.sent, sent)
}

func (u *unitSums) fits() bool {
	return u.minted < MaxSKUUnits && u.reserved < MaxSKUUnits && u.shrunk < MaxSKUUnits && u.sent < MaxSKUUnits
}

// sentTotal is Row.SentTotal, saturating.
func sentTotal(r *Row) uint64 {
	var t uint64
	for i := range r.Sent {
		t = satAdd(t, r.Sent[i].Qty)
	}
	return t
}

// skuSums returns the sums of s as they would be with in merged (in may be
// nil: the sums as they are). s may be nil (a SKU not known yet).
func (n *Node) skuSums(s *skuState, in *Row) unitSums {
	var u unitSums
	merged := false
	if s != nil {
		for _, rec := range s.list {
			if in != nil && rec.Region == in.Region {
				m := rec.Row.Clone()
				m.Merge(in)
				u.add(&m, sentTotal(&m))
				merged = true
				continue
			}
			u.add(&rec.Row, sentTotal(&rec.Row))
		}
	}
	if in != nil && !merged {
		u.add(in, sentTotal(in))
	}
	return u
}

// admitRow reports whether a peer row may be merged: its writer is a
// member, its SKU is known or may still be learned, and the SKU's sums stay
// within MaxSKUUnits with it. A refused row is counted. It returns the
// SKU's state when the node has it (resident or read from the row source),
// so that the merge does not look it up, and read the source, again.
func (n *Node) admitRow(in *Row) (*skuState, bool) {
	if !n.member(in.Region) {
		n.stats.NonMember++
		return nil, false
	}
	s := n.lookup(in.SKU)
	if s == nil && n.trust.learned >= uint64(n.cfg.MaxPeerSKUs) {
		n.stats.PeerSKUsRefused++
		return nil, false
	}
	if u := n.skuSums(s, in); !u.fits() {
		n.stats.OutOfBounds++
		return nil, false
	}
	return s, true
}

// learnSKU returns the state of a SKU a peer named, creating it when the
// MaxPeerSKUs bound allows; nil (counted) when it does not.
func (n *Node) learnSKU(name string) *skuState {
	if s := n.lookup(name); s != nil {
		return s
	}
	return n.learnNew(name)
}

// learnNew creates a SKU a peer named that the node does not have (its
// caller's lookup found none), when the MaxPeerSKUs bound allows; nil
// (counted) when it does not.
func (n *Node) learnNew(name string) *skuState {
	if n.trust.learned >= uint64(n.cfg.MaxPeerSKUs) {
		n.stats.PeerSKUsRefused++
		return nil
	}
	n.trust.learned++
	n.stats.PeerSKUs = n.trust.learned
	return n.newSKU(name) // not n.sku: the caller's lookup read the source (see restock)
}

// countLearned counts, after a restore, the SKUs this region has no row of:
// they were learned from peers.
func (n *Node) countLearned() {
	n.trust.learned = 0
	for _, s := range n.skus {
		if s.own == nil {
			n.trust.learned++
		}
	}
	n.stats.PeerSKUs = n.trust.learned
}

// adviceTarget reports whether advice may move units to, or make a home
// of, region r; a refusal is counted.
func (n *Node) adviceTarget(r string) bool {
	if n.member(r) {
		return true
	}
	n.stats.NonMember++
	return false
}
