package region

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
)

// BenchmarkRowOverlayPut is the overlay's work per row the committer puts
// (one op): putLocked, and a checkpoint's share of what it does to the
// overlay (no sstable, no ingest) every rowsPerCk rows: at 1 M SKUs
// (uniform, ~one row per hold, as `holdfast bench --skus 1000000`), and
// at one SKU of three regions (each batch rewriting the same rows).
func BenchmarkRowOverlayPut(b *testing.B) {
	const rowsPerCk = 1 << 16 // ~a 16 MiB log file's rows at 1 M SKUs
	val := make([]byte, 48)   // an encoded row's size
	for _, v := range []struct {
		name string
		keys func(rng *rand.Rand) []byte
	}{
		{"skus=1M", func(rng *rand.Rand) []byte {
			return appendRowKey(nil, "sku-"+strconv.Itoa(rng.IntN(1_000_000)), stRegion)
		}},
		{"skus=1", func(rng *rand.Rand) []byte {
			return appendRowKey(nil, "sku-0", [...]string{"ap", "eu", "us"}[rng.IntN(3)])
		}},
	} {
		b.Run(v.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			keys := make([][]byte, 1<<20)
			for i := range keys {
				keys[i] = v.keys(rng)
			}
			o := benchNewOverlay()
			b.ReportAllocs()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mallocs := ms.Mallocs
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				o.mu.Lock()
				err := o.putLocked(keys[i&(len(keys)-1)], val, uint64(i))
				o.mu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
				if i%rowsPerCk == rowsPerCk-1 {
					if err := benchCheckpointOverlay(o, uint64(i)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			// allocs/op is rounded down: a new SKU's key is most puts' one.
			b.ReportMetric(float64(ms.Mallocs-mallocs)/float64(b.N), "mallocs/op")
		})
	}
}

func benchNewOverlay() *rowOverlay { return newRowOverlay(nil) }

// benchCheckpointOverlay is a table checkpoint's work on the overlay at
// c0: freeze, every row walked in key order (as build writes them), the
// generation dropped.
func benchCheckpointOverlay(o *rowOverlay, c0 uint64) error {
	g, err := o.freeze()
	if err != nil {
		return err
	}
	n := 0
	for _, h := range g.appendHeads(make([]ovHead, 0, len(g.skus))) {
		for i := h.first; i != ovNone; i = g.rows[i].next {
			n += len(g.val(&g.rows[i]))
		}
	}
	_ = n
	return o.dropFrozen(g)
}

// BenchmarkRowOverlayCheckpointWalk is a table checkpoint's walk of a
// frozen generation of 65,536 rows of SKUs drawn from a million (its SKUs
// sorted, every row read in key order), per row.
func BenchmarkRowOverlayCheckpointWalk(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	g := newOvGen(0, 0, 0)
	val := make([]byte, 48)
	for i := 0; i < 1<<16; i++ {
		if err := g.put([]byte("sku-"+strconv.Itoa(rng.IntN(1_000_000))), []byte(stRegion), val, uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
	heads := make([]ovHead, 0, len(g.skus))
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		heads = g.appendHeads(heads[:0])
		for _, h := range heads {
			for j := h.first; j != ovNone; j = g.rows[j].next {
				n += len(g.val(&g.rows[j]))
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(g.rows)), "ns/row")
	_ = n
}
