package hist

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"
	"time"
)

// The read-outs of the two histograms this package replaced: the
// simulator's whole (verbatim but for names; now Compact and QuantileMid)
// and loadgen's Quantile over the Fine buckets (its bucket arithmetic is
// the Layout's, checked by TestBucketRangeContainsValue). Both reports
// must keep their figures, to the bit.

type simHist struct{ n [simHistSize]uint32 }

const (
	simHistSub  = 32
	simHistSize = 48 * simHistSub
)

func simHistIndex(us uint64) int {
	if us < simHistSub {
		return int(us)
	}
	e := bits.Len64(us) - 6
	i := (e+1)*simHistSub + int(us>>e) - simHistSub
	return min(i, simHistSize-1)
}

func simHistValue(i int) float64 {
	if i < simHistSub {
		return float64(i)
	}
	e := i/simHistSub - 1
	m := uint64(i%simHistSub + simHistSub)
	return float64(m<<e) + float64(uint64(1)<<e)/2
}

func (h *simHist) add(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.n[simHistIndex(uint64(ns)/1000)]++
}

func (h *simHist) quantileMs(q float64) float64 {
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
			return simHistValue(i) / 1000
		}
	}
	return simHistValue(simHistSize-1) / 1000
}

type loadgenHist struct {
	counts     [4352]uint64
	total, min uint64
	max        uint64
}

func (h *loadgenHist) record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	v = min(v, Fine.maxVal())
	h.counts[Fine.bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.total++
}

func (h *loadgenHist) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(h.min)
	}
	rank := max(uint64(math.Ceil(q*float64(h.total))), 1)
	if rank >= h.total {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := Fine.bucketRange(i)
			return time.Duration(max(min(hi, h.max), h.min))
		}
	}
	return time.Duration(h.max)
}

func TestSameFiguresAsTheReplacedHistograms(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 3))
	qs := []float64{0, 0.001, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.991, 0.999, 1}
	for round := 0; round < 300; round++ {
		var old simHist
		var oldL loadgenHist
		sim := New(Compact)
		var fine Histogram
		n := 1 + rng.IntN(3000)
		scale := math.Pow(10, float64(rng.IntN(10))) // 1 ns .. 1 s
		for k := 0; k < n; k++ {
			ns := int64(rng.ExpFloat64()*scale) - int64(rng.IntN(2))
			old.add(ns)
			sim.Record(time.Duration(ns))
			oldL.record(time.Duration(ns))
			fine.Record(time.Duration(ns))
		}
		for _, q := range qs {
			want, got := old.quantileMs(q), float64(sim.QuantileMid(q))/1e6
			if math.Float64bits(want) != math.Float64bits(got) {
				t.Fatalf("seed %d round %d q=%v: sim quantile %v ms, was %v ms", seed, round, q, got, want)
			}
			if want, got := oldL.quantile(q), fine.Quantile(q); want != got {
				t.Fatalf("seed %d round %d q=%v: loadgen quantile %v, was %v", seed, round, q, got, want)
			}
		}
	}
}
