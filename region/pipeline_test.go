package region

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// TestStoreApplyNoWaitInOrder writes several batches before waiting for
// any of them; once every Wait returned nil, a crash keeping only synced
// data must keep all of them.
func TestStoreApplyNoWaitInOrder(t *testing.T) {
	mem := vfs.NewCrashableMem()
	m := newStModel()
	g := newStGen(11, m)
	s, err := OpenStore("db", stCrashOpts(mem, t))
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 10; round++ {
		var pcs []*PendingCommit
		for i := 0; i < 3; i++ {
			p := g.next()
			pc, err := s.ApplyNoWait(p)
			if err != nil {
				t.Fatalf("round %d batch %d: ApplyNoWait: %v", round, i, err)
			}
			m.apply(p)
			pcs = append(pcs, pc)
		}
		for i, pc := range pcs {
			if err := pc.Wait(); err != nil {
				t.Fatalf("round %d batch %d: Wait: %v", round, i, err)
			}
		}
		if s.Seq() != m.seq {
			t.Fatalf("round %d: durable seq %d, want %d", round, s.Seq(), m.seq)
		}
		mem, s = stCrashKeepSynced(t, fmt.Sprintf("round %d", round), mem, s, m)
	}
	s.Close()
}

// TestRepliesWaitForPipelinedFsync blocks the WAL fsync of one batch and
// checks that the region writes the callers that arrive meanwhile ahead
// (without fsync) but answers nobody until an fsync covers them.
//
// The inline commit is off here: a first hold committed inline keeps the
// node through its fsync, so nothing is written behind it; the callers
// wait for it, as TestInlineCommitKeepsGroupCommit checks.
func TestRepliesWaitForPipelinedFsync(t *testing.T) {
	var gated atomic.Bool
	var blocked atomic.Int32
	release := make(chan struct{})
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { gated.Store(false); close(release) }) }
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		isSync := op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo
		if isSync && isWALPath(op.Path) && gated.Load() {
			blocked.Add(1)
			<-release
		}
		return nil
	}))
	r, err := Open(context.Background(), Config{Name: "eu", DataDir: "data", FS: fs, Logger: quietLogger(), NoInlineCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer open() // before Close: Close waits for the last batch
	restock(t, r, "A", 1000)
	st, ok := r.storage.(*Store)
	if !ok {
		t.Fatalf("storage is %T, want *Store", r.storage)
	}
	applied := func() uint64 {
		st.applyMu.Lock()
		defer st.applyMu.Unlock()
		return st.seq
	}
	eventually(t, 5*time.Second, "the restock durable", func() bool { return st.Seq() == applied() })
	gated.Store(true)
	const callers = 1 + 2*writeAheadMin
	results := make(chan error, callers)
	hold := func() {
		rep, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
		if err == nil && rep.Err != nil {
			err = rep.Err
		}
		results <- err
	}
	go hold()
	eventually(t, 5*time.Second, "the first batch's fsync blocked", func() bool { return blocked.Load() >= 1 })
	first := applied()
	for i := 1; i < callers; i++ {
		go hold()
	}
	eventually(t, 5*time.Second, "a write-ahead batch written behind the blocked fsync", func() bool { return applied() > first })
	if n := len(results); n != 0 {
		t.Fatalf("%d callers answered while no batch was durable (durable seq %d, applied %d)", n, st.Seq(), applied())
	}
	if st.Seq() >= first {
		t.Fatalf("durable seq %d while the fsync of seq %d is blocked", st.Seq(), first)
	}
	open()
	for i := 0; i < callers; i++ {
		select {
		case err := <-results:
			if err != nil {
				t.Fatalf("hold: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d holds answered after the fsync was released", i, callers)
		}
	}
	if got := st.Seq(); got < applied() {
		t.Fatalf("all answered but durable seq %d < applied %d", got, applied())
	}
}

// TestLingerOnlyWithCallersToMerge: the stepper waits for returning callers
// only after a cohort that answered more than one of them; a lone caller,
// who may already be back when its batch is seen done, is never made to
// wait for itself.
func TestLingerOnlyWithCallersToMerge(t *testing.T) {
	r := &Region{cfg: Config{MaxLinger: time.Second}}
	r.applyEWMA.Store(int64(2 * time.Millisecond))
	for answered, want := range map[int]time.Duration{0: 0, 1: 0, 2: time.Millisecond, 256: time.Millisecond} {
		if got := r.lingerFor(answered); got != want {
			t.Errorf("lingerFor(%d) = %v, want %v (write EWMA 2ms, MaxLinger 1s)", answered, got, want)
		}
	}
	r.cfg.MaxLinger = 300 * time.Microsecond
	if got := r.lingerFor(64); got != 300*time.Microsecond {
		t.Errorf("lingerFor(64) = %v, want MaxLinger 300µs", got)
	}
	r.cfg.MaxLinger = -1
	if got := r.lingerFor(64); got != 0 {
		t.Errorf("lingerFor(64) with MaxLinger < 0 = %v, want 0", got)
	}
}
