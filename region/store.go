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
//     memtable (StoreOptions.MemTableBytes, 64 MiB by default) makes
//     rotations rare; nothing acknowledged is lost since the process dies
//     before acknowledging, and the supervisor restarts it.
//   - Crash recovery relies on directory entries surviving in creation
//     order (true of journaling filesystems such as ext4 and xfs): the
//     manifest's directory entry is made durable only by the directory sync
//     that also publishes the marker pointing to it.
//   - MANIFEST write/sync failures (flushes, compactions) call
//     Logger.Fatalf from background goroutines; when Fatalf returns, the
//     flush/compaction fails with an error and is retried later.
//   - WALFailover only helps with a second disk and is not used.
//     DisableWAL is used only with StoreOptions.WAL = WALOwn, where the
//     store keeps its own log (store_wal.go): a write or fdatasync error
//     of that log is returned to the waiting batch and marks the store
//     failed, and rotating its files is not pebble's WAL rotation, so the
//     fatal rotation case above does not arise (pebble's flushes and
//     compactions behave as described).
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
	"sync"
	"sync/atomic"

	"github.com/RaduBerinde/btreemap"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/eventlog"
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

// Store keeps one region's durable state in Pebble. Apply, Load, Reopen and
// Close are serialised; ExpiringHolds, Metrics and Stats may run
// concurrently with them, and so may OwnRowsSince once it has waited for
// the write in progress (it checks the store and builds its sequence index
// under the writers' lock, then reads beside them).
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
	ownSeq   map[string]uint64 // sku → seq of the own row; nil until built (store_seq.go)
	// ownSeqPartial: ownSeq holds only own rows written since a lazy Load
	// (StoreOptions.LazyRows); validate reads the others (store_rows.go).
	ownSeqPartial bool
	kbuf          []byte
	vbuf          []byte
	rowIdx        []int32     // validate's key order of the rows, for stage
	order         []int32     // stage's scratch order of holds
	changed       []seqChange // validate's own-row sequence moves, for stage
	wedged        bool
	outbox        *eventlog.Outbox // nil without an event log; replaced by open (also under dbMu)
	events        *EventLog        // nil without an event log

	// idxMu guards bySeq for OwnRowsSince; writers also hold applyMu.
	idxMu sync.Mutex
	bySeq *btreemap.BTreeMap[uint64, string] // own rows' seq → sku; nil until the first OwnRowsSince

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

	// wal is the store's own write-ahead log (StoreOptions.WAL = WALOwn),
	// nil with pebble's; set with db (under applyMu and dbMu).
	wal *ownWAL
	// walBugs are planted bugs of the own log (tests only).
	walBugs walBugs
	// ov holds the rows the memtable skipped (store_rowlog.go), nil
	// unless the own log runs without StoreOptions.RowsInMemtable; set
	// with wal. rowCk is the row checkpoint in progress; memBuf and
	// memBatch build the memtable's batch without the rows (applyMu).
	ov         *rowOverlay
	rowCk      *rowCkJob // the row checkpoint in progress (nil: none)
	rowCkHeads []ovHead  // rowCheckpointInlineLocked's SKUs (reused)
	stageRows  rowSpan   // stage's leading rows of the batch it wrote
	memBuf     []byte
	memBatch   *pebble.Batch
	memBatchDB *pebble.DB
	// tableOpts writes row checkpoints' sstables (the DB's table format
	// and level-0 options).
	tableOpts sstable.WriterOptions

	// prefetch holds rows read ahead of the stepper; nil without
	// StoreOptions.PrefetchRows (store_rows_prefetch.go).
	prefetch *rowPrefetch
	// bugs and testAfterPrefetchRead are for tests only.
	bugs                  storeBugs
	testAfterPrefetchRead func(sku string)
	// testBeforePebbleClose, if set, is called by closeDB after the own
	// log has closed (pebble's FlushBegin listener detached) and before
	// pebble closes: a flush pebble begins then runs without the log's
	// listener (tests only: store_wal_close_test.go).
	testBeforePebbleClose func()
}

// storeBugs are planted bugs of the store, set by tests of this package
// only, to show that the tests catch them.
type storeBugs struct {
	// prefetchNoEpoch: an applied batch does not mark the reads ahead of
	// its SKUs stale (store_rows_prefetch.go), so SKURows can serve rows
	// older than the last Persist applied.
	prefetchNoEpoch bool
}

// wedgedDirs remembers real directories whose DB was abandoned after a
// pebble panic, so that reopening them says why instead of "lock held".
var wedgedDirs sync.Map

var _ Storage = (*Store)(nil)

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

func (s *Store) wedge() {
	s.wedged = true
	if s.lockID != "" {
		wedgedDirs.Store(s.lockID, true)
	}
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
	l.onFatal(fatalCause(msg, args))
}

// pebbleFatal is a fatal report of pebble's: its text, and the error it
// reported (its cause), kept so that callers can tell what failed, e.g.
// pebble.IsCorruptionError for a checksum mismatch found by a compaction.
type pebbleFatal struct {
	msg   string
	cause error
}

func (e *pebbleFatal) Error() string { return e.msg }
func (e *pebbleFatal) Unwrap() error { return e.cause }

// fatalCause is the error of a Fatalf report: its text, wrapping the first
// error among its arguments (a data corruption report's details).
func fatalCause(msg string, args []any) error {
	for _, a := range args {
		switch v := a.(type) {
		case pebble.DataCorruptionInfo:
			if v.Details != nil {
				return &pebbleFatal{msg: msg, cause: v.Details}
			}
		case error:
			return &pebbleFatal{msg: msg, cause: v}
		}
	}
	return errors.New(msg)
}
