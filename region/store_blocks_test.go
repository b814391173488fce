package region

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestStoreBlockFormats: a store writes row-block sstables unless
// ColumnarBlocks is set, and a store moves between the two formats with
// every batch kept (Close flushes, so each run leaves tables of its own
// format for the next to read).
func TestStoreBlockFormats(t *testing.T) {
	const seed = 21
	t.Logf("seed %d", seed)
	fs := vfs.NewMem()
	m := newStModel()
	g := newStGen(seed, m)
	for i, columnar := range []bool{true, false, true, false} {
		opts := ownOpts(fs, t)
		opts.ColumnarBlocks = columnar
		s := stOpenWith(t, "db", opts)
		if d := stDiff(stLoad(t, s), m.state()); d != "" {
			s.Close()
			t.Fatalf("run %d (columnar=%v): reading the previous run's tables: %s", i, columnar, d)
		}
		f := s.db.TableFormat()
		if f.BlockColumnar() != columnar {
			s.Close()
			t.Fatalf("run %d: columnar=%v writes table format %s", i, columnar, f)
		}
		if !columnar && f != sstable.TableFormatPebblev4 {
			s.Close()
			t.Fatalf("run %d: row blocks write table format %s, want %s", i, f, sstable.TableFormatPebblev4)
		}
		for j := 0; j < 40; j++ {
			g.applyNext(t, s)
		}
		s.Close()
	}
	s := stOpenWith(t, "db", ownOpts(fs, t))
	defer s.Close()
	if d := stDiff(stLoad(t, s), m.state()); d != "" {
		t.Fatalf("after four runs: %s", d)
	}
}
