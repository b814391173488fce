package region

// Reads that run beside the committer: the change feed for peers, the
// expiry index scan, and the point and prefix reads used at open.

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

// ExpiringHold is one entry of the expiry index.
type ExpiringHold struct {
	HoldID  string
	Expires time.Time
}

// get returns a copy of the value of k.
func (s *Store) get(k []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("region store: read %s: %w", fmtKey(k), err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

// Hold reads hold id from the store: any state, including holds the node
// has retired from memory (until the pruner deletes them).
func (s *Store) Hold(id string) (escrow.Hold, bool, error) {
	v, ok, err := s.get(appendHoldKey(nil, id))
	if err != nil || !ok {
		return escrow.Hold{}, false, err
	}
	h, err := escrow.DecodeHold(v)
	if err != nil {
		return escrow.Hold{}, false, corrupt(appendHoldKey(nil, id), "hold: %v", err)
	}
	return h, true, nil
}

// scan calls f for every key with prefix p (f must copy what it keeps).
func (s *Store) scan(p string, f func(k, v []byte) error) error {
	skus := []string{} // no overlay rows (newRowIter)
	if p == pfxRow {
		skus = nil // every overlay row (store_rowlog.go)
	}
	it, err := s.newRowIter(&pebble.IterOptions{LowerBound: []byte(p), UpperBound: prefixEnd(p)}, skus)
	if err != nil {
		return fmt.Errorf("region store: scan %s: %w", p, err)
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("region store: read %s: %w", fmtKey(it.Key()), err)
		}
		if err := f(it.Key(), v); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("region store: scan %s: %w", p, err)
	}
	return nil
}

// OwnRowsSince returns up to limit own rows whose last change is after seq,
// in sequence order, from durable commits only (pebble makes a batch
// visible before its fsync ends; rows of a commit in flight are left out,
// and so is a row whose last change is in flight: it comes with its new
// sequence once that is durable). limit <= 0 or above escrow.MaxWireRows
// means escrow.MaxWireRows. The first call builds the in-memory sequence
// index (store_seq.go), which Apply keeps from then on.
func (s *Store) OwnRowsSince(seq uint64, limit int) ([]escrow.Row, error) {
	if limit <= 0 || limit > escrow.MaxWireRows {
		limit = escrow.MaxWireRows
	}
	s.applyMu.Lock()
	err := s.usableLocked()
	if err == nil {
		err = s.ensureBySeqLocked()
	}
	if err != nil {
		s.applyMu.Unlock()
		return nil, err
	}
	// dbMu before applyMu is released: a Reopen (which takes applyMu, then
	// dbMu) cannot drop bySeq before the read below.
	s.dbMu.RLock()
	s.applyMu.Unlock()
	defer s.dbMu.RUnlock()
	durable := s.durable.Load()
	if seq >= durable {
		return nil, nil
	}
	if s.ov != nil {
		return s.ownRowsOverlay(seq, durable, limit)
	}
	// The snapshot before bySeq: Apply moves a row in bySeq before its
	// batch is visible, so a row bySeq still has at a durable sequence is
	// in the snapshot at that sequence.
	snap := s.db.NewSnapshot()
	defer snap.Close()
	changes, ok := s.ownSeqsBetween(seq, durable, limit)
	if !ok {
		return nil, fmt.Errorf("%w: sequence index dropped during the read", ErrStoreClosed)
	}
	rows := make([]escrow.Row, 0, len(changes))
	var k []byte
	for _, c := range changes {
		k = appendRowKey(k[:0], c.sku, s.region)
		v, closer, err := snap.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, corrupt(k, "own row at seq %d (in memory) is missing", c.seq)
		}
		if err != nil {
			return nil, fmt.Errorf("region store: read %s: %w", fmtKey(k), err)
		}
		r, err := escrow.DecodeRowValue(v, c.sku, s.region)
		closer.Close()
		if err != nil {
			return nil, corrupt(k, "%v", err)
		}
		if r.Seq != c.seq {
			return nil, corrupt(k, "row has seq %d but was at %d when read", r.Seq, c.seq)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// ExpiringHolds returns up to limit HELD holds whose deadline is at or
// before until, in deadline order (a range scan of the expiry index).
// It may include a hold of a commit still in flight.
func (s *Store) ExpiringHolds(until time.Time, limit int) ([]ExpiringHold, error) {
	if limit <= 0 {
		return nil, nil
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return nil, ErrStoreClosed
	}
	if err := s.failed(); err != nil {
		return nil, err
	}
	upper := prefixEnd(pfxExpiry)
	if ord := timeOrd(until); ord != ^uint64(0) {
		upper = appendU64([]byte(pfxExpiry), ord+1)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(pfxExpiry), UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("region store: scan expiry index: %w", err)
	}
	var out []ExpiringHold
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		ord, id, ok := splitOrdKey(it.Key())
		if !ok {
			k := append([]byte(nil), it.Key()...)
			it.Close()
			return nil, corrupt(k, "expiry index key too short")
		}
		out = append(out, ExpiringHold{HoldID: id, Expires: ordTime(ord)})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("region store: scan expiry index: %w", err)
	}
	return out, nil
}

// Check verifies the whole store as Load does, without keeping the state.
func (s *Store) Check() error {
	_, err := s.Load()
	return err
}
