package region

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// BenchmarkStoreApplyCatalogue commits batches of 256 new holds, each on a
// SKU drawn uniformly from a catalogue of own rows loaded first, without
// fsync: the store's CPU per hold (memtable inserts, flushes, compactions)
// when nearly every hold rewrites a different row, against one hot row, and
// under pebble's own defaults against the store's (pebble=mixed: the store's
// settings with tables cut only where pebble cuts them, not at every key
// prefix, StoreOptions.MixedTables). cpu-µs/hold counts the
// process's CPU over the batches; drained-cpu-µs/hold adds the flushes and
// compactions still running after the last batch; flushed-B/hold and
// compacted-B/hold the table bytes pebble's flushes and compactions wrote
// over the same span (steadier than CPU on a busy machine), moved-B/hold
// the table bytes moved down a level without a rewrite, and L0-sublevels
// L0's depth at the end.
//
//	go test ./region -run '^$' -bench StoreApplyCatalogue -benchtime 2000x
func BenchmarkStoreApplyCatalogue(b *testing.B) {
	pebbleDefaults := StoreOptions{MemTableBytes: 32 << 20, L0CompactionThreshold: 4, L0StopWritesThreshold: 12, MixedTables: true}
	for _, v := range []struct {
		name string
		skus int
		opts StoreOptions
	}{
		{"skus=1/pebble=defaults", 1, pebbleDefaults},
		{"skus=1/pebble=store", 1, StoreOptions{}},
		{"skus=1/pebble=mixed", 1, StoreOptions{MixedTables: true}},
		{"skus=1M/pebble=defaults", 1_000_000, pebbleDefaults},
		{"skus=1M/pebble=store", 1_000_000, StoreOptions{}},
		{"skus=1M/pebble=mixed", 1_000_000, StoreOptions{MixedTables: true}},
		// Rows out of the memtable (the default, pebble=store) against
		// rows in it (store_rowlog.go).
		{"skus=1/rows=memtable", 1, StoreOptions{RowsInMemtable: true}},
		{"skus=1000/pebble=store", 1000, StoreOptions{}},
		{"skus=1000/rows=memtable", 1000, StoreOptions{RowsInMemtable: true}},
		{"skus=1M/rows=memtable", 1_000_000, StoreOptions{RowsInMemtable: true}},
	} {
		b.Run(v.name, func(b *testing.B) {
			const holds = 256
			o := v.opts
			o.Region, o.NoSync, o.Logger, o.NoEvents = stRegion, true, stLogger(b), true
			s, err := OpenStore(b.TempDir(), o)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			names := make([]string, v.skus)
			for i := range names {
				names[i] = "sku-" + strconv.Itoa(i)
			}
			// The catalogue, 4,096 rows a batch.
			var seq uint64
			for from := 0; from < v.skus; from += 4096 {
				p := &escrow.Persist{}
				for i := from; i < min(from+4096, v.skus); i++ {
					seq++
					p.Rows = append(p.Rows, escrow.Row{SKU: names[i], Region: stRegion, Seq: seq, Minted: 1 << 40})
				}
				p.Seq = seq
				if err := s.Apply(p); err != nil {
					b.Fatal(err)
				}
			}
			stWaitQuiet(b, s)
			const seed = 1
			b.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			now := time.Unix(1_780_000_000, 0).UTC()
			p := &escrow.Persist{}
			inBatch := make(map[int]bool, holds)
			m0 := s.Metrics()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for it := 0; it < b.N; it++ {
				p.Rows, p.Holds = p.Rows[:0], p.Holds[:0]
				clear(inBatch)
				for i := 0; i < holds; i++ {
					k := rng.IntN(v.skus)
					id := stBenchID(uint64(it*holds + i))
					p.Holds = append(p.Holds, &escrow.Hold{ID: id, State: escrow.Held,
						Lines:   []escrow.Line{{SKU: names[k], Qty: 1}},
						Created: now, Expires: now.Add(10 * time.Minute), MaxExpires: now.Add(time.Hour), Updated: now})
					if inBatch[k] {
						continue // one version of a row per batch
					}
					inBatch[k] = true
					seq++
					p.Rows = append(p.Rows, escrow.Row{SKU: names[k], Region: stRegion, Seq: seq, Minted: 1 << 40, Reserved: seq})
				}
				p.Seq = seq
				if err := s.Apply(p); err != nil {
					b.Fatal(err)
				}
			}
			el, cpu := time.Since(start), cpuTime()-cpu0
			stWaitQuiet(b, s)
			drained := cpuTime() - cpu0
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(holds*b.N)/1000, "cpu-µs/hold")
			b.ReportMetric(float64(drained.Nanoseconds())/float64(holds*b.N)/1000, "drained-cpu-µs/hold")
			b.ReportMetric(float64(holds*b.N)/el.Seconds(), "holds/s")
			if m1 := s.Metrics(); m0 != nil && m1 != nil {
				var flushed, compacted, moved uint64
				for i := range m1.Levels {
					flushed += m1.Levels[i].TableBytesFlushed - m0.Levels[i].TableBytesFlushed
					compacted += m1.Levels[i].TableBytesCompacted - m0.Levels[i].TableBytesCompacted
					moved += m1.Levels[i].TableBytesMoved - m0.Levels[i].TableBytesMoved
				}
				b.ReportMetric(float64(flushed)/float64(holds*b.N), "flushed-B/hold")
				b.ReportMetric(float64(compacted)/float64(holds*b.N), "compacted-B/hold")
				b.ReportMetric(float64(moved)/float64(holds*b.N), "moved-B/hold")
				b.ReportMetric(float64(m1.Levels[0].Sublevels), "L0-sublevels")
			}
		})
	}
}

// stWaitQuiet waits, at most a minute, until s has no flush or compaction
// running.
func stWaitQuiet(b *testing.B, s *Store) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		m := s.Metrics()
		if m.Compact.NumInProgress == 0 && m.Flush.NumInProgress == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling pebble's metrics, not synchronising
	}
}
