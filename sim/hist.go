package sim

import "math/bits"

// hist is a log-linear histogram of latencies in microseconds: exact below
// 32µs, then 32 buckets per power of two (about 3% relative error). Fixed
// size, so a sweep of many seeds keeps a few KB per seed, not every sample.
type hist struct {
	n [histSize]uint32
}

const (
	histSub  = 32
	histSize = 48 * histSub
)

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - 6 // us>>e is in [32, 64)
	i := (e+1)*histSub + int(us>>e) - histSub
	return min(i, histSize-1)
}

// histValue is the middle of bucket i, in microseconds.
func histValue(i int) float64 {
	if i < histSub {
		return float64(i)
	}
	e := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return float64(m<<e) + float64(uint64(1)<<e)/2
}

func (h *hist) add(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.n[histIndex(uint64(ns)/1000)]++
}

func (h *hist) merge(o *hist) {
	for i := range h.n {
		h.n[i] += o.n[i]
	}
}

// quantileMs returns the q-quantile in milliseconds (0 if empty).
func (h *hist) quantileMs(q float64) float64 {
	var total uint64
	for _, c := range h.n {
		total += uint64(c)
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q * float64(total-1))
	var seen uint64
	for i, c := range h.n {
		seen += uint64(c)
		if seen > rank {
			return histValue(i) / 1000
		}
	}
	return histValue(histSize-1) / 1000
}
