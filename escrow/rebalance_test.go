package escrow

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func load(region string, avail uint64, demand float64) RegionLoad {
	return RegionLoad{Region: region, Available: avail, DemandPerSec: demand}
}

func oneSKU(regs ...RegionLoad) RebalanceInput {
	return RebalanceInput{SKUs: []SKULoad{{SKU: "A", Regions: regs}}}
}

// applyMoves returns the availability per SKU and region after every move
// is applied in full, and fails on a move the donor cannot cover.
func applyMoves(t *testing.T, in RebalanceInput, moves []Move) RebalanceInput {
	t.Helper()
	out := RebalanceInput{}
	for _, s := range in.SKUs {
		regs := append([]RegionLoad(nil), s.Regions...)
		for _, m := range moves {
			if m.SKU != s.SKU {
				continue
			}
			var from, to *RegionLoad
			for i := range regs {
				switch regs[i].Region {
				case m.From:
					from = &regs[i]
				case m.To:
					to = &regs[i]
				}
			}
			if from == nil || to == nil {
				t.Fatalf("move %+v names a region not in the input", m)
			}
			if from.Available < m.Qty {
				t.Fatalf("move %+v exceeds the donor's %d units", m, from.Available)
			}
			from.Available -= m.Qty
			to.Available += m.Qty
		}
		out.SKUs = append(out.SKUs, SKULoad{SKU: s.SKU, Regions: regs})
	}
	return out
}

func TestRebalanceTable(t *testing.T) {
	p := RebalancePolicy{Horizon: time.Minute, Hysteresis: 0.2}
	tests := []struct {
		name   string
		in     RebalanceInput
		policy RebalancePolicy
		want   []Move
	}{
		{
			name:   "targets follow demand",
			in:     oneSKU(load("a", 100, 8), load("b", 100, 1), load("c", 100, 1)),
			policy: p,
			// targets 240/30/30
			want: []Move{{"A", "b", "a", 70}, {"A", "c", "a", 70}},
		},
		{
			name:   "balanced within the band: no move",
			in:     oneSKU(load("a", 100, 1.1), load("b", 100, 1), load("c", 100, 0.9)),
			policy: p,
		},
		{
			name:   "no demand anywhere: no move",
			in:     oneSKU(load("a", 0, 0), load("b", 100, 0), load("c", 7, 0)),
			policy: p,
		},
		{
			name:   "rejections count as demand",
			in:     oneSKU(RegionLoad{Region: "a", Available: 0, Rejected: 30}, load("b", 60, 0.5)),
			policy: p,
			// want a = 30, b = 30: 60 units split evenly
			want: []Move{{"A", "b", "a", 30}},
		},
		{
			name:   "floors first, then demand; no demand, no floor",
			in:     oneSKU(load("a", 0, 10), load("b", 100, 1), load("c", 30, 0)),
			policy: RebalancePolicy{Horizon: time.Minute, Floor: 40},
			// floors 40/40/0, the other 50 split 10:1: targets 85/45/0.
			want: []Move{{"A", "b", "a", 55}, {"A", "c", "a", 30}},
		},
		{
			name:   "a slow region keeps its floor",
			in:     oneSKU(load("a", 0, 1), load("b", 100, 0.01)),
			policy: RebalancePolicy{Horizon: time.Minute, Floor: 10},
			// floors 10/10, the other 80 split 100:1: targets 89/11.
			want: []Move{{"A", "b", "a", 89}},
		},
		{
			name:   "floors scaled down when stock is short",
			in:     oneSKU(load("a", 0, 1), load("b", 9, 1), load("c", 0, 0)),
			policy: RebalancePolicy{Horizon: time.Minute, Floor: 10},
			// 9 units for floors of 10 and 10: 5 and 4.
			want: []Move{{"A", "b", "a", 5}},
		},
		{
			name:   "floor horizon: floors follow each region's own demand",
			in:     oneSKU(load("a", 0, 1), load("b", 100, 0.5), load("c", 100, 0)),
			policy: RebalancePolicy{Horizon: time.Minute, FloorHorizon: 100 * time.Second},
			// floors 100/50/0, the other 50 split 2:1: targets 133/67/0.
			want: []Move{{"A", "b", "a", 33}, {"A", "c", "a", 100}},
		},
		{
			name:   "per-SKU cap",
			in:     oneSKU(load("a", 0, 1), load("b", 100, 0), load("c", 100, 0)),
			policy: RebalancePolicy{Horizon: time.Minute, MaxMovePerSKU: 25},
			want:   []Move{{"A", "b", "a", 25}},
		},
		{
			name: "total cap goes to the largest shortfall first",
			in: RebalanceInput{SKUs: []SKULoad{
				{SKU: "A", Regions: []RegionLoad{load("a", 0, 1), load("b", 10, 0)}},
				{SKU: "B", Regions: []RegionLoad{load("a", 0, 1), load("b", 100, 0)}},
			}},
			policy: RebalancePolicy{Horizon: time.Minute, MaxMoveTotal: 105},
			want:   []Move{{"A", "b", "a", 5}, {"B", "b", "a", 100}},
		},
		{
			name:   "min move",
			in:     oneSKU(load("a", 0, 1), load("b", 3, 0), load("c", 3, 0)),
			policy: RebalancePolicy{Horizon: time.Minute, MinMove: 4},
			// a wants 6 > band, but each donor has 3 < 4 to give.
		},
		{
			name:   "largest donor first, ties by name",
			in:     oneSKU(load("d", 0, 1), load("c", 50, 0), load("b", 50, 0), load("a", 20, 0)),
			policy: RebalancePolicy{Horizon: time.Minute, MaxMovePerSKU: 60},
			want:   []Move{{"A", "b", "d", 50}, {"A", "c", "d", 10}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Rebalance(tc.in, tc.policy)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("moves = %v, want %v\ntargets %+v", got, tc.want, RebalanceTargets(tc.in, tc.policy))
			}
			after := applyMoves(t, tc.in, got)
			if tc.policy.MaxMovePerSKU == 0 && tc.policy.MaxMoveTotal == 0 {
				// Hysteresis: once applied, the same demand asks for nothing more.
				if again := Rebalance(after, tc.policy); len(again) != 0 {
					t.Fatalf("second round moves again: %v", again)
				}
			}
		})
	}
}

// TestRebalanceNoPingPong: after stock has moved to the hot region, demand
// noise within the band moves nothing back.
func TestRebalanceNoPingPong(t *testing.T) {
	p := RebalancePolicy{Horizon: time.Minute, Hysteresis: 0.2}
	in := oneSKU(load("a", 100, 5), load("b", 100, 5), load("c", 100, 1))
	moves := Rebalance(in, p)
	if len(moves) == 0 {
		t.Fatal("no move toward demand")
	}
	cur := applyMoves(t, in, moves)
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 200 {
		for i := range cur.SKUs[0].Regions {
			r := &cur.SKUs[0].Regions[i]
			base := map[string]float64{"a": 5, "b": 5, "c": 1}[r.Region]
			r.DemandPerSec = base * (0.9 + 0.2*rng.Float64()) // ±10%
		}
		if m := Rebalance(cur, p); len(m) != 0 {
			t.Fatalf("round %d: noise moved stock: %v (input %+v)", round, m, cur)
		}
	}
}

// TestRebalanceProperties checks random inputs: advice conserves stock,
// never asks a region for more than Available − floor (or below its
// target), respects the caps, is sorted and deterministic, and is stable
// once applied.
func TestRebalanceProperties(t *testing.T) {
	for seed := uint64(1); seed <= 400; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		p := RebalancePolicy{
			Horizon:       time.Duration(1+rng.IntN(120)) * time.Second,
			Floor:         uint64(rng.IntN(20)),
			FloorHorizon:  time.Duration(rng.IntN(10)) * time.Second,
			Hysteresis:    rng.Float64() * 0.5,
			RejectWeight:  rng.Float64() * 3,
			MinMove:       uint64(1 + rng.IntN(3)),
			MaxMovePerSKU: uint64(rng.IntN(3)) * uint64(rng.IntN(200)),
			MaxMoveTotal:  uint64(rng.IntN(3)) * uint64(rng.IntN(500)),
		}
		var in RebalanceInput
		for s := range 1 + rng.IntN(4) {
			sl := SKULoad{SKU: fmt.Sprintf("s%d", s)}
			for r := range 1 + rng.IntN(6) {
				d := 0.0
				if rng.IntN(3) > 0 {
					d = rng.Float64() * 20
				}
				sl.Regions = append(sl.Regions, RegionLoad{Region: fmt.Sprintf("r%d", r),
					Available: uint64(rng.IntN(500)), DemandPerSec: d, Rejected: uint64(rng.IntN(3) * rng.IntN(10))})
			}
			rng.Shuffle(len(sl.Regions), func(i, j int) { sl.Regions[i], sl.Regions[j] = sl.Regions[j], sl.Regions[i] })
			in.SKUs = append(in.SKUs, sl)
		}
		fail := func(format string, a ...any) {
			t.Helper()
			t.Fatalf("seed %d: %s\npolicy %+v\ninput %+v", seed, fmt.Sprintf(format, a...), p, in)
		}
		moves := Rebalance(in, p)
		if again := Rebalance(in, p); !reflect.DeepEqual(moves, again) {
			fail("not deterministic: %v vs %v", moves, again)
		}
		if !sort.SliceIsSorted(moves, func(i, j int) bool {
			a, b := moves[i], moves[j]
			return a.SKU < b.SKU || a.SKU == b.SKU && (a.From < b.From || a.From == b.From && a.To < b.To)
		}) {
			fail("moves not sorted: %v", moves)
		}
		tg := map[[2]string]SKUTarget{}
		targetSum := map[string]uint64{}
		for _, x := range RebalanceTargets(in, p) {
			tg[[2]string{x.SKU, x.Region}] = x
			targetSum[x.SKU] += x.Target
			if x.Target < x.Floor {
				fail("target %+v below floor", x)
			}
		}
		out := map[[2]string]uint64{}
		perSKU := map[string]uint64{}
		var total uint64
		for _, m := range moves {
			if m.Qty < p.MinMove || m.From == m.To {
				fail("bad move %+v", m)
			}
			out[[2]string{m.SKU, m.From}] += m.Qty
			perSKU[m.SKU] += m.Qty
			total += m.Qty
		}
		for k, q := range out {
			x := tg[k]
			if x.Available < x.Floor+q {
				fail("region %s/%s asked for %d with %d available and floor %d", k[1], k[0], q, x.Available, x.Floor)
			}
			if x.Available-q < x.Target {
				fail("region %s/%s asked below its target %d", k[1], k[0], x.Target)
			}
		}
		for s, q := range perSKU {
			if p.MaxMovePerSKU > 0 && q > p.MaxMovePerSKU {
				fail("sku %s moved %d over the cap", s, q)
			}
		}
		if p.MaxMoveTotal > 0 && total > p.MaxMoveTotal {
			fail("moved %d over the total cap", total)
		}
		after := applyMoves(t, in, moves)
		for i, s := range after.SKUs {
			var before, now uint64
			for j := range s.Regions {
				before += in.SKUs[i].Regions[j].Available
				now += s.Regions[j].Available
			}
			if before != now || (targetSum[s.SKU] != 0 && targetSum[s.SKU] != before) {
				fail("sku %s: %d units before, %d after, targets sum %d", s.SKU, before, now, targetSum[s.SKU])
			}
		}
		if p.MaxMovePerSKU == 0 && p.MaxMoveTotal == 0 && p.MinMove == 1 {
			if again := Rebalance(after, p); len(again) != 0 {
				fail("not stable once applied: %v then %v", moves, again)
			}
		}
	}
}

var rbT0 = time.Unix(1_700_000_000, 0).UTC()

func digestMsg(from string, ds ...SKUDigest) *Message {
	return &Message{Type: MsgDigest, From: from, Digest: ds}
}

func TestRebalancerInFlightAndStale(t *testing.T) {
	rb, err := NewRebalancer(RebalancerConfig{ID: "rebalancer", Policy: RebalancePolicy{Horizon: time.Minute},
		StaleAfter: 5 * time.Second, Settle: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := rbT0
	feed := func(aAvail, bAvail uint64) {
		for _, m := range []*Message{
			digestMsg("a", SKUDigest{SKU: "A", Available: aAvail, DemandMilli: 9000}),
			digestMsg("b", SKUDigest{SKU: "A", Available: bAvail, DemandMilli: 1000}),
		} {
			if err := rb.Step(now, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	feed(0, 100)
	adv, ok := rb.Round(now)
	if !ok || len(adv.Moves) != 1 || adv.Moves[0] != (Move{"A", "b", "a", 90}) || adv.From != "rebalancer" {
		t.Fatalf("first round: %+v", adv)
	}
	e1 := adv.Epoch
	// The same (stale) digests again before the move settles: no repeat.
	now = now.Add(time.Second)
	feed(0, 100)
	adv, _ = rb.Round(now)
	if len(adv.Moves) != 0 || adv.Epoch <= e1 {
		t.Fatalf("move repeated while in flight: %+v", adv)
	}
	// Digests after the settle time show the move applied: nothing to do.
	now = now.Add(2 * time.Second)
	feed(90, 10)
	if adv, _ = rb.Round(now); len(adv.Moves) != 0 {
		t.Fatalf("after settle: %+v", adv)
	}
	// b goes silent: it leaves the plan and no move names it.
	now = now.Add(3 * time.Second)
	if err := rb.Step(now, digestMsg("a", SKUDigest{SKU: "A", Available: 0, DemandMilli: 9000})); err != nil {
		t.Fatal(err)
	}
	now = now.Add(3 * time.Second)
	if adv, _ = rb.Round(now); len(adv.Moves) != 0 || rb.Stats().Regions != 1 {
		t.Fatalf("silent region still planned: %+v stats %+v", adv, rb.Stats())
	}
}

func TestRebalancerEpochAndStandby(t *testing.T) {
	mk := func(id string) *Rebalancer {
		rb, err := NewRebalancer(RebalancerConfig{ID: id, StandbyAfter: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return rb
	}
	a, b := mk("rb_a"), mk("rb_b")
	now := rbT0
	advA, ok := a.Round(now)
	if !ok {
		t.Fatal("a on standby")
	}
	// b's clock is behind, but it saw a's advice: its epoch goes above.
	if err := b.Step(now, &advA); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Round(now.Add(time.Second)); ok {
		t.Fatal("b active while a (smaller id) is publishing")
	}
	// a is silent past StandbyAfter: b takes over with a higher epoch even
	// though its clock is behind a's.
	advB, ok := b.Round(now.Add(-time.Minute + 4*time.Second))
	if ok {
		t.Fatal("b took over early")
	}
	b2 := mk("rb_b")
	_ = b2.Step(now, &advA)
	advB, ok = b2.Round(now.Add(4 * time.Second))
	if !ok || advB.Epoch <= advA.Epoch {
		t.Fatalf("takeover: ok=%v epoch %d after %d", ok, advB.Epoch, advA.Epoch)
	}
	// Epochs strictly grow even if the clock stands still or goes back.
	c := mk("rb_c")
	e := uint64(0)
	for i := range 3 {
		m, _ := c.Round(now.Add(-time.Duration(i) * time.Second))
		if m.Epoch <= e {
			t.Fatalf("epoch went from %d to %d", e, m.Epoch)
		}
		e = m.Epoch
	}
}

// readyStepper returns a function that steps n at now with one input and
// takes (and advances past) the Ready it produced.
func readyStepper(t *testing.T, n *Node, now time.Time) func(Input) Ready {
	return func(in Input) Ready {
		t.Helper()
		in.Now = now
		if err := n.Step(in); err != nil {
			t.Fatal(err)
		}
		rd := advanced(n)
		return rd
	}
}

// TestAdviceAppliedFromSurplusOnly drives a real Node: advice moves units
// through the donor's row, never below its floor, and a stale or duplicate
// epoch is ignored.
func TestAdviceAppliedFromSurplusOnly(t *testing.T) {
	n, err := NewNode(Config{Region: "b", DonorFloor: 10, DigestInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	step := readyStepper(t, n, rbT0)
	step(Input{Cmd: &Command{Kind: CmdRestock, ReqID: 1, SKU: "A", Qty: 50}})
	step(Input{Cmd: &Command{Kind: CmdHold, ReqID: 2, Lines: []Line{{SKU: "A", Qty: 5}}, TTL: time.Minute}})
	// 45 available, floor 10: at most 35 can go.
	adv := Message{Type: MsgAdvice, From: "rebalancer", Epoch: 5, Moves: []Move{{"A", "b", "a", 100}, {"A", "c", "a", 1}}}
	rd := step(Input{Msg: &adv})
	if got := n.Available("A"); got != 10 {
		t.Fatalf("available after advice = %d, want 10", got)
	}
	if len(rd.Persist.Rows) != 1 || rd.Persist.Rows[0].SentTo("a") != 35 {
		t.Fatalf("advice not persisted through the own row: %+v", rd.Persist.Rows)
	}
	if len(rd.Send) == 0 || rd.Send[0].Type != MsgRows {
		t.Fatalf("advice transfer not broadcast: %+v", rd.Send)
	}
	step(Input{Cmd: &Command{Kind: CmdRestock, ReqID: 3, SKU: "A", Qty: 50}})
	adv.Moves = []Move{{"A", "b", "a", 5}}
	step(Input{Msg: &adv}) // duplicate epoch
	adv.Epoch = 4
	step(Input{Msg: &adv}) // stale epoch
	if got := n.Available("A"); got != 60 {
		t.Fatalf("stale advice applied: available %d", got)
	}
	adv.Epoch = 6
	step(Input{Msg: &adv})
	if got := n.Available("A"); got != 55 {
		t.Fatalf("fresh advice not applied: available %d", got)
	}
}

func TestRebalancerStepRejectsBadInput(t *testing.T) {
	rb, err := NewRebalancer(RebalancerConfig{ID: "rebalancer", MaxRegions: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.Step(rbT0, digestMsg("")); err == nil {
		t.Fatal("digest with an invalid region accepted")
	}
	if err := rb.Step(rbT0, digestMsg("rebalancer")); err == nil {
		t.Fatal("digest from the rebalancer's own id accepted")
	}
	for _, r := range []string{"a", "b"} {
		if err := rb.Step(rbT0, digestMsg(r, SKUDigest{SKU: "A", Available: 1})); err != nil {
			t.Fatal(err)
		}
	}
	if err := rb.Step(rbT0, digestMsg("c")); err == nil {
		t.Fatal("region over MaxRegions accepted")
	}
	if _, err := NewRebalancer(RebalancerConfig{ID: "Bad-ID"}); err == nil {
		t.Fatal("invalid id accepted")
	}
}

// TestAdviceSparesPendingHolds: a region whose own hold waits on a borrow
// for a SKU gives none of that SKU's units away by advice.
func TestAdviceSparesPendingHolds(t *testing.T) {
	n, err := NewNode(Config{Region: "b", DigestInterval: -1, BorrowTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	step := readyStepper(t, n, rbT0)
	step(Input{Cmd: &Command{Kind: CmdRestock, ReqID: 1, SKU: "A", Qty: 10}})
	// Peer a is known to have 100 units, so a hold of 15 borrows 5.
	step(Input{Msg: &Message{Type: MsgRows, From: "a", Seq: 1, Rows: []Row{{SKU: "A", Region: "a", Seq: 1, Minted: 100}}}})
	rd := step(Input{Cmd: &Command{Kind: CmdHold, ReqID: 2, Lines: []Line{{SKU: "A", Qty: 15}}, TTL: time.Minute}})
	if len(rd.Reply) != 0 || n.Stats().PendingHolds != 1 {
		t.Fatalf("hold did not wait on a borrow: replies %+v, stats %+v", rd.Reply, n.Stats())
	}
	step(Input{Msg: &Message{Type: MsgAdvice, From: "rebalancer", Epoch: 1, Moves: []Move{{"A", "b", "c", 10}}}})
	if got := n.Available("A"); got != 10 {
		t.Fatalf("advice took units a waiting hold needs: available %d", got)
	}
}

func TestChooseHomes(t *testing.T) {
	p := RebalancePolicy{ScarceHorizon: 10 * time.Second} // demand 1/s: scarce below 10 units
	nan := RegionLoad{Region: "n", DemandPerSec: math.NaN()}
	inf := RegionLoad{Region: "i", DemandPerSec: math.Inf(1)}
	tests := []struct {
		name   string
		in     RebalanceInput
		prev   []Home
		policy *RebalancePolicy // nil: p
		want   []Home
	}{
		{name: "scarce", in: oneSKU(load("a", 5, 1), load("b", 4, 0)), want: []Home{{"A", "a"}}},
		{name: "not scarce at demand x horizon", in: oneSKU(load("a", 6, 1), load("b", 4, 0))},
		{name: "stays scarce below twice", in: oneSKU(load("a", 19, 1)), prev: []Home{{"A", "a"}}, want: []Home{{"A", "a"}}},
		{name: "stays scarce at twice", in: oneSKU(load("a", 20, 1)), prev: []Home{{"A", "a"}}, want: []Home{{"A", "a"}}},
		{name: "not scarce over twice", in: oneSKU(load("a", 21, 1)), prev: []Home{{"A", "a"}}},
		{name: "a home of another SKU is no hysteresis", in: oneSKU(load("a", 15, 1)), prev: []Home{{"B", "a"}}},
		{name: "no demand, no home", in: oneSKU(load("a", 0, 0), load("b", 0, 0)), prev: []Home{{"A", "a"}}},
		{name: "NaN and Inf demand are no demand", in: oneSKU(load("a", 0, 0), nan, inf)},
		{name: "home has the largest demand", in: oneSKU(load("a", 1, 1), load("b", 0, 3), load("c", 2, 2)), want: []Home{{"A", "b"}}},
		{name: "tie: more units", in: oneSKU(load("a", 1, 2), load("b", 3, 2)), want: []Home{{"A", "b"}}},
		{name: "tie: then name", in: oneSKU(load("b", 1, 2), load("a", 1, 2)), want: []Home{{"A", "a"}}},
		{name: "previous home kept at half the largest demand", in: oneSKU(load("a", 1, 4), load("c", 1, 2)),
			prev: []Home{{"A", "c"}}, want: []Home{{"A", "c"}}},
		{name: "previous home dropped below half", in: oneSKU(load("a", 1, 4), load("c", 1, 1.9)),
			prev: []Home{{"A", "c"}}, want: []Home{{"A", "a"}}},
		{name: "previous home not live", in: oneSKU(load("a", 1, 4), load("c", 1, 3)),
			prev: []Home{{"A", "z"}}, want: []Home{{"A", "a"}}},
		{name: "negative horizon: no homes", in: oneSKU(load("a", 0, 100)), policy: &RebalancePolicy{ScarceHorizon: -1}},
		{name: "default horizon 5s", in: oneSKU(load("a", 4, 1)), policy: &RebalancePolicy{}, want: []Home{{"A", "a"}}},
		{name: "default horizon 5s, at the limit", in: oneSKU(load("a", 5, 1)), policy: &RebalancePolicy{}},
		{name: "output sorted by SKU", in: RebalanceInput{SKUs: []SKULoad{
			{SKU: "c", Regions: []RegionLoad{load("b", 0, 1)}},
			{SKU: "a", Regions: []RegionLoad{load("a", 0, 1)}},
			{SKU: "x", Regions: []RegionLoad{load("a", 100, 1)}},
			{SKU: "b", Regions: []RegionLoad{load("c", 0, 1)}},
		}}, want: []Home{{"a", "a"}, {"b", "c"}, {"c", "b"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pol := p
			if tc.policy != nil {
				pol = *tc.policy
			}
			got := ChooseHomes(tc.in, tc.prev, pol)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("homes %v, want %v", got, tc.want)
			}
		})
	}
}

// TestChooseHomesBounded: however many SKUs are scarce, the homes fit in
// one advice message.
func TestChooseHomesBounded(t *testing.T) {
	in := RebalanceInput{}
	for i := 0; i < MaxWireHomes+100; i++ {
		sku := fmt.Sprintf("%0*d", MaxSKULen, i) // the longest names
		in.SKUs = append(in.SKUs, SKULoad{SKU: sku, Regions: []RegionLoad{load(strings.Repeat("r", MaxRegionLen), 0, 1)}})
	}
	hs := ChooseHomes(in, nil, RebalancePolicy{})
	if len(hs) != MaxWireHomes {
		t.Fatalf("%d homes, want the wire limit %d", len(hs), MaxWireHomes)
	}
	adv := Message{Type: MsgAdvice, From: "rebalancer", Epoch: 1, Homes: hs}
	if _, err := EncodeMessage(nil, &adv); err != nil {
		t.Fatalf("advice with every home does not encode: %v", err)
	}
}

// TestRebalancerHomes: Round names the homes of scarce SKUs in every
// advice, plans no moves for them, and drops a home once the SKU is
// plentiful again.
func TestRebalancerHomes(t *testing.T) {
	rb, err := NewRebalancer(RebalancerConfig{ID: "rebalancer", Policy: RebalancePolicy{Horizon: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	now := rbT0
	feed := func(aAvailA, bDemandA uint64) {
		t.Helper()
		for _, m := range []*Message{
			// A: 3 units for 10/s over 5s: scarce, homed at a. B: plenty at
			// b, demand at a: a move.
			digestMsg("a", SKUDigest{SKU: "A", Available: aAvailA, DemandMilli: 10_000},
				SKUDigest{SKU: "B", Available: 0, DemandMilli: 1000}),
			digestMsg("b", SKUDigest{SKU: "A", Available: 3, DemandMilli: bDemandA}, SKUDigest{SKU: "B", Available: 1000}),
		} {
			if err := rb.Step(now, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	feed(0, 0)
	adv, ok := rb.Round(now)
	if !ok || !reflect.DeepEqual(adv.Homes, []Home{{"A", "a"}}) {
		t.Fatalf("first round homes %v", adv.Homes)
	}
	if len(adv.Moves) == 0 {
		t.Fatal("no move for B: the test shows nothing")
	}
	for _, mv := range adv.Moves {
		if mv.SKU == "A" {
			t.Fatalf("move %+v of a homed SKU", mv)
		}
	}
	if rb.Stats().Homes != 1 {
		t.Fatalf("stats %+v", rb.Stats())
	}
	// The next round re-sends the homes, even with no moves (B's move is
	// in flight until digests come Settle after it).
	now = now.Add(500 * time.Millisecond)
	feed(0, 0)
	if adv, _ = rb.Round(now); !reflect.DeepEqual(adv.Homes, []Home{{"A", "a"}}) || len(adv.Moves) != 0 {
		t.Fatalf("second round: homes %v moves %v", adv.Homes, adv.Moves)
	}
	// A is plentiful at a, and b wants some: no home, and a move.
	now = now.Add(time.Second)
	feed(1000, 5000)
	if adv, _ = rb.Round(now); adv.Homes != nil || rb.Stats().Homes != 0 {
		t.Fatalf("plentiful SKU kept its home: %v", adv.Homes)
	}
	if !hasMove(adv.Moves, "A") {
		t.Fatalf("no move for A once it lost its home: %v", adv.Moves)
	}
}

func hasMove(moves []Move, sku string) bool {
	for _, mv := range moves {
		if mv.SKU == sku {
			return true
		}
	}
	return false
}

// TestRebalancerTakesOverHomes: a standby daemon adopts the leader's homes
// from its advice, so that when it takes over it keeps them (the previous
// home stays while its demand is at least half the largest) instead of
// naming the region it would have picked from scratch.
func TestRebalancerTakesOverHomes(t *testing.T) {
	rb, err := NewRebalancer(RebalancerConfig{ID: "rebalancer_b", Policy: RebalancePolicy{Horizon: time.Minute},
		StandbyAfter: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := rbT0
	// A is scarce; b has the most demand, a more than half of it.
	for _, m := range []*Message{
		digestMsg("a", SKUDigest{SKU: "A", Available: 1, DemandMilli: 6_000}),
		digestMsg("b", SKUDigest{SKU: "A", Available: 1, DemandMilli: 10_000}),
	} {
		if err := rb.Step(now, m); err != nil {
			t.Fatal(err)
		}
	}
	leader := Message{Type: MsgAdvice, From: "rebalancer_a", Epoch: 1, Homes: []Home{{"A", "a"}}}
	if err := rb.Step(now, &leader); err != nil {
		t.Fatal(err)
	}
	if _, ok := rb.Round(now); ok {
		t.Fatal("a standby daemon advised")
	}
	// The leader goes quiet; this one takes over with the leader's home.
	now = now.Add(4 * time.Second)
	for _, m := range []*Message{
		digestMsg("a", SKUDigest{SKU: "A", Available: 1, DemandMilli: 6_000}),
		digestMsg("b", SKUDigest{SKU: "A", Available: 1, DemandMilli: 10_000}),
	} {
		if err := rb.Step(now, m); err != nil {
			t.Fatal(err)
		}
	}
	adv, ok := rb.Round(now)
	if !ok || !reflect.DeepEqual(adv.Homes, []Home{{"A", "a"}}) {
		t.Fatalf("after taking over: ok %v, homes %v, want the leader's home a", ok, adv.Homes)
	}
}

// TestRebalancerIgnoresAdviceFromTheFuture: a daemon does not adopt the
// epoch of an advice that regions refuse (more than maxAdviceLead ahead of
// its clock, from a daemon with a broken clock), nor stand by for it:
// otherwise every advice it issues afterwards would carry that epoch and
// be ignored by every region, and advice would stop for as long as the
// broken clock is ahead.
func TestRebalancerIgnoresAdviceFromTheFuture(t *testing.T) {
	b, err := NewRebalancer(RebalancerConfig{ID: "rb_b", StandbyAfter: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := rbT0
	broken := Message{Type: MsgAdvice, From: "rb_a", Epoch: uint64(now.Add(48 * time.Hour).UnixMilli()),
		Homes: []Home{{SKU: "A", Region: "us"}}}
	if err := b.Step(now, &broken); err == nil {
		t.Fatal("advice two days ahead accepted")
	}
	adv, ok := b.Round(now.Add(time.Second))
	if !ok {
		t.Fatal("b stands by for a daemon whose advice every region ignores")
	}
	if lim := uint64(now.Add(time.Second + maxAdviceLead).UnixMilli()); adv.Epoch > lim {
		t.Fatalf("b took the broken epoch: %d, regions accept at most %d", adv.Epoch, lim)
	}
	if len(adv.Homes) != 0 {
		t.Fatalf("b adopted the homes of an ignored advice: %v", adv.Homes)
	}
	// A node accepts b's advice.
	n, err := NewNode(Config{Region: "eu"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Step(Input{Now: now.Add(time.Second), Msg: &adv}); err != nil {
		t.Fatal(err)
	}
	if s := n.Stats(); s.AdviceIgnored != 0 {
		t.Fatalf("node ignored b's advice: %+v", s)
	}
}

// TestRebalancerLeavesOutFencedRegions: a region whose digest says it is
// fenced is left out of the plan: no move from or to it, and its units do
// not count toward a SKU's stock (here they would hide that A is scarce).
func TestRebalancerLeavesOutFencedRegions(t *testing.T) {
	rb, err := NewRebalancer(RebalancerConfig{ID: "rebalancer", Policy: RebalancePolicy{Horizon: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	fenced := digestMsg("c", SKUDigest{SKU: "A", Available: 1000}, SKUDigest{SKU: "B", Available: 1000})
	fenced.Fenced = true
	for _, m := range []*Message{
		digestMsg("a", SKUDigest{SKU: "A", Available: 1, DemandMilli: 10_000}, SKUDigest{SKU: "B", Available: 0, DemandMilli: 1000}),
		digestMsg("b", SKUDigest{SKU: "A", Available: 1, DemandMilli: 1000}, SKUDigest{SKU: "B", Available: 1000}),
		fenced,
	} {
		if err := rb.Step(rbT0, m); err != nil {
			t.Fatal(err)
		}
	}
	adv, ok := rb.Round(rbT0)
	if !ok {
		t.Fatal("no round")
	}
	if len(adv.Moves) == 0 {
		t.Fatal("no move of B: the test shows nothing")
	}
	for _, mv := range adv.Moves {
		if mv.From == "c" || mv.To == "c" {
			t.Fatalf("move %+v involves the fenced region", mv)
		}
	}
	if !reflect.DeepEqual(adv.Homes, []Home{{"A", "a"}}) {
		t.Fatalf("homes %v: the fenced region's units hid that A is scarce", adv.Homes)
	}
	if rb.Stats().Regions != 2 {
		t.Fatalf("%d regions in the plan, want 2", rb.Stats().Regions)
	}
}
