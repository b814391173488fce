package escrow

import (
	"sort"
	"strings"
	"time"
)

// The store fence.
//
// A region's own rows are written only by that region, and peers never send
// a region its own rows back. So when a region's store is wiped (disk
// replaced) or restored from an old backup and the region restarts under the
// same name, nothing in its own state says that it lost writes: it would
// count units it already lent, sold or put into holds as available and
// grant them again, an oversell. Its peers know better: each has seen the region's rows
// up to some sequence, and every digest carries that (Message.Seen); a repair
// request carries it too. A region that hears a sequence of its own rows
// above its store's sequence fences itself: it refuses every command that
// writes (CodeFenced), lends nothing, applies no advice, expires nothing,
// asks for no top-up and sends no units to homes, for the life of the node
// (a runtime that rebuilds its node carries the fence over with
// ImposeFence). Reads (get, stock) are still served, and it keeps merging
// peer rows and sending digests, which say that it is fenced
// (Message.Fenced): peers then neither ask it to lend, route holds to it,
// nor apply advice that sends it units. Nothing
// is adopted from peers: their copies of the region's rows lag the lost
// ones by the replication delay, so resuming from them could still oversell
// (docs/operations.md has the manual procedure).
//
// The sequence test cannot catch a wiped region before it hears a digest,
// nor once it has written more changes than peers had seen of it. So a node
// whose store started empty can be put on probation by its runtime when it
// has peers (BeginProbation): it refuses writes until peers have reported
// that they never saw its rows, and a report of one that did fences it for
// good. The rule is in probationClean.
//
// False positives: a peer's sequence of a region is the last one it
// received in a rows message, and a runtime sends a Ready's messages only
// after its Persist is durable, so a region whose store did not go back
// always has a sequence at least as high as any peer has seen.

// FenceStatus says whether and why a node refuses writes.
type FenceStatus struct {
	Fenced bool
	// Probation: fenced because the store started empty and peers have not
	// yet confirmed that the region is new; it lifts by itself.
	Probation bool
	// Peer reported having seen this region's rows up to PeerSeen while the
	// node's own sequence was OwnSeq (set for a fence, not a probation).
	Peer     string
	PeerSeen uint64
	OwnSeq   uint64
	// Voices are the peers whose reports together fenced the node, sorted
	// and comma-separated (a string keeps the status comparable): outside
	// probation it takes more than one (see fence_quorum.go).
	Voices string
	Since  time.Time // node clock when the fence or probation began
	// Detail explains the state for operators and clients; after a
	// probation ended (Fenced false) it says how it ended.
	Detail string
	// Unconfirmed: the probation ended at its maximum wait, without the
	// peers' reports it waits for (the residual risk, see BeginProbation).
	Unconfirmed bool
}

type fenceState struct {
	st FenceStatus
	// Probation: it began at probeFrom (zero until the node's clock is
	// set), lasts at least probeMin and at most probeMax (<= 0: no limit);
	// clean holds the peers that reported they never saw our rows.
	probeFrom          time.Time
	probeMin, probeMax time.Duration
	clean              map[string]bool
	// restart: the probation is a restart probation (fence_restart.go);
	// cleanAt, when each peer of clean first reported clean.
	restart bool
	cleanAt map[string]time.Time
}

// Fence returns the node's fence status.
func (n *Node) Fence() FenceStatus { return n.fence.st }

// BeginProbation puts a node whose store is empty (sequence 0, no own row)
// on probation and returns true; it returns false and changes nothing for
// any other node, in particular one restored with durable state. A runtime
// calls it once, before serving, when the region has peers: a region on its
// own has nobody to learn from and starts normally.
//
// The probation ends, at the earliest after minWait (so that the digest of
// every live peer can arrive, and a peer that saw our rows fences us before
// another's clean report lets us go), when every other member
// (Config.Members) has sent a digest that does not name a sequence of ours,
// or, with an open membership, when at least one peer has. After maxWait (<= 0: never) it
// ends anyway, so that a region started while every peer is down is not
// stuck: a region that was wiped and started while cut off from every peer
// is the residual risk.
func (n *Node) BeginProbation(minWait, maxWait time.Duration) bool {
	if n.fence.st.Fenced || n.seq != 0 || n.cfg.bugs.IgnoreFence {
		return false
	}
	for _, s := range n.skus {
		if s.own != nil {
			return false
		}
	}
	f := &n.fence
	f.probeFrom = n.now
	f.probeMin, f.probeMax = minWait, maxWait
	f.clean = make(map[string]bool)
	f.st = FenceStatus{Fenced: true, Probation: true, Since: n.now,
		Detail: "region " + n.cfg.Region + " is on probation: its store started empty, and it refuses writes until " +
			"its peers confirm that they never saw rows of " + n.cfg.Region + " (if they did, its store was wiped " +
			"and it stays fenced); retry shortly, see docs/operations.md, \"A wiped or lost region\""}
	n.stats.Fenced = 1
	return true
}

// ImposeFence fences the node as st says (st.Fenced set, st.Probation not;
// anything else is ignored): a runtime that rebuilds its node from storage,
// or restarts with a fence it recorded, keeps the region fenced.
func (n *Node) ImposeFence(st FenceStatus) {
	if !st.Fenced || st.Probation || (n.fence.st.Fenced && !n.fence.st.Probation) {
		return
	}
	n.fence.st = st
	n.fence.clean = nil
	n.stats.Fenced = 1
	n.failPendingFenced()
}

// fenceFrom fences the node because peer has seen its rows up to seen. The
// first reason sticks.
func (n *Node) fenceFrom(peer string, seen uint64, via string) {
	if (n.fence.st.Fenced && !n.fence.st.Probation) || n.cfg.bugs.IgnoreFence {
		return
	}
	n.fence.st = FenceStatus{Fenced: true, Peer: peer, PeerSeen: seen, OwnSeq: n.seq, Since: n.now,
		Detail: "region " + n.cfg.Region + " is fenced: region " + peer + " has seen its rows up to sequence " +
			utoa(seen) + " (" + via + ") but its own store is at sequence " + utoa(n.seq) +
			": the store went back in time (wiped, or restored from an old backup), and granting now could sell " +
			"units it already gave away; it refuses every write until it is replaced, see docs/operations.md, " +
			"\"A wiped or lost region\""}
	n.fence.clean = nil
	n.stats.Fenced = 1
	n.failPendingFenced()
}

func (n *Node) fenceErr() *Error {
	return &Error{Code: CodeFenced, Detail: n.fence.st.Detail}
}

// fenceRefuses answers c if the fenced node must not run it as usual, and
// reports whether it did. Reads run as usual, except a get of a hold past
// its deadline: that would expire the hold, which writes the own row, so
// it is answered with the state as of now instead.
func (n *Node) fenceRefuses(c *Command) bool {
	switch c.Kind {
	case CmdStock, CmdWaitGet:
		return false
	case CmdGet:
		if h := n.liveHold(c.HoldID); h != nil && h.expiredAt(n.now) {
			n.reply(Reply{ReqID: c.ReqID, Kind: c.Kind, Hold: n.viewHold(h)})
			return true
		}
		return false
	}
	n.stats.FenceRefused++
	n.fail(c, n.fenceErr())
	return true
}

// failPendingFenced answers every hold waiting on a borrow with the fence:
// a borrowed unit arriving later must not grant it.
func (n *Node) failPendingFenced() {
	for _, p := range n.pending {
		if p.done {
			continue
		}
		p.done = true
		n.reply(Reply{ReqID: p.cmd.ReqID, Kind: CmdHold, Err: n.fenceErr()})
		for _, w := range p.waiters {
			n.reply(Reply{ReqID: w, Kind: CmdHold, Err: n.fenceErr()})
		}
		n.stats.FenceRefused += 1 + uint64(len(p.waiters))
		if p.cmd.IdemKey != "" && n.pendingIdem[p.cmd.IdemKey] == p {
			delete(n.pendingIdem, p.cmd.IdemKey)
		}
		for _, s := range p.skus {
			s.waiting--
		}
	}
	clear(n.pending)
	n.pending = n.pending[:0]
}

// fenceMessage runs the fence's part of a peer message and reports whether
// it handled the message entirely (err is then the message's error).
func (n *Node) fenceMessage(m *Message) (bool, error) {
	if len(m.Seen) > 0 || m.Fenced {
		if err := checkSeen(m); err != nil {
			return true, err
		}
	}
	switch m.Type {
	case MsgDigest:
		n.onDigest(m)
		n.peer(m.From).fenced = m.Fenced
		n.peer(m.From).behind = n.staleDigest(m)
		n.fenceOnSeen(m)
		n.noteStockHints(m)
		return true, nil
	case MsgRepairReq:
		// The asker has seen our rows up to m.Seq.
		if m.Seq > n.seq {
			n.fenceClaim(m.From, m.Seq, "in a repair request")
		}
		// A fenced node's own rows are behind what its peers have: serving
		// them is useless (merge keeps the maximum) but harmless; skip it.
		return n.fence.st.Fenced, nil
	case MsgBorrowReq:
		if !n.fence.st.Fenced {
			return false, nil
		}
		if err := ValidStockKey(m.SKU); err != nil {
			return true, err
		}
		// Nothing to lend, said at once so the borrower does not wait out
		// its deadline.
		n.peer(m.From)
		n.send(Message{Type: MsgBorrowResp, From: n.cfg.Region, To: m.From, ID: m.ID, SKU: m.SKU})
		return true, nil
	case MsgAdvice:
		if !n.fence.st.Fenced {
			return false, nil
		}
		n.stats.AdviceIgnored++
		return true, nil
	}
	return false, nil
}

// checkSeen rejects a Seen list or a Fenced flag that the wire decoder
// would refuse (the simulator hands messages over in process).
func checkSeen(m *Message) *Error {
	if m.Type != MsgDigest {
		return errorf(CodeInvalid, "%s message from %s carries a seen list or the fenced flag", m.Type, m.From)
	}
	if len(m.Seen) > MaxRegions {
		return errorf(CodeInvalid, "digest from %s has %d seen entries (limit %d)", m.From, len(m.Seen), MaxRegions)
	}
	for i, rs := range m.Seen {
		if ValidRegion(rs.Region) != nil || rs.Seq >= maxCounter || (i > 0 && m.Seen[i-1].Region >= rs.Region) {
			return errorf(CodeInvalid, "digest from %s has a bad or unsorted seen entry %q=%d", m.From, rs.Region, rs.Seq)
		}
	}
	return nil
}

// fenceOnSeen checks what the digest's sender has seen of our rows.
func (n *Node) fenceOnSeen(m *Message) {
	var mine uint64
	for _, rs := range m.Seen {
		if rs.Region == n.cfg.Region {
			mine = rs.Seq
			break
		}
	}
	if mine > n.seq {
		n.fenceClaim(m.From, mine, "in its digest")
		return
	}
	if n.fence.st.Probation && n.trust.claims[m.From] <= n.seq && !n.staleDigest(m) && !n.fence.clean[m.From] {
		n.fence.clean[m.From] = true
		if n.fence.restart {
			n.fence.cleanAt[m.From] = n.now
		}
	}
}

// staleDigest reports whether digest m is older than rows of its sender
// that the node holds (a late copy: its Seen says nothing of now).
func (n *Node) staleDigest(m *Message) bool {
	p := n.peers[m.From]
	return p != nil && m.Seq < max(p.seen, p.maxRow)
}

// fenceTick runs the time-driven work of a fenced node and reports whether
// it is still fenced (false: its probation just ended, run the normal tick).
// A fenced node sweeps nothing (expiring a hold writes the own row) and asks
// for no top-up (units lent to it now could not be used); borrow deadlines
// and digests go on.
func (n *Node) fenceTick() bool {
	f := &n.fence
	if f.st.Probation {
		if f.probeFrom.IsZero() {
			f.probeFrom, f.st.Since = n.now, n.now
		}
		waited := n.now.Sub(f.probeFrom)
		switch {
		case waited >= f.probeMin && n.probationClean():
			n.endProbation("after " + waited.Round(time.Millisecond).String() + ": region(s) " +
				strings.Join(cleanNames(f.clean), ", ") + " reported that they never saw rows of " + n.cfg.Region)
			return false
		case f.probeMax > 0 && waited >= f.probeMax:
			how := "no peer reported"
			if len(f.clean) > 0 {
				how = "only " + strings.Join(cleanNames(f.clean), ", ") + " reported"
			}
			n.endProbation("after the maximum wait of " + f.probeMax.String() + " although " + how +
				": if this region's store was wiped while it was cut off from its peers, it may oversell")
			n.fence.st.Unconfirmed = true
			return false
		}
	}
	n.expirePending()
	n.digest()
	return true
}

// probationClean reports whether enough peers said they never saw our rows.
func (n *Node) probationClean() bool {
	f := &n.fence
	if f.restart {
		return n.restartClean()
	}
	if len(f.clean) == 0 {
		return false
	}
	for p := range n.trust.members {
		if p != n.cfg.Region && !f.clean[p] {
			return false
		}
	}
	return true
}

func (n *Node) endProbation(how string) {
	n.fence = fenceState{st: FenceStatus{Since: n.now, Detail: "probation of region " + n.cfg.Region + " ended " + how}}
	n.stats.Fenced = 0
}

// seenList is the Seen of a digest: the peers whose rows we have, with the
// highest sequence of their rows we hold (at least the last contiguous one
// received), sorted by region, at most MaxRegions. The highest, not the
// contiguous: while a gap waits for its repair the contiguous sequence lags
// rows we already hold, and a peer whose store went back to between the
// two would pass for clean. Either is safe from false alarms: a row of
// sequence X leaves its region only once X is durable there.
func (n *Node) seenList() []RegionSeq {
	var out []RegionSeq
	for r, p := range n.peers {
		if s := max(p.seen, p.maxRow); s > 0 {
			out = append(out, RegionSeq{Region: r, Seq: s})
		}
	}
	if len(out) == 0 {
		return nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Region < out[j].Region })
	if len(out) > MaxRegions {
		out = out[:MaxRegions]
	}
	return out
}

func cleanNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
