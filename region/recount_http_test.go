package region_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/internal/testutil/testapi"
	"github.com/holdfast-io/holdfast/region"
)

func getStock(t *testing.T, base, sku string) (api.Stock, string) {
	t.Helper()
	res := call(t, base, "GET", "/v1/skus/"+sku, "", "", nil)
	if res.Status != 200 {
		t.Fatalf("stock %s: %d %s", sku, res.Status, res.Body)
	}
	var st api.Stock
	res.JSON(t, &st)
	return st, res.Header.Get("ETag")
}

// TestHTTPIfMatch: the ETag of GET /v1/skus/{sku} is accepted by restock
// and write-off while nothing moved, and refused with 412 once a hold moved
// the stock; a bad If-Match is a 400; neither changes anything.
func TestHTTPIfMatch(t *testing.T) {
	r, base := newHTTPRegion(t, region.NewMemStorage(), nil)
	call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":10}`, nil)
	_, etag := getStock(t, base, "A")
	if etag == "" || !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %q", etag)
	}
	res := call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":1}`, map[string]string{"If-Match": etag})
	if res.Status != 200 || res.Header.Get("ETag") == etag {
		t.Fatalf("restock with the current ETag: %d %s (ETag %s)", res.Status, res.Body, res.Header.Get("ETag"))
	}
	_, etag = getStock(t, base, "A")
	call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}]}`, nil) // moves the row
	before := snapshot(t, r)
	res = call(t, base, "POST", "/v1/skus/A/write-off", jsonCT, `{"qty":1}`, map[string]string{"If-Match": etag})
	if res.Status != http.StatusPreconditionFailed || !strings.HasSuffix(res.Problem(t).Type, "/precondition-failed") {
		t.Fatalf("write-off with a stale ETag: %d %s", res.Status, res.Body)
	}
	for _, bad := range []string{`W/"s1r0"`, `"a", "b"`, `s1r0`, `""`} {
		if res := call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":1}`, map[string]string{"If-Match": bad}); res.Status != 400 {
			t.Fatalf("If-Match %s: %d %s", bad, res.Status, res.Body)
		}
	}
	if after := snapshot(t, r); after != before {
		t.Fatalf("refused writes changed the state:\n%s\n%s", before, after)
	}
	if res := call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":1}`, map[string]string{"If-Match": "*"}); res.Status != 200 {
		t.Fatalf("If-Match *: %d %s", res.Status, res.Body)
	}
}

// TestHTTPRecount: holds race a recount; afterwards available + held +
// sold since the recount = on_hand. A replayed or older as_of is a 409,
// also after a restart (the last as_of is durable).
func TestHTTPRecount(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	open := func() (*region.Region, string) {
		r, err := region.Open(context.Background(), region.Config{Name: "eu", DataDir: dir, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return r, testapi.ServeAPI(t, r, region.Config{Name: "eu"})
	}
	r, base := open()
	call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":50}`, nil)
	asOf := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	const onHand = 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	var confirmedAfter uint64
	recountDone := make(chan struct{})
	// At most 4×5 = 20 units held: the 20 to write off stay available.
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}],"partial":true}`, nil)
				if res.Status != http.StatusCreated {
					continue // sold out after the write-off: fine
				}
				h := res.Hold(t)
				if j%2 == 0 {
					select {
					case <-recountDone:
						if c := call(t, base, "POST", "/v1/holds/"+h.ID+"/confirm", "", "", nil); c.Status == 200 {
							mu.Lock()
							confirmedAfter++
							mu.Unlock()
						}
					default:
					}
				}
			}
		}(i)
	}
	body := fmt.Sprintf(`{"on_hand":%d,"as_of":%q}`, onHand, asOf.Format(time.RFC3339))
	res := call(t, base, "PUT", "/v1/skus/A/stock", jsonCT, body, nil)
	close(recountDone)
	wg.Wait()
	if res.Status != 200 {
		t.Fatalf("recount: %d %s", res.Status, res.Body)
	}
	var rc api.Stock
	res.JSON(t, &rc)
	if rc.Recount == nil || rc.Recount.Unresolved != 0 || rc.Available+rc.Held != onHand || rc.LastRecountAsOf == nil {
		t.Fatalf("recount answer: %s", res.Body)
	}
	st, _ := getStock(t, base, "A")
	if got := st.Available + st.Held + (st.Sold - rc.Sold); got != onHand {
		t.Fatalf("after the recount and racing holds: available %d + held %d + sold since %d = %d, want %d",
			st.Available, st.Held, st.Sold-rc.Sold, got, onHand)
	}
	if st.Sold-rc.Sold > confirmedAfter {
		t.Fatalf("sold since the recount %d, but only %d confirms were sent after it", st.Sold-rc.Sold, confirmedAfter)
	}
	for _, b := range []string{body, fmt.Sprintf(`{"on_hand":5,"as_of":%q}`, asOf.Add(-time.Hour).Format(time.RFC3339))} {
		if res := call(t, base, "PUT", "/v1/skus/A/stock", jsonCT, b, nil); res.Status != http.StatusConflict {
			t.Fatalf("replayed or older recount %s: %d %s", b, res.Status, res.Body)
		}
	}
	for _, bad := range []string{`{"on_hand":5}`, `{"as_of":"2026-01-01T00:00:00Z"}`, `{"on_hand":-1,"as_of":"2026-01-01T00:00:00Z"}`,
		`{"on_hand":5,"as_of":"yesterday"}`, `{"on_hand":5000000000,"as_of":"2026-01-01T00:00:00Z"}`} {
		if res := call(t, base, "PUT", "/v1/skus/A/stock", jsonCT, bad, nil); res.Status != 400 {
			t.Fatalf("%s: %d %s", bad, res.Status, res.Body)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, base = open()
	defer r.Close()
	if res := call(t, base, "PUT", "/v1/skus/A/stock", jsonCT, body, nil); res.Status != http.StatusConflict {
		t.Fatalf("replayed recount after a restart: %d %s", res.Status, res.Body)
	}
	later := fmt.Sprintf(`{"on_hand":%d,"as_of":%q}`, onHand, asOf.Add(time.Second).Format(time.RFC3339))
	if res := call(t, base, "PUT", "/v1/skus/A/stock", jsonCT, later, nil); res.Status != 200 {
		t.Fatalf("a later recount after a restart: %d %s", res.Status, res.Body)
	}
}
