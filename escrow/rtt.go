package escrow

import "time"

// Round-trip times to peers.
//
// A borrow request and its answer are a round trip: the node notes when it
// sent each request (the runtime's clock, fed in as Input.Now) and, when
// the answer comes, folds now − sent into a smoothed estimate per peer
// (as TCP's SRTT: 7/8 old + 1/8 sample). A hold that must borrow then asks
// only peers whose answer can arrive before its deadline: a peer whose
// estimate exceeds the time left is skipped (Stats.BorrowsSkippedFar), so a
// far region is not asked for units that would come too late while they
// are unavailable to its own shoppers. A peer with no estimate yet is
// asked (its first answer gives one). A timed-out request raises the
// estimate to the time waited (noteTimeout).

// rttGain is the weight of a new sample in the smoothed RTT (1/8).
const rttGain = 8

// noteRTT folds one round-trip sample to peer r into its estimate.
func (n *Node) noteRTT(r string, sample time.Duration) {
	if sample < 0 {
		return // a clock that went back: no sample
	}
	p := n.peers[r]
	if p == nil {
		return
	}
	if p.artt == 0 {
		p.artt = max(sample, 1)
	} else {
		p.artt = max(p.artt+(sample-p.artt)/rttGain, 1)
	}
	if p.srtt == 0 {
		p.srtt = max(sample, 1)
		return
	}
	p.srtt += (sample - p.srtt) / rttGain
	if p.srtt <= 0 {
		p.srtt = 1
	}
}

// PeerRTT returns the smoothed round-trip time to region r measured from
// borrow round trips, and false while there is no sample.
func (n *Node) PeerRTT(r string) (time.Duration, bool) {
	if p := n.peers[r]; p != nil && p.srtt > 0 {
		return p.srtt, true
	}
	return 0, false
}

// PeerRTTs returns the smoothed RTT of every peer with an estimate (for
// metrics).
func (n *Node) PeerRTTs() map[string]time.Duration {
	out := make(map[string]time.Duration, len(n.peers))
	for r, p := range n.peers {
		if p.srtt > 0 {
			out[r] = p.srtt
		}
	}
	return out
}

// noteTimeout notes that a borrow to r went unanswered for waited: its
// round trip is at least that long, so an estimate below it is raised to
// it (a late answer is not matched any more, so a far peer would otherwise
// never get an estimate). Top-ups, whose deadline is long, keep measuring
// peers that holds skip.
func (n *Node) noteTimeout(r string, waited time.Duration) {
	p := n.peers[r]
	if p == nil {
		return
	}
	p.timedOut = n.now
	if p.srtt < waited {
		p.srtt = waited
	}
}

// inReach drops from peers those whose answer cannot arrive within left,
// counting them; it filters in place.
func (n *Node) inReach(peers []PeerStock, left time.Duration) []PeerStock {
	w := 0
	for _, ps := range peers {
		if rtt := n.borrowRTT(ps.Region); rtt > 0 && rtt >= left {
			n.stats.BorrowsSkippedFar++
			continue
		}
		peers[w] = ps
		w++
	}
	return peers[:w]
}
