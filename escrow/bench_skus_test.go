package escrow

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkNodeHoldSKUs: one-line holds of SKUs drawn uniformly (fixed
// seed) from a catalogue of 1, 1,000 or 1,000,000, 256 per Ready, every SKU
// resident: what the core adds per hold as the catalogue grows (issue 23).
// cache=on turns the bounded SKU cache on with room for every SKU (as the
// region runs with sku_cache at least the catalogue): its LRU upkeep, no
// misses. ns/op is per hold; the catalogue is restocked outside the timer.
func BenchmarkNodeHoldSKUs(b *testing.B) {
	for _, skus := range []int{1, 1000, 1_000_000} {
		for _, cache := range []bool{false, true} {
			name := fmt.Sprintf("skus=%d/cache=%s", skus, map[bool]string{false: "off", true: "on"}[cache])
			b.Run(name, func(b *testing.B) { benchHoldSKUs(b, skus, cache, false) })
			b.Run(name+"/prefetch", func(b *testing.B) { benchHoldSKUs(b, skus, cache, true) })
		}
	}
}

// benchRows is a RowSource for the benchmark's setup: every SKU stays
// resident after it, so a read while measuring is a failure.
type benchRows struct {
	rows      map[string][]Row
	measuring bool
}

func (s *benchRows) SKURows(sku string, dst []Row) ([]Row, error) {
	if s.measuring {
		return dst, errors.New("bench: SKU " + sku + " read while measuring (evicted?)")
	}
	return append(dst, s.rows[sku]...), nil
}

func (s *benchRows) ScanRows(func(r *Row) error) error { return errors.New("bench: no scans") }
func (s *benchRows) ScanRowsFrom(string, func(r *Row) error) error {
	return errors.New("bench: no scans")
}

// With prefetch, each Ready's 256 commands are prefetched (Node.Prefetch)
// before they are stepped, as the region's stepper does with what it
// drains from its queue at once.
func benchHoldSKUs(b *testing.B, skus int, cache, prefetch bool) {
	const batch = 256
	b.ReportAllocs()
	src := &benchRows{rows: map[string][]Row{}}
	cfg := Config{Region: "eu", DigestInterval: -1}
	if cache {
		cfg.Rows, cfg.MaxResidentSKUs = src, skus
	}
	n, err := NewNode(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	names := make([]string, skus)
	for i := range names {
		names[i] = fmt.Sprintf("sku-%07d", i)
	}
	now := t0
	// Enough stock for every hold of the run on any one SKU's share.
	per := b.N/skus + batch
	for i, sku := range names {
		for q := per; q > 0; q -= MaxQty {
			c := Command{Kind: CmdRestock, ReqID: uint64(i), SKU: sku, Qty: uint64(min(q, MaxQty))}
			if err := n.Step(Input{Now: now, Cmd: &c}); err != nil {
				b.Fatal(err)
			}
		}
		if i%batch == batch-1 || i == skus-1 {
			rd := n.Ready()
			for _, r := range rd.Persist.Rows {
				src.rows[r.SKU] = append(src.rows[r.SKU][:0], r.Clone())
			}
			n.Advance()
		}
	}
	src.measuring = true
	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed
	cmd := Command{Kind: CmdHold}
	b.ResetTimer()
	defer cpuTimer(b)()
	var next [batch][]Line
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Microsecond)
		cmd.ReqID = uint64(i)
		if i%batch == 0 {
			for j := range next {
				// Lines of their own, as a decoded request has (a hold may keep them).
				next[j] = []Line{{SKU: names[rng.IntN(skus)], Qty: 1}}
			}
			if prefetch {
				for j := range next {
					n.Prefetch(next[j])
				}
			}
		}
		cmd.Lines = next[i%batch]
		if err := n.Step(Input{Now: now, Cmd: &cmd}); err != nil {
			b.Fatal(err)
		}
		if i%batch == batch-1 || i == b.N-1 {
			rd := n.Ready()
			for j := range rd.Reply {
				if rd.Reply[j].Err != nil {
					b.Fatalf("hold: %v", rd.Reply[j].Err)
				}
			}
			n.Advance()
		}
	}
}
