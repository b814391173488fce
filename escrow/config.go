package escrow

import (
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// Config configures one region's Node. Zero values take the defaults noted.
// The `escrow:` section of a region's config file maps onto it in the
// command layer (cmd/holdfast/regionconfig); the core knows no file format.
type Config struct {
	Region string // [a-z0-9_]{1,32}; prefixes hold ids
	// Members names every region of the cluster, this one included. A
	// message from, about or moving units to a region outside it is not
	// trusted. Empty: every well-formed region name is.
	Members []string

	DefaultTTL    time.Duration // hold TTL when none is given (10m)
	MaxLifetime   time.Duration // extend never moves a deadline past created+MaxLifetime (1h)
	IdemTTL       time.Duration // how long idempotency keys are remembered (24h)
	HoldRetain    time.Duration // how long terminal holds stay readable (24h)
	BorrowTimeout time.Duration // how long a hold waits for borrowed units (50ms), at least
	// BorrowTimeoutMax bounds the borrow deadline stretched to the
	// measured RTT of the nearest donor (rtt_borrow.go; 500ms). At or below
	// BorrowTimeout: the deadline is BorrowTimeout, fixed.
	BorrowTimeoutMax time.Duration
	// RecountMaxLag: a recount is refused (CodeStaleView) unless every
	// peer with a row of the SKU was heard from within it (PeerSilence by
	// default; <0: never refused).
	RecountMaxLag time.Duration

	// LowWater: a region tops up a SKU in the background when its available
	// units drop below max(LowWater, demand/s × TopUpHorizon). TopUpHorizon
	// defaults to DefaultTopUpHorizon (10s), so that quota follows demand
	// with no configuration: a region selling a SKU it has no stock of
	// borrows some seconds of its demand at a time, not one unit per hold.
	// A negative horizon turns the demand term off; with LowWater 0 too,
	// top-up is off (every miss borrows on its own).
	LowWater     uint64
	TopUpHorizon time.Duration
	// DonorFloor: a donor never gives background (non-urgent) units below
	// max(DonorFloor, its own top-up threshold), so top-ups cannot ping-pong.
	DonorFloor uint64

	DigestInterval time.Duration // digest broadcast period (1s; <0 disables)
	// PeerSilence: a peer not heard from for this long (3 digest intervals,
	// at least 1s; <0 disables) is not asked to lend: a hold is refused at
	// once instead of waiting out the borrow deadline for a cut-off peer.
	PeerSilence   time.Duration
	RepairTimeout time.Duration // re-ask for a repair after this (1s)
	DemandTau     time.Duration // EWMA time constant of demand (30s)
	// HomeTTL: the homes named by the latest rebalancer advice stay in
	// force this long (5s; <0: homes are ignored). Advice is re-sent every
	// round, so homes lapse soon after the daemon stops.
	HomeTTL time.Duration

	MaxPending       int // holds waiting on a borrow (10,000)
	MaxSweepPerTick  int // expiries per Tick (4,096)
	MaxTopUpsPerTick int // top-up requests per Tick (256)
	// MaxDonations bounds the answers to borrow requests remembered for
	// dedupe, in two generations of half of it (100,000; at least 2;
	// donations.go).
	MaxDonations  int
	MaxHolds      int // live holds, all states (10,000,000)
	MaxRowsPerMsg int // rows per rows message (1,024)
	MaxDigestSKUs int // SKUs per digest (1,024)
	// MaxRepairRows bounds the own rows of one repair answer (65,536): a
	// wiped peer of a large catalogue gets its snapshot in chunks, oldest
	// changes first, each a bounded Ready; see onRepair.
	MaxRepairRows int
	MaxRouted     int // idempotency keys of routed holds remembered (100,000)
	// MaxPeerSKUs bounds the SKUs this node learns from peers (digests,
	// rows of a SKU it has never seen): over it, new SKUs from peers are
	// refused and counted (Stats.PeerSKUsRefused), never stored (1,000,000).
	MaxPeerSKUs int

	// Waitlist limits: the longest wait a hold may ask for (30m), waiting
	// entries per SKU (10,000) and per region (100,000).
	MaxWait          time.Duration
	MaxWaitersPerSKU int
	MaxWaiters       int

	// Peers is the deprecated name of Members (config key escrow.peers):
	// when Members is empty, the membership is Peers plus this region.
	// Members is the one concept; Peers is only read to fill it.
	Peers []string

	// Locations are the cluster's configured locations (locations.go);
	// FulfilmentOrder the eligible locations of a line that names none
	// (empty: the default location); Allocation the strategy
	// (AllocPreference when empty, or AllocMostStock).
	Locations       []Location
	FulfilmentOrder []string
	Allocation      string

	// Rows and MaxResidentSKUs bound the SKUs kept in memory
	// (skucache.go): with both set, the node reads a SKU's stored rows from
	// Rows on first touch and drops least recently used idle SKUs once more
	// than MaxResidentSKUs are resident. 0 (the default): every SKU stays
	// resident, and Rows is not read.
	Rows            RowSource
	MaxResidentSKUs int

	// Holds and MaxResidentHolds bound the holds and idempotency keys
	// kept in memory (holdcache.go): with both set, the node reads a hold
	// or key from Holds when it is not resident, finds expired holds and
	// keys through the source's expiry indexes, and drops saved ones once
	// more than MaxResidentHolds (of each) are resident. 0 (the default):
	// every hold and key stays resident, and Holds is not read.
	Holds            HoldSource
	MaxResidentHolds int

	// Rand supplies randomness (hold id suffixes). nil: a PRNG seeded from Region.
	Rand func() uint64

	// bugs are planted known bugs, set only through package escrowtest
	// (which refuses outside tests): unexported, so that neither YAML nor
	// any production caller can turn one on.
	bugs plantedbugs.Bugs
}

func (c *Config) withDefaults() Config {
	d := *c
	def := func(v *time.Duration, x time.Duration) {
		if *v == 0 {
			*v = x
		}
	}
	defInt := func(v *int, x int) {
		if *v <= 0 {
			*v = x
		}
	}
	def(&d.DefaultTTL, DefaultTTL)
	def(&d.MaxLifetime, DefaultMaxLife)
	def(&d.IdemTTL, DefaultIdemTTL)
	def(&d.HoldRetain, DefaultIdemTTL)
	def(&d.BorrowTimeout, DefaultBorrowTO)
	def(&d.BorrowTimeoutMax, DefaultBorrowTimeoutMax)
	def(&d.TopUpHorizon, DefaultTopUpHorizon)
	def(&d.DigestInterval, time.Second)
	def(&d.RepairTimeout, time.Second)
	def(&d.DemandTau, 30*time.Second)
	def(&d.HomeTTL, 5*time.Second)
	if d.PeerSilence == 0 {
		d.PeerSilence = max(time.Second, 3*d.DigestInterval)
	}
	if d.RecountMaxLag == 0 {
		d.RecountMaxLag = d.PeerSilence
	}
	defInt(&d.MaxPending, 10_000)
	defInt(&d.MaxSweepPerTick, 4096)
	defInt(&d.MaxTopUpsPerTick, 256)
	defInt(&d.MaxDonations, 100_000)
	defInt(&d.MaxHolds, 10_000_000)
	defInt(&d.MaxRowsPerMsg, 1024)
	defInt(&d.MaxDigestSKUs, 1024)
	defInt(&d.MaxRepairRows, DefaultMaxRepairRows)
	defInt(&d.MaxRouted, 100_000)
	defInt(&d.MaxPeerSKUs, DefaultMaxPeerSKUs)
	def(&d.MaxWait, DefaultMaxWait)
	defInt(&d.MaxWaitersPerSKU, DefaultMaxWaitersPerSKU)
	defInt(&d.MaxWaiters, DefaultMaxWaiters)
	d.Members = c.Membership()
	if d.MaxRowsPerMsg > MaxWireRows {
		d.MaxRowsPerMsg = MaxWireRows
	}
	if d.MaxDigestSKUs > MaxWireDigest {
		d.MaxDigestSKUs = MaxWireDigest
	}
	return d
}

// maxMaxDonations bounds MaxDonations: two generations of 50 M answers
// are some gigabytes already.
const maxMaxDonations = 100_000_000

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if err := ValidRegion(c.Region); err != nil {
		return err
	}
	if c.DefaultTTL < 0 || c.MaxLifetime < 0 || c.BorrowTimeout < 0 || c.BorrowTimeoutMax < 0 || c.IdemTTL < 0 ||
		c.HoldRetain < 0 || c.MaxWait < 0 || c.RepairTimeout < 0 || c.DemandTau < 0 {
		return fmt.Errorf("escrow: negative duration in config (only DigestInterval, PeerSilence, HomeTTL and TopUpHorizon may be negative: off)")
	}
	// Compare the effective values: a default TTL above the (default)
	// lifetime would make every hold without a TTL invalid.
	if d := c.withDefaults(); d.DefaultTTL > d.MaxLifetime || d.DefaultTTL < MinTTL {
		return fmt.Errorf("escrow: default TTL %v must be between %v and the max lifetime %v", d.DefaultTTL, MinTTL, d.MaxLifetime)
	}
	if err := c.validLocations(); err != nil {
		return err
	}
	for _, p := range c.Peers {
		if err := ValidRegion(p); err != nil {
			return fmt.Errorf("escrow: peers (deprecated alias of members): %w", err)
		}
	}
	if c.MaxDonations < 0 || c.MaxDonations == 1 || c.MaxDonations > maxMaxDonations {
		return fmt.Errorf("escrow: max_donations %d must be 0 (the default, 100,000) or between 2 and %d", c.MaxDonations, maxMaxDonations)
	}
	if c.MaxResidentSKUs < 0 || c.MaxResidentSKUs > MaxResidentSKUsLimit {
		return fmt.Errorf("escrow: max resident SKUs %d must be between 0 (off) and %d", c.MaxResidentSKUs, MaxResidentSKUsLimit)
	}
	if c.MaxResidentSKUs > 0 && c.Rows == nil {
		return fmt.Errorf("escrow: max resident SKUs %d needs a row source (Config.Rows)", c.MaxResidentSKUs)
	}
	if c.MaxResidentHolds < 0 || c.MaxResidentHolds > MaxResidentHoldsLimit {
		return fmt.Errorf("escrow: max resident holds %d must be between 0 (off) and %d", c.MaxResidentHolds, MaxResidentHoldsLimit)
	}
	if c.MaxResidentHolds > 0 && c.Holds == nil {
		return fmt.Errorf("escrow: max resident holds %d needs a hold source (Config.Holds)", c.MaxResidentHolds)
	}
	if c.MaxPeerSKUs < 0 {
		return fmt.Errorf("escrow: max_peer_skus must not be negative")
	}
	return validMembers(c.Region, c.Membership())
}

// Membership returns the regions of the cluster as this config names
// them: Members, or, when it is empty, the deprecated Peers list plus
// this region (duplicates dropped); nil when neither is set (open
// membership).
func (c *Config) Membership() []string {
	if len(c.Members) > 0 || len(c.Peers) == 0 {
		return c.Members
	}
	out := make([]string, 0, len(c.Peers)+1)
	seen := make(map[string]bool, len(c.Peers)+1)
	for _, p := range append([]string{c.Region}, c.Peers...) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// DefaultMaxRepairRows is MaxRepairRows' default: 64 rows messages.
const DefaultMaxRepairRows = 65_536
