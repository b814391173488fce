package region

// The event log (outbox) inside the region store. Apply appends a
// Persist's Events in the same Pebble batch as the change (eventlog.Outbox,
// keys e/...), and the log's head moves only once the batch is durable
// (PendingCommit.Wait of a synced batch): a reader never sees an event
// whose change a crash could still take back, and a crash loses only the
// events of batches that were never synced, which nobody has seen. The
// sequence is gap-free across crashes because the head key is written in
// the same batch as the events it counts.

import (
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/eventlog"
)

// EventLog is a region's durable event log as its readers see it: the HTTP
// feed, the JetStream relay (it implements eventlog.Source and
// eventlog.CursorStore) and the pruner. It stays valid across store
// reopens (the outbox under it is reopened at the stored head).
type EventLog struct {
	s       *Store
	cluster string
	notify  chan struct{}                 // coalesced, for the one relay
	changed atomic.Pointer[chan struct{}] // closed and replaced when the head moves
}

var (
	_ eventlog.Source      = (*EventLog)(nil)
	_ eventlog.CursorStore = (*EventLog)(nil)
)

func newEventLog(s *Store, cluster string) *EventLog {
	l := &EventLog{s: s, cluster: cluster, notify: make(chan struct{}, 1)}
	ch := make(chan struct{})
	l.changed.Store(&ch)
	return l
}

// Events returns the store's event log, or nil when it keeps none
// (StoreOptions.NoEvents).
func (s *Store) Events() *EventLog { return s.events }

// openOutbox opens the outbox at the stored head. Callers hold applyMu and
// dbMu (or own s exclusively).
func (s *Store) openOutbox() error {
	if s.events == nil {
		return nil
	}
	ob, err := eventlog.OpenOutbox(s.db, s.events.cluster, s.region)
	if err != nil {
		return fmt.Errorf("region store: open event log: %w", err)
	}
	if s.wal != nil {
		// Pebble's WAL is off: the cursor and pruning go through the
		// store's log. Callers hold dbMu (EventLog.with).
		ob.SetCommit(func(b *pebble.Batch) error { return s.applyBatch(b, true) })
	}
	s.outbox = ob
	s.events.wake() // a batch of unknown outcome may have become visible
	return nil
}

// committed moves the head after a synced batch is durable.
func (l *EventLog) committed(ob *eventlog.Outbox, head uint64) {
	if head <= ob.Head() {
		return
	}
	ob.Committed(head)
	l.wake()
}

func (l *EventLog) wake() {
	ch := make(chan struct{})
	close(*l.changed.Swap(&ch))
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// Region is the region whose events these are.
func (l *EventLog) Region() string { return l.s.region }

// Cluster is the cluster name in the events' source.
func (l *EventLog) Cluster() string { return l.cluster }

// Changed returns a channel closed when the head next moves. Any number of
// readers may wait on it (the HTTP feed's long polls and streams).
func (l *EventLog) Changed() <-chan struct{} { return *l.changed.Load() }

// Notify signals (coalesced) that the head moved: for the relay only.
func (l *EventLog) Notify() <-chan struct{} { return l.notify }

// with runs f on the current outbox, under the store's read lock.
func (l *EventLog) with(f func(ob *eventlog.Outbox) error) error {
	s := l.s
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil || s.outbox == nil {
		return ErrStoreClosed
	}
	return f(s.outbox)
}

// Head is the sequence of the last durable event (0: none yet).
func (l *EventLog) Head() uint64 {
	var h uint64
	_ = l.with(func(ob *eventlog.Outbox) error { h = ob.Head(); return nil })
	return h
}

// Read returns up to limit durable events after seq after, in order.
func (l *EventLog) Read(after uint64, limit int) ([]eventlog.Record, error) {
	var recs []eventlog.Record
	err := l.with(func(ob *eventlog.Outbox) (err error) {
		recs, err = ob.Read(after, limit)
		return err
	})
	return recs, err
}

// Oldest is the first sequence still kept (Head+1 when none is).
func (l *EventLog) Oldest() (uint64, error) {
	var o uint64
	err := l.with(func(ob *eventlog.Outbox) (err error) {
		o, err = ob.Oldest()
		return err
	})
	return o, err
}

// Cursor is the relay's saved cursor (0: it never published).
func (l *EventLog) Cursor() (uint64, error) {
	var c uint64
	err := l.with(func(ob *eventlog.Outbox) (err error) {
		c, err = ob.Cursor()
		return err
	})
	return c, err
}

// SaveCursor persists the relay's cursor (synced).
func (l *EventLog) SaveCursor(seq uint64) error {
	return l.with(func(ob *eventlog.Outbox) error { return ob.SaveCursor(seq) })
}

// Prune deletes the events below seq below.
func (l *EventLog) Prune(below uint64) error {
	return l.with(func(ob *eventlog.Outbox) error { return ob.Prune(below) })
}

// DiskBytes estimates the bytes the events from seq from on take on disk
// (sstables only: what is still in the memtable is not counted).
func (l *EventLog) DiskBytes(from uint64) (uint64, error) {
	var n uint64
	err := l.with(func(ob *eventlog.Outbox) (err error) {
		n, err = l.s.db.EstimateDiskUsage(eventlog.RecordKey(from), prefixEnd(eventlog.Prefix+"s/"))
		return err
	})
	return n, err
}
