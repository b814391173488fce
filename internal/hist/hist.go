// Package hist is holdfast's one latency histogram: log-linear, in the
// style of HdrHistogram. loadgen and the demo measure wall-clock latencies
// with it, the simulator virtual ones. Memory is fixed per histogram
// whatever the number of values, Record does not allocate once the
// histogram is in use, and counts are exact.
package hist

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Layout fixes a histogram's unit, resolution and range. Values are
// counted in whole units (durations are truncated to the unit); values
// below 2^exact units have a bucket each; above, every power of two is
// split into 2^(exact-1) equal buckets, so a bucket is at most 1/2^(exact-1)
// of its start wide; values clamp to 2^top - 1 units.
type Layout struct {
	unit  uint64 // nanoseconds per unit
	exact uint8
	top   uint8
}

var (
	// Fine counts nanoseconds to within 1/128 (0.8%), exact below 256 ns,
	// clamped at 2^40 ns (about 18 minutes): 4,352 buckets, 34 KiB. The
	// zero Histogram uses it.
	Fine = Layout{unit: 1, exact: 8, top: 40}
	// Compact counts microseconds to within 1/32 (about 3%), exact below
	// 64 µs, clamped at 2^40 µs (about 12 days): 1,152 buckets, 9 KiB, so
	// that a simulator sweep can keep one per seed.
	Compact = Layout{unit: 1000, exact: 6, top: 40}
)

// or returns l, or Fine for the zero Layout (that of a zero Histogram).
func (l Layout) or() Layout {
	if l.unit == 0 {
		return Fine
	}
	return l
}

// buckets is the number of buckets: 2^exact exact ones, then 2^(exact-1)
// per power of two from 2^exact to 2^(top-1).
func (l Layout) buckets() int {
	return 1<<l.exact + int(l.top-l.exact)<<(l.exact-1)
}

// maxVal is the largest value counted, in units.
func (l Layout) maxVal() uint64 { return 1<<l.top - 1 }

// bucketOf returns the bucket index of v (v <= maxVal).
func (l Layout) bucketOf(v uint64) int {
	if v < 1<<l.exact {
		return int(v)
	}
	m := int(l.exact - 1)    // mantissa bits kept
	msb := bits.Len64(v) - 1 // >= exact
	shift := msb - m
	sub := int(v>>uint(shift)) - 1<<m
	return 1<<l.exact + (msb-int(l.exact))<<m + sub
}

// bucketRange returns the smallest and largest value (in units) that fall
// in bucket i.
func (l Layout) bucketRange(i int) (lo, hi uint64) {
	if i < 1<<l.exact {
		return uint64(i), uint64(i)
	}
	m := int(l.exact - 1)
	j := i - 1<<l.exact
	msb := j>>m + int(l.exact)
	sub := uint64(j & (1<<m - 1))
	shift := uint(msb - m)
	lo = (1<<m + sub) << shift
	hi = lo + 1<<shift - 1
	return lo, hi
}

// middle is the value bucket i reports for QuantileMid, in nanoseconds.
// A bucket of whole units [lo, hi] holds the durations of [lo, hi+1)
// units, whose middle it reports; buckets below 2^(exact-1) units report
// their own value instead. That first rule is older than the second and
// is kept so that the simulator's published figures do not move.
func (l Layout) middle(i int) uint64 {
	if i < 1<<(l.exact-1) {
		return uint64(i) * l.unit
	}
	lo, hi := l.bucketRange(i)
	return lo*l.unit + (hi-lo+1)*l.unit/2
}

// Histogram counts latencies. The zero value is ready to use, with the
// Fine layout; New gives another. A Histogram is not safe for concurrent
// use: give each worker its own and Merge them at the end. Its counts are
// shared by copies: Merge into a new one rather than copy.
type Histogram struct {
	layout Layout   // zero: Fine
	counts []uint64 // allocated by the first Record or Merge
	total  uint64
	sum    uint64 // in units; wraps only after ~584 years of nanoseconds
	min    uint64 // in units
	max    uint64 // in units
}

// New returns an empty histogram with layout l.
func New(l Layout) Histogram { return Histogram{layout: l.or()} }

// use allocates the counts on first use, so that a zero Histogram works
// and an empty one costs no buckets.
func (h *Histogram) use() {
	if h.counts == nil {
		h.layout = h.layout.or()
		h.counts = make([]uint64, h.layout.buckets())
	}
}

// Record adds one latency. Negative durations count as zero; durations
// above the layout's range are clamped (and still counted).
func (h *Histogram) Record(d time.Duration) {
	h.use()
	v := uint64(0)
	if d > 0 {
		v = uint64(d) / h.layout.unit
	}
	v = min(v, h.layout.maxVal())
	h.counts[h.layout.bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += v
}

// Merge adds every value of o to h. Unless o is empty both must have the
// same layout: adding counts of different buckets would be meaningless, so
// it panics.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	if h.layout.or() != o.layout.or() {
		panic(fmt.Sprintf("hist: merging layouts %+v and %+v", o.layout.or(), h.layout.or()))
	}
	h.use()
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

// Reset forgets every value; the layout stays.
func (h *Histogram) Reset() { *h = Histogram{layout: h.layout} }

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

func (h *Histogram) dur(v uint64) time.Duration { return time.Duration(v * h.layout.or().unit) }

// Min and Max are the exact extremes, to the unit (0 when empty).
func (h *Histogram) Min() time.Duration { return h.dur(h.min) }
func (h *Histogram) Max() time.Duration { return h.dur(h.max) }

// Mean is the exact mean, to the unit (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return h.dur(h.sum / h.total)
}

// Quantile returns the value below or at which a fraction q (0..1] of the
// values fall: the smallest recorded value v such that at least
// ceil(q*count) values are <= v, reported as the upper end of v's bucket
// (never above the exact maximum), so it never under-estimates, and
// over-estimates by at most a bucket's width. It returns 0 when empty.
// loadgen and the demo report it.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	if q <= 0 {
		return h.dur(h.min)
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.total {
		return h.dur(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := h.layout.bucketRange(i)
			if hi > h.max {
				hi = h.max
			}
			if hi < h.min {
				hi = h.min
			}
			return h.dur(hi)
		}
	}
	return h.dur(h.max)
}

// QuantileMid estimates the q-quantile as the middle of the bucket that
// holds the value of 0-based rank floor(q*(count-1)): off by at most half
// a bucket's width either way, and not clamped to Min and Max. It returns
// 0 when empty. The simulator reports it; it is not Quantile because each
// report keeps the method its published figures were computed with.
func (h *Histogram) QuantileMid(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q * float64(h.total-1))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > rank {
			return time.Duration(h.layout.middle(i))
		}
	}
	return time.Duration(h.layout.middle(len(h.counts) - 1))
}
