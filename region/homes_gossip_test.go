package region_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/internal/testutil"
)

// publishHomes publishes, every interval until the test ends, an advice
// naming the given homes, as the rebalancer daemon does every round (homes
// lapse at the regions after escrow.Config.HomeTTL).
func publishHomes(t *testing.T, w *mrWorld, homes []escrow.Home, interval time.Duration) {
	t.Helper()
	nc, err := nats.Connect(w.srv.ClientURL(), nats.Name("test-advice"))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait(); nc.Close() })
	epoch := uint64(time.Now().UnixMilli())
	publish := func() {
		epoch++
		b, err := escrow.EncodeMessage(nil, &escrow.Message{Type: escrow.MsgAdvice, From: "rebalancer", Epoch: epoch, Homes: homes})
		if err != nil {
			t.Error(err)
			return
		}
		if err := nc.Publish(gossip.AdviceSubject(mrCluster), b); err != nil {
			t.Errorf("publish advice: %v", err)
		}
	}
	publish()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				publish()
			}
		}
	}()
}

func postHold(t *testing.T, base, sku string, qty uint64, idemKey string) (int, api.Hold, []byte) {
	t.Helper()
	body := fmt.Sprintf(`{"items":[{"sku":%q,"qty":%d}],"ttl":"10m"}`, sku, qty)
	req, err := http.NewRequest("POST", base+"/v1/holds", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	var h api.Hold
	if resp.StatusCode < 300 {
		if err := json.Unmarshal(buf, &h); err != nil {
			t.Fatalf("hold body %s: %v", buf, err)
		}
	}
	return resp.StatusCode, h, buf
}

// TestMultiRegionHomeServesScarceSKU: three real regions on embedded NATS.
// Advice names eu the home of A; us sends eu its units; a hold of A at ap
// (which has none) is routed to eu and granted there (201, an eu hold), its
// retry is replayed by eu, a confirm at us is forwarded to eu, and once
// eu's units are gone a hold anywhere gets 409. No unit is lost or doubled.
func TestMultiRegionHomeServesScarceSKU(t *testing.T) {
	w := newMRWorld(t, "eu", "us", "ap")
	w.mustDo("eu", restock("A", 3))
	w.mustDo("us", restock("A", 2))
	for _, n := range []string{"eu", "us", "ap"} {
		w.waitKnows(n, "eu", "A", 3)
		w.waitKnows(n, "us", "A", 2)
	}
	publishHomes(t, w, []escrow.Home{{SKU: "A", Region: "eu"}}, 200*time.Millisecond)
	for _, n := range []string{"eu", "us", "ap"} {
		testutil.WaitFor(t, 10*time.Second, func() bool {
			var hs []escrow.Home
			w.inspect(n, func(node *escrow.Node) { hs = node.Homes() })
			return len(hs) == 1 && hs[0] == escrow.Home{SKU: "A", Region: "eu"}
		}, func() string { return n + " never put the home of A in force" })
	}
	// us sends the home its units (on a tick), and eu learns of them.
	testutil.WaitFor(t, 10*time.Second, func() bool {
		var avail uint64
		w.inspect("eu", func(node *escrow.Node) { avail = node.Available("A") })
		return avail == 5
	}, func() string { return fmt.Sprintf("eu never had all 5 units of A: view %v", w.view("eu", "A")) })
	if s := w.sites["us"].reg.Stats(); s.HomeUnitsSent != 2 {
		t.Fatalf("us sent %d units to the home, want 2", s.HomeUnitsSent)
	}

	srv := map[string]string{}
	for _, n := range []string{"eu", "us", "ap"} {
		srv[n] = w.serveAPI(n)
	}
	code, h, body := postHold(t, srv["ap"], "A", 1, "cart-1")
	if code != http.StatusCreated || !strings.HasPrefix(h.ID, "eu-") || h.Region != "eu" {
		t.Fatalf("hold at ap: %d %s, want 201 with a hold of eu", code, body)
	}
	if s := w.sites["ap"].reg.Stats(); s.Routed != 1 {
		t.Fatalf("ap routed %d holds, want 1", s.Routed)
	}
	// The client's retry at ap is routed to eu again, which replays it.
	code, h2, body := postHold(t, srv["ap"], "A", 1, "cart-1")
	if code != http.StatusOK || h2.ID != h.ID {
		t.Fatalf("retry at ap: %d %s, want 200 with %s", code, body, h.ID)
	}
	// A confirm at us (not the owner) is forwarded to eu.
	st, b := httpDo(t, "POST", srv["us"]+"/v1/holds/"+h.ID+"/confirm", nil)
	if st != http.StatusOK || !strings.Contains(string(b), `"confirmed"`) {
		t.Fatalf("confirm at us: %d %s", st, b)
	}

	// The other 4 units go to holds at every region, all served by eu.
	for i, n := range []string{"us", "ap", "eu", "us"} {
		code, h, body := postHold(t, srv[n], "A", 1, fmt.Sprintf("more-%d", i))
		if code != http.StatusCreated || !strings.HasPrefix(h.ID, "eu-") {
			t.Fatalf("hold %d at %s: %d %s, want 201 with a hold of eu", i, n, code, body)
		}
	}
	// Sold out: 409 everywhere, never an error because of routing.
	for _, n := range []string{"ap", "us", "eu"} {
		code, _, body := postHold(t, srv[n], "A", 1, "")
		if code != http.StatusConflict {
			t.Fatalf("hold at %s after sell-out: %d %s, want 409", n, code, body)
		}
	}
	w.waitConverged("A", 10*time.Second)
	tot := w.view("ap", "A").Totals()
	if tot.Minted != 5 || tot.Sold != 1 || tot.Held != 4 || tot.Available != 0 {
		t.Fatalf("totals %+v, want 5 minted, 1 sold, 4 held, 0 available", tot)
	}
}
