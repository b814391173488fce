package escrow

import (
	"sort"
	"strings"
)

// Fencing needs more than one voice.
//
// A peer's report that it has seen this region's rows beyond the store's
// sequence (the Seen of its digest, the Seq of its repair request) is
// evidence that the store went back in time, but one peer, broken or
// hostile, must not be able to stop a healthy region. So, outside
// probation, a node fences itself only when a majority of the other
// members report a sequence above its own: of the members other than
// itself (Config.Members, which the deprecated Peers list fills), or of the peers it
// knows when the membership is open, at least 2 in both cases. In a
// two-region cluster the one peer is the only voice and cannot be a
// majority of more than one: it is heard only during probation.
//
// During probation (BeginProbation: the store started empty while the
// region has peers) one report is still enough, as before: that is the
// wiped-store protection the fence exists for, and a region whose store is
// empty has nothing to lose by waiting for an operator. An attacker cannot
// make a store empty with messages; it can at most fence a region that
// restarts empty, which an operator sees (holdfast_region_fenced) and
// clears by replacing the region.
//
// A report that does not reach the quorum is kept (the highest sequence
// per peer) and counted as Stats.FenceClaims while it is above the store's
// sequence: a lone voice is worth an alert, not a stop. A claim below the
// store's sequence no longer counts (the region has written past it).

// fenceClaim records that peer has seen our rows up to seen (> n.seq) and
// fences the node when enough peers say so.
func (n *Node) fenceClaim(peer string, seen uint64, via string) {
	if (n.fence.st.Fenced && !n.fence.st.Probation) || n.cfg.bugs.IgnoreFence {
		return
	}
	if seen > n.trust.claims[peer] {
		n.trust.claims[peer] = seen
	}
	if n.fence.st.Probation && !n.fence.restart {
		n.fenceFrom(peer, seen, via)
		n.fence.st.Voices = peer
		return
	}
	voices := n.claimVoices()
	need := n.FenceVoicesNeeded()
	if need == 0 || len(voices) < need {
		return
	}
	least := seen
	parts := make([]string, len(voices))
	for i, v := range voices {
		least = min(least, n.trust.claims[v])
		parts[i] = v + " (up to sequence " + utoa(n.trust.claims[v]) + ")"
	}
	n.fenceFrom(peer, least, via)
	n.fence.st.Voices = strings.Join(voices, ",")
	n.fence.st.Detail = "region " + n.cfg.Region + " is fenced: regions " + strings.Join(parts, ", ") +
		" have seen its rows beyond its own store's sequence " + utoa(n.seq) + " (the last report " + via +
		"): the store went back in time (wiped, or restored from an old backup), and granting now could sell " +
		"units it already gave away; it refuses every write until it is replaced, see docs/operations.md, " +
		"\"A wiped or lost region\""
}

// claimVoices lists the peers whose latest claim is above the store's
// sequence, sorted.
func (n *Node) claimVoices() []string {
	var out []string
	for p, s := range n.trust.claims {
		if s > n.seq && n.member(p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// FenceVoicesNeeded returns how many peers must report a sequence of this
// region's rows above its store's before it fences itself outside
// probation: a majority of the other members (or of the known peers when
// the membership is open), at least 2; 0 when there is only one other
// region (or none): then no report fences it outside probation.
func (n *Node) FenceVoicesNeeded() int {
	others := len(n.peers)
	if n.trust.members != nil {
		others = len(n.trust.members) - 1
	}
	if others < 2 {
		return 0
	}
	return others/2 + 1
}
