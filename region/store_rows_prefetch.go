package region

// Reading SKUs' rows ahead of the node (issue 23, StoreOptions.
// PrefetchRows, region Config.SKUPrefetch). With the bounded SKU cache a
// hold on a SKU that is not resident reads the SKU's rows from Pebble
// (SKURows), one iterator per SKU. PrefetchRows reads the rows of many
// SKUs in one pass (sorted, one iterator, forward seeks) into a small
// bounded table, from any goroutine (region/prefetch_rows.go calls it on
// the stepper or on a stage before it), and SKURows takes them from there
// instead of seeking Pebble.
//
// The safety rule: a prefetched row set is served only if no batch wrote
// a row of its SKU since before the read began (SKURows must return rows
// as of the last Persist applied; the node reads a SKU only when it does
// not hold it, and then trusts what it reads). Every applied batch bumps
// an epoch per SKU (hashed into epochSlots slots, so a collision only
// throws a read away) once its rows are visible to readers; a read
// records its SKU's epoch before it starts, and SKURows serves it only
// while the epoch is unchanged (a pass records the epochs of its SKUs
// before making its iterator, which reads the DB as of its creation).
// A bump after the write is visible is what
// makes this exact: a read that started before the write either saw it
// or recorded an epoch the write moved on; a read that recorded the epoch
// after the bump started after the write was visible. A reopen (a new
// open generation) invalidates every read made before it.
//
// Which SKUs to read ahead: those the node does not hold (the node tells
// the store through escrow.Node.SetResidencyHook, counted per hash slot,
// so a collision only skips a read), and not already read ahead.

import (
	"bytes"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

const (
	// epochSlots: hashed per-SKU write epochs (512 KiB).
	epochSlots = 1 << 16
	// residentSlots: hashed counts of resident SKUs (4 MiB); at the
	// default sku_cache of 100,000 about one SKU in ten that is not
	// resident shares a slot with one that is (its read is skipped).
	residentSlots = 1 << 20
	// maxPrefetched bounds the rows read ahead and not yet taken: about
	// the commands in flight (the queue and a batch or two).
	maxPrefetched = 8192
)

// PrefetchStats counts the reads ahead (Store.PrefetchStats).
type PrefetchStats struct {
	Reads   uint64 // rows read ahead (PrefetchRows that read Pebble)
	Served  uint64 // SKURows answered from a read ahead
	Stale   uint64 // reads ahead thrown away: a batch wrote the SKU since
	Dropped uint64 // reads ahead never taken, pushed out by newer ones
	Skipped uint64 // SKUs not read ahead: resident, or read ahead already
	Passes  uint64 // PrefetchRows calls that read Pebble (one iterator each)
}

type prefetched struct {
	rows  []escrow.Row
	epoch uint64
	gen   uint64
}

// rowPrefetch is the store's table of rows read ahead.
type rowPrefetch struct {
	seed     maphash.Seed
	epochs   []atomic.Uint64 // per hashed SKU: batches that wrote its rows
	resident []atomic.Int32  // per hashed SKU: resident SKUs (the node's hook)

	mu   sync.Mutex
	m    map[string]prefetched
	ring []string // insertion order, for the bound
	next int

	reads, served, stale, dropped, skipped, passes atomic.Uint64
}

func newRowPrefetch() *rowPrefetch {
	return &rowPrefetch{
		seed:     maphash.MakeSeed(),
		epochs:   make([]atomic.Uint64, epochSlots),
		resident: make([]atomic.Int32, residentSlots),
		m:        make(map[string]prefetched),
		ring:     make([]string, maxPrefetched),
	}
}

func (p *rowPrefetch) hash(sku string) uint64 { return maphash.String(p.seed, sku) }

func (p *rowPrefetch) epoch(h uint64) *atomic.Uint64 { return &p.epochs[h%epochSlots] }

// written bumps the epochs of the SKUs whose rows a batch wrote. Called
// once the batch is visible to readers (see the file comment).
func (p *rowPrefetch) written(rows []escrow.Row, bugs storeBugs) {
	if bugs.prefetchNoEpoch {
		return
	}
	for i := range rows {
		p.epoch(p.hash(rows[i].SKU)).Add(1)
	}
}

// residency is the node's residency hook (escrow.Node.SetResidencyHook).
func (p *rowPrefetch) residency(sku string, resident bool) {
	c := &p.resident[p.hash(sku)%residentSlots]
	if resident {
		c.Add(1)
	} else if c.Add(-1) < 0 {
		c.Store(0) // a SKU made resident before the hook was set
	}
}

// reset forgets residency (a new node starts with none resident) and every
// read ahead. Callers own the store's Load.
func (p *rowPrefetch) reset() {
	for i := range p.resident {
		p.resident[i].Store(0)
	}
	p.mu.Lock()
	clear(p.m)
	clear(p.ring)
	p.mu.Unlock()
}

// take removes the read ahead of sku and appends its rows to dst if it is
// still current (ok); otherwise dst is returned unchanged.
func (p *rowPrefetch) take(sku string, gen uint64, dst []escrow.Row) ([]escrow.Row, bool) {
	p.mu.Lock()
	e, ok := p.m[sku]
	if ok {
		delete(p.m, sku)
	}
	p.mu.Unlock()
	if !ok {
		return dst, false
	}
	if e.gen != gen || p.epoch(p.hash(sku)).Load() != e.epoch {
		p.stale.Add(1)
		return dst, false
	}
	p.served.Add(1)
	return append(dst, e.rows...), true
}

// want reports whether sku is worth reading ahead: not resident, not read
// ahead already.
func (p *rowPrefetch) want(sku string, h uint64) bool {
	if p.resident[h%residentSlots].Load() > 0 {
		return false
	}
	p.mu.Lock()
	_, have := p.m[sku]
	p.mu.Unlock()
	return !have
}

// put keeps a read ahead, pushing out the oldest one past the bound.
func (p *rowPrefetch) put(sku string, e prefetched) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, have := p.m[sku]; have {
		// Another caller read it at the same time: keep the earlier
		// one (either is checked against the epoch when taken).
		return
	}
	if old := p.ring[p.next]; old != "" {
		if _, live := p.m[old]; live {
			delete(p.m, old)
			p.dropped.Add(1)
		}
	}
	p.ring[p.next] = sku
	p.next = (p.next + 1) % len(p.ring)
	p.m[sku] = e
}

func (p *rowPrefetch) stats() PrefetchStats {
	return PrefetchStats{Reads: p.reads.Load(), Served: p.served.Load(), Stale: p.stale.Load(),
		Dropped: p.dropped.Load(), Skipped: p.skipped.Load(), Passes: p.passes.Load()}
}

// PrefetchRows reads ahead the stored rows of the SKUs named, except
// those the node holds and those read ahead already: in SKU order, with
// one iterator (a forward seek per SKU, which reuses the blocks and the
// table positions of the one before). Safe to call from any goroutine; a
// failed read is forgotten (the stepper's own read reports it). A no-op
// without StoreOptions.PrefetchRows. skus is reordered.
func (s *Store) PrefetchRows(skus ...string) {
	p := s.prefetch
	if p == nil {
		return
	}
	want := skus[:0]
	for _, sku := range skus {
		if len(sku) == 0 || len(sku) > escrow.MaxStockKeyLen || !p.want(sku, p.hash(sku)) {
			p.skipped.Add(1)
			continue
		}
		want = append(want, sku)
	}
	if len(want) == 0 {
		return
	}
	slices.Sort(want)
	want = slices.Compact(want)
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil || s.failed() != nil {
		return
	}
	// The epochs and generation before the iterator is made: it reads the
	// DB as of its creation (see the file comment).
	gen := s.gen.Load()
	epochs := make([]uint64, len(want))
	for i, sku := range want {
		epochs[i] = p.epoch(p.hash(sku)).Load()
	}
	it, err := s.newRowIter(&pebble.IterOptions{LowerBound: []byte(pfxRow), UpperBound: prefixEnd(pfxRow)}, want)
	if err != nil {
		return
	}
	defer it.Close()
	p.passes.Add(1)
	var key []byte
	for i, sku := range want {
		key = appendRowKey(key[:0], sku, "")
		var rows []escrow.Row
		for ok := it.SeekGE(key); ok && bytes.HasPrefix(it.Key(), key); ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return
			}
			r, err := s.decodeRowKV(it.Key(), v)
			if err != nil {
				return
			}
			rows = append(rows, r)
		}
		if it.Error() != nil {
			return
		}
		if s.testAfterPrefetchRead != nil {
			s.testAfterPrefetchRead(sku)
		}
		p.reads.Add(1)
		p.put(sku, prefetched{rows: rows, epoch: epochs[i], gen: gen})
	}
}

// ResidencyHook returns the hook to give a node just built from this
// store's Load (escrow.Node.SetResidencyHook), after forgetting what the
// previous node held and every read ahead; nil without PrefetchRows.
// Call it on the goroutine that steps the node, before its first step.
func (s *Store) ResidencyHook() func(sku string, resident bool) {
	if s.prefetch == nil {
		return nil
	}
	s.prefetch.reset()
	return s.prefetch.residency
}

// PrefetchStats returns the counters of the reads ahead (zero without
// PrefetchRows).
func (s *Store) PrefetchStats() PrefetchStats {
	if s.prefetch == nil {
		return PrefetchStats{}
	}
	return s.prefetch.stats()
}
