package region_test

import (
	"context"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// TestListingHoldP99 measures the hold latency (p50/p99) with and without
// a concurrent lister paging through every hold (limit 1000). Opt-in:
// HOLDFAST_LIST_P99=1 go test ./region -run TestListingHoldP99 -v
func TestListingHoldP99(t *testing.T) {
	if os.Getenv("HOLDFAST_LIST_P99") == "" {
		t.Skip("set HOLDFAST_LIST_P99=1")
	}
	const preload, workers, phase = 50000, 16, 3 * time.Second
	ctx := context.Background()
	r, err := region.Open(ctx, region.Config{Name: "eu", DataDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if rep, err := r.Do(ctx, escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: escrow.MaxQty}); err != nil || rep.Err != nil {
		t.Fatal(err, rep.Err)
	}
	hold := func() time.Duration {
		s := time.Now()
		rep, err := r.Do(ctx, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, Cart: "bench", TTL: time.Hour})
		if err != nil || rep.Err != nil {
			t.Fatalf("hold: %v %v", err, rep.Err)
		}
		return time.Since(s)
	}
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(preload)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				hold()
			}
		}()
	}
	wg.Wait()
	measure := func(list bool) (p50, p99 time.Duration, pages int) {
		stop := make(chan struct{})
		var lw sync.WaitGroup
		if list {
			lw.Add(1)
			go func() {
				defer lw.Done()
				var after []byte
				for {
					select {
					case <-stop:
						return
					default:
					}
					p, err := r.ListHolds(ctx, region.HoldQuery{Limit: region.MaxListLimit, After: after})
					if err != nil {
						t.Error(err)
						return
					}
					pages++
					after = p.Next
				}
			}()
		}
		var mu sync.Mutex
		var lat []time.Duration
		end := time.Now().Add(phase)
		var hw sync.WaitGroup
		for w := 0; w < workers; w++ {
			hw.Add(1)
			go func() {
				defer hw.Done()
				var mine []time.Duration
				for time.Now().Before(end) {
					mine = append(mine, hold())
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		hw.Wait()
		close(stop)
		lw.Wait()
		slices.Sort(lat)
		return lat[len(lat)/2], lat[len(lat)*99/100], pages
	}
	p50, p99, _ := measure(false)
	t.Logf("no lister:   hold p50 %v p99 %v", p50, p99)
	p50, p99, pages := measure(true)
	t.Logf("with lister: hold p50 %v p99 %v (%d pages of 1000 listed)", p50, p99, pages)
}
