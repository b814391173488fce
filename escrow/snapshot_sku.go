package escrow

import (
	"errors"
	"fmt"
	"time"
)

// Snapshots in SKU order (issue 23).
//
// A node with the bounded SKU cache keeps most of its own rows in the row
// source only, so the sequence-ordered answer of onRepair (oldestOwn) has
// to scan the whole store for every chunk: a snapshot of millions of SKUs
// costs chunks × catalogue. Such a node answers a repair request that says
// it can take one (Qty == RepairBySKU) with a snapshot in SKU order instead:
// each answer is one range scan of the row source from a cursor, bounded in
// rows sent and keys read, so a chunk costs O(chunk) whatever the catalogue.
//
// The claim that lets the peer advance its seen: a snapshot has a bound,
// the owner's durable sequence when it began (every own row whose latest
// change is at or below it is in the row source, at that version or a
// newer one). Each chunk carries the own rows after the cursor whose
// sequence is above the asker's seen (after) as the row source holds them,
// so when the last chunk has arrived, every own row whose latest change is
// in (after, bound] has been received: a row changed while the snapshot
// ran is newer than the bound and comes by broadcast (or the next repair).
// Only then does the peer advance seen, to the bound.
//
// Resuming: the asker keeps the cursor (the last SKU through which it has
// every part, in order) and the bound; a repair timeout, a reconnect
// (Resync) or a lost part asks again from that cursor with that bound, so
// an interrupted snapshot goes on from its last part, not from the start.
// The owner resumes from the cursor when the bound is still at or below
// its durable sequence (it is, unless its store went back, which the fence
// handles); otherwise it starts over from the first SKU with a new bound,
// and says so by the bound it answers with.
//
// Wire: no new field. Request: Qty = RepairBySKU, ID = a fresh request
// number (its low snapPartBits bits zero), Seq = after, SKU = the cursor
// ("" from the start), Epoch = the bound being resumed (0 if none). Answer
// parts (MsgRows to the asker): Qty = RepairBySKU, ID = the request's ID +
// 1, + 2, ... (the asker takes parts in that order only), PrevSeq = after,
// Seq = the bound, SKU = the last SKU the part covers (the part's last
// row's; on the last part of an answer, where its scan stopped, or "" when
// it reached the end of the catalogue), More on all parts but the last. A
// part is at most snapPartBytes of rows, so the transport never splits it.
// A peer of an older release neither sets Qty on its requests (it gets the
// sequence-ordered answer) nor is sent an answer in SKU order.

// RepairBySKU in Message.Qty marks a repair request whose asker takes a
// snapshot in SKU order, and the rows messages of such a snapshot.
const RepairBySKU = 1

const (
	// snapPartBits: the low bits of a request ID number the answer's parts.
	snapPartBits = 16
	// snapMaxRows bounds the rows of one answer so that its parts (at
	// least one row each, and a last one) fit in snapPartBits.
	snapMaxRows = 1<<snapPartBits - 2
	// snapPartBytes bounds the encoded rows of one part: half a message,
	// so the transport never has to split it (a split part would break
	// the cursor it carries).
	snapPartBytes = MaxMessageBytes / 2
	// snapScanFactor bounds the keys one answer reads: this many per row
	// it may send (peers' rows and own rows the asker has are read and
	// skipped).
	snapScanFactor = 16
	// SnapshotLogEvery: the runtime logs a snapshot's progress every this
	// many chunks.
	SnapshotLogEvery = 16
)

// errScanStop ends a range scan early (never returned to callers).
var errScanStop = errors.New("escrow: scan stopped")

// snapSender is the owner's side: the durable sequence (the bound of a new
// snapshot) and the request numbers this node asks with.
type snapSender struct {
	readySeqs []uint64 // n.seq at each Ready not yet Advanced, oldest first
	durable   uint64   // n.seq at the last Ready Advanced (or at restore)
	nonce     uint64   // the last request number
}

// snapRecv is the asker's side of a snapshot in SKU order from one peer.
type snapRecv struct {
	active        bool
	after, bound  uint64
	cursor        string
	req, next     uint64 // the outstanding request's ID; the part ID expected next
	askedAfter    uint64 // the request's Seq
	askedCursor   string
	askedBound    uint64
	started       time.Time
	chunks, rows  uint64
	bytes         uint64
	lastLogChunks uint64
}

// SnapshotPhase is the step of a snapshot a SnapshotProgress reports.
type SnapshotPhase uint8

const (
	SnapshotStart SnapshotPhase = iota + 1 // the first part arrived
	SnapshotChunk                          // an answer (chunk) is complete
	SnapshotDone                           // the last chunk arrived: seen advanced to Bound
)

func (p SnapshotPhase) String() string {
	return enumName([]string{"", "start", "chunk", "done"}, p)
}

// SnapshotProgress reports a snapshot in SKU order this node receives
// (Ready.Snapshots), for the runtime's logs: totals so far.
type SnapshotProgress struct {
	Peer   string
	Phase  SnapshotPhase
	Chunks uint64
	Rows   uint64
	Bytes  uint64 // encoded bytes of the rows
	Cursor string // the last SKU received in order
	Bound  uint64
	// Started is the node's clock when the first part arrived; Now when
	// this report was made.
	Started, Now time.Time
}

// snapReady and snapAdvanced track the durable sequence (Ready, Advance).
func (n *Node) snapReady() { n.snap.readySeqs = append(n.snap.readySeqs, n.seq) }

func (n *Node) snapAdvanced() {
	if len(n.snap.readySeqs) == 0 {
		return
	}
	q := n.snap.readySeqs
	n.snap.durable = q[0]
	// Shifted in place (a runtime has a few Readies in flight): the
	// array is reused, no allocation per Ready.
	n.snap.readySeqs = q[:copy(q, q[1:])]
}

// repairRequest is the repair request to the peer: from the snapshot in
// progress if there is one, else from seen.
func (n *Node) repairRequest(to string, p *peer) Message {
	s := &p.snap
	// Request numbers grow with the clock so that an answer to a request
	// made before a restart does not match one made after it.
	n.snap.nonce = max(n.snap.nonce+1, uint64(max(n.now.UnixMilli(), 0)))
	id := n.snap.nonce << snapPartBits
	m := Message{Type: MsgRepairReq, From: n.cfg.Region, To: to, Seq: p.seen, Qty: RepairBySKU, ID: id}
	if s.active {
		m.Seq, m.SKU, m.Epoch = s.after, s.cursor, s.bound
	}
	s.req, s.next = id, id+1
	s.askedAfter, s.askedCursor, s.askedBound = m.Seq, m.SKU, m.Epoch
	return m
}

// onRepairBySKU answers a repair request in SKU order: one chunk from the
// cursor (snapshot_sku.go's file comment).
func (n *Node) onRepairBySKU(m *Message) {
	after, cursor, bound := m.Seq, m.SKU, m.Epoch
	if cursor == "" || bound == 0 || bound > n.snap.durable || bound < after {
		// A new snapshot, or one this node cannot resume: from the start.
		cursor, bound = "", max(n.snap.durable, after)
	}
	k := min(max(n.cfg.MaxRepairRows, 1), snapMaxRows)
	var rows []Row
	end, done := n.snapScan(cursor, after, k, &rows)
	if n.cache.failed != nil {
		return // the row source failed: the node stops; nothing is sent
	}
	n.stats.RepairsServed++
	n.stats.RepairRowsServed += uint64(len(rows))
	if !done {
		n.stats.RepairChunks++
	}
	if n.cfg.bugs.SnapshotSkipsRow && !done && len(rows) > 1 {
		// The planted bug: the chunk's last row is left out while the
		// cursor still moves past it.
		rows = rows[:len(rows)-1]
	}
	last := end
	if done {
		last = ""
	}
	id := m.ID
	per := max(n.cfg.MaxRowsPerMsg, 1)
	for {
		k, bytes := 0, 0
		for k < len(rows) && k < per {
			b := rowWireLen(&rows[k])
			if k > 0 && bytes+b > snapPartBytes {
				break
			}
			bytes += b
			k++
		}
		id++
		part := Message{Type: MsgRows, From: n.cfg.Region, To: m.From, ID: id, Qty: RepairBySKU,
			PrevSeq: after, Seq: bound, Rows: rows[:k:k]}
		n.stats.SnapshotRowsSent += uint64(k)
		n.stats.SnapshotBytesSent += uint64(bytes)
		rows = rows[k:]
		if len(rows) == 0 {
			part.SKU = last
			n.send(part)
			return
		}
		part.SKU, part.More = part.Rows[k-1].SKU, true
		n.send(part)
	}
}

// snapScan appends to rows the own rows after cursor whose sequence is
// above after, in SKU order: at most k, reading at most snapScanFactor × k
// keys, stopping only between SKUs. It returns the last SKU read and
// whether the scan reached the end of the row source.
func (n *Node) snapScan(cursor string, after uint64, k int, rows *[]Row) (end string, done bool) {
	budget := snapScanFactor * k
	read := 0
	done = true
	err := n.cache.src.ScanRowsFrom(cursor, func(r *Row) error {
		if r.SKU != end {
			if end != "" && (len(*rows) >= k || read >= budget) {
				done = false
				return errScanStop
			}
			if r.SKU <= cursor && cursor != "" {
				return fmt.Errorf("range scan after %q returned %q", cursor, r.SKU)
			}
			end = r.SKU
		}
		read++
		if r.Region == n.cfg.Region && r.Seq > after {
			*rows = append(*rows, r.Clone())
		}
		return nil
	})
	if err != nil && !errors.Is(err, errScanStop) {
		n.stopOn(fmt.Errorf("%w: scanning rows after %q: %w", ErrRowSource, cursor, err))
	}
	return end, done
}

// seqRun is a contiguous run of a peer's rows messages received: each one
// carries every own row changed in (PrevSeq, Seq], so together they carry
// every change in (from, to].
type seqRun struct{ from, to uint64 }

func (r *seqRun) note(prev, seq uint64) {
	switch {
	case seq <= prev:
	case r.to != 0 && prev >= r.from && prev <= r.to:
		r.to = max(r.to, seq)
	default:
		r.from, r.to = prev, seq
	}
}

// onSnapRows takes a part of a snapshot in SKU order: its rows are merged
// whatever happens (merging is always safe); the cursor moves only on the
// part expected next of the outstanding request.
func (n *Node) onSnapRows(m *Message, p *peer) {
	changed := n.mergeRows(m.Rows)
	if changed {
		defer n.retryPending()
	}
	s := &p.snap
	if s.req == 0 || m.ID != s.next || m.PrevSeq != s.askedAfter || m.Seq < m.PrevSeq {
		n.stats.SnapshotPartsOutOfOrder++
		if s.req != 0 && m.ID>>snapPartBits == s.req>>snapPartBits && m.ID > s.next && !m.More {
			// The end of the outstanding answer with a part lost before
			// it: ask again from the cursor now rather than at the
			// repair timeout.
			p.repairAt = time.Time{}
			n.askRepair(m.From, p)
		}
		return
	}
	s.next++
	rowBytes := 0
	for i := range m.Rows {
		rowBytes += rowWireLen(&m.Rows[i])
	}
	n.stats.SnapshotRowsReceived += uint64(len(m.Rows))
	n.stats.SnapshotBytesReceived += uint64(rowBytes)
	if !s.active || m.Seq != s.askedBound {
		// A new snapshot, or the owner started over with a new bound:
		// either way this answer starts from the first SKU.
		if !s.active {
			s.started, s.chunks, s.rows, s.bytes, s.lastLogChunks = n.now, 0, 0, 0, 0
			n.stats.SnapshotsStarted++
			s.active = true
			s.after, s.bound = m.PrevSeq, m.Seq
			n.snapReport(m.From, s, SnapshotStart)
		}
		s.after, s.bound = m.PrevSeq, m.Seq
		s.askedBound = m.Seq
	}
	s.rows += uint64(len(m.Rows))
	s.bytes += uint64(rowBytes)
	if m.More {
		s.cursor = m.SKU
		// Progress: the repair timeout counts from the last part in
		// order, so an answer paced by the owner's byte budget is not
		// asked for again (which would void its remaining parts) while
		// its parts keep coming.
		p.repairAt = n.now
		return
	}
	s.chunks++
	n.stats.SnapshotChunksReceived++
	s.req, s.next = 0, 0
	p.repairAt = time.Time{}
	if m.SKU != "" {
		s.cursor = m.SKU
		if s.chunks-s.lastLogChunks >= SnapshotLogEvery {
			s.lastLogChunks = s.chunks
			n.snapReport(m.From, s, SnapshotChunk)
		}
		n.askRepair(m.From, p) // the next chunk, at once
		return
	}
	// The last chunk: every own row of the peer whose latest change is at
	// or below the bound has been received; and if a run of broadcasts
	// received reaches back to the bound, every one up to its end (else
	// a peer that keeps changing rows would be chased by snapshot after
	// snapshot, each ending at a bound already passed).
	n.stats.SnapshotsDone++
	upTo := s.bound
	if p.bcast.to > upTo && p.bcast.from <= upTo {
		upTo = p.bcast.to
	}
	if upTo > p.seen {
		p.seen = upTo
		if !p.seenDirty {
			p.seenDirty = true
			n.seenDirty = append(n.seenDirty, m.From)
		}
	}
	n.snapReport(m.From, s, SnapshotDone)
	*s = snapRecv{}
	p.chainFrom, p.chainTo = 0, 0
	p.askAgain = false
	p.suspect = false
}

// askRepair sends a repair request to the peer now (gap without its
// one-at-a-time rule: the caller has just closed the outstanding one).
func (n *Node) askRepair(to string, p *peer) {
	p.askAgain = false
	p.repairAt = n.now
	n.stats.RepairsSent++
	n.send(n.repairRequest(to, p))
}

func (n *Node) snapReport(peer string, s *snapRecv, ph SnapshotPhase) {
	n.out.Snapshots = append(n.out.Snapshots, SnapshotProgress{Peer: peer, Phase: ph, Chunks: s.chunks, Rows: s.rows,
		Bytes: s.bytes, Cursor: s.cursor, Bound: s.bound, Started: s.started, Now: n.now})
}

// snapshotsInProgress counts the peers a snapshot in SKU order is coming
// from (Stats).
func (n *Node) snapshotsInProgress() uint64 {
	k := uint64(0)
	for _, p := range n.peers {
		if p.snap.active {
			k++
		}
	}
	return k
}

// rowWireLen is the encoded size of r in a message (WireEncoder.row).
func rowWireLen(r *Row) int {
	b := uvarintLen(uint64(len(r.SKU))) + len(r.SKU) + uvarintLen(uint64(len(r.Region))) + len(r.Region) +
		uvarintLen(r.Seq) + uvarintLen(r.Minted) + uvarintLen(r.Reserved) + uvarintLen(r.Released) +
		uvarintLen(r.Sold) + uvarintLen(r.Shrunk) + uvarintLen(uint64(len(r.Sent)))
	for i := range r.Sent {
		b += uvarintLen(uint64(len(r.Sent[i].To))) + len(r.Sent[i].To) + uvarintLen(r.Sent[i].Qty)
	}
	return b
}
