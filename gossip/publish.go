// The send path: Send queues without blocking, the publisher
// drains the queue in batches (coalescing row deltas) and picks each
// message's subject.

package gossip

import (
	"sort"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// outItem is one queued publication: a peer message, or an encoded event
// with its subject.
type outItem struct {
	msg escrow.Message
}

// Send hands messages to the publisher without blocking. Messages that do
// not fit the queue, or arrive while the connection is down, are dropped
// and counted: the escrow anti-entropy repairs the gap later.
func (t *Transport) Send(msgs []escrow.Message) {
	if len(msgs) == 0 {
		return
	}
	if !t.Connected() {
		t.m.dropped.WithLabelValues("disconnected").Add(float64(len(msgs)))
		return
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.m.dropped.WithLabelValues("closed").Add(float64(len(msgs)))
		return
	}
	room := t.cfg.SendQueueLen - len(t.queue)
	n := min(room, len(msgs))
	for i := 0; i < n; i++ {
		t.queue = append(t.queue, outItem{msg: msgs[i]})
	}
	t.mu.Unlock()
	if n < len(msgs) {
		t.m.dropped.WithLabelValues("queue_full").Add(float64(len(msgs) - n))
		t.limit.warn(t.log, "queue-full", "send queue full; dropping messages", "dropped", len(msgs)-n)
	}
	t.signal()
}

func (t *Transport) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// publisher drains the queue in batches, coalescing row deltas, until Close.
func (t *Transport) publisher() {
	defer t.wg.Done()
	var buf []byte
	for {
		closing := false
		select {
		case <-t.wake:
		case <-t.done:
			closing = true
		}
		t.mu.Lock()
		batch := t.queue
		t.queue = nil
		t.mu.Unlock()
		batch = t.coalesce(batch)
		for i := range batch {
			buf = t.publishItem(&batch[i], buf)
		}
		if closing {
			return
		}
	}
}

func (t *Transport) publishItem(it *outItem, buf []byte) []byte {
	return t.publishMsg(&it.msg, buf)
}

func (t *Transport) publishMsg(m *escrow.Message, buf []byte) []byte {
	if m.From != t.cfg.Region {
		t.m.dropped.WithLabelValues("encode").Inc()
		t.limit.warn(t.log, "foreign-from", "refusing to publish a message from another region", "from", m.From, "type", m.Type)
		return buf
	}
	subject, err := SubjectFor(t.cfg.Cluster, m)
	if err != nil {
		t.m.dropped.WithLabelValues("encode").Inc()
		t.limit.warn(t.log, "no-subject", "cannot route message", "err", err)
		return buf
	}
	if m.Speaks == 0 {
		// Pick the wire version for the addressee(s) (version.go).
		sm, ok := t.stamp(m)
		if m.To == "" && t.ver.self >= 3 && escrow.MessageHasLocationKeys(m) && !escrow.MessageHasLocationKeys(&sm) {
			// A broadcast some member reads only below version 3: first
			// whole, in version 3, for the members that read it (the others
			// refuse it, reason "version"), then without its location keys
			// (below) for every member. Rows merge whatever the order, so a
			// member reading both loses nothing.
			whole := *m
			whole.Speaks = t.ver.self
			buf = t.publishMsg(&whole, buf)
		}
		if !ok {
			// About a location key, to a peer that reads no location keys.
			t.m.dropped.WithLabelValues("location_version").Inc()
			return buf
		}
		if t.needsTwin(&sm) {
			v2 := sm
			v2.Speaks = t.ver.self
			buf = t.publishMsg(&v2, buf)
		}
		if sm.Speaks == 0 {
			sm.Speaks = 1 // marks "version chosen" for the recursion; written as version 1
		}
		return t.publishMsg(&sm, buf)
	}
	wm := *m
	if wm.Speaks == 1 {
		wm.Speaks = 0
	}
	m = &wm
	buf, err = escrow.EncodeMessage(buf[:0], m)
	if err != nil {
		if m.Type == escrow.MsgRows && len(m.Rows) > 1 && m.Qty != escrow.RepairBySKU {
			// Too big for one message: publish it as a chain of parts, in
			// the version already chosen. Never a part of a snapshot in SKU
			// order: its cursor would cover rows of the other half (the
			// node cuts those parts to fit; one that does not is dropped
			// and the peer asks again from its cursor).
			a, b := splitRows(m)
			a.Speaks, b.Speaks = max(a.Speaks, 1), max(b.Speaks, 1)
			buf = t.publishMsg(&a, buf)
			return t.publishMsg(&b, buf)
		}
		t.m.dropped.WithLabelValues("encode").Inc()
		t.limit.warn(t.log, "encode", "cannot encode message", "type", m.Type, "err", err)
		return buf
	}
	if m.Type == escrow.MsgRows && m.To != "" && !t.lim.allowAnswer(m.To, len(buf), time.Now()) {
		// A repair answer over the peer's byte budget: dropped; the peer
		// asks again after its repair timeout.
		t.m.dropped.WithLabelValues("answer_budget").Inc()
		t.limit.warn(t.log, "answer-budget", "repair answer over the peer's byte budget; dropping", "to", m.To, "bytes", len(buf))
		return buf
	}
	t.seal = t.keys.Seal(t.seal[:0], subject, buf, time.Now())
	if err := t.nc.Publish(subject, t.seal); err != nil {
		t.m.dropped.WithLabelValues("publish").Inc()
		t.limit.warn(t.log, "publish", "publish failed; dropping", "subject", subject, "err", err)
		return buf
	}
	typ := msgLabel(m)
	t.m.msgsOut.WithLabelValues(typ).Inc()
	t.m.wireOut.WithLabelValues(wireLabel(m)).Inc()
	t.m.bytesOut.WithLabelValues(typ).Add(float64(len(t.seal)))
	t.m.msgSize.WithLabelValues("out").Observe(float64(len(t.seal)))
	if m.Type == escrow.MsgBorrowResp {
		t.m.borrowUnitsOut.Add(float64(m.Qty))
	}
	return buf
}

func wireLabel(m *escrow.Message) string {
	if escrow.MessageHasLocationKeys(m) {
		return "3"
	}
	if m.Speaks >= 2 {
		return "2"
	}
	return "1"
}

// msgLabel is the metrics label of a message: its type, with background
// borrow requests (low-water top-ups) apart from urgent ones.
func msgLabel(m *escrow.Message) string {
	if m.Type == escrow.MsgBorrowReq && !m.Urgent {
		return "topup"
	}
	if m.Type == escrow.MsgRows && m.To != "" && m.Qty == escrow.RepairBySKU {
		return "snapshot" // a part of a snapshot in SKU order (escrow/snapshot_sku.go)
	}
	return m.Type.String()
}

// splitRows cuts a rows message into two parts that form a chain (see
// escrow.Message.More): rows ordered by Seq, the first part marked More.
func splitRows(m *escrow.Message) (escrow.Message, escrow.Message) {
	rows := append([]escrow.Row(nil), m.Rows...)
	sort.Slice(rows, func(i, j int) bool { return rows[i].Seq < rows[j].Seq })
	k := len(rows) / 2
	a, b := *m, *m
	a.Rows, b.Rows = rows[:k], rows[k:]
	a.Seq, a.More = rows[k-1].Seq, true
	b.PrevSeq = a.Seq
	return a, b
}

// maxCoalesceRows bounds the rows of one coalesced message.
const maxCoalesceRows = 1024

// coalesce merges chains of broadcast row deltas (each one's PrevSeq is the
// previous one's Seq) into one message at the position of the first: every
// queued message is already durable, so publishing a later change earlier
// is safe, and a receiver sees one contiguous (PrevSeq, Seq] range.
func (t *Transport) coalesce(batch []outItem) []outItem {
	acc := -1
	var idx map[string]int // SKU -> position in batch[acc].msg.Rows
	w := 0
	for i := range batch {
		it := batch[i]
		m := &it.msg
		isDelta := m.Type == escrow.MsgRows && m.To == "" && !m.More
		if isDelta && acc >= 0 {
			a := &batch[acc].msg
			if a.Seq == m.PrevSeq && len(a.Rows)+len(m.Rows) <= maxCoalesceRows {
				if idx == nil {
					// First merge into this message: copy its rows, the
					// caller's slices are not ours to change.
					a.Rows = append(make([]escrow.Row, 0, len(a.Rows)+len(m.Rows)), a.Rows...)
					idx = make(map[string]int, len(a.Rows))
					for j := range a.Rows {
						idx[a.Rows[j].SKU] = j
					}
				}
				for _, r := range m.Rows {
					if j, ok := idx[r.SKU]; ok {
						if r.Seq > a.Rows[j].Seq {
							a.Rows[j] = r
						}
					} else {
						idx[r.SKU] = len(a.Rows)
						a.Rows = append(a.Rows, r)
					}
				}
				a.Seq = m.Seq
				t.m.coalesced.Inc()
				continue
			}
		}
		batch[w] = it
		if isDelta {
			acc, idx = w, nil
		}
		w++
	}
	clear(batch[w:])
	return batch[:w]
}
