package escrow

import (
	"time"
)

// This file recycles a Ready's Events, Reply and Send slices once the
// runtime has Advanced past it. All three are read by the runtime between
// Ready and Advance only: it writes the events into its batch (eventlog
// encodes them there), copies each Reply by value to the caller waiting
// for it (region's deliver, the simulator's deliverReply) and each
// Message by value into its send queue (gossip's Transport.Send, the
// simulator's network). What they point to (a hold's copy a reply
// shares, a waitlist entry, a message's rows) is not recycled: a caller
// keeps reading its Reply.Hold long after Advance. Persist.Holds (the
// region stages it before the fsync) and the hold copies no reply shares
// (holdout.go) are recycled the same way. Without recycling, every hold allocated
// its event (96 bytes) and reply (72 bytes), and every Ready its
// broadcast message (~250 bytes), afresh from the arenas, and the
// collector marked and swept them soon after.
//
// A runtime may have several Readies out (a pipeline writes the next
// batch while the last one syncs): each Ready's slices stay its own until
// its Advance, in the order the Readies were returned (readyBufs is that
// queue). A runtime that keeps a Ready's Events, Reply or Send past its
// Advance reads another Ready's, or poison: the node overwrites an
// Advanced Ready's slices with values no node makes (poisonEvents,
// poisonReplies, poisonMessages) before it reuses them, so that such a reader fails loudly (a reply to no
// request, an error, a hold in no state) instead of reading a cleared
// reply as a success. Clearing would cost the same writes; it would also
// let the slices keep nothing alive, as poison does.

// readyOut is one Ready's recyclable slices.
type readyOut struct {
	events  []Event
	replies []Reply
	sends   []Message
	// holdPtrs is Persist.Holds; holdCopies the copies of holds no
	// reply shares (holdout.go), which Persist.Holds and the events may
	// point to.
	holdPtrs   []*Hold
	holdCopies []Hold
}

// clear sets o's slices to nil, writing only those that are set (no bulk
// write barrier: see poisonEvents).
func (o *readyOut) clear() {
	clearSlice(&o.events)
	clearSlice(&o.replies)
	clearSlice(&o.sends)
	clearSlice(&o.holdPtrs)
	clearSlice(&o.holdCopies)
}

// readyBufs queues the slices of the Readies not yet Advanced (oldest at
// head) and keeps the slices of Advanced ones for the next Readies.
type readyBufs struct {
	out  []readyOut
	head int
	// free: recycled slices, length 0, at most maxFreeOuts of each.
	freeEvents  [][]Event
	freeReplies [][]Reply
	freeSends   [][]Message
	freePtrs    [][]*Hold
	freeCopies  [][]Hold
}

// compactOutAt is how many advanced entries the queue of Readies out may
// keep at its head before the ones still out are moved down.
const compactOutAt = 64

// maxFreeOuts bounds the recycled slices kept of each kind: as many as a
// runtime's pipeline has Readies out, a few.
const maxFreeOuts = 4

// maxRecycledCap bounds the capacity of a slice kept for reuse: a bulk
// Ready's larger slices go to the collector, as before.
const maxRecycledCap = 2 * maxGrowHint

// noteReady queues the slices of the Ready just returned.
// holdCopies are the Ready's copies of holds that no reply shares.
func (b *readyBufs) noteReady(rd *Ready, holdCopies []Hold) {
	// Field by field (see poisonEvents), every field: the slot may hold
	// the slices of a Ready advanced before (advance leaves them, see
	// there), which must not be recycled twice.
	o := extend(&b.out, 4) // the slice header written only when it grows
	o.events, o.replies, o.sends = rd.Persist.Events, rd.Reply, rd.Send
	o.holdPtrs, o.holdCopies = rd.Persist.Holds, holdCopies
}

// advance takes the oldest Ready's slices back for reuse.
func (b *readyBufs) advance() {
	if b.head >= len(b.out) {
		return
	}
	// The slot keeps its slices until a Ready overwrites it (noteReady
	// writes every field) or compaction clears it: clearing it here wrote
	// five pointers, each with a write barrier while the collector runs,
	// per Ready. They are in the free lists anyway (or too large to keep,
	// and kept alive a little longer), and no slot below head is read.
	o := b.out[b.head]
	b.head++
	switch {
	case b.head == len(b.out):
		b.out, b.head = b.out[:0], 0
	case b.head >= compactOutAt && 2*b.head >= len(b.out):
		// A runtime that always has a Ready out (a busy pipeline) never
		// empties the queue: without this, it grew by one entry per
		// Ready for as long as the load lasted. The entries before head
		// are cleared (advanced), the ones after it moved down.
		k := copy(b.out, b.out[b.head:])
		for i := k; i < len(b.out); i++ {
			b.out[i].clear()
		}
		b.out, b.head = b.out[:k], 0
	}
	if c := cap(o.events); c > 0 && c <= maxRecycledCap && len(b.freeEvents) < maxFreeOuts {
		s := o.events[:c]
		poisonEvents(s)
		b.freeEvents = append(b.freeEvents, s[:0])
	}
	if c := cap(o.replies); c > 0 && c <= maxRecycledCap && len(b.freeReplies) < maxFreeOuts {
		s := o.replies[:c]
		poisonReplies(s)
		b.freeReplies = append(b.freeReplies, s[:0])
	}
	if c := cap(o.sends); c > 0 && c <= maxRecycledCap && len(b.freeSends) < maxFreeOuts {
		s := o.sends[:c]
		poisonMessages(s)
		b.freeSends = append(b.freeSends, s[:0])
	}
	b.recycleHoldPtrs(o.holdPtrs)
	if c := cap(o.holdCopies); c > 0 && c <= maxRecycledCap && len(b.freeCopies) < maxFreeOuts {
		s := o.holdCopies[:c]
		poisonHolds(s)
		b.freeCopies = append(b.freeCopies, s[:0])
	}
}

// recycleHoldPtrs takes back a Persist.Holds slice (or a list of copies
// that did not become one), poisoned.
func (b *readyBufs) recycleHoldPtrs(ps []*Hold) {
	if c := cap(ps); c > 0 && c <= maxRecycledCap && len(b.freePtrs) < maxFreeOuts {
		s := ps[:c]
		poisonHoldPtrs(s)
		b.freePtrs = append(b.freePtrs, s[:0])
	}
}

// takeHoldPtrs returns an empty slice for Persist.Holds: a recycled one,
// or a new one with room for about hint.
func (b *readyBufs) takeHoldPtrs(hint int, bugs bool) []*Hold {
	if k := len(b.out); bugs && k > 0 && cap(b.out[k-1].holdPtrs) > 0 {
		return b.out[k-1].holdPtrs[:0] // the planted bug RecycleAtReady
	}
	if s, ok := popFree(&b.freePtrs); ok {
		return s
	}
	return make([]*Hold, 0, max(1, min(hint, maxGrowHint)))
}

// takeHoldCopies returns an empty slice for the copies of holds that no
// reply shares (holdout.go): a recycled one, or one from the hold arena
// with room for about hint.
func (b *readyBufs) takeHoldCopies(n *Node, hint int) []Hold {
	if k := len(b.out); n.cfg.bugs.RecycleAtReady && k > 0 && cap(b.out[k-1].holdCopies) > 0 {
		return b.out[k-1].holdCopies[:0] // the planted bug: the last Ready may be out still
	}
	if s, ok := popFree(&b.freeCopies); ok {
		return s
	}
	return n.holdArena.take(max(1, min(hint, maxGrowHint)))
}

// poisonHolds marks the copies of holds of an Advanced Ready that no reply
// shares as poisonedHold: its id, a state no hold has, and no lines. An
// event or a Persist.Holds kept past Advance then names a hold in no state
// (a region's staging refuses it) instead of another hold. The other
// fields keep what they had (fillHold writes every field on reuse):
// clearing them cost a write barrier each while the collector runs.
func poisonHolds(s []Hold) {
	for i := range s {
		h := &s[i]
		setRef(&h.ID, poisonedHold.ID)
		h.State = poisonedHold.State
		clearSlice(&h.Lines)
	}
}

// poisonHoldPtrs points every entry of an Advanced Ready's Persist.Holds
// to poisonedHold.
func poisonHoldPtrs(s []*Hold) {
	for i := range s {
		setRef(&s[i], &poisonedHold)
	}
}

// broadcastRows adds the broadcast of rows, the own rows this Ready
// changed, to rd.Send. The usual Ready (holds and finishes) sends nothing
// else: its one message goes into a recycled slice instead of a new one
// from the message arena (a Message is ~250 bytes, as much as the rest of
// a one-hold Ready's output).
func (n *Node) broadcastRows(rd *Ready, rows []Row) {
	b := &n.readyBufs
	if len(rd.Send) == 0 && len(rows) <= n.cfg.MaxRowsPerMsg {
		var s []Message
		if k := len(b.out); n.cfg.bugs.RecycleAtReady && k > 0 && cap(b.out[k-1].sends) > 0 {
			s = b.out[k-1].sends[:0] // the planted bug: the last Ready may be out still
		} else if !n.cfg.bugs.RecycleAtReady {
			s, _ = popFree(&b.freeSends)
		}
		if s != nil {
			rd.Send = s[:1]
			rd.Send[0].setRows(n.cfg.Region, n.bcastSeq, n.seq, rows)
			return
		}
	}
	if msgs := n.rowsMessages("", n.bcastSeq, n.seq, rows); len(rd.Send) == 0 {
		rd.Send = msgs
	} else {
		rd.Send = append(rd.Send, msgs...)
	}
}

// setRows makes *m the broadcast of rows from region from, changes in
// (prev, seq], field by field (a recycled, poisoned slot: no bulk write
// barrier, see holdRec.fillHold); every field is written.
func (m *Message) setRows(from string, prev, seq uint64, rows []Row) {
	m.Type, m.From, m.To, m.ID, m.Seq, m.PrevSeq, m.More = MsgRows, from, "", 0, seq, prev, false
	m.SKU, m.Qty, m.Urgent, m.Rows, m.Digest, m.Epoch = "", 0, false, rows, nil, 0
	m.Moves, m.Homes, m.Seen, m.Fenced, m.Speaks = nil, nil, nil, false, 0
}

// clearOut empties the node's Ready under construction once Ready has
// taken it, writing only the fields that are set: assigning Ready{} went
// through the bulk write barrier (every pointer word of Ready and
// Persist, nil or not) while the collector runs.
func (n *Node) clearOut() {
	r := &n.out
	clearSlice(&r.Send)
	clearSlice(&r.Reply)
	clearSlice(&r.Snapshots)
	p := &r.Persist
	clearSlice(&p.Rows)
	clearSlice(&p.Holds)
	clearSlice(&p.DeletedHolds)
	clearSlice(&p.Idem)
	clearSlice(&p.DeletedIdem)
	p.Seq = 0
	if p.PeerSeq != nil {
		p.PeerSeq = nil
	}
	clearSlice(&p.Waits)
	clearSlice(&p.DeletedWaits)
	clearSlice(&p.Recounts)
	clearSlice(&p.Events)
	clearSlice(&p.HoldsUnindexed)
	clearSlice(&p.IdemUnindexed)
}

// clearSlice sets *s to nil when it is not already.
func clearSlice[T any](s *[]T) {
	if *s != nil {
		*s = nil
	}
}

// setRef writes v into *p only when it differs: an unchanged reference
// field (pointer, string, a time's location) is not written, so it costs
// no write barrier (see poisonEvents).
func setRef[T comparable](p *T, v T) {
	if *p != v {
		*p = v
	}
}

// takeEvents returns an empty slice for a Ready's events: a recycled one,
// or one from the arena.
func (n *Node) takeEvents() []Event {
	if n.cfg.bugs.RecycleAtReady {
		return n.takeEventsEarly()
	}
	if s, ok := popFree(&n.readyBufs.freeEvents); ok {
		return s
	}
	return n.eventArena.take(1)
}

// takeReplies returns an empty slice for a Ready's replies: a recycled
// one, or one from the arena.
func (n *Node) takeReplies() []Reply {
	if n.cfg.bugs.RecycleAtReady {
		return n.takeRepliesEarly()
	}
	if s, ok := popFree(&n.readyBufs.freeReplies); ok {
		return s
	}
	return n.replyArena.take(1)
}

// popFree takes the last slice off a free list, if any.
func popFree[T any](free *[][]T) ([]T, bool) {
	k := len(*free)
	if k == 0 {
		return nil, false
	}
	// Resliced in place, the popped entry left behind, not cleared: it
	// is the slice now in use, and clearing it wrote a pointer (a write
	// barrier while the collector runs) once per slice per Ready.
	s := (*free)[k-1]
	*free = (*free)[:k-1]
	return s, true
}

// takeEventsEarly and takeRepliesEarly are the planted bug RecycleAtReady:
// the last Ready's slices are reused as soon as it is returned, not once
// it is Advanced, so a runtime with two Readies out finds the first one's
// events and replies overwritten by the second's.
func (n *Node) takeEventsEarly() []Event {
	b := &n.readyBufs
	if k := len(b.out); k > 0 && cap(b.out[k-1].events) > 0 {
		return b.out[k-1].events[:0]
	}
	return n.eventArena.take(1)
}

func (n *Node) takeRepliesEarly() []Reply {
	b := &n.readyBufs
	if k := len(b.out); k > 0 && cap(b.out[k-1].replies) > 0 {
		return b.out[k-1].replies[:0]
	}
	return n.replyArena.take(1)
}

// poisonedHold is what a poisoned event or reply points to: a hold in no
// state. Never written.
var poisonedHold = Hold{ID: "poisoned-read-after-advance", State: HoldState(0xee)}

// poisonedErr is a poisoned reply's error.
var poisonedErr = Error{Code: Code(0xee), Detail: "escrow: reply read after its Ready was advanced"}

// poisonKind marks a poisoned event or reply (no such kind exists).
const poisonKind = 0xee

// poisonEvents overwrites the events of an Advanced Ready, field by
// field (see poisonMessages): assigning a whole Event buffered its five
// pointer words (At's location, HoldID, Hold, SKU, Wait) for the write
// barrier, set or not, once per hold. A reference field is written only
// when it differs from the poison.
func poisonEvents(s []Event) {
	for i := range s {
		e := &s[i]
		e.Kind, e.Qty, e.Available = poisonKind, 0, 0
		setRef(&e.At, time.Time{})
		setRef(&e.HoldID, poisonedHold.ID)
		setRef(&e.Hold, &poisonedHold)
		setRef(&e.SKU, "")
		setRef(&e.Wait, nil)
	}
}

// poisonMessages overwrites the messages of an Advanced Ready (not what
// they point to: a message's rows are the persisted rows' copies).
//
// Field by field, and the reference fields only when set: assigning a
// whole Message (about 250 bytes) went through the bulk write barrier,
// which buffers each of its pointer words, nil or not, while the
// collector runs (~60 ns a message in BenchmarkNodeHold). The plain
// fields a reader might still trust are overwritten too.
func poisonMessages(s []Message) {
	for i := range s {
		m := &s[i]
		m.Type, m.From, m.To, m.Seq = poisonKind, poisonedHold.ID, poisonedHold.ID, ^uint64(0)
		m.ID, m.PrevSeq, m.More, m.Qty, m.Urgent, m.Epoch, m.Fenced, m.Speaks = 0, 0, false, 0, false, 0, false, 0
		setRef(&m.SKU, "")
		clearSlice(&m.Rows)
		clearSlice(&m.Digest)
		clearSlice(&m.Moves)
		clearSlice(&m.Homes)
		clearSlice(&m.Seen)
	}
}

// poisonReplies overwrites the replies of an Advanced Ready, field by
// field like poisonEvents (a Reply has five pointer words).
func poisonReplies(s []Reply) {
	for i := range s {
		r := &s[i]
		r.ReqID, r.Kind, r.Applied, r.Replayed = ^uint64(0), poisonKind, 0, false
		setRef(&r.Err, &poisonedErr)
		setRef(&r.Hold, &poisonedHold)
		setRef(&r.Stock, nil)
		setRef(&r.Wait, nil)
		setRef(&r.Recount, nil)
	}
}

// set makes *d the reply r, field by field: d is a slot of a Ready's
// replies, recycled (poisoned) or fresh, and appending r as a value went
// through the bulk write barrier (five pointer words) while the
// collector runs, once per hold. Every field is written; a reference
// field only when it differs.
func (d *Reply) set(r *Reply) {
	d.ReqID, d.Kind, d.Applied, d.Replayed = r.ReqID, r.Kind, r.Applied, r.Replayed
	setRef(&d.Err, r.Err)
	setRef(&d.Hold, r.Hold)
	setRef(&d.Stock, r.Stock)
	setRef(&d.Wait, r.Wait)
	setRef(&d.Recount, r.Recount)
}
