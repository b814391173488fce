// What happens around lost and repeated messages: the resync hook run on
// (re)connect, so the inbox asks its peers for what it missed, and the
// filter that drops exact replays of messages already delivered.

package gossip

import (
	"hash/fnv"
	"sync"

	"github.com/holdfast-io/holdfast/escrow"
)

// resync tells the inbox, if it wants to know, that messages may have been
// lost while the connection was down.
func (t *Transport) resync() {
	if rs, ok := t.inbox.(Resyncer); ok {
		rs.Resync()
	}
}

// replayable reports whether an exact copy of m may be dropped. Digests and
// repair requests repeat legitimately (a repeated digest is how a node
// notices it is behind; a repair is re-asked after a timeout), and so may a
// repair answer (the same rows re-sent for a re-asked repair), so only
// broadcast row deltas and borrow traffic are filtered: an exact copy of
// those can change nothing the first copy did not.
func replayable(m *escrow.Message) bool {
	switch m.Type {
	case escrow.MsgRows:
		return m.To == ""
	case escrow.MsgBorrowReq, escrow.MsgBorrowResp:
		return true
	}
	return false
}

// replayFilter remembers hashes of the last n messages (subject and
// payload). A 64-bit collision only drops a message anti-entropy repairs.
type replayFilter struct {
	mu   sync.Mutex
	set  map[uint64]struct{}
	ring []uint64
	next int
}

func newReplayFilter(n int) *replayFilter {
	return &replayFilter{set: make(map[uint64]struct{}, n), ring: make([]uint64, 0, n)}
}

func (f *replayFilter) seen(subject string, data []byte) bool {
	h := fnv.New64a()
	_, _ = h.Write([]byte(subject))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write(data)
	k := h.Sum64()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.set[k]; ok {
		return true
	}
	if len(f.ring) < cap(f.ring) {
		f.ring = append(f.ring, k)
	} else {
		delete(f.set, f.ring[f.next])
		f.ring[f.next] = k
		f.next = (f.next + 1) % len(f.ring)
	}
	f.set[k] = struct{}{}
	return false
}
