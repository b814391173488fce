package region

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// TestSKUPrefetchRegion: with the SKU cache far smaller than the SKUs in
// use and rows read ahead (both settings), concurrent holds and stock
// reads leave every SKU with exactly the units the granted holds took, and
// the reads ahead are served (the path is exercised, not bypassed).
func TestSKUPrefetchRegion(t *testing.T) {
	for _, mode := range []string{SKUPrefetchBatch, SKUPrefetchStage} {
		t.Run(mode, func(t *testing.T) {
			const skus, units, callers, holdsEach = 64, 40, 8, 60
			const seed = 23
			t.Logf("seed %d", seed)
			r, err := Open(context.Background(), Config{Name: "eu", DataDir: "db", FS: vfs.NewMem(), Logger: quietLogger(),
				SKUCache: 4, SKUPrefetch: mode, Escrow: escrow.Config{DigestInterval: -1}})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			name := func(i int) string { return fmt.Sprintf("P%03d", i) }
			for i := range skus {
				restock(t, r, name(i), units)
			}
			var mu sync.Mutex
			held := make([]uint64, skus)
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(seed, uint64(c)))
					for range holdsEach {
						i := rng.IntN(skus)
						qty := 1 + uint64(rng.IntN(2))
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						rep, err := r.Do(ctx, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: name(i), Qty: qty}}})
						cancel()
						if err != nil {
							errs <- err
							return
						}
						if rep.Err == nil {
							mu.Lock()
							held[i] += qty
							mu.Unlock()
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// Stock reads of every SKU at once (DoBatch queues them
			// together: the batch setting reads them in one pass), until a
			// read ahead was served or the deadline passes.
			cmds := make([]escrow.Command, skus)
			for i := range cmds {
				cmds[i] = escrow.Command{Kind: escrow.CmdStock, SKU: name(i)}
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				reps, err := r.DoBatch(context.Background(), cmds, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				for i, rep := range reps {
					if rep.Err != nil {
						t.Fatalf("stock of %s: %v", name(i), rep.Err)
					}
					if st := rep.Stock; st.Held != held[i] || st.Available != units-held[i] {
						t.Fatalf("%s: available %d held %d, the granted holds took %d of %d", name(i), st.Available, st.Held, held[i], units)
					}
				}
				ps := r.PrefetchStats()
				if ps.Served > 0 {
					s := r.Stats()
					t.Logf("reads ahead %+v; cache misses %d, evictions %d", ps, s.SKUCacheMisses, s.SKUCacheEvictions)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no read ahead served: %+v", ps)
				}
			}
			if s := r.Stats(); s.SKUCacheMisses == 0 || s.SKUCacheEvictions == 0 {
				t.Fatalf("the cache was not used: %+v", s)
			}
		})
	}
}

// TestSKUPrefetchDefault: with the SKU cache, rows are read ahead on the
// stepper unless sku_prefetch says off; without it, never. A region opened
// with the default reads ahead and one with off does not.
func TestSKUPrefetchDefault(t *testing.T) {
	for _, c := range []struct {
		cache int
		set   string
		want  string
	}{
		{0, "", ""}, {0, SKUPrefetchBatch, ""}, {4, "", SKUPrefetchBatch}, {4, SKUPrefetchOff, ""},
		{4, SKUPrefetchBatch, SKUPrefetchBatch}, {4, SKUPrefetchStage, SKUPrefetchStage},
	} {
		if got := (Config{SKUCache: c.cache, SKUPrefetch: c.set}).skuPrefetch(); got != c.want {
			t.Errorf("sku_cache %d, sku_prefetch %q: in effect %q, want %q", c.cache, c.set, got, c.want)
		}
	}
	if err := (Config{Name: "eu", DataDir: "db", SKUPrefetch: "eager"}).Validate(); err == nil || !strings.Contains(err.Error(), "sku_prefetch") {
		t.Errorf("sku_prefetch eager: %v, want an error naming sku_prefetch", err)
	}
	for _, set := range []string{"", SKUPrefetchOff} {
		r, err := Open(context.Background(), Config{Name: "eu", DataDir: "db", FS: vfs.NewMem(), Logger: quietLogger(),
			SKUCache: 1, SKUPrefetch: set, Escrow: escrow.Config{DigestInterval: -1}})
		if err != nil {
			t.Fatal(err)
		}
		restock(t, r, "A", 5)
		restock(t, r, "B", 5)
		cmds := []escrow.Command{{Kind: escrow.CmdStock, SKU: "A"}, {Kind: escrow.CmdStock, SKU: "B"}}
		var ps PrefetchStats
		for range 20 { // with A and B evicted in turn, each round misses
			if _, err := r.DoBatch(context.Background(), cmds, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if ps = r.PrefetchStats(); ps.Passes > 0 {
				break
			}
		}
		r.Close()
		if on := ps.Passes > 0; on != (set == "") {
			t.Errorf("sku_prefetch %q with sku_cache 1: read-ahead passes %d", set, ps.Passes)
		}
	}
}
