package main

import (
	"context"
	"strings"
	"testing"

	"github.com/holdfast-io/holdfast/client"
	"github.com/holdfast-io/holdfast/escrow"
)

// TestStockOpsCommands: hold --partial --cart, holds --cart, recount, and
// restock/write-off --if-match (a stale tag is refused, the current one
// applies).
func TestStockOpsCommands(t *testing.T) {
	url := startRegion(t, "eu", "")
	mustRun(t, "restock", "A", "3", "--url", url)
	out := mustRun(t, "hold", "--item", "A=5", "--partial", "--cart", "c-77", "--url", url)
	id, state := holdLine(t, out)
	wantContains(t, out, "A×3 of 5")
	if state != "held" {
		t.Fatalf("state %s", state)
	}
	out = mustRun(t, "holds", "--cart", "c-77", "--url", url)
	wantContains(t, out, id, "c-77", "1 holds")
	if out := mustRun(t, "holds", "--cart", "nobody", "--url", url); !strings.Contains(out, "0 holds") {
		t.Errorf("other cart: %s", out)
	}
	if _, err := run(t, "holds", "--state", "lost", "--url", url); err == nil || !strings.Contains(err.Error(), "state") {
		t.Errorf("bad state: %v", err)
	}
	out = mustRun(t, "recount", "A", "10", "--url", url)
	wantContains(t, out, "recounted A at eu to 10: was 3, delta +7")
	if _, err := run(t, "recount", "A", "9", "--as-of", "2001-01-01T00:00:00Z", "--url", url); err == nil {
		t.Error("an older recount was accepted")
	}
	if _, err := run(t, "restock", "A", "1", "--if-match", `"s1r0"`, "--url", url); err == nil || !strings.Contains(err.Error(), "412") && !strings.Contains(strings.ToLower(err.Error()), "precondition") {
		t.Errorf("stale --if-match: %v", err)
	}
	c, err := client.New(url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Stock(context.Background(), "A")
	if err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, "write-off", "A", "2", "--if-match", st.ETag, "--url", url)
	wantContains(t, out, "wrote off 2 of 2 units of A at eu")
}

// TestLocationCommands: restock/stock --location, and hold --location
// --split showing where the units ship from.
func TestLocationCommands(t *testing.T) {
	url := startRegion(t, "eu", "", escrow.Location{ID: "eu-berlin", Owner: "eu"}, escrow.Location{ID: "eu-paris", Owner: "eu"})
	mustRun(t, "restock", "A", "2", "--location", "eu-berlin", "--url", url)
	out := mustRun(t, "restock", "A", "4", "--location", "eu-paris", "--url", url)
	wantContains(t, out, "restocked 4 of 4 units of A at eu", "A (location eu-paris) at eu: available 4")
	out = mustRun(t, "hold", "--item", "A=3", "--location", "eu-berlin", "--location", "eu-paris", "--split", "--url", url)
	wantContains(t, out, "A×3 (2 from eu-berlin, 1 from eu-paris)")
	out = mustRun(t, "stock", "A", "--url", url)
	wantContains(t, out, "LOCATION", "eu-berlin", "eu-paris")
	out = mustRun(t, "stock", "A", "--location", "eu-paris", "--url", url)
	wantContains(t, out, "A (location eu-paris) at eu: available 3, held 1")
	if _, err := run(t, "hold", "--item", "A=1", "--split", "--url", url); err == nil {
		t.Error("--split without --location was accepted")
	}
}
