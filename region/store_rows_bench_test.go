package region

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

// BenchmarkStoreSKURows measures a SKU-cache miss (issue 23): SKURows of a
// random SKU in a lazy store of 200 000 SKUs (an own row each; a peer row
// on every third, or rows of two peers on every SKU), written in batches
// of 1000 and spread over the memtable, L0 and L6 as in a running region. "iter" is SKURows (one
// bounded iterator); "get" is one point Get per writing region
// (skuRowsByGet, the miss a registry of writing regions would allow), which
// the whole-key bloom filters let skip the tables without the key; "get1"
// is a single Get of the own row, the floor of that design (a store that
// holds only its own rows); "ahead64" and "ahead256" read the rows of 64 or
// 256 random SKUs at once with Store.PrefetchRows (one iterator, forward
// seeks in SKU order) and then take each with SKURows, as the read-ahead
// stage and the stepper do. Kept to measure the miss (docs/benchmarks.md,
// "A cheaper cache miss", "Reading rows ahead of the stepper").
func BenchmarkStoreSKURows(b *testing.B) {
	for _, topo := range []struct {
		name  string
		peers []string // regions with a row beside the own one
		every int      // on every every-th SKU
	}{{"us-every-3rd", []string{"us"}, 3}, {"us+ap-every", []string{"us", "ap"}, 1}} {
		b.Run(topo.name, func(b *testing.B) { benchSKURows(b, topo.peers, topo.every) })
	}
}

func benchSKURows(b *testing.B, peers []string, every int) {
	const skus, batch = 200_000, 1000
	s, err := OpenStore(b.TempDir(), StoreOptions{Region: stRegion, NoSync: true, LazyRows: true, PrefetchRows: true, Logger: stLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	seq := uint64(0)
	// Round 0 writes every SKU and is compacted to the bottom level; round
	// 1 rewrites every fourth SKU and is flushed (L0); round 2 every tenth
	// and stays in the memtable: a miss looks in all three, as in a
	// running region.
	for round, nth := range []int{1, 4, 10} {
		for i := 0; i < skus; i += batch {
			p := &escrow.Persist{}
			for j := i; j < i+batch; j++ {
				if j%nth != 0 {
					continue
				}
				seq++
				sku := "sku-" + strconv.Itoa(j)
				p.Rows = append(p.Rows, escrow.Row{SKU: sku, Region: stRegion, Seq: seq, Minted: uint64(1000 + round)})
				if j%every == 0 {
					for _, peer := range peers {
						p.Rows = append(p.Rows, escrow.Row{SKU: sku, Region: peer, Seq: uint64(j + 1 + round), Minted: 500})
					}
				}
			}
			p.Seq = seq
			if err := s.Apply(p); err != nil {
				b.Fatal(err)
			}
		}
		switch round {
		case 0:
			if err := s.db.Compact(b.Context(), []byte(pfxRow), prefixEnd(pfxRow), false); err != nil {
				b.Fatal(err)
			}
		case 1:
			if err := s.db.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("levels:\n%s", s.db.Metrics())
	regions := append([]string{stRegion}, peers...)
	seed := uint64(23)
	b.Logf("seed %d", seed)
	for _, mode := range []string{"iter", "get", "get1", "ahead64", "ahead256"} {
		b.Run(mode, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(seed, seed))
			var dst []escrow.Row
			var err error
			var ahead, batch []string
			size := map[string]int{"ahead64": 64, "ahead256": 256}[mode]
			b.ReportAllocs()
			// CPU time as well as wall time: the machine is shared.
			cpu0 := processCPU(b)
			for b.Loop() {
				sku := "sku-" + strconv.Itoa(rng.IntN(skus))
				if size > 0 {
					if len(ahead) == 0 {
						ahead = ahead[:0]
						for range size {
							ahead = append(ahead, "sku-"+strconv.Itoa(rng.IntN(skus)))
						}
						batch = append(batch[:0], ahead...)
						s.PrefetchRows(batch...)
					}
					sku, ahead = ahead[0], ahead[1:]
				}
				switch mode {
				case "iter", "ahead64", "ahead256":
					dst, err = s.SKURows(sku, dst[:0])
				case "get":
					dst, err = s.skuRowsByGet(sku, regions, dst[:0])
				default:
					dst, err = s.skuRowsByGet(sku, regions[:1], dst[:0])
				}
				if err != nil || len(dst) == 0 {
					b.Fatalf("%s: %d rows, %v", sku, len(dst), err)
				}
			}
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// skuRowsByGet reads the rows of sku with one point Get per region in
// regions: what SKURows could do if the store knew every region that has
// written rows (it does not; see BenchmarkStoreSKURows).
func (s *Store) skuRowsByGet(sku string, regions []string, dst []escrow.Row) ([]escrow.Row, error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return dst, ErrStoreClosed
	}
	k := appendRowKey(make([]byte, 0, 64), sku, "")
	n := len(k)
	for _, reg := range regions {
		k = append(k[:n], reg...)
		v, closer, err := s.db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return dst, fmt.Errorf("read %s: %w", fmtKey(k), err)
		}
		r, err := s.decodeRowKV(k, v)
		closer.Close()
		if err != nil {
			return dst, err
		}
		dst = append(dst, r)
	}
	return dst, nil
}

// processCPU is the CPU time (user and system) of the process so far, in
// nanoseconds.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
