// Package plantedbugs carries the planted-bug switches from package
// escrowtest, the only way to set them, into package escrow, the only code
// that reads them. It is internal so that nothing else can reach either
// side: a production binary has no way to turn a bug on.
package plantedbugs

// Bugs are known bugs planted in the escrow core, so that tests can prove
// the checkers (property tests, the simulator, the demo's audit) catch them.
type Bugs struct {
	GrantWithoutCheck bool // grant holds without checking available
	MergeBySum        bool // merge rows by adding instead of max
	KeepExpiredUnits  bool // expire holds without returning their units
	IgnoreFence       bool // never fence or go on probation (shows the oversell the fence prevents)
	// Waitlist: promote the newest waiting entry first; leave a promoted
	// entry in the queue (it is promoted again when units come back).
	PromoteOutOfOrder  bool
	PromotedKeepsPlace bool
	// PartialRecordsAsked: a partial hold records the quantities asked for
	// while only the available units are reserved.
	PartialRecordsAsked bool
	// DuplicateEvent: a hold that leaves HELD states its event twice.
	DuplicateEvent bool
	// StockKeyNotKept: a keyed restock or write-off applies without
	// remembering its idempotency key (a re-run applies it twice).
	StockKeyNotKept bool
	// IgnoreIdemKey: a hold's idempotency key is not looked up, so a retry
	// whose reply was lost is granted again (the simulator's linkloss).
	IgnoreIdemKey bool
	// TrustClock: the node takes the runtime's clock as it is, even when it
	// goes backwards (the simulator's jump).
	TrustClock bool
	// LastRowWins: a merged row takes the incoming Reserved instead of the
	// larger of the two (the simulator's replay of old rows).
	LastRowWins bool
	// GrantAnyLocation: a line restricted to locations that cannot cover
	// it here is granted from another location of the SKU that can.
	GrantAnyLocation bool
	// TrustNonMembers: a region outside Config.Members is believed like a
	// member (the simulator's membership: a removed region's messages).
	TrustNonMembers bool
	// HonourStaleBorrows: a donor honours a borrow request its requester
	// has certainly given up on (the simulator's replay, pause, partitions).
	HonourStaleBorrows bool
	// NoStockHints: a node asks only the peers its own view says have
	// surplus, even while a fenced peer's rows lag here for good (the
	// simulator's store-back faults: stranded units, liveness).
	NoStockHints bool
	// QuietHeldProbation: a restart probation that a peer's claim holds is
	// not announced in digests (Message.Fenced), so peers keep asking it to
	// lend and keep waiting for its clean report (liveness).
	QuietHeldProbation bool
	// EvictDirty: the bounded SKU cache drops a SKU whose rows are not yet
	// saved (dirty, unbroadcast, or in a Ready not yet Advanced), so a
	// reload from the store loses its latest changes.
	EvictDirty bool
	// SnapshotSkipsRow: an answer of a snapshot in SKU order leaves out its
	// last row while its cursor moves past it, so the peer never has it.
	SnapshotSkipsRow bool
	// LookupMemoAnyName: the node's memo of the SKU it looked up last is
	// returned for any name, not only its own (a hold of one SKU reserves
	// units of the SKU looked up before it).
	LookupMemoAnyName bool
	// EvictDirtyHold: the bounded hold cache drops a hold whose change is
	// not yet saved (dirty, or in a Ready not yet Advanced), so the change
	// never reaches the store.
	EvictDirtyHold bool
	// SkipSourceExpiry: with the bounded hold cache, the sweeper never
	// scans the source's expiry indexes, so a hold that is not resident
	// is never expired (its units never come back).
	SkipSourceExpiry bool
	// ShareAllHoldCopies: Persist.Holds is the Ready's hold copies as
	// their events made them, even when a hold changed twice (its first,
	// stale copy is written too) or was retired in the same Ready.
	ShareAllHoldCopies bool
	// HoldMapDropsCollision: the node's holds map, keyed by a hash of the
	// id, gives a new hold the slot of another whose id has the same hash
	// (that hold is lost from memory).
	HoldMapDropsCollision bool
	// ShareRowsAnyway: a Ready broadcasts its persisted rows (peers' rows
	// merged here too) instead of only the own rows that changed.
	ShareRowsAnyway bool
	// RecycleAtReady: a Ready's Events and Reply slices (and its
	// Persist.Holds and the hold copies no reply shares) are reused by the
	// next Ready as soon as it is returned, not once it is Advanced, so
	// a runtime with two Readies out (a pipeline) has the first one's
	// events and replies overwritten by the second's.
	RecycleAtReady bool
	// FinishReplyStale: the reply to a confirm or release shares a copy
	// of the hold made before the change instead of the event's copy, so
	// it states the hold as HELD.
	FinishReplyStale bool
}

// Any reports whether any bug is on.
func (b Bugs) Any() bool { return b != Bugs{} }

// Plant is installed by package escrow when it is initialised: it returns
// cfg, an escrow.Config, with b planted in its unexported field. It is a
// variable because escrow imports this package, so this package cannot name
// escrow.Config.
var Plant func(cfg any, b Bugs) any
