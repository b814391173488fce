package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// TestStrictBodies: duplicate keys, blank or space-padded SKUs and signed
// TTLs are 400 problems that say what is wrong, and nothing reaches the
// region.
func TestStrictBodies(t *testing.T) {
	f := newFake()
	var calls atomic.Int64
	f.do = func(cmd escrow.Command) (escrow.Reply, error) {
		// The node checks the cart (escrow.NormalizeLines); bodies the
		// server itself must refuse never get here.
		if _, err := escrow.NormalizeLines(cmd.Lines); err != nil {
			return escrow.Reply{Kind: cmd.Kind, Err: err}, nil
		}
		calls.Add(1)
		return escrow.Reply{Kind: cmd.Kind, Err: &escrow.Error{Code: escrow.CodeInvalid, Detail: "accepted"}}, nil
	}
	for _, kind := range serverKinds {
		t.Run(kind, func(t *testing.T) {
			strictBodies(t, &calls, serve(t, newServer(t, f, region.Config{HTTPServer: kind})))
		})
	}
}

func strictBodies(t *testing.T, calls *atomic.Int64, base string) {
	for _, c := range []struct {
		name, body, want string
	}{
		{"duplicate ttl", `{"items":[{"sku":"A","qty":1}],"ttl":"5m","ttl":"1h"}`, `duplicate key \"ttl\"`},
		{"duplicate qty", `{"items":[{"sku":"A","qty":1,"qty":1000}]}`, `duplicate key \"items[0].qty\"`},
		{"duplicate items", `{"items":[{"sku":"A","qty":1}],"items":[{"sku":"B","qty":1}]}`, `duplicate key \"items\"`},
		{"blank sku", `{"items":[{"sku":" ","qty":1}]}`, "space"},
		{"empty sku", `{"items":[{"sku":"","qty":1}]}`, "sku must be"},
		{"leading space", `{"items":[{"sku":" A","qty":1}]}`, "space"},
		{"trailing space", `{"items":[{"sku":"A ","qty":1}]}`, "space"},
		{"ttl +5m", `{"items":[{"sku":"A","qty":1}],"ttl":"+5m"}`, `ttl \"+5m\"`},
		{"wait +2m", `{"items":[{"sku":"A","qty":1}],"wait":"+2m"}`, `wait \"+2m\"`},
	} {
		req := httptest.NewRequest("POST", "/v1/holds", strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		rec := record(t, base, req)
		var p struct {
			Type, Detail string
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Header().Get("Content-Type"), "problem+json") ||
			!strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s: %d %s %s, want 400 problem with %q", c.name, rec.Code, rec.Header().Get("Content-Type"), rec.Body, c.want)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d invalid bodies were accepted", n)
	}
	// The stock route checks its path SKU the same way.
	rec := record(t, base, httptest.NewRequest("GET", "/v1/skus/%20A", nil))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("GET /v1/skus/%%20A: %d, want 400", rec.Code)
	}
}

// TestExampleTokensRefused: a tokens file still holding the example
// secrets is refused at start, with an error naming the file.
func TestExampleTokensRefused(t *testing.T) {
	ex, err := os.ReadFile("../configs/tokens.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(p, ex, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = New(newFake(), region.Config{Name: "eu", TokensFile: p})
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "example secret") {
		t.Fatalf("example tokens file: %v, want a refusal naming %s", err, p)
	}
	// One example token among real ones is enough to refuse.
	mixed := "tokens:\n  - {token: 9f8e7d6c5b4a39281706f5e4d3c2b1a0, scopes: [client]}\n  - {token: REPLACE-ME-admin-secret-0123456789, scopes: [admin]}\n"
	if err := os.WriteFile(p, []byte(mixed), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(newFake(), region.Config{Name: "eu", TokensFile: p}); err == nil {
		t.Fatal("a file with one example token was accepted")
	}
	good := "tokens:\n  - {token: 9f8e7d6c5b4a39281706f5e4d3c2b1a0, scopes: [client]}\n"
	if err := os.WriteFile(p, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(newFake(), region.Config{Name: "eu", TokensFile: p}); err != nil {
		t.Fatalf("a real tokens file: %v", err)
	}
}
