package sim

import "github.com/holdfast-io/holdfast/escrow"

type evKind uint8

const (
	evTick          evKind = iota + 1 // runtime tick of endpoint node
	evFsync                           // the synced write of region node (incarnation inc) completed
	evMsg                             // peer message msg reaches endpoint node
	evReqArrive                       // client request req reaches region node
	evReplyArrive                     // forwarded reply of req reaches its gateway node
	evClientReply                     // reply of req reaches its client
	evClientTimeout                   // client cl gives up waiting on attempt n
	evCartArrive                      // the next cart of the workload arrives
	evThink                           // client cl has decided to confirm or release
	evRestock                         // the next restock of the workload
	evFault                           // fault n of the schedule starts or ends
	evPhase                           // run phase n
	evCrash                           // hook: crash region node (incarnation inc) now
	evRestart                         // restart endpoint node if still down in incarnation inc
	evWaitPoll                        // waiter cl polls (or cancels) its waitlist entry
	evWaitCheck                       // the waitlist's cross-region checker runs (observation only)
	evStoreBack                       // region node restarts from its store's image once a peer saw beyond it
)

// event is one entry of the queue. It is a plain value (no interface) so
// that the heap does not allocate per event.
type event struct {
	at   int64  // virtual time, ns since the start of the run
	seq  uint64 // insertion order: total order among events at the same time
	kind evKind
	node int32
	inc  uint32
	n    int32
	msg  *escrow.Message
	req  *request
	cl   *client
}

// queue is a binary min-heap of events by (at, seq).
type queue struct {
	h   []event
	seq uint64
}

func (q *queue) less(i, j int) bool {
	a, b := &q.h[i], &q.h[j]
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

func (q *queue) push(e event) {
	e.seq = q.seq
	q.seq++
	q.h = append(q.h, e)
	i := len(q.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *queue) pop() event {
	e := q.h[0]
	last := len(q.h) - 1
	q.h[0] = q.h[last]
	q.h[last] = event{}
	q.h = q.h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= last {
			break
		}
		m := l
		if r := l + 1; r < last && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return e
}

func (q *queue) len() int { return len(q.h) }
