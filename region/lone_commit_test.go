package region

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region/internal/plantedbugs"
)

// blockingSyncFS is a filesystem whose WAL syncs block, once armed, until
// the test releases them: the test decides when a batch is durable while
// the real Store and pebble's flush loop run.
type blockingSyncFS struct {
	vfs.FS
	armed   atomic.Bool
	entered chan struct{} // a WAL sync started while armed
	release chan struct{} // lets one armed WAL sync through
}

func newBlockingSyncFS() *blockingSyncFS {
	return &blockingSyncFS{FS: vfs.NewMem(), entered: make(chan struct{}, 64), release: make(chan struct{}, 64)}
}

func (fs *blockingSyncFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !isWALPath(name) {
		return f, err
	}
	return &blockingSyncFile{File: f, fs: fs}, nil
}

func (fs *blockingSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *blockingSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, o ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, o...)
	return fs.wrap(name, f, err)
}

func (fs *blockingSyncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

type blockingSyncFile struct {
	vfs.File
	fs *blockingSyncFS
}

func (f *blockingSyncFile) gate() {

	if f.fs.armed.Load() {
		f.fs.entered <- struct{}{}
		<-f.fs.release
	}
}

func (f *blockingSyncFile) Sync() error     { f.gate(); return f.File.Sync() }
func (f *blockingSyncFile) SyncData() error { f.gate(); return f.File.SyncData() }

// openLone opens a region on a blockingSyncFS (syncs not yet armed) with
// one SKU in stock.
func openLone(t *testing.T, cfg Config) (*Region, *blockingSyncFS) {
	t.Helper()
	fs := newBlockingSyncFS()
	cfg.Name, cfg.DataDir, cfg.FS, cfg.Logger = "eu", "db", fs, quietLogger()
	// A clock that stands still: no batch of the loop's own (expiry,
	// probation) between the test's.
	clock := time.Now()
	cfg.Now = func() time.Time { return clock }
	r, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fs.armed.Store(false)
		for range cap(fs.release) {
			fs.release <- struct{}{}
		}
		r.Close()
	})
	if _, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 100}); err != nil {
		t.Fatal(err)
	}
	// Durable and delivered (a planted bug may answer it before).
	eventually(t, 10*time.Second, "the restock delivered", func() bool { return r.commitCmds.Load() >= 1 })
	return r, fs
}

func holdAsync(r *Region) chan error {
	done := make(chan error, 1)
	go func() {
		rep, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, TTL: time.Hour})
		if err == nil && rep.Err != nil {
			err = rep.Err
		}
		done <- err
	}()
	return done
}

func syncEntered(t *testing.T, fs *blockingSyncFS, what string) {
	t.Helper()
	select {
	case <-fs.entered:
	case <-time.After(10 * time.Second):
		t.Fatalf("no WAL sync started: %s", what)
	}
}

// loneRepliedEarly runs one lone hold whose fsync the test holds, and
// reports whether its caller was answered before the fsync was let
// through (waiting up to 200ms for such an early answer), and how many
// lone commits the region made for it.
func loneRepliedEarly(t *testing.T, cfg Config) (early bool, lone uint64) {
	t.Helper()
	r, fs := openLone(t, cfg)
	return repliedEarly(t, r, fs, r.loneCommits.Load, "the lone hold")
}

// repliedEarly runs one hold on r, whose fsync fs holds, and reports
// whether its caller was answered before the fsync was let through
// (waiting up to 200ms for such an early answer), and by how much
// commits (a counter of the path under test) moved for it.
func repliedEarly(t *testing.T, r *Region, fs *blockingSyncFS, commits func() uint64, what string) (early bool, n uint64) {
	t.Helper()
	before := commits()
	cmds := r.commitCmds.Load()
	fs.armed.Store(true)
	done := holdAsync(r)
	syncEntered(t, fs, what)
	select {
	case err := <-done:
		early = true
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(200 * time.Millisecond):
	}
	fs.release <- struct{}{}
	if !early {
		if err := recvErr(t, done, what); err != nil {
			t.Fatal(err)
		}
	}
	// Delivered (a planted bug answers before): the count is final.
	eventually(t, 10*time.Second, what+" delivered", func() bool { return r.commitCmds.Load() > cmds })
	return early, commits() - before
}

// TestLoneCommitAnswersAfterFsync: a lone caller's hold, with nothing in
// flight, is written and answered by the stepper itself (one lone
// commit; none without the lone path), and only once its fsync is done.
func TestLoneCommitAnswersAfterFsync(t *testing.T) {
	early, lone := loneRepliedEarly(t, Config{LoneCommit: true, NoInlineCommit: true})
	if early {
		t.Fatal("a lone hold was answered before its fsync completed")
	}
	if lone != 1 {
		t.Fatalf("lone commits for a lone hold: %d, want 1", lone)
	}
}

// TestLoneCommitPlantedReplyBeforeSync: with the planted bug
// ReplyBeforeSync the lone path answers before the fsync, and the check
// above sees it.
func TestLoneCommitPlantedReplyBeforeSync(t *testing.T) {
	early, lone := loneRepliedEarly(t, Config{LoneCommit: true, NoInlineCommit: true, PlantedBugs: plantedbugs.Set{ReplyBeforeSync: true}})
	if lone != 1 {
		t.Fatalf("lone commits for a lone hold: %d, want 1", lone)
	}
	if !early {
		t.Fatal("planted bug ReplyBeforeSync not caught: the lone hold was not answered before its fsync")
	}
}

// TestLoneCommitOff: without Config.LoneCommit (the default) a lone hold
// goes through the committer (and is still answered after its fsync only).
func TestLoneCommitOff(t *testing.T) {
	early, lone := loneRepliedEarly(t, Config{NoInlineCommit: true})
	if early {
		t.Fatal("a hold was answered before its fsync completed")
	}
	if lone != 0 {
		t.Fatalf("lone commits without LoneCommit: %d, want 0", lone)
	}
}

// TestLoneCommitKeepsGroupCommit: callers who arrive while a lone hold's
// fsync runs are stepped once it is done and cut together through the
// pipeline (no lone commit for them), and each is answered.
func TestLoneCommitKeepsGroupCommit(t *testing.T) {
	r, fs := openLone(t, Config{LoneCommit: true, NoInlineCommit: true})
	before := r.loneCommits.Load()
	fs.armed.Store(true)
	first := holdAsync(r)
	syncEntered(t, fs, "the lone hold")
	a, b := holdAsync(r), holdAsync(r)
	eventually(t, 10*time.Second, "two callers queued behind the lone fsync", func() bool { return len(r.queue) == 2 })
	fs.release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	syncEntered(t, fs, "the two callers' batch")
	fs.release <- struct{}{}
	for _, c := range []chan error{a, b} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	if n := r.loneCommits.Load() - before; n != 1 {
		t.Fatalf("lone commits: %d, want 1 (the first hold; the two queued behind it share a pipeline batch)", n)
	}
	var granted uint64
	if err := r.Inspect(context.Background(), func(n *escrow.Node) { granted = n.Stats().Granted }); err != nil {
		t.Fatal(err)
	}
	if granted != 3 {
		t.Fatalf("granted %d holds, want 3", granted)
	}
}
