package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
)

// fakeRegion implements just enough of the region API: holds of "sku-0"
// succeed until stock runs out (then 409), confirm/release answer 200.
type fakeRegion struct {
	mu        sync.Mutex
	stock     uint64
	holds     map[string]string
	confirms  atomic.Uint64
	releases  atomic.Uint64
	conns     atomic.Int64
	badAuth   atomic.Uint64
	restocked atomic.Uint64
}

func newFakeRegion(t *testing.T, stock uint64) (*fakeRegion, *httptest.Server) {
	f := &fakeRegion{stock: stock, holds: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/holds", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			f.badAuth.Add(1)
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		var req api.CreateHoldRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Items) != 1 || req.TTL != "10m0s" {
			http.Error(w, fmt.Sprintf("bad body %v %+v", err, req), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.stock < req.Items[0].Qty {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"type":"insufficient-stock"}`)
			return
		}
		f.stock -= req.Items[0].Qty
		id := fmt.Sprintf("eu-%018d", len(f.holds))
		f.holds[id] = "held"
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q,"state":"held","items":[{"sku":%q,"qty":%d}]}`, id, req.Items[0].SKU, req.Items[0].Qty)
	})
	mux.HandleFunc("POST /v1/holds/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		id := r.PathValue("id")
		if f.holds[id] != "held" {
			http.Error(w, "not found "+id, http.StatusNotFound)
			return
		}
		switch r.PathValue("action") {
		case "confirm":
			f.confirms.Add(1)
			f.holds[id] = "confirmed"
		case "release":
			f.releases.Add(1)
			f.holds[id] = "released"
		default:
			http.Error(w, "bad action", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"id":%q}`, id)
	})
	mux.HandleFunc("POST /v1/skus/{sku}/restock", func(w http.ResponseWriter, r *http.Request) {
		var req api.QtyRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Qty == 0 || req.Qty > 1000 {
			http.Error(w, "bad restock", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.stock += req.Qty
		f.mu.Unlock()
		f.restocked.Add(req.Qty)
		fmt.Fprint(w, `{}`)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return f, srv
}

func TestHTTPShopperMix(t *testing.T) {
	for _, std := range []bool{false, true} {
		t.Run(fmt.Sprintf("stdlib=%v", std), func(t *testing.T) { testHTTPShopperMix(t, std) })
	}
}

func testHTTPShopperMix(t *testing.T, std bool) {
	f, srv := newFakeRegion(t, 0)
	const conc = 8
	c, err := NewHTTPClient(srv.URL, "tok", conc, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.UseStdlib = std
	if err := c.Restock(context.Background(), SKUName(0), 2500, 1000); err != nil {
		t.Fatal(err)
	}
	if f.restocked.Load() != 2500 {
		t.Fatalf("restocked %d, want 2500 in calls of at most 1000", f.restocked.Load())
	}
	newOp, err := c.NewOp(Workload{SKUs: 1, Qty: 1, Mix: MixShopper, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Run(context.Background(), Config{Concurrency: conc, Duration: 500 * time.Millisecond, NewOp: newOp})
	if err != nil {
		t.Fatal(err)
	}
	if s.Errors != 0 || f.badAuth.Load() != 0 {
		t.Fatalf("errors %d (%s), bad auth %d", s.Errors, s.FirstErr, f.badAuth.Load())
	}
	if s.OK == 0 {
		t.Fatal("no hold granted")
	}
	// Every granted hold in the window was followed by a confirm or release.
	if s.Extra != s.OK {
		t.Errorf("extra %d, want %d", s.Extra, s.OK)
	}
	done := f.confirms.Load() + f.releases.Load()
	if done < s.OK || f.confirms.Load() == 0 || f.releases.Load() == 0 {
		t.Errorf("confirms %d releases %d for %d ok holds", f.confirms.Load(), f.releases.Load(), s.OK)
	}
	// Keep-alive: one connection per worker (plus the restock's), not one
	// per request. net/http's Transport dials a new connection when a
	// worker's next request comes before the transport's read loop has put
	// the previous one back in the pool, which a loaded CPU makes common:
	// up to 14 for 8 workers seen with -cpu 1,2. Without keep-alive, or with
	// the default idle pool of 2, it is ~230 for this run.
	limit := int64(conc + 1)
	if std {
		limit = 2*conc + 1
	}
	if n := f.conns.Load(); n > limit {
		t.Errorf("%d connections for %d workers (limit %d): keep-alive is not working", n, conc, limit)
	}
}

func TestHTTPRejectedWhenOutOfStock(t *testing.T) {
	for _, std := range []bool{false, true} {
		t.Run(fmt.Sprintf("stdlib=%v", std), func(t *testing.T) { testHTTPRejected(t, std) })
	}
}

func testHTTPRejected(t *testing.T, std bool) {
	_, srv := newFakeRegion(t, 10)
	c, err := NewHTTPClient(srv.URL, "tok", 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.UseStdlib = std
	newOp, err := c.NewOp(Workload{SKUs: 1, Qty: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Run(context.Background(), Config{Concurrency: 2, Duration: 200 * time.Millisecond, NewOp: newOp})
	if err != nil {
		t.Fatal(err)
	}
	if s.OK > 10 || s.Rejected == 0 || s.Errors != 0 {
		t.Errorf("ok %d rejected %d errors %d (%s): want at most 10 ok then rejections", s.OK, s.Rejected, s.Errors, s.FirstErr)
	}
}

func TestHTTPErrorsAreCounted(t *testing.T) {
	for _, std := range []bool{false, true} {
		t.Run(fmt.Sprintf("stdlib=%v", std), func(t *testing.T) { testHTTPErrors(t, std) })
	}
}

func testHTTPErrors(t *testing.T, std bool) {
	_, srv := newFakeRegion(t, 100)
	c, err := NewHTTPClient(srv.URL, "wrong-token", 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.UseStdlib = std
	newOp, _ := c.NewOp(Workload{SKUs: 3, Qty: 1})
	s, err := Run(context.Background(), Config{Concurrency: 1, Duration: 100 * time.Millisecond, NewOp: newOp})
	if err != nil {
		t.Fatal(err)
	}
	if s.OK != 0 || s.Errors == 0 || !strings.Contains(s.FirstErr, "401") {
		t.Errorf("ok %d errors %d first %q", s.OK, s.Errors, s.FirstErr)
	}
}

func TestHTTPRejectsBadURL(t *testing.T) {
	if _, err := NewHTTPClient("ftp://x", "", 1, 0); err == nil {
		t.Error("ftp URL accepted")
	}
}

func TestHoldID(t *testing.T) {
	id, err := holdID([]byte(`{"id":"eu-0123456789abcdefgh","state":"held"}`))
	if err != nil || id != "eu-0123456789abcdefgh" {
		t.Fatalf("%q %v", id, err)
	}
	id, err = holdID([]byte(`{"state":"held", "id" : "x-1"}`))
	if err != nil || id != "x-1" {
		t.Fatalf("spaced JSON: %q %v", id, err)
	}
	if _, err := holdID([]byte(`{"state":"held"}`)); err == nil {
		t.Fatal("missing id accepted")
	}
}
