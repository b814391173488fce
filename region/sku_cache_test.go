package region

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// rowMemStorage is memStorage as a row source with a failure switch: the
// bounded cache's reads go through SKURows.
type rowMemStorage struct {
	*memStorage
	fmu   sync.Mutex
	fail  error
	reads int
	scans int // ScanRows calls
}

func (m *rowMemStorage) SKURows(sku string, dst []escrow.Row) ([]escrow.Row, error) {
	m.fmu.Lock()
	fail := m.fail
	m.reads++
	m.fmu.Unlock()
	if fail != nil {
		return dst, fail
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, r := range m.model.rows {
		if strings.HasPrefix(k, sku+"\x00") {
			dst = append(dst, r.Clone())
		}
	}
	return dst, nil
}

// ScanRows is ScanRowsFrom the start (no SKU is empty).
func (m *rowMemStorage) ScanRows(f func(r *escrow.Row) error) error { return m.ScanRowsFrom("", f) }

func (m *rowMemStorage) ScanRowsFrom(after string, f func(r *escrow.Row) error) error {
	m.fmu.Lock()
	m.scans++
	m.fmu.Unlock()
	st, err := m.Load()
	if err != nil {
		return err
	}
	slices.SortFunc(st.Rows, func(a, b escrow.Row) int {
		return cmp.Or(strings.Compare(a.SKU, b.SKU), strings.Compare(a.Region, b.Region))
	})
	for i := range st.Rows {
		if st.Rows[i].SKU <= after {
			continue
		}
		if err := f(&st.Rows[i]); err != nil {
			return err
		}
	}
	return nil
}

func (m *rowMemStorage) setFail(err error) {
	m.fmu.Lock()
	m.fail = err
	m.fmu.Unlock()
}

// TestSKUCacheOpenScansNoRows: with the cache, opening a region reads no
// row: its "region open" log line once counted the SKUs with a scan of the
// whole catalogue (10 s at 10 M SKUs). Planted bug: logging len(node.SKUs())
// again fails with one scan.
func TestSKUCacheOpenScansNoRows(t *testing.T) {
	st := &rowMemStorage{memStorage: newMemStorage()}
	r := openMem(t, st.memStorage, func(c *Config) { c.Storage = st; c.SKUCache = 1; c.Escrow.DigestInterval = -1 })
	restock(t, r, "A", 5)
	st.fmu.Lock()
	scans, reads := st.scans, st.reads
	st.fmu.Unlock()
	if scans != 0 {
		t.Fatalf("open and one restock scanned the rows %d times, want 0 (%d SKU reads)", scans, reads)
	}
}

// TestSKUCacheRegionReadError: a row source failure takes the node down
// (the request that needed the SKU fails with ErrStorage, nothing is
// answered from a partial state), and the region rebuilds from storage
// once reads work again, with its stock intact.
func TestSKUCacheRegionReadError(t *testing.T) {
	st := &rowMemStorage{memStorage: newMemStorage()}
	r := openMem(t, st.memStorage, func(c *Config) { c.Storage = st; c.SKUCache = 1; c.Escrow.DigestInterval = -1 })
	for _, sku := range []string{"A", "B", "C"} {
		restock(t, r, sku, 5)
	}
	if s := r.Stats(); s.SKUCacheEvictions != 2 || s.SKUResident != 1 {
		t.Fatalf("after three restocks with a cache of 1: %+v", s)
	}
	st.setFail(errors.New("read error on the row range"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A (restocked first) is not resident any more: the hold must read it.
	_, err := r.Do(ctx, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
	if !errors.Is(err, ErrStorage) {
		t.Fatalf("hold with a failing row source: %v, want ErrStorage", err)
	}
	// A read of a SKU that is not resident fails too, whether the node is
	// still stopping, being rebuilt, or rebuilt and reading it again.
	if err := r.Inspect(ctx, func(n *escrow.Node) { n.Available("B") }); !errors.Is(err, ErrStorage) {
		t.Fatalf("read with a failing row source: %v, want ErrStorage", err)
	}
	st.setFail(nil)
	// Recovery retries with backoff: wait on the condition, with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep, err := r.Do(ctx, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 2}}})
		if err == nil {
			if rep.Err != nil {
				t.Fatalf("hold after recovery: %v", rep.Err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("region did not recover: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // backoff between polls of the condition
	}
	rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdStock, SKU: "A"})
	if rep.Stock == nil || rep.Stock.Available != 3 || rep.Stock.Held != 2 {
		t.Fatalf("stock of A after recovery: %+v, want 3 available, 2 held", rep.Stock)
	}
}

// TestSKUCacheCrashRestart: the same random commands against a region
// with a cache of 3 SKUs and an unbounded one, each crashed (only synced
// data kept) and restarted twice, end with the same stock of every SKU.
func TestSKUCacheCrashRestart(t *testing.T) {
	const seed = 23
	t.Logf("seed %d", seed)
	stock := func(bound int) []string {
		mem := vfs.NewCrashableMem()
		open := func(fs vfs.FS) *Region {
			// No digests: a SKU changed or in demand stays resident until
			// a digest carries it, and the test runs for less than one.
			r, err := Open(context.Background(), Config{Name: "eu", DataDir: "db", FS: fs, Logger: quietLogger(), SKUCache: bound,
				Escrow: escrow.Config{DigestInterval: -1}})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		rng := rand.New(rand.NewPCG(seed, 1))
		skus := make([]string, 12)
		for i := range skus {
			skus[i] = fmt.Sprintf("S%02d", i)
		}
		r := open(mem)
		for _, s := range skus {
			restock(t, r, s, 10)
		}
		var held []string
		for cycle := range 3 {
			for range 60 {
				switch x := rng.IntN(10); {
				case x < 6:
					rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{
						{SKU: skus[rng.IntN(len(skus))], Qty: 1 + uint64(rng.IntN(2))}}})
					if rep.Err == nil {
						held = append(held, rep.Hold.ID)
					}
				case x < 8 && len(held) > 0:
					mustDo(t, r, escrow.Command{Kind: escrow.CmdConfirm, HoldID: held[rng.IntN(len(held))]})
				case len(held) > 0:
					mustDo(t, r, escrow.Command{Kind: escrow.CmdRelease, HoldID: held[rng.IntN(len(held))]})
				}
			}
			if cycle < 2 {
				img := mem.CrashClone(vfs.CrashCloneCfg{}) // what was synced: every acknowledged write
				r.Close()
				mem = img
				r = open(mem)
			}
		}
		defer r.Close()
		var out []string
		for _, s := range skus {
			rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdStock, SKU: s})
			out = append(out, fmt.Sprintf("%s avail=%d held=%d sold=%d", s, rep.Stock.Available, rep.Stock.Held, rep.Stock.Sold))
		}
		if bound > 0 {
			if s := r.Stats(); s.SKUCacheMisses == 0 || s.SKUCacheEvictions == 0 {
				t.Fatalf("bound %d: the cache was not used: %+v", bound, s)
			}
		}
		return out
	}
	base, bounded := stock(0), stock(3)
	if !reflect.DeepEqual(base, bounded) {
		t.Fatalf("stock after crashes differs:\nunbounded %v\nbounded   %v", base, bounded)
	}
}

// TestStoreRowSourceMatchesMemRows: the Pebble store's SKURows and
// ScanRows return what escrow.MemRows returns for the same persisted rows.
func TestStoreRowSourceMatchesMemRows(t *testing.T) {
	s, err := OpenStore("db", StoreOptions{Region: "eu", FS: vfs.NewMem(), Logger: quietLogger(), LazyRows: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mem := escrow.NewMemRows()
	seq := uint64(0)
	for i := range 5 {
		var rows []escrow.Row
		for j := range 4 {
			sku := fmt.Sprintf("K%d", (i+j)%6)
			seq++
			rows = append(rows, escrow.Row{SKU: sku, Region: "eu", Minted: uint64(10 + i), Seq: seq})
			rows = append(rows, escrow.Row{SKU: sku, Region: "us", Minted: uint64(i), Seq: uint64(i + 1)})
		}
		// One own row per SKU per batch.
		rows = dedupeOwn(rows)
		p := &escrow.Persist{Rows: rows, Seq: seq}
		if err := s.Apply(p); err != nil {
			t.Fatal(err)
		}
		mem.Put(rows...)
	}
	for _, sku := range []string{"K0", "K1", "K2", "K3", "K4", "K5", "K", "K10", "none"} {
		got, err := s.SKURows(sku, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := mem.SKURows(sku, nil)
		sortRows(got)
		sortRows(want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("SKURows(%q) = %+v, MemRows %+v", sku, got, want)
		}
	}
	var a, b []escrow.Row
	if err := s.ScanRows(func(r *escrow.Row) error { a = append(a, r.Clone()); return nil }); err != nil {
		t.Fatal(err)
	}
	mem.ScanRows(func(r *escrow.Row) error { b = append(b, r.Clone()); return nil })
	if !reflect.DeepEqual(a, b) || len(a) == 0 {
		t.Fatalf("ScanRows: %d rows vs MemRows %d", len(a), len(b))
	}
	// A lazy Load reads no row; the store still validates own rows'
	// sequences against what it has on disk.
	st, err := s.Load()
	if err != nil || len(st.Rows) != 0 {
		t.Fatalf("lazy Load: %d rows, %v", len(st.Rows), err)
	}
	old := a[0]
	old.Seq = 1 // below the stored sequence and not the stored row's
	if err := s.Apply(&escrow.Persist{Rows: []escrow.Row{old}, Seq: seq}); err == nil && old.Region == "eu" {
		t.Fatal("an own row moved back to an old sequence was accepted after a lazy Load")
	}
	s.Close()
	if _, err := s.SKURows("K0", nil); !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("SKURows on a closed store: %v", err)
	}
}

func dedupeOwn(rows []escrow.Row) []escrow.Row {
	seen := map[[2]string]int{}
	var out []escrow.Row
	for _, r := range rows {
		k := [2]string{r.SKU, r.Region}
		if i, ok := seen[k]; ok {
			out[i] = r
			continue
		}
		seen[k] = len(out)
		out = append(out, r)
	}
	return out
}

func sortRows(rows []escrow.Row) {
	for i := 1; i < len(rows); i++ {
		for j := i; j > 0 && rows[j].SKU+"\x00"+rows[j].Region < rows[j-1].SKU+"\x00"+rows[j-1].Region; j-- {
			rows[j], rows[j-1] = rows[j-1], rows[j]
		}
	}
}
