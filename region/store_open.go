package region

// Opening and closing the Pebble store: options, the format version and
// region checks, and the in-place upgrade of earlier formats.

import (
	"cmp"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

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
	// MemTableBytes is pebble's memtable size; 0: 64 MiB. Larger memtables
	// mean rarer WAL rotations (see the failing-disk note in store.go) and,
	// with a large catalogue, rarer rewrites of its rows by compactions
	// (docs/benchmarks.md, "Catalogue scale"); pebble keeps at most two
	// (MemTableStopWritesThreshold) and replays the WAL of those not yet
	// flushed at open.
	MemTableBytes uint64
	// L0CompactionThreshold is the number of L0 sublevels that starts a
	// compaction into the base level; 0: 8 (pebble's default is 4). Every
	// hold rewrites its SKU's row, so with a catalogue spread over the whole
	// key space each L0 compaction rewrites every row of the base level:
	// merging more flushes at once rewrites them less often. The write path
	// never reads, so the deeper L0 costs only the (rare) point reads.
	L0CompactionThreshold int
	// ColumnarBlocks writes sstables in Pebble's columnar block format
	// (its default) instead of row blocks. The store writes far more than
	// it reads, and row blocks cost less to build: at 1 M SKUs 14% fewer
	// bytes flushed, 18% fewer compacted and ~5% less store CPU per hold
	// (docs/benchmarks.md, "Early sync and row blocks"). Either format
	// reads tables of the other, so the setting may change between runs.
	ColumnarBlocks bool
	// MixedTables lets Pebble cut sstables only where its size and
	// overlap limits fall (its default), so that a table may hold keys of
	// several prefixes. false (the default): every table holds keys of one
	// prefix (store_tables.go), so that compactions rewrite neither the
	// catalogue's rows nor old holds and expiry keys for the new holds
	// and expiry keys beside them (docs/benchmarks.md, "Compactions at 1 M
	// SKUs"). It changes where tables end, not what they hold: a store
	// may move between the two settings, and builds without it read the
	// tables.
	MixedTables bool
	// L0StopWritesThreshold stalls writes at this many L0 sublevels; 0: 32
	// (pebble's default is 12).
	L0StopWritesThreshold int
	// OnCommit, if set, is called by Apply after every successful commit
	// (on the committing goroutine: keep it cheap), e.g. to feed
	// holdfast_commit_batch_size and holdfast_fsync_seconds.
	OnCommit func(CommitStats)
	// Cluster is the cluster name in the events' source; "": "holdfast".
	Cluster string
	// LazyRows: Load leaves the rows in Pebble (no full scan at start)
	// and the node reads them through the store's escrow.RowSource
	// (store_rows.go); tables get bloom filters for those point reads.
	// Set with region Config.SKUCache.
	LazyRows bool
	// PrefetchRows (with LazyRows): callers may read a SKU's rows ahead of
	// the node (Store.PrefetchRows, store_rows_prefetch.go), so that the
	// node's read of a SKU it does not hold finds them in memory. Set with
	// region Config.SKUPrefetch.
	PrefetchRows bool
	// LazyHolds: Load leaves holds and idempotency keys (and their
	// indexes) in Pebble, counting only the x/ index, and the node reads
	// them through the store's escrow.HoldSource (store_holds.go). Set
	// with region Config.HoldCache.
	LazyHolds bool
	// NoEvents keeps no event log: Persist.Events are dropped. For
	// benchmarks comparing the cost of the log, and stores of tools.
	NoEvents bool
	// RetainTerminal keeps holds the node retires (Persist.DeletedHolds)
	// in the store for listing; PruneEnded drops them after the retention
	// window. Load then skips terminal holds that ended MemRetain or more
	// ago (the node would retire them at once). false: a retired hold is
	// deleted with its batch.
	RetainTerminal bool
	MemRetain      time.Duration
	// WAL is the write-ahead log: WALOwn ("", the default), the store's
	// own log with pebble's disabled (store_wal.go), or WALPebble. Either
	// mode replays the own log's files it finds at open, so a store can
	// move between them.
	WAL string
	// WALFileBytes is the size of the own log's files; 0: 16 MiB on the
	// real filesystem, 256 KiB on another vfs.FS (the memory filesystems
	// of tests copy a file on every sync).
	WALFileBytes int64

	// walBugs are planted bugs of the own log (this package's tests only).
	walBugs walBugs
	// walForceBytes replaces the live size of the own log that forces a
	// pebble flush (this package's tests only; 0: walForceFlushBytes).
	walForceBytes int64
	// RowsInMemtable applies every batch's rows to pebble's memtable, as
	// builds before the overlay did (store_rowlog.go), instead of keeping
	// them in the overlay until a row checkpoint (the own log only). For
	// benchmarks and tests comparing the two; a store may move between
	// them.
	RowsInMemtable bool
	// rowOverlayMax replaces rowOverlayMaxRows (this package's tests
	// only; 0: the constant).
	rowOverlayMax int
	// rowCkInlineMax replaces rowCkInlineMaxRows (this package's tests
	// only; 0: the constant; < 0: every checkpoint ingests a table).
	rowCkInlineMax int
	// rowCkHook, if set, is called by a row checkpoint's background part
	// at each stage ("built": table written and log durable up to C0,
	// not ingested; "ingested": rows in pebble and still in the overlay)
	// on its goroutine (this package's tests only).
	rowCkHook func(stage string)
	// walEarlyBytes replaces the smallest synced batch whose write and
	// fdatasync start before its memtable apply (this package's tests
	// only; 0: walEarlySyncBytes).
	walEarlyBytes int
}

// Pebble settings of a store whose StoreOptions leave them zero.
const (
	defaultMemTableBytes         = 64 << 20
	defaultL0CompactionThreshold = 8
	defaultL0StopWritesThreshold = 32
)

// OpenStore opens (creating if needed) the store of opts.Region in dir. It
// refuses a store of another region or of an unknown format version, and a
// store whose indexes are corrupt.
func OpenStore(dir string, opts StoreOptions) (*Store, error) {
	if err := escrow.ValidRegion(opts.Region); err != nil {
		return nil, fmt.Errorf("region store: %w", err)
	}
	if opts.WAL == "" {
		opts.WAL = testDefaultWAL
	}
	if err := ValidWAL(opts.WAL); err != nil {
		return nil, fmt.Errorf("region store: %w", err)
	}
	s := &Store{dir: dir, opts: opts, fs: opts.FS, region: opts.Region, log: opts.Logger, walBugs: opts.walBugs}
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
	if !opts.NoEvents {
		cluster := opts.Cluster
		if cluster == "" {
			cluster = "holdfast"
		}
		s.events = newEventLog(s, cluster)
	}
	if opts.PrefetchRows && opts.LazyRows {
		s.prefetch = newRowPrefetch()
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// open opens pebble and forgets the in-memory sequences of own rows (Load,
// or the first Apply, rebuilds them). Callers hold applyMu (or own s
// exclusively).
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
		if s.opts.LazyRows || s.opts.LazyHolds {
			// The rows (holds) are read on demand: the memory the node
			// no longer spends on cold SKUs (holds) goes to the blocks
			// they come from (index blocks first).
			cache = lazyRowsCacheBytes
		}
	}
	pfs := s.fs
	if testIngestCopy {
		pfs = copyFS{s.fs}
	}
	po := &pebble.Options{
		FS:                    pfs,
		Logger:                plog,
		CacheSize:             cache,
		MemTableSize:          cmp.Or(s.opts.MemTableBytes, defaultMemTableBytes),
		L0CompactionThreshold: cmp.Or(s.opts.L0CompactionThreshold, defaultL0CompactionThreshold),
		L0StopWritesThreshold: cmp.Or(s.opts.L0StopWritesThreshold, defaultL0StopWritesThreshold),
		FormatMajorVersion:    pebble.FormatNewest,
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				s.log.Warn("pebble background error", "err", err)
				s.statsMu.Lock()
				s.stats.BackgroundErrors++
				s.statsMu.Unlock()
			},
		},
	}
	if s.opts.LazyRows || s.opts.LazyHolds {
		// Whole-key bloom filters: validate's point reads of own rows not
		// seen since start (store_rows.go), and the hold source's reads of
		// a new hold's id and key, which are almost never there
		// (store_holds.go), skip tables without them.
		po.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	}
	if !s.opts.ColumnarBlocks {
		po.Experimental.EnableColumnarBlocks = func() bool { return false }
	}
	if !s.opts.MixedTables {
		po.Experimental.SpanPolicyFunc = prefixSpans
	}
	po.DisableWAL = s.opts.WAL == WALOwn
	// The own log drops its files as pebble's flushes reach sstables.
	flushes := &walFlushes{}
	if po.DisableWAL {
		po.EventListener.FlushEnd = flushes.flushEnd
		po.EventListener.FlushBegin = flushes.flushBegin
	}
	db, err := openPebble(s.dir, po)
	if err != nil {
		return fmt.Errorf("region store: open pebble in %s: %w", s.dir, err)
	}
	s.db = db
	// Row checkpoints write their tables as pebble would (store_rowlog.go).
	wo := po.Clone()
	wo.EnsureDefaults()
	s.tableOpts = wo.MakeWriterOptions(0, db.TableFormat())
	err = removeRowCkTemps(s.fs, s.dir)
	if err == nil {
		err = s.openWAL(gen, flushes)
	}
	if err == nil {
		err = s.initLocked()
	}
	if err == nil {
		err = s.openOutbox()
	}
	if err != nil {
		s.closeWAL()
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

// testIngestCopy makes pebble copy a row checkpoint's table at its ingest
// instead of linking it (this package's tests): the crashable MemFS's Link
// read-locks its clone lock twice, and deadlocks when a CrashClone of a
// test comes between the two.
var testIngestCopy bool

// copyFS is a filesystem without hard links: pebble's ingest copies.
type copyFS struct{ vfs.FS }

func (copyFS) Link(oldname, newname string) error {
	return fmt.Errorf("link %s: hard links refused (copied instead)", newname)
}

func openPebble(dir string, po *pebble.Options) (db *pebble.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble panicked during open: %v", r)
		}
	}()
	return pebble.Open(dir, po)
}

// initLocked checks or writes the meta keys, upgrading an earlier format.
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
		// m/rowpos may be there: recovery records it (store_rowlog.go).
		ok := it.First()
		if ok && string(it.Key()) == string(keyMetaRowPos) {
			ok = it.Next()
		}
		if ok {
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
		if err := s.applyBatch(b, true); err != nil {
			return fmt.Errorf("region store: initialise %s: %w", s.dir, err)
		}
		if err := s.failed(); err != nil {
			return err
		}
		s.log.Info("created store", "region", s.region, "format", storeFormatVersion)
		ver = []byte{storeFormatVersion}
	}
	// Formats 1 to 3 are upgraded below, once the store is known to be
	// this region's.
	if len(ver) != 1 || ver[0] < 1 || ver[0] > storeFormatVersion {
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
	if ver[0] == 1 {
		if err := s.upgradeFrom1(); err != nil {
			return err
		}
		ver[0] = 2
	}
	if ver[0] == 2 {
		if err := s.upgradeFrom2(); err != nil {
			return err
		}
		ver[0] = 3
	}
	if ver[0] == 3 {
		if err := s.upgradeFrom3(); err != nil {
			return err
		}
	}
	s.seq = beU64(seqv)
	s.resetSeqIndexLocked()
	return nil
}

// scanExpiryIndexes reads the x/ and j/ indexes into maps (hold id or
// idempotency key → timeOrd of its entry) for Load to cross-check; they
// live only while Load runs.
func (s *Store) scanExpiryIndexes() (heldExp, idemExp map[string]uint64, err error) {
	heldExp = make(map[string]uint64)
	idemExp = make(map[string]uint64)
	err = s.scan(pfxExpiry, func(k, _ []byte) error {
		ord, id, ok := splitOrdKey(k)
		if !ok {
			return corrupt(k, "expiry index key too short")
		}
		if _, dup := heldExp[id]; dup {
			return corrupt(k, "second expiry index entry for hold %s", id)
		}
		heldExp[id] = ord
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	err = s.scan(pfxIdemX, func(k, _ []byte) error {
		ord, key, ok := splitOrdKey(k)
		if !ok {
			return corrupt(k, "idempotency expiry key too short")
		}
		if _, dup := idemExp[key]; dup {
			return corrupt(k, "second expiry entry for idempotency key %q", key)
		}
		idemExp[key] = ord
		return nil
	})
	return heldExp, idemExp, err
}

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
	if s.wal != nil {
		ov, last := s.ov, s.wal.lastPos()
		s.closeWAL()
		if s.failed() == nil {
			// Everything applied reaches sstables, so the next open replays
			// nothing (a failed store's memtable is dropped instead): the
			// overlay's rows too, with m/rowpos at the last record.
			if err := s.settleOverlay(ov, last); err != nil {
				s.log.Warn("writing the row overlay before close (its own log is replayed at the next open)", "err", err)
			} else if err := s.db.Flush(); err != nil {
				s.log.Warn("flushing the store before close (its own log is replayed at the next open)", "err", err)
			}
		}
	}
	db := s.db
	s.db = nil
	if s.events != nil {
		s.events.wake() // waiting readers see the store closed (or reopened)
	}
	// Reports from this generation's background work no longer matter.
	s.gen.Add(1)
	if s.testBeforePebbleClose != nil {
		s.testBeforePebbleClose()
	}
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

// openStore opens the Pebble store of cfg.
func openStore(cfg Config) (Storage, error) {
	return OpenStore(cfg.DataDir, StoreOptions{Region: cfg.Name, FS: cfg.FS, NoSync: cfg.NoSync, Logger: cfg.Logger,
		Cluster: cfg.Cluster, NoEvents: cfg.Events.Disabled,
		RetainTerminal: cfg.HoldRetain > 0, MemRetain: cfg.memRetain(), LazyRows: cfg.SKUCache > 0, LazyHolds: cfg.HoldCache > 0,
		PrefetchRows: cfg.skuPrefetch() != "", WAL: cfg.WAL})
}

// reopener is implemented by storages that can drop a failed handle and
// reopen from what is durable (Store does).
type reopener interface{ Reopen() error }
