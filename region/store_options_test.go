package region

import (
	"io"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestStorePebbleSettings: a store opens Pebble with 64 MiB memtables and
// L0 thresholds of 8 (compaction) and 32 (stall) unless StoreOptions say
// otherwise, as docs/benchmarks.md ("Catalogue scale") measured them.
// Pebble records the options it runs with in its OPTIONS file.
func TestStorePebbleSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts StoreOptions
		want []string
	}{
		{"defaults", StoreOptions{}, []string{"mem_table_size=67108864", "l0_compaction_threshold=8", "l0_stop_writes_threshold=32"}},
		{"set", StoreOptions{MemTableBytes: 1 << 20, L0CompactionThreshold: 4, L0StopWritesThreshold: 12},
			[]string{"mem_table_size=1048576", "l0_compaction_threshold=4", "l0_stop_writes_threshold=12"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			o := tc.opts
			o.Region, o.FS, o.Logger = stRegion, fs, stLogger(t)
			s, err := OpenStore("db", o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			names, err := fs.List("db")
			if err != nil {
				t.Fatal(err)
			}
			var text string
			for _, n := range names {
				if !strings.HasPrefix(n, "OPTIONS-") {
					continue
				}
				f, err := fs.Open(fs.PathJoin("db", n))
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(f)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				text = string(b)
			}
			if text == "" {
				t.Fatalf("no OPTIONS file among %v", names)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, "  "+w+"\n") {
					t.Errorf("pebble runs without %s:\n%s", w, text)
				}
			}
		})
	}
}
