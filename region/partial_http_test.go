package region_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/region"
)

// TestHTTPPartialHoldsRace: many partial holds race for a SKU that sells
// out. The units granted never exceed the stock and add up exactly to what
// the region says is held; the refused requests are 409s.
func TestHTTPPartialHoldsRace(t *testing.T) {
	const seed, stock, shoppers = 1919, 60, 48
	t.Logf("seed %d", seed)
	_, base := newHTTPRegion(t, region.NewMemStorage(), nil)
	if res := call(t, base, "POST", "/v1/skus/A/restock", jsonCT, fmt.Sprintf(`{"qty":%d}`, stock), nil); res.Status != 200 {
		t.Fatalf("restock: %d %s", res.Status, res.Body)
	}
	rnd := rand.New(rand.NewPCG(seed, 0))
	asks := make([]uint64, shoppers)
	for i := range asks {
		asks[i] = 1 + rnd.Uint64N(4)
	}
	var (
		mu      sync.Mutex
		granted uint64
		refused int
		wg      sync.WaitGroup
	)
	for i := 0; i < shoppers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := fmt.Sprintf(`{"items":[{"sku":"A","qty":%d}],"partial":true,"cart":"c-%d"}`, asks[i], i)
			res := call(t, base, "POST", "/v1/holds", jsonCT, body, nil)
			mu.Lock()
			defer mu.Unlock()
			switch res.Status {
			case http.StatusCreated:
				h := res.Hold(t)
				if !h.Partial || len(h.Items) != 1 || h.Items[0].Granted == nil || h.Cart != fmt.Sprintf("c-%d", i) {
					t.Errorf("hold %s", res.Body)
					return
				}
				g := *h.Items[0].Granted
				if g == 0 || g > asks[i] || h.Items[0].Qty != asks[i] {
					t.Errorf("granted %d of %d: %s", g, asks[i], res.Body)
				}
				granted += g
			case http.StatusConflict:
				if p := res.Problem(t); !strings.HasSuffix(p.Type, "/insufficient-stock") {
					t.Errorf("409 of type %s", p.Type)
				}
				refused++
			default:
				t.Errorf("status %d: %s", res.Status, res.Body)
			}
		}(i)
	}
	wg.Wait()
	if granted != stock || refused == 0 {
		t.Fatalf("granted %d (want exactly the stock %d), refused %d (want some)", granted, stock, refused)
	}
	var st api.Stock
	call(t, base, "GET", "/v1/skus/A", "", "", nil).JSON(t, &st)
	if st.Held != granted || st.Available != 0 {
		t.Fatalf("stock %+v: want held %d, available 0", st, granted)
	}
}

// TestHTTPPartialHold: a line granted 0 stays in the answer; an idempotent
// retry returns the same hold; a partial flag changes the request (422 on
// key reuse); a bad cart is a 400 that changes nothing.
func TestHTTPPartialHold(t *testing.T) {
	r, base := newHTTPRegion(t, region.NewMemStorage(), nil)
	call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":3}`, nil)
	call(t, base, "POST", "/v1/skus/B/restock", jsonCT, `{"qty":1}`, nil)
	call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"B","qty":1}]}`, nil)
	key := map[string]string{"Idempotency-Key": "p-1"}
	body := `{"items":[{"sku":"A","qty":5},{"sku":"B","qty":2}],"partial":true}`
	res := call(t, base, "POST", "/v1/holds", jsonCT, body, key)
	if res.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	h := res.Hold(t)
	if len(h.Items) != 2 || *h.Items[0].Granted != 3 || h.Items[0].Qty != 5 || *h.Items[1].Granted != 0 || h.Items[1].Qty != 2 {
		t.Fatalf("partial hold: %s", res.Body)
	}
	again := call(t, base, "POST", "/v1/holds", jsonCT, body, key)
	if again.Status != http.StatusOK || again.Hold(t).ID != h.ID {
		t.Fatalf("retry: %d %s", again.Status, again.Body)
	}
	if res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":5},{"sku":"B","qty":2}]}`, key); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("same key, not partial: %d %s", res.Status, res.Body)
	}
	if res := call(t, base, "GET", "/v1/holds/"+h.ID, "", "", nil); res.Status != 200 || *res.Hold(t).Items[0].Granted != 3 {
		t.Fatalf("get: %d %s", res.Status, res.Body)
	}
	before := snapshot(t, r)
	for _, bad := range []string{
		`{"items":[{"sku":"A","qty":1}],"cart":"has space"}`,
		`{"items":[{"sku":"A","qty":1}],"cart":"` + strings.Repeat("c", 129) + `"}`,
		`{"items":[{"sku":"A","qty":1}],"partial":"yes"}`,
	} {
		if res := call(t, base, "POST", "/v1/holds", jsonCT, bad, nil); res.Status != http.StatusBadRequest {
			t.Fatalf("%s: %d %s", bad, res.Status, res.Body)
		}
	}
	if after := snapshot(t, r); after != before {
		t.Fatalf("bad requests changed the state:\n%s\n%s", before, after)
	}
}
