package region

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region/internal/plantedbugs"
)

// openInline opens a region with the inline commit on, on a
// blockingSyncFS, with one SKU in stock, and waits until its stepper is
// idle. Its ticker is the slowest allowed, a second: hardly anything wakes
// the stepper but the test.
func openInline(t *testing.T, cfg Config) (*Region, *blockingSyncFS) {
	t.Helper()
	skipWithoutInline(t)
	cfg.TickInterval = time.Second
	r, fs := openLone(t, cfg)
	waitIdle(t, r)
	return r, fs
}

func waitIdle(t *testing.T, r *Region) {
	t.Helper()
	eventually(t, 10*time.Second, "the stepper idle", r.inline.idle.Load)
}

func recvErr(t *testing.T, c chan error, what string) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("no answer within 10s: %s", what)
		return nil
	}
}

// inlineRepliedEarly runs one lone hold on an idle region whose fsync the
// test holds, and reports whether its caller was answered before the
// fsync was let through (waiting up to 200ms for such an early answer),
// and how many inline commits the region made for it.
func inlineRepliedEarly(t *testing.T, cfg Config) (early bool, inline uint64) {
	t.Helper()
	r, fs := openInline(t, cfg)
	return repliedEarly(t, r, fs, r.inline.commits.Load, "the inline hold")
}

// TestInlineCommitAnswersAfterFsync: a lone hold on an idle region is
// committed on its caller's goroutine (one inline commit) and answered
// only once its fsync is done.
func TestInlineCommitAnswersAfterFsync(t *testing.T) {
	early, inline := inlineRepliedEarly(t, Config{})
	if early {
		t.Fatal("an inline hold was answered before its fsync completed")
	}
	if inline != 1 {
		t.Fatalf("inline commits for a lone hold: %d, want 1", inline)
	}
}

// TestInlineCommitPlantedReplyBeforeSync: with the planted bug
// ReplyBeforeSync the inline caller returns before its fsync, and the
// check above sees it.
func TestInlineCommitPlantedReplyBeforeSync(t *testing.T) {
	early, inline := inlineRepliedEarly(t, Config{PlantedBugs: plantedbugs.Set{ReplyBeforeSync: true}})
	if inline != 1 {
		t.Fatalf("inline commits for a lone hold: %d, want 1", inline)
	}
	if !early {
		t.Fatal("planted bug ReplyBeforeSync not caught: the inline hold was not answered before its fsync")
	}
}

// skipWithoutInline skips a test of the inline commit when
// HOLDFAST_TEST_INLINE=0 turns it off in every region.
func skipWithoutInline(t *testing.T) {
	t.Helper()
	if testNoInlineCommit {
		t.Skip("HOLDFAST_TEST_INLINE=0: the inline commit is off")
	}
}

// TestInlineCommitOff: with Config.NoInlineCommit no caller commits
// inline.
func TestInlineCommitOff(t *testing.T) {
	r, _ := openLone(t, Config{NoInlineCommit: true})
	if err := recvErr(t, holdAsync(r), "a hold"); err != nil {
		t.Fatal(err)
	}
	if r.inline.idle.Load() || r.inline.commits.Load() != 0 {
		t.Fatalf("inline commit off: idle %v, inline commits %d", r.inline.idle.Load(), r.inline.commits.Load())
	}
}

// TestInlineCommitKeepsGroupCommit: callers who arrive while an inline
// commit waits for its fsync queue for the stepper, which steps them once
// the inline commit is done and cuts them together (one fsync for both).
func TestInlineCommitKeepsGroupCommit(t *testing.T) {
	r, fs := openInline(t, Config{})
	before := r.inline.commits.Load()
	fs.armed.Store(true)
	first := holdAsync(r)
	syncEntered(t, fs, "the inline hold")
	a, b := holdAsync(r), holdAsync(r)
	// The stepper woke for one of them (idle cleared) and waits for the
	// node; the other waits in its queue.
	eventually(t, 10*time.Second, "two callers queued behind the inline fsync", func() bool {
		return len(r.queue) == 1 && !r.inline.idle.Load()
	})
	commits := r.commits.Load()
	fs.release <- struct{}{}
	if err := recvErr(t, first, "the inline hold"); err != nil {
		t.Fatal(err)
	}
	syncEntered(t, fs, "the two callers' batch")
	fs.release <- struct{}{}
	for _, c := range []chan error{a, b} {
		if err := recvErr(t, c, "a queued hold"); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.inline.commits.Load() - before; n != 1 {
		t.Fatalf("inline commits: %d, want 1 (the first hold; the two queued behind it share a batch)", n)
	}
	if n := r.commits.Load() - commits; n != 2 {
		t.Fatalf("fsynced batches: %d, want 2 (the inline hold's, the two queued holds')", n)
	}
	var granted uint64
	if err := r.Inspect(context.Background(), func(n *escrow.Node) { granted = n.Stats().Granted }); err != nil {
		t.Fatal(err)
	}
	if granted != 3 {
		t.Fatalf("granted %d holds, want 3", granted)
	}
}

// TestInlineCommitInspectAndMessagesWait: an inspect and a peer message
// arriving during an inline commit wait for it (the node is the inline
// caller's until its reply is delivered), then are served.
func TestInlineCommitInspectAndMessagesWait(t *testing.T) {
	r, fs := openInline(t, Config{})
	cmds := r.commitCmds.Load()
	fs.armed.Store(true)
	hold := holdAsync(r)
	syncEntered(t, fs, "the inline hold")
	type seen struct {
		delivered bool
		granted   uint64
	}
	insp := make(chan seen, 1)
	go func() {
		var s seen
		err := r.Inspect(context.Background(), func(n *escrow.Node) {
			s = seen{r.commitCmds.Load() > cmds, n.Stats().Granted}
		})
		if err != nil {
			t.Error(err)
		}
		insp <- s
	}()
	rejected := promtest.ToFloat64(r.metrics.msgsRejected)
	r.Deliver(escrow.Message{From: "nobody"}) // refused: not a peer
	eventually(t, 10*time.Second, "the stepper woken and waiting for the node", func() bool { return !r.inline.idle.Load() })
	fs.release <- struct{}{}
	if err := recvErr(t, hold, "the inline hold"); err != nil {
		t.Fatal(err)
	}
	var s seen
	select {
	case s = <-insp:
	case <-time.After(10 * time.Second):
		t.Fatal("inspect not served after the inline commit")
	}
	if !s.delivered || s.granted != 1 {
		t.Fatalf("inspect ran before the inline commit was delivered (delivered %v, granted %d)", s.delivered, s.granted)
	}
	eventually(t, 10*time.Second, "the peer message stepped", func() bool {
		return promtest.ToFloat64(r.metrics.msgsRejected) == rejected+1
	})
	waitIdle(t, r)
}

// TestInlineCommitWithTicks: sequential holds with a fast ticker, each
// sent once the stepper is idle: they are committed inline, or through the
// stepper when a tick woke it in between; all are answered, and once the
// clock passes their TTL the ticks expire them.
func TestInlineCommitWithTicks(t *testing.T) {
	var offset atomic.Int64
	base := time.Now()
	skipWithoutInline(t)
	cfg := Config{TickInterval: time.Millisecond,
		Now: func() time.Time { return base.Add(time.Duration(offset.Load())) }}
	cfg.Name, cfg.DataDir, cfg.FS, cfg.Logger = "eu", "db", vfs.NewMem(), quietLogger()
	r, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	restock(t, r, "A", 1000)
	const holds = 300
	for i := 0; i < holds; i++ {
		// A caller that comes back at once may find the stepper still
		// taking back the batch of the hold before (after a tick): wait
		// for it to be idle, so that most holds go inline, and a tick may
		// still wake it in between.
		waitIdle(t, r)
		rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, TTL: time.Second})
		if rep.Err != nil {
			t.Fatalf("hold %d: %v", i, rep.Err)
		}
	}
	if r.inline.commits.Load() == 0 {
		t.Fatal("no hold was committed inline")
	}
	if n := r.Stats().ActiveHolds; n != holds {
		t.Fatalf("active holds: %d, want %d", n, holds)
	}
	offset.Store(int64(2 * time.Second))
	eventually(t, 10*time.Second, "the holds expired by the ticks", func() bool { return r.Stats().ActiveHolds == 0 })
	t.Logf("%d of %d commands committed inline", r.inline.commits.Load(), holds+1)
}

// TestInlineCommitCloseWaits: Close during an inline commit waits for it:
// the hold succeeds (it is not failed by Close) and is in the store when
// the region is opened again.
func TestInlineCommitCloseWaits(t *testing.T) {
	r, fs := openInline(t, Config{})
	fs.armed.Store(true)
	hold := holdAsync(r)
	syncEntered(t, fs, "the inline hold")
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	eventually(t, 10*time.Second, "the stepper woken by Close", func() bool { return !r.inline.idle.Load() })
	fs.armed.Store(false)
	fs.release <- struct{}{}
	if err := recvErr(t, closed, "Close"); err != nil {
		t.Fatal(err)
	}
	// The caller's goroutine may not have run yet when Close returns, so
	// its answer is waited for; had Close not waited for the inline
	// commit, it would be a failure (ErrClosed or a failed write), or the
	// hold would be missing after the reopen below.
	if err := recvErr(t, hold, "the inline hold"); err != nil {
		t.Fatalf("the inline hold: %v", err)
	}
	r2, err := Open(context.Background(), Config{Name: "eu", DataDir: "db", FS: fs, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if n := r2.Stats().ActiveHolds; n != 1 {
		t.Fatalf("active holds after reopening: %d, want 1", n)
	}
}

// inlineOnFailingDisk commits one hold inline while the WAL's syncs
// fail, and returns its error; the region then rebuilds its node once the
// disk works again, and a hold succeeds.
func inlineOnFailingDisk(t *testing.T, bugs plantedbugs.Set) (inline uint64, holdErr error) {
	t.Helper()
	skipWithoutInline(t)
	var on atomic.Bool
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		isSync := op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo
		if on.Load() && isWALPath(op.Path) && isSync {
			return errorfs.ErrInjected
		}
		return nil
	}))
	r, err := Open(context.Background(), Config{Name: "eu", DataDir: "data", FS: fs, Logger: quietLogger(),
		TickInterval: time.Second, PlantedBugs: bugs})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	restock(t, r, "A", 100)
	waitIdle(t, r)
	before := r.inline.commits.Load()
	on.Store(true)
	rep, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
	if err == nil && rep.Err != nil {
		err = rep.Err
	}
	inline = r.inline.commits.Load() - before
	on.Store(false)
	eventually(t, 15*time.Second, "the node rebuilt", func() bool { return r.Ready() && r.inline.idle.Load() })
	if rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}}); rep.Err != nil {
		t.Fatalf("hold after recovery: %v", rep.Err)
	}
	return inline, err
}

// TestInlineCommitFailedWrite: a failed fsync on the inline path fails
// the caller with ErrStorage (no reply) and the node is rebuilt.
func TestInlineCommitFailedWrite(t *testing.T) {
	inline, err := inlineOnFailingDisk(t, plantedbugs.Set{})
	if inline != 1 {
		t.Fatalf("inline commits: %d, want 1", inline)
	}
	if !errors.Is(err, ErrStorage) {
		t.Fatalf("inline hold on a failing disk: %v, want ErrStorage", err)
	}
}

// TestInlineCommitPlantedAckFailedWrite: with the planted bug
// AckFailedWrite the inline caller is told its failed hold succeeded, and
// the check above sees it.
func TestInlineCommitPlantedAckFailedWrite(t *testing.T) {
	inline, err := inlineOnFailingDisk(t, plantedbugs.Set{AckFailedWrite: true})
	if inline != 1 {
		t.Fatalf("inline commits: %d, want 1", inline)
	}
	if errors.Is(err, ErrStorage) {
		t.Fatal("planted bug AckFailedWrite not caught: the failed inline hold was failed")
	}
}
