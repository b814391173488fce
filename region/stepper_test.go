package region_test

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

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
