package region

// Store is the Pebble implementation of Storage. The key layout is
// documented in keys.go.
//
// # Failing disk: what Pebble (v2.1.7) does, and what Store does about it
//
// Read in pebble's db.go (applyInternal, commitWrite, rotateWAL),
// commit.go (commitPipeline.Commit/publish), record/log_writer.go (the WAL
// flusher) and version_set.go (logAndApply):
//
//   - A WAL write or fsync error during a commit is delivered to the
//     committing batch, but DB.Apply does not return it: it calls
//     Options.Logger.Fatalf("pebble: fatal commit error") and, if Fatalf
//     returns, DB.Apply returns nil. The default logger exits the process
//     (log.Fatalf → os.Exit(1)). No pebble locks are held at that point.
//   - The batch is already applied to the memtable and visible to readers
//     (pebble publishes a batch before its WAL sync finishes), although it
//     is not durable. After a restart it may or may not be there (the WAL
//     record is checksummed, so it is all or nothing).
//   - The WAL flusher's error is sticky: every later synced commit fails the
//     same way, and once a WAL block fills, the next commit panics inside
//     commitWrite (LogWriter.WriteRecord returns the error) with pebble's
//     commit mutex held. The DB can no longer be used; it must be reopened.
//   - A failure while rotating the WAL (closing/syncing the old log or
//     creating the new one when a memtable fills) panics while DB.mu is
//     unlocked inside a function that defers DB.mu.Unlock: the process dies
//     with the unrecoverable "sync: unlock of unlocked mutex" (checked by
//     TestStoreWALRotationFailureIsFatal). Nothing can catch this. A large
//     memtable (StoreOptions.MemTableBytes, 32 MiB by default) makes
//     rotations rare; nothing acknowledged is lost since the process dies
//     before acknowledging, and the supervisor restarts it.
//   - Crash recovery relies on directory entries surviving in creation
//     order (true of journaling filesystems such as ext4 and xfs): the
//     manifest's directory entry is made durable only by the directory sync
//     that also publishes the marker pointing to it.
//   - MANIFEST write/sync failures (flushes, compactions) call
//     Logger.Fatalf from background goroutines; when Fatalf returns, the
//     flush/compaction fails with an error and is retried later.
//   - WALFailover only helps with a second disk; DisableWAL would give up
//     durability. Neither is used.
//
// So Store installs a Logger whose Fatalf logs and marks the store failed
// instead of exiting. Apply checks that mark after every commit and
// returns an error wrapping ErrStoreFailed; from then on every Apply fails
// fast and reads (Load, OwnRowsSince, ExpiringHolds) refuse, because the
// memtable may show changes that are not durable. A panic from pebble
// during a commit is recovered into ErrStoreWedged: pebble's locks may be
// held, so that DB is never touched again and this process cannot reopen
// the directory (Pebble's in-process lock stays taken); the runtime must
// exit and be restarted.
//
// The runtime treats an Apply error as an unknown outcome: it fails the
// requests of that batch (503), then Reopen (or Close + OpenStore) and
// Load, which returns what is durable (the failed batch entirely or not at
// all), and rebuilds the node from it. If the disk is still failing, the
// reopen fails and the runtime retries with backoff.

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

var (
	// ErrStoreFailed is wrapped by Apply (and reads) after a write or sync
	// failed: reopen the store and Load to continue from what is durable.
	ErrStoreFailed = errors.New("region store: storage write failed; reopen and reload")
	// ErrStoreWedged means pebble panicked during a commit, possibly holding
	// its internal locks: the process must exit and be restarted.
	ErrStoreWedged = errors.New("region store: pebble panicked during a commit; restart the process")
	// ErrStoreClosed is returned by every method after Close.
	ErrStoreClosed = errors.New("region store: closed")
)

// CorruptStoreError reports a stored key whose content is wrong. A region
// refuses to start on it.
type CorruptStoreError struct {
	Key     string // rendered by fmtKey
	Problem string
}

func (e *CorruptStoreError) Error() string {
	return "region store: corrupt key " + e.Key + ": " + e.Problem
}

func corrupt(key []byte, format string, args ...any) error {
	return &CorruptStoreError{Key: fmtKey(key), Problem: fmt.Sprintf(format, args...)}
}

// StoreOptions configures OpenStore.
type StoreOptions struct {
	// Region is the region owning the store; opening another region's
	// store is refused.
	Region string
	// FS is the filesystem; nil means the real one (vfs.Default).
	FS vfs.FS
	// NoSync commits without fsync. NON-DURABLE: benchmarks only.
	NoSync bool
	// Logger receives pebble's log lines and store events; nil: slog.Default.
	Logger *slog.Logger
	// CacheBytes is pebble's block cache size; 0: 64 MiB.
	CacheBytes int64
	// MemTableBytes is pebble's memtable size; 0: 32 MiB. Larger memtables
	// mean rarer WAL rotations (see the failing-disk note above).
	MemTableBytes uint64
	// OnCommit, if set, is called by Apply after every successful commit
	// (on the committing goroutine: keep it cheap), e.g. to feed
	// holdfast_commit_batch_size and holdfast_fsync_seconds.
	OnCommit func(CommitStats)
}

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

// StoreStats are cumulative store counters plus the last commit.
type StoreStats struct {
	Last             CommitStats
	Commits          uint64
	CommitBytes      uint64
	CommitEntries    uint64
	Failures         uint64 // Apply calls that failed in pebble
	BackgroundErrors uint64 // pebble background errors (flush, compaction)
	Opens            uint64 // successful opens (1 + reopens)
	DurableSeq       uint64 // own sequence of the last durable commit
	Failed           string // why the store is failed; "" when healthy
}

// ExpiringHold is one entry of the expiry index.
type ExpiringHold struct {
	HoldID  string
	Expires time.Time
}

// Store keeps one region's durable state in Pebble. Apply, Load, Reopen and
// Close are serialised; OwnRowsSince, ExpiringHolds, Metrics and Stats may
// run concurrently with them.
type Store struct {
	dir    string
	opts   StoreOptions
	fs     vfs.FS
	region string
	log    *slog.Logger
	wopts  *pebble.WriteOptions
	lockID string // for the wedged-directory registry; "" for non-default FS

	// applyMu serialises writers and guards the fields below it.
	applyMu  sync.Mutex
	seq      uint64            // stored own sequence (applied; durable is below)
	unsynced bool              // a WriteAhead batch is written and no synced one after it
	ownSeq   map[string]uint64 // sku → seq of the own row (its c/ entry)
	heldExp  map[string]uint64 // hold id → timeOrd of its x/ entry
	idemExp  map[string]uint64 // idem key → timeOrd of its j/ entry
	kbuf     []byte
	vbuf     []byte
	seqSeen  map[uint64]struct{} // validate's scratch set
	order    []int32             // stage's scratch order of holds
	wedged   bool

	// freeMu guards the recycled batches (Wait runs without applyMu).
	freeMu      sync.Mutex
	freeBatches []*PendingCommit // each with a reset-able batch of db
	freePending []*PendingCommit

	// dbMu guards db against Reopen/Close while readers use it.
	dbMu sync.RWMutex
	db   *pebble.DB

	gen     atomic.Uint64         // open generation; stale fatal reports are ignored
	failErr atomic.Pointer[error] // non-nil once a write failed in this generation
	durable atomic.Uint64         // own seq of the last durable commit

	statsMu sync.Mutex
	stats   StoreStats
}

// wedgedDirs remembers real directories whose DB was abandoned after a
// pebble panic, so that reopening them says why instead of "lock held".
var wedgedDirs sync.Map

var _ Storage = (*Store)(nil)

// OpenStore opens (creating if needed) the store of opts.Region in dir. It
// refuses a store of another region or of an unknown format version, and a
// store whose indexes are corrupt.
func OpenStore(dir string, opts StoreOptions) (*Store, error) {
	if err := escrow.ValidRegion(opts.Region); err != nil {
		return nil, fmt.Errorf("region store: %w", err)
	}
	s := &Store{dir: dir, opts: opts, fs: opts.FS, region: opts.Region, log: opts.Logger}
	if s.fs == nil {
		s.fs = vfs.Default
		if abs, err := filepath.Abs(dir); err == nil {
			s.lockID = abs
		} else {
			s.lockID = dir
		}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("store", dir)
	s.wopts = pebble.Sync
	if opts.NoSync {
		s.wopts = pebble.NoSync
		s.log.Warn("store opened with NoSync: commits are NOT durable (benchmarks only)")
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// open opens pebble and rebuilds the in-memory index maps. Callers hold
// applyMu (or own s exclusively).
func (s *Store) open() error {
	if s.lockID != "" {
		if _, ok := wedgedDirs.Load(s.lockID); ok {
			return fmt.Errorf("%w (store %s was abandoned in this process)", ErrStoreWedged, s.dir)
		}
	}
	gen := s.gen.Add(1)
	s.failErr.Store(nil)
	plog := &pebbleLogger{log: s.log, onFatal: func(err error) { s.markFailedGen(gen, err) }}
	cache := s.opts.CacheBytes
	if cache <= 0 {
		cache = 64 << 20
	}
	mem := s.opts.MemTableBytes
	if mem == 0 {
		mem = 32 << 20
	}
	po := &pebble.Options{
		FS:                 s.fs,
		Logger:             plog,
		CacheSize:          cache,
		MemTableSize:       mem,
		FormatMajorVersion: pebble.FormatNewest,
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				s.log.Warn("pebble background error", "err", err)
				s.statsMu.Lock()
				s.stats.BackgroundErrors++
				s.statsMu.Unlock()
			},
		},
	}
	db, err := openPebble(s.dir, po)
	if err != nil {
		return fmt.Errorf("region store: open pebble in %s: %w", s.dir, err)
	}
	s.db = db
	if err := s.initLocked(); err != nil {
		s.db = nil
		if cerr := db.Close(); cerr != nil {
			s.log.Warn("closing store after failed open", "err", cerr)
		}
		return err
	}
	s.durable.Store(s.seq)
	s.unsynced = false
	s.statsMu.Lock()
	s.stats.Opens++
	s.stats.DurableSeq = s.seq
	s.stats.Failed = ""
	s.statsMu.Unlock()
	return nil
}

func openPebble(dir string, po *pebble.Options) (db *pebble.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble panicked during open: %v", r)
		}
	}()
	return pebble.Open(dir, po)
}

// initLocked checks or writes the meta keys and rebuilds the index maps.
func (s *Store) initLocked() error {
	db := s.db
	ver, ok, err := s.get(keyMetaVersion)
	if err != nil {
		return err
	}
	if !ok {
		// A new store: only an empty DB may become one.
		it, err := db.NewIter(nil)
		if err != nil {
			return err
		}
		if it.First() {
			k := append([]byte(nil), it.Key()...)
			it.Close()
			return corrupt(k, "store has data but no format version (%s missing)", keyMetaVersion)
		}
		if err := it.Close(); err != nil {
			return err
		}
		b := db.NewBatch()
		defer b.Close()
		_ = b.Set(keyMetaVersion, []byte{storeFormatVersion}, nil)
		_ = b.Set(keyMetaRegion, []byte(s.region), nil)
		_ = b.Set(keyMetaSeq, appendU64(nil, 0), nil)
		if err := db.Apply(b, pebble.Sync); err != nil {
			return fmt.Errorf("region store: initialise %s: %w", s.dir, err)
		}
		if err := s.failed(); err != nil {
			return err
		}
		s.log.Info("created store", "region", s.region, "format", storeFormatVersion)
		ver = []byte{storeFormatVersion}
	}
	if len(ver) != 1 || ver[0] != storeFormatVersion {
		return fmt.Errorf("region store %s: unknown format version %v (this build reads %d)", s.dir, ver, storeFormatVersion)
	}
	reg, ok, err := s.get(keyMetaRegion)
	if err != nil {
		return err
	}
	if !ok {
		return corrupt(keyMetaRegion, "missing")
	}
	if string(reg) != s.region {
		return fmt.Errorf("region store %s belongs to region %q, not %q", s.dir, reg, s.region)
	}
	seqv, ok, err := s.get(keyMetaSeq)
	if err != nil {
		return err
	}
	if !ok || len(seqv) != seqLen {
		return corrupt(keyMetaSeq, "missing or not %d bytes", seqLen)
	}
	s.seq = beU64(seqv)
	return s.scanIndexes()
}

func beU64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
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

// scanIndexes rebuilds ownSeq, heldExp and idemExp from the c/, x/ and j/
// indexes. Load cross-checks them against the data they index.
func (s *Store) scanIndexes() error {
	s.ownSeq = make(map[string]uint64)
	s.heldExp = make(map[string]uint64)
	s.idemExp = make(map[string]uint64)
	err := s.scan(pfxChange, func(k, v []byte) error {
		seq, ok := splitChangeKey(k)
		if !ok {
			return corrupt(k, "change index key is not %d bytes of sequence", seqLen)
		}
		sku := string(v)
		if escrow.ValidSKU(sku) != nil {
			return corrupt(k, "change index value %q is not a SKU", v)
		}
		if seq > s.seq {
			return corrupt(k, "change index entry beyond the stored sequence %d", s.seq)
		}
		if prev, dup := s.ownSeq[sku]; dup {
			return corrupt(k, "second change index entry for SKU %q (the other at seq %d)", sku, prev)
		}
		s.ownSeq[sku] = seq
		return nil
	})
	if err != nil {
		return err
	}
	err = s.scan(pfxExpiry, func(k, _ []byte) error {
		ord, id, ok := splitOrdKey(k)
		if !ok {
			return corrupt(k, "expiry index key too short")
		}
		if _, dup := s.heldExp[id]; dup {
			return corrupt(k, "second expiry index entry for hold %s", id)
		}
		s.heldExp[id] = ord
		return nil
	})
	if err != nil {
		return err
	}
	return s.scan(pfxIdemX, func(k, _ []byte) error {
		ord, key, ok := splitOrdKey(k)
		if !ok {
			return corrupt(k, "idempotency expiry key too short")
		}
		if _, dup := s.idemExp[key]; dup {
			return corrupt(k, "second expiry entry for idempotency key %q", key)
		}
		s.idemExp[key] = ord
		return nil
	})
}

// scan calls f for every key with prefix p (f must copy what it keeps).
func (s *Store) scan(p string, f func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(p), UpperBound: prefixEnd(p)})
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

// markFailedGen records the first failure of open generation gen.
func (s *Store) markFailedGen(gen uint64, err error) {
	if s.gen.Load() != gen {
		s.log.Warn("pebble fatal error from a previous open of the store (ignored)", "err", err)
		return
	}
	if s.failErr.CompareAndSwap(nil, &err) {
		s.statsMu.Lock()
		s.stats.Failed = err.Error()
		s.statsMu.Unlock()
	}
}

func (s *Store) markFailed(err error) { s.markFailedGen(s.gen.Load(), err) }

// failed returns an error wrapping ErrStoreFailed once a write failed.
func (s *Store) failed() error {
	if p := s.failErr.Load(); p != nil {
		if errors.Is(*p, ErrStoreWedged) || errors.Is(*p, ErrStoreFailed) {
			return *p
		}
		return fmt.Errorf("%w: %w", ErrStoreFailed, *p)
	}
	return nil
}

// Apply writes one Ready's Persist as one pebble batch, synced (unless
// NoSync). An error means the outcome is unknown (see the failing-disk note
// at the top of this file): the store refuses further writes until Reopen.
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
	async   bool // applied with ApplyNoSyncWait: Wait must SyncWait
	durable bool // false for WriteAhead: Wait leaves it not yet durable
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

// usableLocked reports why the store cannot be written or loaded: closed,
// wedged after a pebble panic, or failed. Callers hold applyMu.
func (s *Store) usableLocked() error {
	if s.db == nil {
		if s.wedged {
			return ErrStoreWedged
		}
		return ErrStoreClosed
	}
	return s.failed()
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
	if err := s.validate(p); err != nil {
		return nil, err
	}
	pc := s.pending(s.takeBatch())
	b := pc.b
	if err := s.stage(b, p, forceSeq); err != nil {
		// The maps may already hold staged changes: only a reopen restores them.
		s.markFailed(err)
		return nil, fmt.Errorf("%w: staging batch: %w", ErrStoreFailed, err)
	}
	pc.seq = p.Seq
	pc.bytes, pc.entries = len(b.Repr()), int(b.Count())
	pc.start = time.Now()
	pc.async = s.wopts.Sync && sync
	pc.durable = sync
	err := s.commit(b, pc.async)
	if err == nil {
		// A WAL write error makes pebble call Logger.Fatalf, which marks
		// the store failed, and return nil; the batch may then never be
		// signalled as synced, so it is not waited for.
		err = s.failed()
	}
	if err != nil {
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
	if pc.async {
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
	cs := pc.b.CommitStats()
	st := CommitStats{Bytes: pc.bytes, Entries: pc.entries, Total: total, SyncWait: cs.CommitWaitDuration,
		Stall:  cs.MemTableWriteStallDuration + cs.L0ReadAmpWriteStallDuration + cs.WALRotationDuration,
		Synced: pc.async}
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
	pc.b = nil
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

// validate rejects a Persist that would store something Load refuses.
func (s *Store) validate(p *escrow.Persist) error {
	if s.seqSeen == nil {
		s.seqSeen = make(map[uint64]struct{})
	}
	clear(s.seqSeen)
	for i := range p.Rows {
		r := &p.Rows[i]
		if r.SKU == "" || r.Region == "" {
			return fmt.Errorf("region store: row without SKU or region (%q/%q)", r.Region, r.SKU)
		}
		if r.Region != s.region {
			continue
		}
		// The change index keeps one entry per seq: a changed own row must
		// carry a sequence number no other row has (the node gives every
		// change a fresh one, above the stored sequence).
		if old, ok := s.ownSeq[r.SKU]; ok && old == r.Seq {
			continue
		}
		if r.Seq <= s.seq || r.Seq > p.Seq {
			return fmt.Errorf("region store: own row %s changed at seq %d, outside (%d, %d]", r.SKU, r.Seq, s.seq, p.Seq)
		}
		if _, dup := s.seqSeen[r.Seq]; dup {
			return fmt.Errorf("region store: two own rows changed at seq %d", r.Seq)
		}
		s.seqSeen[r.Seq] = struct{}{}
	}
	for i := range p.Holds {
		h := &p.Holds[i]
		id := h.ID
		if len(id) <= len(s.region)+1 || id[:len(s.region)] != s.region || id[len(s.region)] != '-' {
			return fmt.Errorf("region store: hold %q does not belong to region %s", id, s.region)
		}
		// The cheap part of what DecodeHold will insist on at Load.
		if h.State < escrow.Held || h.State > escrow.Expired || len(h.Lines) == 0 || len(h.Lines) > escrow.MaxLines {
			return fmt.Errorf("region store: hold %s has state %d and %d lines", id, h.State, len(h.Lines))
		}
		for j := range h.Lines {
			if h.Lines[j].Qty == 0 || h.Lines[j].Qty > escrow.MaxQty || (j > 0 && h.Lines[j-1].SKU >= h.Lines[j].SKU) {
				return fmt.Errorf("region store: hold %s lines are not sorted, distinct, with quantities in 1..%d", id, escrow.MaxQty)
			}
		}
	}
	for r := range p.PeerSeq {
		if r == s.region || r == "" {
			return fmt.Errorf("region store: peer sequence for region %q", r)
		}
	}
	return nil
}

// holdOrder returns the indexes of holds sorted by cmp (in s.order).
func (s *Store) holdOrder(holds []escrow.Hold, cmp func(a, b *escrow.Hold) int) []int32 {
	o := s.order[:0]
	for i := range holds {
		o = append(o, int32(i))
	}
	slices.SortFunc(o, func(a, b int32) int { return cmp(&holds[a], &holds[b]) })
	s.order = o
	return o
}

// stage writes p into b and updates the index maps.
func (s *Store) stage(b *pebble.Batch, p *escrow.Persist, forceSeq bool) error {
	k, v := s.kbuf[:0], s.vbuf[:0]
	defer func() { s.kbuf, s.vbuf = k, v }()
	var errs error
	set := func(key, val []byte) {
		if err := b.Set(key, val, nil); err != nil && errs == nil {
			errs = err
		}
	}
	del := func(key []byte) {
		if err := b.Delete(key, nil); err != nil && errs == nil {
			errs = err
		}
	}
	// Keys are written grouped by prefix (rows, then change index, then
	// holds, then expiry index), not interleaved per item: pebble inserts a
	// batch into the memtable in batch order with a splice hint from the
	// previous key, and the keys of one group are near each other (hold ids
	// and expiries start with the time), so most inserts skip the search.
	for i := range p.Rows {
		r := &p.Rows[i]
		k = appendRowKey(k[:0], r.SKU, r.Region)
		v = escrow.EncodeRow(v[:0], r)
		set(k, v)
	}
	for i := range p.Rows {
		r := &p.Rows[i]
		if r.Region != s.region {
			continue
		}
		old, had := s.ownSeq[r.SKU]
		if had && old == r.Seq {
			continue
		}
		if had {
			k = appendChangeKey(k[:0], old)
			del(k)
		}
		k = appendChangeKey(k[:0], r.Seq)
		v = append(v[:0], r.SKU...)
		set(k, v)
		s.ownSeq[r.SKU] = r.Seq
	}
	// In key order: the splice hint only helps when each key is after the
	// previous one (ids of one millisecond come in random order).
	order := s.holdOrder(p.Holds, func(a, b *escrow.Hold) int { return strings.Compare(a.ID, b.ID) })
	for _, i := range order {
		h := &p.Holds[i]
		k = appendHoldKey(k[:0], h.ID)
		v = escrow.EncodeHold(v[:0], h)
		set(k, v)
	}
	for _, id := range p.DeletedHolds {
		k = appendHoldKey(k[:0], id)
		del(k)
	}
	order = s.holdOrder(p.Holds, func(a, b *escrow.Hold) int {
		if c := a.Expires.Compare(b.Expires); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, i := range order {
		h := &p.Holds[i]
		old, had := s.heldExp[h.ID]
		if h.State == escrow.Held {
			ord := timeOrd(h.Expires)
			if had && old == ord {
				continue
			}
			if had {
				k = appendExpiryKey(k[:0], old, h.ID)
				del(k)
			}
			k = appendExpiryKey(k[:0], ord, h.ID)
			set(k, nil)
			s.heldExp[h.ID] = ord
		} else if had {
			k = appendExpiryKey(k[:0], old, h.ID)
			del(k)
			delete(s.heldExp, h.ID)
		}
	}
	for _, id := range p.DeletedHolds {
		if old, had := s.heldExp[id]; had {
			k = appendExpiryKey(k[:0], old, id)
			del(k)
			delete(s.heldExp, id)
		}
	}
	for i := range p.Idem {
		e := &p.Idem[i]
		k = appendIdemKey(k[:0], e.Key)
		v = appendIdemValue(v[:0], e)
		set(k, v)
		ord := timeOrd(e.Expires)
		old, had := s.idemExp[e.Key]
		if had && old == ord {
			continue
		}
		if had {
			k = appendIdemExpiryKey(k[:0], old, e.Key)
			del(k)
		}
		k = appendIdemExpiryKey(k[:0], ord, e.Key)
		set(k, nil)
		s.idemExp[e.Key] = ord
	}
	for _, key := range p.DeletedIdem {
		k = appendIdemKey(k[:0], key)
		del(k)
		if old, had := s.idemExp[key]; had {
			k = appendIdemExpiryKey(k[:0], old, key)
			del(k)
			delete(s.idemExp, key)
		}
	}
	for r, seq := range p.PeerSeq {
		k = appendPeerKey(k[:0], r)
		v = appendU64(v[:0], seq)
		set(k, v)
	}
	if p.Seq != s.seq || forceSeq {
		v = appendU64(v[:0], p.Seq)
		set(keyMetaSeq, v)
	}
	return errs
}

// OwnRowsSince returns up to limit own rows whose last change is after seq,
// in sequence order, from durable commits only (pebble makes a batch
// visible before its fsync ends; rows of a commit in flight are left out).
// limit <= 0 or above escrow.MaxWireRows means escrow.MaxWireRows.
func (s *Store) OwnRowsSince(seq uint64, limit int) ([]escrow.Row, error) {
	if limit <= 0 || limit > escrow.MaxWireRows {
		limit = escrow.MaxWireRows
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return nil, ErrStoreClosed
	}
	if err := s.failed(); err != nil {
		return nil, err
	}
	durable := s.durable.Load()
	if seq >= durable {
		return nil, nil
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(&pebble.IterOptions{
		LowerBound: appendChangeKey(nil, seq+1),
		UpperBound: appendChangeKey(nil, durable+1),
	})
	if err != nil {
		return nil, fmt.Errorf("region store: scan change index: %w", err)
	}
	type change struct {
		seq uint64
		sku string
	}
	var changes []change
	for it.First(); it.Valid() && len(changes) < limit; it.Next() {
		cs, ok := splitChangeKey(it.Key())
		v, err := it.ValueAndErr()
		if !ok || err != nil {
			k := append([]byte(nil), it.Key()...)
			it.Close()
			if err != nil {
				return nil, fmt.Errorf("region store: read %s: %w", fmtKey(k), err)
			}
			return nil, corrupt(k, "change index key is not %d bytes of sequence", seqLen)
		}
		changes = append(changes, change{cs, string(v)})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("region store: scan change index: %w", err)
	}
	rows := make([]escrow.Row, 0, len(changes))
	var k []byte
	for _, c := range changes {
		k = appendRowKey(k[:0], c.sku, s.region)
		v, closer, err := snap.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, corrupt(appendChangeKey(nil, c.seq), "change index points to missing row %s", fmtKey(k))
		}
		if err != nil {
			return nil, fmt.Errorf("region store: read %s: %w", fmtKey(k), err)
		}
		r, err := escrow.DecodeRow(v)
		closer.Close()
		if err != nil {
			return nil, corrupt(k, "%v", err)
		}
		if r.Seq != c.seq {
			return nil, corrupt(k, "row has seq %d but its change index entry is at %d", r.Seq, c.seq)
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

// Metrics returns pebble's metrics, or nil when the store is closed or
// wedged.
func (s *Store) Metrics() *pebble.Metrics {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil || s.wedgedLoad() {
		return nil
	}
	return s.db.Metrics()
}

func (s *Store) wedgedLoad() bool {
	p := s.failErr.Load()
	return p != nil && errors.Is(*p, ErrStoreWedged)
}

// Stats returns the store's counters.
func (s *Store) Stats() StoreStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Seq returns the own change sequence of the last durable commit.
func (s *Store) Seq() uint64 { return s.durable.Load() }

// Reopen closes the DB (ignoring the errors a failed DB reports on close)
// and opens it again, rebuilding the indexes from what is durable. The
// runtime calls Load after it. It fails with ErrStoreWedged when the DB was
// abandoned after a pebble panic.
func (s *Store) Reopen() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.wedged {
		return ErrStoreWedged
	}
	// Readers wait for the new DB instead of seeing the store closed.
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if err := s.closeDB(); err != nil {
		s.log.Warn("closing store before reopen", "err", err)
		if s.wedged {
			return err
		}
	}
	if err := s.open(); err != nil {
		return err
	}
	s.log.Info("store reopened", "seq", s.seq)
	return nil
}

// Check verifies the whole store as Load does, without keeping the state.
func (s *Store) Check() error {
	_, err := s.Load()
	return err
}

// Close closes the store. A wedged store is abandoned (its DB cannot be
// closed safely) and Close returns ErrStoreWedged.
func (s *Store) Close() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.wedged {
		return ErrStoreWedged
	}
	return s.closeLocked()
}

func (s *Store) closeLocked() error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	return s.closeDB()
}

// closeDB closes the DB; callers hold applyMu and dbMu.
func (s *Store) closeDB() error {
	if s.db == nil {
		return nil
	}
	s.freeMu.Lock()
	for _, pc := range s.freeBatches {
		_ = pc.b.Close()
		pc.b = nil
	}
	s.freeBatches = s.freeBatches[:0]
	s.freeMu.Unlock()
	db := s.db
	s.db = nil
	// Reports from this generation's background work no longer matter.
	s.gen.Add(1)
	if panicked, err := closePebble(db); err != nil {
		if panicked {
			// Pebble's lock on the directory may still be held: only a new
			// process can open it.
			s.wedge()
			return fmt.Errorf("region store: close %s: %w: %w", s.dir, ErrStoreWedged, err)
		}
		return fmt.Errorf("region store: close %s: %w", s.dir, err)
	}
	return nil
}

func (s *Store) wedge() {
	s.wedged = true
	if s.lockID != "" {
		wedgedDirs.Store(s.lockID, true)
	}
}

// closePebble closes db; a panic (pebble asserting on a broken DB) becomes
// an error so that the runtime can log it and reopen.
func closePebble(db *pebble.DB) (panicked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked, err = true, fmt.Errorf("pebble panicked during close: %v", r)
		}
	}()
	return false, db.Close()
}

// pebbleLogger routes pebble's logging to slog. Fatalf does not exit: it
// marks the store failed (see the failing-disk note above).
type pebbleLogger struct {
	log     *slog.Logger
	onFatal func(error)
}

func (l *pebbleLogger) Infof(format string, args ...any) {
	l.log.Info("pebble: " + fmt.Sprintf(format, args...))
}

func (l *pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (l *pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("pebble fatal error: store marked failed (process kept alive)", "err", msg)
	l.onFatal(errors.New(msg))
}
