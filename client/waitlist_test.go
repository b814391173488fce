package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
)

// TestWaitlistCalls: CreateHoldOrWait returns a hold while units last and
// an entry (202) once sold out; a retry with the key is the same entry;
// GetWaitlistEntry follows it to promotion; CancelWaitlistEntry cancels a
// waiting entry and is a conflict on a promoted one; bad input is refused
// before anything is sent, and errors carry their problem code.
func TestWaitlistCalls(t *testing.T) {
	c := newRegion(t)
	ctx := context.Background()
	if _, err := c.Restock(ctx, "A", 1); err != nil {
		t.Fatal(err)
	}
	one := []api.Item{{SKU: "A", Qty: 1}}
	h, e, err := c.CreateHoldOrWait(ctx, client.HoldRequest{Items: one, Wait: time.Minute})
	if err != nil || h == nil || e != nil || h.State != "held" {
		t.Fatalf("first: %+v %+v %v", h, e, err)
	}
	h2, first, err := c.CreateHoldOrWait(ctx, client.HoldRequest{Items: one, Wait: time.Minute, IdempotencyKey: "w1",
		Metadata: []byte(`{"who":"ann"}`)})
	if err != nil || h2 != nil || first == nil || first.State != "waiting" || len(first.Position) != 1 ||
		first.Position[0] != 1 || first.Replayed || first.Region != "eu" || first.ExpiresAt.Sub(first.CreatedAt) != time.Minute {
		t.Fatalf("join: %+v %+v %v", h2, first, err)
	}
	_, again, err := c.CreateHoldOrWait(ctx, client.HoldRequest{Items: one, Wait: time.Minute, IdempotencyKey: "w1",
		Metadata: []byte(`{"who":"ann"}`)})
	if err != nil || again == nil || again.ID != first.ID || !again.Replayed {
		t.Fatalf("retry: %+v %v", again, err)
	}
	_, second, err := c.CreateHoldOrWait(ctx, client.HoldRequest{Items: one, Wait: time.Minute})
	if err != nil || second == nil || second.Position[0] != 2 {
		t.Fatalf("second join: %+v %v", second, err)
	}
	if got, err := c.GetWaitlistEntry(ctx, first.ID); err != nil || got.State != "waiting" || len(got.Raw) == 0 {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := c.Release(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetWaitlistEntry(ctx, first.ID)
	if err != nil || got.State != "promoted" || got.HoldID == "" {
		t.Fatalf("after release: %+v %v", got, err)
	}
	if ph, err := c.GetHold(ctx, got.HoldID); err != nil || ph.State != "held" {
		t.Fatalf("promoted hold: %+v %v", ph, err)
	}
	if _, err := c.CancelWaitlistEntry(ctx, first.ID); !client.IsCode(err, "conflict") || client.StatusOf(err) != 409 {
		t.Fatalf("cancel of a promoted entry: %v", err)
	}
	if got, err := c.GetWaitlistEntry(ctx, second.ID); err != nil || got.Position[0] != 1 {
		t.Fatalf("second moved up: %+v %v", got, err)
	}
	if got, err := c.CancelWaitlistEntry(ctx, second.ID); err != nil || got.State != "cancelled" {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	if got, err := c.CancelWaitlistEntry(ctx, second.ID); err != nil || got.State != "cancelled" {
		t.Fatalf("cancel again (idempotent): %+v %v", got, err)
	}
	if _, err := c.GetWaitlistEntry(ctx, "eu-0123456789abcdefgh"); client.StatusOf(err) != 404 {
		t.Fatalf("unknown entry: %v", err)
	}
	// Refused before sending.
	for name, req := range map[string]client.HoldRequest{
		"no wait":      {Items: one},
		"negative ttl": {Items: one, Wait: time.Minute, TTL: -time.Second},
		"bad metadata": {Items: one, Wait: time.Minute, Metadata: []byte("{")},
		"line break":   {Items: one, Wait: time.Minute, IdempotencyKey: "a\nb"},
	} {
		if _, _, err := c.CreateHoldOrWait(ctx, req); err == nil || client.StatusOf(err) != 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := c.GetWaitlistEntry(ctx, ""); err == nil {
		t.Error("empty id accepted")
	}
	// The server's limit: a wait beyond max_wait is a 400 problem.
	if _, _, err := c.CreateHoldOrWait(ctx, client.HoldRequest{Items: one, Wait: 48 * time.Hour}); !client.IsCode(err, "invalid") {
		t.Fatalf("wait beyond max_wait: %v", err)
	}
}
