package region

// The store's own write-ahead log (StoreOptions.WAL = WALOwn): pebble runs
// with DisableWAL, and every batch the store writes is first appended here
// as one record, then applied to pebble's memtable; Wait writes what is
// buffered and fdatasyncs it (one fdatasync covers every record written
// before it: group commit) on the waiting goroutine itself, instead of
// handing off to pebble's flush loop and being woken by it.
//
// Record: crc32c(4) | length(4) | file number(8) | position(8) | payload,
// little endian; the CRC covers everything after itself. The payload is
// the batch's Repr. Positions are consecutive over the whole log; each
// batch also sets keyMetaWALPos to its position, so pebble knows the last
// position that reached it. A record whose file number is not its file's
// (stale bytes of a recycled file), whose CRC fails (torn, or zero fill)
// or whose length is 0 ends its file.
//
// Recovery (open): read keyMetaWALPos P from pebble (what reached
// sstables: the memtables died with the process) and keyMetaRowPos R (the
// last position whose rows reached them: the memtable applies skip rows,
// store_rowlog.go), replay every record after min(P, R) in file order, checking that positions continue, then flush
// pebble so that everything replayed is in sstables; the old files are
// then obsolete. A gap (a record after P that does not continue the
// previous one) means synced records were lost: the store refuses to open.
//
// Truncation: records go to files of walFileBytes. Pebble flushes its
// memtables when they fill, as it would with its own WAL; each flush's
// FlushEnd event (after the new sstables are in the manifest) carries the
// largest sequence number it wrote, and a background goroutine then drops
// the full files whose last record's batch (its pebble sequence numbers,
// noted when it was applied) is at or below it and whose rows a flushed
// row checkpoint covers (store_rowlog.go), keeping walRecycleFiles of
// them for recycling. Memtables hold consecutive sequence numbers and are
// flushed oldest first, so every batch at or below a flushed sequence
// number is in sstables. When the live files still exceed flushBytes (4
// files) the goroutine forces a flush (db.Flush). Forcing flushes only
// past twice the memtable (no forced flush in a steady log) took away a
// quarter of the time spent flushing, during which fdatasyncs are slower,
// but cost more CPU per hold and a higher p999 in the engine
// (docs/benchmarks.md, "The own write-ahead log's tail"). The next file is
// prepared ahead in the background (a recycled file renamed, or a new one
// zero-filled, and the directory synced), so that its fdatasyncs overwrite
// allocated blocks instead of growing the file.

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// WAL modes (StoreOptions.WAL, region Config.WAL).
const (
	WALPebble = "pebble" // pebble's own WAL
	WALOwn    = "own"    // the store's write-ahead log (store_wal.go; the default)
)

// ValidWAL checks a WAL mode ("" is WALOwn).
func ValidWAL(mode string) error {
	switch mode {
	case "", WALPebble, WALOwn:
		return nil
	}
	return fmt.Errorf("unknown wal mode %q (want %q or %q)", mode, WALPebble, WALOwn)
}

const (
	walDirName      = "holdfast-wal"
	walFileSuffix   = ".hwal"
	walHeaderLen    = 24
	walMaxRecord    = 256 << 20 // a batch larger than this is refused (and unreadable)
	walFileBytesDef = 16 << 20
	// walFlushFiles live files force a flush (walForceFlushBytes).
	walFlushFiles = 4
	// walRecycleFiles dropped files (at least; one more than a memtable's
	// worth of files: walRecycle) are kept to be renamed into the next
	// ones: a truncation after a flush of a full 64 MiB memtable drops two
	// or three 16 MiB files, so keeping four means a steady log never
	// zero-fills a file. A zero-fill writes
	// and syncs walFileBytes on the disk the commits' fdatasyncs wait on:
	// keeping one file, two new files in three were zero-filled and the
	// engine's p999 was 1.6–1.9× higher (docs/benchmarks.md, "The own
	// write-ahead log on a quiet machine").
	walRecycleFiles = walFlushFiles
	walFileBytesMem = 256 << 10
	walZeroChunk    = 1 << 20 // zero-fill write, synced on its own
)

// testDefaultWAL is the mode of stores whose options leave WAL empty:
// WALOwn, except in this package's tests run with HOLDFAST_TEST_WAL=pebble
// (export_test.go), which run every store test against pebble's log.
var testDefaultWAL = WALOwn

var keyMetaWALPos = []byte("m/walpos")

var walCRC = crc32.MakeTable(crc32.Castagnoli)

// walSeg is buffered records of one file.
type walSeg struct {
	num  uint64
	data []byte
	last uint64 // position of the last record in data
}

// walFile is a live log file.
type walFile struct {
	num  uint64
	last uint64 // last position written to it (final once it is full)
}

// walFileEnd is the pebble sequence number of a full file's last batch.
type walFileEnd struct {
	num uint64
	seq uint64
}

// walRowCk is a completed row checkpoint: every row of the records up to
// c0 is in pebble once its m/rowpos batch (sequence number seq) is flushed.
type walRowCk struct{ c0, seq uint64 }

// walFlushes carries pebble's flushes to the own log; its listener is
// installed when pebble opens, before the log starts.
type walFlushes struct {
	seq atomic.Uint64 // the largest sequence number flushed to sstables
	w   atomic.Pointer[ownWAL]
}

// flushEnd is pebble's FlushEnd listener. A flush of ingested tables is
// skipped (it carries the ingestion's sequence number; the memtables
// before it were flushed, and reported, first).
func (f *walFlushes) flushEnd(info pebble.FlushInfo) {
	if info.Err != nil || info.Ingest {
		return
	}
	var top uint64
	for _, t := range info.Output {
		top = max(top, uint64(t.LargestSeqNum))
	}
	for {
		cur := f.seq.Load()
		if top <= cur || f.seq.CompareAndSwap(cur, top) {
			break
		}
	}
	if w := f.w.Load(); w != nil {
		w.kickBackground() // truncate
	}
}

// flushBegin is pebble's FlushBegin listener (rows out of the memtable
// only): it writes and fdatasyncs everything the log buffered before the
// flush writes anything, so that no batch reaches sstables without its
// rows (in the overlay) while its record may still be lost. Pebble calls
// it holding its mutex, once the flush's memtables are chosen: every
// batch in them was appended to the log before. No lock taken here is
// ever held while waiting for pebble (append waits for memMu without mu).
func (f *walFlushes) flushBegin(info pebble.FlushInfo) {
	if info.Ingest {
		return
	}
	if w := f.w.Load(); w != nil && w.overlay && (w.bugs == nil || !w.bugs.noFlushSync) {
		w.syncMu.Lock()
		defer w.syncMu.Unlock()
		if w.err == nil {
			_ = w.syncBufferedLocked() // a failure is sticky and fails the store
		}
	}
}

// walForceFlushBytes is the size of live files that forces a flush:
// walFlushFiles. Waiting for pebble's own flushes of full memtables
// instead (twice the memtable) measured more CPU per hold and a higher
// p999 in the engine (docs/benchmarks.md, "The own write-ahead log's
// tail"); memtables flushed at about half their size seem cheaper to
// insert into.
func walForceFlushBytes(fileBytes int64) int64 { return walFlushFiles * fileBytes }

// walRecycle is the number of dropped files kept for recycling: a flush of
// a full memtable drops about a memtable's worth of files.
func walRecycle(fileBytes int64, memTableBytes uint64) int {
	return max(walRecycleFiles, int(int64(memTableBytes)/fileBytes)+1)
}

type ownWAL struct {
	fs         vfs.FS
	dir        string
	db         *pebble.DB
	log        *slog.Logger
	noSync     bool
	onFatal    func(error)
	fileBytes  int64
	flushBytes int64
	recycle    int // dropped files kept for recycling
	bugs       *walBugs
	flushes    *walFlushes

	// mu orders appends: positions and the buffer.
	mu       sync.Mutex
	next     uint64 // position of the next record
	bufNum   uint64 // file the next record goes to
	bufSize  int64  // bytes of file bufNum, written and buffered
	segs     []walSeg
	posBuf   []byte   // scratch for keyMetaWALPos
	spareBuf [][]byte // recycled segment buffers

	// memMu orders the memtable applies: memNext is the position of the
	// next record to apply (memCond waits for it).
	memMu      sync.Mutex
	memCond    *sync.Cond
	memNext    uint64
	appliedNum uint64 // file of the last record applied to the memtable
	appliedSeq uint64 // its batch's last pebble sequence number

	// Rows out of the memtable (store_rowlog.go): overlay is set when the
	// memtable applies skip rows; rotated asks the committer for a row
	// checkpoint (a new file was begun).
	overlay bool
	rotated atomic.Bool
	ckDone  atomic.Uint64 // row checkpoints completed
	ckRows  atomic.Uint64 // rows they wrote
	// ckOverlaps counts checkpoint tables whose ingest overlapped the
	// memtable (pebble flushed it first): none expected.
	ckOverlaps atomic.Uint64
	ovRows     func() int // the overlay's rows, for stats

	// syncMu is held by the goroutine writing and syncing (the leader).
	syncMu  sync.Mutex
	cur     vfs.File
	curNum  uint64
	err     error // sticky: a failed write or sync ends this log
	durable atomic.Uint64

	// prepMu serialises preparing the next file with rotating to it.
	prepMu sync.Mutex
	// filesMu guards files and the spare.
	filesMu  sync.Mutex
	files    []walFile    // live files, oldest first (the last is cur)
	ends     []walFileEnd // full files' last sequence numbers, oldest first
	rowCks   []walRowCk   // completed row checkpoints not yet known flushed
	rowSafe  uint64       // every row of the records up to it is in sstables
	obsolete []uint64     // files that may be recycled
	spare    vfs.File     // prepared file spareNum (renamed or zero-filled, dir synced)
	spareNum uint64
	kick     chan struct{}
	stop     chan struct{}
	bgDone   chan struct{}
	// syncKick wakes the early syncer (earlySyncer): a large synced
	// batch's write and fdatasync start while its memtable apply runs.
	syncKick chan struct{}
	syncDone chan struct{}
	early    atomic.Uint64
	truncs   atomic.Uint64
	forced   atomic.Uint64
	deferred atomic.Uint64 // forced flushes put off while pebble flushed
	syncs    atomic.Uint64
	// syncCalls counts the log's fdatasyncs begun, failed ones too (a
	// failed one is never retried: tests check it with this).
	syncCalls atomic.Uint64
	bytes     atomic.Uint64
	syncNanos atomic.Int64
	// recycled and zeroFilled count how prepareFile readied files.
	recycled, zeroFilled atomic.Uint64
}

// walBugs are planted bugs of the own log (tests only).
type walBugs struct {
	// replayFromNext: recovery skips the first record after pebble's
	// position (replays from the wrong position).
	replayFromNext bool
	// noSync: Wait returns before the fdatasync (replying before the
	// log is durable).
	noSync bool
	// dropUnflushed: truncation drops full files without waiting for
	// pebble to flush their batches.
	dropUnflushed bool
	// ignoreRowCheckpoint: truncation drops full files whose batches
	// pebble flushed although their rows are only in the overlay (no
	// flushed row checkpoint covers them).
	ignoreRowCheckpoint bool
	// replayFromWALPos: recovery replays from m/walpos, ignoring
	// m/rowpos (the rows of the records between them are lost).
	replayFromWALPos bool
	// noFlushSync: pebble's flushes do not wait for the log to be
	// durable (a batch may reach sstables without its rows).
	noFlushSync bool
	// forceDuringFlush: truncation forces a flush while pebble's own
	// flush is queued or running (it waits for that flush).
	forceDuringFlush bool
	// ingestBeforeDurable: a row checkpoint ingests its table without
	// making the log durable up to its C0 first (a row may reach pebble
	// while its batch's record can still be lost).
	ingestBeforeDurable bool
	// dropActiveGen: a row checkpoint, dropping the overlay's frozen
	// generation after its ingest, drops the active one too (the rows
	// changed since its C0: their newer value is lost to readers).
	dropActiveGen bool
	// skipFrozenGen: readers of the overlay consult its active generation
	// only (the rows of a checkpoint in progress, not yet in pebble, are
	// missed).
	skipFrozenGen bool
	// rowPosAtStart: a row checkpoint sets m/rowpos = C0 when it starts,
	// before its rows are in pebble.
	rowPosAtStart bool
	// closeSkipsBufferSync: the log's close drops what it buffered instead
	// of writing and syncing it before it detaches pebble's FlushBegin
	// listener (a flush pebble begins after may write batches whose
	// records are lost).
	closeSkipsBufferSync bool
}

func walFileName(num uint64) string { return fmt.Sprintf("%016d%s", num, walFileSuffix) }

func parseWALFileName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, walFileSuffix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}

// listWAL returns the numbers of the log files in dir, ascending ([] when
// dir does not exist).
func listWAL(fs vfs.FS, dir string) ([]uint64, error) {
	names, err := fs.List(dir)
	if err != nil {
		if _, serr := fs.Stat(dir); errors.Is(serr, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("region store: list wal %s: %w", dir, err)
	}
	var nums []uint64
	for _, n := range names {
		if num, ok := parseWALFileName(n); ok {
			nums = append(nums, num)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

// walRecord is one record read back.
type walRecord struct {
	pos  uint64
	data []byte
}

// readWALFile reads the valid records of file num, stopping at the first
// one that is torn, corrupt, stale (another file number) or zero.
func readWALFile(fs vfs.FS, dir string, num uint64) ([]walRecord, error) {
	f, err := fs.Open(fs.PathJoin(dir, walFileName(num)))
	if err != nil {
		return nil, fmt.Errorf("region store: open wal file %d: %w", num, err)
	}
	data, err := io.ReadAll(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("region store: read wal file %d: %w", num, err)
	}
	var recs []walRecord
	for len(data) >= walHeaderLen {
		n := binary.LittleEndian.Uint32(data[4:8])
		if n == 0 || n > walMaxRecord || int(n) > len(data)-walHeaderLen {
			break
		}
		end := walHeaderLen + int(n)
		if crc32.Checksum(data[4:end], walCRC) != binary.LittleEndian.Uint32(data[0:4]) {
			break
		}
		if binary.LittleEndian.Uint64(data[8:16]) != num {
			break // stale bytes of a recycled file
		}
		recs = append(recs, walRecord{pos: binary.LittleEndian.Uint64(data[16:24]), data: data[walHeaderLen:end]})
		data = data[end:]
	}
	return recs, nil
}

// appendWALRecord appends one record to dst.
func appendWALRecord(dst []byte, num, pos uint64, payload []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint64(dst, num)
	dst = binary.LittleEndian.AppendUint64(dst, pos)
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[start:], crc32.Checksum(dst[start+4:], walCRC))
	return dst
}

// recoverWAL replays the own log of the store in dir into db (opened
// without pebble's WAL when own is set) and flushes db; it returns the
// numbers of the files replayed (obsolete now) and the last position.
// Replay starts after min(m/walpos, m/rowpos): the rows of the records
// after m/rowpos may be missing from pebble (store_rowlog.go). With
// rowsOverlay, m/rowpos is then set to the last position (everything is
// in sstables after the flush); without it, m/rowpos is deleted (rows go
// to the memtable: m/walpos alone says what pebble has).
func recoverWAL(fs vfs.FS, dir string, db *pebble.DB, bugs *walBugs, rowsOverlay bool) (files []uint64, last uint64, err error) {
	files, err = listWAL(fs, dir)
	if err != nil {
		return nil, 0, err
	}
	walPos, err := readPosKey(db, keyMetaWALPos)
	if err != nil {
		return nil, 0, err
	}
	rowPos, hasRowPos, err := readPosKeyOK(db, keyMetaRowPos)
	if err != nil {
		return nil, 0, err
	}
	from := walPos // every record after it is replayed
	if hasRowPos && rowPos < from && (bugs == nil || !bugs.replayFromWALPos) {
		from = rowPos
	}
	last = from
	replayed := 0
	for _, num := range files {
		recs, err := readWALFile(fs, dir, num)
		if err != nil {
			return nil, 0, err
		}
		for _, r := range recs {
			if r.pos <= from || (bugs != nil && bugs.replayFromNext && r.pos == from+1) {
				continue
			}
			if r.pos != last+1 {
				return nil, 0, fmt.Errorf("region store: wal file %d: record at position %d follows %d: synced records are missing", num, r.pos, last)
			}
			b := db.NewBatch()
			if err := b.SetRepr(append([]byte(nil), r.data...)); err != nil {
				return nil, 0, fmt.Errorf("region store: wal file %d: record %d: %w", num, r.pos, err)
			}
			err := db.Apply(b, pebble.NoSync)
			_ = b.Close()
			if err != nil {
				return nil, 0, fmt.Errorf("region store: replay wal record %d: %w", r.pos, err)
			}
			last = r.pos
			replayed++
		}
	}
	// pebble may hold batches whose records were never durable (applied,
	// then flushed before their fdatasync): positions go on after them.
	last = max(last, walPos)
	dirty := replayed > 0
	if rowsOverlay && (!hasRowPos || rowPos != last) {
		b := db.NewBatch()
		_ = b.Set(keyMetaRowPos, appendU64(nil, last), nil)
		err = db.Apply(b, pebble.NoSync)
		_ = b.Close()
		dirty = true
	} else if !rowsOverlay && hasRowPos {
		b := db.NewBatch()
		_ = b.Delete(keyMetaRowPos, nil)
		err = db.Apply(b, pebble.NoSync)
		_ = b.Close()
		dirty = true
	}
	if err != nil {
		return nil, 0, fmt.Errorf("region store: record %s: %w", keyMetaRowPos, err)
	}
	if dirty {
		// Everything replayed reaches sstables before anything new is
		// written: the files can go, and a torn tail can never be
		// followed by new records in a later recovery.
		if err := db.Flush(); err != nil {
			return nil, 0, fmt.Errorf("region store: flush replayed wal: %w", err)
		}
	}
	return files, last, nil
}

func readWALPos(db *pebble.DB) (uint64, error) { return readPosKey(db, keyMetaWALPos) }

func readPosKey(db *pebble.DB, key []byte) (uint64, error) {
	v, _, err := readPosKeyOK(db, key)
	return v, err
}

func readPosKeyOK(db *pebble.DB, key []byte) (uint64, bool, error) {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("region store: read %s: %w", key, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, corrupt(key, "not 8 bytes")
	}
	return beU64(v), true, nil
}

// removeWAL deletes the log files nums (after a recovery that flushed them
// into pebble, in pebble mode).
func removeWAL(fs vfs.FS, dir string, nums []uint64) error {
	for _, n := range nums {
		if err := fs.Remove(fs.PathJoin(dir, walFileName(n))); err != nil {
			return fmt.Errorf("region store: remove wal file %d: %w", n, err)
		}
	}
	if len(nums) > 0 {
		return syncDir(fs, dir)
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("region store: open dir %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("region store: sync dir %s: %w", dir, err)
	}
	return nil
}

// openOwnWAL starts a log after recovery: old are the replayed files
// (recycled or removed), last the last position.
func openOwnWAL(fs vfs.FS, dir string, db *pebble.DB, old []uint64, last uint64, o walConfig) (*ownWAL, error) {
	w := &ownWAL{fs: fs, dir: dir, db: db, log: o.log, noSync: o.noSync, onFatal: o.onFatal,
		fileBytes: o.fileBytes, flushBytes: o.flushBytes, recycle: max(o.recycle, walRecycleFiles), bugs: o.bugs, flushes: o.flushes,
		next: last + 1, kick: make(chan struct{}, 1), stop: make(chan struct{}), bgDone: make(chan struct{}),
		syncKick: make(chan struct{}, 1), syncDone: make(chan struct{})}
	w.durable.Store(last)
	w.memCond = sync.NewCond(&w.memMu)
	w.memNext = last + 1
	w.rowSafe = last // recovery flushed every record up to last
	w.overlay = o.overlay
	w.ovRows = o.ovRows
	num := uint64(1)
	if len(old) > 0 {
		num = old[len(old)-1] + 1
	}
	// The first file too is one whose fdatasyncs do not grow it: the
	// newest replayed file renamed, or a new one zero-filled.
	var from uint64
	if n := len(old); n > 0 {
		from, old = old[n-1], old[:n-1]
	}
	f, err := w.prepareFile(num, from)
	if err != nil {
		return nil, err
	}
	w.cur, w.curNum, w.bufNum = f, num, num
	w.files = []walFile{{num: num, last: last}}
	w.obsolete = old
	o.flushes.w.Store(w)
	go w.background()
	go w.earlySyncer()
	return w, nil
}

type walConfig struct {
	log                   *slog.Logger
	noSync                bool
	onFatal               func(error)
	fileBytes, flushBytes int64
	recycle               int // dropped files kept (at least walRecycleFiles)
	bugs                  *walBugs
	// flushes is fed by pebble's FlushEnd listener (required).
	flushes *walFlushes
	// overlay: memtable applies skip rows (store_rowlog.go); ovRows
	// counts the overlay's rows.
	overlay bool
	ovRows  func() int
}

// create makes file num (a fresh, growing one) and syncs the directory.
func (w *ownWAL) create(num uint64) (vfs.File, error) {
	f, err := w.fs.Create(w.fs.PathJoin(w.dir, walFileName(num)), vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("region store: create wal file %d: %w", num, err)
	}
	if err := syncDir(w.fs, w.dir); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// memApply applies a record's batch to the memtable (turning pebble
// panics into errors): b is the record at pos, rows its leading row
// entries, which the overlay takes instead of the memtable
// (store_rowlog.go). It returns the batch it applied.
type memApply func(b *pebble.Batch, pos uint64, rows rowSpan) (*pebble.Batch, error)

// append adds b as the next record and applies it to the memtable with
// apply. It returns b's position and the last pebble sequence number of
// the batch applied. b gets keyMetaWALPos set first. With early, the
// record's write and fdatasync start on the early syncer before the apply
// (earlySync).
func (w *ownWAL) append(b *pebble.Batch, apply memApply, early bool, rows rowSpan) (uint64, uint64, error) {
	w.mu.Lock()
	pos, num, err := w.buffer(b)
	if err != nil {
		w.mu.Unlock()
		return 0, 0, err
	}
	if early {
		w.kickSync()
	}
	w.mu.Unlock()
	// Visible before durable, like pebble's own publish-then-sync: readers
	// are bounded by the store's durable sequence. The memtable takes the
	// records in log order (memNext), while a leader may take the buffer
	// (and fdatasync it) during a Pebble write stall here. mu is not held
	// while waiting: pebble's FlushBegin, holding pebble's mutex, syncs
	// the buffer (walFlushes.flushBegin), which takes mu.
	w.memMu.Lock()
	for w.memNext != pos {
		w.memCond.Wait()
	}
	defer func() {
		w.memNext = pos + 1
		w.memCond.Broadcast()
		w.memMu.Unlock()
	}()
	ab, err := apply(b, pos, rows)
	if err != nil {
		return 0, 0, err
	}
	// The first record of a file ends the previous one: its last batch's
	// sequence number tells truncation when pebble has flushed it.
	if w.appliedNum != 0 && num != w.appliedNum {
		w.filesMu.Lock()
		w.ends = append(w.ends, walFileEnd{num: w.appliedNum, seq: w.appliedSeq})
		w.filesMu.Unlock()
	}
	w.appliedNum = num
	w.appliedSeq = uint64(ab.SeqNum()) + uint64(ab.Count()) - 1
	return pos, w.appliedSeq, nil
}

// lastPos is the position of the last record appended.
func (w *ownWAL) lastPos() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next - 1
}

// rowCheckpointed notes a row checkpoint from c0 whose m/rowpos batch has
// sequence number seq: once pebble flushed it, files up to c0 may go.
func (w *ownWAL) rowCheckpointed(c0, seq uint64) {
	w.ckDone.Add(1)
	w.filesMu.Lock()
	w.rowCks = append(w.rowCks, walRowCk{c0: c0, seq: seq})
	w.filesMu.Unlock()
}

// Early sync: a synced batch of a cohort (hundreds of holds) spends a
// millisecond or more in its memtable apply (more with rows spread over a
// large catalogue), and the fdatasync it waits for would start only after
// it. The log's record is complete once buffered, and a record is
// replayed from the log whatever the memtable holds, so its write and
// fdatasync may run while the apply does: the early syncer takes the
// buffer as soon as such a batch is in it. The reply still waits for
// both (the batch's Wait follows the apply on the committer). A small
// batch does not use it: its apply is shorter than waking a goroutine.

// walEarlySyncBytes is the smallest synced batch whose write and
// fdatasync start before its memtable apply.
const walEarlySyncBytes = 8 << 10

func (w *ownWAL) kickSync() {
	select {
	case w.syncKick <- struct{}{}:
	default:
	}
}

// earlySyncer writes and syncs the buffer when a large synced batch is
// appended (kickSync).
func (w *ownWAL) earlySyncer() {
	defer close(w.syncDone)
	for {
		select {
		case <-w.stop:
			return
		case <-w.syncKick:
		}
		w.syncMu.Lock()
		if w.err == nil {
			w.early.Add(1)
			_ = w.syncBufferedLocked() // a failure is sticky: its waiters see it
		}
		w.syncMu.Unlock()
	}
}

// buffer appends b to the buffer as the next record and returns its
// position and file. Callers hold mu.
func (w *ownWAL) buffer(b *pebble.Batch) (uint64, uint64, error) {
	pos := w.next
	w.posBuf = appendU64(w.posBuf[:0], pos) // Set copies it
	if err := b.Set(keyMetaWALPos, w.posBuf, nil); err != nil {
		return 0, 0, fmt.Errorf("region store: stage wal position: %w", err)
	}
	repr := b.Repr()
	if len(repr) > walMaxRecord {
		return 0, 0, fmt.Errorf("region store: batch of %d bytes exceeds the wal's record limit", len(repr))
	}
	n := int64(walHeaderLen + len(repr))
	if w.bufSize > 0 && w.bufSize+n > w.fileBytes {
		w.bufNum++
		w.bufSize = 0
		w.rotated.Store(true) // a row checkpoint, for the files to go
	}
	if k := len(w.segs); k == 0 || w.segs[k-1].num != w.bufNum {
		var buf []byte
		if m := len(w.spareBuf); m > 0 {
			buf, w.spareBuf = w.spareBuf[m-1][:0], w.spareBuf[:m-1]
		}
		w.segs = append(w.segs, walSeg{num: w.bufNum, data: buf})
	}
	sg := &w.segs[len(w.segs)-1]
	sg.data = appendWALRecord(sg.data, w.bufNum, pos, repr)
	sg.last = pos
	if w.bufSize < w.fileBytes/2 && w.bufSize+n >= w.fileBytes/2 {
		w.kickBackground() // prepare the next file while this one fills
	}
	w.bufSize += n
	w.next++
	return pos, w.bufNum, nil
}

// waitDurable returns once position pos is durable (or written, with
// noSync), writing and syncing what is buffered if nobody else is.
func (w *ownWAL) waitDurable(pos uint64) error {
	if w.durable.Load() >= pos {
		return nil
	}
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.durable.Load() >= pos {
		return nil
	}
	return w.syncBufferedLocked()
}

// syncBufferedLocked writes and syncs everything buffered. Callers hold
// syncMu and checked w.err.
func (w *ownWAL) syncBufferedLocked() error {
	w.mu.Lock()
	segs := w.segs
	w.segs = nil
	w.mu.Unlock()
	err := w.writeSync(segs)
	w.mu.Lock()
	for _, sg := range segs {
		if cap(sg.data) <= 1<<20 && len(w.spareBuf) < 4 {
			w.spareBuf = append(w.spareBuf, sg.data[:0])
		}
	}
	w.mu.Unlock()
	if err != nil {
		// Never retried: after a failed fdatasync the page cache may say
		// anything; the generation is over.
		w.err = fmt.Errorf("%w: own wal: %w", ErrStoreFailed, err)
		w.onFatal(w.err)
		return w.err
	}
	return nil
}

// writeSync writes segs in order and fdatasyncs; a full file is synced
// before the next one is written, so a later file's records imply the
// earlier files' tails.
func (w *ownWAL) writeSync(segs []walSeg) error {
	if len(segs) == 0 {
		return nil
	}
	start := time.Now()
	for _, sg := range segs {
		if sg.num != w.curNum {
			if err := w.sync(); err != nil {
				return err
			}
			if err := w.rotate(sg.num); err != nil {
				return err
			}
		}
		if _, err := w.cur.Write(sg.data); err != nil {
			return fmt.Errorf("write wal file %d: %w", w.curNum, err)
		}
		w.bytes.Add(uint64(len(sg.data)))
		w.filesMu.Lock()
		w.files[len(w.files)-1].last = sg.last
		w.filesMu.Unlock()
	}
	if w.bugs == nil || !w.bugs.noSync {
		if err := w.sync(); err != nil {
			return err
		}
	}
	w.durable.Store(segs[len(segs)-1].last)
	w.syncs.Add(1)
	w.syncNanos.Add(int64(time.Since(start)))
	return nil
}

func (w *ownWAL) sync() error {
	if w.noSync {
		return nil
	}
	w.syncCalls.Add(1)
	if err := w.cur.SyncData(); err != nil {
		return fmt.Errorf("fdatasync wal file %d: %w", w.curNum, err)
	}
	return nil
}

// rotate closes the current file and opens num: the prepared spare, or a
// new file when none is ready (prepMu keeps a prepare from renaming a file
// onto num meanwhile; a prepare in progress is waited for).
func (w *ownWAL) rotate(num uint64) error {
	if err := w.cur.Close(); err != nil {
		return fmt.Errorf("close wal file %d: %w", w.curNum, err)
	}
	w.cur = nil
	w.prepMu.Lock()
	defer w.prepMu.Unlock()
	w.filesMu.Lock()
	f := w.spare
	if f != nil && w.spareNum == num {
		w.spare = nil
	} else {
		f = nil
	}
	last := w.files[len(w.files)-1].last
	w.filesMu.Unlock()
	if f == nil {
		var err error
		if f, err = w.create(num); err != nil {
			return err
		}
	}
	w.cur, w.curNum = f, num
	w.filesMu.Lock()
	w.files = append(w.files, walFile{num: num, last: last})
	w.filesMu.Unlock()
	w.kickBackground() // truncate
	return nil
}

func (w *ownWAL) kickBackground() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// background prepares the next file and truncates the log.
func (w *ownWAL) background() {
	defer close(w.bgDone)
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		}
		if err := w.truncate(); err != nil {
			w.log.Warn("own wal: truncation failed (retried at the next rotation)", "err", err)
		}
		w.prepare()
	}
}

// truncate drops the full files whose batches pebble has flushed; when
// the live files still exceed flushBytes it forces a flush first.
func (w *ownWAL) truncate() error {
	live, rowsBlocked := w.dropFlushed()
	if live > w.flushBytes && !rowsBlocked && w.pebbleFlushQueued() {
		// Pebble holds an immutable memtable: its flush is scheduled or
		// running, and its FlushEnd calls this again. Forcing now would
		// stall every commit until that flush ends: db.Flush holds
		// pebble's commit mutex while it waits for room for a third
		// memtable (the queue's arenas reach MemTableStopWritesThreshold
		// memtables' worth), a quarter of a second at 1 M SKUs
		// (docs/benchmarks.md, "The forced-flush stall and the one-SKU
		// cost").
		w.deferred.Add(1)
		return w.dropObsolete(w.recycle)
	}
	if live > w.flushBytes && !rowsBlocked {
		// Pebble's flushes did not keep the log short (a memtable larger
		// than flushBytes assumed, or few writes per log byte): every
		// batch applied before Flush reaches sstables, and its FlushEnd
		// raises the flushed sequence number. Not when the oldest file
		// waits for a row checkpoint still in progress: a flush would
		// not let it go (and its FlushEnd would come back here).
		start := time.Now()
		if err := w.db.Flush(); err != nil {
			return fmt.Errorf("flush pebble: %w", err)
		}
		w.forced.Add(1)
		w.log.Debug("own wal: forced a pebble flush", "live_bytes", live, "limit_bytes", w.flushBytes, "took", time.Since(start))
		w.dropFlushed()
	}
	return w.dropObsolete(w.recycle)
}

// pebbleFlushQueued reports whether pebble has a memtable queued for a
// flush (or flushing) besides the mutable one.
func (w *ownWAL) pebbleFlushQueued() bool {
	if w.bugs != nil && w.bugs.forceDuringFlush {
		return false
	}
	return w.db.Metrics().MemTable.Count > 1
}

// dropFlushed moves the full files whose last batch pebble has flushed to
// obsolete and returns the bytes of the live files left.
func (w *ownWAL) dropFlushed() (live int64, rowsBlocked bool) {
	flushed := w.flushes.seq.Load()
	w.filesMu.Lock()
	defer w.filesMu.Unlock()
	for len(w.rowCks) > 0 && w.rowCks[0].seq <= flushed {
		w.rowSafe = max(w.rowSafe, w.rowCks[0].c0)
		w.rowCks = w.rowCks[1:]
	}
	dropped := false
	for len(w.files) > 1 {
		num := w.files[0].num
		for len(w.ends) > 0 && w.ends[0].num < num {
			w.ends = w.ends[1:]
		}
		// A full file whose end is not noted yet (its successor's first
		// batch is being applied) stays.
		if w.bugs == nil || !w.bugs.dropUnflushed {
			if len(w.ends) == 0 || w.ends[0].num != num || w.ends[0].seq > flushed {
				break
			}
		}
		// Rows of the file's records only in the overlay: a flushed row
		// checkpoint must cover them (a flush helps only if a completed
		// one does).
		if w.overlay && (w.bugs == nil || (!w.bugs.ignoreRowCheckpoint && !w.bugs.dropUnflushed)) && w.files[0].last > w.rowSafe {
			covered := false
			for _, ck := range w.rowCks {
				covered = covered || ck.c0 >= w.files[0].last
			}
			rowsBlocked = !covered
			break
		}
		w.obsolete = append(w.obsolete, num)
		w.files = w.files[1:]
		dropped = true
	}
	if dropped {
		w.truncs.Add(1)
	}
	return int64(len(w.files)) * w.fileBytes, rowsBlocked
}

// dropObsolete removes obsolete files beyond keep (kept for recycling).
func (w *ownWAL) dropObsolete(keep int) error {
	w.filesMu.Lock()
	var rm []uint64
	if len(w.obsolete) > keep {
		rm = slices.Clone(w.obsolete[:len(w.obsolete)-keep])
		w.obsolete = w.obsolete[len(w.obsolete)-keep:]
	}
	w.filesMu.Unlock()
	return removeWAL(w.fs, w.dir, rm)
}

// prepare readies file curNum+1: an obsolete file renamed (its stale
// records carry the old number) or a new one zero-filled to fileBytes, with
// the directory synced, so that writing it does not grow a file.
func (w *ownWAL) prepare() {
	w.prepMu.Lock()
	defer w.prepMu.Unlock()
	w.filesMu.Lock()
	num := w.files[len(w.files)-1].num + 1
	if w.spare != nil && w.spareNum == num {
		w.filesMu.Unlock()
		return
	}
	old := w.spare
	w.spare = nil
	var from uint64
	if n := len(w.obsolete); n > 0 {
		from = w.obsolete[n-1]
		w.obsolete = w.obsolete[:n-1]
	}
	w.filesMu.Unlock()
	if old != nil {
		_ = old.Close() // a spare for a number already passed: left to recovery's cleanup
	}
	f, err := w.prepareFile(num, from)
	if err != nil {
		w.log.Warn("own wal: preparing the next file failed (it is created when needed)", "file", num, "err", err)
		return
	}
	w.filesMu.Lock()
	w.spare, w.spareNum = f, num
	w.filesMu.Unlock()
}

func (w *ownWAL) prepareFile(num, from uint64) (vfs.File, error) {
	path := w.fs.PathJoin(w.dir, walFileName(num))
	if from != 0 {
		if err := w.fs.Rename(w.fs.PathJoin(w.dir, walFileName(from)), path); err != nil {
			return nil, fmt.Errorf("recycle wal file %d: %w", from, err)
		}
		if err := syncDir(w.fs, w.dir); err != nil {
			return nil, err
		}
		f, err := w.fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return nil, fmt.Errorf("open recycled wal file %d: %w", num, err)
		}
		w.recycled.Add(1)
		return f, nil
	}
	f, err := w.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("create wal file %d: %w", num, err)
	}
	zero := make([]byte, min(w.fileBytes, walZeroChunk))
	for n := int64(0); n < w.fileBytes && err == nil; n += int64(len(zero)) {
		if _, err = f.Write(zero); err == nil {
			// Each chunk goes to the disk on its own: one sync of the
			// whole file queues 16 MiB of writes ahead of the commits'
			// fdatasyncs (docs/benchmarks.md, "The own write-ahead
			// log's tail").
			err = f.SyncData()
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("zero-fill wal file %d: %w", num, err)
	}
	if err := syncDir(w.fs, w.dir); err != nil {
		return nil, err
	}
	// Reopened to write from the start over the zeros.
	f, err = w.fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("open wal file %d: %w", num, err)
	}
	w.zeroFilled.Add(1)
	return f, nil
}

// close stops the background work, writes and syncs what is buffered
// (unless the log failed: a record it holds was never acknowledged, but
// pebble may flush its batch) and closes the files.
func (w *ownWAL) close() {
	close(w.stop)
	<-w.bgDone
	<-w.syncDone
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	// A store closed after a failure that is not the log's (pebble's, a
	// row checkpoint's) drops its memtable, but a flush pebble began may
	// still write it to sstables, with batches whose records are only
	// buffered here: write and sync them first, so that pebble never
	// holds a batch the log lost. Then flushBegin has nothing to do.
	if w.err == nil && (w.bugs == nil || !w.bugs.closeSkipsBufferSync) {
		_ = w.syncBufferedLocked()
	}
	w.flushes.w.CompareAndSwap(w, nil)
	if w.cur != nil {
		_ = w.cur.Close()
		w.cur = nil
	}
	w.filesMu.Lock()
	if w.spare != nil {
		_ = w.spare.Close()
		w.spare = nil
	}
	w.filesMu.Unlock()
	if w.err == nil {
		w.err = ErrStoreClosed
	}
}

// WALStats are the own log's counters.
type WALStats struct {
	Syncs       uint64        // fdatasyncs (group commits)
	SyncTime    time.Duration // total time writing and syncing
	Truncations uint64        // truncations that dropped files (after pebble flushes)
	Forced      uint64        // flushes forced by the log (live files over the limit)
	Deferred    uint64        // forced flushes put off: pebble had a flush queued or running
	Files       int           // live files
	Bytes       uint64        // bytes written (records with headers)
	Recycled    uint64        // files prepared by renaming a dropped one
	ZeroFilled  uint64        // files prepared by writing zeros
	EarlySyncs  uint64        // writes and fdatasyncs started before a large batch's memtable apply
	// Rows out of the memtable (store_rowlog.go).
	RowCheckpoints uint64 // row checkpoints completed
	CheckpointRows uint64 // rows written by them
	// CheckpointOverlaps counts checkpoint tables whose ingest found rows
	// in the memtable (pebble flushed it first): none expected, as rows
	// go to the overlay.
	CheckpointOverlaps uint64
	OverlayRows        int // rows in the overlay (not yet in pebble)
}

func (w *ownWAL) stats() WALStats {
	w.filesMu.Lock()
	n := len(w.files)
	w.filesMu.Unlock()
	return WALStats{Syncs: w.syncs.Load(), SyncTime: time.Duration(w.syncNanos.Load()), Truncations: w.truncs.Load(), Forced: w.forced.Load(), Deferred: w.deferred.Load(), Files: n, Bytes: w.bytes.Load(),
		Recycled: w.recycled.Load(), ZeroFilled: w.zeroFilled.Load(), EarlySyncs: w.early.Load(),
		RowCheckpoints: w.ckDone.Load(), CheckpointRows: w.ckRows.Load(), CheckpointOverlaps: w.ckOverlaps.Load(), OverlayRows: w.ovRows()}
}

// openWAL replays the own log's files into the DB just opened and, with
// WALOwn, starts the log; with WALPebble it removes the replayed files.
// Callers hold applyMu and dbMu (or own s exclusively).
func (s *Store) openWAL(gen uint64, flushes *walFlushes) error {
	dir := s.fs.PathJoin(s.dir, walDirName)
	s.ov, s.rowCk = nil, nil
	overlay := s.opts.WAL == WALOwn && !s.opts.RowsInMemtable
	files, last, err := recoverWAL(s.fs, dir, s.db, &s.walBugs, overlay)
	if err != nil {
		return err
	}
	if s.opts.WAL != WALOwn {
		// The files go first, then the position key (a build that knows
		// no own log refuses it): a crash between the two leaves the key
		// and no files, never files whose records are older than pebble.
		if err := removeWAL(s.fs, dir, files); err != nil {
			return err
		}
		if last == 0 {
			return nil
		}
		b := s.db.NewBatch()
		defer b.Close()
		_ = b.Delete(keyMetaWALPos, nil)
		if err := s.db.Apply(b, pebble.Sync); err != nil {
			return fmt.Errorf("region store: drop %s: %w", keyMetaWALPos, err)
		}
		return s.failed()
	}
	if len(files) == 0 {
		if err := s.fs.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("region store: create %s: %w", dir, err)
		}
		if err := syncDir(s.fs, s.dir); err != nil {
			return err
		}
	}
	fileBytes := s.opts.WALFileBytes
	if fileBytes <= 0 {
		fileBytes = walFileBytesDef
		if s.opts.FS != nil && s.opts.FS != vfs.Default {
			fileBytes = walFileBytesMem
		}
	}
	memTable := cmp.Or(s.opts.MemTableBytes, defaultMemTableBytes)
	var ov *rowOverlay
	ovRows := func() int { return 0 }
	if overlay {
		ov = newRowOverlay(&s.walBugs)
		ovRows = ov.len
	}
	w, err := openOwnWAL(s.fs, dir, s.db, files, last, walConfig{
		log: s.log, noSync: s.opts.NoSync, fileBytes: fileBytes,
		flushBytes: cmp.Or(s.opts.walForceBytes, walForceFlushBytes(fileBytes)), recycle: walRecycle(fileBytes, memTable),
		onFatal: func(err error) { s.markFailedGen(gen, err) }, bugs: &s.walBugs, flushes: flushes,
		overlay: overlay, ovRows: ovRows,
	})
	if err != nil {
		return err
	}
	s.wal = w
	s.ov = ov
	return nil
}

// closeWAL stops the row checkpoint in progress and the own log (which
// syncs what it buffered first: ownWAL.close). Callers hold applyMu and
// dbMu.
func (s *Store) closeWAL() {
	s.stopRowCheckpoint()
	if s.wal != nil {
		s.wal.close()
		s.wal = nil
	}
	s.ov = nil
}

// WALStats returns the own log's counters (zero with pebble's WAL).
func (s *Store) WALStats() WALStats {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.wal == nil {
		return WALStats{}
	}
	return s.wal.stats()
}
