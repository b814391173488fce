package region

// The store as the node's hold source (escrow.HoldSource), for the bounded
// hold cache (Config.HoldCache, escrow/holdcache.go): with
// StoreOptions.LazyHolds Load leaves holds and idempotency keys in Pebble
// (it counts the x/ index for State.HeldHolds and reads nothing else of
// them), and the node reads a hold or key by a point Get when a command
// names it, and finds expired ones by scanning the front of the x/ and j/
// indexes. The checks Load made of each hold and key at start (the key
// matches the value, it decodes, it is this region's, a HELD hold has its
// index entry at its deadline) are made here or by the node, at read time:
// an x/ entry whose hold is missing, or is stored at another deadline, stops
// the node (escrow.ErrRowSource) when the sweeper reaches it. What start-up
// no longer checks with LazyHolds: index entries against the whole set of
// holds and keys (an orphaned entry past the front of the index is found
// only when its deadline comes), and the listing indexes (k/, t/, u/)
// against the holds.
//
// Reads may see a batch that is committed but not yet synced (pebble makes
// it visible first). That is harmless here: the node reads only holds and
// keys that are not resident, which no batch in flight changes (a changed
// hold stays resident until its batch is durable), and an index entry a
// batch in flight adds or ends belongs to a resident hold or key.

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

var _ escrow.HoldSource = (*Store)(nil)

// StoredHold implements escrow.HoldSource: hold id, checked as Load checks it.
func (s *Store) StoredHold(id string) (escrow.Hold, bool, error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return escrow.Hold{}, false, ErrStoreClosed
	}
	if err := s.failed(); err != nil {
		return escrow.Hold{}, false, err
	}
	k := appendHoldKey(make([]byte, 0, len(pfxHold)+len(id)), id)
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return escrow.Hold{}, false, nil
	}
	if err != nil {
		return escrow.Hold{}, false, fmt.Errorf("region store: read %s: %w", fmtKey(k), err)
	}
	defer closer.Close()
	h, err := escrow.DecodeHold(v)
	if err != nil {
		return escrow.Hold{}, false, corrupt(k, "undecodable hold: %v", err)
	}
	if h.ID != id {
		return escrow.Hold{}, false, corrupt(k, "holds hold %s", h.ID)
	}
	if owner, _ := escrow.OwnerOf(id); owner != s.region {
		return escrow.Hold{}, false, corrupt(k, "hold of region %q in the store of %q", owner, s.region)
	}
	return h, true, nil
}

// StoredIdem implements escrow.HoldSource: the entry of an idempotency
// key, checked as Load checks it.
func (s *Store) StoredIdem(key string) (escrow.IdemEntry, bool, error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return escrow.IdemEntry{}, false, ErrStoreClosed
	}
	if err := s.failed(); err != nil {
		return escrow.IdemEntry{}, false, err
	}
	k := appendIdemKey(make([]byte, 0, len(pfxIdem)+len(key)), key)
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return escrow.IdemEntry{}, false, nil
	}
	if err != nil {
		return escrow.IdemEntry{}, false, fmt.Errorf("region store: read %s: %w", fmtKey(k), err)
	}
	defer closer.Close()
	e, err := decodeIdemValue(key, v)
	if err != nil {
		return escrow.IdemEntry{}, false, corrupt(k, "%v", err)
	}
	if e.RoutedTo != "" {
		if escrow.ValidRegion(e.RoutedTo) != nil || e.RoutedTo == s.region {
			return escrow.IdemEntry{}, false, corrupt(k, "idempotency key of a hold routed to invalid region %q", e.RoutedTo)
		}
	} else if owner, oerr := escrow.OwnerOf(e.HoldID); oerr != nil || owner != s.region {
		return escrow.IdemEntry{}, false, corrupt(k, "idempotency key points to hold %q of another region", e.HoldID)
	}
	return e, true, nil
}

// DueHolds implements escrow.HoldSource: the front of the x/ index.
func (s *Store) DueHolds(t time.Time, max int, dst []escrow.Deadline) ([]escrow.Deadline, time.Time, error) {
	return s.due(pfxExpiry, t, max, dst)
}

// DueIdem implements escrow.HoldSource: the front of the j/ index.
func (s *Store) DueIdem(t time.Time, max int, dst []escrow.Deadline) ([]escrow.Deadline, time.Time, error) {
	return s.due(pfxIdemX, t, max, dst)
}

// due reads the entries of the index at prefix p up to t (at most max)
// with one bounded iterator, and the deadline of the entry after them.
func (s *Store) due(p string, t time.Time, max int, dst []escrow.Deadline) ([]escrow.Deadline, time.Time, error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return dst, time.Time{}, ErrStoreClosed
	}
	if err := s.failed(); err != nil {
		return dst, time.Time{}, err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(p), UpperBound: prefixEnd(p)})
	if err != nil {
		return dst, time.Time{}, fmt.Errorf("region store: scan %s: %w", p, err)
	}
	limit := timeOrd(t)
	var next time.Time
	for it.First(); it.Valid(); it.Next() {
		ord, name, ok := splitOrdKey(it.Key())
		if !ok || len(it.Value()) != 0 {
			it.Close()
			return dst, time.Time{}, corrupt(it.Key(), "malformed expiry index entry")
		}
		if ord > limit || max <= 0 {
			next = ordTime(ord)
			break
		}
		dst = append(dst, escrow.Deadline{Name: name, At: ordTime(ord)})
		max--
	}
	if err := it.Close(); err != nil {
		return dst, time.Time{}, fmt.Errorf("region store: scan %s: %w", p, err)
	}
	return dst, next, nil
}

// countHeld counts the x/ entries (State.HeldHolds with LazyHolds),
// checking that each is well formed: the part of Load's cross-check of
// the index that costs no map.
func (s *Store) countHeld() (uint64, error) {
	var k uint64
	err := s.scan(pfxExpiry, func(key, v []byte) error {
		if _, _, ok := splitOrdKey(key); !ok || len(v) != 0 {
			return corrupt(key, "malformed expiry index entry")
		}
		k++
		return nil
	})
	return k, err
}

// newestHold is the greatest hold id stored (State.NewestHold): the last
// h/ key, one seek.
func (s *Store) newestHold() (string, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(pfxHold), UpperBound: prefixEnd(pfxHold)})
	if err != nil {
		return "", fmt.Errorf("region store: scan %s: %w", pfxHold, err)
	}
	id := ""
	if it.Last() {
		id = string(it.Key()[len(pfxHold):])
	}
	if err := it.Close(); err != nil {
		return "", fmt.Errorf("region store: scan %s: %w", pfxHold, err)
	}
	return id, nil
}

// lazyHoldPrefix reports whether Load skips keys of prefix p (LazyHolds).
func lazyHoldPrefix(p string) bool {
	switch p {
	case pfxHold, pfxIdem, pfxIdemX, pfxExpiry, pfxCart, pfxEnded, pfxUpdated:
		return true
	}
	return false
}
