package sim

import (
	"testing"
	"time"
)

// TestSoakFlat: a 40-minute soak under every fault keeps what it holds
// flat once retention cycles (every checker at zero; events queued, holds
// kept by the regions and the oracle's records at the end within 1.5× of
// the middle), and the heap live after a full GC at the end within 2× of
// the middle (lenient: other tests' garbage is collected too).
func TestSoakFlat(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a 40-minute soak: run without -short")
	}
	o := Options{Seed: 1, Regions: 3, Faults: FaultsAll, Soak: true, Duration: 40 * time.Minute}
	r := mustRun(t, o)
	if r.Failed() {
		t.Fatalf("seed 1 soak failed: %v", r.Failures)
	}
	if len(r.Soak) != 4 {
		t.Fatalf("%d soak samples, want 4 (one per 10 simulated minutes)", len(r.Soak))
	}
	mid, end := r.Soak[1], r.Soak[3]
	for _, x := range r.Soak {
		t.Logf("minute %d: heap %.1f MB, queued %d, live holds %d, kept holds %d, oracle records %d",
			x.Minute, float64(x.HeapBytes)/(1<<20), x.Queued, x.LiveHolds, x.KeptHolds, x.OracleRecs)
	}
	flat := func(what string, a, b int) {
		if float64(b) > 1.5*float64(a) {
			t.Errorf("%s grew from %d (minute %d) to %d (minute %d)", what, a, mid.Minute, b, end.Minute)
		}
	}
	flat("events queued", mid.Queued, end.Queued)
	flat("holds kept", mid.KeptHolds, end.KeptHolds)
	flat("oracle records", mid.OracleRecs, end.OracleRecs)
	if end.HeapBytes > 2*mid.HeapBytes {
		t.Errorf("heap grew from %d to %d bytes", mid.HeapBytes, end.HeapBytes)
	}
}
