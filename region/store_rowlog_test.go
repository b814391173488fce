package region

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// rlCompareReaders reads the rows of a (rows out of the memtable) and b
// (rows in the memtable, same batches) through every reader and returns
// the first difference or error ("": none).
func rlCompareReaders(t *testing.T, step int, a, b *Store, skus int, lazy bool) (d string) {
	t.Helper()
	type failure struct{ msg string }
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			d = f.msg
		}
	}()
	fail := func(what string, got, want any) {
		panic(failure{fmt.Sprintf("step %d: %s differs:\n overlay  %+v\n memtable %+v", step, what, got, want)})
	}
	check := func(err error) {
		if err != nil {
			panic(failure{fmt.Sprintf("step %d: %v", step, err)})
		}
	}
	scan := func(s *Store, after string, from bool) []escrow.Row {
		var out []escrow.Row
		f := func(r *escrow.Row) error { out = append(out, r.Clone()); return nil }
		if from {
			check(s.ScanRowsFrom(after, f))
		} else {
			check(s.ScanRows(f))
		}
		return out
	}
	if ga, gb := scan(a, "", false), scan(b, "", false); !reflect.DeepEqual(ga, gb) {
		fail("ScanRows", ga, gb)
	}
	for _, after := range []string{"", "sku-1", "sku-15", "sku-7", "sku-99999"} {
		if ga, gb := scan(a, after, true), scan(b, after, true); !reflect.DeepEqual(ga, gb) {
			fail("ScanRowsFrom("+after+")", ga, gb)
		}
	}
	var names []string
	for i := 0; i <= skus; i++ { // one more: a SKU never written
		names = append(names, "sku-"+strconv.Itoa(i))
	}
	for _, sku := range names {
		ga, err := a.SKURows(sku, nil)
		check(err)
		gb, err := b.SKURows(sku, nil)
		check(err)
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
			panic(failure{fmt.Sprintf("step %d: no row was served from a read ahead", step)})
		}
	}
	ra, err := a.OwnRowsSince(0, 0)
	check(err)
	rb, err := b.OwnRowsSince(0, 0)
	check(err)
	if !reflect.DeepEqual(ra, rb) {
		fail("OwnRowsSince(0)", ra, rb)
	}
	if len(rb) > 2 {
		from := rb[len(rb)/2].Seq
		ra, err := a.OwnRowsSince(from, 2)
		check(err)
		rb, _ := b.OwnRowsSince(from, 2)
		if !reflect.DeepEqual(ra, rb) {
			fail(fmt.Sprintf("OwnRowsSince(%d, 2)", from), ra, rb)
		}
	}
	la, err := a.Load()
	check(err)
	lb, err := b.Load()
	check(err)
	if d := stDiff(la, lb); d != "" {
		fail("Load", d, "")
	}
	return ""
}

// TestRowOverlayReaders writes random batches to a store whose rows stay
// out of the memtable until a row checkpoint and to one with
// RowsInMemtable, and reads them back through every reader of rows
// (ScanRows, ScanRowsFrom, SKURows, the reads ahead, OwnRowsSince, Load)
// while rows are in the overlay, at every stage of a checkpoint (its table
// written; ingested, rows in both; rows removed),
// with batches applied while it is parked at one (rows it holds changed
// before the ingest or before their removal), and after; then after a
// clean reopen and after a crash. Planted and caught: a checkpoint that
// drops the active generation (the rows changed since its C0) with the
// frozen one, and readers that skip the frozen generation.
func TestRowOverlayReaders(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprintf("lazy=%v", lazy), func(t *testing.T) {
			if d := rlReadersRun(t, lazy, walBugs{}); d != "" {
				t.Fatal(d)
			}
		})
	}
	for _, bug := range []struct {
		name string
		bugs walBugs
	}{
		{"the active generation dropped with the frozen one", walBugs{dropActiveGen: true}},
		{"readers skip the frozen generation", walBugs{skipFrozenGen: true}},
	} {
		t.Run("planted: "+bug.name, func(t *testing.T) {
			d := rlReadersRun(t, false, bug.bugs)
			if d == "" {
				t.Fatalf("planted bug %q not caught", bug.name)
			}
			t.Logf("caught: %.400s", d)
		})
	}
}

// rlReadersRun is TestRowOverlayReaders's run: the first difference ("":
// none).
func rlReadersRun(t *testing.T, lazy bool, bugs walBugs) string {
	seed := stSeed(t)
	mem := vfs.NewCrashableMem()
	opts := ownOpts(mem, t)
	opts.WALFileBytes = 16 << 10 // a few checkpoints in the run
	opts.LazyRows, opts.PrefetchRows = lazy, lazy
	opts.walBugs = bugs
	p := newRLParker()
	opts.rowCkHook = p.hook
	a := stOpenWith(t, "db", opts) // ownCheckImage's directory
	defer func() { a.Close() }()
	defer func() { p.stop() }()
	optsB := opts
	optsB.RowsInMemtable, optsB.rowCkHook = true, nil
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
	maxOverlay, midCheckpoint, held := 0, 0, 0
	// On until a few batches were applied with a checkpoint parked (rows
	// written to the active generation while one is frozen: what the
	// planted dropActiveGen loses), whose count varies with the seed.
	const minHeld = 4
	for i := 0; i < steps || (held < minHeld && i < 4*steps); i++ {
		q := g.next()
		if err := a.Apply(q); err != nil {
			t.Fatal(err)
		}
		if err := b.Apply(q); err != nil {
			t.Fatal(err)
		}
		m.apply(q)
		maxOverlay = max(maxOverlay, a.ov.len())
		if a.rowCk != nil {
			midCheckpoint++
			if p.held {
				held++
			}
		}
		if i%7 == 0 || a.rowCk != nil {
			if d := rlCompareReaders(t, i, a, b, g.skus, lazy); d != "" {
				return d
			}
		}
		// Parked for the next batch at one stage or the other, every
		// other step.
		hold := [...]string{"", "built", "", "ingested"}[i%4]
		var d string
		p.drive(a, hold, func(stage string) {
			if d == "" {
				d = rlCompareReaders(t, i, a, b, g.skus, lazy)
			}
		})
		if d != "" {
			return fmt.Sprintf("at a checkpoint's stage: %s", d)
		}
	}
	p.drive(a, "", func(string) {})
	st := a.WALStats()
	t.Logf("seed %d: overlay up to %d rows, %d checks inside a checkpoint (%d parked across a batch), stages %v, %+v", seed, maxOverlay, midCheckpoint, held, p.stages, st)
	if maxOverlay == 0 || st.RowCheckpoints == 0 || st.CheckpointRows == 0 || held == 0 || p.stages["built"] == 0 || p.stages["ingested"] == 0 {
		t.Fatalf("the run did not exercise the overlay and checkpoints parked across batches: overlay up to %d, %d parked, stages %v, %+v", maxOverlay, held, p.stages, st)
	}
	if d := rlCompareReaders(t, steps, a, b, g.skus, lazy); d != "" {
		return d
	}
	want := m.state()
	// A crash keeps every Apply (all synced): the overlay's rows
	// come back from the log.
	img := mem.CrashClone(vfs.CrashCloneCfg{})
	eager := opts
	eager.LazyRows, eager.PrefetchRows, eager.rowCkHook = false, false, nil
	if d := ownCheckImage(t, img, eager, m); d != "" {
		return fmt.Sprintf("after a crash: %s", d)
	}
	// A clean close writes the overlay into pebble: the next
	// open replays nothing and reads the same.
	p.stop()
	p = newRLParker() // the deferred stop
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = stOpenWith(t, "db", eager)
	if d := stDiff(stLoad(t, a), want); d != "" {
		return fmt.Sprintf("after reopen: %s", d)
	}
	return ""
}

// rlParker parks the background part of a store's row checkpoints at
// each of its stages (StoreOptions.rowCkHook) until the test lets it go
// on, so that the test can read the store and crash a copy of its
// filesystem at every stage, or keep it parked while it applies batches.
type rlParker struct {
	parked  chan string
	release chan struct{}
	quit    chan struct{}
	held    bool
	ended   *rowCkJob
	stages  map[string]int // stages reached (and "done")
}

func newRLParker() *rlParker {
	return &rlParker{parked: make(chan string), release: make(chan struct{}), quit: make(chan struct{}), stages: map[string]int{}}
}

// hook is the store's rowCkHook.
func (p *rlParker) hook(stage string) {
	select {
	case p.parked <- stage:
	case <-p.quit:
		return
	}
	select {
	case <-p.release:
	case <-p.quit:
	}
}

// stop lets every checkpoint run freely (before the store closes).
func (p *rlParker) stop() { close(p.quit) }

// drive lets the background part of s's checkpoint in progress (if it has
// not ended) go through its stages, calling at with each stage while it is
// parked there and with "done" once it ended; it returns leaving it parked
// at stage hold ("": never), for the next drive to let go on. Called by
// the goroutine applying batches, between them.
func (p *rlParker) drive(s *Store, hold string, at func(stage string)) {
	job := s.rowCk
	if job == nil || job == p.ended {
		return
	}
	if p.held {
		p.held = false
		p.release <- struct{}{}
	}
	for {
		select {
		case st := <-p.parked:
			p.stages[st]++
			at(st)
			if st == hold {
				p.held = true
				return
			}
			p.release <- struct{}{}
		case <-job.done:
			p.ended = job
			p.stages["done"]++
			at("done")
			return
		}
	}
}

// rlNoTemps checks that the crashed image img, once opened, holds no row
// checkpoint table outside pebble's files.
func rlNoTemps(img *vfs.MemFS) string {
	names, err := img.List("db")
	if err != nil {
		return err.Error()
	}
	for _, n := range names {
		if strings.HasPrefix(n, rowCkTmpPrefix) {
			return fmt.Sprintf("%s left after the open", n)
		}
	}
	return ""
}

// rlCrashRun applies steps batches to an own-log store with opts and,
// after each, crashes a copy of the filesystem and checks that the copy
// holds every Apply; every flushEvery steps the test flushes pebble
// itself first (so that sstables hold m/walpos ahead of m/rowpos,
// whatever the timing of pebble's own flushes; 0: never). A checkpoint's
// background part is parked at each stage (its table written, not
// ingested; ingested, its rows still in the overlay; ended, m/rowpos not
// yet written) and a copy crashed there too; every third step it stays
// parked at one of them while the next batch is applied. It returns the
// first difference ("": none), the log's counters, the images taken
// while a checkpoint was in progress and while a completed one's
// m/rowpos was not yet flushed, and the stages crashed at.
func rlCrashRun(t *testing.T, mem *vfs.MemFS, opts StoreOptions, seed uint64, steps, flushEvery int) (d string, st WALStats, between, unflushed int, stages map[string]int) {
	t.Helper()
	p := newRLParker()
	opts.rowCkHook = p.hook
	s := stOpenWith(t, "db", opts)
	defer s.Close()
	defer p.stop()
	m := newStModel()
	g := newStGen(seed, m)
	check := func(i int, at string) string {
		img := mem.CrashClone(vfs.CrashCloneCfg{})
		d := ownCheckImage(t, img, opts, m)
		if d == "" {
			d = rlNoTemps(img)
		}
		if d != "" {
			return fmt.Sprintf("step %d%s: %s", i, at, d)
		}
		return ""
	}
	for i := 0; i < steps; i++ {
		g.applyNext(t, s)
		if flushEvery > 0 && i%flushEvery == flushEvery-1 {
			if err := s.db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if s.rowCk != nil {
			between++
		}
		if w := s.wal; w != nil {
			w.filesMu.Lock()
			if n := len(w.rowCks); n > 0 && w.rowCks[n-1].seq > w.flushes.seq.Load() {
				unflushed++
			}
			w.filesMu.Unlock()
		}
		if d := check(i, ""); d != "" {
			return d, s.WALStats(), between, unflushed, p.stages
		}
		hold := [...]string{"", "built", "ingested"}[i%3]
		p.drive(s, hold, func(stage string) {
			if d == "" {
				d = check(i, " (checkpoint "+stage+")")
			}
		})
		if d != "" {
			return d, s.WALStats(), between, unflushed, p.stages
		}
	}
	return "", s.WALStats(), between, unflushed, p.stages
}

// TestOwnWALCrashEveryStepRowCheckpoints: with row checkpoints started by
// a small overlay bound (and by each rotation), a crash after any Apply
// keeps it, and so does one at every stage of a checkpoint: its table
// written and not ingested (the table left behind is removed at open),
// ingested with its rows still in the overlay and m/rowpos not written,
// its rows removed and m/rowpos not written, m/rowpos written and not
// flushed; with batches applied while it is parked at a stage, after
// flushes that left m/rowpos behind m/walpos, and after truncations.
// Planted and caught: a truncation that ignores the row checkpoints, a
// recovery that starts at m/walpos, and m/rowpos set when a checkpoint
// starts (before its rows are in pebble).
func TestOwnWALCrashEveryStepRowCheckpoints(t *testing.T) {
	const seed = 17
	steps := 240
	if testing.Short() {
		steps = 120
	}
	set := func(o *StoreOptions) {
		o.rowOverlayMax = 10
	}
	mem := vfs.NewCrashableMem()
	opts := ownOpts(mem, t)
	set(&opts)
	d, st, between, unflushed, stages := rlCrashRun(t, mem, opts, seed, steps, 7)
	if d != "" {
		t.Fatal(d)
	}
	t.Logf("%d steps, %d in a checkpoint, %d with m/rowpos not yet flushed, stages %v: %+v", steps, between, unflushed, stages, st)
	if st.RowCheckpoints < 3 || st.Truncations == 0 || between == 0 || unflushed == 0 ||
		stages["built"] < 3 || stages["ingested"] < 3 || stages["done"] < 3 {
		t.Fatalf("the run did not exercise every stage of checkpoints, unflushed m/rowpos and truncation: stages %v, %+v", stages, st)
	}
	if st.CheckpointOverlaps != 0 {
		t.Fatalf("%d checkpoint tables overlapped the memtable (rows should be in the overlay only)", st.CheckpointOverlaps)
	}
	for _, bug := range []struct {
		name   string
		bugs   walBugs
		inline bool
	}{
		{"truncation ignores the row checkpoints", walBugs{ignoreRowCheckpoint: true}, false},
		{"recovery from m/walpos", walBugs{replayFromWALPos: true}, false},
		{"m/rowpos when the checkpoint starts", walBugs{rowPosAtStart: true}, false},
		{"inline: truncation ignores the row checkpoints", walBugs{ignoreRowCheckpoint: true}, true},
		{"inline: recovery from m/walpos", walBugs{replayFromWALPos: true}, true},
	} {
		t.Run(bug.name, func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			opts := ownOpts(mem, t)
			set(&opts)
			if bug.inline {
				opts.rowCkInlineMax = 1 << 20
			}
			opts.walBugs = bug.bugs
			d, _, _, _, _ := rlCrashRun(t, mem, opts, seed, steps, 7)
			if d == "" {
				t.Fatalf("planted bug %q not caught", bug.name)
			}
			t.Logf("caught: %s", d)
		})
	}
	// Checkpoints of a few rows go through the log as one batch with
	// m/rowpos (rowCheckpointInlineLocked): a crash after any Apply keeps
	// it too, with m/rowpos unflushed and after truncations.
	t.Run("inline", func(t *testing.T) {
		mem := vfs.NewCrashableMem()
		opts := ownOpts(mem, t)
		set(&opts)
		opts.rowCkInlineMax = 1 << 20
		d, st, between, unflushed, stages := rlCrashRun(t, mem, opts, seed, steps, 7)
		if d != "" {
			t.Fatal(d)
		}
		t.Logf("%d steps, %d with m/rowpos not yet flushed: %+v", steps, unflushed, st)
		if st.RowCheckpoints < 3 || st.CheckpointRows == 0 || st.Truncations == 0 || unflushed == 0 || between != 0 || len(stages) != 0 {
			t.Fatalf("the run did not exercise inline checkpoints (and only them), unflushed m/rowpos and truncation: %d in a background checkpoint, stages %v, %+v", between, stages, st)
		}
	})
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

// nextRowsAndHolds applies five of g's batches to s, then more until the
// next one has rows and holds; it returns that one, not applied, and a
// copy of the model before it.
func nextRowsAndHolds(t *testing.T, s *Store, g *stGen, m *stModel) (*escrow.Persist, *stModel) {
	t.Helper()
	for i := 0; i < 5; i++ {
		g.applyNext(t, s)
	}
	for {
		before := m.clone()
		p := g.next()
		if len(p.Rows) > 0 && len(p.Holds) > 0 {
			return p, before
		}
		if err := s.Apply(p); err != nil {
			t.Fatal(err)
		}
		m.apply(p)
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
		p, before := nextRowsAndHolds(t, s, newStGen(31, m), m)
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

// TestRowCheckpointIngestSyncsLog: a batch written ahead (its record only
// buffered) whose rows a checkpoint then ingests must not reach pebble
// without its record: the checkpoint makes the log durable up to its C0
// before the ingest, so a crash after the ingest keeps the batch whole.
// Without that (planted) the crashed store has the batch's rows and not
// its holds.
func TestRowCheckpointIngestSyncsLog(t *testing.T) {
	run := func(bugs walBugs) string {
		mem := vfs.NewCrashableMem()
		opts := ownOpts(mem, t)
		opts.WALFileBytes = 1 << 20  // no rotation
		opts.MemTableBytes = 4 << 20 // no flush of pebble's (it would sync the log)
		opts.rowOverlayMax = 1 << 20 // no checkpoint until the batch written ahead
		opts.walBugs = bugs
		p := newRLParker()
		opts.rowCkHook = p.hook
		s := stOpenWith(t, "db", opts)
		defer s.Close()
		defer p.stop()
		m := newStModel()
		q, before := nextRowsAndHolds(t, s, newStGen(37, m), m)
		s.opts.rowOverlayMax = 1 // the batch written ahead starts a checkpoint
		pc, err := s.WriteAhead(q)
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Wait(); err != nil {
			t.Fatal(err)
		}
		m.apply(q)
		if s.rowCk == nil {
			t.Fatal("the batch written ahead started no checkpoint")
		}
		var d string
		p.drive(s, "", func(stage string) {
			if stage == "ingested" {
				d = ownCheckImage(t, mem.CrashClone(vfs.CrashCloneCfg{}), opts, before, m)
			}
		})
		if p.stages["ingested"] != 1 {
			t.Fatalf("the checkpoint ingested nothing: stages %v", p.stages)
		}
		return d
	}
	if d := run(walBugs{}); d != "" {
		t.Fatalf("a checkpoint ingesting the rows of a batch written ahead, then a crash: %s", d)
	}
	if d := run(walBugs{ingestBeforeDurable: true}); d == "" {
		t.Fatal("planted bug ingestBeforeDurable not caught")
	} else {
		t.Logf("caught: %.400s", d)
	}
}

// TestRowCheckpointIngestFails: a checkpoint whose table cannot be written
// fails the store like any failed write (ErrStoreFailed, naming the
// checkpoint); the rows stay in the log, and a reopen on a healthy disk
// holds every acknowledged batch, without the table left behind.
func TestRowCheckpointIngestFails(t *testing.T) {
	mem := vfs.NewCrashableMem()
	var on atomic.Bool
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if on.Load() && strings.Contains(op.Path, rowCkTmpPrefix) && op.Kind == errorfs.OpFileSync {
			return errorfs.ErrInjected
		}
		return nil
	}))
	opts := ownOpts(fs, t)
	opts.rowOverlayMax = 10
	s := stOpenWith(t, "db", opts)
	defer s.Close()
	m := newStModel()
	g := newStGen(41, m)
	for i := 0; i < 20; i++ {
		g.applyNext(t, s)
	}
	s.waitRowCheckpoint()
	g.applyNext(t, s) // writes its m/rowpos
	if s.WALStats().RowCheckpoints == 0 {
		t.Fatal("no checkpoint before the failure")
	}
	on.Store(true)
	// A checkpoint started before may have synced its table already: it
	// ends first. Every one started from now on fails; the test waits for
	// it to end (an Apply does not: its job may not have run yet), and the
	// next Apply reports the failure.
	s.waitRowCheckpoint()
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		q := g.next()
		if err = s.Apply(q); err == nil {
			m.apply(q)
			s.waitRowCheckpoint()
		}
	}
	if !errors.Is(err, ErrStoreFailed) || !strings.Contains(err.Error(), "row checkpoint") {
		t.Fatalf("Apply after a failed checkpoint: %v, want ErrStoreFailed naming the checkpoint", err)
	}
	on.Store(false)
	if err := s.Reopen(); err != nil {
		t.Fatalf("Reopen on a healthy disk: %v", err)
	}
	if d := stDiff(stLoad(t, s), m.state()); d != "" {
		t.Logf("the failed batch survived the reopen (allowed): %.200s", d)
	}
	names, _ := mem.List("db")
	for _, n := range names {
		if strings.HasPrefix(n, rowCkTmpPrefix) {
			t.Fatalf("%s left after the reopen", n)
		}
	}
}

// waitRowCheckpoint waits for the background part of the checkpoint in
// progress, if any (called by the goroutine applying batches).
func (s *Store) waitRowCheckpoint() {
	if j := s.rowCk; j != nil {
		<-j.done
	}
}
