package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func runDemo(t *testing.T, o Options) (*Result, string) {
	t.Helper()
	var out bytes.Buffer
	o.Out = &out
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	return res, out.String()
}

func TestDemoChecksHold(t *testing.T) {
	d := 6 * time.Second
	if testing.Short() {
		d = 4 * time.Second
	}
	res, out := runDemo(t, Options{Duration: d, Shoppers: 8})
	if !res.OK() {
		t.Fatalf("checks failed:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"oversell=0", "lost_acked=0", "converged=true", "partial_granted=3", "partial_asked=5", "recount_on_hand=", "events="} {
		if !strings.Contains(last, want) {
			t.Errorf("last line %q lacks %s", last, want)
		}
	}
	if res.FlashSold != res.FlashStock {
		t.Errorf("flash sale sold %d of %d", res.FlashSold, res.FlashStock)
	}
	if res.Holds == 0 {
		t.Errorf("no holds granted:\n%s", out)
	}
	forged := false
	for _, c := range res.Checks {
		forged = forged || (c.Name == "forged messages dropped" && c.OK)
	}
	for _, name := range []string{"partial hold", "recount", "locations"} {
		found := false
		for _, c := range res.Checks {
			found = found || (c.Name == name && c.OK)
		}
		if !found {
			t.Errorf("no passing %q check:\n%s", name, out)
		}
	}
	if !forged {
		t.Errorf("the demo's signed cluster did not show forged rows dropped:\n%s", out)
	}
	t.Logf("\n%s", out)
}

// A region that grants without checking stock must make the demo fail.
func TestDemoCatchesBrokenRegion(t *testing.T) {
	res, out := runDemo(t, Options{Duration: 4 * time.Second, Shoppers: 8, BreakRegion: "us"})
	if res.OK() {
		t.Fatalf("demo passed with a region that oversells:\n%s", out)
	}
	if res.Oversell == 0 {
		t.Errorf("oversell not detected:\n%s", out)
	}
}
