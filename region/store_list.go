package region

// Listing holds from a Pebble snapshot (never through the apply loop), and
// pruning terminal holds past the retention window. Key layout: keys_list.go.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

// Listing bounds.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
	// listScanFactor bounds the index entries one page may examine:
	// listScanFactor × limit + listScanSlack. A page that runs out of
	// budget ends early with a cursor (possibly with no holds at all).
	listScanFactor = 10
	listScanSlack  = 1000
)

// HoldQuery selects holds of this region. Zero fields do not filter.
type HoldQuery struct {
	Cart          string
	State         escrow.HoldState // 0: any state
	SKU           string
	ExpiresBefore time.Time // holds whose deadline is before it
	Limit         int       // 1..MaxListLimit; 0: DefaultListLimit
	// After is the key a previous page ended at (from its cursor); the
	// page starts after it.
	After []byte
}

// HoldPage is one page of a listing. Next is nil at the end.
type HoldPage struct {
	Holds    []escrow.Hold
	Next     []byte
	Examined int // index entries examined (for metrics)
	last     []byte
}

// ErrBadCursor is a cursor whose key does not belong to the query's range.
var ErrBadCursor = errors.New("cursor does not belong to this query (filters changed?)")

// listRange returns the index range a query scans and whether each entry
// must be resolved through h/ (index entries) or is the hold itself.
func (q *HoldQuery) listRange(now time.Time) (lower, upper []byte) {
	switch {
	case q.Cart != "":
		lower = appendCartPrefix(nil, q.Cart)
		upper = prefixEnd(string(lower))
	case q.State == escrow.Held:
		// Held holds by deadline: those past it are expired already
		// (escrow.Hold.StateAt), so the scan starts at now.
		lower = appendU64([]byte(pfxExpiry), timeOrd(now)+1)
		upper = prefixEnd(pfxExpiry)
		if !q.ExpiresBefore.IsZero() {
			upper = appendU64([]byte(pfxExpiry), timeOrd(q.ExpiresBefore))
		}
	case q.State != 0:
		lower = append([]byte(pfxEnded), byte(q.State))
		upper = append([]byte(pfxEnded), byte(q.State)+1)
		if !q.ExpiresBefore.IsZero() {
			upper = appendU64(append([]byte(pfxEnded), byte(q.State)), timeOrd(q.ExpiresBefore))
		}
	default:
		lower, upper = []byte(pfxHold), prefixEnd(pfxHold)
	}
	return lower, upper
}

// matches applies the filters the index did not.
func (q *HoldQuery) matches(h *escrow.Hold, now time.Time) bool {
	if q.State != 0 && h.StateAt(now) != q.State {
		return false
	}
	if !q.ExpiresBefore.IsZero() && !h.Expires.Before(q.ExpiresBefore) {
		return false
	}
	if q.SKU != "" {
		// A line of a location counts for its SKU (its stock key is
		// the SKU and the location).
		found := false
		for _, l := range h.Lines {
			sku, _ := escrow.SplitStockKey(l.SKU)
			found = found || sku == q.SKU
		}
		for _, l := range h.Asked {
			sku, _ := escrow.SplitStockKey(l.SKU)
			found = found || sku == q.SKU
		}
		if !found {
			return false
		}
	}
	return true
}

// ListHolds returns one page of the holds of this region matching q, read
// from a snapshot: it never blocks the apply loop (pebble readers do not
// lock writers). Every hold that exists, unchanged in the fields the scan
// is ordered by, for the whole of a paginated scan is returned exactly
// once: pages follow the index order and each starts after the key the
// previous one ended at. The page holds only durable holds: it waits,
// up to ctx, for the fsync of any commit the snapshot saw in flight.
func (s *Store) ListHolds(ctx context.Context, q HoldQuery) (HoldPage, error) {
	now := time.Now()
	if q.Limit <= 0 {
		q.Limit = DefaultListLimit
	}
	if q.Limit > MaxListLimit {
		q.Limit = MaxListLimit
	}
	lower, upper := q.listRange(now)
	if q.After != nil {
		if !q.cursorFits(q.After) {
			return HoldPage{}, ErrBadCursor
		}
		if next := append(append([]byte(nil), q.After...), 0); string(next) > string(lower) {
			lower = next // the first key after it
		}
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return HoldPage{}, ErrStoreClosed
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	var seenSeq uint64
	if v, closer, err := snap.Get(keyMetaSeq); err == nil {
		seenSeq = beU64(v)
		closer.Close()
	}
	page := HoldPage{}
	if string(lower) >= string(upper) {
		return page, s.awaitDurable(ctx, seenSeq)
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return page, fmt.Errorf("region store: list holds: %w", err)
	}
	defer it.Close()
	budget := q.Limit*listScanFactor + listScanSlack
	direct := string(lower[:2]) == pfxHold
	var hk []byte
	for it.First(); it.Valid(); it.Next() {
		if len(page.Holds) == q.Limit || page.Examined == budget {
			page.Next = append([]byte(nil), page.last...)
			break
		}
		page.Examined++
		var raw []byte
		if direct {
			if raw, err = it.ValueAndErr(); err != nil {
				return page, fmt.Errorf("region store: read %s: %w", fmtKey(it.Key()), err)
			}
		} else {
			id, ok := holdIDOfIndexKey(it.Key())
			if !ok {
				return page, corrupt(append([]byte(nil), it.Key()...), "malformed listing index entry")
			}
			hk = appendHoldKey(hk[:0], id)
			v, closer, err := snap.Get(hk)
			if errors.Is(err, pebble.ErrNotFound) {
				continue // pruned together with its index entry in a later batch
			}
			if err != nil {
				return page, fmt.Errorf("region store: read %s: %w", fmtKey(hk), err)
			}
			raw = append(raw[:0], v...)
			closer.Close()
		}
		h, err := escrow.DecodeHold(raw)
		if err != nil {
			return page, corrupt(append([]byte(nil), it.Key()...), "undecodable hold: %v", err)
		}
		page.last = append(page.last[:0], it.Key()...)
		if q.matches(&h, now) {
			page.Holds = append(page.Holds, h)
		}
	}
	if err := it.Error(); err != nil {
		return page, fmt.Errorf("region store: list holds: %w", err)
	}
	return page, s.awaitDurable(ctx, seenSeq)
}

func hasPrefix(b, p []byte) bool { return len(b) >= len(p) && string(b[:len(p)]) == string(p) }

// cursorFits reports whether a cursor key belongs to the index q scans
// (the same cart, the same state): a cursor of another query is refused
// rather than silently skipping or repeating holds.
func (q *HoldQuery) cursorFits(k []byte) bool {
	if _, ok := holdIDOfIndexKey(k); !ok {
		return false
	}
	switch {
	case q.Cart != "":
		return hasPrefix(k, appendCartPrefix(nil, q.Cart))
	case q.State == escrow.Held:
		return hasPrefix(k, []byte(pfxExpiry))
	case q.State != 0:
		return hasPrefix(k, append([]byte(pfxEnded), byte(q.State)))
	}
	return hasPrefix(k, []byte(pfxHold))
}

// awaitDurable waits until the own sequence seq (read from a snapshot) is
// durable: pebble shows a batch before its fsync ends, and nothing may be
// answered from a batch that is not durable.
func (s *Store) awaitDurable(ctx context.Context, seq uint64) error {
	for d := 50 * time.Microsecond; s.durable.Load() < seq; d = min(2*d, 5*time.Millisecond) {
		if err := s.failed(); err != nil {
			return err
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// PruneEnded deletes up to max terminal holds that ended before cutoff,
// with their listing index entries, in one unsynced batch (losing it in a
// crash only delays the pruning). It returns how many it deleted. It runs
// beside the apply loop; the holds it drops are no longer in the node.
func (s *Store) PruneEnded(cutoff time.Time, max int) (int, error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return 0, ErrStoreClosed
	}
	if err := s.failed(); err != nil {
		return 0, err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte(pfxUpdated),
		UpperBound: appendU64([]byte(pfxUpdated), timeOrd(cutoff)),
	})
	if err != nil {
		return 0, fmt.Errorf("region store: prune: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	w := batchWriter{b: b}
	var k []byte
	n := 0
	for it.First(); it.Valid() && n < max; it.Next() {
		id, ok := holdIDOfIndexKey(it.Key())
		if !ok {
			it.Close()
			return 0, corrupt(append([]byte(nil), it.Key()...), "malformed u/ entry")
		}
		w.del(it.Key())
		k = appendHoldKey(k[:0], id)
		if v, found, err := s.get(k); err != nil {
			it.Close()
			return 0, err
		} else if found {
			if h, err := escrow.DecodeHold(v); err == nil {
				k = unstageListIndexes(&w, k, &h)
				k = appendHoldKey(k[:0], id)
			}
			w.del(k)
		}
		n++
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("region store: prune: %w", err)
	}
	if n == 0 || w.err != nil {
		return 0, w.err
	}
	// Serialised with Apply: pebble would accept it concurrently, but a
	// failed or reopening store must not see a write from here.
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.usableLocked(); err != nil {
		return 0, err
	}
	if err := s.applyBatch(b, false); err != nil {
		return 0, fmt.Errorf("region store: prune: %w", err)
	}
	return n, nil
}

// listCounts checks the listing indexes at Load: every hold with a cart
// has one k/ entry, every terminal hold one e/ and one u/ entry, and no
// other entries exist (counted, and each entry well formed).
type listCounts struct {
	carts, ended, updated int // index entries
	wantCarts, wantEnded  int // from the holds
}

func (c *listCounts) noteHold(h *escrow.Hold) {
	if h.Cart != "" {
		c.wantCarts++
	}
	if h.State.Terminal() {
		c.wantEnded++
	}
}

func (c *listCounts) noteIndex(k, v []byte) error {
	if _, ok := holdIDOfIndexKey(k); !ok || len(v) != 0 {
		return corrupt(k, "malformed listing index entry")
	}
	switch string(k[:2]) {
	case pfxCart:
		c.carts++
	case pfxEnded:
		if st := escrow.HoldState(k[2]); !st.Terminal() || st > escrow.Expired {
			return corrupt(k, "listing index entry of state %d", k[2])
		}
		c.ended++
	case pfxUpdated:
		c.updated++
	}
	return nil
}

func (c *listCounts) check() error {
	if c.carts != c.wantCarts || c.ended != c.wantEnded || c.updated != c.wantEnded {
		return fmt.Errorf("region store: listing indexes have %d cart, %d state and %d end entries for %d holds with a cart and %d terminal holds",
			c.carts, c.ended, c.updated, c.wantCarts, c.wantEnded)
	}
	return nil
}
