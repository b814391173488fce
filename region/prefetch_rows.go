package region

// The read-ahead stage (Config.SKUPrefetch): callers' commands pass through
// one goroutine that reads the rows of the SKUs they name that the node
// does not hold, then hands them to the stepper's queue, so that the
// stepper finds those rows read (the store's side and its safety rule are
// in store_rows_prefetch.go). The reads run beside the stepping, on the
// second core, one at a time (concurrent reads from every caller cost
// more CPU each: docs/benchmarks.md, "Reading rows ahead of the stepper").
// The stage's queue has the stepper queue's length; a full one answers
// ErrOverloaded as a full stepper queue does.

import "github.com/holdfast-io/holdfast/escrow"

// maxPrefetchLines bounds the SKUs one command reads ahead (a cart of
// more lines reads the rest on the stepper, as without the setting).
const maxPrefetchLines = 16

// wirePrefetch gives the node just built the store's residency hook and
// lets callers read ahead; with the setting off it leaves both unset.
func (r *Region) wirePrefetch(n *escrow.Node) {
	st, ok := r.storage.(*Store)
	if !ok || st.prefetch == nil {
		r.rowsAhead.Store(nil)
		return
	}
	n.SetResidencyHook(st.ResidencyHook())
	r.rowsAhead.Store(st)
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
	if st := r.rowsAhead.Load(); st != nil {
		return st.PrefetchStats()
	}
	return PrefetchStats{}
}

// intake is the queue callers' commands enter: the read-ahead stage's, or
// the stepper's.
func (r *Region) intake() chan *request {
	if r.aheadQ != nil {
		return r.aheadQ
	}
	return r.queue
}

// startPrefetch starts the read-ahead stage if the setting is on.
func (r *Region) startPrefetch() {
	if !r.cfg.SKUPrefetch || r.cfg.SKUCache == 0 {
		return
	}
	r.aheadQ = make(chan *request, cap(r.queue))
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
		case req := <-r.aheadQ:
			reqs = append(reqs, req)
		case <-r.loopDone:
			return
		}
	drain:
		for len(reqs) < maxPrefetchBatch {
			select {
			case req := <-r.aheadQ:
				reqs = append(reqs, req)
			default:
				break drain
			}
		}
		if st := r.rowsAhead.Load(); st != nil {
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
