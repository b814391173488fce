package region

import (
	"bytes"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/eventlog"
)

func TestPrefixSpanEnd(t *testing.T) {
	for _, c := range []struct{ key, end string }{
		{"h/0001-abc", "h0"},
		{"r/sku-1\x00eu", "r0"},
		{"x/\x80\x00\x00\x00\x00\x00\x00\x01id", "x0"},
		{"m/seq", "m0"},
		{"e/head", "e/s/"},
		{"e/floor", "e/s/"},
		{"e/relay", "e/s/"},
		{string(eventlog.RecordKey(1)), "e/s0"},
		{string(eventlog.RecordKey(1<<64 - 1)), "e/s0"},
		{"e/t", "e0"},
		{"z", "{"},
		{"\xff\x01", ""},
	} {
		got := prefixSpanEnd([]byte(c.key))
		if string(got) != c.end {
			t.Errorf("prefixSpanEnd(%q) = %q, want %q", c.key, got, c.end)
		}
		if got != nil && bytes.Compare(got, []byte(c.key)) <= 0 {
			t.Errorf("prefixSpanEnd(%q) = %q: not after the key", c.key, got)
		}
	}
}

// TestStoreTablesByPrefix: every sstable a store's flushes and compactions
// write holds keys of one span of prefixSpanEnd, unless MixedTables is set
// (then the few small tables of these batches straddle prefixes, which
// shows the check can fail).
func TestStoreTablesByPrefix(t *testing.T) {
	for _, mixed := range []bool{false, true} {
		const seed = 23
		t.Logf("seed %d, mixed %v", seed, mixed)
		m := newStModel()
		g := newStGen(seed, m)
		opts := ownOpts(vfs.NewMem(), t)
		opts.MixedTables = mixed
		s := stOpenWith(t, "db", opts)
		for j := 0; j < 200; j++ {
			// With the outbox's records and counters (e/s/, e/head).
			p := g.next()
			p.Events = append(p.Events, escrow.Event{Kind: escrow.EvStockRestocked, At: g.now,
				SKU: "sku-events", Qty: uint64(j + 1), Available: uint64(j)})
			if err := s.Apply(p); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			g.m.apply(p)
		}
		if err := s.db.Flush(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		levels, err := s.db.SSTables()
		if err != nil {
			t.Fatalf("SSTables: %v", err)
		}
		// The whole key space into the last level too: compactions cut
		// their tables the same way.
		if err := s.db.Compact(t.Context(), []byte{0}, []byte{0xff}, false); err != nil {
			t.Fatalf("compact: %v", err)
		}
		after, err := s.db.SSTables()
		if err != nil {
			t.Fatalf("SSTables: %v", err)
		}
		var tables, straddling, records int
		for _, lv := range append(levels, after...) {
			for _, tb := range lv {
				tables++
				lo, hi := tb.Smallest.UserKey, tb.Largest.UserKey
				if bytes.HasPrefix(lo, []byte(pfxEventRecords)) {
					records++
				}
				if end := prefixSpanEnd(lo); end != nil && bytes.Compare(hi, end) >= 0 {
					straddling++
					if !mixed {
						t.Errorf("table %s holds %q to %q, across the span's end %q", tb.FileNum, lo, hi, end)
					}
				}
			}
		}
		if !mixed && (tables < 4 || records == 0) {
			t.Errorf("%d tables, %d of event records: want several prefixes' worth", tables, records)
		}
		if mixed && straddling == 0 {
			t.Errorf("mixed: no table of %d straddles a prefix", tables)
		}
		if d := stDiff(stLoad(t, s), m.state()); d != "" {
			t.Errorf("mixed %v: %s", mixed, d)
		}
		s.Close()
	}
}
