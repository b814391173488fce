package sim

import (
	"strings"
	"testing"
	"time"
)

// TestMembershipFencedRetiredCopy pins seed 39/steady of --faults all on
// the region runtime: ap_south lent us_east units in row versions that only
// us_east received, then its store went back (rollback) and it was fenced;
// later us_east was drained and removed. The checkers take the fenced
// region's row as the merge of its peers' copies: without the removed
// region's stored copy (ownerRowForChecks, retiredCopy) those units were
// missing from us_east's received and its available went below zero
// (conservation=12, "available(us_east) = -55").
//
// The test checks that the run has that shape (the removed region's copy
// of the fenced region's row is ahead of every live copy in what it sent
// the removed region), then that every checker stays at zero.
func TestMembershipFencedRetiredCopy(t *testing.T) {
	o := Options{Seed: 39, Workload: "steady", Faults: FaultsAll, Regions: 3, Duration: 10 * time.Minute,
		Runtime: RuntimeRegion}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := newWorld(o.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	w.run()
	mb := w.mb
	if mb == nil || !mb.stopped {
		t.Fatal("the removed region was not stopped")
	}
	x := w.eps[mb.x]
	fenced := -1
	for i := range w.eps[:w.nReg] {
		if w.writesRefused(i) {
			fenced = i
		}
	}
	if fenced < 0 {
		t.Fatal("no region ended the run fenced")
	}
	f := w.eps[fenced]
	ahead := 0
	for _, sku := range w.setup.SKUs {
		rc := w.retiredCopy(mb.x, sku, f.name)
		if rc == nil {
			continue
		}
		live := uint64(0)
		for _, p := range w.eps[:w.nReg] {
			if p.down {
				continue
			}
			if r := p.node.View(sku)[f.name]; r != nil {
				live = max(live, r.SentTo(x.name))
			}
		}
		if rc.SentTo(x.name) > live {
			ahead++
		}
	}
	if ahead == 0 {
		t.Fatalf("no SKU where removed %s's copy of fenced %s's row is ahead of the live copies: "+
			"the run no longer has the shape this test pins", x.name, f.name)
	}
	w.finish()
	r := &w.res
	t.Logf("%d SKUs where %s's copy of %s's row is ahead; %v", ahead, x.name, f.name, r.FaultCounts)
	if r.Failed() || r.ConservationErrors > 0 {
		t.Fatalf("conservation_errors=%d: %s", r.ConservationErrors,
			strings.Join(r.Failures[:min(3, len(r.Failures))], "; "))
	}
}

// TestPlantedIgnoreFenceMembershipAll: with the removed region's copies in
// the fenced region's merged row, a fenced region that grants anyway (the
// fence ignored) is still caught on the same run.
func TestPlantedIgnoreFenceMembershipAll(t *testing.T) {
	o := Options{Seed: 39, Workload: "steady", Faults: FaultsAll, Regions: 3, Duration: 10 * time.Minute,
		Runtime: RuntimeRegion}
	if err := o.SetBug(BugIgnoreFence); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, o)
	if r.Oversell+r.ConservationErrors == 0 || !r.Failed() {
		t.Fatalf("bug %s not caught on seed 39/steady: oversell=%d conservation_errors=%d", BugIgnoreFence,
			r.Oversell, r.ConservationErrors)
	}
	t.Logf("caught: oversell=%d conservation_errors=%d: %s", r.Oversell, r.ConservationErrors, r.Failures[0])
}
