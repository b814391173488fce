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
// The overlay is generational, like pebble's memtables: the committer
// writes its active generation; a checkpoint freezes it (nothing writes
// it from then on) and the committer goes on in a fresh one (the last
// frozen one, emptied). Readers consult the active generation, then the
// frozen one, then pebble: the newest value wins. A generation stores its
// rows densely (ovGen: rows as pointer-free structs in one slice, linked
// per SKU by region, values in one arena, regions interned), so a new SKU
// costs one map insert and no heap object of its own, and it is dropped
// whole.
//
// Row checkpoints move the overlay into pebble: started on every own-log
// file rotation and when the active generation exceeds
// rowOverlayMaxRows, at position C0 (the last record appended), a
// checkpoint freezes the active generation (on the committer: every row
// in it is at or below C0) and hands it to a goroutine of its own
// (rowCkJob; one checkpoint at a time), which:
//
//  1. writes every row of the frozen generation into one sorted sstable
//     in the store's directory (pebble's sstable writer, the DB's table
//     format), without a lock and without filtering rows: a row changed
//     since C0 is in the active generation, which wins, and its record is
//     above C0, replayed;
//  2. makes the log durable up to C0: once ingested a row is durable, and
//     its batch's record must be too (a batch written ahead, or one whose
//     fdatasync runs, is only buffered);
//  3. ingests the table (db.Ingest: pebble links it in; durable when
//     Ingest returns). Its sequence number is above the memtable's,
//     which holds no rows (they go to the overlay): an overlap, which
//     pebble handles by flushing the memtable first, is counted in
//     WALStats.CheckpointOverlaps;
//  4. drops the frozen generation whole (under the overlay's lock, after
//     the ingest returned: readers see its rows in one or the other).
//
// The committer, after a later commit, finds the goroutine ended and
// writes m/rowpos = C0 through the log like any batch, fully applied:
// with it in pebble, every row of the records up to C0 is in pebble (its
// value there, or a newer one, whose record is above C0 and replayed). A
// failed write or ingest fails the store like any failed write; no other
// checkpoint starts before the goroutine has ended. A checkpoint of at
// most rowCkInlineMaxRows rows skips all this: the active generation's
// rows and m/rowpos go through the log as one batch, then the generation
// is emptied (rowCheckpointInlineLocked). Writing every checkpoint's rows
// into the memtable, in chunks through the log, cost 2.8 µs per hold at a
// million SKUs, most of it inserting them at random places in a large
// skiplist (docs/benchmarks.md, "Row checkpoints by ingest").
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

// rowOverlayMaxRows starts a checkpoint when the overlay's active
// generation holds more rows. A checkpoint per 16 MiB log file keeps it
// to the rows of one file (~50,000 at a million SKUs, ~5 MiB); the bound
// is for smaller files or larger rows, and memory (about 100 bytes a row,
// its key and value).
const rowOverlayMaxRows = 1 << 17

// ovNone ends an SKU's list of rows in a generation.
const ovNone = ^uint32(0)

// ovRow is a row of an overlay generation. It holds no pointer (the
// garbage collector does not scan a generation's rows): its value is in
// the generation's arena, its region interned, the next row of its SKU
// an index.
type ovRow struct {
	pos    uint64 // the log position of the record that wrote it
	off    uint32 // the value is arena[off : off+n]
	n      uint32
	room   uint32 // bytes reserved at off: a new value that fits is written in place
	region uint32 // index in regions
	next   uint32 // the SKU's next row, by region (ovNone: none)
}

// ovGen is one generation of the overlay: the rows the committer wrote
// while it was the active one. Stored densely: a new SKU costs one map
// insert (its first row's index) and appends to rows and arena, no heap
// object of its own; a rewritten row's value goes in place when it fits.
// Once frozen (a checkpoint started) nothing writes it; it is dropped
// whole once its checkpoint's table is ingested.
type ovGen struct {
	skus    map[string]uint32 // SKU → its first row (by region) in rows
	rows    []ovRow
	arena   []byte            // values, append-only
	regions []string          // interned region names (a region has few peers)
	regIdx  map[string]uint32 // region → its index in regions
}

func newOvGen(skus, rows, arena int) *ovGen {
	return &ovGen{skus: make(map[string]uint32, skus), rows: make([]ovRow, 0, rows),
		arena: make([]byte, 0, arena), regIdx: make(map[string]uint32)}
}

// reset empties g, keeping its memory (and its interned regions) for the
// next rows.
func (g *ovGen) reset() {
	clear(g.skus)
	g.rows, g.arena = g.rows[:0], g.arena[:0]
}

func (g *ovGen) val(r *ovRow) []byte { return g.arena[r.off : r.off+r.n : r.off+r.n] }

func (g *ovGen) intern(region []byte) uint32 {
	if len(g.regions) <= 8 {
		for i, r := range g.regions {
			if r == string(region) {
				return uint32(i)
			}
		}
	} else if i, ok := g.regIdx[string(region)]; ok {
		return i
	}
	i := uint32(len(g.regions))
	name := string(region)
	g.regions = append(g.regions, name)
	g.regIdx[name] = i
	return i
}

// add appends a row (and its value), before row next of its SKU.
func (g *ovGen) add(region uint32, v []byte, pos uint64, next uint32) uint32 {
	off := uint32(len(g.arena))
	g.arena = append(g.arena, v...)
	n := uint32(len(v))
	g.rows = append(g.rows, ovRow{pos: pos, off: off, n: n, room: n, region: region, next: next})
	return uint32(len(g.rows) - 1)
}

// put records sku's row of region = v, written by the record at pos.
// Called on the active generation only.
func (g *ovGen) put(sku, region, v []byte, pos uint64) error {
	// Offsets and indexes are 32 bits: the overlay's bound
	// (rowOverlayStallRows) keeps a generation far below.
	if uint64(len(g.arena))+uint64(len(v)) > uint64(ovNone) || uint64(len(g.rows)) >= uint64(ovNone) {
		return fmt.Errorf("overlay generation full: %d rows, %d bytes of values", len(g.rows), len(g.arena))
	}
	reg := g.intern(region)
	first, ok := g.skus[string(sku)]
	if !ok {
		g.skus[string(sku)] = g.add(reg, v, pos, ovNone)
		return nil
	}
	prev, i := ovNone, first
	for i != ovNone {
		r := &g.rows[i]
		if r.region == reg {
			if uint32(len(v)) <= r.room {
				copy(g.arena[r.off:], v)
			} else {
				r.off, r.room = uint32(len(g.arena)), uint32(len(v))
				g.arena = append(g.arena, v...)
			}
			r.n, r.pos = uint32(len(v)), pos
			return nil
		}
		if g.regions[r.region] > g.regions[reg] {
			break
		}
		prev, i = i, r.next
	}
	j := g.add(reg, v, pos, i)
	if prev == ovNone {
		g.skus[string(sku)] = j
	} else {
		g.rows[prev].next = j
	}
	return nil
}

// find returns sku's row of region in g (nil: none).
func (g *ovGen) find(sku, region string) *ovRow {
	i, ok := g.skus[sku]
	if !ok {
		return nil
	}
	for ; i != ovNone; i = g.rows[i].next {
		if r := &g.rows[i]; g.regions[r.region] == region {
			return r
		}
	}
	return nil
}

// writeSorted writes g's rows through set in key order (heads: g's SKUs
// as appendHeads gives them), checking that each is at or below c0, the
// position of the checkpoint writing them, and that the rows linked from
// the SKUs are all of g's; it returns the rows written. stop, looked at
// every rowCkCancelEvery SKUs (nil: never), ends it with
// errRowCkCancelled.
func (g *ovGen) writeSorted(heads []ovHead, c0 uint64, stop func() bool, set func(k, v []byte) error) (int, error) {
	var k []byte
	n := 0
	for hi, h := range heads {
		if stop != nil && hi%rowCkCancelEvery == 0 && stop() {
			return n, errRowCkCancelled
		}
		for i := h.first; i != ovNone; i = g.rows[i].next {
			r := &g.rows[i]
			if r.pos > c0 {
				return n, fmt.Errorf("overlay row at wal position %d above the checkpoint's %d", r.pos, c0)
			}
			k = appendRowKey(k[:0], h.sku, g.regions[r.region])
			if err := set(k, g.val(r)); err != nil {
				return n, err
			}
			n++
		}
	}
	if n != len(g.rows) {
		return n, fmt.Errorf("overlay: %d rows linked from the generation's SKUs, %d stored", n, len(g.rows))
	}
	return n, nil
}

// ovHead is an SKU of a generation and its first row.
type ovHead struct {
	sku   string
	first uint32
}

// appendHeads appends g's SKUs, sorted: "r/" + sku + "\x00" + region sorts
// as the SKU, then the region, and an SKU's rows are linked by region, so
// walking them in this order is key order.
func (g *ovGen) appendHeads(dst []ovHead) []ovHead {
	for sku, first := range g.skus {
		dst = append(dst, ovHead{sku, first})
	}
	slices.SortFunc(dst, func(a, b ovHead) int { return strings.Compare(a.sku, b.sku) })
	return dst
}

// rowOverlay holds the rows of batches applied to the memtable without
// them, until a row checkpoint writes them into pebble, in two
// generations: the active one, which the committer writes (under the
// store's applyMu and the log's memMu, and mu), and the frozen one (nil:
// none), whose rows a checkpoint in progress writes into pebble, all of
// them at or below its C0. Readers on other goroutines take mu for
// reading and consult the active generation, then the frozen one, then
// pebble: the newest value wins.
type rowOverlay struct {
	mu     sync.RWMutex
	active *ovGen
	frozen *ovGen
	// spare is the last frozen generation, emptied, for the next freeze:
	// written by the checkpoint's job before its done closes, taken by the
	// committer after.
	spare *ovGen
	bugs  *walBugs // planted bugs (tests only; nil: none)
}

func newRowOverlay(bugs *walBugs) *rowOverlay {
	return &rowOverlay{active: newOvGen(0, 0, 0), bugs: bugs}
}

// putLocked records row key k = value v, written by the record at pos, in
// the active generation. Callers hold mu.
func (o *rowOverlay) putLocked(k, v []byte, pos uint64) error {
	if !bytes.HasPrefix(k, []byte(pfxRow)) || bytes.IndexByte(k, 0) < 0 {
		return fmt.Errorf("region store: %s is not a row key", fmtKey(k))
	}
	body := k[len(pfxRow):]
	i := bytes.LastIndexByte(body, 0)
	if err := o.active.put(body[:i], body[i+1:], v, pos); err != nil {
		return fmt.Errorf("region store: %s: %w", fmtKey(k), err)
	}
	return nil
}

// gensLocked is the generations readers consult, newest first (the frozen
// one nil when there is none). Callers hold mu.
func (o *rowOverlay) gensLocked() [2]*ovGen {
	if o.bugs != nil && o.bugs.skipFrozenGen {
		return [2]*ovGen{o.active, nil}
	}
	return [2]*ovGen{o.active, o.frozen}
}

// ovKV is a row of the overlay copied out for a reader, with its key.
type ovKV struct{ key, val []byte }

// appendSKULocked appends copies of the overlay's rows of sku (in key
// order; the active generation's row where both have one). Callers hold
// mu (for reading).
func (o *rowOverlay) appendSKULocked(dst []ovKV, sku string) []ovKV {
	gens := o.gensLocked()
	a, f := gens[0], gens[1]
	ai, fi := ovNone, ovNone
	if i, ok := a.skus[sku]; ok {
		ai = i
	}
	if f != nil {
		if i, ok := f.skus[sku]; ok {
			fi = i
		}
	}
	for ai != ovNone || fi != ovNone {
		g, i := a, ai
		if ai == ovNone {
			g, i = f, fi
		} else if fi != ovNone {
			switch c := strings.Compare(a.regions[a.rows[ai].region], f.regions[f.rows[fi].region]); {
			case c == 0:
				fi = f.rows[fi].next // older: the active row wins
			case c > 0:
				g, i = f, fi
			}
		}
		r := &g.rows[i]
		dst = append(dst, ovKV{key: appendRowKey(nil, sku, g.regions[r.region]), val: slices.Clone(g.val(r))})
		if g == a {
			ai = r.next
		} else {
			fi = r.next
		}
	}
	return dst
}

// rangeLocked returns copies of the overlay's rows with lo <= key < hi,
// in key order (the active generation's row where both have one).
// Callers hold mu (for reading).
func (o *rowOverlay) rangeLocked(lo, hi []byte) []ovKV {
	var out []ovKV
	var k []byte
	gens := o.gensLocked()
	for gi, g := range gens {
		if g == nil {
			continue
		}
		for sku, first := range g.skus {
			for i := first; i != ovNone; i = g.rows[i].next {
				r := &g.rows[i]
				region := g.regions[r.region]
				if gi > 0 && gens[0].find(sku, region) != nil {
					continue
				}
				k = appendRowKey(k[:0], sku, region)
				if bytes.Compare(k, lo) >= 0 && (hi == nil || bytes.Compare(k, hi) < 0) {
					out = append(out, ovKV{key: slices.Clone(k), val: slices.Clone(g.val(r))})
				}
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
	for _, g := range o.gensLocked() {
		if g == nil {
			continue
		}
		if r := g.find(sku, region); r != nil {
			return slices.Clone(g.val(r)), true
		}
	}
	return nil, false
}

// lenLocked returns the overlay's rows: its generations' (a row in both
// counts twice). Callers hold mu.
func (o *rowOverlay) lenLocked() int {
	n := len(o.active.rows)
	if o.frozen != nil {
		n += len(o.frozen.rows)
	}
	return n
}

func (o *rowOverlay) len() int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.lenLocked()
}

// freeze makes the active generation the frozen one and a fresh one
// (the last frozen one, emptied, or one sized like the active one)
// active; it returns the generation frozen. Called by the committer (the
// active generation's only writer) with no generation frozen.
func (o *rowOverlay) freeze() (*ovGen, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.frozen != nil {
		return nil, errors.New("region store: overlay: a row checkpoint starts with a generation frozen")
	}
	a, next := o.active, o.spare
	o.spare = nil
	if next == nil {
		next = newOvGen(len(a.skus), len(a.rows), len(a.arena))
	}
	o.frozen, o.active = a, next
	return a, nil
}

// dropFrozen drops the frozen generation g whole: a checkpoint ingested
// its rows. Nothing wrote it since it was frozen (a row changed since is
// in the active generation, which readers consult first).
func (o *rowOverlay) dropFrozen(g *ovGen) error {
	o.mu.Lock()
	if o.frozen != g {
		o.mu.Unlock()
		return errors.New("region store: overlay: the checkpoint's generation is not the frozen one")
	}
	o.frozen = nil
	if o.bugs != nil && o.bugs.dropActiveGen {
		// The rows written since the freeze go with the generation.
		g.reset()
		o.active = g
		o.mu.Unlock()
		return nil
	}
	o.mu.Unlock()
	// No reader holds g's rows (they copy them under mu): its memory is
	// the next active generation's.
	g.reset()
	o.spare = g
	return nil
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

// rowCkJob is a row checkpoint's background part: it writes the rows of
// the overlay's frozen generation (all at or below c0) into one sorted
// sstable, makes the log durable up to c0, ingests the table and drops the
// generation. done is closed when it ends; err is read after it.
type rowCkJob struct {
	c0     uint64
	gen    *ovGen // the frozen generation: nothing writes it
	ov     *rowOverlay
	db     *pebble.DB
	wal    *ownWAL
	fs     vfs.FS
	path   string // the table, in the store's directory until ingested
	wopts  sstable.WriterOptions
	hook   func(stage string)
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
	n := s.ov.len()
	if job := s.rowCk; job != nil {
		if n > rowOverlayStallRows {
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
		n = s.ov.len()
	}
	rotated := s.wal.rotated.Swap(false)
	if !rotated && n <= cmp.Or(s.opts.rowOverlayMax, rowOverlayMaxRows) {
		return nil
	}
	if n <= cmp.Or(s.opts.rowCkInlineMax, rowCkInlineMaxRows) {
		return s.rowCheckpointInlineLocked()
	}
	// Every row of the generation frozen is at or below C0, the last
	// record appended: the committer, its only writer, is here. With no
	// row, the checkpoint still moves m/rowpos on.
	gen, err := s.ov.freeze()
	if err != nil {
		return err
	}
	job := &rowCkJob{gen: gen, ov: s.ov, db: s.db, wal: s.wal, fs: s.fs, wopts: s.tableOpts, hook: s.opts.rowCkHook,
		bugs: &s.walBugs, done: make(chan struct{})}
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
// progress, so no generation frozen): the active generation's rows, in
// key order, and m/rowpos = C0 (the last record appended: every row is at
// or below it) as one batch through the log, fully applied, as any batch;
// then the generation is emptied (nothing changed it since: the committer
// is here). Pebble's flush of that batch makes the log durable first
// (walFlushes.flushBegin), as for any batch, so no row reaches sstables
// without its record. Callers hold applyMu.
func (s *Store) rowCheckpointInlineLocked() error {
	c0 := s.wal.lastPos()
	o := s.ov
	b := s.db.NewBatch()
	// Read-locked: the committer is the only writer, but a failed
	// checkpoint's planted bug (dropActiveGen) is not.
	o.mu.RLock()
	g := o.active
	err := func() error {
		if o.frozen != nil {
			return errors.New("region store: overlay: a small row checkpoint with a generation frozen")
		}
		heads := g.appendHeads(s.rowCkHeads[:0])
		defer func() { clear(heads); s.rowCkHeads = heads[:0] }()
		_, err := g.writeSorted(heads, c0, nil, func(k, v []byte) error { return b.Set(k, v, nil) })
		if err != nil {
			return fmt.Errorf("region store: small row checkpoint: %w", err)
		}
		return nil
	}()
	n := len(g.rows)
	o.mu.RUnlock()
	if err != nil {
		_ = b.Close()
		return err
	}
	if err := s.rowPosLocked(b, c0); err != nil {
		return err
	}
	o.mu.Lock()
	if o.active != g || len(g.rows) != n {
		o.mu.Unlock()
		return errors.New("region store: overlay: its active generation changed during a small row checkpoint")
	}
	g.reset()
	o.mu.Unlock()
	s.wal.ckRows.Add(uint64(n))
	return nil
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
	if err == nil {
		j.stage("ingested")
		// The table is visible (Ingest returned) before the generation
		// leaves, under the overlay's lock: readers see one or the other
		// (newRowIter).
		err = j.ov.dropFrozen(j.gen)
	}
	if err != nil {
		if !errors.Is(err, errRowCkCancelled) {
			// Like any failed write: the store fails, the log keeps the
			// rows, the next open replays them.
			err = fmt.Errorf("%w: row checkpoint at wal position %d: %w", ErrStoreFailed, j.c0, err)
			j.wal.onFatal(err)
		}
		j.err = err
	}
}

// rowCkCancelEvery is the SKUs the job writes between looks at cancel.
const rowCkCancelEvery = 4096

// build writes the table: every row of the frozen generation, in key
// order, without a lock (nothing writes the generation; readers only
// read it). A row changed since C0 is in the active generation, which
// wins over both the frozen one and pebble for readers.
func (j *rowCkJob) build() (err error) {
	g := j.gen
	heads := g.appendHeads(make([]ovHead, 0, len(g.skus)))
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
	j.rows, err = g.writeSorted(heads, j.c0, j.cancel.Load, func(k, v []byte) error {
		if err := w.Set(k, v); err != nil {
			return fmt.Errorf("write %s: %w", j.path, err)
		}
		return nil
	})
	if err != nil {
		return err
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
// has returned (its table visible) before its frozen generation leaves
// the overlay (under that lock), so the two together are one state.
// Callers hold dbMu (read) or applyMu, with the DB open.
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
	} else if s.ov.lenLocked() > 0 {
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
// closed: every record up to last is applied): the frozen generation's
// rows, then the active one's (later in the batch, so they win). If the
// flush does not complete, the log still holds the rows and recovery
// replays them. Callers hold applyMu and dbMu.
func (s *Store) settleOverlay(ov *rowOverlay, last uint64) error {
	if ov == nil {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	ov.mu.Lock()
	defer ov.mu.Unlock()
	var k []byte
	for _, g := range [...]*ovGen{ov.frozen, ov.active} {
		if g == nil {
			continue
		}
		for sku, first := range g.skus {
			for i := first; i != ovNone; i = g.rows[i].next {
				r := &g.rows[i]
				k = appendRowKey(k[:0], sku, g.regions[r.region])
				if err := b.Set(k, g.val(r), nil); err != nil {
					return err
				}
			}
		}
	}
	if err := b.Set(keyMetaRowPos, appendU64(nil, last), nil); err != nil {
		return err
	}
	return s.commit(b, false)
}
