package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram is a log-linear latency histogram in the style of HdrHistogram:
// values below 2^subBits nanoseconds are counted exactly; above, each power
// of two is split into 2^(subBits-1) equal buckets, so every recorded value
// is known to within 1/128 (0.8%) of itself. Memory is fixed (about 35 KiB)
// whatever the number of values, Record never allocates, and counts are
// exact. A Histogram is not safe for concurrent use: give each worker its
// own and Merge them at the end.
type Histogram struct {
	counts [numBuckets]uint64
	total  uint64
	sum    uint64 // nanoseconds; wraps only after ~584 years of latency
	min    uint64
	max    uint64
}

const (
	subBits = 8           // exact below 256 ns
	mBits   = subBits - 1 // mantissa bits kept above that
	maxBit  = 40          // values are clamped to 2^40 ns (~18 min)
	maxVal  = uint64(1)<<maxBit - 1
	// numBuckets: 2^subBits exact buckets, then 2^mBits per power of two
	// from 2^subBits to 2^(maxBit-1).
	numBuckets = 1<<subBits + (maxBit-subBits)<<mBits
)

// bucketOf returns the bucket index of v (v <= maxVal).
func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	msb := bits.Len64(v) - 1 // >= subBits
	shift := msb - mBits
	sub := int(v>>uint(shift)) - 1<<mBits
	return 1<<subBits + (msb-subBits)<<mBits + sub
}

// bucketRange returns the smallest and largest value that fall in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < 1<<subBits {
		return uint64(i), uint64(i)
	}
	j := i - 1<<subBits
	msb := j>>mBits + subBits
	sub := uint64(j & (1<<mBits - 1))
	shift := uint(msb - mBits)
	lo = (1<<mBits + sub) << shift
	hi = lo + 1<<shift - 1
	return lo, hi
}

// Record adds one latency. Negative durations count as zero; durations
// above ~18 minutes are clamped (and still counted).
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	if v > maxVal {
		v = maxVal
	}
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += v
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Reset forgets every value.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Min and Max are the exact extremes (0 when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the exact mean (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / h.total)
}

// Quantile returns the value below or at which a fraction q (0..1] of the
// values fall: the smallest recorded value v such that at least
// ceil(q*count) values are <= v, reported as the upper end of v's bucket
// (never above the exact maximum), so it over-estimates by at most 0.8%.
// It returns 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(h.min)
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.total {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			if hi > h.max {
				hi = h.max
			}
			if hi < h.min {
				hi = h.min
			}
			return time.Duration(hi)
		}
	}
	return time.Duration(h.max)
}
