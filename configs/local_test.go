package configs_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
	"github.com/holdfast-io/holdfast/cmd/holdfast/regionconfig"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/internal/testutil/testapi"
	"github.com/holdfast-io/holdfast/region"
)

// TestLocalSetupWorks runs the walkthrough of docs/operations.md ("Local
// three-region setup") with the files of configs/local, on free loopback
// ports and temp dirs instead of the fixed ones: restock one unit at eu, a
// hold at us gets it (borrowed), a hold at ap is refused, and every region
// ends up with the same view.
func TestLocalSetupWorks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, url := testapi.NATSFromConfig(t, filepath.Join("local", "nats.conf"))

	clients := map[string]*client.Client{}
	for _, name := range []string{"eu", "us", "ap"} {
		cfg, err := regionconfig.Load(filepath.Join("local", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.DataDir, cfg.NATSURL, cfg.Logger = t.TempDir(), url, quietLogger()
		r, err := region.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := gossip.AttachRegion(ctx, r, gossip.ConfigFor(cfg))
		if err != nil {
			t.Fatal(err)
		}
		h, err := httpapi.New(r, cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(func() { srv.Close(); tr.Close(); r.Close() })
		if clients[name], err = client.New(srv.URL, client.Options{}); err != nil {
			t.Fatal(err)
		}
	}

	const sku = "tee-red"
	if _, err := clients["eu"].Restock(ctx, sku, 1); err != nil {
		t.Fatal(err)
	}
	// us learns of eu's unit from eu's rows or digest, then borrows it.
	testutil.Eventually(t, 10*time.Second, "us to see eu's unit", func() bool {
		st, err := clients["us"].Stock(ctx, sku)
		return err == nil && st.Regions["eu"].Available == 1
	})
	h, err := clients["us"].CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: sku, Qty: 1}}})
	if err != nil {
		t.Fatalf("hold at us of the unit stocked at eu: %v", err)
	}
	if h.Region != "us" || h.State != "held" {
		t.Fatalf("hold: %+v", h)
	}
	_, err = clients["ap"].CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: sku, Qty: 1}}})
	if s := client.StatusOf(err); s != 409 && s != 404 {
		t.Fatalf("second hold of the last unit, at ap: want 409 (or 404 before ap heard of the SKU), got %v", err)
	}
	// Every region converges to the same view of every row.
	testutil.Eventually(t, 10*time.Second, "all regions to agree", func() bool {
		var first map[string]api.RegionStock
		for _, name := range []string{"eu", "us", "ap"} {
			st, err := clients[name].Stock(ctx, sku)
			if err != nil {
				return false
			}
			view := map[string]api.RegionStock{}
			for r, rs := range st.Regions {
				rs.AgeMs = 0
				view[r] = rs
			}
			if first == nil {
				first = view
			} else if !reflect.DeepEqual(first, view) {
				return false
			}
		}
		return len(first) >= 2 && first["us"].Held == 1 && first["eu"].Available == 0
	})
}
