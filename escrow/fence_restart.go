package escrow

import "time"

// The restart probation: a store that went back in time but is not empty.
//
// BeginProbation protects a region whose store starts empty. A store
// restored from an older copy of its directory, or one whose disk
// acknowledged fsyncs it did not keep (a crash then loses writes the region
// counted as durable), is not empty: without more, the region grants at
// once from rows that forgot units it already lent, sold or put into holds,
// until a majority of its other members has reported a higher sequence (a
// digest interval at best), and if it writes more changes than it lost
// meanwhile, the loss goes unnoticed.
//
// A runtime that wants that window closed (region's restart_probation)
// puts every node it restarts from a non-empty store on a restart
// probation (BeginRestartProbation): the node refuses writes until every
// peer it knows (its stored peer rows, or every other member when the
// membership is listed) has reported, in a digest, a sequence of its rows
// not above its store's, and that report has stood for the probation's
// minimum wait without a claim from the same peer. A digest older than
// rows the node holds from its sender is no report (staleDigest), and the
// standing time lets a live peer's next digest contradict a late copy of
// an old one that slipped through (replays of minutes-old messages). A
// report above is a claim as outside probation:
// the quorum of fence_quorum.go fences the node for good, and a lone claim
// keeps it on probation (one peer cannot fence a healthy region, but its
// word that the store went back is enough not to grant). After maxWait
// (<= 0: never) the probation ends anyway, as a fresh one does.
//
// What it cannot see: changes that no peer ever received (the region was
// cut off from every peer between the copy and the restart) are lost
// without a trace, as for a wiped store.

// BeginRestartProbation puts a node restored with durable state (a
// sequence above 0) on the restart probation and returns true; it returns
// false and changes nothing for an empty store (BeginProbation's case) or
// a fenced node.
func (n *Node) BeginRestartProbation(minWait, maxWait time.Duration) bool {
	if n.fence.st.Fenced || n.seq == 0 || n.cfg.bugs.IgnoreFence {
		return false
	}
	f := &n.fence
	// (The wait counts from the first tick: a restored node's clock is
	// still that of its last stored change.)
	f.probeFrom = time.Time{}
	f.probeMin, f.probeMax = minWait, maxWait
	f.clean = make(map[string]bool)
	f.cleanAt = make(map[string]time.Time)
	f.restart = true
	f.st = FenceStatus{Fenced: true, Probation: true, Since: n.now,
		Detail: "region " + n.cfg.Region + " is on restart probation: it restarted from its store at sequence " +
			utoa(n.seq) + ", and it refuses writes until its peers confirm that they never saw its rows beyond that " +
			"(if they did, its store went back in time and it stays fenced); retry shortly, see docs/operations.md, " +
			"\"A wiped or lost region\""}
	n.stats.Fenced = 1
	return true
}

// restartClean reports whether every peer the node knows (or every other
// member when the membership is listed) reported that it never saw the
// node's rows beyond its store's sequence.
func (n *Node) restartClean() bool {
	f := &n.fence
	if len(f.clean) == 0 {
		return false
	}
	for p := range n.peers {
		if n.trust.members != nil && !n.member(p) {
			continue
		}
		if !n.restartWitness(p) {
			return false
		}
	}
	for p := range n.trust.members {
		if p != n.cfg.Region && !n.restartWitness(p) {
			return false
		}
	}
	return true
}

// restartWitness reports whether peer p lets the restart probation end:
// its clean report has stood for the minimum wait and it claims nothing,
// or it is fenced itself (for good, or on a probation a claim holds:
// fenceHeld) and its last digest is behind rows of it we hold (its own
// store went back: it can never report clean, as its digests are older
// than its rows, and its word is not awaited; without the second case two
// regions on restart probation, one held by the other's claim, would each
// wait for the other for good). Both together: a late copy of an old
// digest alone must not excuse a peer (a digest overtaken by rows sent
// after it is behind too).
func (n *Node) restartWitness(p string) bool {
	f := &n.fence
	if n.trust.claims[p] > n.seq {
		return false
	}
	if pr := n.peers[p]; pr != nil && pr.behind && pr.fenced {
		return true
	}
	return f.clean[p] && n.now.Sub(f.cleanAt[p]) >= f.probeMin
}

// fenceHeld reports whether the node refuses writes with no end in sight:
// fenced for good, or on a restart probation that a peer's claim holds (a
// lone voice that has seen its rows beyond its store: fence_quorum.go), which
// ends only if that claim falls below the store's sequence. Its digests say
// so (Message.Fenced), so that peers stop asking it to lend, routing to it
// and sending it units: it would hold on to them for good while they ask
// it again and again (a probation that ends by itself, within seconds,
// is not announced).
func (n *Node) fenceHeld() bool {
	st := &n.fence.st
	if !st.Fenced {
		return false
	}
	return !st.Probation || (n.fence.restart && !n.cfg.bugs.QuietHeldProbation && len(n.claimVoices()) > 0)
}
