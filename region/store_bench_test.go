package region

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// stBenchPersist builds one Ready's worth of writes: n new held holds (one
// line each, with an idempotency key) over skus own rows.
func stBenchPersist(n, skus int) *escrow.Persist {
	now := time.Unix(1_780_000_000, 0).UTC()
	p := &escrow.Persist{Seq: uint64(skus)}
	for j := 0; j < skus; j++ {
		p.Rows = append(p.Rows, escrow.Row{SKU: "sku-" + strconv.Itoa(j), Region: stRegion, Seq: uint64(j + 1),
			Minted: 1_000_000, Reserved: uint64(n / skus), Sent: []escrow.Transfer{{To: "us", Qty: 10}}})
	}
	for i := 0; i < n; i++ {
		id := stBenchID(uint64(i))
		p.Holds = append(p.Holds, &escrow.Hold{ID: id, State: escrow.Held,
			Lines:   []escrow.Line{{SKU: "sku-" + strconv.Itoa(i%skus), Qty: 1}},
			Created: now, Expires: now.Add(10 * time.Minute), MaxExpires: now.Add(time.Hour), Updated: now,
			IdemKey: "idem-" + id})
		p.Idem = append(p.Idem, escrow.IdemEntry{Key: "idem-" + id, HoldID: id, Hash: uint64(i), Expires: now.Add(24 * time.Hour)})
	}
	return p
}

func stBenchID(v uint64) string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	var b [18]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = alphabet[v%32]
		v /= 32
	}
	return stRegion + "-" + string(b[:])
}

// BenchmarkStoreApply commits Persists of 256 new holds (with idempotency
// keys) and their 64 rows to a real directory, one fsync per Apply, and
// reports holds/s. The nosync variant shows the CPU cost alone; nosync-
// skus=256 spreads the holds over 256 SKUs (a row per hold), its rows in the random order a node emits them.
func BenchmarkStoreApply(b *testing.B) {
	for _, v := range []struct {
		name string
		sync bool
		skus int
	}{{"sync", true, 64}, {"nosync", false, 64}, {"nosync-skus=256", false, 256}} {
		sync, skus := v.sync, uint64(v.skus)
		b.Run(v.name, func(b *testing.B) {
			const holds = 256
			s, err := OpenStore(b.TempDir(), StoreOptions{Region: stRegion, NoSync: !sync, Logger: stLogger(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			p := stBenchPersist(holds, int(skus))
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(p.Rows), func(i, j int) { p.Rows[i], p.Rows[j] = p.Rows[j], p.Rows[i] })
			ids := make([]string, holds)
			var bytes int
			var syncWait, total time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for it := 0; it < b.N; it++ {
				// Fresh holds and row versions, as a node would produce.
				base := uint64(it+1) * holds
				for i := range ids {
					ids[i] = stBenchID(base + uint64(i))
					p.Holds[i].ID = ids[i]
					p.Idem[i].HoldID = ids[i]
					p.Idem[i].Key = ids[i] // a distinct key per hold
				}
				for j := range p.Rows {
					p.Rows[j].Seq = uint64(it+1)*skus + uint64(j)
					p.Rows[j].Reserved += holds / skus
				}
				p.Seq = uint64(it+1)*skus + skus - 1
				if err := s.Apply(p); err != nil {
					b.Fatal(err)
				}
				last := s.Stats().Last
				bytes += last.Bytes
				syncWait += last.SyncWait
				total += last.Total
			}
			el, cpu := time.Since(start), cpuTime()-cpu0
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(holds*b.N)/1000, "cpu-µs/hold")
			b.ReportMetric(float64(holds*b.N)/el.Seconds(), "holds/s")
			b.ReportMetric(float64(bytes)/float64(b.N), "batch-bytes")
			b.ReportMetric(float64(total.Microseconds())/float64(b.N), "commit-µs")
			b.ReportMetric(float64(syncWait.Microseconds())/float64(b.N), "syncwait-µs")
		})
	}
}
