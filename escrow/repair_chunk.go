package escrow

import (
	"cmp"
	"slices"
)

// repairBuckets is how finely oldestOwn splits the sequence range it
// answers for: it picks whole buckets, so a chunk may carry up to one
// bucket's rows fewer than MaxRepairRows.
const repairBuckets = 4096

// oldestOwn returns the own rows whose latest change is after `after`,
// sorted by Seq: all of them, or (cut) the oldest, at most k. Two passes
// over the catalogue and a sort of at most about k rows: the chunks of a
// snapshot of millions of rows cost O(catalogue) each, never a sort of the
// whole catalogue per chunk.
func (n *Node) oldestOwn(after uint64, k int) (recs []*rowRec, cut bool) {
	if n.seq <= after {
		return nil, false
	}
	k = max(k, 1)
	span := n.seq - after
	width := span / repairBuckets
	if span%repairBuckets != 0 {
		width++
	}
	counts := make([]int, repairBuckets)
	total := 0
	for i := 0; i < n.skuTab.len(); i++ {
		if r := n.skuTab.at(i).own; r != nil && r.Seq > after {
			counts[(r.Seq-after-1)/width]++
			total++
		}
	}
	// With the bounded cache, the own rows of SKUs not resident are in
	// the row source only: a repair scans it (repairs are rare).
	n.scanCold(func(r *Row) {
		if r.Region == n.cfg.Region && r.Seq > after && r.Seq <= n.seq {
			counts[(r.Seq-after-1)/width]++
			total++
		}
	})
	limit := n.seq
	if total > k {
		cut = true
		b, sum := 0, 0
		for b < repairBuckets && sum+counts[b] <= k {
			sum += counts[b]
			b++
		}
		if sum == 0 {
			b++ // the first non-empty bucket alone is over k: sort it and trim
		}
		limit = after + uint64(b)*width
	}
	for i := 0; i < n.skuTab.len(); i++ {
		if r := n.skuTab.at(i).own; r != nil && r.Seq > after && r.Seq <= limit {
			recs = append(recs, r)
		}
	}
	n.scanCold(func(r *Row) {
		if r.Region == n.cfg.Region && r.Seq > after && r.Seq <= limit {
			recs = append(recs, &rowRec{Row: r.Clone()})
		}
	})
	slices.SortFunc(recs, func(a, b *rowRec) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(recs) > k {
		recs = recs[:k]
	}
	return recs, cut
}
