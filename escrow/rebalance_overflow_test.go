package escrow

import (
	"math"
	"testing"
	"time"
)

// TestRebalanceSumsDoNotWrap: digests whose units sum past 2^64 (each
// below it) would wrap the policy's totals into small, plausible targets
// and advise moves on them. The policy plans nothing for such a SKU (no
// moves, no home) and still plans the sound SKUs beside it; the Rebalancer
// counts the SKU (Stats.ImplausibleSKUs). Huge demands do not overflow the
// floors either.
func TestRebalanceSumsDoNotWrap(t *testing.T) {
	p := RebalancePolicy{Horizon: time.Minute}
	wrap := SKULoad{SKU: "W", Regions: []RegionLoad{
		{Region: "a", Available: math.MaxUint64 - 10, DemandPerSec: 0},
		{Region: "b", Available: 20, DemandPerSec: 50},
		{Region: "c", Available: 0, DemandPerSec: 50},
	}}
	atLimit := SKULoad{SKU: "L", Regions: []RegionLoad{
		{Region: "a", Available: MaxSKUUnits / 2, DemandPerSec: 0},
		{Region: "b", Available: MaxSKUUnits / 2, DemandPerSec: 0},
		{Region: "c", Available: 1, DemandPerSec: 10},
	}}
	sound := SKULoad{SKU: "S", Regions: []RegionLoad{load("a", 100, 0), load("b", 0, 5)}}
	in := RebalanceInput{SKUs: []SKULoad{atLimit, sound, wrap}}
	moves := Rebalance(in, p)
	for _, m := range moves {
		if m.SKU != "S" {
			t.Fatalf("advised %+v on digests whose sum wraps or reaches the limit", m)
		}
	}
	if !hasMove(moves, "S") {
		t.Fatalf("the sound SKU got no move: %+v", moves)
	}
	if n := CountImplausibleSKUs(in); n != 2 {
		t.Fatalf("CountImplausibleSKUs = %d, want 2", n)
	}
	// Scarce by its (wrapped) sum, but no home on implausible digests.
	scarce := SKULoad{SKU: "H", Regions: []RegionLoad{
		{Region: "a", Available: math.MaxUint64 / 2, DemandPerSec: 1000},
		{Region: "b", Available: math.MaxUint64/2 + 2, DemandPerSec: 1},
	}}
	if hs := ChooseHomes(RebalanceInput{SKUs: []SKULoad{scarce}}, nil, p); len(hs) != 0 {
		t.Fatalf("home chosen on a wrapped sum: %+v", hs)
	}
	// Demand so large that Floor + demand × FloorHorizon passes uint64:
	// the floors saturate, the targets still sum to the units there are.
	huge := RebalanceInput{SKUs: []SKULoad{{SKU: "D", Regions: []RegionLoad{
		{Region: "a", Available: 1000, DemandPerSec: 1e300},
		{Region: "b", Available: 0, DemandPerSec: 1e300},
	}}}}
	pf := RebalancePolicy{Horizon: time.Minute, FloorHorizon: time.Hour}
	var sum uint64
	for _, tg := range RebalanceTargets(huge, pf) {
		sum += tg.Target
	}
	if sum != 1000 {
		t.Fatalf("targets sum to %d, want the 1000 units there are", sum)
	}
	for _, m := range Rebalance(huge, pf) {
		if m.Qty > 1000 {
			t.Fatalf("move of %d units, only 1000 exist", m.Qty)
		}
	}

	// Through the Rebalancer: digests of a and b claiming 2^63 each.
	rb, err := NewRebalancer(RebalancerConfig{ID: "rebalancer", Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	for _, m := range []*Message{
		digestMsg("a", SKUDigest{SKU: "W", Available: 1 << 63}),
		digestMsg("b", SKUDigest{SKU: "W", Available: 1 << 63, DemandMilli: 5000}),
		digestMsg("c", SKUDigest{SKU: "W", Available: 0, DemandMilli: 5000}),
	} {
		if err := rb.Step(now, m); err != nil {
			t.Fatal(err)
		}
	}
	adv, ok := rb.Round(now.Add(time.Second))
	if !ok {
		t.Fatal("no round")
	}
	if len(adv.Moves) != 0 || len(adv.Homes) != 0 {
		t.Fatalf("advice on wrapping digests: %+v", adv)
	}
	if s := rb.Stats(); s.ImplausibleSKUs != 1 {
		t.Fatalf("ImplausibleSKUs = %d, want 1", s.ImplausibleSKUs)
	}
}
