package region_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/internal/testutil/testapi"
	"github.com/holdfast-io/holdfast/region"
)

func openStoreRegion(t *testing.T, dir string, mod func(c *region.Config)) (*region.Region, string) {
	t.Helper()
	cfg := region.Config{Name: "eu", DataDir: dir, NoSync: true, Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	return testapi.StartRegion(t, cfg)
}

func createHold(t *testing.T, base, cart string) api.Hold {
	t.Helper()
	body := `{"items":[{"sku":"A","qty":1}],"ttl":"1h"}`
	if cart != "" {
		body = fmt.Sprintf(`{"items":[{"sku":"A","qty":1}],"ttl":"1h","cart":%q}`, cart)
	}
	res := call(t, base, "POST", "/v1/holds", jsonCT, body, nil)
	if res.Status != 201 {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	return res.Hold(t)
}

// listAll follows next_cursor from the first page to the last, calling
// between(page) after each page.
func listAll(t *testing.T, base, query string, between func(page int)) []api.Hold {
	t.Helper()
	return listFrom(t, base, query, "", between)
}

func listFrom(t *testing.T, base, query, cursor string, between func(page int)) []api.Hold {
	t.Helper()
	var all []api.Hold
	for page := 0; ; page++ {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		res := call(t, base, "GET", "/v1/holds?"+q, "", "", nil)
		if res.Status != 200 {
			t.Fatalf("list %s: %d %s", q, res.Status, res.Body)
		}
		var l api.HoldList
		res.JSON(t, &l)
		all = append(all, l.Holds...)
		if l.NextCursor == "" {
			return all
		}
		cursor = l.NextCursor
		if between != nil {
			between(page)
		}
		if page > 10000 {
			t.Fatal("listing does not end")
		}
	}
}

// TestHTTPListHoldsStableUnderChanges: while pages are read, holds are
// created and released (of the cart listed and others). Every hold that
// existed for the whole scan is returned exactly once, by cart and over
// all holds; no hold is returned twice.
func TestHTTPListHoldsStableUnderChanges(t *testing.T) {
	_, base := openStoreRegion(t, t.TempDir(), nil)
	if res := call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":100000}`, nil); res.Status != 200 {
		t.Fatalf("restock: %d", res.Status)
	}
	const n = 240
	before := map[string]bool{}
	var ids []string
	for i := 0; i < n; i++ {
		cart := "cart-1"
		if i%3 == 0 {
			cart = fmt.Sprintf("other-%d", i)
		}
		h := createHold(t, base, cart)
		ids = append(ids, h.ID)
		if cart == "cart-1" {
			before[h.ID] = true
		}
	}
	for _, query := range []string{"cart=cart-1&limit=7", "limit=13"} {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // concurrent changes: new holds, releases of old ones
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				createHold(t, base, "cart-1")
				if i < len(ids) {
					call(t, base, "POST", "/v1/holds/"+ids[i]+"/release", "", "", nil)
				}
			}
		}()
		got := listAll(t, base, query, nil)
		close(stop)
		wg.Wait()
		seen := map[string]int{}
		for _, h := range got {
			seen[h.ID]++
			if seen[h.ID] > 1 {
				t.Errorf("%s: hold %s returned twice", query, h.ID)
			}
			if strings.HasPrefix(query, "cart=") && h.Cart != "cart-1" {
				t.Errorf("%s: hold %s of cart %q", query, h.ID, h.Cart)
			}
		}
		want := before
		if !strings.HasPrefix(query, "cart=") {
			want = map[string]bool{}
			for _, id := range ids {
				want[id] = true
			}
		}
		for id := range want {
			if seen[id] != 1 {
				t.Errorf("%s: hold %s present for the whole scan returned %d times", query, id, seen[id])
			}
		}
		t.Logf("%s: %d holds listed, %d existed throughout", query, len(got), len(want))
	}
}

// TestHTTPListHoldsCursorSurvivesRestart: a cursor taken before a restart
// continues the listing after it, without repeats or gaps.
func TestHTTPListHoldsCursorSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	r, base := openStoreRegion(t, dir, nil)
	call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":1000}`, nil)
	want := map[string]bool{}
	for i := 0; i < 25; i++ {
		want[createHold(t, base, "c").ID] = true
	}
	var first api.HoldList
	call(t, base, "GET", "/v1/holds?cart=c&limit=10", "", "", nil).JSON(t, &first)
	if len(first.Holds) != 10 || first.NextCursor == "" {
		t.Fatalf("first page: %d holds, cursor %q", len(first.Holds), first.NextCursor)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, base = openStoreRegion(t, dir, nil)
	rest := listFrom(t, base, "cart=c&limit=10", first.NextCursor, nil)
	seen := map[string]int{}
	for _, h := range append(first.Holds, rest...) {
		seen[h.ID]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("hold %s listed %d times across the restart", id, seen[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("listed %d holds, want %d", len(seen), len(want))
	}
}

// TestHTTPListHoldsFilters: state, SKU and deadline filters; bad queries
// are 400s naming the parameter.
func TestHTTPListHoldsFilters(t *testing.T) { testapi.ForEachServer(t, testHTTPListHoldsFilters) }

func testHTTPListHoldsFilters(t *testing.T) {
	_, base := openStoreRegion(t, t.TempDir(), nil)
	call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":100}`, nil)
	call(t, base, "POST", "/v1/skus/B/restock", jsonCT, `{"qty":100}`, nil)
	a1, a2 := createHold(t, base, "x"), createHold(t, base, "")
	res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"B","qty":2}],"ttl":"2m"}`, nil)
	b := res.Hold(t)
	if res := call(t, base, "POST", "/v1/holds/"+a2.ID+"/release", "", "", nil); res.Status != 200 {
		t.Fatalf("release: %d", res.Status)
	}
	ids := func(q string) string {
		var out []string
		for _, h := range listAll(t, base, q, nil) {
			out = append(out, h.ID+":"+h.State)
		}
		return strings.Join(out, ",")
	}
	soon := url.QueryEscape(time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339))
	for q, want := range map[string]string{
		"state=held":                        a1.ID + ":held," + b.ID + ":held",
		"state=released":                    a2.ID + ":released",
		"state=confirmed":                   "",
		"sku=B":                             b.ID + ":held",
		"state=held&expires_before=" + soon: b.ID + ":held",
		"cart=x&state=held":                 a1.ID + ":held",
		"cart=x&state=released":             "",
		"expires_before=" + soon:            b.ID + ":held",
	} {
		if got := ids(q); got != want {
			// held holds list in deadline order: a1 (1h) after b (2m)
			if q == "state=held" && got == b.ID+":held,"+a1.ID+":held" {
				continue
			}
			t.Errorf("%s: got %q, want %q", q, got, want)
		}
	}
	var other api.HoldList
	call(t, base, "GET", "/v1/holds?cart=x&limit=1", "", "", nil).JSON(t, &other)
	createHold(t, base, "x")
	call(t, base, "GET", "/v1/holds?cart=x&limit=1", "", "", nil).JSON(t, &other)
	for _, bad := range []string{
		"limit=0", "limit=1001", "limit=ten", "state=lost", "cursor=%21%21", "cursor=AQ",
		"cart=y&cursor=" + url.QueryEscape(other.NextCursor), "expires_before=tomorrow",
		"colour=red", "limit=1&limit=2", "cart=" + strings.Repeat("c", 129), "sku=",
	} {
		res := call(t, base, "GET", "/v1/holds?"+bad, "", "", nil)
		if res.Status != 400 {
			t.Errorf("%s: status %d, want 400: %s", bad, res.Status, res.Body)
			continue
		}
		if p := res.Problem(t); !strings.HasSuffix(p.Type, "/invalid") {
			t.Errorf("%s: problem %s", bad, p.Type)
		}
	}
}

// TestHoldRetention: a released hold leaves the node's memory after the
// node's window, stays listable and readable from the store, and is pruned
// after hold_retain.
func TestHoldRetention(t *testing.T) {
	dir := t.TempDir()
	mod := func(c *region.Config) {
		c.Escrow.HoldRetain = 100 * time.Millisecond
		c.HoldRetain = 1500 * time.Millisecond
		c.PruneInterval = 20 * time.Millisecond
	}
	r, base := openStoreRegion(t, dir, mod)
	call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":10}`, nil)
	h := createHold(t, base, "gone")
	call(t, base, "POST", "/v1/holds/"+h.ID+"/release", "", "", nil)
	listed := func() bool {
		p, err := r.ListHolds(context.Background(), region.HoldQuery{Cart: "gone"})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Holds) == 1
	}
	// Retired from the node, the hold is still read by GET, from the store
	// (TestForwardedGetOfRetiredHold).
	testutil.Eventually(t, 5*time.Second, "the node retires the hold", func() bool {
		call(t, base, "GET", "/v1/holds/"+h.ID, "", "", nil)
		return storeLookups(t, r, "found") >= 1
	})
	if res := call(t, base, "GET", "/v1/holds/"+h.ID, "", "", nil); res.Status != 200 || res.Hold(t).State != "released" {
		t.Fatalf("GET of a retired hold: %d %s", res.Status, res.Body)
	}
	if !listed() {
		t.Fatal("a retired hold within hold_retain is not listable")
	}
	// A restart loads the store (indexes checked) without the retired hold.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, base = openStoreRegion(t, dir, mod)
	if st := call(t, base, "GET", "/v1/holds/"+h.ID, "", "", nil).Status; st != 200 || !listed() {
		t.Fatalf("after restart: GET %d (want 200, from the store), listed %v (want true)", st, listed())
	}
	testutil.Eventually(t, 5*time.Second, "the pruner drops the hold", func() bool { return !listed() })
	if st := call(t, base, "GET", "/v1/holds/"+h.ID, "", "", nil).Status; st != 404 {
		t.Fatalf("GET of a pruned hold: %d, want 404", st)
	}
}
