package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

// Record is one event as kept in the outbox: its sequence, kind, time and
// CloudEvents JSON (Data, ready to publish or serve).
type Record struct {
	Seq  uint64
	Kind escrow.EventKind
	Time time.Time
	Data []byte
}

// ID is the event id of r in region.
func (r *Record) ID(region string) string { return EventID(region, r.Seq) }

// Outbox is the event log of one region in the region's Pebble store. The
// runtime calls Append on the batch of each Ready (from the one goroutine
// that builds batches, in batch order) and Committed once that batch is
// durable; readers (the relay, the HTTP feed) see events up to the last
// committed sequence only, so an event is never served before its change
// is durable.
type Outbox struct {
	db      *pebble.DB
	cluster string
	region  string

	staged uint64        // last seq appended to a batch (builder goroutine only)
	head   atomic.Uint64 // last seq durable
	notify chan struct{}
	// commit writes the outbox's own batches (cursor, prune) durably;
	// nil: b.Commit(pebble.Sync). See SetCommit.
	commit func(b *pebble.Batch) error
}

// SetCommit replaces how the outbox writes its own batches (the relay
// cursor, pruning) durably, for a store that keeps its own write-ahead log
// (pebble's is then disabled and refuses synced writes). f must return
// once b is durable.
func (o *Outbox) SetCommit(f func(b *pebble.Batch) error) { o.commit = f }

func (o *Outbox) commitSynced(b *pebble.Batch) error {
	if o.commit != nil {
		return o.commit(b)
	}
	return b.Commit(pebble.Sync)
}

// OpenOutbox opens the outbox of region in db (an empty store has none yet:
// head 0).
func OpenOutbox(db *pebble.DB, cluster, region string) (*Outbox, error) {
	if err := escrow.ValidRegion(region); err != nil {
		return nil, fmt.Errorf("eventlog: %w", err)
	}
	if cluster == "" {
		return nil, errors.New("eventlog: empty cluster name")
	}
	head, err := readU64(db, keyHead)
	if err != nil {
		return nil, err
	}
	if err := checkLog(db, head); err != nil {
		return nil, fmt.Errorf("eventlog: region %s: %w", region, err)
	}
	o := &Outbox{db: db, cluster: cluster, region: region, staged: head, notify: make(chan struct{}, 1)}
	o.head.Store(head)
	return o, nil
}

// Region is the region the outbox numbers events for.
func (o *Outbox) Region() string { return o.region }

// Cluster is the cluster name in the events' source.
func (o *Outbox) Cluster() string { return o.cluster }

// Append adds evs to b as the next sequences and moves the head key in the
// same batch, so that the events are durable exactly when the changes they
// state are. It returns the new head to pass to Committed once b is
// applied; on error b may hold part of the events and must be discarded.
func (o *Outbox) Append(b *pebble.Batch, evs []escrow.Event) (uint64, error) {
	if len(evs) == 0 {
		return o.staged, nil
	}
	seq := o.staged
	var val []byte
	for i := range evs {
		seq++
		var err error
		if evs[i].Kind.IsWait() {
			// Waitlist events are rare beside hold events: they are
			// stored as their CloudEvents JSON (a version-1 record)
			// rather than in a compact form of their own.
			val, err = appendJSONRecord(val[:0], o.cluster, o.region, seq, &evs[i])
		} else {
			val, err = appendRecord(val[:0], &evs[i])
		}
		if err != nil {
			return 0, fmt.Errorf("eventlog: stage event %d: %w", seq, err)
		}
		if err := b.Set(recordKey(seq), val, nil); err != nil {
			return 0, fmt.Errorf("eventlog: stage event %d: %w", seq, err)
		}
	}
	if err := b.Set(keyHead, be64(seq), nil); err != nil {
		return 0, fmt.Errorf("eventlog: stage head %d: %w", seq, err)
	}
	o.staged = seq
	return seq, nil
}

// Abandon forgets what Append staged since head (the batch holding it was
// not applied), so that the next Append numbers from head again.
func (o *Outbox) Abandon() { o.staged = o.head.Load() }

// Committed records that every event up to head is durable and wakes the
// readers waiting for it.
func (o *Outbox) Committed(head uint64) {
	if head <= o.head.Load() {
		return
	}
	o.head.Store(head)
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// Head is the last durable sequence.
func (o *Outbox) Head() uint64 { return o.head.Load() }

// Notify signals (coalesced) that Head moved. One reader only: the relay.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// Read returns up to limit records after seq after, none beyond Head. A
// pruned range is simply absent: a caller checks the first Seq (see Oldest).
func (o *Outbox) Read(after uint64, limit int) ([]Record, error) {
	return ReadRange(o.db, o.cluster, o.region, after, o.Head(), limit)
}

// Oldest is the first sequence still kept, or Head+1 when none is.
func (o *Outbox) Oldest() (uint64, error) {
	var first uint64
	err := scanRange(o.db, 0, o.Head(), 1, func(r *rawRecord) error { first = r.seq; return nil })
	if err != nil || first == 0 {
		return o.Head() + 1, err
	}
	return first, nil
}

// Cursor is the relay's saved cursor: the last sequence JetStream acked.
func (o *Outbox) Cursor() (uint64, error) { return readU64(o.db, keyCursor) }

// SaveCursor persists the relay cursor (synced: a lost cursor only causes
// re-sends, but re-sends older than the stream's duplicate window would
// reach consumers twice).
func (o *Outbox) SaveCursor(seq uint64) error {
	b := o.db.NewBatch()
	defer b.Close()
	err := b.Set(keyCursor, be64(seq), nil)
	if err == nil {
		err = o.commitSynced(b)
	}
	if err != nil {
		return fmt.Errorf("eventlog: save relay cursor %d: %w", seq, err)
	}
	return nil
}

// Prune deletes the records below seq below (never the head key, which
// the next Append continues from) and records below as the floor, in one
// synced batch, so that OpenOutbox can tell a pruned log from a lost one.
// below is at most Head+1.
func (o *Outbox) Prune(below uint64) error {
	if below <= 1 {
		return nil
	}
	if h := o.Head(); below > h+1 {
		return fmt.Errorf("eventlog: prune below %d: past the head %d", below, h)
	}
	b := o.db.NewBatch()
	defer b.Close()
	err := b.DeleteRange(recordKey(0), recordKey(below), nil)
	if err == nil {
		err = b.Set(keyFloor, be64(below), nil)
	}
	if err == nil {
		err = o.commitSynced(b)
	}
	if err != nil {
		return fmt.Errorf("eventlog: prune below %d: %w", below, err)
	}
	return nil
}

// ReadRange reads up to limit records of r with after < seq <= upTo, in
// order, as events of region in cluster. It checks the records it reads are
// contiguous.
func ReadRange(r pebble.Reader, cluster, region string, after, upTo uint64, limit int) ([]Record, error) {
	var out []Record
	err := scanRange(r, after, upTo, limit, func(raw *rawRecord) error {
		rec, err := raw.record(cluster, region)
		if err == nil {
			out = append(out, rec)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanRange calls f on up to limit records with after < seq <= upTo, in
// order, checking that they are contiguous. The body f sees is valid only
// during the call.
func scanRange(r pebble.Reader, after, upTo uint64, limit int, f func(*rawRecord) error) error {
	if limit <= 0 || after >= upTo {
		return nil
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: recordKey(after + 1), UpperBound: recordKey(upTo + 1)})
	if err != nil {
		return fmt.Errorf("eventlog: read after %d: %w", after, err)
	}
	var prev uint64
	n := 0
	for ok := it.First(); ok && n < limit; ok = it.Next() {
		seq, err := seqOfKey(it.Key())
		if err == nil && n > 0 && seq != prev+1 {
			err = fmt.Errorf("eventlog: gap in the outbox: %d follows %d", seq, prev)
		}
		var raw rawRecord
		if err == nil {
			raw, err = parseRecord(seq, it.Value())
		}
		if err == nil {
			err = f(&raw)
		}
		if err != nil {
			_ = it.Close()
			return err
		}
		prev = seq
		n++
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("eventlog: read after %d: %w", after, err)
	}
	return nil
}

func readU64(r pebble.Reader, k []byte) (uint64, error) {
	v, c, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("eventlog: read %s: %w", k, err)
	}
	defer c.Close()
	n, err := u64(v)
	if err != nil {
		return 0, fmt.Errorf("%w (key %s)", err, k)
	}
	return n, nil
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
