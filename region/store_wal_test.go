package region

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// isWALPath reports whether path is a write-ahead-log file: pebble's
// (.log) or the store's own (store_wal.go).
func isWALPath(path string) bool {
	return strings.HasSuffix(path, ".log") || strings.HasSuffix(path, walFileSuffix)
}

// ownOpts are the options of the own-log tests: small log files and a
// small memtable, so that rotations, recycling, truncations and pebble
// flushes all happen within a few hundred batches.
func ownOpts(fs vfs.FS, t testing.TB) StoreOptions {
	return StoreOptions{Region: stRegion, FS: fs, Logger: stLogger(t), CacheBytes: 1 << 20, MemTableBytes: 64 << 10,
		WAL: WALOwn, WALFileBytes: 4 << 10,
		// Checkpoints ingest tables, however few their rows: the tests of
		// the inline path (rowCheckpointInlineLocked) set their own bound.
		rowCkInlineMax: -1}
}

// ownCheckImage opens the crashed image img and returns how its state
// differs from every candidate (the acknowledged state, then possibly the
// state with the batch in flight): "" when it equals one of them.
func ownCheckImage(t *testing.T, img *vfs.MemFS, opts StoreOptions, candidates ...*stModel) string {
	t.Helper()
	opts.FS = img
	s, err := OpenStore("db", opts)
	if err != nil {
		return fmt.Sprintf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.Load()
	if err != nil {
		return fmt.Sprintf("load: %v", err)
	}
	var d string
	for _, c := range candidates {
		if d = stDiff(got, c.state()); d == "" {
			stCheckIndexes(t, s, c)
			return ""
		}
	}
	return d
}

// ownCrashReopen crashes fs keeping only synced data, closes s and opens
// the store again on the crashed image, which it returns with the store.
func ownCrashReopen(t *testing.T, s *Store, fs *vfs.MemFS, opts StoreOptions) (*Store, *vfs.MemFS) {
	t.Helper()
	img := fs.CrashClone(vfs.CrashCloneCfg{})
	s.Close()
	opts.FS = img
	return stOpenWith(t, "db", opts), img
}

// ownCrashRun applies steps batches to an own-log store and, after each,
// crashes a copy of the filesystem keeping only synced data: every Apply
// that returned must be in the copy. It returns the first difference ("":
// none) and the log's counters.
func ownCrashRun(t *testing.T, seed uint64, steps int, bugs walBugs) (string, WALStats) {
	t.Helper()
	mem := vfs.NewCrashableMem()
	opts := ownOpts(mem, t)
	opts.walBugs = bugs
	return ownCrashRunWith(t, mem, opts, seed, steps)
}

// ownCrashRunWith is ownCrashRun with the store's options.
// It is rlCrashRun without the test's own flushes.
func ownCrashRunWith(t *testing.T, mem *vfs.MemFS, opts StoreOptions, seed uint64, steps int) (string, WALStats) {
	t.Helper()
	d, st, _, _, _ := rlCrashRun(t, mem, opts, seed, steps, 0)
	return d, st
}

// ownCrashEverySteps runs ownCrashRunWith for steps (shortSteps with
// -short) on a new crashable filesystem with ownOpts changed by set, fails
// t on a crash image that lost an acknowledged batch and returns the steps
// and the log's counters, for the caller to check what the run exercised.
func ownCrashEverySteps(t *testing.T, seed uint64, steps, shortSteps int, set func(*StoreOptions)) (int, WALStats) {
	t.Helper()
	t.Logf("seed %d", seed)
	if testing.Short() {
		steps = shortSteps
	}
	mem := vfs.NewCrashableMem()
	opts := ownOpts(mem, t)
	set(&opts)
	d, st := ownCrashRunWith(t, mem, opts, seed, steps)
	if d != "" {
		t.Fatal(d)
	}
	t.Logf("%d steps: %+v", steps, st)
	return steps, st
}

// TestOwnWALCrashEveryStep: with the own log, a crash after any Apply
// keeps it (the log was fdatasynced before Apply returned), across file
// rotations, recycled files and truncations.
func TestOwnWALCrashEveryStep(t *testing.T) {
	steps, st := ownCrashEverySteps(t, 11, 300, 120, func(o *StoreOptions) {
		o.walForceBytes = 1 << 30 // truncation after pebble's own flushes only
	})
	if st.Truncations == 0 || st.Syncs < uint64(steps) {
		t.Fatalf("the run did not exercise truncation and one sync per Apply: %+v", st)
	}
	if st.Forced != 0 {
		t.Fatalf("the log forced %d flushes, want truncations after pebble's own flushes only: %+v", st.Forced, st)
	}
}

// TestOwnWALCrashEveryStepEarlySync: with every synced batch written and
// fdatasynced by the early syncer while its memtable apply runs, a crash
// after any Apply still keeps it, across rotations and truncations; and a
// reply before the fdatasync (planted) is caught on this path too.
func TestOwnWALCrashEveryStepEarlySync(t *testing.T) {
	const seed = 13
	steps, st := ownCrashEverySteps(t, seed, 200, 80, func(o *StoreOptions) { o.walEarlyBytes = 1 })
	if st.EarlySyncs == 0 || st.Truncations == 0 {
		t.Fatalf("the run did not exercise early syncs and truncation: %+v", st)
	}
	mem := vfs.NewCrashableMem()
	opts := ownOpts(mem, t)
	opts.walEarlyBytes = 1
	opts.walBugs = walBugs{noSync: true}
	if d, _ := ownCrashRunWith(t, mem, opts, seed, steps); d == "" {
		t.Fatal("planted bug noSync was not caught with early syncs")
	}
}

// TestOwnWALCrashEveryStepForcedFlush: a log whose memtable is too large
// for its limit forces pebble's flushes, and a crash after any Apply keeps
// it across those truncations too.
func TestOwnWALCrashEveryStepForcedFlush(t *testing.T) {
	_, st := ownCrashEverySteps(t, 12, 200, 100, func(o *StoreOptions) {
		o.MemTableBytes = 8 << 20 // never full in this run
		o.walForceBytes = 8 * o.WALFileBytes
	})
	if st.Forced == 0 || st.Truncations == 0 {
		t.Fatalf("the run did not force a flush and truncate after it: %+v", st)
	}
}

// TestOwnWALPlantedBugs: the crash check catches a log that answers
// before its fdatasync, a recovery that replays from the wrong position,
// and a truncation that drops (and recycles) a file before pebble flushed
// its batches.
func TestOwnWALPlantedBugs(t *testing.T) {
	for _, tc := range []struct {
		name string
		bugs walBugs
	}{
		{"reply before fdatasync", walBugs{noSync: true}},
		{"replay from the wrong position", walBugs{replayFromNext: true}},
		{"drop a file before pebble flushed it", walBugs{dropUnflushed: true}},
		{"drop a file no flushed row checkpoint covers", walBugs{ignoreRowCheckpoint: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := ownCrashRun(t, 11, 120, tc.bugs)
			if d == "" {
				t.Fatalf("planted bug %q not caught", tc.name)
			}
			t.Logf("caught: %s", d)
		})
	}
}

// ownLastFile returns the number and bytes of the newest own-log file.
func ownLastFile(t *testing.T, fs vfs.FS) (uint64, []byte) {
	t.Helper()
	dir := fs.PathJoin("db", walDirName)
	nums, err := listWAL(fs, dir)
	if err != nil || len(nums) == 0 {
		t.Fatalf("no own-log files: %v", err)
	}
	num := nums[len(nums)-1]
	f, err := fs.Open(fs.PathJoin(dir, walFileName(num)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return num, data
}

func ownWriteFile(t *testing.T, fs vfs.FS, num uint64, data []byte) {
	t.Helper()
	f, err := fs.Create(fs.PathJoin("db", walDirName, walFileName(num)), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// ownRecordStarts returns the offsets of the valid records of file num.
func ownRecordStarts(num uint64, data []byte) []int {
	var starts []int
	off := 0
	for off+walHeaderLen <= len(data) {
		n := int(binary.LittleEndian.Uint32(data[off+4:]))
		if n == 0 || off+walHeaderLen+n > len(data) || binary.LittleEndian.Uint64(data[off+8:]) != num {
			break
		}
		starts = append(starts, off)
		off += walHeaderLen + n
	}
	return starts
}

// TestOwnWALTornAndStaleRecords: a crash image whose last record is torn
// recovers every batch before it; a file holding another file's records
// (a reused file's stale bytes) replays none of them.
func TestOwnWALTornAndStaleRecords(t *testing.T) {
	mem := vfs.NewCrashableMem()
	opts := ownOpts(mem, t)
	opts.WALFileBytes = 64 << 10 // every batch in one file
	s := stOpenWith(t, "db", opts)
	defer s.Close()
	m := newStModel()
	g := newStGen(5, m)
	var before *stModel
	for i := 0; i < 6; i++ {
		before = m.clone()
		g.applyNext(t, s)
	}
	img := mem.CrashClone(vfs.CrashCloneCfg{})
	num, data := ownLastFile(t, img)
	starts := ownRecordStarts(num, data)
	if len(starts) < 6 {
		t.Fatalf("file %d holds %d records, want at least 6", num, len(starts))
	}
	if d := ownCheckImage(t, img.CrashClone(vfs.CrashCloneCfg{}), opts, m); d != "" {
		t.Fatalf("untouched image: %s", d)
	}

	// Torn: the last record's second half never reached the disk.
	torn := img.CrashClone(vfs.CrashCloneCfg{})
	last := starts[len(starts)-1]
	end := last + walHeaderLen + int(binary.LittleEndian.Uint32(data[last+4:]))
	cut := append([]byte(nil), data...)
	clear(cut[(last+end)/2 : end])
	ownWriteFile(t, torn, num, cut)
	if d := ownCheckImage(t, torn, opts, before); d != "" {
		t.Fatalf("torn last record: want every batch before it: %s", d)
	}

	// Stale: the records sit in a file of another number (a recycled
	// file's old bytes): they are not replayed, so the last file's
	// batches are missing and nothing else is.
	stale := img.CrashClone(vfs.CrashCloneCfg{})
	if err := stale.Rename(stale.PathJoin("db", walDirName, walFileName(num)), stale.PathJoin("db", walDirName, walFileName(num+7))); err != nil {
		t.Fatal(err)
	}
	recs, err := readWALFile(stale, stale.PathJoin("db", walDirName), num+7)
	if err != nil || len(recs) != 0 {
		t.Fatalf("file %d holding file %d's records: read %d records (%v), want none", num+7, num, len(recs), err)
	}
	if d := ownCheckImage(t, stale, opts, m); d == "" {
		t.Fatalf("a renamed file's records were replayed")
	}
}

// TestOwnWALCrashBetweenSyncAndFlush: a batch whose record is synced but
// which never reached pebble's sstables (the memtable dies with the
// process) is replayed at open, and the replay is flushed: a second crash
// right after the reopen keeps it too.
func TestOwnWALCrashBetweenSyncAndFlush(t *testing.T) {
	mem := vfs.NewCrashableMem()
	opts := ownOpts(mem, t)
	s := stOpenWith(t, "db", opts)
	m := newStModel()
	g := newStGen(9, m)
	for i := 0; i < 10; i++ {
		g.applyNext(t, s)
	}
	s, img := ownCrashReopen(t, s, mem, opts)
	if d := stDiff(stLoad(t, s), m.state()); d != "" {
		t.Fatalf("after the first crash: %s", d)
	}
	// The second image's pebble holds the replayed batches: its wal
	// position is the last one.
	s, _ = ownCrashReopen(t, s, img, opts)
	defer s.Close()
	pos, err := readWALPos(s.db)
	if err != nil || pos < 10 {
		t.Fatalf("pebble's wal position after a replay and a crash: %d (%v), want >= 10", pos, err)
	}
	if d := stDiff(stLoad(t, s), m.state()); d != "" {
		t.Fatalf("after the second crash: %s", d)
	}
}

// TestOwnWALCrashDuringTruncation crashes (synced data only) at every
// write the log's background work makes (renaming a recycled file,
// zero-filling, removing files) and pebble's flushes that truncation
// follows: the image holds every acknowledged batch, and at most the one
// in flight besides.
func TestOwnWALCrashDuringTruncation(t *testing.T) {
	const seed = 13
	t.Logf("seed %d", seed)
	mem := vfs.NewCrashableMem()
	// acked is read before and after the image: the image holds every
	// batch acknowledged before it and none beyond the one in flight after.
	type shot struct {
		img        *vfs.MemFS
		from, upTo int
	}
	var (
		mu      sync.Mutex
		shots   []shot
		inFlush int // images taken inside pebble's flushes
		acked   atomic.Int64
	)
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() != errorfs.OpIsWrite {
			return nil
		}
		// At most 60 images inside pebble's flushes and 60 inside the
		// log's own background work.
		flush := stCalledFrom("(*DB).flush1")
		if flush || stCalledFrom("(*ownWAL).truncate") || stCalledFrom("(*ownWAL).prepare") {
			mu.Lock()
			if n := len(shots) - inFlush; (flush && inFlush < 60) || (!flush && n < 60) {
				if flush {
					inFlush++
				}
				from := int(acked.Load())
				img := mem.CrashClone(vfs.CrashCloneCfg{})
				shots = append(shots, shot{img: img, from: from, upTo: int(acked.Load()) + 1})
			}
			mu.Unlock()
		}
		return nil
	}))
	opts := ownOpts(fs, t)
	s := stOpenWith(t, "db", opts)
	m := newStModel()
	g := newStGen(seed, m)
	history := []*stModel{m.clone()}
	for i := 0; i < 250; i++ {
		g.applyNext(t, s)
		history = append(history, m.clone())
		acked.Add(1)
		// A row checkpoint's job runs beside the Applies, which never
		// block here: on a busy or single CPU it may not run at all, and
		// without its m/rowpos no file may be dropped. Every 8th batch
		// waits for the one in progress, so that truncations happen while
		// most batches still overlap a job.
		if i%8 == 7 {
			s.waitRowCheckpoint()
		}
	}
	st := s.WALStats()
	s.Close()
	mu.Lock()
	defer mu.Unlock()
	if st.Truncations == 0 || inFlush == 0 || len(shots) == inFlush {
		t.Fatalf("no crash inside truncation and pebble's flushes: %+v, %d images (%d in flushes)", st, len(shots), inFlush)
	}
	opts.FS = nil
	for i, sh := range shots {
		cands := history[sh.from:min(sh.upTo+1, len(history))]
		if d := ownCheckImage(t, sh.img, opts, cands...); d != "" {
			t.Fatalf("image %d (after %d..%d acknowledged batches): %s", i, sh.from, sh.upTo-1, d)
		}
	}
	t.Logf("%d crash images inside background work checked (%d in pebble's flushes); %+v", len(shots), inFlush, st)
}

// TestOwnWALFailedSync: a failed fdatasync of the log fails the Apply (no
// reply), fails every later one without another fdatasync, and a reopen
// on a healthy disk holds every acknowledged batch.
func TestOwnWALFailedSync(t *testing.T) {
	for _, early := range []bool{false, true} {
		t.Run(fmt.Sprintf("early=%v", early), func(t *testing.T) { testOwnWALFailedSync(t, early) })
	}
}

// testOwnWALFailedSync is TestOwnWALFailedSync, with early: every synced
// batch's fdatasync runs on the early syncer.
func testOwnWALFailedSync(t *testing.T, early bool) {
	mem := vfs.NewCrashableMem()
	var on atomic.Bool
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		// Every fdatasync of a log file fails, the log's and those of a
		// file being prepared in the background alike; the log's own are
		// counted by the store (syncCalls), so that preparing a file
		// cannot look like a retry.
		if on.Load() && strings.HasSuffix(op.Path, walFileSuffix) && op.Kind == errorfs.OpFileSyncData {
			return errorfs.ErrInjected
		}
		return nil
	}))
	opts := ownOpts(fs, t)
	if early {
		opts.walEarlyBytes = 1
	}
	s := stOpenWith(t, "db", opts)
	m := newStModel()
	g := newStGen(3, m)
	for i := 0; i < 5; i++ {
		g.applyNext(t, s)
	}
	if early {
		waitFor(t, 5*time.Second, "the early syncer to run", func() bool { return s.WALStats().EarlySyncs > 0 })
	}
	before := s.walSyncCalls()
	on.Store(true)
	if err := s.Apply(g.next()); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Apply with a failing fdatasync: %v, want ErrStoreFailed", err)
	}
	n := s.walSyncCalls()
	if n == before {
		t.Fatal("the failed Apply began no fdatasync of the log")
	}
	if err := s.Apply(g.next()); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Apply after a failed fdatasync: %v, want ErrStoreFailed", err)
	}
	if s.walSyncCalls() != n {
		t.Fatalf("the fdatasync was retried after it failed")
	}
	if _, err := s.Load(); err == nil {
		t.Fatal("Load of a failed store succeeded")
	}
	img := mem.CrashClone(vfs.CrashCloneCfg{})
	on.Store(false)
	if err := s.Reopen(); err != nil {
		t.Fatalf("Reopen on a healthy disk: %v", err)
	}
	got := stLoad(t, s)
	s.Close()
	// The failed batch may or may not be there (unknown outcome); the
	// acknowledged ones are, in the running store and after a crash.
	if stDiff(got, m.state()) != "" {
		t.Logf("the failed batch survived the reopen (allowed)")
	}
	if d := ownCheckImage(t, img, ownOpts(nil, t), m); d != "" {
		t.Fatalf("crash after the failed fdatasync: %s", d)
	}
}

// TestOwnWALModeSwitch: a store moves between the own log and pebble's
// both ways with every batch kept, including batches only in the own log
// (a crash image, replayed by a store opened with pebble's WAL).
func TestOwnWALModeSwitch(t *testing.T) {
	mem := vfs.NewCrashableMem()
	opts := ownOpts(mem, t)
	s := stOpenWith(t, "db", opts)
	m := newStModel()
	g := newStGen(21, m)
	apply := func(s *Store, n int) {
		for i := 0; i < n; i++ {
			g.applyNext(t, s)
		}
	}
	apply(s, 8)
	img := mem.CrashClone(vfs.CrashCloneCfg{}) // the batches are in the own log only
	s.Close()
	popts := opts
	popts.FS, popts.WAL = img, WALPebble
	s = stOpenWith(t, "db", popts)
	if d := stDiff(stLoad(t, s), m.state()); d != "" {
		t.Fatalf("own → pebble: %s", d)
	}
	if nums, _ := listWAL(img, img.PathJoin("db", walDirName)); len(nums) != 0 {
		t.Fatalf("own-log files left after pebble mode replayed them: %v", nums)
	}
	if pos, err := readWALPos(s.db); pos != 0 || err != nil {
		t.Fatalf("%s left in pebble mode: %d (%v)", keyMetaWALPos, pos, err)
	}
	apply(s, 5)
	s, _ = ownCrashReopen(t, s, img, opts)
	defer s.Close()
	if d := stDiff(stLoad(t, s), m.state()); d != "" {
		t.Fatalf("pebble → own: %s", d)
	}
}

// TestOwnWALSteadyLogRecycles: once the first truncations have dropped
// files, every new log file is a dropped one renamed, never a zero-filled
// one: a zero-fill writes and syncs a whole file on the disk the commits'
// fdatasyncs wait on (walRecycleFiles).
func TestOwnWALSteadyLogRecycles(t *testing.T) {
	const seed = 23
	t.Logf("seed %d", seed)
	s := stOpenWith(t, "db", ownOpts(vfs.NewMem(), t))
	defer s.Close()
	m := newStModel()
	g := newStGen(seed, m)
	var st, warm WALStats
	for i := 0; i < 20000 && st.Truncations < 40; i++ {
		g.applyNext(t, s)
		st = s.WALStats()
		if warm.Truncations < 8 {
			warm = st
		}
	}
	t.Logf("after 8 truncations %+v, at the end %+v", warm, st)
	if st.Truncations < 40 {
		t.Fatalf("the run did not reach 40 truncations: %+v", st)
	}
	// Past the first truncations there is always a dropped file to take
	// (one zero-fill is allowed: the preparer may start just before a
	// truncation drops files).
	if n := st.ZeroFilled - warm.ZeroFilled; n > 1 {
		t.Fatalf("%d files zero-filled in the last %d truncations, want at most 1 (the rest recycled): %+v",
			n, st.Truncations-warm.Truncations, st)
	}
	if st.Recycled == 0 {
		t.Fatalf("no file recycled: %+v", st)
	}
}

// walSyncCalls returns how many fdatasyncs the own log has begun.
func (s *Store) walSyncCalls() uint64 {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.wal == nil {
		return 0
	}
	return s.wal.syncCalls.Load()
}

// blockSSTFS blocks the creation of sstables while armed (block not nil):
// the first blocked Create closes entered, and all wait for block.
type blockSSTFS struct {
	vfs.FS
	mu      sync.Mutex
	block   chan struct{}
	entered chan struct{}
}

func (f *blockSSTFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.HasSuffix(name, ".sst") {
		f.mu.Lock()
		block, entered := f.block, f.entered
		if entered != nil {
			close(entered)
			f.entered = nil
		}
		f.mu.Unlock()
		if block != nil {
			<-block
		}
	}
	return f.FS.Create(name, c)
}

// TestOwnWALNoForcedFlushDuringPebbleFlush: while pebble flushes a
// memtable, a log over its limit puts its forced flush off (the flush's
// FlushEnd calls the truncation again) instead of forcing one: db.Flush
// waits for the flush under way, and with full-size memtables it waits
// holding pebble's commit mutex, stalling every commit meanwhile
// (docs/benchmarks.md, "The forced-flush stall and the one-SKU cost").
// Planted forceDuringFlush: the truncation forces a flush, which returns
// only once the blocked flush is let go.
func TestOwnWALNoForcedFlushDuringPebbleFlush(t *testing.T) {
	for _, planted := range []bool{false, true} {
		t.Run(fmt.Sprintf("planted=%v", planted), func(t *testing.T) {
			fs := &blockSSTFS{FS: vfs.NewMem()}
			opts := ownOpts(fs, t)
			opts.MemTableBytes = 8 << 20 // never full: pebble flushes only when told
			opts.walForceBytes = 4 * opts.WALFileBytes
			opts.walBugs = walBugs{forceDuringFlush: planted}
			s := stOpenWith(t, "db", opts)
			defer s.Close()
			m := newStModel()
			g := newStGen(21, m)
			g.applyNext(t, s)
			block, entered := make(chan struct{}), make(chan struct{})
			fs.mu.Lock()
			fs.block, fs.entered = block, entered
			fs.mu.Unlock()
			var once sync.Once
			release := func() {
				once.Do(func() {
					fs.mu.Lock()
					fs.block, fs.entered = nil, nil
					fs.mu.Unlock()
					close(block)
				})
			}
			defer release()
			if _, err := s.db.AsyncFlush(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("pebble's flush did not reach the creation of its sstable")
			}
			// The log goes over its limit while the flush is blocked.
			for i := 0; int64(s.WALStats().Files)*opts.WALFileBytes <= opts.walForceBytes; i++ {
				if i == 1000 {
					t.Fatalf("the log did not pass its limit: %+v", s.WALStats())
				}
				g.applyNext(t, s)
			}
			forced := s.wal.forced.Load()
			// Failure path only: a forced flush waits for the blocked one.
			timer := time.AfterFunc(3*time.Second, release)
			defer timer.Stop()
			if err := s.wal.truncate(); err != nil {
				t.Fatal(err)
			}
			st := s.WALStats()
			if got := s.wal.forced.Load() - forced; got != 0 || st.Deferred == 0 {
				if planted {
					t.Logf("planted bug caught: %d forced flushes during pebble's flush, %+v", got, st)
					return
				}
				t.Fatalf("%d flushes forced while pebble's flush was under way, want the forced flush put off: %+v", got, st)
			}
			if planted {
				t.Fatalf("planted forceDuringFlush not caught: %+v", st)
			}
			// Once pebble's flush ends, the log shrinks (with the row
			// checkpoint begun meanwhile ended, and its m/rowpos written
			// by the next batch); the state is whole.
			release()
			s.waitRowCheckpoint()
			g.applyNext(t, s)
			if err := s.db.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := s.wal.truncate(); err != nil {
				t.Fatal(err)
			}
			if st := s.WALStats(); int64(st.Files)*opts.WALFileBytes > opts.walForceBytes {
				t.Fatalf("the log stayed over its limit after pebble's flush: %+v", st)
			}
			got, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if d := stDiff(got, m.state()); d != "" {
				t.Fatal(d)
			}
		})
	}
}
