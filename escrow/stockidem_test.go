package escrow

import (
	"testing"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// rerunKeyed applies a keyed restock and write-off, restarts the node from
// what it persisted (a crash after the batch), applies both again and
// returns the SKU's minted and shrunk units.
func rerunKeyed(t *testing.T, bugs plantedbugs.Bugs) (minted, shrunk uint64) {
	tn := newTNode(t, Config{bugs: bugs})
	re := Command{Kind: CmdRestock, SKU: "A", Qty: 10, IdemKey: "imp-1", IdemHash: 11}
	wo := Command{Kind: CmdWriteOff, SKU: "A", Qty: 3, IdemKey: "imp-2", IdemHash: 12}
	if r := tn.do(re); r.Err != nil || r.Applied != 10 || r.Replayed {
		t.Fatalf("first restock: %+v", r)
	}
	if r := tn.do(wo); r.Err != nil || r.Applied != 3 || r.Replayed {
		t.Fatalf("first write-off: %+v", r)
	}
	tn.restart()
	r1, r2 := tn.do(re), tn.do(wo)
	if !bugs.Any() {
		if r1.Err != nil || !r1.Replayed || r1.Applied != 0 || r1.Stock == nil || r1.Stock.Available != 7 {
			t.Fatalf("replayed restock: %+v", r1)
		}
		if r2.Err != nil || !r2.Replayed || r2.Applied != 0 {
			t.Fatalf("replayed write-off: %+v", r2)
		}
	}
	own := tn.n.View("A")[tn.n.Region()]
	return own.Minted, own.Shrunk
}

func TestKeyedStockCommandsApplyOnce(t *testing.T) {
	if m, s := rerunKeyed(t, plantedbugs.Bugs{}); m != 10 || s != 3 {
		t.Fatalf("after a re-run minted %d shrunk %d, want 10 and 3", m, s)
	}
}

// TestKeyedStockCommandsCatchBug: with the key not kept, the same check
// sees the re-run applied twice.
func TestKeyedStockCommandsCatchBug(t *testing.T) {
	if m, s := rerunKeyed(t, plantedbugs.Bugs{StockKeyNotKept: true}); m == 10 && s == 3 {
		t.Fatal("planted bug StockKeyNotKept went unnoticed")
	}
}

func TestKeyedStockCommandsRefuseReuse(t *testing.T) {
	tn := newTNode(t, Config{})
	tn.restock("A", 5)
	if r := tn.do(Command{Kind: CmdRestock, SKU: "A", Qty: 1, IdemKey: "k", IdemHash: 1}); r.Err != nil {
		t.Fatal(r.Err)
	}
	before := snap(tn.n)
	for _, c := range []Command{
		{Kind: CmdRestock, SKU: "A", Qty: 2, IdemKey: "k", IdemHash: 2},  // other request
		{Kind: CmdWriteOff, SKU: "A", Qty: 1, IdemKey: "k", IdemHash: 1}, // other kind
		{Kind: CmdHold, Lines: []Line{l("A", 1)}, IdemKey: "k", IdemHash: 1},
	} {
		r := tn.do(c)
		wantCode(t, c.Kind.String()+" reusing a restock's key", r.Err, CodeIdempotencyReuse)
	}
	if r := tn.do(Command{Kind: CmdRestock, SKU: "A", Qty: 1, IdemKey: "bad key", IdemHash: 1}); r.Err == nil {
		t.Fatal("a key with a space was accepted")
	}
	if after := snap(tn.n); after.String() != before.String() {
		t.Fatalf("refused commands changed the state:\n%v\n%v", before, after)
	}
	// The key expires with IdemTTL like a hold's.
	tn.tick(DefaultIdemTTL + 1)
	if r := tn.do(Command{Kind: CmdRestock, SKU: "A", Qty: 1, IdemKey: "k", IdemHash: 1}); r.Err != nil || r.Replayed || r.Applied != 1 {
		t.Fatalf("restock after the key expired: %+v", r)
	}
}
