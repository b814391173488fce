package region

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
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

// writeFormat2Store writes, key by key, a store as the format-2 build left
// it: version 2, own rows of SKU "A" (seq 3) and of "A" at berlin (seq 2)
// with their change index entries, and a peer row.
func writeFormat2Store(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	berlin := escrow.StockKey("A", "berlin")
	rows := []escrow.Row{
		{SKU: "A", Region: stRegion, Seq: 3, Minted: 5, Reserved: 2},
		{SKU: berlin, Region: stRegion, Seq: 2, Minted: 7},
		{SKU: "A", Region: "us", Seq: 40, Minted: 9},
	}
	kv := map[string][]byte{
		"m/version":                     {2},
		"m/region":                      []byte(stRegion),
		"m/seq":                         appendU64(nil, 3),
		string(appendChangeKey(nil, 3)): []byte("A"),
		string(appendChangeKey(nil, 2)): []byte(berlin),
	}
	for i := range rows {
		kv[string(appendRowKey(nil, rows[i].SKU, rows[i].Region))] = escrow.EncodeRow(nil, &rows[i])
	}
	for k, v := range kv {
		stRawSet(t, fs, dir, []byte(k), v)
	}
}

// stChangeEntries counts the c/ keys of an open store.
func stChangeEntries(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.scan(pfxChange, func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStoreUpgradeFromFormat2 opens a store written by format 2: the open
// deletes its change index and records format 3 (then 4); the rows load with their
// sequences, the own rows come back in sequence order, and the next change
// of a row is checked against the sequence it had (a change index entry
// would have moved).
func TestStoreUpgradeFromFormat2(t *testing.T) {
	fs := vfs.NewMem()
	writeFormat2Store(t, fs, "db")
	s := stOpen(t, fs, "db")
	if v, ok, err := s.get(keyMetaVersion); err != nil || !ok || len(v) != 1 || v[0] != storeFormatVersion {
		t.Fatalf("format after upgrade: %v %v %v", v, ok, err)
	}
	if n := stChangeEntries(t, s); n != 0 {
		t.Fatalf("%d change index entries after the upgrade, want 0", n)
	}
	st := stLoad(t, s)
	if len(st.Rows) != 3 || st.Seq != 3 {
		t.Fatalf("rows after upgrade: %+v seq %d", st.Rows, st.Seq)
	}
	berlin := escrow.StockKey("A", "berlin")
	rows, err := s.OwnRowsSince(0, 0)
	if err != nil || len(rows) != 2 || rows[0].SKU != berlin || rows[0].Seq != 2 || rows[1].SKU != "A" || rows[1].Seq != 3 {
		t.Fatalf("OwnRowsSince(0) after upgrade = %+v, %v; want berlin at 2, A at 3", rows, err)
	}
	// A changed at a sequence it cannot have: refused. Unchanged (its seq
	// as stored) beside berlin's change: accepted.
	if err := s.Apply(&escrow.Persist{Seq: 4, Rows: []escrow.Row{{SKU: "A", Region: stRegion, Seq: 1, Minted: 6}}}); err == nil {
		t.Fatal("Apply of own row A at seq 1 (below the stored 3) accepted")
	}
	if err := s.Apply(&escrow.Persist{Seq: 4, Rows: []escrow.Row{
		{SKU: "A", Region: stRegion, Seq: 3, Minted: 5, Reserved: 2},
		{SKU: berlin, Region: stRegion, Seq: 4, Minted: 8},
	}}); err != nil {
		t.Fatal(err)
	}
	rows, err = s.OwnRowsSince(2, 0)
	if err != nil || len(rows) != 2 || rows[0].SKU != "A" || rows[1].SKU != berlin || rows[1].Seq != 4 || rows[1].Minted != 8 {
		t.Fatalf("OwnRowsSince(2) = %+v, %v; want A at 3, berlin at 4", rows, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = stOpen(t, fs, "db") // the current format opens as it is
	defer s.Close()
	st = stLoad(t, s)
	got := map[string]uint64{}
	for _, r := range st.Rows {
		if r.Region == stRegion {
			got[r.SKU] = r.Seq
		}
	}
	if len(got) != 2 || got["A"] != 3 || got[berlin] != 4 || st.Seq != 4 || stChangeEntries(t, s) != 0 {
		t.Fatalf("own rows after reopen: %v seq %d", got, st.Seq)
	}
}

// TestStoreApplyWithoutLoad: a store applied to before any Load (a tool,
// a test) builds its own rows' sequences from the rows at the first Apply,
// so a row's change is checked against what is stored.
func TestStoreApplyWithoutLoad(t *testing.T) {
	fs := vfs.NewMem()
	s := stOpen(t, fs, "db")
	if err := s.Apply(&escrow.Persist{Seq: 2, Rows: []escrow.Row{
		{SKU: "A", Region: stRegion, Seq: 1, Minted: 1},
		{SKU: "B", Region: stRegion, Seq: 2, Minted: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = stOpen(t, fs, "db")
	defer s.Close()
	// B moved to seq 1, which A has: refused.
	if err := s.Apply(&escrow.Persist{Seq: 2, Rows: []escrow.Row{{SKU: "B", Region: stRegion, Seq: 1, Minted: 2}}}); err == nil ||
		!strings.Contains(err.Error(), "outside (2, 2]") {
		t.Fatalf("Apply of B at seq 1 without a Load: %v, want a refusal", err)
	}
	// B as stored (seq 2) is unchanged, which only the stored sequences
	// tell: accepted beside A's change.
	if err := s.Apply(&escrow.Persist{Seq: 3, Rows: []escrow.Row{
		{SKU: "A", Region: stRegion, Seq: 3, Minted: 2},
		{SKU: "B", Region: stRegion, Seq: 2, Minted: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.OwnRowsSince(0, 0)
	if err != nil || len(rows) != 2 || rows[0].SKU != "B" || rows[1].SKU != "A" || rows[1].Seq != 3 {
		t.Fatalf("OwnRowsSince(0) = %+v, %v; want B at 2, A at 3", rows, err)
	}
}

// TestStoreUpgradeFromFormat1GoesTo3: a format-1 store is upgraded through
// format 2 to 3 (and 4): its change index goes too.
func TestStoreUpgradeFromFormat1GoesTo3(t *testing.T) {
	fs := vfs.NewMem()
	writeFormat1Store(t, fs, "db", nil)
	s := stOpen(t, fs, "db")
	defer s.Close()
	if n := stChangeEntries(t, s); n != 0 {
		t.Fatalf("%d change index entries after the upgrade from format 1, want 0", n)
	}
	if rows, err := s.OwnRowsSince(0, 0); err != nil || len(rows) != 1 || rows[0].SKU != "A" || rows[0].Seq != 1 {
		t.Fatalf("OwnRowsSince(0) = %+v, %v", rows, err)
	}
}

// stRawGet reads key k of the closed store in dir (nil: absent).
func stRawGet(t *testing.T, fs vfs.FS, dir string, k []byte) []byte {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, Logger: &pebbleLogger{log: stLogger(t), onFatal: func(error) {}}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, closer, err := db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	return append([]byte(nil), v...)
}

// TestStoreUpgradeFromFormat2OnlyByItsRegion: another region's format-2
// store is refused before anything is upgraded; it stays at format 2 with
// its change index.
func TestStoreUpgradeFromFormat2OnlyByItsRegion(t *testing.T) {
	fs := vfs.NewMem()
	writeFormat2Store(t, fs, "db")
	_, err := OpenStore("db", StoreOptions{Region: "us", FS: fs, Logger: stLogger(t)})
	if err == nil || !strings.Contains(err.Error(), `belongs to region "eu"`) {
		t.Fatalf("opening eu's format-2 store as us: %v", err)
	}
	if v := stRawGet(t, fs, "db", keyMetaVersion); len(v) != 1 || v[0] != 2 {
		t.Fatalf("format after the refused open: %v, want 2", v)
	}
	if v := stRawGet(t, fs, "db", appendChangeKey(nil, 3)); string(v) != "A" {
		t.Fatalf("change index entry after the refused open: %q, want A", v)
	}
}

// writeFormat3Store writes, key by key, a store as the format-3 build left
// it: version 3 and rows in escrow.EncodeRow's form, which names the SKU
// and region again (own rows of "A" at seq 3 and of "A" at berlin at seq
// 2, and a peer row).
func writeFormat3Store(t *testing.T, fs vfs.FS, dir string) []escrow.Row {
	t.Helper()
	rows := []escrow.Row{
		{SKU: "A", Region: stRegion, Seq: 3, Minted: 5, Reserved: 2, Sent: []escrow.Transfer{{To: "us", Qty: 1}}},
		{SKU: escrow.StockKey("A", "berlin"), Region: stRegion, Seq: 2, Minted: 7},
		{SKU: "A", Region: "us", Seq: 40, Minted: 9, Reserved: 4, Released: 1},
	}
	kv := map[string][]byte{
		"m/version": {3},
		"m/region":  []byte(stRegion),
		"m/seq":     appendU64(nil, 3),
	}
	for i := range rows {
		kv[string(appendRowKey(nil, rows[i].SKU, rows[i].Region))] = escrow.EncodeRow(nil, &rows[i])
	}
	for k, v := range kv {
		stRawSet(t, fs, dir, []byte(k), v)
	}
	return rows
}

// stRowForms maps each row key of the closed store in dir to the kind byte
// of its value: 'R' for escrow.EncodeRow's form, 'r' for EncodeRowValue's.
func stRowForms(t *testing.T, fs vfs.FS, dir string, rows []escrow.Row) map[string]byte {
	t.Helper()
	out := map[string]byte{}
	for i := range rows {
		k := appendRowKey(nil, rows[i].SKU, rows[i].Region)
		if v := stRawGet(t, fs, dir, k); len(v) >= 4 {
			out[rows[i].Region+"/"+rows[i].SKU] = v[3]
		}
	}
	return out
}

// TestStoreUpgradeFromFormat3 opens a store written by format 3, whose rows
// repeat their SKU and region in the value: the open records format 4 and
// rewrites nothing; every row loads as it was stored (through Load, the
// row source and OwnRowsSince); a row that changes is stored in the short
// form while the others keep the long one, and both load after a reopen.
func TestStoreUpgradeFromFormat3(t *testing.T) {
	fs := vfs.NewMem()
	rows := writeFormat3Store(t, fs, "db")
	s := stOpen(t, fs, "db")
	if v, ok, err := s.get(keyMetaVersion); err != nil || !ok || len(v) != 1 || v[0] != 4 {
		t.Fatalf("format after upgrade: %v %v %v", v, ok, err)
	}
	check := func(when string, want []escrow.Row) {
		t.Helper()
		st := stLoad(t, s)
		got := map[string]escrow.Row{}
		for _, r := range st.Rows {
			got[r.Region+"/"+r.SKU] = r
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d rows loaded, want %d: %+v", when, len(got), len(want), st.Rows)
		}
		for i := range want {
			w := &want[i]
			if g, ok := got[w.Region+"/"+w.SKU]; !ok || !rowsEqual(g, *w) {
				t.Fatalf("%s: row %s/%s loaded as %+v, want %+v", when, w.Region, w.SKU, g, *w)
			}
			src, err := s.SKURows(w.SKU, nil)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, r := range src {
				found = found || (r.Region == w.Region && rowsEqual(r, *w))
			}
			if !found {
				t.Fatalf("%s: SKURows(%s) = %+v, want %+v among them", when, w.SKU, src, *w)
			}
		}
	}
	check("after upgrade", rows)
	own, err := s.OwnRowsSince(0, 0)
	if err != nil || len(own) != 2 || !rowsEqual(own[0], rows[1]) || !rowsEqual(own[1], rows[0]) {
		t.Fatalf("OwnRowsSince(0) after upgrade = %+v, %v", own, err)
	}
	changed := escrow.Row{SKU: rows[1].SKU, Region: stRegion, Seq: 4, Minted: 8, Reserved: 1}
	if err := s.Apply(&escrow.Persist{Seq: 4, Rows: []escrow.Row{changed}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := []escrow.Row{rows[0], changed, rows[2]}
	forms := stRowForms(t, fs, "db", want)
	if forms[stRegion+"/"+changed.SKU] != 'r' || forms[stRegion+"/A"] != 'R' || forms["us/A"] != 'R' {
		t.Fatalf("row forms after one change: %q; want the changed row short ('r'), the others as stored ('R')", forms)
	}
	s = stOpen(t, fs, "db")
	defer s.Close()
	check("after reopen", want)
}

func rowsEqual(a, b escrow.Row) bool {
	if a.SKU != b.SKU || a.Region != b.Region || a.Seq != b.Seq || a.Minted != b.Minted || a.Reserved != b.Reserved ||
		a.Released != b.Released || a.Sold != b.Sold || a.Shrunk != b.Shrunk || len(a.Sent) != len(b.Sent) {
		return false
	}
	for i := range a.Sent {
		if a.Sent[i] != b.Sent[i] {
			return false
		}
	}
	return true
}
