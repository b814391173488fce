package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/region"
)

func newRegion(t *testing.T) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := region.Open(ctx, region.Config{Name: "eu", DataDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(r, region.Config{Name: "eu"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); r.Close() })
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAgainstRegion: a round trip of every call against a real region,
// including a SKU that needs escaping in the path.
func TestAgainstRegion(t *testing.T) {
	c := newRegion(t)
	ctx := context.Background()
	const sku = "shoes/42 EU ü"
	st, err := c.Restock(ctx, sku, 5)
	if err != nil {
		t.Fatal(err)
	}
	if st.SKU != sku || st.Applied == nil || *st.Applied != 5 || st.Available != 5 {
		t.Fatalf("restock: %+v", st)
	}
	h, err := c.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: sku, Qty: 2}}, TTL: time.Minute,
		IdempotencyKey: "k1", Metadata: []byte(`{"cart":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if h.State != "held" || h.Region != "eu" || h.Replayed || string(h.Metadata) != `{"cart":1}` ||
		h.ExpiresAt.Sub(h.CreatedAt) != time.Minute {
		t.Fatalf("hold: %+v", h)
	}
	again, err := c.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: sku, Qty: 2}}, TTL: time.Minute,
		IdempotencyKey: "k1", Metadata: []byte(`{"cart":1}`)})
	if err != nil || again.ID != h.ID || !again.Replayed {
		t.Fatalf("idempotent retry: %+v %v", again, err)
	}
	// Same key, another body: 422.
	_, err = c.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: sku, Qty: 1}}, IdempotencyKey: "k1"})
	if !client.IsCode(err, "idempotency-key-reuse") || client.StatusOf(err) != 422 {
		t.Fatalf("reuse: %v", err)
	}
	if h, err = c.Extend(ctx, h.ID, 2*time.Minute); err != nil || h.State != "held" {
		t.Fatalf("extend: %+v %v", h, err)
	}
	if h, err = c.Confirm(ctx, h.ID); err != nil || h.State != "confirmed" {
		t.Fatalf("confirm: %+v %v", h, err)
	}
	if _, err = c.Release(ctx, h.ID); !client.IsCode(err, "conflict") {
		t.Fatalf("release after confirm: %v", err)
	}
	if got, err := c.GetHold(ctx, h.ID); err != nil || got.State != "confirmed" {
		t.Fatalf("get: %+v %v", got, err)
	}
	st, err = c.WriteOff(ctx, sku, 10)
	if err != nil || *st.Applied != 3 || st.Available != 0 || st.Sold != 2 {
		t.Fatalf("write-off: %+v %v", st, err)
	}
	_, err = c.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: sku, Qty: 1}}})
	var pe *client.Error
	if !errors.As(err, &pe) || pe.Code() != "insufficient-stock" || pe.SKU != sku || pe.Available == nil ||
		*pe.Available != 0 || pe.Region != "eu" {
		t.Fatalf("insufficient stock: %#v", err)
	}
}

func TestResponseLimits(t *testing.T) {
	big := strings.Repeat("x", 2048)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/skus/big":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"sku":"`+big+`"}`)
		case "/v1/skus/proxy":
			// A proxy in front of the region answers in plain text.
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "upstream connect error")
		case "/v1/skus/slow":
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, client.Options{MaxResponseBytes: 1024, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Stock(ctx, "big"); err == nil || !strings.Contains(err.Error(), "larger than 1024 bytes") {
		t.Errorf("oversized response: %v", err)
	}
	_, err = c.Stock(ctx, "proxy")
	var pe *client.Error
	if !errors.As(err, &pe) || pe.Status != 502 || pe.RetryAfter != 7*time.Second || pe.Code() != "" ||
		!strings.Contains(err.Error(), "upstream connect error") {
		t.Errorf("plain-text error: %#v", err)
	}
	start := time.Now()
	if _, err := c.Stock(ctx, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow server: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout of 200ms took %v", d)
	}
}

func TestRequestLimitsAndValidation(t *testing.T) {
	c, err := client.New("http://127.0.0.1:1", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	huge := make([]api.Item, 0, 10000)
	for i := 0; i < 10000; i++ {
		huge = append(huge, api.Item{SKU: strings.Repeat("s", 128), Qty: 1})
	}
	if _, err := c.CreateHold(ctx, client.HoldRequest{Items: huge}); err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Errorf("huge request: %v", err)
	}
	if _, err := c.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: "A", Qty: 1}}, Metadata: []byte("{")}); err == nil {
		t.Error("invalid metadata accepted")
	}
	if _, err := c.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: "A", Qty: 1}}, IdempotencyKey: "a\r\nX-Evil: 1"}); err == nil {
		t.Error("header injection through the idempotency key accepted")
	}
	for _, u := range []string{"ftp://x", "http://", "127.0.0.1:8080", "http://h/?q=1"} {
		if _, err := client.New(u, client.Options{}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	if _, err := client.New("http://h", client.Options{Token: "a\nb"}); err == nil {
		t.Error("token with a line break accepted")
	}
}
