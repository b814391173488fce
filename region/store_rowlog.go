package region

// Rows out of the memtable (own log only, unless StoreOptions.
// RowsInMemtable). Every batch stage writes holds the full value of each
// row (r/<sku>\x00<region>) it changed; at a catalogue of a thousand SKUs
// a 256-hold batch rewrites ~240 rows, so the memtable holds thousands of
// versions of each row and every insert searches past them, and at a
// million SKUs each row lands at a random place in a large skiplist
// (docs/benchmarks.md, "Rows out of the memtable"). With the own log a
// row only needs to be durable in the log; it needs to be in pebble only
// before the log record carrying it is dropped.
//
// So the log record is the whole batch, rows included (the format is
// unchanged, and recovery replays whole records into pebble), but the
// memtable apply skips the leading row entries (stage writes rows first):
// it applies a copy of the batch without them, and the rows go to the
// overlay, key → (value, log position), which every reader of r/ keys
// consults first (point reads) or merges with pebble's iterator (scans,
// overlay winning on equal keys).
//
// Row checkpoints move the overlay into pebble: started on every own-log
// file rotation and when the overlay exceeds rowOverlayMaxRows, at
// position C0 (the last record appended), a checkpoint takes the SKUs the
// overlay holds then (on the committer) and hands them to a goroutine of
// its own (rowCkJob; one checkpoint at a time), which:
//
//  1. writes the current value of their rows whose position is at or
//     below C0 into one sorted sstable in the store's directory (pebble's
//     sstable writer, the DB's table format; the overlay read-locked for
//     rowCheckpointChunk SKUs at a time). A row changed since C0 is left
//     out: its record is above C0, replayed, and it stays in the overlay;
//  2. makes the log durable up to C0: once ingested a row is durable, and
//     its batch's record must be too (a batch written ahead, or one whose
//     fdatasync runs, is only buffered);
//  3. ingests the table (db.Ingest: pebble links it in; durable when
//     Ingest returns). Its sequence number is above the memtable's,
//     which holds no rows (they go to the overlay): an overlap, which
//     pebble handles by flushing the memtable first, is counted in
//     WALStats.CheckpointOverlaps;
//  4. removes from the overlay the rows still at or below C0: unchanged
//     since the table was written, so pebble has their value (a row
//     written into the table and changed before the ingest is above C0,
//     stays, and wins over pebble for readers).
//
// The committer, after a later commit, finds the goroutine ended and
// writes m/rowpos = C0 through the log like any batch, fully applied:
// with it in pebble, every row of the records up to C0 is in pebble (its
// value there, or a newer one, whose record is above C0 and replayed). A
// failed write or ingest fails the store like any failed write; no other
// checkpoint starts before the goroutine has ended. A checkpoint of at
// most rowCkInlineMaxRows rows skips all this: its rows and m/rowpos go
// through the log as one batch (rowCheckpointInlineLocked). Writing every
// checkpoint's rows into the memtable, in chunks through the log, cost
// 2.8 µs per hold at a million SKUs, most of it inserting them at random places in a
// large skiplist (docs/benchmarks.md, "Row checkpoints by ingest").
//
// Truncation drops a full file only when, as before, pebble flushed its
// batches, and a checkpoint whose C0 is at or above the file's last
// position has been flushed (its m/rowpos batch's sequence number at or
// below the flushed one). Recovery replays from min(m/walpos, m/rowpos): a
// record already in sstables is applied again, which is harmless, as
// replay runs in log order and every key's last write wins (logged batches
// Set and Delete; the one DeleteRange, store_upgrade.go's of the c/
// index, is of keys never written again).
//
// A batch must never reach sstables without its rows, its record being
// lost: pebble may flush a memtable holding a batch whose record is still
// buffered (a WriteAhead batch, or one whose fdatasync runs). Pebble's
// FlushBegin (called once the flush's memtables are chosen) therefore
// writes and fdatasyncs everything buffered in the log before the flush
// writes anything (walFlushes.flushBegin).

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

var keyMetaRowPos = []byte("m/rowpos")

const (
	// rowCheckpointChunk is the SKUs whose rows a checkpoint reads (and
	// removes) per hold of the overlay's lock, during which the
	// committer's overlay writes wait: a few hundred µs.
	rowCheckpointChunk = 1024
	// rowOverlayMaxRows starts a checkpoint when the overlay holds more
	// rows. A checkpoint per 16 MiB log file keeps it to the rows of one
	// file (~50,000 at a million SKUs, ~5 MiB); the bound is for smaller
	// files or larger rows, and memory (about 100 bytes a row).
	rowOverlayMaxRows = 1 << 17
)

// ovRow is a row of the overlay: its region, value and log position.
type ovRow struct {
	region string
	val    []byte
	pos    uint64
}

// ovSKU is the overlay's rows of one SKU, by region.
type ovSKU struct{ rows []ovRow }

// rowOverlay holds the rows of batches applied to the memtable without
// them, until a row checkpoint writes them into pebble. The committer
// writes it (under the store's applyMu and the log's memMu); readers on
// other goroutines take mu for reading.
type rowOverlay struct {
	mu   sync.RWMutex
	skus map[string]*ovSKU
	rows int
}

func newRowOverlay() *rowOverlay { return &rowOverlay{skus: make(map[string]*ovSKU)} }

// putLocked records row key k = value v, written by the record at pos.
// Callers hold mu.
func (o *rowOverlay) putLocked(k, v []byte, pos uint64) error {
	if !bytes.HasPrefix(k, []byte(pfxRow)) || bytes.IndexByte(k, 0) < 0 {
		return fmt.Errorf("region store: %s is not a row key", fmtKey(k))
	}
	body := k[len(pfxRow):]
	i := bytes.LastIndexByte(body, 0)
	sku, region := body[:i], body[i+1:]
	e := o.skus[string(sku)]
	if e == nil {
		e = &ovSKU{}
		o.skus[string(sku)] = e
	}
	j := 0
	for ; j < len(e.rows); j++ {
		if c := cmpStrBytes(e.rows[j].region, region); c == 0 {
			r := &e.rows[j]
			r.val, r.pos = append(r.val[:0], v...), pos
			return nil
		} else if c > 0 {
			break
		}
	}
	e.rows = slices.Insert(e.rows, j, ovRow{region: string(region), val: slices.Clone(v), pos: pos})
	o.rows++
	return nil
}

// cmpStrBytes is strings.Compare(a, string(b)) without converting b.
func cmpStrBytes(a string, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

// ovKV is a row of the overlay copied out for a reader, with its key.
type ovKV struct{ key, val []byte }

// appendSKULocked appends copies of the overlay's rows of sku (in key
// order). Callers hold mu (for reading).
func (o *rowOverlay) appendSKULocked(dst []ovKV, sku string) []ovKV {
	e := o.skus[sku]
	if e == nil {
		return dst
	}
	for _, r := range e.rows {
		dst = append(dst, ovKV{key: appendRowKey(nil, sku, r.region), val: slices.Clone(r.val)})
	}
	return dst
}

// rangeLocked returns copies of the overlay's rows with lo <= key < hi,
// in key order. Callers hold mu (for reading).
func (o *rowOverlay) rangeLocked(lo, hi []byte) []ovKV {
	var out []ovKV
	var k []byte
	for sku, e := range o.skus {
		for _, r := range e.rows {
			k = appendRowKey(k[:0], sku, r.region)
			if bytes.Compare(k, lo) >= 0 && (hi == nil || bytes.Compare(k, hi) < 0) {
				out = append(out, ovKV{key: slices.Clone(k), val: slices.Clone(r.val)})
			}
		}
	}
	slices.SortFunc(out, func(a, b ovKV) int { return bytes.Compare(a.key, b.key) })
	return out
}

// get returns a copy of the value of sku's row of region.
func (o *rowOverlay) get(sku, region string) ([]byte, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if e := o.skus[sku]; e != nil {
		for _, r := range e.rows {
			if r.region == region {
				return slices.Clone(r.val), true
			}
		}
	}
	return nil, false
}

func (o *rowOverlay) len() int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.rows
}

// rowSpan is the leading row entries of a staged batch: n entries ending
// at byte end of its Repr (n 0: none, or rows go to the memtable).
type rowSpan struct {
	n   uint32
	end int
}

// applyMemRows applies b (the own log's record at pos) to pebble's
// memtable without its leading rows, which go to the overlay; it returns
// the batch applied (for its sequence numbers). Called by the log under
// memMu, on the committer (applyMu).
func (s *Store) applyMemRows(b *pebble.Batch, pos uint64, rows rowSpan) (*pebble.Batch, error) {
	if rows.n == 0 || s.ov == nil {
		return b, s.commit(b, false)
	}
	repr := b.Repr()
	r := b.Reader()
	s.ov.mu.Lock()
	for i := uint32(0); i < rows.n; i++ {
		kind, k, v, ok, err := r.Next()
		if err == nil && (!ok || kind != pebble.InternalKeyKindSet) {
			err = fmt.Errorf("entry %d of %d is not a row set", i, rows.n)
		}
		if err == nil {
			err = s.ov.putLocked(k, v, pos)
		}
		if err != nil {
			s.ov.mu.Unlock()
			return b, fmt.Errorf("region store: rows of wal record %d: %w", pos, err)
		}
	}
	s.ov.mu.Unlock()
	// The same bytes without the rows: a header with the count less the
	// rows (the sequence number is pebble's to set), then the tail, which
	// holds keyMetaWALPos at least.
	// The batch is reset first: Reset clears the header of the buffer it
	// last took (memBuf's).
	mb := s.memBatch
	if mb == nil || s.memBatchDB != s.db {
		mb = s.db.NewBatch()
		s.memBatch, s.memBatchDB = mb, s.db
	}
	mb.Reset()
	const hdr = 12
	buf := append(s.memBuf[:0], make([]byte, hdr)...)
	binary.LittleEndian.PutUint32(buf[8:hdr], b.Count()-rows.n)
	buf = append(buf, repr[rows.end:]...)
	s.memBuf = buf
	if err := mb.SetRepr(buf); err != nil {
		return b, fmt.Errorf("region store: memtable batch of wal record %d: %w", pos, err)
	}
	return mb, s.commit(mb, false)
}

// rowCkJob is a row checkpoint's background part: it writes the overlay's
// rows at or below c0 into one sorted sstable, makes the log durable up to
// c0, ingests the table and removes the rows still at or below c0 from the
// overlay. done is closed when it ends; err is read after it.
type rowCkJob struct {
	c0     uint64
	skus   []string // the overlay's SKUs at the start (map order; sorted by run)
	ov     *rowOverlay
	db     *pebble.DB
	wal    *ownWAL
	fs     vfs.FS
	path   string // the table, in the store's directory until ingested
	wopts  sstable.WriterOptions
	hook   func(stage string)
	chunk  int // SKUs per hold of the overlay's lock
	bugs   *walBugs
	cancel atomic.Bool // the store closes: no ingest from now
	done   chan struct{}

	rows int // rows in the table
	err  error
}

// rowCkTmpPrefix names a row checkpoint's table before its ingest; a
// leftover (a crash between its write and its removal) is removed at open.
const rowCkTmpPrefix = "holdfast-rowck-"

// rowOverlayStallRows is the overlay size at which the committer waits for
// the checkpoint in progress to end instead of committing on: the bound of
// the overlay's memory (~50 MiB) when commits outrun the checkpoints.
const rowOverlayStallRows = 4 * rowOverlayMaxRows

// rowCkInlineMaxRows: a checkpoint of at most this many rows writes them
// through the log as one batch with m/rowpos, on the committer
// (rowCheckpointInlineLocked), instead of ingesting a table. An ingest
// holds every commit behind it until its manifest edit is synced (1.5–9.5
// ms measured), and a small catalogue checkpoints on every log rotation
// (about twice a second at one SKU); a few thousand rows inserted into the
// memtable cost the commit they follow a millisecond or two.
const rowCkInlineMaxRows = 2048

// rowCheckpointStepLocked finishes the checkpoint in progress once its
// background part (rowCkJob) has ended (m/rowpos, rowPosLocked), and
// starts one when the log rotated or the overlay is over its bound.
// Called by the committer after a commit; callers hold applyMu.
func (s *Store) rowCheckpointStepLocked() error {
	if s.ov == nil || s.wal == nil {
		return nil
	}
	if job := s.rowCk; job != nil {
		if s.ov.len() > rowOverlayStallRows {
			<-job.done
		}
		select {
		case <-job.done:
		default:
			return nil
		}
		if job.err != nil {
			return job.err
		}
		if !s.walBugs.rowPosAtStart {
			if err := s.rowPosLocked(s.db.NewBatch(), job.c0); err != nil {
				return err
			}
		}
		s.rowCk = nil
	}
	rotated := s.wal.rotated.Swap(false)
	n := s.ov.len()
	if !rotated && n <= cmp.Or(s.opts.rowOverlayMax, rowOverlayMaxRows) {
		return nil
	}
	if n <= cmp.Or(s.opts.rowCkInlineMax, rowCkInlineMaxRows) {
		return s.rowCheckpointInlineLocked()
	}
	// The SKUs in map order (the committer alone writes the map): the
	// job sorts them. With none, the checkpoint still moves m/rowpos on.
	job := &rowCkJob{ov: s.ov, db: s.db, wal: s.wal, fs: s.fs, wopts: s.tableOpts, hook: s.opts.rowCkHook,
		chunk: cmp.Or(s.opts.rowCheckpointChunk, rowCheckpointChunk),
		bugs:  &s.walBugs, done: make(chan struct{})}
	job.skus = s.ov.appendSKUs(make([]string, 0, len(s.ov.skus)))
	job.c0 = s.wal.lastPos()
	job.path = s.fs.PathJoin(s.dir, fmt.Sprintf("%s%d.tmp", rowCkTmpPrefix, job.c0))
	s.rowCk = job
	go job.run()
	if s.walBugs.rowPosAtStart {
		return s.rowPosLocked(s.db.NewBatch(), job.c0)
	}
	return nil
}

// rowCheckpointInlineLocked is a checkpoint of a few rows (no other in
// progress): the overlay's rows, in key order, and m/rowpos = C0 (the
// last record appended) as one batch through the log, fully applied, as
// any batch; then the rows leave the overlay (nothing changed them since:
// the committer is here). Pebble's flush of that batch makes the log
// durable first (walFlushes.flushBegin), as for any batch, so no row
// reaches sstables without its record. Callers hold applyMu.
func (s *Store) rowCheckpointInlineLocked() error {
	c0 := s.wal.lastPos()
	skus := s.ov.appendSKUs(s.rowCkSKUs[:0])
	slices.Sort(skus)
	b := s.db.NewBatch()
	var k []byte
	n := 0
	for _, sku := range skus {
		for _, r := range s.ov.skus[sku].rows {
			if r.pos <= c0 {
				k = appendRowKey(k[:0], sku, r.region)
				if err := b.Set(k, r.val, nil); err != nil {
					_ = b.Close()
					return err
				}
				n++
			}
		}
	}
	if err := s.rowPosLocked(b, c0); err != nil {
		return err
	}
	s.ov.mu.Lock()
	s.ov.dropUpToLocked(skus, c0, s.walBugs.removeChangedRows)
	s.ov.mu.Unlock()
	clear(skus)
	s.rowCkSKUs = skus[:0]
	s.wal.ckRows.Add(uint64(n))
	return nil
}

// appendSKUs appends the overlay's SKUs, in map order. Called by the
// committer, the map's only writer (no lock needed to read it there).
func (o *rowOverlay) appendSKUs(dst []string) []string {
	for sku := range o.skus {
		dst = append(dst, sku)
	}
	return dst
}

// dropUpToLocked removes skus' rows at or below position c0 from the
// overlay (all of them with the planted bug removeChanged). Callers hold
// mu.
func (o *rowOverlay) dropUpToLocked(skus []string, c0 uint64, removeChanged bool) {
	for _, sku := range skus {
		e := o.skus[sku]
		if e == nil {
			continue
		}
		kept := e.rows[:0]
		for _, r := range e.rows {
			if r.pos > c0 && !removeChanged {
				kept = append(kept, r)
			}
		}
		o.rows -= len(e.rows) - len(kept)
		if len(kept) == 0 {
			delete(o.skus, sku)
		} else {
			clear(e.rows[len(kept):])
			e.rows = kept
		}
	}
}

// rowPosLocked ends a checkpoint whose rows are in pebble or in b:
// m/rowpos = c0 is added to b (which it closes), written through the log
// like any batch, fully applied; once pebble has flushed it, the log may
// drop the files up to c0 (dropFlushed). Callers hold applyMu.
func (s *Store) rowPosLocked(b *pebble.Batch, c0 uint64) error {
	defer b.Close()
	if err := b.Set(keyMetaRowPos, appendU64(nil, c0), nil); err != nil {
		return err
	}
	_, seq, err := s.wal.append(b, s.applyMemRows, false, rowSpan{})
	if err != nil {
		return err
	}
	s.wal.rowCheckpointed(c0, seq)
	return nil
}

// stopRowCheckpoint waits for the background part of the checkpoint in
// progress, if any, telling it not to ingest if it has not yet (the store
// closes; the log keeps the rows). Callers hold applyMu.
func (s *Store) stopRowCheckpoint() {
	if job := s.rowCk; job != nil {
		job.cancel.Store(true)
		<-job.done
	}
	s.rowCk = nil
}

var errRowCkCancelled = errors.New("row checkpoint cancelled: the store closed")

func (j *rowCkJob) stage(name string) {
	if j.hook != nil {
		j.hook(name)
	}
}

// run is the job's goroutine.
func (j *rowCkJob) run() {
	defer close(j.done)
	err := j.build()
	if err == nil && j.rows > 0 {
		err = j.ingest()
	}
	if err != nil {
		if !errors.Is(err, errRowCkCancelled) {
			// Like any failed write: the store fails, the log keeps the
			// rows, the next open replays them.
			err = fmt.Errorf("%w: row checkpoint at wal position %d: %w", ErrStoreFailed, j.c0, err)
			j.wal.onFatal(err)
		}
		j.err = err
		return
	}
	j.stage("ingested")
	j.removeRows()
}

// build writes the table: the overlay's rows at or below c0, in key order
// (the SKUs sorted: "r/" + sku + "\x00" + region sorts as the SKU, then the
// region, and an SKU's rows are kept by region). A row changed since c0
// is left out (its record is above c0; it stays in the overlay); one
// written here and changed before the ingest stays in the overlay too,
// which wins over pebble for readers.
func (j *rowCkJob) build() (err error) {
	slices.Sort(j.skus)
	f, err := j.fs.Create(j.path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("create %s: %w", j.path, err)
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), j.wopts)
	defer func() {
		if w != nil {
			_ = w.Close()
		}
		if err != nil || j.rows == 0 {
			_ = j.fs.Remove(j.path)
		}
	}()
	// A chunk's rows are copied under the overlay's lock and written to
	// the table after it: no file write holds the committer up.
	var buf []byte
	var ends []int // key end, value end of each row in buf
	for i := 0; i < len(j.skus); i += j.chunk {
		if j.cancel.Load() {
			return errRowCkCancelled
		}
		buf, ends = buf[:0], ends[:0]
		j.ov.mu.RLock()
		for _, sku := range j.skus[i:min(i+j.chunk, len(j.skus))] {
			e := j.ov.skus[sku]
			if e == nil {
				continue
			}
			for _, r := range e.rows {
				if r.pos <= j.c0 {
					buf = appendRowKey(buf, sku, r.region)
					ends = append(ends, len(buf))
					buf = append(buf, r.val...)
					ends = append(ends, len(buf))
				}
			}
		}
		j.ov.mu.RUnlock()
		start := 0
		for k := 0; k < len(ends); k += 2 {
			if err := w.Set(buf[start:ends[k]], buf[ends[k]:ends[k+1]]); err != nil {
				return fmt.Errorf("write %s: %w", j.path, err)
			}
			start = ends[k+1]
			j.rows++
		}
	}
	// Close writes the footer and fdatasyncs the file.
	err, w = w.Close(), nil
	if err != nil {
		return fmt.Errorf("write %s: %w", j.path, err)
	}
	return nil
}

// ingest makes the log durable up to c0, then ingests the table. The log
// first: a row in the table may come from a record still buffered (a
// batch written ahead, or one whose fdatasync runs), and once ingested the
// row is durable; without its record a crash would keep the row and lose
// the rest of its batch (as walFlushes.flushBegin for pebble's flushes).
func (j *rowCkJob) ingest() error {
	// Ingest linked (or copied) it into pebble's files.
	defer func() { _ = j.fs.Remove(j.path) }()
	if j.bugs == nil || !j.bugs.ingestBeforeDurable {
		if err := j.wal.waitDurable(j.c0); err != nil {
			return err
		}
	}
	if j.cancel.Load() {
		return errRowCkCancelled
	}
	j.stage("built")
	st, err := j.db.IngestWithStats(context.Background(), []string{j.path})
	if err != nil {
		return fmt.Errorf("ingest %s: %w", j.path, err)
	}
	// The memtable holds no rows normally (they go to the overlay): an
	// overlap means pebble flushed it first (or queued the table behind
	// it), correct but slower.
	j.wal.ckOverlaps.Add(uint64(st.MemtableOverlappingFiles))
	j.wal.ckRows.Add(uint64(j.rows))
	return nil
}

// removeRows drops the rows the table holds from the overlay: those still
// at or below c0 (unchanged since; a changed one has a newer value and a
// record above c0), a chunk of SKUs per hold of the lock.
func (j *rowCkJob) removeRows() {
	for i := 0; i < len(j.skus); i += j.chunk {
		j.ov.mu.Lock()
		j.ov.dropUpToLocked(j.skus[i:min(i+j.chunk, len(j.skus))], j.c0, j.bugs != nil && j.bugs.removeChangedRows)
		j.ov.mu.Unlock()
	}
}

// removeRowCkTemps removes leftover checkpoint tables from dir (a crash
// before their ingest, or between it and their removal).
func removeRowCkTemps(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return fmt.Errorf("region store: list %s: %w", dir, err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, rowCkTmpPrefix) {
			if err := fs.Remove(fs.PathJoin(dir, n)); err != nil {
				return fmt.Errorf("region store: remove %s: %w", n, err)
			}
		}
	}
	return nil
}

// mergedIter is a pebble iterator merged with overlay rows (sorted, within
// the iterator's bounds); an overlay row wins over pebble's on equal keys.
type mergedIter struct {
	it     *pebble.Iterator
	ov     []ovKV
	oi     int
	itOK   bool
	valid  bool
	fromOv bool
	eq     bool
}

func (m *mergedIter) settle() {
	m.valid = m.itOK || m.oi < len(m.ov)
	m.eq = false
	switch {
	case !m.valid:
	case !m.itOK:
		m.fromOv = true
	case m.oi >= len(m.ov):
		m.fromOv = false
	default:
		c := bytes.Compare(m.ov[m.oi].key, m.it.Key())
		m.fromOv, m.eq = c <= 0, c == 0
	}
}

func (m *mergedIter) First() bool {
	m.itOK, m.oi = m.it.First(), 0
	m.settle()
	return m.valid
}

func (m *mergedIter) SeekGE(k []byte) bool {
	m.itOK = m.it.SeekGE(k)
	m.oi = sort.Search(len(m.ov), func(i int) bool { return bytes.Compare(m.ov[i].key, k) >= 0 })
	m.settle()
	return m.valid
}

func (m *mergedIter) Next() bool {
	if m.fromOv {
		m.oi++
		if m.eq {
			m.itOK = m.it.Next()
		}
	} else {
		m.itOK = m.it.Next()
	}
	m.settle()
	return m.valid
}

func (m *mergedIter) Valid() bool { return m.valid }

func (m *mergedIter) Key() []byte {
	if m.fromOv {
		return m.ov[m.oi].key
	}
	return m.it.Key()
}

func (m *mergedIter) ValueAndErr() ([]byte, error) {
	if m.fromOv {
		return m.ov[m.oi].val, nil
	}
	return m.it.ValueAndErr()
}

func (m *mergedIter) Error() error { return m.it.Error() }
func (m *mergedIter) Close() error { return m.it.Close() }

// newRowIter returns pebble's iterator over o merged with the overlay's
// rows in o's bounds (all of them with nil bounds), or, given skus, with
// the overlay's rows of those SKUs only (sorted). The overlay is copied
// and the iterator made under the overlay's lock: a checkpoint's ingest
// has returned (its table visible) before its rows leave the overlay
// (under that lock), so the two together are one state. Callers hold dbMu (read) or applyMu, with the DB open.
func (s *Store) newRowIter(o *pebble.IterOptions, skus []string) (*mergedIter, error) {
	if s.ov == nil {
		it, err := s.db.NewIter(o)
		if err != nil {
			return nil, err
		}
		return &mergedIter{it: it}, nil
	}
	s.ov.mu.RLock()
	defer s.ov.mu.RUnlock()
	var ov []ovKV
	if skus != nil {
		for _, sku := range skus {
			ov = s.ov.appendSKULocked(ov, sku)
		}
	} else if s.ov.rows > 0 {
		lo, hi := []byte(nil), []byte(nil)
		if o != nil {
			lo, hi = o.LowerBound, o.UpperBound
		}
		ov = s.ov.rangeLocked(lo, hi)
	}
	it, err := s.db.NewIter(o)
	if err != nil {
		return nil, err
	}
	return &mergedIter{it: it, ov: ov}, nil
}

// rowValue returns a copy of the stored value of sku's row of region
// (overlay first). Callers hold dbMu (read) or applyMu, with the DB open.
func (s *Store) rowValue(sku, region string) ([]byte, bool, error) {
	if s.ov != nil {
		if v, ok := s.ov.get(sku, region); ok {
			return v, true, nil
		}
	}
	return s.get(appendRowKey(nil, sku, region))
}

// ownRowsOverlay is OwnRowsSince's read of the rows bySeq names with the
// overlay: each row from the overlay, or else from pebble as it is now
// (not a snapshot). A row leaves the overlay only after a checkpoint
// ingested its value into pebble, and a durable change is
// in the overlay or in pebble, so the row read is at the sequence bySeq
// had or, if a batch changed it since (at a sequence above durable: in
// flight), newer: then it is left out, as OwnRowsSince leaves out rows
// whose last change is in flight (it comes with that change once durable).
// Callers hold dbMu (read).
func (s *Store) ownRowsOverlay(seq, durable uint64, limit int) ([]escrow.Row, error) {
	changes, ok := s.ownSeqsBetween(seq, durable, limit)
	if !ok {
		return nil, fmt.Errorf("%w: sequence index dropped during the read", ErrStoreClosed)
	}
	rows := make([]escrow.Row, 0, len(changes))
	for _, c := range changes {
		v, ok, err := s.rowValue(c.sku, s.region)
		if err != nil {
			return nil, err
		}
		// The key only names a corrupt row.
		key := func() []byte { return appendRowKey(nil, c.sku, s.region) }
		if !ok {
			return nil, corrupt(key(), "own row at seq %d (in memory) is missing", c.seq)
		}
		r, err := escrow.DecodeRowValue(v, c.sku, s.region)
		if err != nil {
			return nil, corrupt(key(), "%v", err)
		}
		switch {
		case r.Seq > c.seq && r.Seq > durable:
			continue // changed in flight since bySeq was read
		case r.Seq != c.seq:
			return nil, corrupt(key(), "row has seq %d but was at %d when read", r.Seq, c.seq)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// settleOverlay writes the overlay's rows and m/rowpos = last into the
// memtable, unlogged, before the flush of a clean close (the log is
// closed: every record up to last is applied). If the flush does not
// complete, the log still holds the rows and recovery replays them.
// Callers hold applyMu and dbMu.
func (s *Store) settleOverlay(ov *rowOverlay, last uint64) error {
	if ov == nil {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	ov.mu.Lock()
	defer ov.mu.Unlock()
	var k []byte
	for sku, e := range ov.skus {
		for _, r := range e.rows {
			k = appendRowKey(k[:0], sku, r.region)
			if err := b.Set(k, r.val, nil); err != nil {
				return err
			}
		}
	}
	if err := b.Set(keyMetaRowPos, appendU64(nil, last), nil); err != nil {
		return err
	}
	return s.commit(b, false)
}
