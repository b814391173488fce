package httpapi

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/region"
)

// serverKinds are the HTTP servers every server-level test runs on.
var serverKinds = []string{region.HTTPServerNetHTTP, region.HTTPServerFastHTTP}

// serve serves s with Serve (its configured server) on loopback until the
// test ends and returns its base URL.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// answer is what a test compares of a response.
type answer struct {
	status int
	header map[string]string
	body   string
}

// comparedHeaders are the response headers both servers must send alike
// (Date and Content-Length are the transport's).
var comparedHeaders = []string{"Content-Type", "Cache-Control", "Location", "Retry-After", "WWW-Authenticate",
	"Allow", "Idempotent-Replayed", "Etag"}

// send sends one request with client c (keep-alive: requests of a test
// share connections, as real clients do).
func send(t *testing.T, c *http.Client, method, url, body string, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = nil, 0
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: res.StatusCode, header: map[string]string{}, body: string(b)}
	for _, h := range comparedHeaders {
		if v := res.Header.Values(h); len(v) > 0 {
			a.header[h] = strings.Join(v, ", ")
		}
	}
	return a
}

var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// tableRuntime answers as a region would, from fixed data: a hold eu-…1
// exists, SKU "NONE" is out of stock, SKU "BUSY" overloads the region.
func tableRuntime() *fakeRuntime {
	f := newFake()
	hold := func(id string, state escrow.HoldState) *escrow.Hold {
		return &escrow.Hold{ID: id, State: state, Lines: []escrow.Line{{SKU: "A", Qty: 2}},
			Created: fixedTime, Expires: fixedTime.Add(10 * time.Minute), MaxExpires: fixedTime.Add(time.Hour), Updated: fixedTime}
	}
	f.do = func(cmd escrow.Command) (escrow.Reply, error) {
		r := escrow.Reply{Kind: cmd.Kind}
		switch cmd.Kind {
		case escrow.CmdHold:
			switch cmd.Lines[0].SKU {
			case "NONE":
				r.Err = &escrow.Error{Code: escrow.CodeInsufficientStock, SKU: "NONE", Detail: "no stock"}
			case "BUSY":
				return r, region.ErrOverloaded
			case "META":
				h := hold("eu-000000000000000002", escrow.Held)
				h.Meta = cmd.Meta // the encoding/json fallback of the reply
				r.Hold = h
			default:
				r.Hold = hold("eu-000000000000000001", escrow.Held)
				r.Replayed = cmd.IdemKey == "again"
			}
		case escrow.CmdGet, escrow.CmdConfirm, escrow.CmdRelease, escrow.CmdExtend:
			if cmd.HoldID != "eu-000000000000000001" {
				r.Err = &escrow.Error{Code: escrow.CodeNotFound, Detail: "no hold " + cmd.HoldID}
				break
			}
			st := map[escrow.CommandKind]escrow.HoldState{escrow.CmdConfirm: escrow.Confirmed, escrow.CmdRelease: escrow.Released}[cmd.Kind]
			r.Hold = hold(cmd.HoldID, st)
		case escrow.CmdRestock:
			r.Stock = &escrow.StockView{SKU: cmd.SKU, Region: "eu", Available: cmd.Qty}
			r.Applied = cmd.Qty
		default:
			return r, region.ErrClosed
		}
		return r, nil
	}
	return f
}

// writeTokens writes a tokens file with a client and an admin token.
func writeTokens(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens.yaml")
	body := "tokens:\n  - {name: shop, token: client-token-0123456789, scopes: [client]}\n" +
		"  - {name: ops, token: admin-token-0123456789, scopes: [admin]}\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServersAnswerAlike: the hold routes (native on fasthttp), the
// delegated routes and the refusals answer byte for byte alike on both
// servers: status, the API's headers and the body.
func TestServersAnswerAlike(t *testing.T) {
	const id = "eu-000000000000000001"
	json := map[string]string{"Content-Type": "application/json"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"Content-Type": "application/json"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	big := `{"items":[{"sku":"A","qty":1}],"ttl":"` + strings.Repeat("x", 70<<10) + `"}`
	type req struct {
		method, path, body string
		hdr                map[string]string
	}
	open := []req{
		{"POST", "/v1/holds", `{"items":[{"sku":"A","qty":2}],"ttl":"10m"}`, json},
		{"POST", "/v1/holds", `{"items":[{"sku":"A","qty":2}]}`, with("Idempotency-Key", "again")},
		{"POST", "/v1/holds", `{"items":[{"sku":"META","qty":1}],"metadata":{"b":1,  "a":[2]}}`, json},
		{"POST", "/v1/holds", `{"items":[{"sku":"NONE","qty":1}]}`, json},
		{"POST", "/v1/holds", `{"items":[{"sku":"BUSY","qty":1}]}`, json},
		{"POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}],"ttl":"5m","ttl":"1h"}`, json},
		{"POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}],"colour":"red"}`, json},
		{"POST", "/v1/holds", `{"items":[]}`, json},
		{"POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}]}`, map[string]string{"Content-Type": "text/plain"}},
		{"POST", "/v1/holds", ``, json},
		{"POST", "/v1/holds", big, json},
		{"POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}]}`, with("Idempotency-Key", "bad key with spaces")},
		{"GET", "/v1/holds/" + id, ``, nil},
		{"GET", "/v1/holds/eu-000000000000000009", ``, nil},
		{"GET", "/v1/holds/not-an-id", ``, nil},
		{"POST", "/v1/holds/" + id + "/confirm", ``, nil},
		{"POST", "/v1/holds/" + id + "/release", `{}`, json},
		{"POST", "/v1/holds/" + id + "/release", `{"x":1}`, json},
		{"POST", "/v1/holds/" + id + "/extend", `{"ttl":"20m"}`, json},
		{"POST", "/v1/holds/" + id + "/extend", `{"ttl":"-1m"}`, json},
		{"POST", "/v1/holds/" + id + "/extend", `{}`, json},
		{"DELETE", "/v1/holds/" + id, ``, nil},
		{"PUT", "/v1/holds", ``, nil},
		{"POST", "/v1/holds/" + id + "/frobnicate", ``, nil},
		{"GET", "/v1/holds/" + id + "/confirm", ``, nil},
		{"GET", "/v1/nothing", ``, nil},
		{"GET", "/v1/holds/eu-00000000%30000000001", ``, nil}, // escaped: through net/http's mux on both
		{"POST", "/v1/skus/A/restock", `{"qty":3}`, json},
		{"GET", "/v1/skus/%20A", ``, nil},
		{"GET", "/v1/waitlist/eu-000000000000000001", ``, nil},
		{"GET", "/healthz", ``, nil},
	}
	tokens := writeTokens(t)
	authed := []req{
		{"POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}]}`, json},
		{"POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}]}`, with("Authorization", "Bearer wrong-token-0123456789")},
		{"POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}]}`, with("Authorization", "Bearer admin-token-0123456789")},
		{"POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}]}`, with("Authorization", "Bearer client-token-0123456789")},
		{"GET", "/v1/holds/" + id, ``, map[string]string{"Authorization": "bearer client-token-0123456789"}},
		{"POST", "/v1/holds/" + id + "/confirm", ``, nil},
		{"POST", "/v1/skus/A/restock", `{"qty":3}`, with("Authorization", "Bearer client-token-0123456789")},
		{"POST", "/v1/skus/A/restock", `{"qty":3}`, with("Authorization", "Bearer admin-token-0123456789")},
	}
	for _, set := range []struct {
		name string
		cfg  region.Config
		reqs []req
	}{{"open", region.Config{}, open}, {"tokens", region.Config{TokensFile: tokens}, authed}} {
		got := map[string][]answer{}
		for _, kind := range serverKinds {
			cfg := set.cfg
			cfg.HTTPServer = kind
			base := serve(t, newServer(t, tableRuntime(), cfg))
			c := &http.Client{Transport: &http.Transport{}}
			t.Cleanup(c.CloseIdleConnections)
			for _, r := range set.reqs {
				got[kind] = append(got[kind], send(t, c, r.method, base+r.path, r.body, r.hdr))
			}
		}
		for i, r := range set.reqs {
			n, f := got[region.HTTPServerNetHTTP][i], got[region.HTTPServerFastHTTP][i]
			if fmt.Sprint(n) != fmt.Sprint(f) {
				t.Errorf("%s: %s %s:\n net/http %d %v %.300s\n fasthttp %d %v %.300s", set.name, r.method, r.path,
					n.status, n.header, n.body, f.status, f.header, f.body)
			}
			if n.status == 0 || (n.body == "" && r.method != "HEAD") {
				t.Errorf("%s: %s %s: empty answer %d", set.name, r.method, r.path, n.status)
			}
		}
	}
}

// TestFastCountsLikeNetHTTP: holdfast_http_requests_total counts the hold
// routes under their patterns and codes on fasthttp as on net/http, each
// request once.
func TestFastCountsLikeNetHTTP(t *testing.T) {
	for _, kind := range serverKinds {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, tableRuntime(), region.Config{HTTPServer: kind})
			base := serve(t, s)
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			json := map[string]string{"Content-Type": "application/json"}
			send(t, c, "POST", base+"/v1/holds", `{"items":[{"sku":"A","qty":1}]}`, json)
			send(t, c, "POST", base+"/v1/holds", `{"items":[{"sku":"A","qty":1}]}`, json)
			send(t, c, "POST", base+"/v1/holds", `{"items":[{"sku":"NONE","qty":1}]}`, json)
			send(t, c, "GET", base+"/v1/holds/eu-000000000000000001", "", nil)
			send(t, c, "POST", base+"/v1/holds/eu-000000000000000001/extend", `{"ttl":"1m"}`, json)
			send(t, c, "POST", base+"/v1/holds/eu-000000000000000001/confirm", "", nil)
			send(t, c, "POST", base+"/v1/holds/eu-000000000000000001/release", "", nil)
			send(t, c, "POST", base+"/v1/skus/A/restock", `{"qty":1}`, json)
			send(t, c, "GET", base+"/v1/nothing", "", nil)
			want := map[[2]string]float64{
				{"POST /v1/holds", "201"}:              2,
				{"POST /v1/holds", "409"}:              1,
				{"GET /v1/holds/{id}", "200"}:          1,
				{"POST /v1/holds/{id}/extend", "200"}:  1,
				{"POST /v1/holds/{id}/confirm", "200"}: 1,
				{"POST /v1/holds/{id}/release", "200"}: 1,
				{"POST /v1/skus/{sku}/restock", "200"}: 1,
				{"other", "404"}:                       1,
			}
			total := 0.0
			for k, n := range want {
				if got := promtest.ToFloat64(s.requests.WithLabelValues(k[0], k[1])); got != n {
					t.Errorf("%s %s counted %v times, want %v", k[0], k[1], got, n)
				}
				total += n
			}
			if got := float64(promtest.CollectAndCount(s.requests)); got != float64(len(want)) {
				t.Errorf("%v series, want %d (a request counted under another label)", got, len(want))
			}
		})
	}
}

// TestFastDetachesBorrowedStrings: a delegated route's path value kept by
// the region (here, the SKU of a restock) stays what the client sent after
// later requests on the same connection. fasthttpadaptor lends its strings
// from the connection's buffer: without detach, the first SKU reads as the
// last request's bytes.
func TestFastDetachesBorrowedStrings(t *testing.T) {
	f := tableRuntime()
	var mu sync.Mutex
	var kept []string
	inner := f.do
	f.do = func(cmd escrow.Command) (escrow.Reply, error) {
		mu.Lock()
		kept = append(kept, cmd.SKU)
		mu.Unlock()
		return inner(cmd)
	}
	base := serve(t, newServer(t, f, region.Config{HTTPServer: region.HTTPServerFastHTTP}))
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}} // one connection
	defer c.CloseIdleConnections()
	json := map[string]string{"Content-Type": "application/json"}
	skus := []string{"AAAA", "BBBB", "CCCC"}
	for _, sku := range skus {
		if a := send(t, c, "POST", base+"/v1/skus/"+sku+"/restock", `{"qty":1}`, json); a.status != 200 {
			t.Fatalf("restock %s: %d %s", sku, a.status, a.body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(kept) != fmt.Sprint(skus) {
		t.Fatalf("SKUs kept by the region: %v, want %v", kept, skus)
	}
}

// TestFastBodyLimits: over max_body_bytes, a hold route and a delegated
// route answer the same 413 problem as on net/http, also for a chunked
// body (no Content-Length: fasthttp refuses it while reading); an import
// gets import_max_bytes only with a token that may import, and without
// one the 401/403 of its token.
func TestFastBodyLimits(t *testing.T) {
	tokens := writeTokens(t)
	for _, kind := range serverKinds {
		t.Run(kind, func(t *testing.T) {
			base := serve(t, newServer(t, tableRuntime(), region.Config{HTTPServer: kind, TokensFile: tokens, MaxBodyBytes: 1000}))
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			big := `{"items":[{"sku":"A","qty":1}],"ttl":"` + strings.Repeat("x", 2000) + `"}`
			client := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer client-token-0123456789"}
			admin := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer admin-token-0123456789"}
			for _, r := range []struct {
				path string
				hdr  map[string]string
			}{{"/v1/holds", client}, {"/v1/skus/A/restock", admin}} {
				a := send(t, c, "POST", base+r.path, big, r.hdr)
				if a.status != 413 || a.header["Content-Type"] != "application/problem+json" || !strings.Contains(a.body, "at most 1000 bytes") {
					t.Errorf("%s with %d bytes: %d %v %s", r.path, len(big), a.status, a.header, a.body)
				}
				// Chunked: the client does not know the length.
				req, _ := http.NewRequest("POST", base+r.path, io.MultiReader(strings.NewReader(big)))
				for k, v := range r.hdr {
					req.Header.Set(k, v)
				}
				res, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 413 || !strings.Contains(string(b), "at most 1000 bytes") {
					t.Errorf("%s chunked: %d %s", r.path, res.StatusCode, b)
				}
			}
			// An import larger than max_body_bytes: admin gets past the
			// limit (and to the import's own checks), client is refused
			// without the region reading the upload for it.
			csv := "sku,qty\n" + strings.Repeat("A,1\n", 600)
			imp := func(tok string) answer {
				return send(t, c, "POST", base+"/v1/stock/import", csv, map[string]string{"Content-Type": "text/csv", "Authorization": "Bearer " + tok})
			}
			if a := imp("admin-token-0123456789"); a.status == 413 {
				t.Errorf("admin import of %d bytes: %d %s", len(csv), a.status, a.body)
			}
			// A token that may not import gets its 401/403 on both
			// servers, not the 413 of the limit (fasthttp refuses the
			// body on its header, before reading it).
			for tok, want := range map[string]int{"client-token-0123456789": 403, "no-such-token-0123456789": 401} {
				if a := imp(tok); a.status != want || a.header["Content-Type"] != "application/problem+json" {
					t.Errorf("import of %d bytes with %s: %d %v %s, want %d", len(csv), tok, a.status, a.header, a.body, want)
				}
			}
		})
	}
}

// TestShutdownLetsInFlightHoldsFinish: when Serve's context ends, a hold
// in flight still gets its durable answer, on both servers (fasthttp
// cancels its request contexts at shutdown: the region call runs on the
// server's own context instead).
func TestShutdownLetsInFlightHoldsFinish(t *testing.T) {
	for _, kind := range serverKinds {
		t.Run(kind, func(t *testing.T) {
			f := tableRuntime()
			inner := f.do
			entered, release := make(chan struct{}), make(chan struct{})
			f.do = func(cmd escrow.Command) (escrow.Reply, error) {
				close(entered)
				<-release
				return inner(cmd)
			}
			s := newServer(t, f, region.Config{HTTPServer: kind})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- s.Serve(ctx, ln) }()
			got := make(chan answer, 1)
			go func() {
				c := &http.Client{Transport: &http.Transport{}}
				defer c.CloseIdleConnections()
				got <- send(t, c, "POST", "http://"+ln.Addr().String()+"/v1/holds", `{"items":[{"sku":"A","qty":1}]}`,
					map[string]string{"Content-Type": "application/json"})
			}()
			<-entered
			cancel()
			// Let the shutdown begin (the listener closes) before the answer.
			testutil.Eventually(t, 10*time.Second, "the listener closed", func() bool {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err == nil {
					c.Close()
				}
				return err != nil
			})
			close(release)
			if a := <-got; a.status != http.StatusCreated {
				t.Fatalf("in-flight hold during shutdown: %d %s", a.status, a.body)
			}
			if err := <-served; err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if n := f.canceled.Load(); n != 0 {
				t.Fatalf("%d region calls saw their context canceled by the shutdown", n)
			}
		})
	}
}

// TestDefaultServerIsFastHTTP: without http_server, Serve runs fasthttp
// (issue 22); "nethttp" picks net/http.
func TestDefaultServerIsFastHTTP(t *testing.T) {
	for cfg, want := range map[string]string{"": region.HTTPServerFastHTTP, region.HTTPServerFastHTTP: region.HTTPServerFastHTTP,
		region.HTTPServerNetHTTP: region.HTTPServerNetHTTP} {
		if got := newServer(t, newFake(), region.Config{HTTPServer: cfg}).serverKind(); got != want {
			t.Errorf("http_server %q: serves on %s, want %s", cfg, got, want)
		}
	}
}
