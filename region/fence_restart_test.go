package region_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// TestRestartProbation: with RestartProbation, a region restarted from a
// non-empty store starts on (restart) probation and refuses writes; the
// same restart without it grants at once (as before), and a first start
// on an empty store is the fresh probation either way.
func TestRestartProbation(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mem := vfs.NewCrashableMem()
	open := func(restart bool, fresh time.Duration) *region.Stepper {
		t.Helper()
		cfg := region.Config{Name: "us_east", DataDir: "db", FS: mem, FreshProbation: fresh, HoldRetain: -1,
			RestartProbation: restart, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Now: func() time.Time { return clock }}
		s, err := region.OpenStepper(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The first start, without a probation, writes the store.
	s := open(false, -1)
	if err := s.Submit(escrow.Command{Kind: escrow.CmdRestock, ReqID: 1, SKU: "sku1", Qty: 10}, ""); err != nil {
		t.Fatal(err)
	}
	s.CutReady()
	s.Commit()
	s.SyncDurable()
	s.Deliver(nil)
	if rs := s.TakeReplies(); len(rs) != 1 || rs[0].Err != nil {
		t.Fatalf("restock: %+v", rs)
	}
	s.Abandon()
	mem = mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})

	for _, c := range []struct {
		restart bool
		want    bool
	}{{false, false}, {true, true}} {
		s := open(c.restart, 1500*time.Millisecond)
		f := s.Node().Fence()
		if f.Probation != c.want || f.Fenced != c.want {
			t.Errorf("restart_probation=%v: fence %+v, want on probation %v", c.restart, f, c.want)
		}
		if c.want {
			_ = s.Submit(escrow.Command{Kind: escrow.CmdHold, ReqID: 2, Lines: []escrow.Line{{SKU: "sku1", Qty: 1}}}, "")
			s.CutReady()
			s.Commit()
			s.SyncDurable()
			s.Deliver(nil)
			if rs := s.TakeReplies(); len(rs) != 1 || rs[0].Err == nil || rs[0].Err.Code != escrow.CodeFenced {
				t.Errorf("hold on restart probation: %+v, want fenced", rs)
			}
		}
		s.Abandon()
		mem = mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	}
}
