package region

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// Crash tests. Pebble v2 replaced vfs.NewStrictMem/ResetToSyncedState with
// vfs.NewCrashableMem and MemFS.CrashClone: the clone is the filesystem as a
// crash at that instant could leave it (all synced data, plus a chosen
// share of unsynced data). As in pebble's own tests, the DB that was running
// is closed after the clone is taken; nothing it does afterwards reaches the
// clone.

func (m *stModel) clone() *stModel {
	c := newStModel()
	for k, r := range m.rows {
		c.rows[k] = r.Clone()
	}
	for k, h := range m.holds {
		c.holds[k] = h.Clone()
	}
	for k, e := range m.idem {
		c.idem[k] = e
	}
	for k, v := range m.peer {
		c.peer[k] = v
	}
	c.seq = m.seq
	return c
}

func stCrashOpts(fs vfs.FS, t testing.TB) StoreOptions {
	// A small memtable makes flushes, WAL rotations and compactions happen
	// within a few cycles, so crashes also land in them.
	o := StoreOptions{Region: stRegion, FS: fs, Logger: stLogger(t), CacheBytes: 1 << 20, MemTableBytes: 64 << 10}
	if testDefaultWAL == WALOwn {
		// Small log files: rotations, recycling and truncations (pebble
		// flushes) happen within a few cycles too.
		o.WALFileBytes = 4 << 10
	}
	return o
}

// stCrashKeepSynced crashes mem keeping only synced data, abandons s,
// reopens the store on the crashed image and checks that it holds exactly
// m. what prefixes the failures ("step 3").
func stCrashKeepSynced(t *testing.T, what string, mem *vfs.MemFS, s *Store, m *stModel) (*vfs.MemFS, *Store) {
	t.Helper()
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	if err := s.Close(); err != nil { // abandon the running DB
		t.Fatalf("%s: Close: %v", what, err)
	}
	s, err := OpenStore("db", stCrashOpts(crashed, t))
	if err != nil {
		t.Fatalf("%s: reopen after crash: %v", what, err)
	}
	if d := stDiff(stLoad(t, s), m.state()); d != "" {
		t.Fatalf("%s: after crash: %s", what, d)
	}
	return crashed, s
}

// TestStoreCrashSynced applies batches and crashes after each one keeping
// only synced data: every Apply that returned nil must be there exactly.
func TestStoreCrashSynced(t *testing.T) {
	mem := vfs.NewCrashableMem()
	m := newStModel()
	g := newStGen(7, m)
	s, err := OpenStore("db", stCrashOpts(mem, t))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		p := g.next()
		if err := s.Apply(p); err != nil {
			t.Fatalf("step %d: Apply: %v", i, err)
		}
		m.apply(p)
		mem, s = stCrashKeepSynced(t, fmt.Sprintf("step %d", i), mem, s, m)
	}
	stCheckIndexes(t, s, m)
	s.Close()
}

// TestStoreCrashRandom crashes at a random write operation of the
// filesystem (inside a commit, a flush, a compaction, an open), keeping a
// random share of unsynced data. After reopening, the state must be
// exactly what the acknowledged Applies wrote, plus possibly the whole
// Apply that was in flight: never part of it. Cycles: 40 with -short, 150
// by default, HOLDFAST_STORE_CRASH_CYCLES to run more; HOLDFAST_SEED replays.
func TestStoreCrashRandom(t *testing.T) {
	seed := stSeed(t)
	cycles := 150
	if testing.Short() {
		cycles = 40
	}
	if v := os.Getenv("HOLDFAST_STORE_CRASH_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("HOLDFAST_STORE_CRASH_CYCLES=%q: want a positive number", v)
		}
		cycles = n
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	m := newStModel()
	g := newStGen(seed, m)
	mem := vfs.NewCrashableMem()
	var inflightKept, inflightLost, midCommit, reordered int
	for cycle := 0; cycle < cycles; cycle++ {
		batches := 1 + rng.IntN(12)
		pct := 0
		if rng.IntN(3) != 0 {
			pct = rng.IntN(101)
		}
		cloneRNG := rand.New(rand.NewPCG(seed, uint64(cycle)))
		cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: cloneRNG}
		var countdown atomic.Int64
		countdown.Store(int64(1 + rng.IntN(3*batches+6)))
		var crashed atomic.Pointer[stCrashImage]
		// triggered is set before the images are taken: an Apply that returns
		// before it is set completed before the crash instant; one that sees
		// it set may have been in flight.
		var triggered atomic.Bool
		cur := mem
		crash := func() {
			triggered.Store(true)
			// Also keep a synced-only image of (nearly) the same instant: see stCrashImage.
			crashed.Store(&stCrashImage{partial: cur.CrashClone(cfg), synced: cur.CrashClone(vfs.CrashCloneCfg{})})
		}
		fs := errorfs.Wrap(cur, errorfs.InjectorFunc(func(op errorfs.Op) error {
			if op.Kind.ReadOrWrite() == errorfs.OpIsWrite && countdown.Add(-1) == 0 {
				crash()
			}
			return nil
		}))
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d cycle %d (crash after %d%% unsynced): "+format,
				append([]any{seed, cycle, pct}, args...)...)
		}
		s, err := OpenStore("db", stCrashOpts(fs, t))
		if err != nil {
			fail("open: %v", err)
		}
		acked := m.clone() // state of every Apply that returned nil before the crash
		var inflight *stModel
		for i := 0; i < batches && !triggered.Load(); i++ {
			p := g.next()
			if err := s.Apply(p); err != nil {
				fail("Apply %d: %v", i, err)
			}
			m.apply(p)
			if triggered.Load() {
				inflight = m.clone() // the crash may have happened while this Apply ran
				break
			}
			acked = m.clone()
		}
		if !triggered.Load() {
			countdown.Store(math.MaxInt64)
			crash()
		}
		for crashed.Load() == nil { // a background writer is taking the images
			runtime.Gosched()
		}
		if err := s.Close(); err != nil {
			fail("close: %v", err)
		}
		img := crashed.Load()
		mem = img.partial
		s, err = OpenStore("db", stCrashOpts(mem, t))
		if err != nil && pct > 0 && strings.Contains(err.Error(), "could not open manifest file") {
			// Pebble relies on directory entries surviving in creation order
			// (true of ext4/xfs journals); a partial clone may keep a later
			// entry (the new manifest marker) without an earlier one (the
			// manifest). Not a store property: continue from the synced image.
			reordered++
			mem = img.synced
			s, err = OpenStore("db", stCrashOpts(mem, t))
		}
		if err != nil {
			fail("reopen after crash: %v", err)
		}
		got, err := s.Load()
		if err != nil {
			fail("Load after crash: %v", err)
		}
		switch {
		case stDiff(got, acked.state()) == "":
			*m = *acked
			if inflight != nil {
				midCommit++
				if stDiff(inflight.state(), acked.state()) != "" {
					inflightLost++
				}
			}
		case inflight != nil && stDiff(got, inflight.state()) == "":
			*m = *inflight
			midCommit++
			inflightKept++
		default:
			fail("state after crash is neither the acknowledged one nor that plus the Apply in flight: %s",
				stDiff(got, acked.state()))
		}
		stCheckIndexes(t, s, m)
		if err := s.Close(); err != nil {
			fail("close after check: %v", err)
		}
	}
	t.Logf("%d crash cycles: %d crashed inside an Apply (%d kept it whole, %d lost it whole); "+
		"%d partial images with reordered directory entries replaced by the synced image",
		cycles, midCommit, inflightKept, inflightLost, reordered)
}

// stCrashImage is the filesystem after a simulated crash: partial keeps a
// random share of unsynced data, synced only what was synced, at the same
// instant.
type stCrashImage struct{ partial, synced *vfs.MemFS }

// stFault injects errors into the operations a failing disk would fail,
// while on.
type stFault struct {
	name string
	hit  func(op errorfs.Op) bool
}

var stFaults = []stFault{
	{"wal-fsync", func(op errorfs.Op) bool {
		return isWALPath(op.Path) &&
			(op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo)
	}},
	{"wal-write", func(op errorfs.Op) bool {
		return isWALPath(op.Path) && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileWriteAt)
	}},
	{"disk-dead", func(op errorfs.Op) bool { return op.Kind.ReadOrWrite() == errorfs.OpIsWrite }},
}

// TestStoreFailingDisk: a write or fsync failure makes Apply return an
// error (no panic, no exit); the store then refuses writes and reads; a
// crash at that point keeps exactly the acknowledged state; once the fault
// is lifted, Reopen + Load give the acknowledged state (plus, at most, the
// whole failed batch) and the store works again.
func TestStoreFailingDisk(t *testing.T) {
	for _, f := range stFaults {
		t.Run(f.name, func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			var on atomic.Bool
			var injected atomic.Int64
			fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if on.Load() && f.hit(op) {
					injected.Add(1)
					return errorfs.ErrInjected
				}
				return nil
			}))
			m := newStModel()
			g := newStGen(11, m)
			s, err := OpenStore("db", stCrashOpts(fs, t))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			for i := 0; i < 5; i++ {
				p := g.next()
				if err := s.Apply(p); err != nil {
					t.Fatal(err)
				}
				m.apply(p)
			}
			acked := m.clone()
			on.Store(true)
			p := g.next()
			err = s.Apply(p)
			if err == nil {
				t.Fatalf("Apply succeeded on a failing disk (%d faults injected)", injected.Load())
			}
			if !errors.Is(err, ErrStoreFailed) || errors.Is(err, ErrStoreWedged) {
				t.Fatalf("Apply error %v: want ErrStoreFailed", err)
			}
			t.Logf("Apply on a failing disk: %v", err)
			failed := m.clone()
			failed.apply(p)
			// Failed fast from now on, and no reads of possibly undurable state.
			if err := s.Apply(g.next()); !errors.Is(err, ErrStoreFailed) {
				t.Fatalf("second Apply: %v, want ErrStoreFailed", err)
			}
			if _, err := s.Load(); !errors.Is(err, ErrStoreFailed) {
				t.Fatalf("Load of a failed store: %v, want ErrStoreFailed", err)
			}
			if _, err := s.OwnRowsSince(0, 0); !errors.Is(err, ErrStoreFailed) {
				t.Fatalf("OwnRowsSince of a failed store: %v, want ErrStoreFailed", err)
			}
			if s.Stats().Failed == "" || s.Stats().Failures == 0 {
				t.Fatalf("stats do not show the failure: %+v", s.Stats())
			}
			// A crash now keeps exactly what was acknowledged.
			crash := mem.CrashClone(vfs.CrashCloneCfg{})
			cs, err := OpenStore("db", stCrashOpts(crash, t))
			if err != nil {
				t.Fatalf("open crash clone: %v", err)
			}
			if d := stDiff(stLoad(t, cs), acked.state()); d != "" {
				t.Fatalf("after a crash on the failing disk: %s", d)
			}
			cs.Close()
			if f.name == "disk-dead" {
				if err := s.Reopen(); err == nil {
					t.Fatal("Reopen succeeded on a dead disk")
				} else {
					t.Logf("Reopen on a dead disk: %v", err)
				}
			}
			on.Store(false)
			if err := s.Reopen(); err != nil {
				t.Fatalf("Reopen after the fault was lifted: %v", err)
			}
			got := stLoad(t, s)
			switch {
			case stDiff(got, acked.state()) == "":
				*m = *acked
				t.Log("the failed batch is absent after reopen")
			case stDiff(got, failed.state()) == "":
				*m = *failed
				t.Log("the failed batch is present (whole) after reopen")
			default:
				t.Fatalf("state after reopen is neither the acknowledged one nor that plus the failed batch: %s",
					stDiff(got, acked.state()))
			}
			for i := 0; i < 5; i++ {
				p := g.next()
				if err := s.Apply(p); err != nil {
					t.Fatalf("Apply after recovery: %v", err)
				}
				m.apply(p)
			}
			if err := s.Reopen(); err != nil {
				t.Fatal(err)
			}
			if d := stDiff(stLoad(t, s), m.state()); d != "" {
				t.Fatalf("after recovery: %s", d)
			}
			stCheckIndexes(t, s, m)
		})
	}
}

var _ = escrow.Held

// TestStoreWALRotationFailureIsFatal documents the one failing-disk case
// Store cannot turn into an error: a failure while pebble rotates the WAL
// (closing the old log when a memtable fills) panics inside pebble with
// DB.mu unlocked under a deferred Unlock, which kills the process with an
// unrecoverable "unlock of unlocked mutex". A child process runs the
// scenario; if a pebble upgrade makes it survive, this test fails so that
// the note at the top of store.go gets updated.
func TestStoreWALRotationFailureIsFatal(t *testing.T) {
	if os.Getenv("HOLDFAST_STORE_ROTATION_CHILD") == "1" {
		stRotationChild(t)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestStoreWALRotationFailureIsFatal$", "-test.v")
	cmd.Env = append(os.Environ(), "HOLDFAST_STORE_ROTATION_CHILD=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("child timed out: %s", stTail(out))
	}
	if err == nil || !strings.Contains(string(out), "unlock of unlocked mutex") {
		t.Fatalf("a WAL rotation failure no longer kills the process (exit %v); update the failing-disk note in store.go:\n%s",
			err, stTail(out))
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "fatal error") || strings.Contains(line, "rotateWAL") {
			t.Logf("child died as documented (%v): %s", err, strings.TrimSpace(line))
		}
	}
}

func stTail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func stRotationChild(t *testing.T) {
	var on atomic.Bool
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if on.Load() && isWALPath(op.Path) && op.Kind.ReadOrWrite() == errorfs.OpIsWrite &&
			stCalledFrom("rotateWAL") {
			return errorfs.ErrInjected
		}
		return nil
	}))
	o := stCrashOpts(fs, t)
	o.WAL = WALPebble // pebble's WAL rotation is what this documents
	s, err := OpenStore("db", o)
	if err != nil {
		t.Fatal(err)
	}
	on.Store(true)
	m := newStModel()
	g := newStGen(3, m)
	for i := 0; i < 5000; i++ {
		p := g.next()
		if err := s.Apply(p); err != nil {
			t.Logf("Apply %d returned an error: %v", i, err)
			return
		}
		m.apply(p)
	}
	t.Log("no WAL rotation failed in 5000 Applies")
}

// stCalledFrom reports whether a function whose name contains fn is on the
// calling goroutine's stack.
func stCalledFrom(fn string) bool {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if strings.Contains(f.Function, fn) {
			return true
		}
		if !more {
			return false
		}
	}
}
