package sim

import (
	"fmt"
	"strings"
)

// FaultSet is the mix of faults a run injects, one bit per named fault.
type FaultSet uint32

// The faults, by name (faultNames). The first five are those "all" meant
// before the set had names; their schedule is drawn as it always was, so a
// run with the same set replays byte for byte.
const (
	FaultPartitions FaultSet = 1 << iota // inter-region partitions (halves, isolation, bridge)
	FaultCrash                           // crashes and restarts of regions and daemons
	FaultSpike                           // delay spikes on one link
	FaultLossy                           // message drop 2%, duplication 1%, reordering 5%
	FaultSkew                            // clock skew ±1s per region, whole run
	FaultJump                            // a region's clock jumps forward or backward (minutes)
	FaultStall                           // fsync with a long tail and stalls of seconds
	FaultPause                           // a region's process pauses longer than a borrow deadline
	FaultAsym                            // one-way partitions: a sends to b, b's messages to a are lost
	FaultReplay                          // messages minutes old delivered again
	FaultCorrupt                         // bits flipped in messages on the wire
	FaultLinkLoss                        // shopper-to-region link loss: requests or replies lost
	// Storage faults of the region runtime (storage_faults.go; no-ops of
	// the escrow runtime, which has no disk).
	FaultMidSync  // a crash between a batch's write and its fsync
	FaultTorn     // a crash keeps a torn part of the first unsynced write
	FaultRecovery // a crash right after a restart's recovery
	FaultDiskFull // writes fail with ENOSPC for seconds
	// Storage faults that send a store back in time (storage_faults_fence.go).
	FaultWipe     // a region restarts on an emptied data directory
	FaultRollback // a region restarts from an older copy of its data directory
	FaultFsyncLie // fsync reports success but keeps nothing, until a crash
	FaultBitflip  // bits flipped in a region's stored tables while it is down
	// A region added and another removed under load, by the operator's
	// procedure (membership.go; both runtimes).
	FaultMembership
	faultEnd
)

// faultNames lists every fault in report order.
var faultNames = []struct {
	f    FaultSet
	name string
}{
	{FaultPartitions, "partitions"}, {FaultCrash, "crash"}, {FaultSpike, "spike"}, {FaultLossy, "lossy"},
	{FaultSkew, "skew"}, {FaultJump, "jump"}, {FaultStall, "stall"}, {FaultPause, "pause"},
	{FaultAsym, "asym"}, {FaultReplay, "replay"}, {FaultCorrupt, "corrupt"}, {FaultLinkLoss, "linkloss"},
	{FaultMidSync, "midsync"}, {FaultTorn, "torn"}, {FaultRecovery, "recovery"}, {FaultDiskFull, "diskfull"},
	{FaultWipe, "wipe"}, {FaultRollback, "rollback"}, {FaultFsyncLie, "fsynclie"}, {FaultBitflip, "bitflip"},
	{FaultMembership, "membership"},
}

// storageFaults are the faults only the region runtime has.
const storageFaults = FaultMidSync | FaultTorn | FaultRecovery | FaultDiskFull | storeBackFaults

// FaultsAllSet is what --faults all means: every named fault, those that
// send a store back in time (wipe, rollback, fsynclie, bitflip) included.
// The storage faults are the region runtime's: the escrow runtime has no
// disk, and its effective set (Options.faultSet) leaves the store-back
// faults out, so its schedule and output for "all" are those of before
// they joined. On the region runtime a store-back fault leaves its region
// fenced or on probation, refusing writes by design; the checkers expect
// that (storage_faults_fence.go, docs/simulator.md).
const FaultsAllSet = faultEnd - 1

// legacyAll is what "all" meant before faults had names.
const legacyAll = FaultPartitions | FaultCrash | FaultSpike | FaultLossy | FaultSkew

// refusedFaults are names issue 15 asks for that this simulator does not
// model, with the reason given when one is asked for.
var refusedFaults = map[string]string{}

// FaultNames returns the names --faults accepts besides none and all.
func FaultNames() []string {
	out := make([]string, len(faultNames))
	for i, f := range faultNames {
		out[i] = f.name
	}
	return out
}

// ParseFaults reads a comma list of fault names, "none" or "all".
func ParseFaults(s string) (FaultSet, error) {
	var set FaultSet
	for _, part := range strings.Split(s, ",") {
		name := strings.TrimSpace(part)
		switch name {
		case "none":
			continue
		case "all":
			set |= FaultsAllSet
			continue
		}
		found := false
		for _, f := range faultNames {
			if f.name == name {
				set |= f.f
				found = true
				break
			}
		}
		if found {
			continue
		}
		if why, ok := refusedFaults[name]; ok {
			return 0, fmt.Errorf("sim: fault %q is not available: %s", name, why)
		}
		return 0, fmt.Errorf("sim: unknown fault %q in --faults %q (want none, all, or a comma list of %s)",
			name, s, strings.Join(FaultNames(), ", "))
	}
	return set, nil
}

// Has reports whether every fault of f is in the set.
func (s FaultSet) Has(f FaultSet) bool { return s&f == f }

// String names the faults of the set, comma-separated ("none" if empty).
func (s FaultSet) String() string {
	var out []string
	for _, f := range faultNames {
		if s.Has(f.f) {
			out = append(out, f.name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// faultSet is the effective fault set of o: its parsed --faults (Validate
// has checked it), without the store-back faults on the escrow runtime,
// which has no store to send back (they come only from "all" there: by
// name they are refused, validateRuntime).
func (o *Options) faultSet() FaultSet {
	s, _ := ParseFaults(o.Faults)
	if o.Runtime != RuntimeRegion {
		s &^= storeBackFaults
	}
	return s
}

// legacy reports whether the set is one the simulator had before faults
// had names (none, partitions, or the old all): such runs print exactly
// what they printed then, without the faults line.
func (s FaultSet) legacy() bool {
	return s == 0 || s == FaultPartitions || s == legacyAll
}

// faultsLine is the report's line naming the mix and, per fault, its
// episodes or events summed over the seeds, then the checkers of the
// named faults.
func (s Summary) faultsLine() string {
	var b strings.Builder
	var mix []string
	for _, f := range faultNames {
		if _, ok := s.FaultCounts[f.name]; ok {
			mix = append(mix, f.name)
		}
	}
	fmt.Fprintf(&b, "faults: mix=%s", strings.Join(mix, ","))
	for _, name := range mix {
		fmt.Fprintf(&b, " %s=%d", name, s.FaultCounts[name])
	}
	if _, ok := s.FaultCounts["membership"]; ok {
		fmt.Fprintf(&b, " (rolling_restarts=%d drained_units=%d stranded_units=%d zombies=%d",
			s.FaultCounts["membership_restarts"], s.FaultCounts["membership_drained"],
			s.FaultCounts["membership_stranded"], s.FaultCounts["membership_zombies"])
		if n := s.FaultCounts["membership_owed_fenced"]; n > 0 {
			// Only when it happened: the line of runs without it is unchanged.
			fmt.Fprintf(&b, " drained_owed_fenced=%d", n)
		}
		if n := s.FaultCounts["membership_leave_skipped"]; n > 0 {
			fmt.Fprintf(&b, " leaves_skipped_fenced=%d", n)
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " stale_borrows_refused=%d", s.StaleBorrowsRefused)
	fmt.Fprintf(&b, " | double_holds=%d corrupt_accepted=%d clock_errors=%d row_regressions=%d stale_borrows_honoured=%d",
		s.DoubleHolds, s.CorruptAccepted, s.ClockErrors, s.RowRegressions, s.StaleBorrowsHonoured)
	if _, ok := s.FaultCounts["membership"]; ok {
		fmt.Fprintf(&b, " membership_errors=%d", s.MembershipErrors)
	}
	return b.String()
}
