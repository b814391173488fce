package region_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/internal/testutil/testapi"
	"github.com/holdfast-io/holdfast/region"
)

// call sends one request to the API at base, with ctype as its
// Content-Type when set.
func call(t *testing.T, base, method, path, ctype, body string, hdr map[string]string) testapi.Response {
	t.Helper()
	h := map[string]string{}
	if ctype != "" {
		h["Content-Type"] = ctype
	}
	for k, v := range hdr {
		h[k] = v
	}
	return testapi.Call(t, method, base+path, body, h)
}

const jsonCT = "application/json"

// newHTTPRegion opens region "eu" on st with its HTTP API on 127.0.0.1.
func newHTTPRegion(t *testing.T, st *region.MemStorage, mod func(c *region.Config)) (*region.Region, string) {
	t.Helper()
	cfg := region.Config{Name: "eu", Storage: st, Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	return testapi.StartRegion(t, cfg)
}

// snapshot is what a bad request must leave untouched.
func snapshot(t *testing.T, r *region.Region) string {
	t.Helper()
	var s string
	if err := r.Inspect(context.Background(), func(n *escrow.Node) {
		st := n.Stats()
		s = fmt.Sprintf("seq=%d granted=%d active=%d rows=%v", n.Seq(), st.Granted, st.ActiveHolds, n.Rows())
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHTTPHoldLifecycle(t *testing.T) { testapi.ForEachServer(t, testHTTPHoldLifecycle) }

func testHTTPHoldLifecycle(t *testing.T) {
	r, base := newHTTPRegion(t, region.NewMemStorage(), nil)
	if res := call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":10}`, nil); res.Status != 200 {
		t.Fatalf("restock: %d %s", res.Status, res.Body)
	}
	if res := call(t, base, "POST", "/v1/skus/B/restock", jsonCT, `{"qty":10}`, nil); res.Status != 200 {
		t.Fatalf("restock: %d %s", res.Status, res.Body)
	}
	key := map[string]string{"Idempotency-Key": "cart-1"}
	res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1},{"sku":"B","qty":2},{"sku":"A","qty":1}],"ttl":"10m","metadata":{"user": "u1"}}`, key)
	if res.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	h := res.Hold(t)
	if h.State != "held" || h.Region != "eu" || len(h.Items) != 2 || !reflect.DeepEqual(h.Items[0], api.Item{SKU: "A", Qty: 2}) ||
		string(h.Metadata) != `{"user":"u1"}` || res.Header.Get("Location") != "/v1/holds/"+h.ID {
		t.Fatalf("created hold: %+v %v", h, res.Header)
	}
	if !h.ExpiresAt.After(h.CreatedAt) || !h.MaxExpiresAt.After(h.ExpiresAt) {
		t.Fatalf("times: %+v", h)
	}
	// The same request spelt differently is a replay: 200, same hold.
	res = call(t, base, "POST", "/v1/holds", jsonCT, `{"ttl":"600s","items":[{"sku":"B","qty":2},{"sku":"A","qty":2}],"metadata":{"user":"u1"}}`, key)
	if res.Status != http.StatusOK || res.Hold(t).ID != h.ID {
		t.Fatalf("replay: %d %s", res.Status, res.Body)
	}
	// Another body under the same key: 422.
	before := snapshot(t, r)
	res = call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":3}]}`, key)
	if res.Status != http.StatusUnprocessableEntity || res.Problem(t).Type != httpapi.ProblemTypeBase+"idempotency-key-reuse" {
		t.Fatalf("reuse: %d %s", res.Status, res.Body)
	}
	if after := snapshot(t, r); after != before {
		t.Fatalf("state changed by a rejected request:\n%s\n%s", before, after)
	}
	if res := call(t, base, "GET", "/v1/holds/"+h.ID, "", "", nil); res.Status != 200 || res.Hold(t).State != "held" {
		t.Fatalf("get: %d %s", res.Status, res.Body)
	}
	res = call(t, base, "POST", "/v1/holds/"+h.ID+"/extend", jsonCT, `{"ttl":"30m"}`, nil)
	if res.Status != 200 || !res.Hold(t).ExpiresAt.After(h.ExpiresAt) {
		t.Fatalf("extend: %d %s", res.Status, res.Body)
	}
	if res := call(t, base, "POST", "/v1/holds/"+h.ID+"/confirm", "", "", nil); res.Status != 200 || res.Hold(t).State != "confirmed" {
		t.Fatalf("confirm: %d %s", res.Status, res.Body)
	}
	if res := call(t, base, "POST", "/v1/holds/"+h.ID+"/confirm", jsonCT, `{}`, nil); res.Status != 200 {
		t.Fatalf("confirm again (idempotent): %d %s", res.Status, res.Body)
	}
	if res := call(t, base, "POST", "/v1/holds/"+h.ID+"/release", "", "", nil); res.Status != 409 || res.Problem(t).Type != httpapi.ProblemTypeBase+"conflict" {
		t.Fatalf("release after confirm: %d %s", res.Status, res.Body)
	}
	res = call(t, base, "GET", "/v1/skus/A", "", "", nil)
	var sv api.Stock
	if err := json.Unmarshal(res.Body, &sv); err != nil || res.Status != 200 {
		t.Fatalf("stock: %d %s", res.Status, res.Body)
	}
	if sv.Available != 8 || sv.Sold != 2 || sv.Held != 0 || sv.Regions["eu"].Available != 8 {
		t.Fatalf("stock view: %+v", sv)
	}
	res = call(t, base, "POST", "/v1/skus/A/write-off", jsonCT, `{"qty":100}`, nil)
	if err := json.Unmarshal(res.Body, &sv); err != nil || res.Status != 200 || *sv.Applied != 8 || sv.Available != 0 {
		t.Fatalf("write-off: %d %s", res.Status, res.Body)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if res := call(t, base, "GET", p, "", "", nil); res.Status != 200 {
			t.Fatalf("%s: %d", p, res.Status)
		}
	}
	res = call(t, base, "GET", "/metrics", "", "", nil)
	for _, m := range []string{"holdfast_holds_total", "holdfast_hold_latency_seconds", "holdfast_commit_batch_size",
		"holdfast_fsync_seconds", "holdfast_queue_depth", "holdfast_active_holds", "holdfast_expired_holds_total"} {
		if !strings.Contains(string(res.Body), m) {
			t.Errorf("metric %s missing", m)
		}
	}
}

// TestHTTPHoldCapacity: a region at its maximum of live holds answers a
// new hold with 503 hold-capacity and Retry-After, not with a stock
// refusal (it has units), and changes nothing.
func TestHTTPHoldCapacity(t *testing.T) { testapi.ForEachServer(t, testHTTPHoldCapacity) }

func testHTTPHoldCapacity(t *testing.T) {
	r, base := newHTTPRegion(t, region.NewMemStorage(), func(c *region.Config) { c.Escrow.MaxHolds = 2 })
	if res := call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":10}`, nil); res.Status != 200 {
		t.Fatalf("restock: %d %s", res.Status, res.Body)
	}
	for i := 0; i < 2; i++ {
		if res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}]}`, nil); res.Status != http.StatusCreated {
			t.Fatalf("hold %d: %d %s", i, res.Status, res.Body)
		}
	}
	before := snapshot(t, r)
	res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}]}`, nil)
	if res.Status != http.StatusServiceUnavailable || res.Problem(t).Type != httpapi.ProblemTypeBase+"hold-capacity" ||
		res.Header.Get("Retry-After") != "1" {
		t.Fatalf("third hold: %d %v %s", res.Status, res.Header, res.Body)
	}
	if after := snapshot(t, r); after != before {
		t.Fatalf("state changed by a refused hold:\n%s\n%s", before, after)
	}
	res = call(t, base, "GET", "/metrics", "", "", nil)
	if !strings.Contains(string(res.Body), `holdfast_holds_total{result="hold_capacity"} 1`) {
		t.Fatal("holdfast_holds_total{result=\"hold_capacity\"} is not 1")
	}
}

// TestHTTPOwnerUnreachable: a hold of a region that cannot be reached is
// a 503 naming that region once, with why, in words.
func TestHTTPOwnerUnreachable(t *testing.T) { testapi.ForEachServer(t, testHTTPOwnerUnreachable) }

func testHTTPOwnerUnreachable(t *testing.T) {
	_, base := newHTTPRegion(t, region.NewMemStorage(), nil)
	res := call(t, base, "GET", "/v1/holds/us-0123456789abcdefgh", "", "", nil)
	p := res.Problem(t)
	if res.Status != http.StatusServiceUnavailable || p.Type != httpapi.ProblemTypeBase+"owner-unreachable" || p.Owner != "us" ||
		p.Detail != "region us cannot be reached now: this region has no peers; retry shortly" || res.Header.Get("Retry-After") == "" {
		t.Fatalf("%d %v %+v", res.Status, res.Header, p)
	}
}

func TestHTTPBadInputs(t *testing.T) { testapi.ForEachServer(t, testHTTPBadInputs) }

func testHTTPBadInputs(t *testing.T) {
	st := region.NewMemStorage()
	r, base := newHTTPRegion(t, st, func(c *region.Config) { c.MaxBodyBytes = 4096 })
	region.Restock(t, r, "A", 5)
	held := region.MustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}}).Hold.ID
	okItems := `{"items":[{"sku":"A","qty":1}]}`
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf(`{"sku":"S%d","qty":1}`, i)
	}
	cases := []struct {
		name, method, path, ctype, body string
		hdr                             map[string]string
		status                          int
		slug                            string
	}{
		{"no content type", "POST", "/v1/holds", "", okItems, nil, 415, httpapi.ProblemMediaType},
		{"text/plain", "POST", "/v1/holds", "text/plain", okItems, nil, 415, httpapi.ProblemMediaType},
		{"unknown field", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}],"colour":"red"}`, nil, 400, "invalid"},
		{"unknown item field", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1,"x":1}]}`, nil, 400, "invalid"},
		{"trailing data", "POST", "/v1/holds", jsonCT, okItems + ` {}`, nil, 400, "invalid"},
		{"truncated JSON", "POST", "/v1/holds", jsonCT, `{"items":[`, nil, 400, "invalid"},
		{"empty body", "POST", "/v1/holds", jsonCT, ``, nil, 400, "invalid"},
		{"body too large", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}],"metadata":"` + strings.Repeat("x", 5000) + `"}`, nil, 413, httpapi.ProblemTooLarge},
		{"no items", "POST", "/v1/holds", jsonCT, `{"items":[]}`, nil, 400, "invalid"},
		{"too many items", "POST", "/v1/holds", jsonCT, `{"items":[` + strings.Join(many, ",") + `]}`, nil, 400, "invalid"},
		{"qty zero", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":0}]}`, nil, 400, "invalid"},
		{"qty negative", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":-1}]}`, nil, 400, "invalid"},
		{"qty too large", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1000001}]}`, nil, 400, "invalid"},
		{"sku empty", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"","qty":1}]}`, nil, 400, "invalid"},
		{"ttl too short", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}],"ttl":"500ms"}`, nil, 400, "invalid"},
		{"ttl too long", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}],"ttl":"2h"}`, nil, 400, "invalid"},
		{"ttl not a duration", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}],"ttl":"soon"}`, nil, 400, "invalid"},
		{"ttl a number", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}],"ttl":60}`, nil, 400, "invalid"},
		{"metadata too large", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}],"metadata":"` + strings.Repeat("x", 1100) + `"}`, nil, 400, "invalid"},
		{"bad idempotency key", "POST", "/v1/holds", jsonCT, okItems, map[string]string{"Idempotency-Key": "has space"}, 400, "invalid"},
		{"insufficient stock", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":5}]}`, nil, 409, "insufficient-stock"},
		{"unknown sku", "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"nope","qty":1}]}`, nil, 404, "unknown-sku"},
		{"malformed hold id", "GET", "/v1/holds/not-a-hold!", "", "", nil, 400, "invalid"},
		{"unknown hold", "GET", "/v1/holds/eu-000000000000000000", "", "", nil, 404, "not-found"},
		{"foreign hold, no peers", "POST", "/v1/holds/us-000000000000000000/confirm", "", "", nil, 503, httpapi.ProblemOwnerUnreachable},
		{"confirm with fields", "POST", "/v1/holds/" + held + "/confirm", jsonCT, `{"force":true}`, nil, 400, "invalid"},
		{"extend without body", "POST", "/v1/holds/" + held + "/extend", "", "", nil, 400, "invalid"},
		{"extend without ttl", "POST", "/v1/holds/" + held + "/extend", jsonCT, `{}`, nil, 400, "invalid"},
		{"extend ttl too long", "POST", "/v1/holds/" + held + "/extend", jsonCT, `{"ttl":"3h"}`, nil, 400, "invalid"},
		{"restock qty zero", "POST", "/v1/skus/A/restock", jsonCT, `{"qty":0}`, nil, 400, "invalid"},
		{"restock no qty", "POST", "/v1/skus/A/restock", jsonCT, `{}`, nil, 400, "invalid"},
		{"restock wrong type", "POST", "/v1/skus/A/restock", "application/xml", `<qty>1</qty>`, nil, 415, httpapi.ProblemMediaType},
		{"write-off unknown sku", "POST", "/v1/skus/nope/write-off", jsonCT, `{"qty":1}`, nil, 404, "unknown-sku"},
		{"stock unknown sku", "GET", "/v1/skus/nope", "", "", nil, 404, "unknown-sku"},
		{"method not allowed", "DELETE", "/v1/holds/" + held, "", "", nil, 405, httpapi.ProblemMethod},
		{"method not allowed on collection", "DELETE", "/v1/holds", "", "", nil, 405, httpapi.ProblemMethod},
		{"unknown route", "GET", "/v2/holds", "", "", nil, 404, httpapi.ProblemRoute},
		{"unknown action", "POST", "/v1/holds/" + held + "/cancel", jsonCT, `{}`, nil, 404, httpapi.ProblemRoute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, r)
			res := call(t, base, c.method, c.path, c.ctype, c.body, c.hdr)
			if res.Status != c.status {
				t.Fatalf("status %d, want %d: %s", res.Status, c.status, res.Body)
			}
			if p := res.Problem(t); p.Type != httpapi.ProblemTypeBase+c.slug {
				t.Fatalf("type %s, want %s", p.Type, c.slug)
			}
			if c.status == 405 && res.Header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
			if c.status == 503 && res.Header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			if after := snapshot(t, r); after != before {
				t.Fatalf("state changed by a rejected request:\n%s\n%s", before, after)
			}
		})
	}
	// The insufficient-stock problem names the SKU and what is available.
	res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":5}]}`, nil)
	if p := res.Problem(t); p.SKU != "A" || p.Available == nil || *p.Available != 4 {
		t.Fatalf("insufficient-stock extras: %+v", p)
	}
}

func TestHTTPOverloadAndStorageFailure(t *testing.T) {
	testapi.ForEachServer(t, testHTTPOverloadAndStorageFailure)
}

func testHTTPOverloadAndStorageFailure(t *testing.T) {
	st := region.NewMemStorage()
	r, base := newHTTPRegion(t, st, func(c *region.Config) { c.QueueLen = 1 })
	region.Restock(t, r, "A", 100)
	// Stall the loop, fill the one-slot queue, then one more is refused.
	block, inspecting := make(chan struct{}), make(chan struct{})
	go r.Inspect(context.Background(), func(*escrow.Node) { close(inspecting); <-block })
	<-inspecting
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}]}`, nil); res.Status != 201 {
			t.Errorf("queued request: %d %s", res.Status, res.Body)
		}
	}()
	testutil.Eventually(t, 5*time.Second, "queue full", func() bool { return region.QueueLen(r) == 1 })
	res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}]}`, nil)
	if res.Status != 503 || res.Header.Get("Retry-After") == "" || res.Problem(t).Type != httpapi.ProblemTypeBase+httpapi.ProblemOverloaded {
		t.Fatalf("overload: %d %v %s", res.Status, res.Header, res.Body)
	}
	close(block)
	wg.Wait()

	before := st.Row("A", "eu")
	st.SetFailApply(1)
	res = call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}]}`, nil)
	if res.Status != 503 || res.Header.Get("Retry-After") == "" || res.Problem(t).Type != httpapi.ProblemTypeBase+httpapi.ProblemStorage {
		t.Fatalf("storage failure: %d %s", res.Status, res.Body)
	}
	testutil.Eventually(t, 10*time.Second, "recovery", r.Ready)
	if after := st.Row("A", "eu"); !after.Equal(&before) {
		t.Fatalf("failed write changed the row: %+v -> %+v", before, after)
	}
	if res := call(t, base, "GET", "/readyz", "", "", nil); res.Status != 200 {
		t.Fatalf("readyz after recovery: %d", res.Status)
	}
	if res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}]}`, nil); res.Status != 201 {
		t.Fatalf("after recovery: %d %s", res.Status, res.Body)
	}
}

func TestHTTPAuthScopes(t *testing.T) { testapi.ForEachServer(t, testHTTPAuthScopes) }

func testHTTPAuthScopes(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	const clientTok, adminTok, bothTok = "client-token-0123456789", "admin-token-0123456789", "both-token-0123456789"
	if err := os.WriteFile(tokens, []byte(`tokens:
  - {name: shop, token: `+clientTok+`, scopes: [client]}
  - {name: ops, token: `+adminTok+`, scopes: [admin]}
  - {name: all, token: `+bothTok+`, scopes: [client, admin]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, base := newHTTPRegion(t, region.NewMemStorage(), func(c *region.Config) { c.TokensFile = tokens })
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	cases := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
	}{
		{"no token", "POST", "/v1/skus/A/restock", `{"qty":5}`, nil, 401},
		{"wrong token", "POST", "/v1/skus/A/restock", `{"qty":5}`, bearer("not-a-token-at-all-000"), 401},
		{"basic auth", "POST", "/v1/skus/A/restock", `{"qty":5}`, map[string]string{"Authorization": "Basic " + adminTok}, 401},
		{"client restocks", "POST", "/v1/skus/A/restock", `{"qty":5}`, bearer(clientTok), 403},
		{"admin restocks", "POST", "/v1/skus/A/restock", `{"qty":5}`, bearer(adminTok), 200},
		{"admin holds", "POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}]}`, bearer(adminTok), 403},
		{"client holds", "POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}]}`, bearer(clientTok), 201},
		{"both holds", "POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}]}`, bearer(bothTok), 201},
		{"client reads stock", "GET", "/v1/skus/A", "", bearer(clientTok), 200},
		{"admin reads stock", "GET", "/v1/skus/A", "", bearer(adminTok), 200},
		{"anonymous stock", "GET", "/v1/skus/A", "", nil, 401},
		{"health is open", "GET", "/healthz", "", nil, 200},
		{"metrics are open", "GET", "/metrics", "", nil, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := call(t, base, c.method, c.path, jsonCT, c.body, c.hdr)
			if res.Status != c.status {
				t.Fatalf("status %d, want %d: %s", res.Status, c.status, res.Body)
			}
			if c.status == 401 {
				if res.Header.Get("WWW-Authenticate") == "" || res.Problem(t).Type != httpapi.ProblemTypeBase+httpapi.ProblemUnauthorized {
					t.Fatalf("401 without challenge or problem: %v %s", res.Header, res.Body)
				}
			}
			if c.status == 403 && res.Problem(t).Type != httpapi.ProblemTypeBase+httpapi.ProblemForbidden {
				t.Fatalf("403 problem: %s", res.Body)
			}
		})
	}
	var minted uint64
	r.Inspect(context.Background(), func(n *escrow.Node) { minted = n.View("A")["eu"].Minted })
	if minted != 5 {
		t.Fatalf("minted %d: a refused restock took effect", minted)
	}
}

// TestHTTPRequestTimeout: a request whose durable answer takes longer than
// Config.RequestTimeout gets 503 timeout, soon after the deadline.
func TestHTTPRequestTimeout(t *testing.T) { testapi.ForEachServer(t, testHTTPRequestTimeout) }

func testHTTPRequestTimeout(t *testing.T) {
	st := region.NewMemStorage()
	r, base := newHTTPRegion(t, st, func(c *region.Config) { c.RequestTimeout = 50 * time.Millisecond })
	if res := call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":10}`, nil); res.Status != 200 {
		t.Fatalf("restock: %d %s", res.Status, res.Body)
	}
	st.SetDelay(400 * time.Millisecond) // every later write is slower than the deadline
	start := time.Now()
	res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}]}`, nil)
	took := time.Since(start)
	if res.Status != 503 || !bytes.Contains(res.Body, []byte(httpapi.ProblemTypeBase+httpapi.ProblemTimeout)) {
		t.Fatalf("slow hold: %d %s, want 503 %s", res.Status, res.Body, httpapi.ProblemTimeout)
	}
	if took > 350*time.Millisecond {
		t.Fatalf("timeout answered after %v, deadline 50ms", took)
	}
	_ = r
}
