package sim

import (
	"testing"
	"time"
)

// TestRTTMatrix: zone and region sides, "*" for the rest, later entries
// winning, and clear errors for bad entries.
func TestRTTMatrix(t *testing.T) {
	t.Parallel()
	m, err := parseRTT("*=40ms, us-eu=80ms,us-ap=220ms,eu-ap=150ms,us_east-us_west=30ms")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		a, b string
		want time.Duration
	}{{"us_east", "eu_west", 80 * time.Millisecond}, {"ap_south", "us_west", 220 * time.Millisecond},
		{"eu_west", "ap_south", 150 * time.Millisecond}, {"us_west", "us_east", 30 * time.Millisecond}, {"sa_east", "eu_west", 40 * time.Millisecond}} {
		if got, ok := rttOf(m, c.a, c.b); !ok || got != c.want {
			t.Errorf("%s-%s: %v %v, want %v", c.a, c.b, got, ok, c.want)
		}
	}
	for _, bad := range []string{"us-eu", "us-eu=fast", "us-eu=-1ms", "us-mars=10ms", "us=10ms", "us-eu=11s"} {
		if _, err := parseRTT(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := (Options{RTT: "us-mars=1ms"}).Validate(); err == nil {
		t.Error("Validate accepted a bad matrix")
	}
	if d := (Options{RTT: "us-ap=220ms", InterMax: 50 * time.Millisecond}).maxOneWay(); d != 110*time.Millisecond {
		t.Errorf("maxOneWay %v, want 110ms", d)
	}
}
