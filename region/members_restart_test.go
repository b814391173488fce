package region_test

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// TestRestartTakesNewMembers: a region takes a new member list the way an
// operator gives it one (docs/operations.md, "Adding or removing a
// region"): by restarting with a new config. Started with members
// eu, us, ap, it merges ap's rows; restarted on the same store with
// members eu, us, sa, it merges the new member sa's rows and refuses ap's
// (counted, its available unchanged), while the units ap sent before its
// removal, already merged, stay counted.
func TestRestartTakesNewMembers(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mem := vfs.NewCrashableMem()
	open := func(members ...string) *region.Stepper {
		cfg := region.Config{Name: "eu", DataDir: "db", FS: mem, FreshProbation: -1, HoldRetain: -1,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return clock }}
		for _, m := range members {
			cfg.Members = append(cfg.Members, region.Member{Name: m})
		}
		s, err := region.OpenStepper(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	flush := func(s *region.Stepper) {
		for s.CutReady() != nil {
			s.Commit()
			s.SyncDurable()
			s.Deliver(nil)
		}
	}
	rows := func(from string, seq, toEU uint64) escrow.Message {
		return escrow.Message{Type: escrow.MsgRows, From: from, Seq: seq, PrevSeq: seq - 1,
			Rows: []escrow.Row{{SKU: "A", Region: from, Seq: seq, Minted: 10, Sent: []escrow.Transfer{{To: "eu", Qty: toEU}}}}}
	}
	avail := func(s *region.Stepper) uint64 { return s.Node().Available("A") }

	s := open("eu", "us", "ap")
	if err := s.Submit(escrow.Command{Kind: escrow.CmdRestock, ReqID: 1, SKU: "A", Qty: 10}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Message(rows("ap", 1, 2)); err != nil {
		t.Fatalf("rows of member ap refused: %v", err)
	}
	flush(s)
	if got := avail(s); got != 12 {
		t.Fatalf("available %d with ap's 2 units, want 12", got)
	}
	if ms := s.Node().Members(); !slices.Equal(ms, []string{"ap", "eu", "us"}) {
		t.Fatalf("members %v, want ap eu us", ms)
	}

	// The operator's restart with the new list: what was synced stays.
	s.Abandon()
	mem = mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	clock = clock.Add(time.Second)
	s = open("eu", "us", "sa")
	defer func() { s.Abandon() }()
	if ms := s.Node().Members(); !slices.Equal(ms, []string{"eu", "sa", "us"}) {
		t.Fatalf("members after the restart %v, want eu sa us", ms)
	}
	if got := avail(s); got != 12 {
		t.Fatalf("available %d after the restart, want 12 (ap's units merged before its removal stay)", got)
	}
	if err := s.Message(rows("sa", 1, 3)); err != nil {
		t.Fatalf("rows of new member sa refused: %v", err)
	}
	if err := s.Message(rows("ap", 2, 7)); err == nil {
		t.Fatal("rows of removed region ap accepted")
	}
	borrow := escrow.Message{Type: escrow.MsgBorrowReq, From: "ap", To: "eu", ID: 9, SKU: "A", Qty: 5, Urgent: true}
	if err := s.Message(borrow); err == nil {
		t.Fatal("borrow request of removed region ap accepted")
	}
	flush(s)
	if got := avail(s); got != 15 {
		t.Fatalf("available %d, want 15 (sa's 3 units in, nothing of ap's new row, nothing lent to ap)", got)
	}
	if r := s.Node().View("A")["ap"]; r == nil || r.Seq != 1 || r.SentTo("eu") != 2 {
		t.Fatalf("ap's row %+v, want its last row from before its removal (seq 1, 2 sent to eu)", r)
	}
	if r := s.Node().View("A")["eu"]; r.SentTo("ap") != 0 {
		t.Fatalf("eu lent %d units to removed region ap", r.SentTo("ap"))
	}
	if n := s.Node().Stats().NonMember; n != 2 {
		t.Fatalf("non-member refusals %d, want 2 (ap's rows, ap's borrow)", n)
	}
	for _, m := range s.TakeMessages() {
		if m.To == "ap" {
			t.Fatalf("message sent to removed region ap: %+v", m)
		}
	}
}
