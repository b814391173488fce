package escrow

import (
	"math"
	"time"
)

// This file holds the min-heap of (time, record) behind the node's expiry
// queues (holds, retention, idempotency keys, waitlist entries); tick.go
// and waitTick drain them. It is hand-written rather than built on
// container/heap: boxing every item into an interface cost an allocation
// per hold on the hot path.

// nanos maps t to Unix nanoseconds, clamped to the int64 range, preserving order.
func nanos(t time.Time) int64 {
	if t.Before(minNanosTime) {
		return math.MinInt64
	}
	if t.After(maxNanosTime) {
		return math.MaxInt64
	}
	return t.UnixNano()
}

var minNanosTime, maxNanosTime = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

// dlHeap is the expiry index of HELD holds (P = *holdRec), of
// idempotency keys (P = *idemRec) and of waitlist entries (P = waitID): a
// min-heap of (deadline, record), ordered by deadline, ties by name. It is lazy: an
// extend leaves a hold's entry at the old deadline, a finished hold or a
// replaced key leaves its entry in place, and the sweeper re-pushes or
// drops such entries when they come up (tick.go), so that every change
// costs O(1) and a record has one entry at most.
type dlHeap[P namer] []dlItem[P]

type namer interface{ name() string }

// waitID names a waitlist entry in its expiry and retention heaps.
type waitID string

func (w waitID) name() string { return string(w) }

type dlItem[P namer] struct {
	at int64 // the deadline the entry was pushed at (Unix ns)
	p  P
}

func (q dlHeap[P]) Len() int { return len(q) }

func (q dlHeap[P]) less(i, j int) bool {
	if q[i].at == q[j].at {
		return q[i].p.name() < q[j].p.name()
	}
	return q[i].at < q[j].at
}

// push adds p at deadline at.
func (q *dlHeap[P]) push(at int64, p P) {
	if len(*q) == cap(*q) {
		// Doubled, not grown by append: past 256 entries append grows a
		// slice by about 1.25, so a heap filling up (a node's live holds
		// growing: at start-up, in a flash sale) allocated and copied
		// about five times its final size; doubling, about twice.
		*q = append(make(dlHeap[P], 0, max(16, 2*cap(*q))), *q...)
	}
	*q = append(*q, dlItem[P]{at: at, p: p})
	s := *q
	for j := len(s) - 1; j > 0; {
		i := (j - 1) / 2
		if !s.less(j, i) {
			break
		}
		s[i], s[j] = s[j], s[i]
		j = i
	}
}

func (q *dlHeap[P]) pop() dlItem[P] {
	s := *q
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = dlItem[P]{} // drop the record for the GC
	s = s[:last]
	for i := 0; ; {
		j := 2*i + 1
		if j >= len(s) {
			break
		}
		if r := j + 1; r < len(s) && s.less(r, j) {
			j = r
		}
		if !s.less(j, i) {
			break
		}
		s[i], s[j] = s[j], s[i]
		i = j
	}
	*q = s
	return top
}
