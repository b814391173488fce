package escrow

import (
	"reflect"
	"testing"
)

// TestPrefetchChangesNothing: Prefetch reads resident SKUs only (no row
// source read for one that is not, which with a bounded cache would be a
// step's work) and leaves the node as it was: no Ready, the same stats,
// no error; the SKU it read is then held as before.
func TestPrefetchChangesNothing(t *testing.T) {
	src := &benchRows{rows: map[string][]Row{}}
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1, Rows: src, MaxResidentSKUs: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	restock := Command{Kind: CmdRestock, ReqID: 1, SKU: "apple", Qty: 10}
	if err := n.Step(Input{Now: t0, Cmd: &restock}); err != nil {
		t.Fatal(err)
	}
	advanced(n)
	src.measuring = true // a read from now on is an error
	before := n.Stats()
	n.Prefetch([]Line{{SKU: "apple", Qty: 1}, {SKU: "pear", Qty: 1}})
	if n.HasReady() {
		t.Fatal("Prefetch left a Ready")
	}
	if err := n.Err(); err != nil {
		t.Fatalf("Prefetch read a SKU that is not resident: %v", err)
	}
	if after := n.Stats(); !reflect.DeepEqual(before, after) {
		t.Fatalf("Prefetch changed the stats: %+v, then %+v", before, after)
	}
	hold := Command{Kind: CmdHold, ReqID: 2, Lines: []Line{{SKU: "apple", Qty: 1}}}
	if err := n.Step(Input{Now: t0, Cmd: &hold}); err != nil {
		t.Fatal(err)
	}
	if rd := advanced(n); len(rd.Reply) != 1 || rd.Reply[0].Err != nil {
		t.Fatalf("the hold after Prefetch: %+v", rd.Reply)
	}
}
