package configs_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/cmd/holdfast/regionconfig"
)

// TestLocalRegionConfigs: the three region configs load with the region's
// own loader (unknown keys are errors), validate, and fit together: distinct
// names, data dirs and addresses, one NATS server and one cluster.
func TestLocalRegionConfigs(t *testing.T) {
	seen := map[string]string{}
	var nats, cluster string
	for i, name := range []string{"eu", "us", "ap"} {
		f := filepath.Join("local", name+".yaml")
		c, err := regionconfig.Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if c.Name != name {
			t.Errorf("%s: name %q", f, c.Name)
		}
		if want := fmt.Sprintf("127.0.0.1:%d", 8080+i); c.HTTPAddr != want {
			t.Errorf("%s: http_addr %q, want %q (docs and prometheus.yml use it)", f, c.HTTPAddr, want)
		}
		for _, v := range []string{c.DataDir, c.HTTPAddr} {
			if other, dup := seen[v]; dup {
				t.Errorf("%s and %s share %q", f, other, v)
			}
			seen[v] = f
		}
		if i == 0 {
			nats, cluster = c.NATSURL, c.Cluster
		} else if c.NATSURL != nats || c.Cluster != cluster {
			t.Errorf("%s: nats_url %q cluster %q differ from eu's %q %q", f, c.NATSURL, c.Cluster, nats, cluster)
		}
		if c.Escrow.LowWater == 0 || c.Escrow.BorrowTimeout != 50*time.Millisecond || c.Escrow.DefaultTTL != 10*time.Minute {
			t.Errorf("%s: escrow settings not applied: %+v", f, c.Escrow)
		}
	}
	if nats != "nats://127.0.0.1:4222" {
		t.Errorf("nats_url %q, want the address of configs/local/nats.conf", nats)
	}
}
