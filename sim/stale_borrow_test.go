package sim

import (
	"strings"
	"testing"
	"time"
)

// TestStaleBorrowBugCaught: with the planted bug honour-stale-borrows
// (donors honour requests their requester has certainly given up on),
// the checker stale_borrows_honoured fails a --faults all run within a few
// seeds; without the bug the same seeds pass, with refusals counted.
func TestStaleBorrowBugCaught(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs seeds of 3 minutes with every fault")
	}
	o := Options{Regions: 3, Duration: 3 * time.Minute, Faults: "all"}
	if err := o.SetBug(BugHonourStaleBorrows); err != nil {
		t.Fatal(err)
	}
	caught := uint64(0)
	for seed := uint64(1); seed <= 10 && caught == 0; seed++ {
		o.Seed = seed
		if r := mustRun(t, o); r.StaleBorrowsHonoured > 0 && r.Failed() {
			caught = seed
			t.Logf("seed %d: stale_borrows_honoured=%d: %s", seed, r.StaleBorrowsHonoured,
				strings.Join(r.Failures[:min(2, len(r.Failures))], "; "))
		}
	}
	if caught == 0 {
		t.Fatal("honour-stale-borrows not caught with --faults all on seeds 1-10")
	}
	o = Options{Regions: 3, Duration: 3 * time.Minute, Faults: "all"}
	refused := uint64(0)
	for seed := uint64(1); seed <= caught; seed++ {
		o.Seed = seed
		r := mustRun(t, o)
		if r.StaleBorrowsHonoured > 0 {
			t.Fatalf("seed %d without the bug: stale_borrows_honoured=%d: %v", seed, r.StaleBorrowsHonoured, r.Failures)
		}
		refused += r.StaleBorrowsRefused
	}
	if refused == 0 {
		t.Fatalf("no stale borrow refused on seeds 1-%d without the bug: the bug's runs had nothing to honour", caught)
	}
	t.Logf("seeds 1-%d without the bug: stale_borrows_refused=%d", caught, refused)
}
