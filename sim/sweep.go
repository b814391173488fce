package sim

import (
	"fmt"
	"runtime"
	"sync"
)

// Sweep runs seeds from..to (inclusive) on up to workers goroutines, each
// run single-threaded, and returns the results in seed order: the output
// does not depend on workers or on scheduling.
func Sweep(o Options, from, to uint64, workers int) ([]*Result, error) {
	if to < from || to-from >= MaxSeeds {
		return nil, fmt.Errorf("sim: seeds %d-%d: want from <= to and at most %d seeds", from, to, MaxSeeds)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	n := int(to - from + 1)
	workers = min(workers, n)
	out := make([]*Result, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				oo := o
				oo.Seed = from + uint64(i)
				out[i], errs[i] = Run(oo)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("sim: seed %d: %w", from+uint64(i), err)
		}
	}
	return out, nil
}
