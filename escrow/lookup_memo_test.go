package escrow

import (
	"fmt"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// twoSKUScript holds two SKUs in turn, in one Ready and across Readies,
// with a SKU cache of bound SKUs (0: unbounded) so that each is evicted
// and reloaded between its holds, and checks every reply against the
// stock of that SKU alone: a lookup that answers with the state of
// another SKU (the node's memo of the last one) is caught.
func twoSKUScript(t *testing.T, bound int, bugs plantedbugs.Bugs) error {
	t.Helper()
	r := newCacheRigBugs(t, bound, bugs)
	if bound == 0 {
		r.n.cfg.bugs = bugs
	}
	r.noCheck = true
	steps := []struct {
		cmd  Command
		want string // "ok" or the error code
	}{
		{Command{Kind: CmdRestock, SKU: "a", Qty: 5}, "ok"},
		{Command{Kind: CmdRestock, SKU: "b", Qty: 3}, "ok"},
		{Command{Kind: CmdRestock, SKU: "c", Qty: 1}, "ok"}, // with bound 1 or 2: a is evicted
		{Command{Kind: CmdHold, Lines: []Line{{SKU: "a", Qty: 1}}}, "ok"},
		{Command{Kind: CmdHold, Lines: []Line{{SKU: "b", Qty: 3}}}, "ok"},
		{Command{Kind: CmdHold, Lines: []Line{{SKU: "b", Qty: 1}}}, CodeInsufficientStock.String()},
		{Command{Kind: CmdHold, Lines: []Line{{SKU: "a", Qty: 4}}}, "ok"},
		{Command{Kind: CmdHold, Lines: []Line{{SKU: "c", Qty: 1}}}, "ok"},
		{Command{Kind: CmdHold, Lines: []Line{{SKU: "a", Qty: 1}}}, CodeInsufficientStock.String()},
	}
	for i, s := range steps {
		c := s.cmd
		c.ReqID = uint64(i + 1)
		if err := r.n.Step(Input{Now: r.now, Cmd: &c}); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		rd := r.n.Ready()
		r.rows.Put(rd.Persist.Rows...)
		if len(rd.Reply) != 1 {
			return fmt.Errorf("step %d (%s): %d replies", i, c.Kind, len(rd.Reply))
		}
		got := "ok"
		if e := rd.Reply[0].Err; e != nil {
			got = e.Code.String()
		}
		r.n.Advance()
		if got != s.want {
			return fmt.Errorf("step %d (%s of %v): got %s, want %s", i, c.Kind, c.Lines, got, s.want)
		}
		r.now = r.now.Add(time.Millisecond)
	}
	for _, sku := range []string{"a", "b", "c"} {
		if s := r.n.lookup(sku); s == nil || s.sku != sku {
			return fmt.Errorf("lookup(%q) gave the state of %v", sku, s)
		}
	}
	return nil
}

// TestLookupMemo: the memo of the last SKU looked up answers only for its
// own name, whether the SKUs stay resident or are evicted and reloaded
// between their holds.
func TestLookupMemo(t *testing.T) {
	for _, bound := range []int{0, 1, 2} {
		if err := twoSKUScript(t, bound, plantedbugs.Bugs{}); err != nil {
			t.Errorf("bound %d: %v", bound, err)
		}
	}
}

// TestLookupMemoPlanted: with the planted LookupMemoAnyName the script
// above fails (a hold of b is checked against a's stock).
func TestLookupMemoPlanted(t *testing.T) {
	for _, bound := range []int{0, 2} {
		err := twoSKUScript(t, bound, plantedbugs.Bugs{LookupMemoAnyName: true})
		if err == nil {
			t.Fatalf("bound %d: LookupMemoAnyName not caught", bound)
		}
		t.Logf("bound %d: caught: %v", bound, err)
	}
}
