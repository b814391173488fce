package region

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// TestStoreScanRowsFrom: the Pebble store's range scan returns, for every
// cursor, the rows of the SKUs after it in SKU order, as escrow.MemRows
// does: a SKU that starts with the cursor (a longer SKU, or the cursor's
// stock key at a location) comes after it, the cursor's own rows do not;
// and an error from f stops the scan and comes back as is.
func TestStoreScanRowsFrom(t *testing.T) {
	s, err := OpenStore("db", StoreOptions{Region: "eu", FS: vfs.NewMem(), Logger: quietLogger(), LazyRows: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	loc := escrow.LocationSep + "north"
	skus := []string{"A", "K", "K1", "K1" + loc, "K10", "K2", "K2" + loc, "Z"}
	mem := escrow.NewMemRows()
	var rows []escrow.Row
	for i, sku := range skus {
		rows = append(rows, escrow.Row{SKU: sku, Region: "eu", Minted: uint64(10 + i), Seq: uint64(i + 1)},
			escrow.Row{SKU: sku, Region: "us", Minted: uint64(i), Seq: uint64(i + 1)})
	}
	if err := s.Apply(&escrow.Persist{Rows: rows, Seq: uint64(len(skus))}); err != nil {
		t.Fatal(err)
	}
	mem.Put(rows...)
	for _, cursor := range append([]string{"", "0", "K0", "K1" + escrow.LocationSep, "zz"}, skus...) {
		var got, want []escrow.Row
		if err := s.ScanRowsFrom(cursor, func(r *escrow.Row) error { got = append(got, r.Clone()); return nil }); err != nil {
			t.Fatal(err)
		}
		mem.ScanRowsFrom(cursor, func(r *escrow.Row) error { want = append(want, r.Clone()); return nil })
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ScanRowsFrom(%q): %s, MemRows %s", cursor, rowKeys(got), rowKeys(want))
		}
		for _, r := range got {
			if r.SKU <= cursor {
				t.Fatalf("ScanRowsFrom(%q) returned a row of %q", cursor, r.SKU)
			}
		}
	}
	stop := errors.New("stop")
	n := 0
	err = s.ScanRowsFrom("K", func(r *escrow.Row) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("stopped scan: %v after %d rows", err, n)
	}
	s.Close()
	if err := s.ScanRowsFrom("", func(*escrow.Row) error { return nil }); !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("ScanRowsFrom on a closed store: %v", err)
	}
}

func rowKeys(rows []escrow.Row) string {
	var b []string
	for _, r := range rows {
		b = append(b, fmt.Sprintf("%q/%s", r.SKU, r.Region))
	}
	return fmt.Sprint(b)
}
