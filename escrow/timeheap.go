package escrow

import (
	"math"
	"time"
)

// This file holds the min-heap of (time, id) behind the node's expiry
// queues (holds, retention, idempotency keys); tick.go drains them.

// timeHeap is a min-heap of (time, id). It is hand-written rather than
// built on container/heap: boxing every item into an interface cost an
// allocation per hold on the hot path.
type timeItem struct {
	at int64 // Unix ns (see nanos): compares without time.Time's methods
	id string
}

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

type timeHeap []timeItem

func (h timeHeap) Len() int { return len(h) }

func (h timeHeap) less(i, j int) bool {
	if h[i].at == h[j].at {
		return h[i].id < h[j].id
	}
	return h[i].at < h[j].at
}

func (h *timeHeap) push(it timeItem) {
	*h = append(*h, it)
	s := *h
	for j := len(s) - 1; j > 0; {
		i := (j - 1) / 2
		if !s.less(j, i) {
			break
		}
		s[i], s[j] = s[j], s[i]
		j = i
	}
}

func (h *timeHeap) pop() timeItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = timeItem{} // drop the id string for the GC
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
	*h = s
	return top
}

// dlHeap is the expiry index of HELD holds (P = *holdRec) and of
// idempotency keys (P = *idemRec): a min-heap of (deadline, record), 16
// bytes an entry, ordered like timeHeap (ties by name). It is lazy: an
// extend leaves a hold's entry at the old deadline, a finished hold or a
// replaced key leaves its entry in place, and the sweeper re-pushes or
// drops such entries when they come up (tick.go), so that every change
// costs O(1) and a record has one entry at most.
type dlHeap[P namer] []dlItem[P]

type namer interface{ name() string }

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
