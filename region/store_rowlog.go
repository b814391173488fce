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
// position C0 (the last record appended), a checkpoint walks the SKUs the
// overlay held then, rowCheckpointChunk SKUs per batch (at least twice
// the rows of the commit before it), each chunk in key order (one chunk
// after each commit, on the committer, so that a checkpoint never stalls
// commits for long) through the log like any
// batch, fully applied; each chunk writes the current value of rows whose
// position is at or below C0, and they leave the overlay once applied.
// The last chunk sets keyMetaRowPos = C0: with it in pebble, every row of
// the records up to C0 is in pebble (its value there, or a newer one,
// whose record is above C0 and replayed).
//
// Truncation drops a full file only when, as before, pebble flushed its
// batches, and a checkpoint whose C0 is at or above the file's last
// position has been flushed (its last chunk's sequence number at or below
// the flushed one). Recovery replays from min(m/walpos, m/rowpos): a
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
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

var keyMetaRowPos = []byte("m/rowpos")

const (
	// rowCheckpointChunk bounds the SKUs of one checkpoint batch (their
	// rows: one per region that wrote the SKU): at a million SKUs a row
	// insert costs a few µs, so a chunk adds a few ms to the commit it
	// follows.
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

// rowCheckpoint is a checkpoint in progress (under applyMu).
type rowCheckpoint struct {
	active bool
	c0     uint64
	skus   []string // the overlay's SKUs at the start, sorted
	next   int
}

// rowCheckpointStepLocked starts a checkpoint when the log rotated or the
// overlay is over its bound, and writes the next chunk of the one in
// progress. Called by the committer after a commit; callers hold applyMu.
func (s *Store) rowCheckpointStepLocked() error {
	if s.ov == nil || s.wal == nil {
		return nil
	}
	ck := &s.rowCk
	if !ck.active {
		rotated := s.wal.rotated.Swap(false)
		if !rotated && s.ov.rows <= cmp.Or(s.opts.rowOverlayMax, rowOverlayMaxRows) {
			return nil
		}
		// The SKUs in map order: each chunk sorts its own (one sort of
		// the whole overlay, 10^5 SKUs at a million, stalled the commit
		// it followed by tens of ms). With none, the checkpoint still
		// moves m/rowpos on.
		ck.skus = ck.skus[:0]
		for sku := range s.ov.skus {
			ck.skus = append(ck.skus, sku)
		}
		ck.active, ck.c0, ck.next = true, s.wal.lastPos(), 0
	}
	b := s.db.NewBatch()
	defer b.Close()
	// At least twice the rows the commit just added: a checkpoint then
	// drains the overlay faster than commits of many rows (a catalogue
	// loaded 4,096 rows a batch) fill it.
	chunk := max(cmp.Or(s.opts.rowCheckpointChunk, rowCheckpointChunk), 2*int(s.stageRows.n))
	start, n := ck.next, 0
	// In key order within the chunk: pebble inserts each key with a hint
	// from the previous one.
	slices.Sort(ck.skus[start:min(start+chunk, len(ck.skus))])
	var k []byte
	for ; ck.next < len(ck.skus) && ck.next < start+chunk; ck.next++ {
		sku := ck.skus[ck.next]
		e := s.ov.skus[sku]
		if e == nil {
			continue
		}
		for _, r := range e.rows {
			if r.pos <= ck.c0 {
				k = appendRowKey(k[:0], sku, r.region)
				if err := b.Set(k, r.val, nil); err != nil {
					return err
				}
				n++
			}
		}
	}
	last := ck.next == len(ck.skus)
	if last {
		if err := b.Set(keyMetaRowPos, appendU64(nil, ck.c0), nil); err != nil {
			return err
		}
	}
	_, seq, err := s.wal.append(b, s.applyMemRows, false, rowSpan{})
	if err != nil {
		return err
	}
	// Applied: the rows written leave the overlay (nothing changed them
	// since: the committer is here).
	s.ov.mu.Lock()
	for _, sku := range ck.skus[start:ck.next] {
		e := s.ov.skus[sku]
		if e == nil {
			continue
		}
		kept := e.rows[:0]
		for _, r := range e.rows {
			if r.pos > ck.c0 {
				kept = append(kept, r)
			}
		}
		s.ov.rows -= len(e.rows) - len(kept)
		if len(kept) == 0 {
			delete(s.ov.skus, sku)
		} else {
			clear(e.rows[len(kept):])
			e.rows = kept
		}
	}
	s.ov.mu.Unlock()
	s.wal.ckRows.Add(uint64(n))
	if last {
		ck.active = false
		s.wal.rowCheckpointed(ck.c0, seq)
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
// and the iterator made under the overlay's lock: a checkpoint applies
// rows to pebble before they leave the overlay, so the two together are
// one state. Callers hold dbMu (read) or applyMu, with the DB open.
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
// applied its value (or a newer one) to pebble, and a durable change is
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
