package client_test

import (
	"context"
	"testing"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
)

// TestListHoldsIterates: the iterator follows cursors over several pages
// and yields each hold of the cart once; a bad option is an error.
func TestListHoldsIterates(t *testing.T) {
	c := newRegion(t)
	ctx := context.Background()
	if _, err := c.Restock(ctx, "A", 100); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := 0; i < 7; i++ {
		h, err := c.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: "A", Qty: 1}}, Cart: "c-1"})
		if err != nil {
			t.Fatal(err)
		}
		want[h.ID] = true
	}
	if _, err := c.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: "A", Qty: 1}}, Cart: "c-2"}); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for h, err := range c.ListHolds(ctx, client.ListOptions{Cart: "c-1", Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		got[h.ID]++
	}
	if len(got) != len(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("hold %s listed %d times", id, got[id])
		}
	}
	var errs int
	for _, err := range c.ListHolds(ctx, client.ListOptions{State: "lost"}) {
		if err == nil {
			t.Fatal("state=lost accepted")
		}
		errs++
	}
	if errs != 1 {
		t.Fatalf("%d errors yielded, want 1", errs)
	}
}
