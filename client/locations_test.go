package client_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/region"
)

// TestLocationClient: RestockAt, StockAt, WriteOffAt and RecountAt work on
// one location's stock; a hold line with locations comes back with its
// allocations.
func TestLocationClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := region.Config{Name: "eu", DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg.Escrow.Locations = []escrow.Location{{ID: "eu-berlin", Owner: "eu"}, {ID: "eu-paris", Owner: "eu"}}
	r, err := region.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(r, region.Config{Name: "eu"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer func() { srv.Close(); r.Close() }()
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.RestockAt(ctx, "A", "eu-berlin", 5); err != nil || s.Location != "eu-berlin" || s.Available != 5 {
		t.Fatalf("RestockAt: %+v %v", s, err)
	}
	if s, err := c.WriteOffAt(ctx, "A", "eu-berlin", 1); err != nil || s.Applied == nil || *s.Applied != 1 {
		t.Fatalf("WriteOffAt: %+v %v", s, err)
	}
	if s, err := c.RecountAt(ctx, "A", "eu-paris", client.RecountRequest{OnHand: 2, AsOf: time.Now().Add(-time.Minute)}); err != nil || s.Available != 2 {
		t.Fatalf("RecountAt: %+v %v", s, err)
	}
	hold, err := c.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: "A", Qty: 5, Locations: []string{"eu-berlin", "eu-paris"}, Split: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if it := hold.Items[0]; len(it.Allocations) != 2 || it.Allocations[0] != (api.Allocation{Location: "eu-berlin", Qty: 4}) ||
		it.Allocations[1] != (api.Allocation{Location: "eu-paris", Qty: 1}) {
		t.Fatalf("allocations: %+v", it.Allocations)
	}
	s, err := c.StockAt(ctx, "A", "eu-paris")
	if err != nil || s.Available != 1 || s.Held != 1 {
		t.Fatalf("StockAt: %+v %v", s, err)
	}
	all, err := c.Stock(ctx, "A")
	if err != nil || all.Locations["eu-berlin"].Held != 4 || all.Locations["eu-paris"].Held != 1 {
		t.Fatalf("Stock: %+v %v", all, err)
	}
}
