package region_test

import (
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
	"github.com/holdfast-io/holdfast/region/regiontest"
)

// stepperRun drives one region through a Stepper: it restocks, then in
// every round submits holds, cuts and commits their batch and, before the
// fsync, crashes the process (a crash image keeping only synced data) and
// recovers from that image through the region's open path. It returns
// the holds a caller was told about that the recovered region does not
// know: a broken durability rule.
func stepperRun(t *testing.T, bugs regiontest.Bugs) []string {
	t.Helper()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := region.Config{Name: "us_east", DataDir: "db", FreshProbation: -1, HoldRetain: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return clock }}
	cfg = regiontest.WithBugs(cfg, bugs)
	mem := vfs.NewCrashableMem()
	open := func() *region.Stepper {
		c := cfg
		c.FS = mem
		s, err := region.OpenStepper(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	defer func() { s.Abandon() }()
	step := func() {
		s.CutReady()
		s.Commit()
		s.SyncDurable()
		s.Deliver(nil)
	}
	if err := s.Submit(escrow.Command{Kind: escrow.CmdRestock, ReqID: 1, SKU: "sku1", Qty: 100}, ""); err != nil {
		t.Fatal(err)
	}
	step()
	if n := len(s.TakeReplies()); n != 1 {
		t.Fatalf("restock: %d replies, want 1", n)
	}
	var acked []string
	var lost []string
	for round := 0; round < 5; round++ {
		clock = clock.Add(time.Second)
		for i := 0; i < 3; i++ {
			id := uint64(100*round + i + 2)
			if err := s.Submit(escrow.Command{Kind: escrow.CmdHold, ReqID: id,
				Lines: []escrow.Line{{SKU: "sku1", Qty: 1}}, TTL: time.Hour}, ""); err != nil {
				t.Fatal(err)
			}
		}
		if s.CutReady() == nil || !s.Commit() {
			t.Fatal("nothing to cut or commit after three holds")
		}
		// Written, not synced: a correct runtime has answered nobody.
		for _, rep := range s.TakeReplies() {
			if rep.Err == nil && rep.Hold != nil {
				acked = append(acked, rep.Hold.ID)
			}
		}
		// Every second round the fsync completes before the crash.
		if round%2 == 1 {
			s.SyncDurable()
			s.Deliver(nil)
			for _, rep := range s.TakeReplies() {
				if rep.Err != nil || rep.Hold == nil {
					t.Fatalf("hold %d refused: %+v", rep.ReqID, rep.Err)
				}
				acked = append(acked, rep.Hold.ID)
			}
		}
		mem = mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
		s.Abandon()
		s = open()
		for _, id := range acked {
			if _, ok := s.Node().Hold(id); !ok {
				lost = append(lost, fmt.Sprintf("round %d: acknowledged hold %s lost", round, id))
			}
		}
		acked = acked[:0]
	}
	return lost
}

// TestStepperNoReplyBeforeSync: the real runtime answers a hold only once
// its batch is synced, so a crash between write and fsync loses no
// acknowledged hold.
func TestStepperNoReplyBeforeSync(t *testing.T) {
	if lost := stepperRun(t, regiontest.Bugs{}); len(lost) > 0 {
		t.Fatalf("durability rule broken:\n%v", lost)
	}
}

// TestPlantedReplyBeforeSync plants the bug "reply released before its
// batch's sync" and shows that the crash check above catches it.
func TestPlantedReplyBeforeSync(t *testing.T) {
	lost := stepperRun(t, regiontest.Bugs{ReplyBeforeSync: true})
	if len(lost) == 0 {
		t.Fatal("planted bug ReplyBeforeSync not caught: no acknowledged hold lost")
	}
	t.Logf("caught: %s (and %d more)", lost[0], len(lost)-1)
}

// TestStepperTornTail crashes with the first unsynced batch's bytes torn
// (a part of them on disk, as a power cut mid-write leaves them): the
// region reopens with exactly what was synced. Keeping every byte of that
// batch instead (a write that completed before the cut) brings it back:
// the torn bytes were a real record, which recovery dropped.
func TestStepperTornTail(t *testing.T) {
	for _, whole := range []bool{false, true} {
		t.Run(fmt.Sprintf("whole=%v", whole), func(t *testing.T) {
			clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			mem := vfs.NewCrashableMem()
			cfg := region.Config{Name: "us_east", DataDir: "db", FreshProbation: -1, HoldRetain: -1, FS: mem,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return clock }}
			s, err := region.OpenStepper(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i, qty := range []uint64{100, 7} {
				if err := s.Submit(escrow.Command{Kind: escrow.CmdRestock, ReqID: uint64(i + 1), SKU: "sku1", Qty: qty}, ""); err != nil {
					t.Fatal(err)
				}
				s.CutReady()
				s.Commit()
				if i == 0 {
					s.SyncDurable()
					s.Deliver(nil)
				}
			}
			tt, ok := s.TornTail()
			if !ok || tt.FirstEnd-tt.Synced < 2 {
				t.Fatalf("no unsynced tail to tear: %+v %v", tt, ok)
			}
			keep := (tt.FirstEnd - tt.Synced) / 2
			if whole {
				keep = tt.FirstEnd - tt.Synced
			}
			img, err := region.TearImage(mem, tt, keep)
			if err != nil {
				t.Fatal(err)
			}
			s.Abandon()
			cfg.FS = img
			s, err = region.OpenStepper(cfg)
			if err != nil {
				t.Fatalf("reopen after a torn write: %v", err)
			}
			defer s.Abandon()
			got := s.Node().Available("sku1")
			want := uint64(100)
			if whole {
				want = 107
			}
			if got != want {
				t.Fatalf("available after the crash: %d, want %d (kept %d of %d unsynced bytes)", got, want, keep, tt.FirstEnd-tt.Synced)
			}
		})
	}
}

// TestStepperRetryAfterFailedWrite: a confirm whose write fails (disk
// full) leaves the node confirmed in memory until it is rebuilt; a retry of
// the confirm stepped meanwhile writes nothing. It must fail with the batch
// before it, not be answered "confirmed" from state never stored.
func TestStepperRetryAfterFailedWrite(t *testing.T) {
	var full atomic.Bool
	mem := vfs.NewCrashableMem()
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if full.Load() && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpCreate) {
			return syscall.ENOSPC
		}
		return nil
	}))
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := region.OpenStepper(region.Config{Name: "us_east", DataDir: "db", FreshProbation: -1, HoldRetain: -1,
		FS: fs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abandon()
	all := func() {
		s.CutReady()
		s.Commit()
		s.SyncDurable()
		s.Deliver(nil)
	}
	_ = s.Submit(escrow.Command{Kind: escrow.CmdRestock, ReqID: 1, SKU: "sku1", Qty: 5}, "")
	_ = s.Submit(escrow.Command{Kind: escrow.CmdHold, ReqID: 2, Lines: []escrow.Line{{SKU: "sku1", Qty: 1}}, TTL: time.Hour}, "")
	all()
	reps := s.TakeReplies()
	if len(reps) != 2 || reps[1].Hold == nil {
		t.Fatalf("restock and hold: %+v", reps)
	}
	id := reps[1].Hold.ID
	full.Store(true)
	_ = s.Submit(escrow.Command{Kind: escrow.CmdConfirm, ReqID: 3, HoldID: id}, "")
	s.CutReady()
	s.Commit()                                                                      // fails: disk full
	_ = s.Submit(escrow.Command{Kind: escrow.CmdConfirm, ReqID: 4, HoldID: id}, "") // the shopper's retry
	s.CutReady()
	s.Commit()
	s.SyncDurable()
	s.Deliver(nil)
	for _, rep := range s.TakeReplies() {
		t.Errorf("request %d answered after a failed write (hold %v, err %v)", rep.ReqID, rep.Hold != nil, rep.Err)
	}
	if !s.Down() {
		t.Fatal("the node survived a failed write")
	}
	full.Store(false)
	if err := s.Recover(); err != nil {
		t.Fatal(err)
	}
	if h, ok := s.Node().Hold(id); !ok || h.State != escrow.Held {
		t.Fatalf("after recovery hold %s: %v %v, want held (the confirm was never stored)", id, ok, h.State)
	}
}
