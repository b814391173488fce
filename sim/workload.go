package sim

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// workload generates carts and restocks. It draws only from its own random
// streams, so every strategy and fault level sees the same shoppers.
type workload struct {
	kind    string
	o       *Options
	skus    []string
	zipf    []float64 // cumulative popularity of SKUs
	weights []float64 // flash: how shoppers spread over regions
	rateMax float64
	flashed bool // flash: the mid-run restock of the flash SKU happened
	// locations workload: the cluster's locations and region names.
	locs    []escrow.Location
	regions []string
}

const (
	flashFrom, flashTo = 0.10, 0.45 // fraction of the duration
	flashRestockAt     = 0.60
	flashBoost         = 3.0
)

func newWorkload(o *Options, skus []string, r *rand.Rand) *workload {
	wl := &workload{kind: o.Workload, o: o, skus: skus, rateMax: o.Rate}
	sum := 0.0
	for i := range skus {
		sum += 1 / math.Pow(float64(i+1), 1.1)
		wl.zipf = append(wl.zipf, sum)
	}
	for i := range wl.zipf {
		wl.zipf[i] /= sum
	}
	wl.weights = make([]float64, o.Regions)
	for i := range wl.weights {
		wl.weights[i] = 1 + 4*r.Float64()
	}
	if wl.flashLike() {
		wl.rateMax = o.Rate * flashBoost
	}
	return wl
}

func (wl *workload) frac(now int64) float64 { return float64(now) / float64(wl.o.Duration) }

func (wl *workload) inFlash(f float64) bool {
	return wl.flashLike() && f >= flashFrom && f < flashTo
}

// flashLike: the flash sale and the waitlist workload (a flash sale whose
// turned-away shoppers wait) share the hot SKU and its window.
func (wl *workload) flashLike() bool { return wl.kind == "flash" || wl.kind == "waitlist" }

func (wl *workload) rate(f float64) float64 {
	if wl.inFlash(f) {
		return wl.o.Rate * flashBoost
	}
	return wl.o.Rate
}

// regionWeight is the share of shoppers of region i at time f.
func (wl *workload) regionWeight(f float64, i, n int) float64 {
	switch wl.kind {
	case "skew":
		if i == 0 {
			return 4
		}
	case "shift":
		// Demand sits in the first region, then moves to the last.
		a := math.Min(1, math.Max(0, (f-0.4)/0.2))
		w := 1.0
		if i == 0 {
			w += 4 * (1 - a)
		}
		if i == n-1 {
			w += 4 * a
		}
		return w
	case "flash", "waitlist":
		if wl.inFlash(f) {
			return wl.weights[i]
		}
	}
	return 1
}

// nextArrival is the time of the next candidate arrival (a Poisson process
// at the peak rate, thinned in cart).
func (wl *workload) nextArrival(r *rand.Rand, now int64) int64 {
	if wl.rateMax <= 0 {
		return math.MaxInt64
	}
	gap := r.ExpFloat64() / wl.rateMax
	return now + int64(gap*1e9) + 1
}

func (wl *workload) pickSKU(r *rand.Rand) int {
	u := r.Float64()
	lo, hi := 0, len(wl.zipf)-1
	for lo < hi {
		m := (lo + hi) / 2
		if wl.zipf[m] < u {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// cart builds the shopper arriving now, or nil if thinning rejects it.
// It always draws the same number of values, whatever it decides.
func (wl *workload) cart(r *rand.Rand, now int64, n int) *client {
	f := wl.frac(now)
	keep := r.Float64() < wl.rate(f)/wl.rateMax
	u := r.Float64()
	total := 0.0
	for i := 0; i < n; i++ {
		total += wl.regionWeight(f, i, n)
	}
	home, acc := n-1, 0.0
	for i := 0; i < n; i++ {
		acc += wl.regionWeight(f, i, n) / total
		if u < acc {
			home = i
			break
		}
	}
	var lines []escrow.Line
	flashCart := r.Float64() < 0.8
	nl := 1
	switch x := r.Float64(); {
	case x < 0.5:
	case x < 0.8:
		nl = 2
	default:
		nl = 3
	}
	for j := 0; j < 3; j++ {
		s := wl.pickSKU(r)
		q := uint64(1)
		if r.Float64() < 0.2 {
			q = 2
		}
		if j < nl {
			lines = append(lines, escrow.Line{SKU: wl.skus[s], Qty: q})
		}
	}
	if wl.inFlash(f) && flashCart {
		lines = []escrow.Line{{SKU: wl.skus[0], Qty: 1}}
	}
	lines, _ = escrow.NormalizeLines(lines)
	var plan uint8
	switch x := r.Float64(); {
	case x < 0.6:
		plan = planConfirm
	case x < 0.8:
		plan = planRelease
	default:
		plan = planAbandon
	}
	// Some shoppers think longer than the TTL: they send heartbeats
	// (extend), and a few still come back after their hold expired.
	think := time.Duration(r.ExpFloat64() * float64(15*time.Second))
	think = min(think, wl.o.TTL*3/2)
	if wl.o.Soak && r.Float64() < 0.05 {
		// A soak's long-lived holds (only soaks draw this value).
		think = 5*time.Minute + time.Duration(r.Int64N(int64(45*time.Minute)))
	}
	// Only runs with partial carts draw one more value, so that the
	// streams of every other run stay as they were.
	partial := wl.o.Partial > 0 && r.Float64() < wl.o.Partial
	var wait, cancel time.Duration
	if wl.kind == "waitlist" {
		// Only the waitlist workload draws these, for the same reason.
		wait, cancel = wl.waitFor(r, wl.inFlash(f) && flashCart)
	}
	var locs []escrow.LineLocations
	if wl.kind == workloadLocations {
		// Only the locations workload draws these, for the same reason.
		locs = wl.lineLocations(r, lines, home)
	}
	if !keep {
		return nil
	}
	return &client{home: home, lines: lines, plan: plan, think: think, partial: partial, wait: wait, cancelAfter: cancel,
		locs: locs}
}

// meanRestock keeps supply near demand: about 90% of the units expected to
// be confirmed come back as restocks.
func (wl *workload) meanRestock() float64 {
	const unitsPerCart, confirmShare = 1.7 * 1.2, 0.6
	return 0.9 * unitsPerCart * confirmShare * wl.o.Rate * restockEvery.Seconds()
}

const restockEvery = 5 * time.Second

func (wl *workload) nextRestock(r *rand.Rand, now int64) int64 {
	return now + int64(r.ExpFloat64()*float64(restockEvery)) + 1
}

type restock struct {
	region int
	sku    string
	qty    uint64
}

// restock returns the restocks due now: one SKU at one region, and, in a
// flash sale, the flash SKU once more at one region.
func (wl *workload) restock(r *rand.Rand, now int64, n int) []restock {
	s := wl.pickSKU(r)
	region := r.IntN(n)
	q := uint64(wl.meanRestock()*(0.5+r.Float64())) + 1
	var out []restock
	if wl.flashLike() && s == 0 && len(wl.skus) > 1 {
		s = 1
	}
	if wl.kind == workloadLocations {
		key, owner := wl.restockLocation(r, wl.skus[s])
		out = append(out, restock{region: owner, sku: key, qty: min(q, escrow.MaxQty)})
	} else if !wl.flashLike() || len(wl.skus) > 1 {
		out = append(out, restock{region: region, sku: wl.skus[s], qty: min(q, escrow.MaxQty)})
	}
	if wl.kind == "flash" && !wl.flashed && wl.frac(now) >= flashRestockAt {
		wl.flashed = true
		out = append(out, restock{region: r.IntN(n), sku: wl.skus[0], qty: max(1, wl.o.Stock/2)})
	}
	if wl.kind == "waitlist" && !wl.flashed && wl.frac(now) >= flashRestockAt {
		wl.flashed = true
		out = append(out, restock{region: r.IntN(n), sku: wl.skus[0], qty: max(1, wl.o.Stock/4)})
	}
	return out
}
