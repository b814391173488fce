package region

// Upgrading a store written by an earlier format (see keys.go).

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
	_ = b.Set(keyMetaVersion, []byte{storeFormatVersion}, nil)
	if err := s.db.Apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("region store %s: upgrade to format %d: %w", s.dir, storeFormatVersion, err)
	}
	if err := s.failed(); err != nil {
		return err
	}
	s.log.Info("upgraded store", "region", s.region, "from", 1, "to", storeFormatVersion, "rows", rows)
	return nil
}
