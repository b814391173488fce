package region

// Reading rows ahead of the stepper (Config.SKUPrefetch; the store's side
// and its safety rule are in store_rows_prefetch.go). With the SKU cache a
// command naming a SKU the node does not hold reads that SKU's rows from
// Pebble when it is stepped, one bounded iterator per SKU. Reading the
// SKUs of several commands in one pass, sorted, with one iterator and
// forward seeks, costs less per SKU (BenchmarkStoreSKURows, "ahead64"):
//
//   - batch: the stepper takes what waits in its queue, reads the rows of
//     those commands' SKUs in one pass, then steps them (the reads stay on
//     the stepper; a pass is as large as the queue was).
//   - stage: callers' commands pass through one goroutine that reads the
//     rows of the commands waiting for it in one pass, then queues them for
//     the stepper: the reads run beside the stepping, on the other core,
//     but a pass holds only what arrived since the last one. Its queue has
//     the stepper queue's length; a full one answers ErrOverloaded as a
//     full stepper queue does.
//
// Reads made on every caller's own goroutine were tried first and cost
// more CPU each (docs/benchmarks.md, "Reading rows ahead of the stepper").

import (
	"sync/atomic"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// readAhead is the region's side of reading rows ahead.
type readAhead struct {
	st     atomic.Pointer[Store] // the store to read from; nil: off (or no node yet)
	q      chan *request         // callers → the stage; nil without the stage
	inline bool                  // the stepper reads ahead what it drains (batch)
	buf    []*request            // the stepper's drained requests (batch)
	skus   []string              // their SKUs (batch; the stage keeps its own)
}

// Config.SKUPrefetch's settings.
const (
	SKUPrefetchBatch = "batch"
	SKUPrefetchStage = "stage"
	SKUPrefetchOff   = "off"
)

// skuPrefetch is the read-ahead mode in effect: "" (none) without the SKU
// cache or with SKUPrefetchOff, SKUPrefetchBatch by default (on a quiet
// machine it gave 19-39% more holds/s at 1 M uniform SKUs, 7% with Zipf:
// docs/benchmarks.md), else the setting.
func (c Config) skuPrefetch() string {
	switch {
	case c.SKUCache == 0 || c.SKUPrefetch == SKUPrefetchOff:
		return ""
	case c.SKUPrefetch == "":
		return SKUPrefetchBatch
	}
	return c.SKUPrefetch
}

// maxPrefetchLines bounds the SKUs one command reads ahead (a cart of
// more lines reads the rest on the stepper, as without the setting).
const maxPrefetchLines = 16

// wirePrefetch gives the node just built the store's residency hook and
// lets callers read ahead; with the setting off it leaves both unset.
func (r *Region) wirePrefetch(n *escrow.Node) {
	st, ok := r.storage.(*Store)
	if !ok || st.prefetch == nil {
		r.ahead.st.Store(nil)
		return
	}
	n.SetResidencyHook(st.ResidencyHook())
	r.ahead.st.Store(st)
}

// appendSKUs appends the SKUs cmd names whose rows the node may read.
func appendSKUs(dst []string, cmd *escrow.Command) []string {
	switch cmd.Kind {
	case escrow.CmdHold:
		for i := range min(len(cmd.Lines), maxPrefetchLines) {
			dst = append(dst, cmd.Lines[i].SKU)
		}
	case escrow.CmdRestock, escrow.CmdWriteOff, escrow.CmdStock, escrow.CmdRecount:
		dst = append(dst, cmd.SKU)
	}
	return dst
}

// PrefetchStats returns the counters of the reads ahead (zero with
// Config.SKUPrefetch off).
func (r *Region) PrefetchStats() PrefetchStats {
	if st := r.ahead.st.Load(); st != nil {
		return st.PrefetchStats()
	}
	return PrefetchStats{}
}

// intake is the queue callers' commands enter: the read-ahead stage's, or
// the stepper's.
func (r *Region) intake() chan *request {
	if r.ahead.q != nil {
		return r.ahead.q
	}
	return r.queue
}

// startPrefetch starts the read-ahead stage if the setting is on.
func (r *Region) startPrefetch() {
	switch r.cfg.skuPrefetch() {
	case SKUPrefetchBatch:
		r.ahead.inline = true
		return
	case SKUPrefetchStage:
	default:
		return
	}
	r.ahead.q = make(chan *request, cap(r.queue))
	go r.prefetchLoop()
}

// maxPrefetchBatch bounds the commands the stage reads ahead for at once.
const maxPrefetchBatch = 256

// prefetchLoop is the read-ahead stage: it takes the commands waiting (at
// most maxPrefetchBatch), reads ahead the rows of their SKUs in one pass,
// then queues them for the stepper. It stops with the stepper; callers
// whose commands it still holds then see the loop done (ErrClosed).
func (r *Region) prefetchLoop() {
	var reqs []*request
	var skus []string
	for {
		select {
		case req := <-r.ahead.q:
			reqs = append(reqs, req)
		case <-r.loopDone:
			return
		}
	drain:
		for len(reqs) < maxPrefetchBatch {
			select {
			case req := <-r.ahead.q:
				reqs = append(reqs, req)
			default:
				break drain
			}
		}
		if st := r.ahead.st.Load(); st != nil {
			skus = skus[:0]
			for _, req := range reqs {
				skus = appendSKUs(skus, &req.cmd)
			}
			st.PrefetchRows(skus...)
			clear(skus)
		}
		for i, req := range reqs {
			select {
			case r.queue <- req:
			case <-r.loopDone:
				return
			}
			reqs[i] = nil
		}
		reqs = reqs[:0]
	}
}

// stepQueuedAhead drains the stepper's queue (first, then what waits, up
// to MaxBatch inputs since the cut), reads ahead the rows of their SKUs in
// one pass, then steps them; it returns the new stepped count.
func (r *Region) stepQueuedAhead(first *request, now time.Time, stepped int) int {
	reqs := r.drainQueue(r.ahead.buf, first, stepped)
	if st := r.ahead.st.Load(); st != nil && len(reqs) > 1 {
		skus := r.ahead.skus[:0]
		for _, req := range reqs {
			skus = appendSKUs(skus, &req.cmd)
		}
		st.PrefetchRows(skus...)
		clear(skus)
		r.ahead.skus = skus[:0]
	}
	for i, req := range reqs {
		r.stepRequest(req, now)
		reqs[i] = nil
		stepped++
	}
	r.ahead.buf = reqs[:0]
	return stepped
}
