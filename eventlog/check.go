package eventlog

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ErrCorrupt marks an outbox whose head key and records disagree.
var ErrCorrupt = errors.New("event log is corrupt")

// checkLog cross-checks the head key against the records when the outbox
// is opened. The head key is written in the same batch as the records it
// counts, and a prune deletes records and moves the floor in one batch, so
// a crash (synced or not, any share of unsynced data kept) always leaves
// the kept records exactly max(floor,1)..head. Anything else means bytes
// were lost or altered under the store, and it is refused, not repaired:
//
//   - records past the head: moving the head up would publish events that
//     no batch of this log counted;
//   - a head past the last record (or above the floor with no record): the
//     missing events were durable and possibly served; numbering from the
//     last record instead would give new events the ids of served ones,
//     and keeping the head would leave a gap no reader can fill.
//
// Stores pruned by a build that did not write the floor have no floor key:
// their first record is not checked, and an empty log is accepted at any
// head. The check reads two keys at each end of the log, not the records
// between (readers check contiguity as they read).
func checkLog(db pebble.Reader, head uint64) error {
	floor, err := readU64(db, keyFloor)
	if err != nil {
		return err
	}
	hasFloor := floor != 0 // Prune never writes a floor below 2
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: recordKey(0), UpperBound: recordKey(1<<64 - 1)})
	if err != nil {
		return err
	}
	var first, last uint64
	if it.First() {
		first, err = seqOfKey(it.Key())
		if err == nil && it.Last() {
			last, err = seqOfKey(it.Key())
		}
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	from := max(floor, 1)
	switch {
	case last > head:
		return fmt.Errorf("%w: records up to %d past the head %d", ErrCorrupt, last, head)
	case last != 0 && last < head:
		return fmt.Errorf("%w: head %d past the last record %d (events %d..%d missing)", ErrCorrupt, head, last, last+1, head)
	case last == 0 && hasFloor && from <= head:
		return fmt.Errorf("%w: no record, but events %d..%d were not pruned (floor %d)", ErrCorrupt, from, head, floor)
	case last != 0 && hasFloor && first != from:
		return fmt.Errorf("%w: first record %d, but the log was pruned below %d", ErrCorrupt, first, from)
	}
	return nil
}
