package sim

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/escrow/escrowtest"
	"github.com/holdfast-io/holdfast/region/regiontest"
)

// Limits on every knob, so that a typo cannot ask for a run that never ends
// or exhausts memory.
const (
	MaxRegions  = 16
	MaxSKUs     = 100_000
	MaxStock    = 1_000_000
	MaxDuration = 24 * time.Hour
	MaxRate     = 10_000 // carts per second over all regions
	MaxSeeds    = 10_000 // a result keeps ~8 KB of latency histogram
)

// Fault levels.
const (
	FaultsNone       = "none"
	FaultsPartitions = "partitions"
	FaultsAll        = "all"
)

// Workloads.
var Workloads = []string{"steady", "skew", "shift", "flash", "waitlist", "locations"}

// Options describe one simulated run (one seed) or, with Sweep, many runs
// that differ only by seed. Zero values take the defaults of Defaults.
type Options struct {
	Seed     uint64
	Regions  int
	SKUs     int
	Stock    uint64        // initial units of each SKU, split over the regions
	Duration time.Duration // virtual time during which carts arrive
	Workload string        // steady | skew | shift | flash | waitlist | locations
	Faults   string        // none | all | a comma list of fault names (faultset.go)
	Strategy string        // see Strategies()
	Rate     float64       // carts per second over all regions

	TTL           time.Duration // hold TTL asked by clients
	BorrowTimeout time.Duration // escrow.Config.BorrowTimeout (0: the escrow default)
	Tick          time.Duration // runtime tick period of every region
	Fsync         time.Duration // mean latency of one synced write
	ClientLatency time.Duration // one way, client to its region
	InterMin      time.Duration // one-way inter-region latency, lower bound
	InterMax      time.Duration // one-way inter-region latency, upper bound
	// RTT fixes the round trip of region pairs (sim/rtt.go), e.g.
	// "us-eu=80ms,us-ap=220ms,eu-ap=150ms"; empty: all drawn.
	RTT string
	// BorrowTimeoutMax is escrow.Config.BorrowTimeoutMax (0: the escrow
	// default).
	BorrowTimeoutMax time.Duration

	// Wire round-trips every peer message through escrow's codec.
	Wire bool
	// Partial is the fraction of carts sent as partial holds (0..1).
	Partial float64
	// Series records time series for the HTML report.
	Series bool
	// Soak makes the run a soak (soak.go): Duration is hours of simulated
	// time, the report samples the simulator's state every simulated hour.
	Soak bool
	// Runtime is what drives each region: RuntimeEscrow (the simulator's
	// own persist-then-reply loop around escrow.Node) or RuntimeRegion
	// (the real region runtime, Pebble on a crashable in-memory vfs; see
	// runtime_region.go). "": RuntimeEscrow.
	Runtime string
	// SKUCache bounds the SKUs each region keeps in memory (escrow
	// Config.MaxResidentSKUs / region Config.SKUCache): the rest are read
	// from the region's simulated disk on first touch. 0: all resident.
	SKUCache int
	// HoldCache bounds the holds and idempotency keys each region keeps
	// in memory (escrow Config.MaxResidentHolds / region
	// Config.HoldCache): the rest are read from the region's simulated
	// disk on demand, and expired holds are found through its expiry
	// index. 0: all resident.
	HoldCache int

	// Bugs and Hooks inject known bugs so tests can show that the checkers
	// catch them. Never set them outside tests and demonstrations.
	Bugs  escrowtest.Bugs
	Hooks Hooks
	// RegionBugs are planted in the region runtime (RuntimeRegion only).
	RegionBugs regiontest.Bugs

	// SoakHook, when set, is called with every soak sample, after the
	// full GC that measures the heap (holdfast sim --heap-profile writes a
	// heap profile there). Observation only: not part of the run's
	// arguments, and it must not touch the run.
	SoakHook func(seed uint64, s SoakSample) `json:"-"`
}

// Hooks are test-only bugs of the simulated runtime (not of escrow).
type Hooks struct {
	// ReplyBeforePersist delivers replies before the Ready is durable, and
	// sometimes crashes the region before the write completes: the
	// durability rule broken on purpose.
	ReplyBeforePersist bool
	// AckSlowFsync answers before the write is durable when the fsync is
	// slow (the runtime "times out" the sync and acks anyway): harmless
	// until fsync stalls (fault stall) and a crash follows.
	AckSlowFsync bool
	// SkipVerify delivers a message whose envelope does not verify
	// (fault corrupt) when the escrow codec still decodes it.
	SkipVerify bool
	// NoRestartProbation restarts regions from a non-empty store without
	// region's restart_probation (faults rollback, fsynclie): the fence's
	// quorum of digests alone, which hears of the loss too late.
	NoRestartProbation bool
	// SkipProbation starts a new region (fault membership) without its
	// probation: the runtime forgets escrow.Node.BeginProbation.
	SkipProbation bool
}

// Defaults returns the options used for zero fields.
func Defaults() Options {
	return Options{
		Seed:          1,
		Regions:       3,
		SKUs:          20,
		Stock:         100,
		Duration:      10 * time.Minute,
		Workload:      "steady",
		Faults:        FaultsNone,
		Strategy:      "escrow",
		Rate:          20,
		TTL:           2 * time.Minute,
		BorrowTimeout: 0,
		Tick:          20 * time.Millisecond,
		Fsync:         time.Millisecond,
		ClientLatency: time.Millisecond,
		InterMin:      20 * time.Millisecond,
		InterMax:      150 * time.Millisecond,
	}
}

// withDefaults fills zero fields.
func (o Options) withDefaults() Options {
	d := Defaults()
	o.Regions = cmp.Or(o.Regions, d.Regions)
	o.SKUs = cmp.Or(o.SKUs, d.SKUs)
	o.Stock = cmp.Or(o.Stock, d.Stock)
	o.Duration = cmp.Or(o.Duration, d.Duration)
	o.Workload = cmp.Or(o.Workload, d.Workload)
	o.Faults = cmp.Or(o.Faults, d.Faults)
	o.Strategy = cmp.Or(o.Strategy, d.Strategy)
	o.Rate = cmp.Or(o.Rate, d.Rate)
	o.TTL = cmp.Or(o.TTL, d.TTL)
	o.Tick = cmp.Or(o.Tick, d.Tick)
	o.Fsync = cmp.Or(o.Fsync, d.Fsync)
	o.Runtime = cmp.Or(o.Runtime, RuntimeEscrow)
	o.ClientLatency = cmp.Or(o.ClientLatency, d.ClientLatency)
	o.InterMin = cmp.Or(o.InterMin, d.InterMin)
	o.InterMax = cmp.Or(o.InterMax, max(d.InterMax, o.InterMin))
	return o
}

// Validate reports the first problem with o (after defaults).
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.SKUCache < 0 || o.SKUCache > MaxSKUs:
		return fmt.Errorf("sim: sku-cache must be between 0 (off) and %d, got %d", MaxSKUs, o.SKUCache)
	case o.HoldCache < 0 || o.HoldCache > escrow.MaxResidentHoldsLimit:
		return fmt.Errorf("sim: hold-cache must be between 0 (off) and %d, got %d", escrow.MaxResidentHoldsLimit, o.HoldCache)
	case o.Regions < 2 || o.Regions > MaxRegions:
		return fmt.Errorf("sim: regions must be between 2 and %d, got %d", MaxRegions, o.Regions)
	case o.SKUs < 1 || o.SKUs > MaxSKUs:
		return fmt.Errorf("sim: skus must be between 1 and %d, got %d", MaxSKUs, o.SKUs)
	case o.Stock > MaxStock:
		return fmt.Errorf("sim: stock must be at most %d, got %d", MaxStock, o.Stock)
	case o.Duration < 10*time.Second || o.Duration > MaxDuration:
		return fmt.Errorf("sim: duration must be between 10s and %v, got %v", MaxDuration, o.Duration)
	case o.Rate < 0 || o.Rate > MaxRate:
		return fmt.Errorf("sim: rate must be between 0 and %d carts/s, got %v", MaxRate, o.Rate)
	case o.TTL < escrow.MinTTL || o.TTL > time.Hour:
		return fmt.Errorf("sim: ttl must be between %v and 1h, got %v", escrow.MinTTL, o.TTL)
	case o.Tick < time.Millisecond || o.Tick > time.Second:
		return fmt.Errorf("sim: tick must be between 1ms and 1s, got %v", o.Tick)
	case o.Fsync < 0 || o.Fsync > time.Second:
		return fmt.Errorf("sim: fsync must be between 0 and 1s, got %v", o.Fsync)
	case o.ClientLatency < 0 || o.ClientLatency > time.Second:
		return fmt.Errorf("sim: client latency must be between 0 and 1s, got %v", o.ClientLatency)
	case o.InterMin < 0 || o.InterMax < o.InterMin || o.InterMax > 5*time.Second:
		return fmt.Errorf("sim: inter-region latency must satisfy 0 <= min <= max <= 5s, got %v..%v", o.InterMin, o.InterMax)
	case o.Partial < 0 || o.Partial > 1:
		return fmt.Errorf("sim: partial must be a fraction between 0 and 1, got %v", o.Partial)
	case o.BorrowTimeout < 0 || o.BorrowTimeout > 10*time.Second:
		return fmt.Errorf("sim: borrow timeout must be between 0 and 10s, got %v", o.BorrowTimeout)
	}
	if _, err := parseRTT(o.RTT); err != nil {
		return err
	}
	if o.BorrowTimeoutMax < 0 || o.BorrowTimeoutMax > 10*time.Second {
		return fmt.Errorf("sim: borrow timeout max must be between 0 and 10s, got %v", o.BorrowTimeoutMax)
	}
	if _, err := ParseFaults(o.Faults); err != nil {
		return err
	}
	if o.Soak && o.Duration < 20*time.Minute {
		return fmt.Errorf("sim: a soak runs at least 20m of simulated time, got %v", o.Duration)
	}
	if !slices.Contains(Workloads, o.Workload) {
		return fmt.Errorf("sim: workload must be one of %s, got %q", strings.Join(Workloads, ", "), o.Workload)
	}
	if _, err := newStrategy(o.Strategy); err != nil {
		return err
	}
	if o.Workload == workloadLocations && o.Strategy == "central" {
		// One region serving every hold could sell from no location but
		// its own: the comparison means nothing.
		return fmt.Errorf("sim: workload locations needs a strategy where each region sells (escrow, static, ...), not central")
	}
	return o.validateRuntime()
}

// Args returns the command-line flags of `holdfast sim` that reproduce o
// for one seed, every knob spelled out so that changed defaults cannot
// change the replay.
func (o Options) Args(seed uint64) []string {
	o = o.withDefaults()
	a := []string{
		"--seed", strconv.FormatUint(seed, 10),
		"--regions", strconv.Itoa(o.Regions),
		"--skus", strconv.Itoa(o.SKUs),
		"--stock", strconv.FormatUint(o.Stock, 10),
		"--duration", o.Duration.String(),
		"--workload", o.Workload,
		"--faults", o.Faults,
		"--strategy", o.Strategy,
		"--rate", strconv.FormatFloat(o.Rate, 'g', -1, 64),
		"--ttl", o.TTL.String(),
		"--tick", o.Tick.String(),
		"--fsync", o.Fsync.String(),
		"--client-latency", o.ClientLatency.String(),
		"--inter-min", o.InterMin.String(),
		"--inter-max", o.InterMax.String(),
	}
	if o.BorrowTimeout != 0 {
		a = append(a, "--borrow-timeout", o.BorrowTimeout.String())
	}
	if o.RTT != "" {
		a = append(a, "--rtt", o.RTT)
	}
	if o.BorrowTimeoutMax != 0 {
		a = append(a, "--borrow-timeout-max", o.BorrowTimeoutMax.String())
	}
	if o.Wire {
		a = append(a, "--wire")
	}
	if o.Runtime != RuntimeEscrow {
		a = append(a, "--runtime", o.Runtime)
	}
	if o.Partial > 0 {
		a = append(a, "--partial", strconv.FormatFloat(o.Partial, 'g', -1, 64))
	}
	if o.Soak {
		a = append(a, "--soak", o.Duration.String())
	}
	if o.SKUCache > 0 {
		a = append(a, "--sku-cache", strconv.Itoa(o.SKUCache))
	}
	if o.HoldCache > 0 {
		a = append(a, "--hold-cache", strconv.Itoa(o.HoldCache))
	}
	for _, b := range o.BugNames() {
		a = append(a, "--bug", b)
	}
	return a
}

// Bug names accepted by SetBug.
const (
	BugGrantWithoutCheck  = "grant-without-check"
	BugMergeBySum         = "merge-by-sum"
	BugKeepExpiredUnits   = "keep-expired-units"
	BugReplyBeforePersist = "reply-before-persist"
	// BugPartialRecordsAsked: a partial hold records what it asked for
	// while only the available units are reserved (needs Partial > 0).
	BugPartialRecordsAsked = "partial-records-asked"
	// BugPromoteOutOfOrder: returning units go to the newest waiter first
	// (workload waitlist).
	BugPromoteOutOfOrder = "promote-out-of-order"
	// BugPromotedKeepsPlace: a promoted waitlist entry stays in the queue
	// and is promoted again (workload waitlist).
	BugPromotedKeepsPlace = "promoted-keeps-place"
	// BugReplyBeforeSync: the region runtime's committer answers a batch's
	// callers before its fsync (RuntimeRegion only).
	BugReplyBeforeSync = "reply-before-sync"
	// BugSkipFsync: the region runtime writes every batch without its
	// fsync (RuntimeRegion only).
	BugSkipFsync = "skip-fsync"
	// BugAckFailedWrite: the region runtime answers the callers of a
	// batch its store failed as if it had succeeded (RuntimeRegion only).
	BugAckFailedWrite = "ack-failed-write"
	// BugDuplicateEvent: a hold that leaves HELD states its event twice.
	BugDuplicateEvent = "duplicate-event"
	// BugGrantAnyLocation: a line no eligible location covers is granted
	// from another location of the SKU (workload locations).
	BugGrantAnyLocation = "grant-any-location"
	// Bugs that only a named fault exposes (TestPlantedBugsNeedTheirFault).
	BugAckSlowFsync  = "ack-slow-fsync"  // stall: reply before a slow sync completes
	BugSkipVerify    = "skip-verify"     // corrupt: deliver what the envelope check refused
	BugIgnoreIdemKey = "ignore-idem-key" // linkloss: a retry's idempotency key is not looked up
	BugTrustClock    = "trust-clock"     // jump: the node takes the runtime's clock even backwards
	BugLastRowWins   = "last-row-wins"   // replay: a merged row takes the incoming Reserved
	BugIgnoreFence   = "ignore-fence"    // wipe, rollback, fsynclie: never fence nor go on probation
	// rollback, fsynclie: a restart from a non-empty store does not wait
	// for its peers' word (region's restart_probation off).
	BugNoRestartProbation = "no-restart-probation"
	BugSkipProbation      = "skip-probation"   // membership: a new region starts without its probation
	BugTrustNonMember     = "trust-non-member" // membership: a region outside the members is believed
	// BugHonourStaleBorrows: a donor honours a borrow request its requester
	// has certainly given up on (replay, pause, partitions).
	BugHonourStaleBorrows = "honour-stale-borrows"
	// Bugs that --faults all exposes through its store-back faults on the
	// region runtime (faults_all_storeback_test.go): a node asks only the
	// peers its own view credits with surplus (no stock hints), and a held
	// restart probation is not announced.
	BugNoStockHints       = "no-stock-hints"
	BugQuietHeldProbation = "quiet-held-probation"
	// BugEvictDirty: the SKU cache (--sku-cache) drops a SKU whose rows
	// are not yet saved, losing its latest changes.
	BugEvictDirty = "evict-dirty"
	// BugEvictDirtyHold: the hold cache (--hold-cache) drops a hold whose
	// change is not yet saved; BugSkipSourceExpiry: it never scans the
	// disk's expiry index, so holds that are not resident never expire.
	BugEvictDirtyHold   = "evict-dirty-hold"
	BugSkipSourceExpiry = "skip-source-expiry"
)

// bugSwitches maps each bug name to the switch it turns on, in the order
// BugNames lists them.
var bugSwitches = []struct {
	name string
	flag func(o *Options) *bool
}{
	{BugGrantWithoutCheck, func(o *Options) *bool { return &o.Bugs.GrantWithoutCheck }},
	{BugMergeBySum, func(o *Options) *bool { return &o.Bugs.MergeBySum }},
	{BugKeepExpiredUnits, func(o *Options) *bool { return &o.Bugs.KeepExpiredUnits }},
	{BugReplyBeforePersist, func(o *Options) *bool { return &o.Hooks.ReplyBeforePersist }},
	{BugReplyBeforeSync, func(o *Options) *bool { return &o.RegionBugs.ReplyBeforeSync }},
	{BugSkipFsync, func(o *Options) *bool { return &o.RegionBugs.SkipFsync }},
	{BugAckFailedWrite, func(o *Options) *bool { return &o.RegionBugs.AckFailedWrite }},
	{BugPartialRecordsAsked, func(o *Options) *bool { return &o.Bugs.PartialRecordsAsked }},
	{BugPromoteOutOfOrder, func(o *Options) *bool { return &o.Bugs.PromoteOutOfOrder }},
	{BugPromotedKeepsPlace, func(o *Options) *bool { return &o.Bugs.PromotedKeepsPlace }},
	{BugDuplicateEvent, func(o *Options) *bool { return &o.Bugs.DuplicateEvent }},
	{BugGrantAnyLocation, func(o *Options) *bool { return &o.Bugs.GrantAnyLocation }},
	{BugAckSlowFsync, func(o *Options) *bool { return &o.Hooks.AckSlowFsync }},
	{BugSkipVerify, func(o *Options) *bool { return &o.Hooks.SkipVerify }},
	{BugIgnoreIdemKey, func(o *Options) *bool { return &o.Bugs.IgnoreIdemKey }},
	{BugTrustClock, func(o *Options) *bool { return &o.Bugs.TrustClock }},
	{BugLastRowWins, func(o *Options) *bool { return &o.Bugs.LastRowWins }},
	{BugIgnoreFence, func(o *Options) *bool { return &o.Bugs.IgnoreFence }},
	{BugNoRestartProbation, func(o *Options) *bool { return &o.Hooks.NoRestartProbation }},
	{BugSkipProbation, func(o *Options) *bool { return &o.Hooks.SkipProbation }},
	{BugTrustNonMember, func(o *Options) *bool { return &o.Bugs.TrustNonMembers }},
	{BugHonourStaleBorrows, func(o *Options) *bool { return &o.Bugs.HonourStaleBorrows }},
	{BugNoStockHints, func(o *Options) *bool { return &o.Bugs.NoStockHints }},
	{BugQuietHeldProbation, func(o *Options) *bool { return &o.Bugs.QuietHeldProbation }},
	{BugEvictDirty, func(o *Options) *bool { return &o.Bugs.EvictDirty }},
	{BugEvictDirtyHold, func(o *Options) *bool { return &o.Bugs.EvictDirtyHold }},
	{BugSkipSourceExpiry, func(o *Options) *bool { return &o.Bugs.SkipSourceExpiry }},
}

// SetBug turns on one named test-only bug.
func (o *Options) SetBug(name string) error {
	names := make([]string, len(bugSwitches))
	for i, b := range bugSwitches {
		if b.name == name {
			*b.flag(o) = true
			return nil
		}
		names[i] = b.name
	}
	return fmt.Errorf("sim: unknown bug %q (want one of %s)", name, strings.Join(names, ", "))
}

// BugNames lists the bugs turned on in o.
func (o Options) BugNames() []string {
	var out []string
	for _, b := range bugSwitches {
		if *b.flag(&o) {
			out = append(out, b.name)
		}
	}
	return out
}
