package loadgen

import (
	"testing"
)

func TestZipfSKUIsABijection(t *testing.T) {
	for _, n := range []int{1, 2, 7, 1000, 100_003, 1 << 20} {
		seen := make([]bool, n)
		for k := 0; k < n; k++ {
			i := ZipfSKU(uint64(k), n)
			if i < 0 || i >= n || seen[i] {
				t.Fatalf("skus=%d: rank %d maps to %d (out of range or taken)", n, k, i)
			}
			seen[i] = true
		}
	}
	// The largest catalogue does not overflow: rank MaxSKUs-1 stays in range.
	if i := ZipfSKU(MaxSKUs-1, MaxSKUs); i < 0 || i >= MaxSKUs {
		t.Fatalf("rank %d of %d maps to %d", MaxSKUs-1, MaxSKUs, i)
	}
}

func TestPickerZipfIsSkewedAndDeterministic(t *testing.T) {
	const seed, skus, draws = 7, 100_000, 200_000
	t.Logf("seed=%d", seed)
	wl := Workload{SKUs: skus, Dist: DistZipf, Qty: 1, Seed: seed}
	if err := wl.Validate(); err != nil {
		t.Fatal(err)
	}
	a, b := wl.Picker(3), wl.Picker(3)
	hot := ZipfSKU(0, skus)
	var hits int
	for i := 0; i < draws; i++ {
		x, y := a.SKU(), b.SKU()
		if x != y {
			t.Fatalf("draw %d: two pickers of one (seed, worker) differ: %d vs %d", i, x, y)
		}
		if x < 0 || x >= skus {
			t.Fatalf("draw %d: SKU %d out of range", i, x)
		}
		if x == hot {
			hits++
		}
	}
	// Rank 0 of Zipf(1.1) over 100k SKUs has probability ~1/H ≈ 0.14; a
	// uniform draw would hit it 2 times in 200k.
	if hits < draws/20 {
		t.Fatalf("hottest SKU drawn %d times in %d: not skewed", hits, draws)
	}
	u := Workload{SKUs: skus, Qty: 1, Seed: seed}
	if err := u.Validate(); err != nil || u.Dist != DistUniform {
		t.Fatalf("default dist %q, err %v", u.Dist, err)
	}
}

func TestWorkloadRefusesBadDistAndSize(t *testing.T) {
	for _, wl := range []Workload{
		{SKUs: 10, Qty: 1, Dist: "pareto"},
		{SKUs: MaxSKUs + 1, Qty: 1},
		{SKUs: 0, Qty: 1},
	} {
		if err := wl.Validate(); err == nil {
			t.Fatalf("%+v accepted", wl)
		}
	}
	c := &HTTPClient{}
	if _, err := c.NewOp(Workload{SKUs: MaxHTTPSKUs + 1, Qty: 1}); err == nil {
		t.Fatal("HTTP workload over MaxHTTPSKUs accepted")
	}
}
