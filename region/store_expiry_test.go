package region

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// TestStoreExpiryIndexNeedsUnindexed: the store keeps its x/ and j/
// indexes from what the Persist names, with no map of its own, and Load's
// cross-check catches a Persist that forgets to end an entry (a planted
// bug in the node): the region refuses to start instead of sweeping or
// listing a hold by a stale deadline. With the entries named, Load is clean.
func TestStoreExpiryIndexNeedsUnindexed(t *testing.T) {
	now := time.Unix(1_780_000_000, 0).UTC()
	at := func(d time.Duration) time.Time { return stTime(now.Add(d)) }
	const id = "eu-00000000000000000a"
	held := escrow.Hold{ID: id, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, State: escrow.Held,
		Created: at(0), Expires: at(time.Minute), MaxExpires: at(time.Hour), Updated: at(0), IdemKey: "k"}
	key := escrow.IdemEntry{Key: "k", HoldID: id, Hash: 1, Expires: at(time.Hour)}
	first := func() *escrow.Persist {
		return &escrow.Persist{Seq: 1, Rows: []escrow.Row{{SKU: "A", Region: stRegion, Seq: 1, Minted: 5, Reserved: 1}},
			Holds: holdPtrs(held), Idem: []escrow.IdemEntry{key}}
	}
	extended, confirmed := held, held
	extended.Expires = at(2 * time.Minute)
	confirmed.State = escrow.Confirmed
	ended := escrow.Deadline{Name: id, At: held.Expires}
	keyEnded := escrow.Deadline{Name: "k", At: key.Expires}
	replaced := key
	replaced.Expires = at(2 * time.Hour)
	for _, tc := range []struct {
		name    string
		second  escrow.Persist
		corrupt string // "" when Load must succeed
	}{
		{"extend", escrow.Persist{Seq: 1, Holds: holdPtrs(extended), HoldsUnindexed: []escrow.Deadline{ended}}, ""},
		{"extend, old entry not ended", escrow.Persist{Seq: 1, Holds: holdPtrs(extended)}, "second expiry index entry"},
		{"confirm", escrow.Persist{Seq: 1, Holds: holdPtrs(confirmed), HoldsUnindexed: []escrow.Deadline{ended}}, ""},
		{"confirm, entry not ended", escrow.Persist{Seq: 1, Holds: holdPtrs(confirmed)}, "still has an expiry index entry"},
		{"key deleted", escrow.Persist{Seq: 1, DeletedIdem: []string{"k"}, IdemUnindexed: []escrow.Deadline{keyEnded}}, ""},
		{"key deleted, entry not ended", escrow.Persist{Seq: 1, DeletedIdem: []string{"k"}}, "idempotency expiry"},
		{"key replaced", escrow.Persist{Seq: 1, Idem: []escrow.IdemEntry{replaced}, IdemUnindexed: []escrow.Deadline{keyEnded}}, ""},
		{"key replaced at the same deadline", escrow.Persist{Seq: 1, Idem: []escrow.IdemEntry{key}, IdemUnindexed: []escrow.Deadline{keyEnded}}, ""},
		{"key replaced, entry not ended", escrow.Persist{Seq: 1, Idem: []escrow.IdemEntry{replaced}}, "second expiry entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := stOpen(t, vfs.NewMem(), "db")
			defer s.Close()
			for _, p := range []*escrow.Persist{first(), &tc.second} {
				if err := s.Apply(p); err != nil {
					t.Fatalf("Apply: %v", err)
				}
			}
			_, err := s.Load()
			var ce *CorruptStoreError
			switch {
			case tc.corrupt == "" && err != nil:
				t.Fatalf("Load: %v", err)
			case tc.corrupt != "" && (!errors.As(err, &ce) || !strings.Contains(err.Error(), tc.corrupt)):
				t.Fatalf("Load = %v, want a corrupt store error with %q", err, tc.corrupt)
			}
		})
	}
}

// TestStoreRefusesForeignUnindexed: an ended entry must name a hold of this
// region, like the holds themselves; nothing of the batch is written.
func TestStoreRefusesForeignUnindexed(t *testing.T) {
	s := stOpen(t, vfs.NewMem(), "db")
	defer s.Close()
	p := &escrow.Persist{Seq: 0, HoldsUnindexed: []escrow.Deadline{{Name: "us-00000000000000000a", At: time.Unix(1, 0)}}}
	if err := s.Apply(p); err == nil || !strings.Contains(err.Error(), "does not belong to region") {
		t.Fatalf("Apply = %v, want a refusal", err)
	}
	if st := s.Stats(); st.Commits != 0 {
		t.Fatalf("%d commits after a refused Apply", st.Commits)
	}
}
