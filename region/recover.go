package region

// Recovery after a failed storage write: the node is discarded and rebuilt
// from what is durable, exactly as after a crash restart.

import (
	"errors"
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

func (r *Region) loadNode() (*escrow.Node, error) {
	st, err := r.storage.Load()
	if err != nil {
		return nil, fmt.Errorf("load stored state: %w", err)
	}
	ecfg := r.cfg.Escrow
	if r.cfg.SKUCache > 0 {
		src, ok := r.storage.(escrow.RowSource)
		if !ok {
			return nil, fmt.Errorf("sku_cache %d needs a storage that reads rows on demand (the Pebble store)", r.cfg.SKUCache)
		}
		ecfg.Rows, ecfg.MaxResidentSKUs = src, r.cfg.SKUCache
		st.Rows = nil // a storage that loaded them anyway: the node reads them from src
	}
	if r.cfg.HoldCache > 0 {
		src, ok := r.storage.(escrow.HoldSource)
		if !ok {
			return nil, fmt.Errorf("hold_cache %d needs a storage that reads holds on demand (the Pebble store)", r.cfg.HoldCache)
		}
		ecfg.Holds, ecfg.MaxResidentHolds = src, r.cfg.HoldCache
		if len(st.Holds) > 0 || len(st.Idem) > 0 {
			return nil, fmt.Errorf("hold_cache %d: the storage loaded holds (it must be opened with LazyHolds)", r.cfg.HoldCache)
		}
	}
	n, err := escrow.NewNode(ecfg, st)
	if err != nil {
		return nil, fmt.Errorf("restore node from stored state: %w", err)
	}
	r.fenceNode(n)
	r.wirePrefetch(n)
	return n, nil
}

// failNode discards the node after a failed write: it has changes that were
// never persisted, so rebuilding it from storage is exactly a crash restart.
// Every request still waiting on it fails with err.
func (r *Region) failNode(err error) {
	r.ready.Store(false)
	r.batchErr.Store(nil) // no batch is in flight: the next ones are the rebuilt node's
	for id, req := range r.pending {
		req.err = err
		req.done <- struct{}{}
		delete(r.pending, id)
	}
	r.node = nil
}

// recover reopens the storage and rebuilds the node, with backoff, while
// failing new requests fast. It returns false when the region is closing.
func (r *Region) recover(ticker *time.Ticker) bool {
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := r.reload()
		if err == nil {
			r.log.Warn("recovered from storage failure", "attempt", attempt, "seq", r.node.Seq())
			r.ready.Store(true)
			return true
		}
		r.log.Error("rebuilding state from storage failed", "attempt", attempt, "err", err, "retry_in", backoff)
		timer := time.NewTimer(backoff)
	wait:
		for {
			select {
			case req := <-r.queue:
				req.err = fmt.Errorf("%w: rebuilding state from storage", ErrStorage)
				req.done <- struct{}{}
			case <-r.msgs: // dropped: anti-entropy repairs after recovery
				r.metrics.msgsDropped.Inc()
			case q := <-r.inspect:
				q.err = fmt.Errorf("%w: rebuilding state from storage", ErrStorage)
				close(q.done)
			case <-ticker.C:
			case <-timer.C:
				break wait
			case <-r.stop:
				timer.Stop()
				return false
			}
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (r *Region) reload() error {
	if ro, ok := r.storage.(reopener); ok {
		if err := ro.Reopen(); err != nil {
			if errors.Is(err, ErrStoreWedged) {
				r.setFatal(err)
			}
			return fmt.Errorf("reopen store: %w", err)
		}
	} else if r.ownStore {
		r.storeView.Store(nil)
		if r.storage != nil {
			if err := r.storage.Close(); err != nil {
				r.log.Warn("closing failed store", "err", err)
			}
			r.storage = nil
		}
		st, err := openStore(r.cfg)
		if err != nil {
			return fmt.Errorf("reopen store: %w", err)
		}
		r.storage = st
		r.storeView.Store(&storageBox{s: st})
	}
	n, err := r.loadNode()
	if err != nil {
		return err
	}
	r.node = n
	return nil
}
