package region

// Committing a Ready's Persist: the two halves of Apply (write, then wait
// for the fsync), write-ahead batches, and the recycling of pebble batches.

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/eventlog"
)

// CommitStats describes one Apply commit.
type CommitStats struct {
	Bytes   int           // size of the pebble batch
	Entries int           // keys set or deleted
	Total   time.Duration // wall time of the pebble commit
	// SyncWait is pebble's wait for the WAL fsync (CommitWaitDuration).
	SyncWait time.Duration
	// Stall is time spent in pebble write stalls (memtable or L0 full) and
	// WAL rotation.
	Stall  time.Duration
	Synced bool // false with StoreOptions.NoSync
}

// Apply writes one Ready's Persist as one pebble batch, synced (unless
// NoSync). An error means the outcome is unknown (see the failing-disk note
// at the top of store.go): the store refuses further writes until Reopen.
func (s *Store) Apply(p *escrow.Persist) error {
	pc, err := s.ApplyNoWait(p)
	if err != nil {
		return err
	}
	return pc.Wait()
}

// PendingCommit is a batch written to the WAL and the memtable whose fsync
// may still be running. Wait blocks until it is durable.
type PendingCommit struct {
	s       *Store
	b       *pebble.Batch // nil for an empty Persist
	db      *pebble.DB    // the DB b belongs to (recycled only into the same DB)
	seq     uint64
	bytes   int
	entries int
	start   time.Time
	async   bool             // applied with ApplyNoSyncWait: Wait must SyncWait
	durable bool             // false for WriteAhead: Wait leaves it not yet durable
	wal     *ownWAL          // the own log the batch went to (nil: pebble's WAL)
	walPos  uint64           // its position there
	ob      *eventlog.Outbox // the event log the batch appended to (nil: none)
	evHead  uint64           // the log's head once the batch is durable
}

// ApplyNoWait is the first half of Apply: it validates and stages p and
// hands the batch to pebble's WAL and memtable without waiting for the
// fsync, so that the next batch can be written while this one syncs (pebble
// syncs everything queued behind a running fsync with the next one). The
// caller must call Wait on every PendingCommit it got, in the order of the
// ApplyNoWait calls, before acting on the batch (replying, sending), and
// before Reopen or Close. Readies are durable in order: the WAL is one
// sequential log, so a durable batch implies every earlier one is.
//
// An error is an unknown outcome, as for Apply; no Wait is needed then.
// A failure of a batch marks the store failed, so every batch applied
// after it fails too (its Wait returns an error).
func (s *Store) ApplyNoWait(p *escrow.Persist) (*PendingCommit, error) {
	return s.applyNoWait(p, true)
}

// WriteAhead writes p like ApplyNoWait but does not ask for an fsync: the
// batch becomes durable with the next ApplyNoWait (the WAL is one
// sequential log and an fsync covers everything written before it). Its
// Wait returns once it is written, without making it durable; the caller
// must not act on it (reply, send) before the Wait of a later ApplyNoWait
// returned nil. With StoreOptions.NoSync it is ApplyNoWait.
func (s *Store) WriteAhead(p *escrow.Persist) (*PendingCommit, error) {
	return s.applyNoWait(p, false)
}

func (s *Store) applyNoWait(p *escrow.Persist, sync bool) (*PendingCommit, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.usableLocked(); err != nil {
		return nil, err
	}
	if p.Seq < s.seq {
		return nil, fmt.Errorf("region store: persist sequence %d is below the stored sequence %d", p.Seq, s.seq)
	}
	sync = sync || !s.wopts.Sync
	// An empty synced write after written-ahead batches still needs its
	// fsync: it writes the sequence key (unchanged) to have a batch.
	forceSeq := sync && s.unsynced && s.wopts.Sync
	if p.Empty() && p.Seq == s.seq && !forceSeq {
		return s.pending(nil), nil
	}
	if err := s.ensureOwnSeqLocked(); err != nil {
		return nil, err
	}
	if err := s.validate(p); err != nil {
		return nil, err
	}
	pc := s.pending(s.takeBatch())
	b := pc.b
	err := s.stage(b, p, forceSeq)
	if err == nil && s.outbox != nil {
		// The events go in the same batch as the changes they state; the
		// log's head moves in Wait, once the batch is durable.
		pc.ob = s.outbox
		pc.evHead, err = s.outbox.Append(b, p.Events)
	}
	if err != nil {
		// The maps may already hold staged changes: only a reopen restores them.
		s.abandonEvents()
		s.markFailed(err)
		return nil, fmt.Errorf("%w: staging batch: %w", ErrStoreFailed, err)
	}
	pc.seq = p.Seq
	pc.bytes, pc.entries = len(b.Repr()), int(b.Count())
	pc.start = time.Now()
	pc.async = s.wopts.Sync && sync
	pc.durable = sync
	if s.wal != nil {
		pc.wal = s.wal
		early := pc.durable && !s.opts.NoSync && pc.bytes >= cmp.Or(s.opts.walEarlyBytes, walEarlySyncBytes)
		pc.walPos, _, err = s.wal.append(b, s.applyMemRows, early, s.stageRows)
		if err == nil {
			// A chunk of the row checkpoint in progress (store_rowlog.go),
			// if any: behind this batch in the log, synced with it.
			err = s.rowCheckpointStepLocked()
		}
	} else {
		err = s.commit(b, pc.async)
	}
	if s.prefetch != nil {
		s.prefetch.written(p.Rows, s.bugs) // visible now: reads ahead of these SKUs are stale
	}
	if err == nil {
		// A WAL write error makes pebble call Logger.Fatalf, which marks
		// the store failed, and return nil; the batch may then never be
		// signalled as synced, so it is not waited for.
		err = s.failed()
	}
	if err != nil {
		s.abandonEvents()
		s.failCommit(p.Seq, err)
		return nil, s.commitErr(p.Seq, err)
	}
	// The next batch validates against this one's sequence (stored, maybe
	// not yet durable); readers stay bounded by s.durable.
	s.seq = p.Seq
	s.unsynced = !sync
	return pc, nil
}

// Wait waits until the batch is durable (synced) and records it. A nil
// error means the batch and every batch applied before it are durable
// (for a WriteAhead batch: only that it is written).
func (pc *PendingCommit) Wait() error {
	s := pc.s
	if pc.b == nil {
		s.putPending(pc)
		return nil
	}
	var err error
	var ownWait time.Duration
	switch {
	case pc.wal != nil && pc.durable:
		t := time.Now()
		err = pc.wal.waitDurable(pc.walPos)
		ownWait = time.Since(t)
	case pc.async:
		err = pc.b.SyncWait()
	}
	total := time.Since(pc.start)
	if err == nil {
		// A failure of this generation (a later batch, a background
		// Fatalf) makes the outcome unknown: refuse to call it durable.
		err = s.failed()
	}
	if err != nil {
		s.failCommit(pc.seq, err)
		// A batch whose commit failed is not reusable.
		pc.b = nil
		s.putPending(pc)
		return s.commitErr(pc.seq, err)
	}
	if pc.durable && pc.seq > s.durable.Load() {
		s.durable.Store(pc.seq)
	}
	if pc.durable && pc.ob != nil {
		s.events.committed(pc.ob, pc.evHead)
	}
	st := CommitStats{Bytes: pc.bytes, Entries: pc.entries, Total: total}
	if pc.wal != nil {
		st.SyncWait, st.Synced = ownWait, pc.durable && !s.opts.NoSync
	} else {
		cs := pc.b.CommitStats()
		st.SyncWait, st.Synced = cs.CommitWaitDuration, pc.async
		st.Stall = cs.MemTableWriteStallDuration + cs.L0ReadAmpWriteStallDuration + cs.WALRotationDuration
	}
	s.statsMu.Lock()
	s.stats.Last = st
	s.stats.Commits++
	s.stats.CommitBytes += uint64(pc.bytes)
	s.stats.CommitEntries += uint64(pc.entries)
	if pc.durable {
		s.stats.DurableSeq = pc.seq
	}
	s.statsMu.Unlock()
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(st)
	}
	s.putPending(pc)
	return nil
}

// abandonEvents forgets the events staged since the durable head (their
// batch failed; the store is reopened before the next one). Callers hold
// applyMu.
func (s *Store) abandonEvents() {
	if s.outbox != nil {
		s.outbox.Abandon()
	}
}

func (s *Store) failCommit(seq uint64, err error) {
	s.markFailed(err)
	s.statsMu.Lock()
	s.stats.Failures++
	s.statsMu.Unlock()
	s.log.Error("store commit failed; the store must be reopened", "seq", seq, "err", err)
}

func (s *Store) commitErr(seq uint64, err error) error {
	if errors.Is(err, ErrStoreWedged) || errors.Is(err, ErrStoreFailed) {
		return fmt.Errorf("region store: commit of seq %d: %w", seq, err)
	}
	return fmt.Errorf("region store: commit of seq %d: %w: %w", seq, ErrStoreFailed, err)
}

// takeBatch returns an empty batch of the current DB, recycled when one is
// free. Callers hold applyMu.
func (s *Store) takeBatch() *pebble.Batch {
	s.freeMu.Lock()
	defer s.freeMu.Unlock()
	for len(s.freeBatches) > 0 {
		pc := s.freeBatches[len(s.freeBatches)-1]
		s.freeBatches = s.freeBatches[:len(s.freeBatches)-1]
		if pc.db == s.db {
			pc.b.Reset()
			b := pc.b
			pc.b = nil
			s.freePending = append(s.freePending, pc)
			return b
		}
		_ = pc.b.Close()
	}
	return s.db.NewBatch()
}

// pending returns a PendingCommit (recycled when one is free) for b.
// Callers hold applyMu.
func (s *Store) pending(b *pebble.Batch) *PendingCommit {
	s.freeMu.Lock()
	var pc *PendingCommit
	if n := len(s.freePending); n > 0 {
		pc = s.freePending[n-1]
		s.freePending = s.freePending[:n-1]
	}
	s.freeMu.Unlock()
	if pc == nil {
		pc = &PendingCommit{s: s}
	}
	pc.b, pc.db = b, s.db
	pc.ob, pc.evHead = nil, 0
	pc.wal, pc.walPos = nil, 0
	return pc
}

// putPending recycles pc and its batch (when it has one that may be reused).
func (s *Store) putPending(pc *PendingCommit) {
	s.freeMu.Lock()
	defer s.freeMu.Unlock()
	if pc.b != nil && len(s.freeBatches) < maxFreeBatches {
		s.freeBatches = append(s.freeBatches, pc)
		return
	}
	pc.b, pc.ob, pc.evHead = nil, nil, 0
	if len(s.freePending) < maxFreeBatches {
		s.freePending = append(s.freePending, pc)
	}
}

// maxFreeBatches bounds the recycled batches (a few are in flight at once).
const maxFreeBatches = 8

// commit applies b (without waiting for its fsync when the store syncs),
// turning a pebble panic into ErrStoreWedged.
func (s *Store) commit(b *pebble.Batch, sync bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrStoreWedged, r)
			s.wedge()
		}
	}()
	if sync {
		return s.db.ApplyNoSyncWait(b, pebble.Sync)
	}
	return s.db.Apply(b, pebble.NoSync)
}

// applyBatch writes a batch outside the hold path (meta keys, upgrades,
// the event log's cursor and pruning, PruneEnded) through the store's
// WAL; with sync it returns once b is durable. A failure marks the store
// failed. Callers hold applyMu or dbMu (s.wal stays put).
func (s *Store) applyBatch(b *pebble.Batch, sync bool) error {
	if s.wal == nil {
		if sync {
			return s.db.Apply(b, pebble.Sync)
		}
		return s.db.Apply(b, pebble.NoSync)
	}
	if err := s.failed(); err != nil {
		return err
	}
	pos, _, err := s.wal.append(b, s.applyMemRows, false, rowSpan{})
	if err == nil && sync {
		err = s.wal.waitDurable(pos)
	}
	if err != nil {
		s.markFailed(err)
		return err
	}
	return nil
}
