package hist

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func TestBucketRangeContainsValue(t *testing.T) {
	for _, l := range []Layout{Fine, Compact} {
		testBucketRange(t, l)
	}
}

func testBucketRange(t *testing.T, l Layout) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	maxVal, n := l.maxVal(), l.buckets()
	check := func(v uint64) {
		i := l.bucketOf(v)
		if i < 0 || i >= n {
			t.Fatalf("%+v seed %d: value %d: bucket %d out of range", l, seed, v, i)
		}
		lo, hi := l.bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("%+v seed %d: value %d in bucket %d = [%d,%d]", l, seed, v, i, lo, hi)
		}
		if v >= 1<<l.exact && float64(hi-lo+1)/float64(lo) > 1.0/float64(int(1)<<(l.exact-1))+1e-12 {
			t.Fatalf("%+v seed %d: bucket [%d,%d] wider than 1/%d of its start", l, seed, lo, hi, 1<<(l.exact-1))
		}
	}
	for v := uint64(0); v < 5000; v++ {
		check(v)
	}
	check(maxVal)
	for k := 0; k < 200_000; k++ {
		check(rng.Uint64N(maxVal + 1))
		check(uint64(1) << rng.IntN(int(l.top))) // powers of two are bucket edges
	}
	// Buckets tile the range: each starts where the previous one ended.
	prevHi := uint64(0)
	for i := 1; i < n; i++ {
		lo, hi := l.bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("%+v: bucket %d starts at %d, previous ended at %d", l, i, lo, prevHi)
		}
		prevHi = hi
	}
	if prevHi != maxVal {
		t.Fatalf("%+v: last bucket ends at %d, want %d", l, prevHi, maxVal)
	}
}

// A uniform distribution of 1..100,000 µs has known quantiles: the value of
// rank ceil(q*n) is exactly q*100,000 µs.
func TestQuantilesOfKnownDistribution(t *testing.T) {
	var h Histogram
	const n = 100_000
	// Record in a shuffled order: the histogram must not care.
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	perm := rng.Perm(n)
	for _, i := range perm {
		h.Record(time.Duration(i+1) * time.Microsecond)
	}
	if h.Count() != n {
		t.Fatalf("count %d, want %d", h.Count(), n)
	}
	if h.Min() != time.Microsecond || h.Max() != n*time.Microsecond {
		t.Fatalf("min %v max %v", h.Min(), h.Max())
	}
	wantMean := time.Duration((n + 1) * 500) // (n+1)/2 µs in ns
	if h.Mean() != wantMean {
		t.Fatalf("mean %v, want %v", h.Mean(), wantMean)
	}
	for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999} {
		exact := time.Duration(float64(n)*q) * time.Microsecond
		got := h.Quantile(q)
		// Never under the exact value, at most 1/128 above it.
		if got < exact || float64(got-exact) > float64(exact)/128+1 {
			t.Errorf("seed %d: q=%v: got %v, exact %v", seed, q, got, exact)
		}
	}
	if h.Quantile(1) != h.Max() || h.Quantile(0) != h.Min() {
		t.Errorf("q=0/1: got %v/%v", h.Quantile(0), h.Quantile(1))
	}
}

func TestQuantileSmallAndSkewed(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram must report 0")
	}
	// 990 fast values and 10 slow ones: p99 is fast, p99.9 is slow.
	for i := 0; i < 990; i++ {
		h.Record(100 * time.Microsecond)
	}
	for i := 0; i < 10; i++ {
		h.Record(50 * time.Millisecond)
	}
	if p := h.Quantile(0.99); p < 100*time.Microsecond || p > 101*time.Microsecond {
		t.Errorf("p99 = %v, want ~100µs", p)
	}
	if p := h.Quantile(0.991); p != 50*time.Millisecond {
		t.Errorf("p99.1 = %v, want 50ms (the exact max)", p)
	}
	// Clamping and negatives still count.
	h.Record(-time.Second)
	h.Record(100 * time.Hour)
	if h.Count() != 1002 || h.Min() != 0 || h.Max() != time.Duration(Fine.maxVal()) {
		t.Errorf("count %d min %v max %v", h.Count(), h.Min(), h.Max())
	}
}

func TestMergeEqualsRecordingTogether(t *testing.T) {
	var a, b, all Histogram
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 50_000; i++ {
		d := time.Duration(rng.ExpFloat64() * float64(time.Millisecond))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if !reflect.DeepEqual(m, all) {
		t.Fatal("merged histogram differs from recording all values in one")
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	var h Histogram
	if n := testing.AllocsPerRun(1000, func() { h.Record(1234567) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}

// Compact's middle estimate stays within its 3% buckets (sim's p50/p99).
func TestQuantileMidCompact(t *testing.T) {
	h := New(Compact)
	if h.QuantileMid(0.5) != 0 {
		t.Fatal("empty histogram must report 0")
	}
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond) // 1..1000 ms
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 500}, {0.99, 990}, {0, 1}} {
		got := float64(h.QuantileMid(c.q)) / 1e6
		if got < c.want*0.96 || got > c.want*1.04 {
			t.Errorf("q%.2f = %.2f ms, want %.0f ±4%%", c.q, got, c.want)
		}
	}
	for us := uint64(0); us < 1<<36; us = us*3/2 + 1 {
		i := Compact.bucketOf(us)
		if v := float64(Compact.middle(i)) / 1000; v < float64(us)*0.96-1 || v > float64(us)*1.04+1 {
			t.Fatalf("bucket %d of %dµs has value %.1f", i, us, v)
		}
	}
}

func TestMergePanicsOnOtherLayout(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("merging a Compact into a Fine histogram did not panic")
		}
	}()
	var fine Histogram
	c := New(Compact)
	c.Record(time.Millisecond)
	fine.Merge(&c)
}

func TestResetKeepsLayout(t *testing.T) {
	h := New(Compact)
	h.Record(1500 * time.Nanosecond)
	h.Reset()
	h.Record(1500 * time.Nanosecond)
	if h.Count() != 1 || h.Min() != time.Microsecond {
		t.Fatalf("after Reset: count %d min %v, want 1 and 1µs (Compact truncates to µs)", h.Count(), h.Min())
	}
}
