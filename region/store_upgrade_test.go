package region

import (
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// writeFormat1Store writes, key by key, a store as the format-1 build left
// it: the meta keys with version 1, one own row of SKU "A" and its change
// index entry, and a recount mark. extra keys are added as given.
func writeFormat1Store(t *testing.T, fs vfs.FS, dir string, extra map[string][]byte) {
	t.Helper()
	row := escrow.Row{SKU: "A", Region: stRegion, Seq: 1, Minted: 5, Reserved: 2}
	kv := map[string][]byte{
		"m/version":                              {1},
		"m/region":                               []byte(stRegion),
		"m/seq":                                  appendU64(nil, 1),
		string(appendRowKey(nil, "A", stRegion)): escrow.EncodeRow(nil, &row),
		string(appendChangeKey(nil, 1)):          []byte("A"),
	}
	for k, v := range extra {
		kv[k] = v
	}
	for k, v := range kv {
		stRawSet(t, fs, dir, []byte(k), v)
	}
}

// TestStoreLocationUpgradeFromFormat1 opens a store written by the
// previous layout: its SKUs load as default-location stock keys, the
// format becomes 2, and rows of locations are stored next to them.
func TestStoreLocationUpgradeFromFormat1(t *testing.T) {
	fs := vfs.NewMem()
	writeFormat1Store(t, fs, "db", nil)
	s := stOpen(t, fs, "db")
	st := stLoad(t, s)
	if len(st.Rows) != 1 || st.Rows[0].SKU != "A" || st.Rows[0].Minted != 5 || st.Seq != 1 {
		t.Fatalf("format-1 rows after upgrade: %+v seq %d", st.Rows, st.Seq)
	}
	if v, ok, err := s.get(keyMetaVersion); err != nil || !ok || len(v) != 1 || v[0] != storeFormatVersion {
		t.Fatalf("format after upgrade: %v %v %v", v, ok, err)
	}
	berlin := escrow.StockKey("A", "berlin")
	if err := s.Apply(&escrow.Persist{Seq: 2, Rows: []escrow.Row{{SKU: berlin, Region: stRegion, Seq: 2, Minted: 7}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = stOpen(t, fs, "db")
	defer s.Close()
	st = stLoad(t, s)
	got := map[string]uint64{}
	for _, r := range st.Rows {
		got[r.SKU] = r.Minted
	}
	if len(got) != 2 || got["A"] != 5 || got[berlin] != 7 {
		t.Fatalf("rows after reopen: %v", got)
	}
}

// TestStoreLocationUpgradeRefusesForeignKeys: a format-1 store holding a
// stock key of a location (no format-1 build writes one) is refused as
// corrupt and left at format 1.
func TestStoreLocationUpgradeRefusesForeignKeys(t *testing.T) {
	fs := vfs.NewMem()
	bad := escrow.Row{SKU: escrow.StockKey("B", "paris"), Region: stRegion, Seq: 1, Minted: 1}
	writeFormat1Store(t, fs, "db", map[string][]byte{
		string(appendRowKey(nil, bad.SKU, stRegion)): escrow.EncodeRow(nil, &bad),
	})
	_, err := OpenStore("db", StoreOptions{Region: stRegion, FS: fs, Logger: stLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "format-1 row key") {
		t.Fatalf("opening a format-1 store with a location key: %v", err)
	}
	stRawSet(t, fs, "db", appendRowKey(nil, bad.SKU, stRegion), nil)
	s := stOpen(t, fs, "db") // once the key is gone it upgrades
	s.Close()
}
