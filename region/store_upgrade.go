package region

// Upgrading a store written by an earlier format (see keys.go): 1 → 2 → 3
// → 4, each step one synced batch.

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/escrow"
)

// upgradeFrom1 upgrades a format-1 store to format 2. Format 1 keyed rows,
// the change index and recount marks by SKU; in format 2 a SKU is the
// stock key of its default location, byte for byte, so no key moves: the
// upgrade checks that every SKU in those places is a plain SKU (format 1
// could hold nothing else) and then records format 2, durably, before the
// store is used. A store it finds anything else in is reported corrupt and
// left as it was.
func (s *Store) upgradeFrom1() error {
	rows := 0
	err := s.scan(pfxRow, func(k, _ []byte) error {
		sku, _, ok := splitRowKey(k)
		if !ok || escrow.ValidSKU(sku) != nil {
			return corrupt(k, "format-1 row key without a plain SKU")
		}
		rows++
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range []string{pfxChange, pfxRecount} {
		err := s.scan(p, func(k, v []byte) error {
			sku := string(v)
			if p == pfxRecount {
				sku = string(k[len(p):])
			}
			if escrow.ValidSKU(sku) != nil {
				return corrupt(k, "format-1 entry without a plain SKU")
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	b := s.db.NewBatch()
	defer b.Close()
	return s.commitUpgrade(b, 2, "rows", rows)
}

// upgradeFrom2 upgrades a format-2 store to format 3, which has no change
// index: one synced batch deletes the whole c/ range and records format 3,
// so a crash leaves either format 2 with its index or format 3 without
// it. Nothing else changes (the own rows carry their sequences; Load
// rebuilds the in-memory map from them). A build that reads only format 2
// refuses the store afterwards (docs/operations.md, "Rolling upgrade").
func (s *Store) upgradeFrom2() error {
	entries := 0
	if err := s.scan(pfxChange, func(_, _ []byte) error { entries++; return nil }); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange([]byte(pfxChange), prefixEnd(pfxChange), nil)
	return s.commitUpgrade(b, 3, "change_index_entries_deleted", entries)
}

// upgradeFrom3 upgrades a format-3 store to format 4, whose rows are
// stored without the SKU and region their key names
// (escrow.EncodeRowValue). No row is rewritten: format 4 reads both forms
// (escrow.DecodeRowValue), and a row takes the short one when it next
// changes. The step only records format 4, so that a build that reads
// format 3 at most refuses the store instead of misreading a short row
// (docs/operations.md, "Rolling upgrade").
func (s *Store) upgradeFrom3() error {
	b := s.db.NewBatch()
	defer b.Close()
	return s.commitUpgrade(b, 4)
}

// commitUpgrade records format to in b (which holds the step's other
// changes, if any), commits it synced, and logs the step with logArgs.
func (s *Store) commitUpgrade(b *pebble.Batch, to byte, logArgs ...any) error {
	_ = b.Set(keyMetaVersion, []byte{to}, nil)
	if err := s.applyBatch(b, true); err != nil {
		return fmt.Errorf("region store %s: upgrade to format %d: %w", s.dir, to, err)
	}
	if err := s.failed(); err != nil {
		return err
	}
	s.log.Info("upgraded store", append([]any{"region", s.region, "from", to - 1, "to", to}, logArgs...)...)
	return nil
}
