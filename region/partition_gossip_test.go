package region_test

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// TestMultiRegionPartitionSoak runs shoppers, restocks, confirms and
// releases at three regions while a seeded schedule cuts and heals their
// NATS links, then heals everything and checks that the regions converge,
// that units are conserved exactly, and that every acknowledged hold is
// at its owner in the state its last acknowledged operation left it.
// Skipped with -short (it runs for a few seconds).
func TestMultiRegionPartitionSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: runs for seconds")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	names := []string{"eu", "us", "ap"}
	w := newMRWorld(t, names...)
	const sku = "S"
	var minted atomic.Int64
	for _, n := range names {
		w.mustDo(n, restock(sku, 5))
		minted.Add(5)
	}

	type holdRec struct {
		owner string
		state escrow.HoldState
		busy  bool
	}
	var mu sync.Mutex
	holds := map[string]*holdRec{}
	var granted, refused atomic.Int64
	var maxLat atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		name := names[g%3]
		grng := rand.New(rand.NewPCG(seed, uint64(g)+2))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch x := grng.IntN(10); {
				case x < 6:
					start := time.Now()
					r, err := w.do(name, hold(sku, uint64(1+grng.IntN(2))))
					if d := int64(time.Since(start)); d > maxLat.Load() {
						maxLat.Store(d)
					}
					if err != nil {
						t.Errorf("hold at %s: %v", name, err)
						return
					}
					if r.Err != nil {
						refused.Add(1)
						continue
					}
					granted.Add(1)
					mu.Lock()
					holds[r.Hold.ID] = &holdRec{owner: name, state: escrow.Held}
					mu.Unlock()
				case x < 8:
					// Confirm or release one of this region's own holds.
					var id string
					mu.Lock()
					for hid, h := range holds {
						if h.owner == name && h.state == escrow.Held && !h.busy {
							id, h.busy = hid, true // claimed: no other shopper touches it
							break
						}
					}
					mu.Unlock()
					if id == "" {
						continue
					}
					kind, to := escrow.CmdConfirm, escrow.Confirmed
					if x == 7 {
						kind, to = escrow.CmdRelease, escrow.Released
					}
					r, err := w.do(name, escrow.Command{Kind: kind, HoldID: id})
					if err != nil || r.Err != nil {
						t.Errorf("%s %s at its owner: %v %v", kind, id, err, r.Err)
						return
					}
					mu.Lock()
					holds[id].state, holds[id].busy = to, false
					mu.Unlock()
				default:
					if _, err := w.do(name, restock(sku, 1)); err != nil {
						t.Errorf("restock at %s: %v", name, err)
						return
					}
					minted.Add(1)
				}
			}
		}()
	}
	// The fault schedule: cut one region at a time, or two, then heal.
	deadline := time.Now().Add(3 * time.Second)
	cuts := 0
	for {
		victim := names[rng.IntN(3)]
		w.sites[victim].proxy.Cut()
		if rng.IntN(3) == 0 {
			w.sites[names[rng.IntN(3)]].proxy.Cut()
		}
		cuts++
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond) // fault schedule, not synchronisation
		if time.Now().After(deadline) {
			break // stop the load while partitioned: the heal below has work to do
		}
		for _, n := range names {
			w.sites[n].proxy.Heal()
		}
		time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond) // fault schedule, not synchronisation
	}
	close(stop)
	wg.Wait()
	healStart := time.Now()
	for _, n := range names {
		w.sites[n].proxy.Heal()
	}
	for _, n := range names {
		w.heal(n)
	}
	w.waitConverged(sku, 15*time.Second)
	took := time.Since(healStart)
	tot := w.view("eu", sku).Totals()
	var held, sold int64
	for id, h := range holds {
		r := w.mustDo(h.owner, escrow.Command{Kind: escrow.CmdGet, HoldID: id})
		if r.Err != nil || r.Hold.State != h.state {
			t.Fatalf("seed %d: acknowledged hold %s: want %s, got %+v %v", seed, id, h.state, r.Hold, r.Err)
		}
		for _, l := range r.Hold.Lines {
			switch h.state {
			case escrow.Held:
				held += int64(l.Qty)
			case escrow.Confirmed:
				sold += int64(l.Qty)
			}
		}
	}
	t.Logf("seed %d: %d cut rounds, %d holds granted, %d refused, max hold latency %v, converged %v after heal; totals %+v",
		seed, cuts, granted.Load(), refused.Load(), time.Duration(maxLat.Load()), took, tot)
	if tot.Minted != minted.Load() || tot.Held != held || tot.Sold != sold || tot.Available != tot.Minted-held-sold {
		t.Fatalf("seed %d: totals %+v; acknowledged: minted %d, held %d, sold %d", seed, tot, minted.Load(), held, sold)
	}
	// A hold that waited on a cut-off peer ends at the borrow deadline; the
	// slack covers fsync and a shared CI machine (a hang would be the 5 s
	// request timeout).
	if limit := escrow.DefaultBorrowTO + time.Second; time.Duration(maxLat.Load()) > limit {
		t.Errorf("seed %d: hold latency %v over the borrow deadline + slack %v", seed, time.Duration(maxLat.Load()), limit)
	}
}
