package escrow

import (
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// Config configures one region's Node. Zero values take the defaults noted.
// The yaml tags name the keys of the `escrow:` section of a region's config
// file; Region and Rand cannot be set from a file (the region's name comes
// from its own config).
type Config struct {
	Region string `yaml:"-"` // [a-z0-9_]{1,32}; prefixes hold ids

	DefaultTTL    time.Duration `yaml:"default_ttl"`    // hold TTL when none is given (10m)
	MaxLifetime   time.Duration `yaml:"max_lifetime"`   // extend never moves a deadline past created+MaxLifetime (1h)
	IdemTTL       time.Duration `yaml:"idem_ttl"`       // how long idempotency keys are remembered (24h)
	HoldRetain    time.Duration `yaml:"hold_retain"`    // how long terminal holds stay readable (24h)
	BorrowTimeout time.Duration `yaml:"borrow_timeout"` // how long a hold waits for borrowed units (50ms)

	// LowWater: a region tops up a SKU in the background when its available
	// units drop below max(LowWater, demand/s × TopUpHorizon). 0 with a zero
	// horizon disables top-up.
	LowWater     uint64        `yaml:"low_water"`
	TopUpHorizon time.Duration `yaml:"top_up_horizon"`
	// DonorFloor: a donor never gives background (non-urgent) units below
	// max(DonorFloor, its own top-up threshold), so top-ups cannot ping-pong.
	DonorFloor uint64 `yaml:"donor_floor"`

	DigestInterval time.Duration `yaml:"digest_interval"` // digest broadcast period (1s; <0 disables)
	// PeerSilence: a peer not heard from for this long (3 digest intervals,
	// at least 1s; <0 disables) is not asked to lend: a hold is refused at
	// once instead of waiting out the borrow deadline for a cut-off peer.
	PeerSilence   time.Duration `yaml:"peer_silence"`
	RepairTimeout time.Duration `yaml:"repair_timeout"` // re-ask for a repair after this (1s)
	DemandTau     time.Duration `yaml:"demand_tau"`     // EWMA time constant of demand (30s)
	// HomeTTL: the homes named by the latest rebalancer advice stay in
	// force this long (5s; <0: homes are ignored). Advice is re-sent every
	// round, so homes lapse soon after the daemon stops.
	HomeTTL time.Duration `yaml:"home_ttl"`

	MaxPending       int `yaml:"max_pending"`          // holds waiting on a borrow (10,000)
	MaxSweepPerTick  int `yaml:"max_sweep_per_tick"`   // expiries per Tick (4,096)
	MaxTopUpsPerTick int `yaml:"max_top_ups_per_tick"` // top-up requests per Tick (256)
	MaxDonations     int `yaml:"max_donations"`        // remembered borrow ids for dedupe (100,000)
	MaxHolds         int `yaml:"max_holds"`            // live holds, all states (10,000,000)
	MaxRowsPerMsg    int `yaml:"max_rows_per_msg"`     // rows per rows message (1,024)
	MaxDigestSKUs    int `yaml:"max_digest_skus"`      // SKUs per digest (1,024)
	MaxRouted        int `yaml:"max_routed"`           // idempotency keys of routed holds remembered (100,000)

	// Peers, when set, is an allow-list: messages from other regions are dropped.
	Peers []string `yaml:"peers"`

	// Rand supplies randomness (hold id suffixes). nil: a PRNG seeded from Region.
	Rand func() uint64 `yaml:"-"`

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
	def(&d.DigestInterval, time.Second)
	def(&d.RepairTimeout, time.Second)
	def(&d.DemandTau, 30*time.Second)
	def(&d.HomeTTL, 5*time.Second)
	if d.PeerSilence == 0 {
		d.PeerSilence = max(time.Second, 3*d.DigestInterval)
	}
	defInt(&d.MaxPending, 10_000)
	defInt(&d.MaxSweepPerTick, 4096)
	defInt(&d.MaxTopUpsPerTick, 256)
	defInt(&d.MaxDonations, 100_000)
	defInt(&d.MaxHolds, 10_000_000)
	defInt(&d.MaxRowsPerMsg, 1024)
	defInt(&d.MaxDigestSKUs, 1024)
	defInt(&d.MaxRouted, 100_000)
	if d.MaxRowsPerMsg > MaxWireRows {
		d.MaxRowsPerMsg = MaxWireRows
	}
	if d.MaxDigestSKUs > MaxWireDigest {
		d.MaxDigestSKUs = MaxWireDigest
	}
	return d
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if err := ValidRegion(c.Region); err != nil {
		return err
	}
	if c.DefaultTTL < 0 || c.MaxLifetime < 0 || c.BorrowTimeout < 0 || c.IdemTTL < 0 ||
		c.HoldRetain < 0 || c.RepairTimeout < 0 || c.DemandTau < 0 || c.TopUpHorizon < 0 {
		return fmt.Errorf("escrow: negative duration in config (only DigestInterval may be negative: off)")
	}
	// Compare the effective values: a default TTL above the (default)
	// lifetime would make every hold without a TTL invalid.
	if d := c.withDefaults(); d.DefaultTTL > d.MaxLifetime || d.DefaultTTL < MinTTL {
		return fmt.Errorf("escrow: default TTL %v must be between %v and the max lifetime %v", d.DefaultTTL, MinTTL, d.MaxLifetime)
	}
	for _, p := range c.Peers {
		if err := ValidRegion(p); err != nil {
			return fmt.Errorf("escrow: peer allow-list: %w", err)
		}
	}
	return nil
}
