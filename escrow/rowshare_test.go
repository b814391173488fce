package escrow

import (
	"testing"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// TestBroadcastSharesPersistedRows: a Ready whose persisted rows are the
// own rows it broadcasts sends the persisted copies (no second clone);
// one that also persists a peer's merged row broadcasts only the own row
// (a row of region us is never broadcast by eu as its own change). The
// planted bug ShareRowsAnyway broadcasts the peer's row too, and is
// caught.
func TestBroadcastSharesPersistedRows(t *testing.T) {
	checkWithAndWithoutBug(t, "ShareRowsAnyway", plantedbugs.Bugs{ShareRowsAnyway: true}, func(t *testing.T, bugs plantedbugs.Bugs) error {
		return errIf(broadcastRows(t, bugs))
	})
}

func broadcastRows(t *testing.T, bugs plantedbugs.Bugs) string {
	cfg := Config{Region: "eu", DigestInterval: -1}
	n := newNodeWithBugs(t, cfg, bugs)
	step := func(in Input) {
		in.Now = t0
		if err := n.Step(in); err != nil {
			t.Fatal(err)
		}
	}
	step(Input{Cmd: &Command{Kind: CmdRestock, ReqID: 1, SKU: "apple", Qty: 10}})
	advanced(n)
	step(Input{Cmd: &Command{Kind: CmdHold, ReqID: 2, Lines: []Line{{SKU: "apple", Qty: 1}}}})
	rd := advanced(n)
	rows := broadcast(rd)
	if len(rd.Persist.Rows) != 1 || len(rows) != 1 {
		return "a hold's Ready persists " + utoa(uint64(len(rd.Persist.Rows))) + " rows and broadcasts " + utoa(uint64(len(rows)))
	}
	if &rows[0] != &rd.Persist.Rows[0] {
		t.Error("the broadcast row is a second copy of the persisted one")
	}
	if rows[0].Reserved != 1 || rows[0].Region != "eu" {
		return "broadcast row " + rows[0].Region + " reserved " + utoa(rows[0].Reserved)
	}

	// A peer's row merged and an own row changed in one Ready.
	step(Input{Msg: &Message{Type: MsgRows, From: "us", Seq: 1, Rows: []Row{{SKU: "pear", Region: "us", Seq: 1, Minted: 5}}}})
	step(Input{Cmd: &Command{Kind: CmdHold, ReqID: 3, Lines: []Line{{SKU: "apple", Qty: 1}}}})
	rd = advanced(n)
	if len(rd.Persist.Rows) != 2 {
		t.Fatalf("persisted %d rows, want the peer's and the own one", len(rd.Persist.Rows))
	}
	rows = broadcast(rd)
	if len(rows) != 1 || rows[0].Region != "eu" || rows[0].SKU != "apple" || rows[0].Reserved != 2 {
		return "broadcast " + utoa(uint64(len(rows))) + " rows, want eu's apple row alone"
	}
	return ""
}

// broadcast returns the rows of rd's rows broadcasts.
func broadcast(rd Ready) []Row {
	var rows []Row
	for i := range rd.Send {
		if m := &rd.Send[i]; m.Type == MsgRows && m.To == "" {
			if rows == nil {
				rows = m.Rows
			} else {
				rows = append(rows, m.Rows...)
			}
		}
	}
	return rows
}
