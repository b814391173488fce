package region

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// rlRows collects what a row reader returns.
func rlScan(t *testing.T, s *Store, after string, from bool) []escrow.Row {
	t.Helper()
	var out []escrow.Row
	f := func(r *escrow.Row) error { out = append(out, r.Clone()); return nil }
	var err error
	if from {
		err = s.ScanRowsFrom(after, f)
	} else {
		err = s.ScanRows(f)
	}
	if err != nil {
		t.Fatalf("scan rows (after %q): %v", after, err)
	}
	return out
}

// rlCompareReaders reads the rows of a (rows out of the memtable) and b
// (rows in the memtable, same batches) through every reader and fails on
// a difference.
func rlCompareReaders(t *testing.T, step int, a, b *Store, skus int, lazy bool) {
	t.Helper()
	fail := func(what string, got, want any) {
		t.Helper()
		t.Fatalf("step %d: %s differs:\n overlay  %+v\n memtable %+v", step, what, got, want)
	}
	if ga, gb := rlScan(t, a, "", false), rlScan(t, b, "", false); !reflect.DeepEqual(ga, gb) {
		fail("ScanRows", ga, gb)
	}
	for _, after := range []string{"", "sku-1", "sku-15", "sku-7", "sku-99999"} {
		if ga, gb := rlScan(t, a, after, true), rlScan(t, b, after, true); !reflect.DeepEqual(ga, gb) {
			fail("ScanRowsFrom("+after+")", ga, gb)
		}
	}
	var names []string
	for i := 0; i <= skus; i++ { // one more: a SKU never written
		names = append(names, "sku-"+strconv.Itoa(i))
	}
	for _, sku := range names {
		ga, err := a.SKURows(sku, nil)
		if err != nil {
			t.Fatal(err)
		}
		gb, err := b.SKURows(sku, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ga, gb) {
			fail("SKURows("+sku+")", ga, gb)
		}
	}
	if lazy {
		// Read ahead, then served from the read ahead.
		served := a.PrefetchStats().Served
		a.PrefetchRows(slices.Clone(names)...)
		b.PrefetchRows(slices.Clone(names)...)
		for _, sku := range names {
			ga, _ := a.SKURows(sku, nil)
			gb, _ := b.SKURows(sku, nil)
			if !reflect.DeepEqual(ga, gb) {
				fail("prefetched SKURows("+sku+")", ga, gb)
			}
		}
		if a.PrefetchStats().Served == served {
			t.Fatalf("step %d: no row was served from a read ahead", step)
		}
	}
	ra, err := a.OwnRowsSince(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.OwnRowsSince(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ra, rb) {
		fail("OwnRowsSince(0)", ra, rb)
	}
	if len(rb) > 2 {
		from := rb[len(rb)/2].Seq
		ra, err := a.OwnRowsSince(from, 2)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := b.OwnRowsSince(from, 2)
		if !reflect.DeepEqual(ra, rb) {
			fail(fmt.Sprintf("OwnRowsSince(%d, 2)", from), ra, rb)
		}
	}
	la, err := a.Load()
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	if d := stDiff(la, lb); d != "" {
		fail("Load", d, "")
	}
}

// TestRowOverlayReaders writes random batches to a store whose rows stay
// out of the memtable until a row checkpoint and to one with
// RowsInMemtable, and reads them back through every reader of rows
// (ScanRows, ScanRowsFrom, SKURows, the reads ahead, OwnRowsSince, Load)
// while rows are in the overlay, in a checkpoint's chunks, and after; then
// after a clean reopen and after a crash.
func TestRowOverlayReaders(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprintf("lazy=%v", lazy), func(t *testing.T) {
			seed := stSeed(t)
			mem := vfs.NewCrashableMem()
			opts := ownOpts(mem, t)
			opts.WALFileBytes = 16 << 10 // a few checkpoints in the run
			opts.rowCheckpointChunk = 7  // of several chunks each
			opts.LazyRows, opts.PrefetchRows = lazy, lazy
			a := stOpenWith(t, "db", opts) // ownCheckImage's directory
			defer a.Close()
			optsB := opts
			optsB.RowsInMemtable = true
			b := stOpenWith(t, "b", optsB)
			defer b.Close()
			if a.ov == nil || b.ov != nil {
				t.Fatalf("overlay: %v with rows out of the memtable, %v with RowsInMemtable", a.ov != nil, b.ov != nil)
			}
			m := newStModel()
			g := newStGen(seed, m)
			g.skus = 40
			steps := 160
			if testing.Short() {
				steps = 80
			}
			maxOverlay, midCheckpoint := 0, 0
			for i := 0; i < steps; i++ {
				p := g.next()
				if err := a.Apply(p); err != nil {
					t.Fatal(err)
				}
				if err := b.Apply(p); err != nil {
					t.Fatal(err)
				}
				m.apply(p)
				maxOverlay = max(maxOverlay, a.ov.len())
				if a.rowCk.active {
					midCheckpoint++
				}
				if i%7 == 0 || a.rowCk.active {
					rlCompareReaders(t, i, a, b, g.skus, lazy)
				}
			}
			st := a.WALStats()
			t.Logf("seed %d: overlay up to %d rows, %d checks inside a checkpoint, %+v", seed, maxOverlay, midCheckpoint, st)
			if maxOverlay == 0 || st.RowCheckpoints == 0 || st.CheckpointRows == 0 || midCheckpoint == 0 {
				t.Fatalf("the run did not exercise the overlay and checkpoints in chunks: overlay up to %d, %d checks mid-checkpoint, %+v", maxOverlay, midCheckpoint, st)
			}
			rlCompareReaders(t, steps, a, b, g.skus, lazy)
			want := m.state()
			// A crash keeps every Apply (all synced): the overlay's rows
			// come back from the log.
			img := mem.CrashClone(vfs.CrashCloneCfg{})
			eager := opts
			eager.LazyRows, eager.PrefetchRows = false, false // Load reads the rows
			if d := ownCheckImage(t, img, eager, m); d != "" {
				t.Fatalf("after a crash: %s", d)
			}
			// A clean close writes the overlay into pebble: the next
			// open replays nothing and reads the same.
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			opts.LazyRows, opts.PrefetchRows = false, false
			a = stOpenWith(t, "db", opts)
			if d := stDiff(stLoad(t, a), want); d != "" {
				t.Fatalf("after reopen: %s", d)
			}
		})
	}
}

// rlCrashRun applies steps batches to an own-log store with opts and,
// after each, crashes a copy of the filesystem and checks that the copy
// holds every Apply; every flushEvery steps the test flushes pebble
// itself first (so that sstables hold m/walpos ahead of m/rowpos,
// whatever the timing of pebble's own flushes; 0: never). It returns the first
// difference ("": none), the log's counters, and the images taken while
// a checkpoint was between its chunks and while a completed one was not
// yet flushed.
func rlCrashRun(t *testing.T, mem *vfs.MemFS, opts StoreOptions, seed uint64, steps, flushEvery int) (d string, st WALStats, between, unflushed int) {
	t.Helper()
	s := stOpenWith(t, "db", opts)
	defer s.Close()
	m := newStModel()
	g := newStGen(seed, m)
	for i := 0; i < steps; i++ {
		g.applyNext(t, s)
		if flushEvery > 0 && i%flushEvery == flushEvery-1 {
			if err := s.db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if s.rowCk.active {
			between++
		}
		if w := s.wal; w != nil {
			w.filesMu.Lock()
			if n := len(w.rowCks); n > 0 && w.rowCks[n-1].seq > w.flushes.seq.Load() {
				unflushed++
			}
			w.filesMu.Unlock()
		}
		img := mem.CrashClone(vfs.CrashCloneCfg{})
		if d := ownCheckImage(t, img, opts, m); d != "" {
			return fmt.Sprintf("step %d: %s", i, d), s.WALStats(), between, unflushed
		}
	}
	return "", s.WALStats(), between, unflushed
}

// TestOwnWALCrashEveryStepRowCheckpoints: with row checkpoints of a few
// rows per chunk started by a small overlay bound (and by each rotation),
// a crash after any Apply keeps it: images taken while a checkpoint is
// between its chunks, after one completed and before pebble flushed it,
// after flushes that left m/rowpos behind m/walpos, and after
// truncations. A truncation that ignores the row checkpoints and a
// recovery that starts at m/walpos (planted) are caught.
func TestOwnWALCrashEveryStepRowCheckpoints(t *testing.T) {
	const seed = 17
	steps := 240
	if testing.Short() {
		steps = 120
	}
	set := func(o *StoreOptions) {
		o.rowCheckpointChunk = 3
		o.rowOverlayMax = 10
	}
	mem := vfs.NewCrashableMem()
	opts := ownOpts(mem, t)
	set(&opts)
	d, st, between, unflushed := rlCrashRun(t, mem, opts, seed, steps, 7)
	if d != "" {
		t.Fatal(d)
	}
	t.Logf("%d steps, %d between chunks, %d with a checkpoint not yet flushed: %+v", steps, between, unflushed, st)
	if st.RowCheckpoints < 3 || st.Truncations == 0 || between == 0 || unflushed == 0 {
		t.Fatalf("the run did not exercise checkpoints in chunks, unflushed checkpoints and truncation: %+v", st)
	}
	for _, bug := range []struct {
		name string
		bugs walBugs
	}{
		{"truncation ignores the row checkpoints", walBugs{ignoreRowCheckpoint: true}},
		{"recovery from m/walpos", walBugs{replayFromWALPos: true}},
	} {
		t.Run(bug.name, func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			opts := ownOpts(mem, t)
			set(&opts)
			opts.walBugs = bug.bugs
			d, _, _, _ := rlCrashRun(t, mem, opts, seed, steps, 7)
			if d == "" {
				t.Fatalf("planted bug %q not caught", bug.name)
			}
			t.Logf("caught: %s", d)
		})
	}
}

// TestRowsInMemtableSwitch: a store moves between rows in the overlay and
// rows in the memtable (and pebble's WAL) across reopens, crashes
// included, without losing a row.
func TestRowsInMemtableSwitch(t *testing.T) {
	mem := vfs.NewCrashableMem()
	m := newStModel()
	g := newStGen(29, m)
	fs := vfs.FS(mem)
	for round, set := range []func(*StoreOptions){
		func(o *StoreOptions) {},
		func(o *StoreOptions) { o.RowsInMemtable = true },
		func(o *StoreOptions) {},
		func(o *StoreOptions) { o.WAL = WALPebble },
		func(o *StoreOptions) {},
	} {
		opts := ownOpts(fs, t)
		set(&opts)
		s := stOpenWith(t, "db", opts)
		if d := stDiff(stLoad(t, s), m.state()); d != "" {
			t.Fatalf("round %d: at open: %s", round, d)
		}
		for i := 0; i < 40; i++ {
			g.applyNext(t, s)
		}
		// A crash (the overlay's rows only in the log), then the next mode.
		img := fs.(*vfs.MemFS).CrashClone(vfs.CrashCloneCfg{})
		s.Close()
		fs = img
	}
	opts := ownOpts(fs, t)
	s := stOpenWith(t, "db", opts)
	defer s.Close()
	if d := stDiff(stLoad(t, s), m.state()); d != "" {
		t.Fatalf("at the end: %s", d)
	}
}

// TestRowOverlayFlushSyncsLog: a batch written ahead (its record only
// buffered) and then flushed by pebble must not reach sstables without
// its rows: the flush makes the log durable first, so a crash after it
// keeps the batch whole (its rows replayed from the log). Without that
// (planted) the crashed store has the batch's holds and not its rows.
func TestRowOverlayFlushSyncsLog(t *testing.T) {
	run := func(bugs walBugs) string {
		mem := vfs.NewCrashableMem()
		opts := ownOpts(mem, t)
		opts.WALFileBytes = 1 << 20 // no rotation: no checkpoint moves the rows
		opts.walBugs = bugs
		s := stOpenWith(t, "db", opts)
		defer s.Close()
		m := newStModel()
		g := newStGen(31, m)
		for i := 0; i < 5; i++ {
			g.applyNext(t, s)
		}
		before := m.clone()
		var p *escrow.Persist
		for p == nil || len(p.Rows) == 0 || len(p.Holds) == 0 {
			if p != nil {
				if err := s.Apply(p); err != nil {
					t.Fatal(err)
				}
				m.apply(p)
				before = m.clone()
			}
			p = g.next()
		}
		pc, err := s.WriteAhead(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Wait(); err != nil {
			t.Fatal(err)
		}
		m.apply(p)
		if s.ov.len() == 0 {
			t.Fatal("the batch's rows are not in the overlay")
		}
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
		img := mem.CrashClone(vfs.CrashCloneCfg{})
		return ownCheckImage(t, img, opts, before, m)
	}
	if d := run(walBugs{}); d != "" {
		t.Fatalf("a flush after a batch written ahead, then a crash: %s", d)
	}
	if d := run(walBugs{noFlushSync: true}); d == "" {
		t.Fatal("planted bug noFlushSync not caught")
	} else {
		t.Logf("caught: %s", d)
	}
}
