package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Mix is what one simulated shopper does per operation.
type Mix string

const (
	// MixHold only creates holds (they expire on their own).
	MixHold Mix = "hold"
	// MixShopper creates a hold, then confirms it (half the time) or
	// releases it, as a shopper who pays or empties the cart would.
	MixShopper Mix = "shopper"
)

// ParseMix checks a --mix value.
func ParseMix(s string) (Mix, error) {
	switch Mix(s) {
	case MixHold, MixShopper:
		return Mix(s), nil
	}
	return "", fmt.Errorf("mix must be %q or %q, got %q", MixHold, MixShopper, s)
}

// MaxSKUs bounds the SKU space of a workload.
const MaxSKUs = 10_000_000

// MaxHTTPSKUs bounds the SKU space over HTTP, whose request bodies are
// prebuilt one per SKU.
const MaxHTTPSKUs = 100_000

// Dist is how a workload draws its SKUs.
type Dist string

const (
	// DistUniform draws every SKU with the same probability.
	DistUniform Dist = "uniform"
	// DistZipf draws the SKU of popularity rank k with a probability
	// proportional to 1/(k+1)^ZipfS, the shape of real catalogues: a few
	// hot SKUs and a long cold tail. Ranks are scattered over the SKU
	// names (see Picker.SKU) so that hot SKUs are not neighbours in the
	// store's key order.
	DistZipf Dist = "zipf"
)

// ZipfS is the exponent of DistZipf.
const ZipfS = 1.1

// ParseDist checks a --dist value.
func ParseDist(s string) (Dist, error) {
	switch Dist(s) {
	case DistUniform, DistZipf:
		return Dist(s), nil
	}
	return "", fmt.Errorf("dist must be %q or %q, got %q", DistUniform, DistZipf, s)
}

// Workload is the shared description of the benchmark: every system in a
// comparison runs the same one.
type Workload struct {
	SKUs int    // SKUs drawn by Dist; 1 = one hot SKU
	Dist Dist   // uniform (default) or zipf
	Qty  uint64 // units per hold
	Mix  Mix
	TTL  time.Duration // hold lifetime (default 10m)
	Seed uint64        // PRNG seed; worker w uses (Seed, w)
}

// Validate checks the workload and fills defaults.
func (wl *Workload) Validate() error {
	if wl.SKUs < 1 || wl.SKUs > MaxSKUs {
		return fmt.Errorf("skus must be 1..%d, got %d", MaxSKUs, wl.SKUs)
	}
	if wl.Dist == "" {
		wl.Dist = DistUniform
	}
	if _, err := ParseDist(string(wl.Dist)); err != nil {
		return err
	}
	if wl.Qty < 1 || wl.Qty > 1_000_000 {
		return fmt.Errorf("qty must be 1..1000000, got %d", wl.Qty)
	}
	if wl.Mix == "" {
		wl.Mix = MixHold
	}
	if _, err := ParseMix(string(wl.Mix)); err != nil {
		return err
	}
	if wl.TTL == 0 {
		wl.TTL = 10 * time.Minute
	}
	if wl.TTL < time.Second {
		return fmt.Errorf("ttl must be at least 1s, got %v", wl.TTL)
	}
	return nil
}

// SKUName is the name of SKU i in every system of a comparison.
func SKUName(i int) string { return "sku-" + strconv.Itoa(i) }

// Picker is one worker's private source of choices.
type Picker struct {
	rng  *rand.Rand
	zipf *rand.Zipf // DistZipf only
	skus int
}

// Picker returns worker w's picker, deterministic for (Seed, w).
func (wl *Workload) Picker(w int) *Picker {
	p := &Picker{rng: rand.New(rand.NewPCG(wl.Seed, uint64(w)+1)), skus: wl.SKUs}
	if wl.Dist == DistZipf && wl.SKUs > 1 {
		p.zipf = rand.NewZipf(p.rng, ZipfS, 1, uint64(wl.SKUs-1))
	}
	return p
}

// zipfScatter is a prime larger than MaxSKUs: rank k is SKU k*zipfScatter
// mod SKUs, a bijection on [0, SKUs) since the prime shares no factor with
// SKUs.
const zipfScatter = 2_654_435_761

// SKU returns the index of the next SKU to hold.
func (p *Picker) SKU() int {
	if p.skus == 1 {
		return 0
	}
	if p.zipf != nil {
		return ZipfSKU(p.zipf.Uint64(), p.skus)
	}
	return p.rng.IntN(p.skus)
}

// ZipfSKU is the SKU index of popularity rank k (0 the hottest) among skus.
func ZipfSKU(k uint64, skus int) int { return int(k * zipfScatter % uint64(skus)) }

// Confirm decides whether a shopper pays (true) or releases (false).
func (p *Picker) Confirm() bool { return p.rng.Uint64()&1 == 0 }

// RestockPlan returns how many units each SKU needs so that a run of the
// given length never runs out, assuming at most maxHoldsPerSec holds/s
// spread over the SKUs, with a safety factor of two.
func (wl *Workload) RestockPlan(d time.Duration, maxHoldsPerSec float64) uint64 {
	total := maxHoldsPerSec * d.Seconds() * float64(wl.Qty) * 2
	per := uint64(total/float64(wl.SKUs)) + 1000*wl.Qty
	return per
}
