package sim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/internal/hist"
)

// Result is what one seed measured and what its checkers found.
type Result struct {
	Seed   uint64 `json:"seed"`
	Events uint64 `json:"events"`

	// Carts.
	Holds        uint64 `json:"holds"`         // carts that asked for a hold
	Granted      uint64 `json:"granted"`       //
	Rejected     uint64 `json:"rejected"`      // answered with an error
	StockRejects uint64 `json:"stock_rejects"` // of which: insufficient stock
	Unavailable  uint64 `json:"unavailable"`   // no answer after every retry
	FalseRejects uint64 `json:"false_rejects"` // rejected or unavailable while the units existed somewhere
	Confirmed    uint64 `json:"confirmed"`
	Released     uint64 `json:"released"`
	Abandoned    uint64 `json:"abandoned"`
	Conflicts    uint64 `json:"conflicts"` // confirm/release refused (expired first)
	GaveUp       uint64 `json:"gave_up"`   // confirm/release never answered
	Retries      uint64 `json:"retries"`
	Routed       uint64 `json:"routed"`  // holds sent on to a scarce SKU's home
	Extends      uint64 `json:"extends"` // heartbeats sent
	Restocks     uint64 `json:"restocks"`

	// Network and faults.
	Msgs       uint64 `json:"msgs"`       // inter-region messages put on the wire
	Filtered   uint64 `json:"filtered"`   // messages the strategy forbids
	MsgErrors  uint64 `json:"msg_errors"` // messages a node rejected
	Crashes    uint64 `json:"crashes"`
	Partitions uint64 `json:"partitions"`

	// Escrow node counters, summed over regions and incarnations.
	BorrowsSent    uint64 `json:"borrows_sent"`
	BorrowTimeouts uint64 `json:"borrow_timeouts"`
	BorrowUnitsIn  uint64 `json:"borrow_units_in"`
	TopUps         uint64 `json:"top_ups"`
	AdviceApplied  uint64 `json:"advice_applied"`
	RepairsSent    uint64 `json:"repairs_sent"`
	BorrowIDReuse  uint64 `json:"borrow_id_reuse"` // borrow requests reusing an id the donor saw before
	// FenceRefused: commands refused because a region fenced itself (its
	// store went back in time). Regions restart with their durable state,
	// so any is a false alarm of the fence.
	FenceRefused uint64 `json:"fence_refused"`
	// LocationSplitLines, LocationRefused: the nodes' counters (workload
	// locations): lines split over locations; asks, advice and requests
	// refused for a location (a borrow of a location by a region that may
	// not sell it is one).
	LocationSplitLines uint64 `json:"location_split_lines,omitempty"`
	LocationRefused    uint64 `json:"location_refused,omitempty"`
	// DonationCopiesRefused: borrow requests donors answered with nothing
	// as possible copies of answers they had forgotten (escrow/donations.go;
	// late replays).
	DonationCopiesRefused uint64 `json:"donation_copies_refused,omitempty"`
	// SKUCacheMisses, SKUCacheEvictions (--sku-cache): SKUs the nodes read
	// from their disks on first touch, and SKUs they dropped.
	SKUCacheMisses    uint64 `json:"sku_cache_misses,omitempty"`
	SKUCacheEvictions uint64 `json:"sku_cache_evictions,omitempty"`
	// HoldCacheMisses, HoldCacheEvictions (--hold-cache): holds and keys
	// the nodes read from their disks, and holds and keys they dropped.
	HoldCacheMisses    uint64 `json:"hold_cache_misses,omitempty"`
	HoldCacheEvictions uint64 `json:"hold_cache_evictions,omitempty"`

	// Safety and post-heal checkers: all must be zero.
	Oversell           uint64 `json:"oversell"`   // units, max over time, summed over SKUs
	LostAcked          uint64 `json:"lost_acked"` // acknowledged holds lost or changed
	ConservationErrors uint64 `json:"conservation_errors"`
	// EventErrors: durable writes whose events do not state exactly their
	// changes (events_check.go).
	EventErrors      uint64 `json:"event_errors"`
	Unconverged      uint64 `json:"unconverged"`
	Unreturned       uint64 `json:"unreturned"` // ledgers with units not returned, holds never expired
	LivenessFailures uint64 `json:"liveness_failures"`
	Panics           uint64 `json:"panics"` // the run panicked or never settled
	// Checkers of the named faults (faultset.go), all must be zero:
	// DoubleHolds: idempotency keys that created more than one hold
	// (linkloss); CorruptAccepted: corrupted messages a receiver accepted
	// (corrupt); ClockErrors: holds brought back to held after they ended,
	// or written again after they were deleted (jump).
	DoubleHolds     uint64 `json:"double_holds,omitempty"`
	CorruptAccepted uint64 `json:"corrupt_accepted,omitempty"`
	ClockErrors     uint64 `json:"clock_errors,omitempty"`
	// RowRegressions: a region's copy of a peer's row went back (a field
	// decreased) when it merged a message: rows are bounded counters,
	// merged by max, so an old row replayed must change nothing (replay).
	RowRegressions uint64 `json:"row_regressions,omitempty"`
	// StaleBorrowsHonoured: a donor moved units for a borrow request its
	// requester had certainly given up on, as far as the donor could know
	// (stale_borrow.go); StaleBorrowsRefused: the donors' refusals of such
	// requests (named faults only).
	StaleBorrowsHonoured uint64 `json:"stale_borrows_honoured,omitempty"`
	StaleBorrowsRefused  uint64 `json:"stale_borrows_refused,omitempty"`
	// MembershipErrors: what the membership fault's checker found
	// (membership.go): a new region writing before its probation could
	// end, a removed region's rows or units changed after its removal,
	// drained units not restocked, the procedure not completed.
	MembershipErrors uint64 `json:"membership_errors,omitempty"`
	// FaultCounts: episodes or events of each fault of a named mix (see
	// docs/simulator.md); absent for none, partitions and the old all.
	FaultCounts map[string]uint64 `json:"fault_counts,omitempty"`
	// FalseRejectsByCause: FalseRejects by cause (falsereject.go); absent
	// for none, partitions and the old all.
	FalseRejectsByCause map[string]uint64 `json:"false_rejects_by_cause,omitempty"`

	// Quality.
	// StrandedAtSellout is the mean number of units still available
	// somewhere when a region sells out of a SKU (first refusal for lack of
	// stock since the SKU's last restock; flash: the flash SKU only).
	StrandedAtSellout float64 `json:"stranded_at_sellout"`
	P50HoldMs         float64 `json:"p50_hold_ms"`
	P99HoldMs         float64 `json:"p99_hold_ms"`
	ConvergeMs        int64   `json:"converge_ms"` // heal → every row version of heal time everywhere; -1 unknown

	// Waitlist (workload waitlist): entries joined, promoted (durable),
	// cancelled and expired (as their shoppers learnt), checker findings,
	// the wait time of promoted entries and the share of the hot SKU's
	// units that came back once waiters joined (released or expired holds,
	// the restock) that went to a waiter.
	WaitJoined     uint64 `json:"wait_joined,omitempty"`
	WaitPromoted   uint64 `json:"wait_promoted,omitempty"`
	WaitCancelled  uint64 `json:"wait_cancelled,omitempty"`
	WaitExpired    uint64 `json:"wait_expired,omitempty"`
	WaitGaveUp     uint64 `json:"wait_gave_up,omitempty"`    // waiters never told how their entry ended
	WaitViolations uint64 `json:"wait_violations,omitempty"` // FIFO, one terminal state, promotion durable with its hold, deadlines
	// LocationViolations: granted units from a location the hold's line
	// did not allow, or that the granting region may not sell (workload
	// locations; locations.go).
	LocationViolations uint64 `json:"location_violations,omitempty"`
	WaitStranded       uint64 `json:"wait_stranded,omitempty"` // cross-region bound broken while connected
	// WaitCrossMaxMs: the longest a connected region kept units beyond its
	// own waiters' need while another region's waiters lacked them.
	WaitCrossMaxMs    int64   `json:"wait_cross_max_ms,omitempty"`
	WaitP50Ms         float64 `json:"wait_p50_ms,omitempty"`
	WaitP99Ms         float64 `json:"wait_p99_ms,omitempty"`
	ReturnedToWaiters float64 `json:"returned_to_waiters,omitempty"`

	// Soak: the samples of a soak (soak.go).
	Soak []SoakSample `json:"soak,omitempty"`
	// The region runtime (RuntimeRegion only; see runtime_region.go).
	Runtime string `json:"runtime,omitempty"`
	// ViewRegressions: a node's copy of a peer's row went backwards.
	ViewRegressions uint64 `json:"view_regressions,omitempty"`
	// Storage faults injected (storage_faults.go).
	MidSyncCrashes uint64 `json:"mid_sync_crashes,omitempty"`
	TornCrashes    uint64 `json:"torn_crashes,omitempty"`
	// RecoveryCrashes: crashes right after a restart's recovery.
	RecoveryCrashes uint64 `json:"recovery_crashes,omitempty"`
	DiskFull        uint64 `json:"disk_full,omitempty"`
	StorageErrors   uint64 `json:"storage_errors,omitempty"` // batches failed by the store
	// StoreMismatches: a region restarted from its store with other rows
	// or holds than the simulator's model of what was synced.
	StoreMismatches uint64 `json:"store_mismatches,omitempty"`
	// Stores sent back in time (storage_faults_fence.go): WipedLost are
	// holds acknowledged by a region before its store went back and not in
	// the restored store (lost by physics, not counted as lost_acked);
	// FencedRegions, regions that ended the run refusing writes because
	// peers saw more of their rows; StoreBackSkipped, restores dropped
	// because no peer had seen beyond the image before heal, or overtaken
	// by a later store fault of the same region before the restart.
	WipedLost        uint64 `json:"wiped_lost,omitempty"`
	FencedRegions    uint64 `json:"fenced_regions,omitempty"`
	StoreBackSkipped uint64 `json:"store_back_skipped,omitempty"`
	// bitflip: starts refused for a corrupt store, and flips the open did
	// not read (the region started with exactly what it synced); of those,
	// BitflipLate: found later (a compaction read the flipped block), which
	// made a later start or recovery refuse.
	BitflipRefused uint64 `json:"bitflip_refused,omitempty"`
	BitflipUnread  uint64 `json:"bitflip_unread,omitempty"`
	BitflipLate    uint64 `json:"bitflip_late,omitempty"`

	TraceHash uint64   `json:"trace_hash"`
	Failures  []string `json:"failures,omitempty"`

	Series      *Series `json:"-"`
	latency     hist.Histogram
	strandedSum uint64
	strandedN   uint64

	locations                  bool // workload locations
	waitLat                    hist.Histogram
	waitReturned, waitPromoted uint64
}

// holdMs converts a hold latency to the milliseconds reports print. It
// divides the nanoseconds (rather than scaling Seconds) so that the
// figures are those sim has always printed, to the bit.
func holdMs(d time.Duration) float64 { return float64(d) / 1e6 }

// Failed reports whether a safety or post-heal checker failed.
func (r *Result) Failed() bool {
	return r.Oversell > 0 || r.LostAcked > 0 || r.ConservationErrors > 0 || r.EventErrors > 0 || r.Unconverged > 0 ||
		r.Unreturned > 0 || r.LivenessFailures > 0 || r.Panics > 0 || r.WaitViolations > 0 || r.WaitStranded > 0 ||
		r.DoubleHolds > 0 || r.CorruptAccepted > 0 || r.ClockErrors > 0 || r.RowRegressions > 0 ||
		r.StaleBorrowsHonoured > 0 || r.ViewRegressions > 0 || r.StoreMismatches > 0 || r.MembershipErrors > 0 ||
		r.LocationViolations > 0
}

// Summary aggregates the results of a sweep.
type Summary struct {
	Seeds              int    `json:"seeds"`
	Events             uint64 `json:"events"`
	Holds              uint64 `json:"holds"`
	Granted            uint64 `json:"granted"`
	Rejected           uint64 `json:"rejected"`
	Unavailable        uint64 `json:"unavailable"`
	Oversell           uint64 `json:"oversell"`
	LostAcked          uint64 `json:"lost_acked"`
	ConservationErrors uint64 `json:"conservation_errors"`
	EventErrors        uint64 `json:"event_errors"`
	// LocationViolations (workload locations): see Result; Locations:
	// the runs were of that workload (the outputs then carry the figure).
	LocationViolations uint64   `json:"location_violations,omitempty"`
	Locations          bool     `json:"-"`
	Unconverged        uint64   `json:"unconverged"`
	Unreturned         uint64   `json:"unreturned"`
	LivenessFailures   uint64   `json:"liveness_failures"`
	Panics             uint64   `json:"panics"`
	FalseRejectRate    float64  `json:"false_reject_rate"`
	StrandedAtSellout  float64  `json:"stranded_at_sellout"` // mean units left anywhere when a region sells out
	MsgsPerHold        float64  `json:"msgs_per_hold"`
	P50HoldMs          float64  `json:"p50_hold_ms"`
	P99HoldMs          float64  `json:"p99_hold_ms"`
	MaxConvergeMs      int64    `json:"max_converge_ms"`
	Crashes            uint64   `json:"crashes"`
	Partitions         uint64   `json:"partitions"`
	FailedSeeds        []uint64 `json:"failed_seeds,omitempty"`

	// Named faults (a mix other than none, partitions, the old all).
	DoubleHolds     uint64 `json:"double_holds,omitempty"`
	CorruptAccepted uint64 `json:"corrupt_accepted,omitempty"`
	ClockErrors     uint64 `json:"clock_errors,omitempty"`
	RowRegressions  uint64 `json:"row_regressions,omitempty"`
	// StaleBorrowsHonoured, StaleBorrowsRefused: see Result.
	StaleBorrowsHonoured uint64            `json:"stale_borrows_honoured,omitempty"`
	StaleBorrowsRefused  uint64            `json:"stale_borrows_refused,omitempty"`
	MembershipErrors     uint64            `json:"membership_errors,omitempty"`
	FaultCounts          map[string]uint64 `json:"fault_counts,omitempty"`
	// FalseRejectsByCause sums Result.FalseRejectsByCause.
	FalseRejectsByCause map[string]uint64 `json:"false_rejects_by_cause,omitempty"`
	// AvoidableFalseRejectRate: false rejections of an avoidable cause
	// (all but region_down, no_answer and fenced, falsereject.go) per hold; only
	// with FalseRejectsByCause.
	AvoidableFalseRejectRate float64 `json:"avoidable_false_reject_rate,omitempty"`

	// Waitlist (see Result).
	WaitJoined        uint64  `json:"wait_joined,omitempty"`
	WaitPromoted      uint64  `json:"wait_promoted,omitempty"`
	WaitViolations    uint64  `json:"wait_violations,omitempty"`
	WaitStranded      uint64  `json:"wait_stranded,omitempty"`
	WaitCrossMaxMs    int64   `json:"wait_cross_max_ms,omitempty"`
	WaitP50Ms         float64 `json:"wait_p50_ms,omitempty"`
	WaitP99Ms         float64 `json:"wait_p99_ms,omitempty"`
	ReturnedToWaiters float64 `json:"returned_to_waiters,omitempty"`

	// Region runtime (see Result).
	Runtime         string `json:"runtime,omitempty"`
	ViewRegressions uint64 `json:"view_regressions,omitempty"`
	StoreMismatches uint64 `json:"store_mismatches,omitempty"`
	MidSyncCrashes  uint64 `json:"mid_sync_crashes,omitempty"`
	TornCrashes     uint64 `json:"torn_crashes,omitempty"`
	RecoveryCrashes uint64 `json:"recovery_crashes,omitempty"`
	DiskFull        uint64 `json:"disk_full,omitempty"`
	StorageErrors   uint64 `json:"storage_errors,omitempty"`
	// Stores sent back in time (see Result).
	WipedLost        uint64 `json:"wiped_lost,omitempty"`
	FencedRegions    uint64 `json:"fenced_regions,omitempty"`
	StoreBackSkipped uint64 `json:"store_back_skipped,omitempty"`
	BitflipRefused   uint64 `json:"bitflip_refused,omitempty"`
	BitflipUnread    uint64 `json:"bitflip_unread,omitempty"`
	BitflipLate      uint64 `json:"bitflip_late,omitempty"`
	// SKU cache (see Result).
	SKUCacheMisses    uint64 `json:"sku_cache_misses,omitempty"`
	SKUCacheEvictions uint64 `json:"sku_cache_evictions,omitempty"`
	// Hold cache (see Result).
	HoldCacheMisses    uint64 `json:"hold_cache_misses,omitempty"`
	HoldCacheEvictions uint64 `json:"hold_cache_evictions,omitempty"`
}

// Summarize aggregates results (in the order given).
func Summarize(rs []*Result) Summary {
	var s Summary
	lat := hist.New(hist.Compact)
	var falseRej, msgs, stranded, strandedN, returned, promoted uint64
	wait := hist.New(hist.Compact)
	s.Seeds = len(rs)
	s.MaxConvergeMs = -1
	for _, r := range rs {
		s.Events += r.Events
		s.Holds += r.Holds
		s.Granted += r.Granted
		s.Rejected += r.Rejected
		s.Unavailable += r.Unavailable
		s.Oversell += r.Oversell
		s.LostAcked += r.LostAcked
		s.ConservationErrors += r.ConservationErrors
		s.EventErrors += r.EventErrors
		s.Unconverged += r.Unconverged
		s.Unreturned += r.Unreturned
		s.LivenessFailures += r.LivenessFailures
		s.Panics += r.Panics
		s.Crashes += r.Crashes
		s.DoubleHolds += r.DoubleHolds
		s.CorruptAccepted += r.CorruptAccepted
		s.ClockErrors += r.ClockErrors
		s.RowRegressions += r.RowRegressions
		s.StaleBorrowsHonoured += r.StaleBorrowsHonoured
		s.StaleBorrowsRefused += r.StaleBorrowsRefused
		s.MembershipErrors += r.MembershipErrors
		for k, v := range r.FalseRejectsByCause {
			if s.FalseRejectsByCause == nil {
				s.FalseRejectsByCause = map[string]uint64{}
			}
			s.FalseRejectsByCause[k] += v
		}
		for k, v := range r.FaultCounts {
			if s.FaultCounts == nil {
				s.FaultCounts = map[string]uint64{}
			}
			s.FaultCounts[k] += v
		}
		s.Partitions += r.Partitions
		s.Runtime = cmp.Or(s.Runtime, r.Runtime)
		s.ViewRegressions += r.ViewRegressions
		s.StoreMismatches += r.StoreMismatches
		s.MidSyncCrashes += r.MidSyncCrashes
		s.TornCrashes += r.TornCrashes
		s.RecoveryCrashes += r.RecoveryCrashes
		s.DiskFull += r.DiskFull
		s.StorageErrors += r.StorageErrors
		s.WipedLost += r.WipedLost
		s.FencedRegions += r.FencedRegions
		s.StoreBackSkipped += r.StoreBackSkipped
		s.BitflipRefused += r.BitflipRefused
		s.BitflipUnread += r.BitflipUnread
		s.BitflipLate += r.BitflipLate
		s.SKUCacheMisses += r.SKUCacheMisses
		s.SKUCacheEvictions += r.SKUCacheEvictions
		s.HoldCacheMisses += r.HoldCacheMisses
		s.HoldCacheEvictions += r.HoldCacheEvictions
		falseRej += r.FalseRejects
		msgs += r.Msgs
		stranded += r.strandedSum
		strandedN += r.strandedN
		s.MaxConvergeMs = max(s.MaxConvergeMs, r.ConvergeMs)
		lat.Merge(&r.latency)
		s.WaitJoined += r.WaitJoined
		s.WaitPromoted += r.WaitPromoted
		s.WaitViolations += r.WaitViolations
		s.LocationViolations += r.LocationViolations
		s.Locations = s.Locations || r.locations
		s.WaitStranded += r.WaitStranded
		s.WaitCrossMaxMs = max(s.WaitCrossMaxMs, r.WaitCrossMaxMs)
		returned += r.waitReturned
		promoted += r.waitPromoted
		if r.waitLat.Count() > 0 {
			wait.Merge(&r.waitLat)
		}
		if r.Failed() {
			s.FailedSeeds = append(s.FailedSeeds, r.Seed)
		}
	}
	if s.Holds > 0 {
		s.FalseRejectRate = float64(falseRej) / float64(s.Holds)
		s.MsgsPerHold = float64(msgs) / float64(s.Holds)
	}
	if s.Holds > 0 && s.FalseRejectsByCause != nil {
		s.AvoidableFalseRejectRate = float64(avoidableFalseRejects(s.FalseRejectsByCause)) / float64(s.Holds)
	}
	if strandedN > 0 {
		s.StrandedAtSellout = float64(stranded) / float64(strandedN)
	}
	s.P50HoldMs = holdMs(lat.QuantileMid(0.5))
	s.P99HoldMs = holdMs(lat.QuantileMid(0.99))
	if wait.Count() > 0 {
		s.WaitP50Ms = holdMs(wait.QuantileMid(0.5))
		s.WaitP99Ms = holdMs(wait.QuantileMid(0.99))
	}
	if returned > 0 {
		s.ReturnedToWaiters = float64(min(promoted, returned)) / float64(returned)
	}
	return s
}

// waitlisted reports whether the runs had waiters (or waitlist findings):
// only then do the outputs carry the waitlist figures, so that those of
// every other workload stay as they were.
func (s Summary) waitlisted() bool {
	return s.WaitJoined > 0 || s.WaitViolations > 0 || s.WaitStranded > 0
}

// KV is the machine-readable last line of `holdfast sim`.
func (s Summary) KV() string {
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	kv := []string{
		"seeds=" + strconv.Itoa(s.Seeds),
		"holds=" + strconv.FormatUint(s.Holds, 10),
		"oversell=" + strconv.FormatUint(s.Oversell, 10),
		"lost_acked=" + strconv.FormatUint(s.LostAcked, 10),
		"conservation_errors=" + strconv.FormatUint(s.ConservationErrors, 10),
		"unconverged=" + strconv.FormatUint(s.Unconverged, 10),
		"unreturned=" + strconv.FormatUint(s.Unreturned, 10),
		"liveness_failures=" + strconv.FormatUint(s.LivenessFailures, 10),
		"panics=" + strconv.FormatUint(s.Panics, 10),
		"false_reject_rate=" + f(s.FalseRejectRate, 4),
		"stranded_at_sellout=" + f(s.StrandedAtSellout, 1),
		"msgs_per_hold=" + f(s.MsgsPerHold, 2),
		"p50_hold_ms=" + f(s.P50HoldMs, 1),
		"p99_hold_ms=" + f(s.P99HoldMs, 1),
		"max_converge_ms=" + strconv.FormatInt(s.MaxConvergeMs, 10),
		"events=" + strconv.FormatUint(s.Events, 10),
		"event_errors=" + strconv.FormatUint(s.EventErrors, 10),
	}
	if s.Locations {
		kv = append(kv, "location_violations="+strconv.FormatUint(s.LocationViolations, 10))
	}
	if s.FaultCounts != nil {
		kv = append(kv,
			"double_holds="+strconv.FormatUint(s.DoubleHolds, 10),
			"corrupt_accepted="+strconv.FormatUint(s.CorruptAccepted, 10),
			"clock_errors="+strconv.FormatUint(s.ClockErrors, 10),
			"row_regressions="+strconv.FormatUint(s.RowRegressions, 10),
			"stale_borrows_honoured="+strconv.FormatUint(s.StaleBorrowsHonoured, 10))
		if _, ok := s.FaultCounts["membership"]; ok {
			kv = append(kv, "membership_errors="+strconv.FormatUint(s.MembershipErrors, 10))
		}
	}
	if s.waitlisted() {
		kv = append(kv,
			"wait_joined="+strconv.FormatUint(s.WaitJoined, 10),
			"wait_promoted="+strconv.FormatUint(s.WaitPromoted, 10),
			"wait_violations="+strconv.FormatUint(s.WaitViolations, 10),
			"wait_stranded="+strconv.FormatUint(s.WaitStranded, 10),
			"wait_cross_max_ms="+strconv.FormatInt(s.WaitCrossMaxMs, 10),
			"wait_p50_ms="+f(s.WaitP50Ms, 1),
			"wait_p99_ms="+f(s.WaitP99Ms, 1),
			"returned_to_waiters="+f(s.ReturnedToWaiters, 3))
	}
	kv = append(kv, s.runtimeKV()...)
	if s.SKUCacheMisses+s.SKUCacheEvictions > 0 {
		kv = append(kv, "sku_cache_misses="+strconv.FormatUint(s.SKUCacheMisses, 10),
			"sku_cache_evictions="+strconv.FormatUint(s.SKUCacheEvictions, 10))
	}
	if s.HoldCacheMisses+s.HoldCacheEvictions > 0 {
		kv = append(kv, "hold_cache_misses="+strconv.FormatUint(s.HoldCacheMisses, 10),
			"hold_cache_evictions="+strconv.FormatUint(s.HoldCacheEvictions, 10))
	}
	return strings.Join(kv, " ")
}

// WriteText writes the readable, deterministic summary of a sweep: one
// line per seed, the failures, the totals. (No wall-clock figure: the
// caller reports events/s separately.)
func WriteText(w io.Writer, o Options, rs []*Result) {
	o = o.withDefaults()
	fmt.Fprintf(w, "holdfast sim: strategy=%s workload=%s faults=%s regions=%d skus=%d stock=%d duration=%v rate=%g/s ttl=%v\n",
		o.Strategy, o.Workload, o.Faults, o.Regions, o.SKUs, o.Stock, o.Duration, o.Rate, o.TTL)
	if b := o.BugNames(); len(b) > 0 {
		fmt.Fprintf(w, "injected bugs: %s\n", strings.Join(b, ", "))
	}
	writeRuntime(w, o)
	fmt.Fprintf(w, "%6s %7s %7s %7s %6s %6s %5s %5s %6s %8s %8s %7s %6s %s\n",
		"seed", "holds", "granted", "reject", "unav", "false", "crash", "part", "msg/h", "p50ms", "p99ms", "conv_ms", "strand", "checks")
	for _, r := range rs {
		checks := "ok"
		if r.Failed() {
			checks = fmt.Sprintf("FAIL oversell=%d lost_acked=%d conservation=%d unconverged=%d unreturned=%d liveness=%d panics=%d",
				r.Oversell, r.LostAcked, r.ConservationErrors, r.Unconverged, r.Unreturned, r.LivenessFailures, r.Panics)
			if r.WaitViolations > 0 || r.WaitStranded > 0 {
				checks += fmt.Sprintf(" wait_violations=%d wait_stranded=%d", r.WaitViolations, r.WaitStranded)
			}
			if r.EventErrors > 0 {
				checks += fmt.Sprintf(" event_errors=%d", r.EventErrors)
			}
			if r.LocationViolations > 0 {
				checks += fmt.Sprintf(" location_violations=%d", r.LocationViolations)
			}
			if r.DoubleHolds > 0 || r.CorruptAccepted > 0 || r.ClockErrors > 0 || r.RowRegressions > 0 {
				checks += fmt.Sprintf(" double_holds=%d corrupt_accepted=%d clock_errors=%d row_regressions=%d",
					r.DoubleHolds, r.CorruptAccepted, r.ClockErrors, r.RowRegressions)
			}
			if r.StaleBorrowsHonoured > 0 {
				checks += fmt.Sprintf(" stale_borrows_honoured=%d", r.StaleBorrowsHonoured)
			}
			if r.MembershipErrors > 0 {
				checks += fmt.Sprintf(" membership_errors=%d", r.MembershipErrors)
			}
			if r.ViewRegressions > 0 || r.StoreMismatches > 0 {
				checks += fmt.Sprintf(" view_regressions=%d store_mismatches=%d", r.ViewRegressions, r.StoreMismatches)
			}
		}
		mph := 0.0
		if r.Holds > 0 {
			mph = float64(r.Msgs) / float64(r.Holds)
		}
		fmt.Fprintf(w, "%6d %7d %7d %7d %6d %6d %5d %5d %6.2f %8.1f %8.1f %7d %6.1f %s\n",
			r.Seed, r.Holds, r.Granted, r.Rejected, r.Unavailable, r.FalseRejects, r.Crashes, r.Partitions,
			mph, r.P50HoldMs, r.P99HoldMs, r.ConvergeMs, r.StrandedAtSellout, checks)
	}
	for _, r := range rs {
		for _, f := range r.Failures {
			fmt.Fprintf(w, "seed %d: %s\n", r.Seed, f)
		}
	}
	s := Summarize(rs)
	fmt.Fprintf(w, "total: %d seeds, %d holds, %d granted, %d rejected, %d unavailable, %d events (simulated)\n",
		s.Seeds, s.Holds, s.Granted, s.Rejected, s.Unavailable, s.Events)
	fmt.Fprintf(w, "quality: false_reject_rate=%.4f stranded_at_sellout=%.1f msgs_per_hold=%.2f p50_hold_ms=%.1f p99_hold_ms=%.1f max_converge_ms=%d\n",
		s.FalseRejectRate, s.StrandedAtSellout, s.MsgsPerHold, s.P50HoldMs, s.P99HoldMs, s.MaxConvergeMs)
	if s.FaultCounts != nil {
		fmt.Fprintln(w, s.faultsLine())
	}
	if s.FalseRejectsByCause != nil {
		fmt.Fprintf(w, "false_rejects_by_cause: %s\n", causesLine(s.FalseRejectsByCause))
		fmt.Fprintf(w, "avoidable_false_reject_rate=%.4f (every cause but region_down, no_answer and fenced)\n", s.AvoidableFalseRejectRate)
		writeFloor(w, "", s)
	}
	for _, r := range rs {
		for _, x := range r.Soak {
			fmt.Fprintf(w, "soak: seed=%d minute=%d queued=%d live_holds=%d kept_holds=%d oracle_recs=%d donations=%d\n",
				r.Seed, x.Minute, x.Queued, x.LiveHolds, x.KeptHolds, x.OracleRecs, x.Donations)
		}
	}
	if s.waitlisted() {
		fmt.Fprintf(w, "waitlist: joined=%d promoted=%d wait_p50_ms=%.1f wait_p99_ms=%.1f returned_to_waiters=%.3f cross_max_ms=%d violations=%d stranded=%d\n",
			s.WaitJoined, s.WaitPromoted, s.WaitP50Ms, s.WaitP99Ms, s.ReturnedToWaiters, s.WaitCrossMaxMs, s.WaitViolations, s.WaitStranded)
	}
	if s.Locations {
		fmt.Fprintf(w, "locations: location_violations=%d\n", s.LocationViolations)
	}
	if len(s.FailedSeeds) == 0 {
		fmt.Fprintf(w, "safety: all checkers passed (no oversell, no acknowledged hold lost, conservation exact, converged, units returned, live after heal)\n")
	} else {
		fmt.Fprintf(w, "safety: FAILED on %d seed(s): %v\n", len(s.FailedSeeds), s.FailedSeeds)
	}
}

// WriteJSON writes the results and their summary as one JSON document.
func WriteJSON(w io.Writer, o Options, rs []*Result) error {
	o = o.withDefaults()
	doc := struct {
		Options map[string]string `json:"options"`
		Summary Summary           `json:"summary"`
		Seeds   []*Result         `json:"seeds"`
	}{Options: map[string]string{}, Summary: Summarize(rs), Seeds: rs}
	args := o.Args(0)
	for i := 0; i+1 < len(args); i += 2 {
		if strings.HasPrefix(args[i+1], "--") {
			doc.Options[strings.TrimPrefix(args[i], "--")] = "true"
			i--
			continue
		}
		if args[i] != "--seed" {
			doc.Options[strings.TrimPrefix(args[i], "--")] = args[i+1]
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// WriteComparison writes one row per strategy run on the same seeds (runs[i]
// are the results of names[i]).
func WriteComparison(w io.Writer, o Options, names []string, runs [][]*Result) {
	o = o.withDefaults()
	seeds := 0
	if len(runs) > 0 {
		seeds = len(runs[0])
	}
	fmt.Fprintf(w, "holdfast sim: strategies compared on the same %d seed(s): workload=%s faults=%s regions=%d skus=%d stock=%d duration=%v rate=%g/s\n",
		seeds, o.Workload, o.Faults, o.Regions, o.SKUs, o.Stock, o.Duration, o.Rate)
	fmt.Fprintf(w, "%-20s %8s %8s %8s %8s %8s %8s %8s %s\n", "strategy", "false_rj", "p50_ms", "p99_ms",
		"msgs/h", "strand", "unavail", "conv_ms", "checks")
	for i, name := range names {
		s := Summarize(runs[i])
		checks := "ok"
		if len(s.FailedSeeds) > 0 {
			checks = fmt.Sprintf("FAIL on seeds %v", s.FailedSeeds)
		}
		fmt.Fprintf(w, "%-20s %8.4f %8.1f %8.1f %8.2f %8.1f %8d %8d %s\n", name, s.FalseRejectRate, s.P50HoldMs,
			s.P99HoldMs, s.MsgsPerHold, s.StrandedAtSellout, s.Unavailable, s.MaxConvergeMs, checks)
	}
	sums := make([]Summary, len(names))
	for i, name := range names {
		sums[i] = Summarize(runs[i])
		if s := sums[i]; s.FalseRejectsByCause != nil {
			fmt.Fprintf(w, "false_rejects_by_cause %s: %s avoidable_rate=%.4f\n", name, causesLine(s.FalseRejectsByCause),
				s.AvoidableFalseRejectRate)
			writeFloor(w, name, s)
		}
	}
	writeHalfTarget(w, names, sums)
}
