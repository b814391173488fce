package region

// The store as the node's row source (escrow.RowSource), for the bounded
// SKU cache (Config.SKUCache, escrow/skucache.go): with StoreOptions.LazyRows
// Load leaves the rows in Pebble and the node reads a SKU's rows on its
// first touch. The checks Load made of every row at start (the key matches
// the value, the row decodes) are made here, at read time; the node checks
// an own row's sequence against its own.

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

// maxPartialOwnSeq bounds ownSeq while it caches only the own rows written
// since a lazy Load (validate reads the others from Pebble).
const maxPartialOwnSeq = 1 << 16

// lazyRowsCacheBytes is pebble's block cache with LazyRows when
// StoreOptions.CacheBytes is 0 (64 MiB otherwise).
var lazyRowsCacheBytes int64 = 256 << 20

var _ escrow.RowSource = (*Store)(nil)

// SKURows implements escrow.RowSource: the rows of sku, read ahead by a
// caller (store_rows_prefetch.go) or read with an iterator bounded to the
// SKU's key prefix (one seek; the rows of a SKU are adjacent, one per
// region that wrote it).
func (s *Store) SKURows(sku string, dst []escrow.Row) ([]escrow.Row, error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return dst, ErrStoreClosed
	}
	if err := s.failed(); err != nil {
		return dst, err
	}
	if s.prefetch != nil {
		if rows, ok := s.prefetch.take(sku, s.gen.Load(), dst); ok {
			return rows, nil
		}
	}
	return s.readSKURows(sku, dst)
}

// readSKURows reads the rows of sku from Pebble. Callers hold dbMu (read)
// and checked that the DB is open.
func (s *Store) readSKURows(sku string, dst []escrow.Row) ([]escrow.Row, error) {
	lo := appendRowKey(make([]byte, 0, len(pfxRow)+len(sku)+2), sku, "")
	hi := append(lo[:len(lo)-1:len(lo)-1], 1)
	it, err := s.newRowIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi}, []string{sku})
	if err != nil {
		return dst, fmt.Errorf("region store: read rows of %q: %w", sku, err)
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return dst, fmt.Errorf("region store: read %s: %w", fmtKey(it.Key()), err)
		}
		r, err := s.decodeRowKV(it.Key(), v)
		if err != nil {
			it.Close()
			return dst, err
		}
		dst = append(dst, r)
	}
	if err := it.Close(); err != nil {
		return dst, fmt.Errorf("region store: read rows of %q: %w", sku, err)
	}
	return dst, nil
}

// ScanRows implements escrow.RowSource: every row, in key (SKU) order.
func (s *Store) ScanRows(f func(r *escrow.Row) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return ErrStoreClosed
	}
	return s.scan(pfxRow, func(k, v []byte) error {
		r, err := s.decodeRowKV(k, v)
		if err != nil {
			return err
		}
		return f(&r)
	})
}

// ScanRowsFrom implements escrow.RowSource: the rows of the SKUs after
// `after`, in key (SKU) order, from one iterator positioned with a seek
// (the lower bound), so a snapshot chunk reads its range only.
func (s *Store) ScanRowsFrom(after string, f func(r *escrow.Row) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return ErrStoreClosed
	}
	if err := s.failed(); err != nil {
		return err
	}
	lo := []byte(pfxRow)
	if after != "" {
		// Past every key of after (after + 0 + region): after + 1 sorts
		// before any longer SKU that starts with after (a stock key has
		// no byte below 1).
		lo = append(appendRowKey(nil, after, "")[:len(pfxRow)+len(after)], 1)
	}
	it, err := s.newRowIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(pfxRow)}, nil)
	if err != nil {
		return fmt.Errorf("region store: scan rows after %q: %w", after, err)
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("region store: read %s: %w", fmtKey(it.Key()), err)
		}
		r, err := s.decodeRowKV(it.Key(), v)
		if err != nil {
			it.Close()
			return err
		}
		if err := f(&r); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("region store: scan rows after %q: %w", after, err)
	}
	return nil
}

// decodeRowKV decodes a row and checks it against its key, as Load does.
func (s *Store) decodeRowKV(k, v []byte) (escrow.Row, error) {
	sku, region, ok := splitRowKey(k)
	if !ok {
		return escrow.Row{}, corrupt(k, "row key without region separator")
	}
	r, err := escrow.DecodeRowValue(v, sku, region)
	if err != nil {
		return escrow.Row{}, corrupt(k, "undecodable row: %v", err)
	}
	return r, nil
}

// storedOwnSeqLocked is the sequence of the stored own row of sku, for
// validate when ownSeq is partial (after a lazy Load). Callers hold applyMu.
func (s *Store) storedOwnSeqLocked(sku string) (uint64, bool, error) {
	k := appendRowKey(s.kbuf[:0], sku, s.region)
	s.kbuf = k
	if s.ov != nil {
		// The overlay first (store_rowlog.go).
		if v, ok := s.ov.get(sku, s.region); ok {
			r, err := s.decodeRowKV(k, v)
			if err != nil {
				return 0, false, err
			}
			return r.Seq, true, nil
		}
	}
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("region store: read %s: %w", fmtKey(k), err)
	}
	defer closer.Close()
	r, err := s.decodeRowKV(k, v)
	if err != nil {
		return 0, false, err
	}
	return r.Seq, true, nil
}
