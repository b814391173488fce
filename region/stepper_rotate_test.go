package region_test

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// TestStepperRotationWaitsForSync: pebble rotates its WAL when a memtable
// fills, during the Commit of some batch, and syncs the old file as it
// closes it. Under a Stepper that sync waits for the fsync stage like
// every other, so what a crash keeps does not depend on where pebble
// rotated (which varies from run to run: its memtable's skiplist draws
// node heights from the process's random source). A crash after batches
// were written across a rotation, before their fsync stage, keeps none of
// them, and the store opens; once their fsync stage ran it keeps them all.
// (Found by the simulator's region runtime: the same seed restarted a
// region with two batches more or fewer from one run to the next.)
func TestStepperRotationWaitsForSync(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := region.Config{Name: "eu", DataDir: "db", FreshProbation: -1, HoldRetain: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return clock }}
	open := func(mem *vfs.MemFS) *region.Stepper {
		c := cfg
		c.FS = mem
		s, err := region.OpenStepper(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	wals := func(mem *vfs.MemFS) int {
		names, err := mem.List("db")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, name := range names {
			if strings.HasSuffix(name, ".log") {
				n++
			}
		}
		return n
	}
	mem := vfs.NewCrashableMem()
	s := open(mem)
	defer func() { s.Abandon() }()
	write := func(i int) {
		cmd := escrow.Command{Kind: escrow.CmdRestock, ReqID: uint64(i + 1), SKU: fmt.Sprintf("sku%06d", i), Qty: 5}
		if err := s.Submit(cmd, ""); err != nil {
			t.Fatal(err)
		}
		if s.CutReady() == nil || !s.Commit() {
			t.Fatal("nothing to cut or commit after a restock")
		}
	}
	write(0)
	s.SyncDurable()
	s.Deliver(nil)
	s.TakeReplies()
	seq0, logs0 := s.Node().Seq(), wals(mem)
	n := 1
	for ; wals(mem) == logs0 || n < 3; n++ {
		if n == 5000 {
			t.Fatal("no WAL rotation after 5000 batches")
		}
		write(n)
	}
	write(n) // one more in the new WAL
	n++
	last := s.Node().Seq()

	// A crash before the fsync stage: none of the batches since seq0.
	crashed := open(mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0}))
	got := crashed.Node().Seq()
	crashed.Abandon()
	if got != seq0 {
		t.Fatalf("crash before the fsync stage: restarted with seq %d, want %d (the last synced; %d batches written since, "+
			"across a WAL rotation)", got, seq0, n-1)
	}

	// After it: all of them, in both WAL files, each caller answered.
	s.SyncDurable()
	s.Deliver(nil)
	if r := len(s.TakeReplies()); r != n-1 {
		t.Fatalf("%d replies after the fsync stage, want %d", r, n-1)
	}
	synced := open(mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0}))
	defer synced.Abandon()
	if got := synced.Node().Seq(); got != last {
		t.Fatalf("crash after the fsync stage: restarted with seq %d, want %d", got, last)
	}
	if a := synced.Node().Available(fmt.Sprintf("sku%06d", n-1)); a != 5 {
		t.Fatalf("last restock: %d available after the restart, want 5", a)
	}
	t.Logf("%d batches across a WAL rotation (seq %d to %d)", n-1, seq0, last)
}
